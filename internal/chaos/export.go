package chaos

import (
	"context"
	"syscall"
)

// PostgresServer is a PostgreSQL server of a run's own (initdb into dir, a
// free loopback port, fsync off; as root it runs as the postgres OS user),
// for other harnesses of the real stack (internal/bench).
type PostgresServer struct{ p *postgres }

// StartPostgres starts a PostgreSQL server under dir with the server
// binaries in pgBin ("" = look for them, as the chaos run does) and creates
// one database in it (URL). dir's parents must be traversable by the
// postgres user when running as root.
func StartPostgres(ctx context.Context, pgBin, dir string) (*PostgresServer, error) {
	bin, err := lookPG(pgBin)
	if err != nil {
		return nil, err
	}
	p, err := startPostgres(ctx, bin, dir)
	if err != nil {
		return nil, err
	}
	return &PostgresServer{p: p}, nil
}

// URL is the DATABASE_URL of the server's database.
func (s *PostgresServer) URL() string { return s.p.url(chaosDatabase) }

// Bin is the directory of the server binaries used.
func (s *PostgresServer) Bin() string { return s.p.bin }

// Stop shuts the server down (fast shutdown) and waits for it to exit.
func (s *PostgresServer) Stop() error { return s.p.stop(syscall.SIGINT) }

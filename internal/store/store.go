// Package store is the persistence layer of ordersaga: users, products, orders and
// their items, the stock ledger, payments and refunds.
//
// The same code and the same SQL run on PostgreSQL (production) and on an embedded
// pure-Go SQLite file (dev, DATABASE_URL empty). Every write is idempotent under
// retry, because the callers are Temporal activities that may run more than once:
// inserts use ON CONFLICT DO NOTHING on a natural key, status changes are
// conditional UPDATEs, stock moves are guarded by a ledger with a unique key.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/stdlib"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// Dialect names returned by Store.Dialect.
const (
	DialectPostgres = "postgres"
	DialectSQLite   = "sqlite"
)

// Store is the database handle shared by the API and the activities. It is safe
// for concurrent use.
type Store struct {
	db      *gorm.DB
	sqlDB   *sql.DB
	dialect string
}

// Open connects to the database named by databaseURL (the DATABASE_URL setting):
//
//	postgres://... or postgresql://...  PostgreSQL
//	sqlite:<path> or file:<path>         an embedded SQLite file (parent directory created)
//
// It pings the database before returning. It does not migrate; call Migrate.
func Open(ctx context.Context, databaseURL string) (*Store, error) {
	switch {
	case strings.HasPrefix(databaseURL, "postgres://"), strings.HasPrefix(databaseURL, "postgresql://"):
		return openPostgres(ctx, databaseURL)
	case strings.HasPrefix(databaseURL, "sqlite:"), strings.HasPrefix(databaseURL, "file:"):
		return openSQLite(ctx, databaseURL)
	case databaseURL == "":
		return nil, errors.New("store: DATABASE_URL is empty: want postgres://... or sqlite:<path>")
	default:
		// Do not echo the value: it may hold a password.
		scheme, _, _ := strings.Cut(databaseURL, ":")
		return nil, fmt.Errorf("store: DATABASE_URL has unsupported scheme %q: want postgres://..., postgresql://..., sqlite:<path> or file:<path>", scheme)
	}
}

func gormConfig() *gorm.Config {
	return &gorm.Config{
		// Our writes that need a transaction open one explicitly.
		SkipDefaultTransaction: true,
		NowFunc:                now,
		Logger: logger.New(log.New(os.Stderr, "store: ", log.LstdFlags), logger.Config{
			SlowThreshold:             500 * time.Millisecond,
			LogLevel:                  logger.Warn,
			IgnoreRecordNotFoundError: true,
		}),
	}
}

// PostgreSQL pool: enough connections for the API and a worker's concurrent
// activities, recycled so that a fail-over or a pgbouncer restart is picked up.
const (
	pgMaxOpenConns    = 20
	pgMaxIdleConns    = 10
	pgConnMaxLifetime = 30 * time.Minute
	pgConnMaxIdleTime = 5 * time.Minute
)

func openPostgres(ctx context.Context, databaseURL string) (*Store, error) {
	cfg, err := pgx.ParseConfig(databaseURL)
	if err != nil {
		// pgx's parse errors redact the password.
		return nil, fmt.Errorf("store: DATABASE_URL: %w", err)
	}
	sqlDB := stdlib.OpenDB(*cfg, stdlib.OptionAfterConnect(func(_ context.Context, c *pgx.Conn) error {
		// Scan timestamptz into UTC (pgx's default is time.Local), so that both
		// databases hand back the same time.Time values.
		c.TypeMap().RegisterType(&pgtype.Type{
			Name:  "timestamptz",
			OID:   pgtype.TimestamptzOID,
			Codec: &pgtype.TimestamptzCodec{ScanLocation: time.UTC},
		})
		return nil
	}))
	sqlDB.SetMaxOpenConns(pgMaxOpenConns)
	sqlDB.SetMaxIdleConns(pgMaxIdleConns)
	sqlDB.SetConnMaxLifetime(pgConnMaxLifetime)
	sqlDB.SetConnMaxIdleTime(pgConnMaxIdleTime)

	db, err := gorm.Open(postgres.New(postgres.Config{Conn: sqlDB}), gormConfig())
	if err != nil {
		sqlDB.Close()
		return nil, fmt.Errorf("store: open postgres: %w", err)
	}
	return finishOpen(ctx, db, sqlDB, DialectPostgres)
}

// SQLite settings. They are applied by modernc.org/sqlite on every new connection.
//
//   - journal_mode WAL: readers never block the writer nor the writer the readers.
//   - busy_timeout 5000: a connection that finds the database locked waits up to
//     5 s instead of failing at once with SQLITE_BUSY (also covers a second process).
//   - _txlock=immediate: every transaction takes the write lock at BEGIN. Without it
//     a transaction that reads and then writes can fail with SQLITE_BUSY at once
//     (the busy handler cannot help a reader whose snapshot is stale); with it,
//     write transactions simply queue on busy_timeout. This is what makes the
//     concurrent DeductStock test reliable without capping the pool at one
//     connection (which would deadlock any code that reads on the pool while
//     holding a transaction).
//   - foreign_keys on (off by default in SQLite), synchronous NORMAL (safe with WAL).
//   - _time_format=sqlite and _timezone=UTC: times are written as
//     "2006-01-02 15:04:05.999999999-07:00" in UTC, and read back as time.Time in
//     UTC because the columns are declared TIMESTAMP. Same zone, same layout means
//     text comparison orders them correctly (keyset pagination relies on it).
var sqliteParams = url.Values{
	"_pragma": {
		"busy_timeout(5000)",
		"journal_mode(WAL)",
		"foreign_keys(1)",
		"synchronous(NORMAL)",
	},
	"_txlock":      {"immediate"},
	"_time_format": {"sqlite"},
	"_timezone":    {"UTC"},
}

// sqliteMaxOpenConns: writers are serialised by SQLite anyway; a few connections
// let reads proceed while a write transaction is open.
const sqliteMaxOpenConns = 8

func sqlitePath(databaseURL string) (string, error) {
	var p string
	switch {
	case strings.HasPrefix(databaseURL, "sqlite://"):
		p = strings.TrimPrefix(databaseURL, "sqlite://")
	case strings.HasPrefix(databaseURL, "sqlite:"):
		p = strings.TrimPrefix(databaseURL, "sqlite:")
	default:
		p = strings.TrimPrefix(databaseURL, "file:")
	}
	if i := strings.IndexByte(p, '?'); i >= 0 {
		return "", errors.New("store: DATABASE_URL: query parameters are not supported for sqlite; use sqlite:<path>")
	}
	if p == "" {
		return "", errors.New("store: DATABASE_URL: sqlite:<path> needs a file path")
	}
	if strings.Contains(p, ":memory:") || strings.HasPrefix(p, ":") {
		return "", errors.New("store: DATABASE_URL: in-memory sqlite is not supported; use sqlite:<path to a file>")
	}
	return filepath.Abs(p)
}

func openSQLite(ctx context.Context, databaseURL string) (*Store, error) {
	path, err := sqlitePath(databaseURL)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("store: create directory for %s: %w", path, err)
	}
	sqlDB, err := sql.Open(sqliteDriverName, path+"?"+sqliteParams.Encode())
	if err != nil {
		return nil, fmt.Errorf("store: open sqlite %s: %w", path, err)
	}
	sqlDB.SetMaxOpenConns(sqliteMaxOpenConns)
	sqlDB.SetMaxIdleConns(sqliteMaxOpenConns)

	db, err := gorm.Open(sqliteDialector{Conn: sqlDB}, gormConfig())
	if err != nil {
		sqlDB.Close()
		return nil, fmt.Errorf("store: open sqlite %s: %w", path, err)
	}
	return finishOpen(ctx, db, sqlDB, DialectSQLite)
}

func finishOpen(ctx context.Context, db *gorm.DB, sqlDB *sql.DB, dialect string) (*Store, error) {
	s := &Store{db: db, sqlDB: sqlDB, dialect: dialect}
	if err := s.Ping(ctx); err != nil {
		sqlDB.Close()
		return nil, err
	}
	return s, nil
}

// PoolSizes reports the connection pool a Store of this dialect opens
// (benchmark reports show it).
func PoolSizes(dialect string) map[string]int {
	if dialect == DialectSQLite {
		return map[string]int{"max_open": sqliteMaxOpenConns, "max_idle": sqliteMaxOpenConns}
	}
	return map[string]int{"max_open": pgMaxOpenConns, "max_idle": pgMaxIdleConns}
}

// Close closes the connection pool.
func (s *Store) Close() error { return s.sqlDB.Close() }

// DB returns the gorm handle, for queries this package does not offer. Prefer
// adding a function here: the functions of this package are the idempotent ones.
func (s *Store) DB() *gorm.DB { return s.db }

// Dialect is "postgres" or "sqlite".
func (s *Store) Dialect() string { return s.dialect }

// Ping checks that the database answers a query.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.sqlDB.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("store: ping %s: %w", s.dialect, err)
	}
	return nil
}

// conn returns the gorm handle bound to ctx.
func (s *Store) conn(ctx context.Context) *gorm.DB { return s.db.WithContext(ctx) }

// tx runs fn in a transaction (on SQLite a BEGIN IMMEDIATE one, see sqliteParams).
func (s *Store) tx(ctx context.Context, fn func(tx *gorm.DB) error) error {
	return s.conn(ctx).Transaction(fn)
}

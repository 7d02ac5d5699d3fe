package cluster

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	temporalschema "go.temporal.io/server/schema"
	pgschema "go.temporal.io/server/schema/postgresql/v12"

	"ordersaga/internal/pgserver"
)

// Temporal's two databases, as docker-compose.yml names them (DBNAME,
// VISIBILITY_DBNAME).
const (
	temporalDB   = "temporal"
	visibilityDB = "temporal_visibility"
)

// schemaReport says what the schema tool found and left, per database.
type schemaReport struct {
	DB      string
	Created bool   // the database did not exist
	Before  string // schema version found ("" = none)
	After   string
}

func (r schemaReport) String() string {
	switch {
	case r.Created || r.Before == "":
		return fmt.Sprintf("%s: created at schema %s", r.DB, r.After)
	case r.Before == r.After:
		return fmt.Sprintf("%s: schema %s reused", r.DB, r.After)
	default:
		return fmt.Sprintf("%s: schema upgraded %s → %s", r.DB, r.Before, r.After)
	}
}

// setupSchema brings Temporal's databases to the schema this server version
// needs with the official schema tool, as deploy/temporal/schema.sh does in
// compose: create-database when it is missing, setup-schema -v 0.0 (keeps a
// newer version), update-schema -d <versioned dir> (applies only what is
// missing). An existing schema is reused or upgraded, never dropped. The
// versioned directories are the pinned module's own (go.temporal.io/server
// /schema/postgresql/v12/…), written out under dir.
func setupSchema(ctx context.Context, tool string, pg *pgserver.Server, dir, logPath string) ([]schemaReport, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	var reports []schemaReport
	for _, db := range []struct{ name, schema, want string }{
		{temporalDB, "postgresql/v12/temporal", pgschema.Version},
		{visibilityDB, "postgresql/v12/visibility", pgschema.VisibilityVersion},
	} {
		versioned := filepath.Join(dir, "schema", db.schema, "versioned")
		if err := extract(db.schema+"/versioned", versioned); err != nil {
			return nil, err
		}
		exists, before, err := schemaVersion(ctx, pg, db.name)
		if err != nil {
			return nil, err
		}
		r := schemaReport{DB: db.name, Created: !exists, Before: before}
		var steps [][]string
		if !exists {
			steps = append(steps, []string{"create-database"})
		}
		steps = append(steps, []string{"setup-schema", "-v", "0.0"}, []string{"update-schema", "-d", versioned})
		for _, step := range steps {
			args := append([]string{"--db", db.name}, step...)
			cmd := exec.CommandContext(ctx, tool, args...)
			// The tool reads its connection from these, as in the
			// temporal-schema job of docker-compose.yml.
			cmd.Env = append(cleanEnv(),
				"SQL_PLUGIN=postgres12", "SQL_HOST=127.0.0.1", "SQL_PORT="+strconv.Itoa(pg.Port()),
				"SQL_USER=postgres", "SQL_PASSWORD=")
			fmt.Fprintf(logf, "=== temporal-sql-tool %s\n", strings.Join(args, " "))
			cmd.Stdout, cmd.Stderr = logf, logf
			if err := cmd.Run(); err != nil {
				return nil, fmt.Errorf("cluster: temporal-sql-tool %s on %s failed: %w (log: %s)\n%s",
					step[0], db.name, err, logPath, tail(logPath, 15))
			}
		}
		if _, r.After, err = schemaVersion(ctx, pg, db.name); err != nil {
			return nil, err
		}
		if r.After != db.want {
			return nil, fmt.Errorf("cluster: %s is at schema %q after update-schema; server %s needs %s (log: %s)",
				db.name, r.After, PinnedServerVersion(), db.want, logPath)
		}
		reports = append(reports, r)
	}
	return reports, nil
}

// schemaVersion reports whether database db exists and the version the
// schema tool recorded in it ("" when none).
func schemaVersion(ctx context.Context, pg *pgserver.Server, db string) (bool, string, error) {
	admin, err := sql.Open("pgx", pg.URL("postgres"))
	if err != nil {
		return false, "", err
	}
	defer admin.Close()
	var n int
	if err := admin.QueryRowContext(ctx, `SELECT count(*) FROM pg_database WHERE datname = $1`, db).Scan(&n); err != nil {
		return false, "", fmt.Errorf("cluster: look for database %s: %w", db, err)
	}
	if n == 0 {
		return false, "", nil
	}
	c, err := sql.Open("pgx", pg.URL(db))
	if err != nil {
		return true, "", err
	}
	defer c.Close()
	var v string
	err = c.QueryRowContext(ctx, `SELECT curr_version FROM schema_version WHERE version_partition = 0 AND db_name = $1`, db).Scan(&v)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return true, "", nil
	case err != nil && strings.Contains(err.Error(), "does not exist"): // no schema_version table yet
		return true, "", nil
	case err != nil:
		return true, "", fmt.Errorf("cluster: read the schema version of %s: %w", db, err)
	}
	return true, v, nil
}

// extract writes the embedded schema directory src (of the pinned module's
// go.temporal.io/server/schema) to dst.
func extract(src, dst string) error {
	assets := temporalschema.Assets()
	return fs.WalkDir(assets, src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("cluster: embedded schema %s: %w", src, err)
		}
		out := filepath.Join(dst, filepath.FromSlash(strings.TrimPrefix(p, src)))
		if d.IsDir() {
			return os.MkdirAll(out, 0o755)
		}
		b, err := fs.ReadFile(assets, p)
		if err != nil {
			return err
		}
		return os.WriteFile(out, b, 0o644)
	})
}

// cleanEnv is the environment of the Temporal processes and tools before
// their own settings: none of this process's variables but the few a
// program needs, so that nothing in the caller's shell (TEMPORAL_*, SQL_*,
// DB, …) changes how they run.
func cleanEnv() []string {
	var env []string
	for _, k := range []string{"PATH", "HOME", "TMPDIR", "TZ"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

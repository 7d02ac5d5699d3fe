package store

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// migrationFiles holds the hand-written schema, one file per migration and dialect.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// migration is one versioned schema change. Versions only grow; a migration is
// never edited once released (add a new one instead).
type migration struct {
	Version  int
	Name     string
	Postgres string // SQL run on PostgreSQL
	SQLite   string // SQL run on SQLite
}

// migrations is the ordered list applied by Migrate.
var migrations = []migration{
	{Version: 1, Name: "init", Postgres: migrationSQL("0001_init.postgres.sql"), SQLite: migrationSQL("0001_init.sqlite.sql")},
	{Version: 2, Name: "fulfilment", Postgres: migrationSQL("0002_fulfilment.postgres.sql"), SQLite: migrationSQL("0002_fulfilment.sqlite.sql")},
	{Version: 3, Name: "reconciliation", Postgres: migrationSQL("0003_reconciliation.postgres.sql"), SQLite: migrationSQL("0003_reconciliation.sqlite.sql")},
	{Version: 4, Name: "wechat_shipping", Postgres: migrationSQL("0004_wechat_shipping.postgres.sql"), SQLite: migrationSQL("0004_wechat_shipping.sqlite.sql")},
	{Version: 5, Name: "partial_refunds", Postgres: migrationSQL("0005_partial_refunds.postgres.sql"), SQLite: migrationSQL("0005_partial_refunds.sqlite.sql")},
}

func migrationSQL(name string) string {
	b, err := migrationFiles.ReadFile("migrations/" + name)
	if err != nil {
		panic(fmt.Sprintf("store: embedded migration %s: %v", name, err))
	}
	return string(b)
}

// LatestSchemaVersion is the version Migrate brings the database to.
func LatestSchemaVersion() int { return migrations[len(migrations)-1].Version }

const (
	createSchemaMigrationsPostgres = `CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL
)`
	createSchemaMigrationsSQLite = `CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at TIMESTAMP NOT NULL
)`
	// Serialises migrations of the same schema across processes; keyed by schema
	// so that tests migrating their own schemas in parallel do not wait on each other.
	migrateLockPostgres = `SELECT pg_advisory_xact_lock(hashtext('ordersaga.migrate.' || current_schema()))`
)

// Migrate brings the schema to LatestSchemaVersion. Each migration runs in its own
// transaction together with its schema_migrations row, so a failed migration
// leaves nothing half applied and re-running Migrate is a no-op once applied.
// On PostgreSQL a transaction-scoped advisory lock keeps two processes (api and
// worker starting together) from migrating at the same time; on SQLite the
// transaction itself takes the database's write lock.
func (s *Store) Migrate(ctx context.Context) error {
	for i, m := range migrations {
		if m.Version <= 0 || (i > 0 && m.Version <= migrations[i-1].Version) {
			return fmt.Errorf("store: migrations out of order at version %d", m.Version)
		}
		if err := s.applyMigration(ctx, m); err != nil {
			return fmt.Errorf("store: migration %04d_%s: %w", m.Version, m.Name, err)
		}
	}
	return nil
}

func (s *Store) applyMigration(ctx context.Context, m migration) error {
	body, create := m.SQLite, createSchemaMigrationsSQLite
	if s.dialect == DialectPostgres {
		body, create = m.Postgres, createSchemaMigrationsPostgres
	}
	// DDL is slow by nature: keep the slow-query log quiet (errors are returned).
	db := s.db.Session(&gorm.Session{Logger: s.db.Logger.LogMode(logger.Silent)}).WithContext(ctx)
	return db.Transaction(func(tx *gorm.DB) error {
		if s.dialect == DialectPostgres {
			if err := tx.Exec(migrateLockPostgres).Error; err != nil {
				return err
			}
		}
		if err := tx.Exec(create).Error; err != nil {
			return err
		}
		var n int64
		if err := tx.Raw(`SELECT COUNT(*) FROM schema_migrations WHERE version = ?`, m.Version).Scan(&n).Error; err != nil {
			return err
		}
		if n > 0 {
			return nil // already applied
		}
		// Executed without arguments: both drivers then accept several statements.
		if err := tx.Exec(body).Error; err != nil {
			return err
		}
		return tx.Exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
			m.Version, m.Name, now()).Error
	})
}

// SchemaVersion is the highest applied migration, 0 for an empty database.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	exists, err := s.tableExists(ctx, "schema_migrations")
	if err != nil {
		return 0, err
	}
	if !exists {
		return 0, nil
	}
	var v *int64
	if err := s.conn(ctx).Raw(`SELECT MAX(version) FROM schema_migrations`).Scan(&v).Error; err != nil {
		return 0, fmt.Errorf("store: schema version: %w", err)
	}
	if v == nil {
		return 0, nil
	}
	return int(*v), nil
}

// AppliedMigration is one row of schema_migrations.
type AppliedMigration struct {
	Version   int       `gorm:"column:version"`
	Name      string    `gorm:"column:name"`
	AppliedAt time.Time `gorm:"column:applied_at"`
}

// AppliedMigrations lists schema_migrations in version order (for `ordersaga migrate`).
func (s *Store) AppliedMigrations(ctx context.Context) ([]AppliedMigration, error) {
	exists, err := s.tableExists(ctx, "schema_migrations")
	if err != nil || !exists {
		return nil, err
	}
	var out []AppliedMigration
	err = s.conn(ctx).Raw(`SELECT version, name, applied_at FROM schema_migrations ORDER BY version`).Scan(&out).Error
	if err != nil {
		return nil, fmt.Errorf("store: applied migrations: %w", err)
	}
	return out, nil
}

func (s *Store) tableExists(ctx context.Context, table string) (bool, error) {
	var q string
	switch s.dialect {
	case DialectPostgres:
		// The table of the current search_path, not of some other schema.
		q = `SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = ?`
	case DialectSQLite:
		q = `SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?`
	default:
		return false, errors.New("store: unknown dialect " + s.dialect)
	}
	var n int64
	if err := s.conn(ctx).Raw(q, table).Scan(&n).Error; err != nil {
		return false, fmt.Errorf("store: look for table %s: %w", table, err)
	}
	return n > 0, nil
}

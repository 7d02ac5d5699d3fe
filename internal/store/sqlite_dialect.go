package store

// A minimal gorm Dialector for modernc.org/sqlite (pure Go, driver name "sqlite").
//
// Why not an off-the-shelf one: gorm.io/driver/sqlite needs cgo, and
// github.com/glebarez/sqlite registers its own database/sql driver under the name
// "sqlite", which collides with modernc.org/sqlite (linked into the same binary by
// the embedded Temporal server) and panics at init. So we speak to modernc's
// driver directly and give gorm just what it needs: callbacks, clause builders,
// quoting and bind variables. Schema changes are hand-written SQL migrations, so
// the generic migrator is enough.

import (
	"database/sql"
	"fmt"
	"strings"

	_ "modernc.org/sqlite" // registers database/sql driver "sqlite"

	"gorm.io/gorm"
	"gorm.io/gorm/callbacks"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/logger"
	"gorm.io/gorm/migrator"
	"gorm.io/gorm/schema"
)

// sqliteDriverName is the database/sql driver name modernc.org/sqlite registers.
const sqliteDriverName = "sqlite"

// sqliteDialector implements gorm.Dialector (and savepoints) for modernc.org/sqlite.
type sqliteDialector struct {
	// Conn is an already opened pool; when nil, DSN is opened with the modernc driver.
	Conn *sql.DB
	DSN  string
}

var (
	_ gorm.Dialector                     = sqliteDialector{}
	_ gorm.SavePointerDialectorInterface = sqliteDialector{}
)

func (sqliteDialector) Name() string { return "sqlite" }

func (d sqliteDialector) Initialize(db *gorm.DB) error {
	// SQLite >= 3.35 has RETURNING, so ids of inserted rows come back in the same
	// statement, as on PostgreSQL.
	callbacks.RegisterDefaultCallbacks(db, &callbacks.Config{
		CreateClauses: []string{"INSERT", "VALUES", "ON CONFLICT", "RETURNING"},
		UpdateClauses: []string{"UPDATE", "SET", "FROM", "WHERE", "RETURNING"},
		DeleteClauses: []string{"DELETE", "FROM", "WHERE", "RETURNING"},
	})

	if d.Conn != nil {
		db.ConnPool = d.Conn
	} else {
		conn, err := sql.Open(sqliteDriverName, d.DSN)
		if err != nil {
			return err
		}
		db.ConnPool = conn
	}

	for name, build := range sqliteClauseBuilders {
		db.ClauseBuilders[name] = build
	}
	return nil
}

// sqliteClauseBuilders adapt the clauses whose standard rendering SQLite rejects.
var sqliteClauseBuilders = map[string]clause.ClauseBuilder{
	// SQLite has no row locks (a write transaction locks the whole database, and
	// ours begin IMMEDIATE), so SELECT ... FOR UPDATE is simply dropped.
	"FOR": func(clause.Clause, clause.Builder) {},
	// SQLite accepts OFFSET only after a LIMIT; -1 means "no limit".
	"LIMIT": func(c clause.Clause, b clause.Builder) {
		l, ok := c.Expression.(clause.Limit)
		if !ok {
			c.Build(b)
			return
		}
		if l.Offset > 0 && (l.Limit == nil || *l.Limit < 0) {
			b.WriteString("LIMIT -1 OFFSET ")
			b.AddVar(b, l.Offset)
			return
		}
		l.Build(b)
	},
}

func (d sqliteDialector) Migrator(db *gorm.DB) gorm.Migrator {
	return migrator.Migrator{Config: migrator.Config{
		DB:                          db,
		Dialector:                   d,
		CreateIndexAfterCreateTable: true,
	}}
}

// DataTypeOf maps gorm's portable types to SQLite declared types. Times are
// declared DATETIME so modernc parses them back into time.Time.
func (sqliteDialector) DataTypeOf(field *schema.Field) string {
	switch field.DataType {
	case schema.Bool:
		return "NUMERIC"
	case schema.Int, schema.Uint:
		if field.AutoIncrement && field.PrimaryKey {
			return "INTEGER PRIMARY KEY AUTOINCREMENT"
		}
		return "INTEGER"
	case schema.Float:
		return "REAL"
	case schema.String:
		return "TEXT"
	case schema.Time:
		return "DATETIME"
	case schema.Bytes:
		return "BLOB"
	}
	return string(field.DataType)
}

// DefaultValueOf: SQLite has no DEFAULT keyword inside VALUES; NULL makes an
// INTEGER PRIMARY KEY pick the next rowid.
func (sqliteDialector) DefaultValueOf(field *schema.Field) clause.Expression {
	if field.AutoIncrement {
		return clause.Expr{SQL: "NULL"}
	}
	return clause.Expr{SQL: "DEFAULT"}
}

func (sqliteDialector) BindVarTo(w clause.Writer, _ *gorm.Statement, _ any) {
	w.WriteByte('?')
}

// QuoteTo writes an identifier in double quotes; "a.b" becomes "a"."b" and an
// embedded double quote is doubled.
func (sqliteDialector) QuoteTo(w clause.Writer, s string) {
	w.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			w.WriteString(`""`)
		case '.':
			w.WriteString(`"."`)
		default:
			w.WriteByte(s[i])
		}
	}
	w.WriteByte('"')
}

func (sqliteDialector) Explain(sql string, vars ...any) string {
	return logger.ExplainSQL(sql, nil, `'`, vars...)
}

func (sqliteDialector) SavePoint(tx *gorm.DB, name string) error {
	return tx.Exec("SAVEPOINT " + quoteIdent(name)).Error
}

func (sqliteDialector) RollbackTo(tx *gorm.DB, name string) error {
	return tx.Exec("ROLLBACK TO SAVEPOINT " + quoteIdent(name)).Error
}

func quoteIdent(s string) string {
	return fmt.Sprintf(`"%s"`, strings.ReplaceAll(s, `"`, `""`))
}

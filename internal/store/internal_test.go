package store

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

func TestMigrations_EveryFileIsListedForBothDialects(t *testing.T) {
	listed := map[string]bool{}
	for i, m := range migrations {
		if m.Version != i+1 {
			t.Errorf("migration %d has version %d, want consecutive versions from 1", i, m.Version)
		}
		if strings.TrimSpace(m.Postgres) == "" || strings.TrimSpace(m.SQLite) == "" || m.Name == "" {
			t.Errorf("migration %d is incomplete", m.Version)
		}
		prefix := fmt.Sprintf("%04d_%s", m.Version, m.Name)
		listed[prefix+".postgres.sql"] = true
		listed[prefix+".sqlite.sql"] = true
	}
	files, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(listed) {
		t.Errorf("%d migration files embedded, %d listed", len(files), len(listed))
	}
	for _, f := range files {
		if !listed[filepath.Base(f)] {
			t.Errorf("migration file %s is not in the migrations slice", f)
		}
	}
}

func TestSQLiteDialect_RendersPortableSQL(t *testing.T) {
	db, err := gorm.Open(sqliteDialector{DSN: filepath.Join(t.TempDir(), "d.db")}, &gorm.Config{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if sqlDB, err := db.DB(); err == nil {
		t.Cleanup(func() { sqlDB.Close() })
	}
	tests := []struct {
		name  string
		query func(db *gorm.DB) *gorm.DB
		want  string
	}{
		{"quotes identifiers with double quotes and binds with ?",
			func(db *gorm.DB) *gorm.DB { return db.Where("order_no = ?", "A").Find(&[]Order{}) },
			`SELECT * FROM "orders" WHERE order_no = ?`},
		{"offset without limit",
			func(db *gorm.DB) *gorm.DB { return db.Offset(5).Find(&[]Product{}) },
			`SELECT * FROM "products" LIMIT -1 OFFSET ?`},
		{"limit and offset",
			func(db *gorm.DB) *gorm.DB { return db.Limit(2).Offset(5).Find(&[]Product{}) },
			`SELECT * FROM "products" LIMIT ? OFFSET ?`},
		{"FOR UPDATE is dropped",
			func(db *gorm.DB) *gorm.DB {
				return db.Clauses(clause.Locking{Strength: clause.LockingStrengthUpdate}).Find(&[]Product{})
			},
			`SELECT * FROM "products"`},
		{"insert returns the generated id",
			func(db *gorm.DB) *gorm.DB { return db.Create(&Product{Name: "x"}) },
			`INSERT INTO "products" ("name","price_fen","stock","created_at","updated_at") VALUES (?,?,?,?,?) RETURNING "id"`},
		{"on conflict do nothing",
			func(db *gorm.DB) *gorm.DB {
				return db.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "open_id"}}, DoNothing: true}).Create(&User{OpenID: "o"})
			},
			`INSERT INTO "users" ("open_id","created_at") VALUES (?,?) ON CONFLICT ("open_id") DO NOTHING RETURNING "id"`},
		{"dotted and quoted names",
			func(db *gorm.DB) *gorm.DB { return db.Table(`a.b"c`).Find(&[]map[string]any{}) },
			`SELECT * FROM "a"."b""c"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := strings.TrimSpace(tt.query(db.Session(&gorm.Session{DryRun: true})).Statement.SQL.String())
			if got != tt.want {
				t.Errorf("SQL\n got: %s\nwant: %s", got, tt.want)
			}
		})
	}
}

func TestSQLitePath(t *testing.T) {
	abs := func(p string) string { a, _ := filepath.Abs(p); return a }
	tests := []struct {
		url, want string
		wantErr   bool
	}{
		{"sqlite:.data/ordersaga.db", abs(".data/ordersaga.db"), false},
		{"sqlite:///tmp/x.db", "/tmp/x.db", false},
		{"file:/tmp/y.db", "/tmp/y.db", false},
		{"sqlite:", "", true},
		{"sqlite::memory:", "", true},
		{"file::memory:?cache=shared", "", true},
	}
	for _, tt := range tests {
		got, err := sqlitePath(tt.url)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("sqlitePath(%q) = %q, %v; want %q, error %v", tt.url, got, err, tt.want, tt.wantErr)
		}
	}
}

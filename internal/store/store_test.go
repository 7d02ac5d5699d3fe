package store_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"ordersaga/internal/status"
	"ordersaga/internal/store"
	"ordersaga/internal/store/storetest"
)

func TestOpen_RejectsBadDatabaseURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, url, want string
	}{
		{"empty", "", "DATABASE_URL"},
		{"unknown scheme without leaking the password", "mysql://root:s3cret@db/shop", "DATABASE_URL"},
		{"in-memory sqlite", "sqlite::memory:", "in-memory"},
		{"sqlite without a path", "sqlite:", "path"},
		{"sqlite with query parameters", "sqlite:x.db?_pragma=foo", "query parameters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := store.Open(t.Context(), tt.url)
			if err == nil {
				s.Close()
				t.Fatalf("Open(%q) succeeded, want an error", tt.url)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error %q leaks the password", err)
			}
		})
	}
}

func TestOpen_SQLiteCreatesParentDirectory(t *testing.T) {
	t.Parallel()
	for _, prefix := range []string{"sqlite:", "file:"} {
		t.Run(prefix, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "nested", "dir", "shop.db")
			s, err := store.Open(t.Context(), prefix+path)
			noErr(t, err)
			defer s.Close()
			if s.Dialect() != "sqlite" {
				t.Errorf("Dialect() = %q, want sqlite", s.Dialect())
			}
			noErr(t, s.Ping(t.Context()))
			v, err := s.SchemaVersion(t.Context())
			noErr(t, err)
			if v != 0 {
				t.Errorf("SchemaVersion of a new file = %d, want 0", v)
			}
			noErr(t, s.Migrate(t.Context()))
			if _, err := os.Stat(path); err != nil {
				t.Errorf("database file not created: %v", err)
			}
		})
	}
}

func TestOpen_SQLiteDataSurvivesReopen(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "shop.db")
	s, err := store.Open(t.Context(), "sqlite:"+path)
	noErr(t, err)
	noErr(t, s.Migrate(t.Context()))
	p := mustProduct(t, s, 100, 3)
	noErr(t, s.Close())

	s, err = store.Open(t.Context(), "sqlite:"+path)
	noErr(t, err)
	defer s.Close()
	noErr(t, s.Migrate(t.Context()))
	got, err := s.GetProduct(t.Context(), p.ID)
	noErr(t, err)
	if got.Name != p.Name || got.Stock != 3 {
		t.Errorf("after reopen got %+v, want %+v", got, p)
	}
}

func TestStore_DialectAndPing(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		want := t.Name()[strings.LastIndex(t.Name(), "/")+1:]
		if s.Dialect() != want {
			t.Errorf("Dialect() = %q, want %q", s.Dialect(), want)
		}
		noErr(t, s.Ping(t.Context()))
		if s.DB() == nil {
			t.Error("DB() is nil")
		}
	})
}

func TestMigrate_IsIdempotent(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		v1, err := s.SchemaVersion(ctx)
		noErr(t, err)
		if v1 != store.LatestSchemaVersion() || v1 < 1 {
			t.Fatalf("SchemaVersion = %d, want %d", v1, store.LatestSchemaVersion())
		}
		noErr(t, s.Migrate(ctx))
		noErr(t, s.Migrate(ctx))
		v2, err := s.SchemaVersion(ctx)
		noErr(t, err)
		if v2 != v1 {
			t.Errorf("SchemaVersion after re-running Migrate = %d, want %d", v2, v1)
		}
		applied, err := s.AppliedMigrations(ctx)
		noErr(t, err)
		if len(applied) != store.LatestSchemaVersion() {
			t.Fatalf("schema_migrations has %d rows, want %d: %+v", len(applied), store.LatestSchemaVersion(), applied)
		}
		if applied[0].Version != 1 || applied[0].Name != "init" || applied[0].AppliedAt.IsZero() {
			t.Errorf("first applied migration = %+v", applied[0])
		}
	})
}

// Two processes (api and worker) migrating a fresh database at the same time.
func TestMigrate_ConcurrentOnFreshDatabase(t *testing.T) {
	t.Parallel()
	run := func(t *testing.T, dsn string) {
		const n = 4
		stores := make([]*store.Store, n)
		for i := range stores {
			s, err := store.Open(t.Context(), dsn)
			noErr(t, err)
			t.Cleanup(func() { s.Close() })
			stores[i] = s
		}
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i, s := range stores {
			wg.Go(func() { errs[i] = s.Migrate(t.Context()) })
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("Migrate #%d: %v", i, err)
			}
		}
		applied, err := stores[0].AppliedMigrations(t.Context())
		noErr(t, err)
		if len(applied) != store.LatestSchemaVersion() {
			t.Errorf("schema_migrations has %d rows, want %d", len(applied), store.LatestSchemaVersion())
		}
	}
	t.Run("postgres", func(t *testing.T) {
		base := storetest.PostgresURL(t)
		admin, err := sql.Open("pgx", base)
		noErr(t, err)
		t.Cleanup(func() { admin.Close() })
		schema := fmt.Sprintf("t_concurrent_migrate_%d_%d", os.Getpid(), seq.Add(1))
		_, err = admin.ExecContext(t.Context(), "CREATE SCHEMA "+schema)
		noErr(t, err)
		t.Cleanup(func() {
			if _, err := admin.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE"); err != nil {
				t.Errorf("drop schema: %v", err)
			}
		})
		sep := "?"
		if strings.Contains(base, "?") {
			sep = "&"
		}
		run(t, base+sep+"search_path="+schema)
	})
	t.Run("sqlite", func(t *testing.T) {
		run(t, "sqlite:"+filepath.Join(t.TempDir(), "shop.db"))
	})
}

func TestSchema_CheckConstraintsRejectBadRows(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		p := mustProduct(t, s, 100, 1)
		tests := []struct{ name, sql string }{
			{"negative stock", "UPDATE products SET stock = -1 WHERE id = ?"},
			{"negative price", "UPDATE products SET price_fen = -1 WHERE id = ?"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if err := s.DB().Exec(tt.sql, p.ID).Error; err == nil {
					t.Fatal("the database accepted the row")
				}
			})
		}
		if got := stockOf(t, s, p.ID); got != 1 {
			t.Errorf("stock = %d, want 1", got)
		}
	})
}

func TestUsers_UpsertByOpenIDReturnsTheSameUser(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		a1, err := s.UpsertUserByOpenID(ctx, "o-alice")
		noErr(t, err)
		a2, err := s.UpsertUserByOpenID(ctx, "o-alice")
		noErr(t, err)
		b, err := s.UpsertUserByOpenID(ctx, "o-bob")
		noErr(t, err)
		if a1.ID == 0 || a1.ID != a2.ID || a1.OpenID != "o-alice" {
			t.Errorf("upsert twice: %+v then %+v", a1, a2)
		}
		if !a1.CreatedAt.Equal(a2.CreatedAt) {
			t.Errorf("second upsert changed created_at: %v vs %v", a1.CreatedAt, a2.CreatedAt)
		}
		if b.ID == a1.ID {
			t.Errorf("different openids share id %d", b.ID)
		}
		got, err := s.GetUser(ctx, a1.ID)
		noErr(t, err)
		if got != a2 {
			t.Errorf("GetUser = %+v, want %+v", got, a2)
		}
		_, err = s.GetUser(ctx, 999999)
		wantErr(t, err, store.ErrNotFound)
		_, err = s.UpsertUserByOpenID(ctx, " ")
		wantErr(t, err, store.ErrInvalidArgument)
	})
}

func TestUsers_ConcurrentFirstLoginCreatesOneUser(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		const n = 8
		ids := make([]int64, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				u, err := s.UpsertUserByOpenID(t.Context(), "o-same")
				if err != nil {
					t.Errorf("UpsertUserByOpenID: %v", err)
				}
				ids[i] = u.ID
			})
		}
		wg.Wait()
		for _, id := range ids {
			if id == 0 || id != ids[0] {
				t.Fatalf("ids = %v, want all equal", ids)
			}
		}
	})
}

func TestErrors_MatchSentinels(t *testing.T) {
	t.Parallel()
	var err error = &store.OutOfStockError{ProductID: 7, Requested: 3, Available: 1}
	if !errors.Is(err, store.ErrOutOfStock) {
		t.Error("OutOfStockError does not match ErrOutOfStock")
	}
	if errors.Is(err, store.ErrStatusConflict) {
		t.Error("OutOfStockError matches ErrStatusConflict")
	}
	if !strings.Contains(err.Error(), "product 7") {
		t.Errorf("message %q does not name the product", err)
	}
	err = &store.StatusConflictError{OrderNo: "A1", Current: status.Paid, Want: []status.Order{status.Pending}}
	if !errors.Is(err, store.ErrStatusConflict) || errors.Is(err, store.ErrOutOfStock) {
		t.Error("StatusConflictError matches the wrong sentinels")
	}
	if got := err.Error(); !strings.Contains(got, "PAID") || !strings.Contains(got, "PENDING") {
		t.Errorf("message %q does not name the statuses", got)
	}
}

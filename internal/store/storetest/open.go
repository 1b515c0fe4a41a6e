package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/store/postgres"
	"github.com/runproof/runproof/internal/store/sqlite"
)

// PostgresURLEnv names the variable holding the URL of the PostgreSQL
// database tests may use. Each test gets its own schema in it.
const PostgresURLEnv = "RUNPROOF_TEST_POSTGRES_URL"

// OpenSQLite returns an empty, migrated SQLite store in t.TempDir(), closed
// when the test ends.
func OpenSQLite(t testing.TB) runproof.Store { return openSQLite(t) }

// OpenPostgres returns an empty, migrated PostgreSQL store in a fresh
// schema, dropped when the test ends. It skips the test when
// RUNPROOF_TEST_POSTGRES_URL is not set.
func OpenPostgres(t testing.TB) runproof.Store { return openPostgres(t) }

// Each runs fn once per engine, as subtests "sqlite" and "postgres".
func Each(t *testing.T, fn func(t *testing.T, s runproof.Store)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, OpenSQLite(t)) })
	t.Run("postgres", func(t *testing.T) { fn(t, OpenPostgres(t)) })
}

// SQLiteHarness opens a store as OpenSQLite does, with raw SQL access.
func SQLiteHarness(t *testing.T) Harness {
	s := openSQLite(t)
	return Harness{Store: s, Exec: s.ExecRaw}
}

// PostgresHarness opens a store as OpenPostgres does, with raw SQL access.
func PostgresHarness(t *testing.T) Harness {
	s := openPostgres(t)
	return Harness{Store: s, Exec: s.ExecRaw}
}

func openSQLite(t testing.TB) *sqlite.Store {
	t.Helper()
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "runproof.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return s
}

// PostgresURL returns the URL of a fresh, migrated PostgreSQL schema,
// dropped when the test ends, for processes of their own to share. It
// skips the test when RUNPROOF_TEST_POSTGRES_URL is not set.
func PostgresURL(t *testing.T) string {
	_, u := openPostgresURL(t)
	return u
}

// OpenPostgresPair returns two stores over one fresh schema, each with its
// own connection pool: two servers sharing a database. It skips the test
// when RUNPROOF_TEST_POSTGRES_URL is not set.
func OpenPostgresPair(t *testing.T) (runproof.Store, runproof.Store) {
	a, url := openPostgresURL(t)
	b, err := postgres.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() }) // before the schema is dropped
	return a, b
}

func openPostgres(t testing.TB) *postgres.Store {
	t.Helper()
	s, _ := openPostgresURL(t)
	return s
}

// openPostgresURL opens a store in a fresh schema and returns it with the
// URL that selects that schema.
func openPostgresURL(t testing.TB) (*postgres.Store, string) {
	t.Helper()
	raw := os.Getenv(PostgresURLEnv)
	if raw == "" {
		t.Skip("RUNPROOF_TEST_POSTGRES_URL is not set: SKIPPING PostgreSQL tests " +
			"(CI always sets it; e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable)")
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Fatalf("%s must be a postgres:// URL, got %q", PostgresURLEnv, raw)
	}
	b := make([]byte, 8)
	rand.Read(b)
	schema := "rp_test_" + hex.EncodeToString(b)
	// pgx sends parameters it does not know to the server as settings, so
	// every connection of the pool starts with the schema first in its path.
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()

	ctx := context.Background()
	s, err := postgres.Open(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.ExecRaw(context.Background(), "DROP SCHEMA IF EXISTS "+schema+" CASCADE"); err != nil {
			t.Errorf("drop test schema: %v", err)
		}
		s.Close()
	})
	if err := s.ExecRaw(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return s, u.String()
}

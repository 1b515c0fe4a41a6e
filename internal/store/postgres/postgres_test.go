package postgres_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/runproof/runproof/internal/store/postgres"
	"github.com/runproof/runproof/internal/store/storetest"
)

// The tests need RUNPROOF_TEST_POSTGRES_URL; without it they are skipped
// with a message saying so.

func TestStore(t *testing.T) {
	storetest.Exercise(t, storetest.PostgresHarness)
}

func TestMigrate(t *testing.T) {
	ctx := context.Background()
	s := storetest.OpenPostgres(t).(*postgres.Store)
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
	// The migrations are numbered from 1 without a gap: the latest is
	// their number.
	files, err := filepath.Glob(filepath.Join("migrations", "*.sql"))
	if err != nil || len(files) == 0 {
		t.Fatalf("migration files: %v, %v", files, err)
	}
	want := int64(len(files))
	if v, err := s.SchemaVersion(ctx); err != nil || v != want || s.LatestSchema() != want {
		t.Errorf("SchemaVersion = %d, %v, latest %d; want %d", v, err, s.LatestSchema(), want)
	}
}

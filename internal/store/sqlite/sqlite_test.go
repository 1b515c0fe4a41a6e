package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/runproof/runproof/internal/store/sqlite"
	"github.com/runproof/runproof/internal/store/storetest"
)

func TestStore(t *testing.T) {
	storetest.Exercise(t, storetest.SQLiteHarness)
}

func TestMigrate(t *testing.T) {
	ctx := context.Background()
	s := storetest.OpenSQLite(t).(*sqlite.Store)
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

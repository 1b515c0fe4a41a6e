package sqlite_test

import (
	"context"
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
	if v, err := s.SchemaVersion(ctx); err != nil || v != 23 || s.LatestSchema() != 23 {
		t.Errorf("SchemaVersion = %d, %v, latest %d; want 23", v, err, s.LatestSchema())
	}
}

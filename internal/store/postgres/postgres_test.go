package postgres_test

import (
	"context"
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
	if v, err := s.SchemaVersion(ctx); err != nil || v != 23 || s.LatestSchema() != 23 {
		t.Errorf("SchemaVersion = %d, %v, latest %d; want 23", v, err, s.LatestSchema())
	}
}

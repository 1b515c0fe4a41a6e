package postgres_test

import (
	"testing"

	"github.com/runproof/runproof/internal/store/migratetest"
	"github.com/runproof/runproof/internal/store/postgres"
	"github.com/runproof/runproof/internal/store/storetest"
)

// The tests need RUNPROOF_TEST_POSTGRES_URL; without it they are skipped
// with a message saying so.

func TestStore(t *testing.T) {
	storetest.Exercise(t, storetest.PostgresHarness)
}

func TestMigrate(t *testing.T) {
	migratetest.Latest(t, storetest.OpenPostgres(t).(*postgres.Store), "migrations")
}

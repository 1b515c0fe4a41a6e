package sqlite_test

import (
	"testing"

	"github.com/runproof/runproof/internal/store/migratetest"
	"github.com/runproof/runproof/internal/store/sqlite"
	"github.com/runproof/runproof/internal/store/storetest"
)

func TestStore(t *testing.T) {
	storetest.Exercise(t, storetest.SQLiteHarness)
}

func TestMigrate(t *testing.T) {
	migratetest.Latest(t, storetest.OpenSQLite(t).(*sqlite.Store), "migrations")
}

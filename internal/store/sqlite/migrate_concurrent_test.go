package sqlite

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
)

// TestMigrateConcurrently: processes opening one new database at once
// all succeed: SQLite has no migration lock, and the migration another
// applied first is no failure.
func TestMigrateConcurrently(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "runproof.db")
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Go(func() {
			s, err := Open(ctx, path)
			if err == nil {
				defer s.Close()
				err = s.Migrate(ctx)
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("migration %d: %v", i, err)
		}
	}
}

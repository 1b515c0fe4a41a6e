package sqlite

import (
	"context"
	"path/filepath"
	"slices"
	"sync"
	"testing"
)

// TestMigrateConcurrently: processes opening one new database at once all
// succeed, each migration is applied once, and the schema is that of a
// database migrated alone.
func TestMigrateConcurrently(t *testing.T) {
	ctx := context.Background()
	schema := func(s *Store) []string {
		t.Helper()
		rows, err := s.db.QueryContext(ctx, `SELECT type || ' ' || name || ': ' || coalesce(sql, '') FROM sqlite_master ORDER BY type, name`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				t.Fatal(err)
			}
			out = append(out, line)
		}
		return out
	}
	want := schema(openMigrated(t))

	for range 5 {
		path := filepath.Join(t.TempDir(), "runproof.db")
		var wg sync.WaitGroup
		errs := make([]error, 4)
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
		s, err := Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		var twice int
		if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT version_id FROM goose_db_version
			GROUP BY version_id HAVING count(*) > 1)`).Scan(&twice); err != nil || twice != 0 {
			t.Errorf("%d migrations applied more than once (%v)", twice, err)
		}
		if got := schema(s); !slices.Equal(got, want) {
			t.Errorf("the schema migrated at once differs from one migrated alone:\n%v\nwant\n%v", got, want)
		}
		s.Close()
	}
}

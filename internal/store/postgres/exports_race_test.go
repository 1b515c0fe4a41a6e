package postgres

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/runproof/runproof/internal/runproof"
)

// TestSealedAfterFailedRace: a sealed event that waits for the export's
// lock while another process records the export failed is refused once
// that commits, whatever isolation the database's sessions default to.
func TestSealedAfterFailedRace(t *testing.T) {
	eachIsolation(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		if err := s.CreateExport(ctx, runproof.ExportRequest{TenantID: "t1", ID: "x1", Scope: runproof.ScopeLLMRun, RunID: "r1",
			BundleType: runproof.BundleEvidence, Format: runproof.FormatZIP, RequestedBy: "u", Origin: runproof.OriginHuman,
			SourceComponent: "api", CreatedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
		// The other process records the export failed, as
		// AppendExportEvent does, and holds its transaction open a
		// moment.
		tx, err := s.pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		if _, err := tx.Exec(ctx, `SELECT FROM exports WHERE tenant_id = 't1' AND id = 'x1' FOR NO KEY UPDATE`); err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO export_events (tenant_id, export_id, kind, at, checksum, size_bytes, bundle_id, artifact, reason)
			VALUES ('t1', 'x1', 'failed', now(), '', 0, '', '', 'interrupted')`); err != nil {
			t.Fatal(err)
		}
		sealed := make(chan error, 1)
		go func() {
			sealed <- s.AppendExportEvent(ctx, runproof.ExportEvent{TenantID: "t1", ExportID: "x1", Kind: runproof.ExportEventSealed,
				At: time.Now(), ManifestSHA256: "sha256:11", KeyID: "k", BundleID: "EVD-1"})
		}()
		time.Sleep(300 * time.Millisecond) // the sealed event waits for the lock (or comes after: refused the same)
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if err := <-sealed; runproof.ErrorCode(err) != runproof.ECONFLICT {
			rec, _ := s.GetExport(ctx, "t1", "x1")
			t.Errorf("sealed after failed: %v, want %s; record now %s, manifest %q", err, runproof.ECONFLICT, rec.Status, rec.ManifestSHA256)
		}
	})
}

// eachIsolation runs test on a new, migrated store under each isolation
// level the database's sessions may default to.
func eachIsolation(t *testing.T, test func(t *testing.T, s *Store)) {
	for _, iso := range []string{"read committed", "repeatable read", "serializable"} {
		t.Run(iso, func(t *testing.T) {
			t.Setenv("PGOPTIONS", "-c default_transaction_isolation="+strings.ReplaceAll(iso, " ", `\ `))
			s, _ := scratch(t)
			if err := s.Migrate(context.Background()); err != nil {
				t.Fatal(err)
			}
			test(t, s)
		})
	}
}

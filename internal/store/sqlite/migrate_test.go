package sqlite

import (
	"context"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pressly/goose/v3"
	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/store/migrate"
	"github.com/runproof/runproof/internal/store/migratetest"
)

// scratch opens a store over a new, empty database file and its
// migration provider.
func scratch(t *testing.T) (*Store, *goose.Provider) {
	t.Helper()
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "runproof.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	p, err := s.provider()
	if err != nil {
		t.Fatal(err)
	}
	return s, p
}

// TestMigrateSealed brings a database of schema 3 holding exports and a
// ledger entry to schema 4: rows, seq and append-only triggers are kept,
// and the new kinds and types are accepted. Back down, schema 3 refuses
// to lose them.
func TestMigrateSealed(t *testing.T) {
	ctx := context.Background()
	s, p := scratch(t)
	if _, err := p.UpTo(ctx, 3); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO exports VALUES ('t1', 'x1', 'llm_run', 'r1', '', 'evidence', 'zip', 'u', 'HUMAN', 'api', '', '', NULL, NULL, '2026-01-02T15:04:05.000000Z')`,
		`INSERT INTO exports VALUES ('t1', 'x2', 'llm_run', 'r1', '', 'evidence', 'zip', 'u', 'HUMAN', 'api', '', '', NULL, NULL, '2026-01-02T15:04:05.000000Z')`, // not ended
		`INSERT INTO export_events (tenant_id, export_id, kind, at, checksum, size_bytes, bundle_id, artifact, reason)
			VALUES ('t1', 'x1', 'completed', '2026-01-02T15:04:06.000000Z', 'sha256:00', 1, 'EVD-1', 'a', '')`,
		`INSERT INTO ledger_entries VALUES ('t1', 0, 'x1', X'7b7d', '2026-01-02T15:04:07.000000Z')`,
	} {
		if err := s.ExecRaw(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	e, err := s.LedgerEntryByRecord(ctx, "t1", "x1", "runproof.export.v1")
	if err != nil || e.Index != 0 || string(e.Data) != "{}" {
		t.Fatalf("entry after the migration: %+v, %v", e, err)
	}
	if err := s.AppendExportEvent(ctx, runproof.ExportEvent{TenantID: "t1", ExportID: "x1", Kind: runproof.ExportEventDelivered}); err != nil {
		t.Fatal(err)
	}
	var seqs []int64
	seqs, err = collect(ctx, s.db, func(r scanner) (int64, error) {
		var n int64
		return n, r.Scan(&n)
	}, `SELECT seq FROM export_events ORDER BY seq`)
	if err != nil || len(seqs) != 2 || seqs[0] != 1 || seqs[1] != 2 {
		t.Errorf("seq after the migration: %v, %v", seqs, err)
	}
	rec, err := s.GetExport(ctx, "t1", "x1")
	if err != nil || rec.Status != runproof.ExportCompleted || rec.Checksum != "sha256:00" || rec.DeliveredAt == nil {
		t.Errorf("export after the migration: %+v, %v", rec, err)
	}
	for _, q := range []string{"UPDATE export_events SET reason = 'x'", "DELETE FROM ledger_entries"} {
		if err := s.ExecRaw(ctx, q); err == nil {
			t.Errorf("%s: succeeded after the migration, want refused", q)
		}
	}

	// Down and up again while nothing new is stored; then a sealed event
	// keeps the schema at 4.
	if _, err := p.DownTo(ctx, 3); err != nil {
		t.Fatalf("down to 3: %v", err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendExportEvent(ctx, runproof.ExportEvent{TenantID: "t1", ExportID: "x2", Kind: runproof.ExportEventSealed,
		ManifestSHA256: "sha256:11", KeyID: "k", BundleID: "EVD-1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.DownTo(ctx, 3); err == nil {
		t.Error("down to 3 with a sealed event: succeeded")
	}
	if v, err := s.SchemaVersion(ctx); err != nil || v != 4 {
		t.Errorf("after the refused down: schema %d, %v", v, err)
	}
}

// TestRefuseNewerSchema: a database migrated by a newer runproof is refused,
// not silently used.
func TestRefuseNewerSchema(t *testing.T) {
	ctx := context.Background()
	s := openMigrated(t)
	if err := s.ExecRaw(ctx, `INSERT INTO goose_db_version (version_id, is_applied) VALUES (99, 1)`); err != nil {
		t.Fatal(err)
	}
	err := s.Migrate(ctx)
	if err == nil || !strings.Contains(err.Error(), "version 99, newer than this runproof knows") {
		t.Fatalf("migrate over a newer schema: %v", err)
	}
}

// TestMigrateKeyRevocation: schema 7 can be rolled back while no key is
// revoked, and refuses to once one is: the key would be valid again.
func TestMigrateKeyRevocation(t *testing.T) {
	ctx := context.Background()
	s, p := scratch(t)
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	k := runproof.APIKey{ID: "key-1", TenantID: "t1", Role: runproof.RoleAdmin, Name: "a", Hash: "h1", CreatedAt: time.Now()}
	if err := s.CreateAPIKey(ctx, k); err != nil {
		t.Fatal(err)
	}
	if _, err := p.DownTo(ctx, 6); err != nil {
		t.Fatalf("down to 6 without a revoked key: %v", err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RevokeAPIKey(ctx, "t1", "key-1", time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := p.DownTo(ctx, 6); err == nil {
		t.Error("down to 6 with a revoked key: succeeded")
	}
	if err := s.Migrate(ctx); err != nil { // back over the later migrations that did roll back
		t.Fatal(err)
	}
	if got, err := s.APIKeyByHash(ctx, "h1"); err != nil || got.RevokedAt == nil {
		t.Errorf("the key after the refused down: %+v, %v", got, err)
	}
}

// TestMigrateReviews: schema 8 can be rolled back while no export is
// reviewed, and refuses to once one is: the review would be lost.
func TestMigrateReviews(t *testing.T) {
	ctx := context.Background()
	s, p := scratch(t)
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := p.DownTo(ctx, 7); err != nil {
		t.Fatalf("down to 7 without a review: %v", err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	x := runproof.ExportRequest{ID: "x1", TenantID: "t1", Scope: runproof.ScopeLLMRun, RunID: "r1", BundleType: runproof.BundleSOC2,
		Format: runproof.FormatPDF, RequestedBy: "u", Origin: runproof.OriginHuman, SourceComponent: "api", CreatedAt: time.Now()}
	if err := s.CreateExport(ctx, x); err != nil {
		t.Fatal(err)
	}
	r := runproof.Review{TenantID: "t1", ID: "rv-1", ExportID: "x1", RunID: "r1", BundleID: "SOC2-1", Status: "APPROVED",
		ReviewedBy: "Ada", KeyID: "key-1", RunSteps: 3, ReviewedAt: time.Now()}
	if err := s.AddReview(ctx, r); err != nil {
		t.Fatal(err)
	}
	if _, err := p.DownTo(ctx, 7); err == nil {
		t.Error("down to 7 with a review: succeeded")
	}
	if err := s.Migrate(ctx); err != nil { // back over the later migrations that did roll back
		t.Fatal(err)
	}
	if got, err := s.RunReviews(ctx, "t1", "r1"); err != nil || len(got) != 1 {
		t.Errorf("the reviews after the refused down: %+v, %v", got, err)
	}
}

// schema is scratch as migratetest checks migrations with it.
func schema(t *testing.T) migratetest.Schema {
	s, p := scratch(t)
	return migratetest.Schema{Store: s, Exec: s.ExecRaw,
		UpTo: func(ctx context.Context, v int64) error { _, err := p.UpTo(ctx, v); return err },
		Blob: func(b []byte) string { return fmt.Sprintf("X'%x'", b) }}
}

func TestMigrateAuditUnsealed(t *testing.T) { migratetest.MigrateAuditUnsealed(t, schema(t)) }

func TestMigrateEndedAs(t *testing.T) { migratetest.MigrateEndedAs(t, schema(t)) }

func TestMigrateRunningTotals(t *testing.T) { migratetest.MigrateRunningTotals(t, schema(t)) }

func TestMigrateStepsUnsealed(t *testing.T) { migratetest.MigrateStepsUnsealed(t, schema(t)) }

// TestMigratePolicyRetirement: schema 24 can be rolled back while no
// policy is retired, and refuses to once one is: the retiring version
// would be an active one.
func TestMigratePolicyRetirement(t *testing.T) {
	ctx := context.Background()
	s, p := scratch(t)
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	pol, err := s.CreatePolicies(ctx, nil, runproof.Policy{ID: "p1", TenantID: "t1", Name: "cap", Type: runproof.PolicyStepLimit,
		Threshold: "3", Action: runproof.ActionStop, CreatedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.DownTo(ctx, 23); err != nil {
		t.Fatalf("down to 23 without a retired policy: %v", err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RetirePolicy(ctx, "t1", pol[0].ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := p.DownTo(ctx, 23); err == nil {
		t.Error("down to 23 with a retired policy: succeeded")
	}
	if err := s.Migrate(ctx); err != nil { // back over the later migrations that did roll back
		t.Fatal(err)
	}
	if active, err := s.ActivePolicies(ctx, "t1"); err != nil || len(active) != 0 {
		t.Errorf("active policies after the refused down: %+v, %v", active, err)
	}
}

// TestDamagedTriggers: the triggers a migrated database has are those the
// migrations are read to create, as they create them, and one dropped, or
// created again otherwise under the same name, is named.
func TestDamagedTriggers(t *testing.T) {
	ctx := context.Background()
	s, _ := scratch(t)
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	fsys, _ := fs.Sub(migrations, "migrations")
	var want []string
	for _, tr := range migrate.ReadGuards(fsys).Triggers {
		want = append(want, tr.Table+"."+tr.Name)
	}
	have, err := s.triggers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := slices.Sorted(maps.Keys(have)); !slices.Equal(got, want) {
		t.Fatalf("triggers of a migrated database:\n%v\nread from the migrations:\n%v", got, want)
	}
	if damaged, err := s.DamagedTriggers(ctx); err != nil || len(damaged) != 0 {
		t.Fatalf("damaged in a migrated database: %v, %v", damaged, err)
	}
	for _, q := range []string{"DROP TRIGGER ledger_entries_no_update",
		"DROP TRIGGER steps_no_update", "CREATE TRIGGER steps_no_update BEFORE UPDATE ON steps BEGIN SELECT 1; END",
		// What follows a "--" within a string counts too.
		"DROP TRIGGER runs_no_delete", "CREATE TRIGGER runs_no_delete BEFORE DELETE ON runs\n" +
			"BEGIN SELECT RAISE(ABORT, 'runs --') WHERE 0; SELECT ('\nare never deleted'); END"} {
		if err := s.ExecRaw(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	damaged, err := s.DamagedTriggers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, tr := range damaged {
		got = append(got, tr.Table+"."+tr.Name+" "+tr.Migration)
	}
	if w := []string{"ledger_entries.ledger_entries_no_update 004_sealed.sql", "runs.runs_no_delete 016_record_guards.sql",
		"steps.steps_no_update 015_step_running_totals.sql"}; !slices.Equal(got, w) {
		t.Errorf("damaged: %v, want %v", got, w)
	}
}

// TestMigrateRefusesAnotherProgramsDatabase: a database without runproof's
// schema that holds tables is another program's: refused, left as it was.
func TestMigrateRefusesAnotherProgramsDatabase(t *testing.T) {
	ctx := context.Background()
	s, _ := scratch(t)
	if err := s.ExecRaw(ctx, "CREATE TABLE foo (a INTEGER)"); err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctx); err == nil || !strings.Contains(err.Error(), "tables that are not runproof's (foo)") {
		t.Fatalf("migrate: %v", err)
	}
	if v, err := s.SchemaVersion(ctx); err != nil || v != 0 {
		t.Errorf("schema after the refusal: %d, %v", v, err)
	}
	// Nothing was added to it: goose's table is not there.
	if err := s.ExecRaw(ctx, "CREATE TABLE goose_db_version (a INTEGER)"); err != nil {
		t.Errorf("goose's table was made in the refused database: %v", err)
	}
}

// TestMigrateRefusesAnotherGooseProgram: another program's database that
// goose keeps too (its version table at 1, its own tables) is refused,
// untouched; runproof's own, taken down to no schema and up again, is not.
func TestMigrateRefusesAnotherGooseProgram(t *testing.T) {
	ctx := context.Background()
	s, _ := scratch(t)
	for _, q := range []string{
		`CREATE TABLE goose_db_version (id INTEGER PRIMARY KEY AUTOINCREMENT, version_id INTEGER NOT NULL, is_applied INTEGER NOT NULL, tstamp TIMESTAMP DEFAULT (datetime('now')))`,
		`INSERT INTO goose_db_version (version_id, is_applied) VALUES (0, 1), (1, 1)`,
		`CREATE TABLE users (id INTEGER)`,
	} {
		if err := s.ExecRaw(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Migrate(ctx); err == nil || !strings.Contains(err.Error(), "not runproof's (users)") {
		t.Fatalf("migrate: %v", err)
	}
	tables, err := collect(ctx, s.db, scanString, `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\_%' ESCAPE '\'`)
	if slices.Sort(tables); err != nil || !slices.Equal(tables, []string{"goose_db_version", "users"}) {
		t.Errorf("tables after the refusal: %v, %v", tables, err)
	}

	own, p := scratch(t)
	if err := own.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := p.DownTo(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if err := own.Migrate(ctx); err != nil {
		t.Errorf("migrate after down to no schema: %v", err)
	}
}

// TestGuardsNameEveryColumn: see migratetest.GuardNamesEveryColumn.
func TestGuardsNameEveryColumn(t *testing.T) {
	ctx := context.Background()
	s, _ := scratch(t)
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	have, err := s.triggers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range migratetest.Guards {
		columns, err := collect(ctx, s.db, scanString, `SELECT name FROM pragma_table_info(?)`, g.Table)
		if err != nil {
			t.Fatal(err)
		}
		migratetest.GuardNamesEveryColumn(t, g.Table, columns, have[g.Table+"."+g.Guard], g.Free)
	}
}

// TestOpenDirectory: a directory where the database file should be is
// said to be one, not taken for a matter of permissions.
func TestOpenDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "runproof.db")
	if err := os.Mkdir(path, 0o750); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(context.Background(), path); err == nil || !strings.Contains(err.Error(), "it is a directory, not a database file") {
		t.Errorf("open a directory: %v", err)
	}
}

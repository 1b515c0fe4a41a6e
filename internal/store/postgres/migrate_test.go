package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io/fs"
	"maps"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pressly/goose/v3"
	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/store/migrate"
	"github.com/runproof/runproof/internal/store/migratetest"
)

// testURL is the PostgreSQL URL the tests are given, or skips the test
// loudly.
func testURL(t *testing.T) *url.URL {
	t.Helper()
	raw := os.Getenv("RUNPROOF_TEST_POSTGRES_URL")
	if raw == "" {
		t.Skip("RUNPROOF_TEST_POSTGRES_URL is not set: SKIPPING PostgreSQL tests")
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// scratch opens a store over a new, empty schema, dropped when the test
// ends, and its migration provider.
func scratch(t *testing.T) (*Store, *goose.Provider) {
	t.Helper()
	u := testURL(t)
	ctx := context.Background()
	b := make([]byte, 8)
	rand.Read(b)
	schema := "rp_test_" + hex.EncodeToString(b)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	s, err := Open(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.ExecRaw(context.Background(), "DROP SCHEMA IF EXISTS "+schema+" CASCADE")
		s.Close()
	})
	if err := s.ExecRaw(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	p, done, err := s.provider(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { done() })
	return s, p
}

// TestMigrateSealed brings a schema at version 3 holding exports and a
// ledger entry to version 4: rows and append-only triggers are kept, and
// the new kinds and types are accepted. Back down, version 3 refuses to
// lose them.
func TestMigrateSealed(t *testing.T) {
	ctx := context.Background()
	s, p := scratch(t)
	if _, err := p.UpTo(ctx, 3); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO exports VALUES ('t1', 'x1', 'llm_run', 'r1', '', 'evidence', 'zip', 'u', 'HUMAN', 'api', '', '', NULL, NULL, '2026-01-02T15:04:05Z')`,
		`INSERT INTO exports VALUES ('t1', 'x2', 'llm_run', 'r1', '', 'evidence', 'zip', 'u', 'HUMAN', 'api', '', '', NULL, NULL, '2026-01-02T15:04:05Z')`, // not ended
		`INSERT INTO export_events (tenant_id, export_id, kind, at, checksum, size_bytes, bundle_id, artifact, reason)
			VALUES ('t1', 'x1', 'completed', '2026-01-02T15:04:06Z', 'sha256:00', 1, 'EVD-1', 'a', '')`,
		`INSERT INTO ledger_entries VALUES ('t1', 0, 'x1', '\x7b7d'::bytea, '2026-01-02T15:04:07Z')`,
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
	rec, err := s.GetExport(ctx, "t1", "x1")
	if err != nil || rec.Status != runproof.ExportCompleted || rec.Checksum != "sha256:00" {
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

// TestRefuseNewerSchema: a database migrated by a newer runproof is refused,
// not silently used.
func TestRefuseNewerSchema(t *testing.T) {
	ctx := context.Background()
	s, _ := scratch(t)
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.ExecRaw(ctx, `INSERT INTO goose_db_version (version_id, is_applied) VALUES (99, true)`); err != nil {
		t.Fatal(err)
	}
	err := s.Migrate(ctx)
	if err == nil || !strings.Contains(err.Error(), "version 99, newer than this runproof knows") {
		t.Fatalf("migrate over a newer schema: %v", err)
	}
}

// schema is scratch as migratetest checks migrations with it.
func schema(t *testing.T) migratetest.Schema {
	s, p := scratch(t)
	return migratetest.Schema{Store: s, Exec: s.ExecRaw,
		UpTo: func(ctx context.Context, v int64) error { _, err := p.UpTo(ctx, v); return err },
		Blob: func(b []byte) string { return fmt.Sprintf(`'\\x%x'::bytea`, b) }, FillsRunningTotals: true}
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

// TestDamagedTriggers: the triggers a migrated schema has are those the
// migrations are read to create, as they create them, and one dropped,
// disabled, created again on other events or with another function, or
// whose function's body was replaced, is named.
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
		t.Fatalf("triggers of a migrated schema:\n%v\nread from the migrations:\n%v", got, want)
	}
	if damaged, err := s.DamagedTriggers(ctx); err != nil || len(damaged) != 0 {
		t.Fatalf("damaged in a migrated schema: %v, %v", damaged, err)
	}
	for _, q := range []string{"DROP TRIGGER ledger_entries_append_only ON ledger_entries", "ALTER TABLE runs DISABLE TRIGGER runs_no_delete",
		"ALTER TABLE steps ENABLE REPLICA TRIGGER steps_append_only",
		// On another event: the name stays, the guard does not.
		"DROP TRIGGER exports_append_only ON exports",
		"CREATE TRIGGER exports_append_only BEFORE INSERT ON exports FOR EACH ROW EXECUTE FUNCTION refuse_change()",
		// Executing a function that lets every change through.
		`CREATE FUNCTION let_through() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$`,
		"DROP TRIGGER incidents_no_delete ON incidents",
		"CREATE TRIGGER incidents_no_delete BEFORE DELETE ON incidents FOR EACH ROW EXECUTE FUNCTION let_through()",
		// The function a trigger executes, replaced.
		`CREATE OR REPLACE FUNCTION runs_change_only_as_run() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$`,
		// Under a condition that never holds, on a column alone, with an argument.
		"DROP TRIGGER policies_append_only ON policies",
		"CREATE TRIGGER policies_append_only BEFORE UPDATE OR DELETE ON policies FOR EACH ROW WHEN (false) EXECUTE FUNCTION refuse_change()",
		"DROP TRIGGER api_keys_no_delete ON api_keys",
		"CREATE TRIGGER api_keys_no_delete BEFORE DELETE OR UPDATE OF name ON api_keys FOR EACH ROW EXECUTE FUNCTION refuse_change()",
		"DROP TRIGGER audit_events_append_only ON audit_events",
		"CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events FOR EACH ROW EXECUTE FUNCTION refuse_change('x')",
	} {
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
	w := []string{"api_keys.api_keys_no_delete 016_record_guards.sql", "audit_events.audit_events_append_only 001_init.sql",
		"exports.exports_append_only 002_exports.sql", "incidents.incidents_no_delete 016_record_guards.sql",
		"ledger_entries.ledger_entries_append_only 003_ledger.sql", "policies.policies_append_only 001_init.sql",
		"runs.runs_change_only_as_run 016_record_guards.sql", "runs.runs_no_delete 016_record_guards.sql",
		"steps.steps_append_only 001_init.sql"}
	if !slices.Equal(got, w) {
		t.Errorf("damaged:\n%v\nwant\n%v", got, w)
	}
}

// TestWarnings: autovacuum off is said, on is not (the server's setting,
// which a session cannot change, decides which of the two is checked).
func TestWarnings(t *testing.T) {
	ctx := context.Background()
	s, _ := scratch(t)
	var on bool
	if err := s.pool.QueryRow(ctx, `SELECT current_setting('autovacuum')::bool AND current_setting('track_counts')::bool`).Scan(&on); err != nil {
		t.Fatal(err)
	}
	w, err := s.Warnings(ctx)
	switch {
	case err != nil:
		t.Fatal(err)
	case on && len(w) != 0:
		t.Errorf("autovacuum on: %q", w)
	case !on && (len(w) != 1 || !strings.HasPrefix(w[0], "autovacuum is off")):
		t.Errorf("autovacuum off: %q", w)
	}
	t.Logf("autovacuum on: %v", on)
}

// TestMigrateRefusesAnotherProgramsSchema: a schema without runproof's
// tables that holds others is another program's: refused, left as it was.
func TestMigrateRefusesAnotherProgramsSchema(t *testing.T) {
	ctx := context.Background()
	s, _ := scratch(t)
	if err := s.ExecRaw(ctx, "CREATE TABLE foo (a integer)"); err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctx); err == nil || !strings.Contains(err.Error(), "tables that are not runproof's (foo)") {
		t.Fatalf("migrate: %v", err)
	}
	if v, err := s.SchemaVersion(ctx); err != nil || v != 0 {
		t.Errorf("schema after the refusal: %d, %v", v, err)
	}
	// Nothing was added to it: goose's table is not there.
	if err := s.ExecRaw(ctx, "CREATE TABLE goose_db_version (a integer)"); err != nil {
		t.Errorf("goose's table was made in the refused database: %v", err)
	}
}

// TestMissingSchema: a search_path naming no schema that exists is said
// as such, not as a NULL that cannot be scanned.
func TestMissingSchema(t *testing.T) {
	u := testURL(t)
	q := u.Query()
	q.Set("search_path", "rp_test_no_such_schema")
	u.RawQuery = q.Encode()
	s, err := Open(context.Background(), u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, _, err := s.provider(context.Background()); err == nil ||
		!strings.Contains(err.Error(), "no schema of the search_path (rp_test_no_such_schema) exists") {
		t.Errorf("migrating into a schema that does not exist: %v", err)
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
		rows, err := s.pool.Query(ctx, `SELECT column_name FROM information_schema.columns
			WHERE table_schema = current_schema() AND table_name = $1`, g.Table)
		if err != nil {
			t.Fatal(err)
		}
		columns, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		var guard string
		for _, d := range have {
			if d.function == g.Guard {
				guard = d.body
			}
		}
		migratetest.GuardNamesEveryColumn(t, g.Table, columns, guard, g.Free)
	}
}

// TestOpenMissingDatabase: a database that does not exist is said to be
// missing, with how to make it.
func TestOpenMissingDatabase(t *testing.T) {
	u := testURL(t)
	u.Path = "/runproof_no_such_database"
	if _, err := Open(context.Background(), u.String()); err == nil || !strings.Contains(err.Error(), "createdb -O ROLE runproof_no_such_database") {
		t.Errorf("open a database that does not exist: %v", err)
	}
}

// Package migratetest checks, on both engines, what a migration makes of
// the rows it finds: each engine's tests give it a store at no schema yet.
package migratetest

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/runproof/runproof/internal/runproof"
)

// Schema is a new store at no schema yet, with raw SQL access.
type Schema struct {
	Store interface {
		runproof.Store
		Migrate(ctx context.Context) error
	}
	Exec func(ctx context.Context, query string) error
	UpTo func(ctx context.Context, version int64) error // applies the migrations up to version
	Blob func(b []byte) string                          // a literal of bytes in the engine's SQL
	// FillsRunningTotals: the engine works out the running totals of a
	// step inserted without them (PostgreSQL) rather than refuse it when
	// they are not zero (SQLite).
	FillsRunningTotals bool
}

// runRow inserts a run of schema 14 or later (tenant, id, then its steps,
// input and output tokens, microcents and microseconds), running, under
// the policy snapshot "snap".
const runRow = `INSERT INTO runs (tenant_id, id, agent_id, goal, trace_id, status, snapshot_id, started_at, termination_reason,
	incident_id, steps, input_tokens, output_tokens, cost_microcents, duration_micros, created_at)
	VALUES ('%s', '%s', 'bot', '', '', 'running', 'snap', '2026-01-02T15:04:05.000000Z', '', '', %d, %d, %d, %d, %d,
	'2026-01-02T15:04:05.000000Z')`

func (s Schema) exec(t *testing.T, queries ...string) {
	t.Helper()
	for _, q := range queries {
		if err := s.Exec(context.Background(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// MigrateAuditUnsealed brings a database of schema 5, whose sealer put
// audit events into the ledger by time, to the latest: the events already
// in the ledger do not wait for an entry again, the others do.
func MigrateAuditUnsealed(t *testing.T, s Schema) {
	ctx := context.Background()
	if err := s.UpTo(ctx, 5); err != nil {
		t.Fatal(err)
	}
	const event = `INSERT INTO audit_events (tenant_id, id, occurred_at, actor, actor_type, category, action, resource,
		decision, status, correlation_id, source_component, detail) VALUES ('t1', '%s', '%s', 'k', 'HUMAN', 'access',
		'GET /x', '/x', 'allow', 200, 'c', 'api', '')`
	s.exec(t,
		fmt.Sprintf(event, "a-sealed", "2026-01-02T15:04:05.000000Z"),
		fmt.Sprintf(event, "a-waiting", "2026-01-02T15:04:06.000000Z"),
		`INSERT INTO ledger_entries (tenant_id, idx, export_id, entry_type, data, created_at)
			VALUES ('t1', 0, 'a-sealed', 'runproof.audit.v1', `+s.Blob([]byte("{}"))+`, '2026-01-02T15:04:07.000000Z')`)
	if err := s.Store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	waiting, err := s.Store.AuditEventsToSeal(ctx, "t1", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(waiting) != 1 || waiting[0].ID != "a-waiting" {
		t.Errorf("events waiting after the migration: %+v, want a-waiting alone", waiting)
	}
}

// MigrateEndedAs brings a database of schema 13 to the latest: the runs
// ended before schema 13 ended as their status says, but a stopped run,
// whose agent's word was not kept.
func MigrateEndedAs(t *testing.T, s Schema) {
	ctx := context.Background()
	if err := s.UpTo(ctx, 13); err != nil {
		t.Fatal(err)
	}
	const run = `INSERT INTO runs (tenant_id, id, agent_id, goal, trace_id, status, snapshot_id, started_at, stopped_at,
		completed_at, termination_reason, incident_id, steps, input_tokens, output_tokens, cost_microcents, duration_micros,
		created_at) VALUES ('t1', '%s', 'bot', '', '', '%s', 'snap', '2026-01-02T15:04:05.000000Z', %s, %s, '', '', 0, 0, 0, 0, 0,
		'2026-01-02T15:04:05.000000Z')`
	const end = `'2026-01-02T16:00:00.000000Z'`
	s.exec(t,
		`INSERT INTO policy_snapshots (tenant_id, id, policies, created_at) VALUES ('t1', 'snap', '[]', '2026-01-02T15:04:05.000000Z')`,
		fmt.Sprintf(run, "failed", "failed", "NULL", end),
		fmt.Sprintf(run, "stopped", "stopped", end, end),
		fmt.Sprintf(run, "running", "running", "NULL", "NULL"))
	if err := s.Store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]runproof.RunStatus{"failed": runproof.RunFailed, "stopped": "", "running": ""} {
		if r, err := s.Store.GetRun(ctx, "t1", id); err != nil || r.EndedAs != want {
			t.Errorf("run %s ended as %q (%v), want %q", id, r.EndedAs, err, want)
		}
	}
}

// MigrateRunningTotals brings a database of schema 14 to the latest: each
// step stored before keeps the totals of its run up to it, run by run and
// tenant by tenant, and steps stay append-only.
func MigrateRunningTotals(t *testing.T, s Schema) {
	ctx := context.Background()
	if err := s.UpTo(ctx, 14); err != nil {
		t.Fatal(err)
	}
	// Step i of a run of factor f: (i+1)·f input tokens, f output tokens,
	// 10·f microcents, (i+1)·100 µs.
	const step = `INSERT INTO steps (tenant_id, run_id, step_index, timestamp, step_type, input_tokens, output_tokens,
		cost_microcents, duration_micros, content_digest, content_hash, status, is_inflection, findings, recorded_at)
		VALUES ('%s', '%s', %d, '2026-01-02T15:04:06.000000Z', 'llm', %d, %d, %d, %d, '', 'h', 'ok', false, NULL,
		'2026-01-02T15:04:07.000000Z')`
	runs := []struct {
		tenant, id string
		steps, f   int64
	}{{"t1", "r1", 3, 1}, {"t1", "r2", 2, 7}, {"t2", "r1", 4, 100}}
	s.exec(t, `INSERT INTO policy_snapshots (tenant_id, id, policies, created_at) VALUES ('t1', 'snap', '[]', '2026-01-02T15:04:05.000000Z')`,
		`INSERT INTO policy_snapshots (tenant_id, id, policies, created_at) VALUES ('t2', 'snap', '[]', '2026-01-02T15:04:05.000000Z')`)
	stepOf := func(r int, i int64) runproof.Step {
		f := runs[r].f
		return runproof.Step{Index: i, InputTokens: (i + 1) * f, OutputTokens: f, CostMicrocents: 10 * f, DurationMicros: (i + 1) * 100}
	}
	totals := make([]runproof.Totals, len(runs)) // each run's
	for k, r := range runs {
		for i := range r.steps {
			totals[k] = totals[k].Add(stepOf(k, i))
		}
		tot := totals[k]
		s.exec(t, fmt.Sprintf(runRow, r.tenant, r.id, tot.Steps, tot.InputTokens, tot.OutputTokens, tot.CostMicrocents, tot.DurationMicros))
		for i := r.steps - 1; i >= 0; i-- { // stored in any order
			st := stepOf(k, i)
			s.exec(t, fmt.Sprintf(step, r.tenant, r.id, i, st.InputTokens, st.OutputTokens, st.CostMicrocents, st.DurationMicros))
		}
	}
	if err := s.Store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	check := func(k int, n int64) {
		t.Helper()
		var want runproof.Totals
		for i := range n {
			want = want.Add(stepOf(k, i))
			if got, err := s.Store.RunningTotals(ctx, runs[k].tenant, runs[k].id, i); err != nil || got != want {
				t.Errorf("%s's run %s, step %d: running totals %+v (%v), want %+v", runs[k].tenant, runs[k].id, i, got, err, want)
			}
		}
	}
	for k, r := range runs {
		check(k, r.steps)
	}
	if err := s.Exec(ctx, `UPDATE steps SET input_tokens = 0`); err == nil {
		t.Error("steps can be updated after the migration")
	}

	// A step appended now follows the steps filled in.
	next := stepOf(0, runs[0].steps)
	next.Timestamp, next.RecordedAt = time.Date(2026, 1, 2, 15, 4, 8, 0, time.UTC), time.Date(2026, 1, 2, 15, 4, 9, 0, time.UTC)
	next.StepType, next.Status, next.ContentHash = "llm", runproof.StepOK, "h"
	err := s.Store.UpdateRun(ctx, runproof.UpdateRunParams{TenantID: runs[0].tenant, RunID: runs[0].id, StepsFrom: 1},
		func(st runproof.RunState) (runproof.RunChange, error) {
			st.Run.Totals = st.Run.Totals.Add(next)
			return runproof.RunChange{Run: st.Run, Steps: []runproof.Step{next}}, nil
		})
	if err != nil {
		t.Fatal(err)
	}
	check(0, runs[0].steps+1)

	// A runproof of the schema before, still running, writes steps without
	// running totals: the engine works them out, or refuses a step whose
	// totals would be wrong, never storing zeros for what counted.
	insertOld := func(k int, st runproof.Step) error {
		return s.Exec(ctx, fmt.Sprintf(step, runs[k].tenant, runs[k].id, st.Index, st.InputTokens, st.OutputTokens, st.CostMicrocents, st.DurationMicros))
	}
	err = insertOld(1, stepOf(1, runs[1].steps))
	switch {
	case s.FillsRunningTotals && err != nil:
		t.Errorf("a step inserted without running totals: %v", err)
	case s.FillsRunningTotals:
		check(1, runs[1].steps+1)
	case err == nil:
		t.Error("a step inserted without running totals was stored with zeros")
	}
	// A step that counts nothing, after steps that counted.
	zero := runproof.Step{Index: runs[2].steps}
	err = insertOld(2, zero)
	switch {
	case s.FillsRunningTotals && err != nil:
		t.Errorf("a step of nothing inserted without running totals: %v", err)
	case s.FillsRunningTotals:
		if got, err := s.Store.RunningTotals(ctx, runs[2].tenant, runs[2].id, zero.Index); err != nil || got != totals[2].Add(zero) {
			t.Errorf("a step of nothing: running totals %+v (%v), want %+v", got, err, totals[2].Add(zero))
		}
	case err == nil:
		t.Error("a step of nothing inserted without running totals, after steps that counted, was stored with zeros")
	}
	// The first step of a run, counting nothing: its totals are zeros.
	s.exec(t, fmt.Sprintf(runRow, "t2", "r-zero", 1, 0, 0, 0, 0))
	runs = append(runs, struct {
		tenant, id string
		steps, f   int64
	}{"t2", "r-zero", 0, 0})
	if err := insertOld(len(runs)-1, runproof.Step{}); err != nil {
		t.Errorf("a run's first step, of nothing, inserted without running totals: %v", err)
	} else if got, err := s.Store.RunningTotals(ctx, "t2", "r-zero", 0); err != nil || got != (runproof.Totals{Steps: 1}) {
		t.Errorf("a run's first step, of nothing: running totals %+v (%v)", got, err)
	}
}

// MigrateStepsUnsealed brings a database of schema 21, whose sealer found
// the runs to seal by reading every run, to the latest: the runs with
// steps beyond those sealed wait for their seal, the others do not, and a
// run whose steps a runproof of the schema before still adds waits too.
func MigrateStepsUnsealed(t *testing.T, s Schema) {
	ctx := context.Background()
	if err := s.UpTo(ctx, 21); err != nil {
		t.Fatal(err)
	}
	const seal = `INSERT INTO run_seals (tenant_id, run_id, sealed_steps) VALUES ('%s', '%s', %d)`
	s.exec(t, `INSERT INTO policy_snapshots (tenant_id, id, policies, created_at) VALUES ('t1', 'snap', '[]', '2026-01-02T15:04:05.000000Z')`,
		`INSERT INTO policy_snapshots (tenant_id, id, policies, created_at) VALUES ('t2', 'snap', '[]', '2026-01-02T15:04:05.000000Z')`,
		fmt.Sprintf(runRow, "t1", "sealed", 3, 0, 0, 0, 0), fmt.Sprintf(seal, "t1", "sealed", 3),
		fmt.Sprintf(runRow, "t1", "behind", 5, 0, 0, 0, 0), fmt.Sprintf(seal, "t1", "behind", 2),
		fmt.Sprintf(runRow, "t1", "never", 1, 0, 0, 0, 0),
		fmt.Sprintf(runRow, "t1", "empty", 0, 0, 0, 0, 0),
		fmt.Sprintf(runRow, "t2", "sealed", 4, 0, 0, 0, 0), fmt.Sprintf(seal, "t2", "sealed", 4))
	if err := s.Store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	toSeal := func(tenant string, want ...runproof.RunSeal) {
		t.Helper()
		got, err := s.Store.StepsToSeal(ctx, tenant, "", 10)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("runs of %s to seal: %v, want %v", tenant, got, want)
		}
	}
	toSeal("t1", runproof.RunSeal{RunID: "behind", Sealed: 2, Stored: 5}, runproof.RunSeal{RunID: "never", Sealed: 0, Stored: 1})
	toSeal("t2")
	if got, err := s.Store.StepsTenantsToSeal(ctx); err != nil || fmt.Sprint(got) != "[t1]" {
		t.Errorf("tenants with steps to seal: %v, %v; want [t1]", got, err)
	}

	// A runproof of the schema before, still running, counts a step; a
	// run is stored with steps.
	s.exec(t, `UPDATE runs SET steps = 5 WHERE tenant_id = 't2' AND id = 'sealed'`,
		fmt.Sprintf(runRow, "t2", "stored", 2, 0, 0, 0, 0))
	toSeal("t2", runproof.RunSeal{RunID: "sealed", Sealed: 4, Stored: 5}, runproof.RunSeal{RunID: "stored", Sealed: 0, Stored: 2})
}

// Versioned is a store that says its schema version.
type Versioned interface {
	Migrate(ctx context.Context) error
	SchemaVersion(ctx context.Context) (int64, error)
	LatestSchema() int64
}

// Latest checks a migrated store: migrating it again changes nothing, and
// it is at the latest schema, the number of the migration files in dir
// (numbered from 1 without a gap).
func Latest(t *testing.T, s Versioned, dir string) {
	ctx := context.Background()
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.sql"))
	if err != nil || len(files) == 0 {
		t.Fatalf("migration files: %v, %v", files, err)
	}
	want := int64(len(files))
	if v, err := s.SchemaVersion(ctx); err != nil || v != want || s.LatestSchema() != want {
		t.Errorf("SchemaVersion = %d, %v, latest %d; want %d", v, err, s.LatestSchema(), want)
	}
}

// Guards are the triggers that let a row of a table change only as
// runproof changes it, and the columns that may change freely.
var Guards = []struct {
	Table, Guard string // the table, and its trigger (SQLite) or the trigger's function (PostgreSQL)
	Free         []string
}{
	{"runs", "runs_change_only_as_run", nil},
	{"incidents", "incidents_remediation_only", []string{"remediation_status", "remediation_notes"}},
	{"api_keys", "api_keys_revoke_only", nil},
}

// GuardNamesEveryColumn checks that guard, the SQL of the trigger (or of
// its function) that lets a row of table change only as runproof changes
// it, names every one of the table's columns but those free to change as
// NEW.column: a column added later and not guarded could be changed
// behind runproof's back without a trigger dropped, which ledger verify
// looks for.
func GuardNamesEveryColumn(t *testing.T, table string, columns []string, guard string, free []string) {
	t.Helper()
	if len(columns) < 5 || guard == "" {
		t.Fatalf("%s: columns %v, guard %q: not read", table, columns, guard)
	}
	for _, c := range columns {
		if !slices.Contains(free, c) && !regexp.MustCompile(`(?i)\bNEW\.`+regexp.QuoteMeta(c)+`\b`).MatchString(guard) {
			t.Errorf("the guard of %s does not name column %s: say how it may change (or that it is free to)", table, c)
		}
	}
}

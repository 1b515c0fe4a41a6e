package export_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/runproof/runproof/internal/evidence"
	"github.com/runproof/runproof/internal/export"
	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/service"
	"github.com/runproof/runproof/internal/store/storetest"
	"github.com/runproof/runproof/internal/verify"
)

// growingStore appends steps to a run the first time the run's steps are
// read, as its agent would while the run is being exported, and counts
// the pages read.
type growingStore struct {
	runproof.Store
	grow  func()
	once  sync.Once
	pages int
}

func (g *growingStore) ListSteps(ctx context.Context, p runproof.ListStepsParams) ([]runproof.Step, error) {
	g.once.Do(g.grow)
	g.pages++
	return g.Store.ListSteps(ctx, p)
}

// appendSteps records n more steps of run through the service.
func appendSteps(t *testing.T, svc *service.Service, runID string, from, n int) {
	t.Helper()
	start := time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
	var in []service.StepInput
	for i := from; i < from+n; i++ {
		idx := int64(i)
		in = append(in, service.StepInput{StepIndex: &idx, Timestamp: start.Add(time.Duration(i) * time.Second).Format(time.RFC3339Nano),
			StepType: "llm:gpt-4o", InputTokens: 10, CostCents: "0.5"})
	}
	steps, err := service.ValidateSteps(in, start.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.AppendSteps(context.Background(), "acme", runID, steps); err != nil {
		t.Fatal(err)
	}
}

// cappedRun opens run runID of tenant acme's agent bot under a stop policy
// "cost cap" of threshold cents, and returns it.
func cappedRun(t *testing.T, svc *service.Service, threshold, runID string) runproof.Run {
	t.Helper()
	ctx := context.Background()
	if _, err := svc.CreatePolicies(ctx, "acme", service.PolicyInput{Name: "cost cap", Type: runproof.PolicyCostLimit,
		Threshold: service.Threshold(threshold), Action: runproof.ActionStop}); err != nil {
		t.Fatal(err)
	}
	run, _, err := svc.CreateRun(ctx, "acme", service.RunInput{RunID: runID, AgentID: "bot", StartedAt: "2026-11-22T09:00:00Z"})
	if err != nil {
		t.Fatal(err)
	}
	return run
}

// longRun records a run of n steps (three pages and a half for 2500) under
// a cost cap that it breaks at its 2000th step, and returns its id.
func longRun(t *testing.T, store runproof.Store, n int) (*service.Service, string) {
	t.Helper()
	svc := service.New(store, service.Options{})
	run := cappedRun(t, svc, "999.9", "long-run")
	for from := 0; from < n; from += service.MaxStepsPerCall {
		appendSteps(t, svc, run.ID, from, min(service.MaxStepsPerCall, n-from))
	}
	return svc, run.ID
}

// TestExportReadsTheRunAsItWas: an export reads the run's steps once, a
// page at a time, as many as the run had when the export read it; steps
// its agent appends meanwhile are left to the next export, not a reason to
// fail.
func TestExportReadsTheRunAsItWas(t *testing.T) {
	ctx := context.Background()
	store := storetest.OpenSQLite(t)
	const steps = 2500 // three pages
	svc, runID := longRun(t, store, steps)
	g := &growingStore{Store: store, grow: func() { appendSteps(t, svc, runID, steps, 3) }}
	e := newLedgered(t, g, nil).exporter
	rec, err := e.Export(ctx, "acme", auditor, export.Input{RunID: runID, Format: runproof.FormatJSON})
	if err != nil {
		t.Fatal(err)
	}
	var b struct {
		TotalSteps int64             `json:"total_steps"`
		Steps      []json.RawMessage `json:"steps"`
	}
	if err := json.Unmarshal(download(t, e, rec), &b); err != nil {
		t.Fatal(err)
	}
	if b.TotalSteps != steps || len(b.Steps) != steps || *rec.TotalSteps != steps {
		t.Errorf("the bundle holds %d steps (total_steps %d, record %d), want the %d the run had", len(b.Steps), b.TotalSteps, *rec.TotalSteps, steps)
	}

	// Every bundle type, in every format, reads the steps once, and checks
	// the incident by its inflection step as it reads it.
	incident := runproof.Incident{}
	if incs, err := store.ListIncidents(ctx, runproof.ListIncidentsParams{TenantID: "acme"}); err != nil || len(incs) != 1 {
		t.Fatalf("%d incidents, %v", len(incs), err)
	} else {
		incident = incs[0]
	}
	for _, bundle := range []runproof.BundleType{runproof.BundleEvidence, runproof.BundleSOC2, runproof.BundleExecutiveDebrief} {
		for _, format := range []runproof.ExportFormat{runproof.FormatJSON, runproof.FormatCSV, runproof.FormatPDF, runproof.FormatZIP} {
			g.pages = 0
			if _, err := e.Export(ctx, "acme", auditor, export.Input{IncidentID: incident.ID, BundleType: bundle, Format: format}); err != nil {
				t.Fatal(err)
			}
			if g.pages != 3 {
				t.Errorf("%s %s: the steps were read in %d queries, want 3 pages", bundle, format, g.pages)
			}
		}
	}
}

// TestExportWithoutTemporaryDirectory: an export that cannot keep the
// run's steps fails, recorded as such, saying what to do; one that keeps
// none, or few, needs no temporary file.
func TestExportWithoutTemporaryDirectory(t *testing.T) {
	ctx := context.Background()
	store := storetest.OpenSQLite(t)
	svc, runID := longRun(t, store, 5)
	e := newLedgered(t, store, nil).exporter
	t.Setenv("TMPDIR", filepath.Join(t.TempDir(), "gone"))
	for _, format := range []runproof.ExportFormat{runproof.FormatJSON, runproof.FormatZIP} {
		if _, err := e.Export(ctx, "acme", auditor, export.Input{RunID: runID, Format: format}); err != nil {
			t.Errorf("an export of 5 steps as %s, which keeps them in memory: %v", format, err)
		}
	}
	appendSteps(t, svc, runID, 5, 495) // more than a spool holds in memory
	_, err := e.Export(ctx, "acme", auditor, export.Input{RunID: runID, Format: runproof.FormatJSON})
	var failed *export.Failed
	if !errors.As(err, &failed) || runproof.ErrorCode(err) != runproof.EUNAVAILABLE ||
		!strings.Contains(failed.Export.FailureReason, "TMPDIR") || strings.Contains(failed.Export.FailureReason, "gone") {
		t.Fatalf("got %v, want a failed export saying to mend TMPDIR, without the server's paths", err)
	}
	if rec, err := e.Get(ctx, "acme", failed.Export.ID); err != nil || rec.Status != runproof.ExportFailed {
		t.Errorf("the export is %s (%v), want failed", rec.Status, err)
	}
	if _, err := e.Export(ctx, "acme", auditor, export.Input{RunID: runID, Format: runproof.FormatJSON,
		IncludeRawSteps: new(false)}); err != nil {
		t.Errorf("an export without steps needs no temporary file: %v", err)
	}
}

// TestExportRefusesChangedSteps: a step changed in the database behind
// runproof's back (its trigger dropped) is not signed into a bundle: the
// export fails, recorded as such, naming the step, and leaves no artifact.
func TestExportRefusesChangedSteps(t *testing.T) {
	ctx := context.Background()
	store := storetest.OpenSQLite(t)
	_, runID := longRun(t, store, 5)
	for _, q := range []string{"DROP TRIGGER steps_no_update", "UPDATE steps SET cost_microcents = 1 WHERE step_index = 3"} {
		if err := store.(interface {
			ExecRaw(context.Context, string) error
		}).ExecRaw(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	e := newLedgered(t, store, nil).exporter
	for _, format := range []runproof.ExportFormat{runproof.FormatJSON, runproof.FormatZIP} {
		_, err := e.Export(ctx, "acme", auditor, export.Input{RunID: runID, Format: format})
		var failed *export.Failed
		if !errors.As(err, &failed) || runproof.ErrorCode(err) != runproof.ECONFLICT ||
			!strings.Contains(failed.Export.FailureReason, "step 3 of run \"long-run\" does not match its content_hash") {
			t.Fatalf("%s: got %v, want a failed export naming the changed step", format, err)
		}
		if _, _, err := e.Open(ctx, "acme", failed.Export.ID); err == nil {
			t.Errorf("%s: the failed export has an artifact", format)
		}
	}
}

// TestExportRefusesChangedSealedSteps: a sealed step changed behind
// runproof's back in what its content_hash leaves out (its status, here),
// its seal forged, or sealed steps taken out of the run's count: no bundle
// is signed of it; the export fails, saying why.
func TestExportRefusesChangedSealedSteps(t *testing.T) {
	for _, c := range []struct {
		name    string
		tamper  func(run runproof.Run, steps []runproof.Step) []string
		failure string
	}{
		{"a sealed step's status", func(runproof.Run, []runproof.Step) []string {
			return []string{"DROP TRIGGER steps_no_update", "UPDATE steps SET status = 'violation' WHERE step_index = 3"}
		}, `steps 0 to 4 of run "long-run" are not those the ledger sealed`},
		{"the seal itself", func(run runproof.Run, _ []runproof.Step) []string {
			return []string{"DROP TRIGGER ledger_entries_no_update", fmt.Sprintf(`UPDATE ledger_entries SET data = CAST('{"from_index":0,"run_id":"%s",`+
				`"steps_sha256":"sha256:%064d","tenant_id":"acme","to_index":5,"type":"runproof.steps.v1"}' AS BLOB) WHERE entry_type = 'runproof.steps.v1'`, run.ID, 0)}
		}, "is not what the signed ledger holds"},
		{"the run's count of steps", func(run runproof.Run, steps []runproof.Step) []string {
			var t runproof.Totals
			for _, s := range steps[:3] {
				t = t.Add(s)
			}
			return []string{"DROP TRIGGER runs_change_only_as_run", fmt.Sprintf(
				"UPDATE runs SET steps = 3, input_tokens = %d, output_tokens = %d, cost_microcents = %d, duration_micros = %d WHERE id = '%s'",
				t.InputTokens, t.OutputTokens, t.CostMicrocents, t.DurationMicros, run.ID)}
		}, `run "long-run" holds fewer steps than the 5 the ledger sealed`},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			store := storetest.OpenSQLite(t)
			_, runID := longRun(t, store, 5)
			l := newLedgered(t, store, nil)
			if n, err := l.ledger.SyncSteps(ctx, "acme"); err != nil || n != 1 {
				t.Fatalf("seal: %d, %v", n, err)
			}
			if _, err := l.exporter.Export(ctx, "acme", auditor, export.Input{RunID: runID, Format: runproof.FormatJSON}); err != nil {
				t.Fatalf("the sealed steps as they were: %v", err)
			}
			run, err := store.GetRun(ctx, "acme", runID)
			if err != nil {
				t.Fatal(err)
			}
			steps, err := store.ListSteps(ctx, runproof.ListStepsParams{TenantID: "acme", RunID: runID, Limit: 10})
			if err != nil {
				t.Fatal(err)
			}
			for _, q := range c.tamper(run, steps) {
				if err := store.(interface {
					ExecRaw(context.Context, string) error
				}).ExecRaw(ctx, q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			_, err = l.exporter.Export(ctx, "acme", auditor, export.Input{RunID: runID, Format: runproof.FormatZIP})
			var failed *export.Failed
			if !errors.As(err, &failed) || runproof.ErrorCode(err) != runproof.ECONFLICT || !strings.Contains(failed.Export.FailureReason, c.failure) {
				t.Fatalf("got %v, want a failed export saying %q", err, c.failure)
			}
		})
	}
}

// TestExportRefusesChangedIncident: an incident record changed behind
// runproof's back (incidents are not sealed, their inflection steps are)
// no longer agrees with its inflection step: no bundle is signed of it.
func TestExportRefusesChangedIncident(t *testing.T) {
	ctx := context.Background()
	store := storetest.OpenSQLite(t)
	longRun(t, store, 2001) // the cap breaks at its 2000th step
	e := newLedgered(t, store, nil).exporter
	incs, err := store.ListIncidents(ctx, runproof.ListIncidentsParams{TenantID: "acme"})
	if err != nil || len(incs) != 1 {
		t.Fatalf("%d incidents, %v", len(incs), err)
	}
	inc := incs[0]
	exec := func(q string) {
		t.Helper()
		if err := store.(interface {
			ExecRaw(context.Context, string) error
		}).ExecRaw(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec("DROP TRIGGER incidents_remediation_only")
	exec("CREATE TABLE incidents_kept AS SELECT * FROM incidents")
	for _, c := range []struct{ column, value, field string }{
		{"policy_name", "'Harmless rule'", "policy_name"},
		{"threshold_value", "'5000'", "threshold_value"},
		{"actual_value", "'1000.5'", "actual_value"},
		{"detected_at", "violation_at", "detection_time"},
		{"contained_at", "'2026-11-22T09:40:00.000000Z'", "containment_time"},
		{"contained_at", "NULL", "containment_time"},
		{"inflection_step_index", "inflection_step_index - 1", "inflection_step_index"},
		{"inflection_step_index", "inflection_step_index + 1", "inflection_step_index"},
	} {
		t.Run(c.column+"="+c.value, func(t *testing.T) {
			exec(fmt.Sprintf("UPDATE incidents SET %s = %s WHERE id = '%s'", c.column, c.value, inc.ID))
			defer exec(fmt.Sprintf("UPDATE incidents SET %s = (SELECT %s FROM incidents_kept WHERE id = '%s') WHERE id = '%s'", c.column, c.column, inc.ID, inc.ID))
			for _, bundle := range []runproof.BundleType{runproof.BundleSOC2, runproof.BundleExecutiveDebrief} {
				_, err := e.Export(ctx, "acme", auditor, export.Input{IncidentID: inc.ID, BundleType: bundle, Format: runproof.FormatJSON})
				says := "its " + c.field + " is"
				if c.field == "inflection_step_index" {
					says = "as its inflection, which that step is not"
				}
				if runproof.ErrorCode(err) != runproof.ECONFLICT || !strings.Contains(err.Error(), says) {
					t.Errorf("%s: got %v, want a conflict naming %s", bundle, err, c.field)
				}
			}
		})
	}
	if _, err := e.Export(ctx, "acme", auditor, export.Input{IncidentID: inc.ID, BundleType: runproof.BundleSOC2, Format: runproof.FormatJSON}); err != nil {
		t.Errorf("the incident as it was: %v", err)
	}
}

// TestBundleBreaches: a bundle names every policy its run's steps went
// over: the stop policy of its incident, another stop policy the
// inflection step broke too, and a warn policy, in the order they began.
func TestBundleBreaches(t *testing.T) {
	ctx := context.Background()
	store := storetest.OpenSQLite(t)
	svc := service.New(store, service.Options{})
	for _, p := range []service.PolicyInput{
		{Name: "cost cap", Type: runproof.PolicyCostLimit, Threshold: "100", Action: runproof.ActionStop},
		{Name: "big step", Type: runproof.PolicyExpression, Expression: "step.cost_cents > 50.0", Action: runproof.ActionStop},
		{Name: "slow", Type: runproof.PolicyDurationLimit, Threshold: "1000", Action: runproof.ActionWarn},
	} {
		if _, err := svc.CreatePolicies(ctx, "acme", p); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
	run, _, err := svc.CreateRun(ctx, "acme", service.RunInput{RunID: "r-1", AgentID: "bot", StartedAt: start.Format(time.RFC3339)})
	if err != nil {
		t.Fatal(err)
	}
	var in []service.StepInput
	for i, s := range []struct{ cost, ms string }{{"10", "1500"}, {"120", "10"}} {
		idx := int64(i)
		in = append(in, service.StepInput{StepIndex: &idx, Timestamp: start.Add(time.Duration(i) * time.Second).Format(time.RFC3339),
			StepType: "llm:gpt-4o", CostCents: service.Number(s.cost), DurationMs: service.Number(s.ms)})
	}
	steps, err := service.ValidateSteps(in, start.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	res, err := svc.AppendSteps(ctx, "acme", run.ID, steps)
	if err != nil || res.IncidentID == "" {
		t.Fatalf("%+v, %v; want an incident", res, err)
	}
	e := newLedgered(t, store, nil).exporter
	rec, err := e.Export(ctx, "acme", auditor, export.Input{IncidentID: res.IncidentID, Format: runproof.FormatJSON})
	if err != nil {
		t.Fatal(err)
	}
	var b evidence.EvidenceBundle
	if err := json.Unmarshal(download(t, e, rec), &b); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, br := range b.PolicyContext.Breaches {
		got = append(got, fmt.Sprintf("%s %s from %d (%s of %s) ×%d", br.PolicyName, br.Action, br.FirstStepIndex, br.ActualValue, br.ThresholdValue, br.StepsOver))
	}
	// On one step, in the order the step's findings give (the snapshot's).
	want := []string{"slow warn from 0 (1500 of 1000) ×2", "big step stop from 1 (true of step.cost_cents > 50.0) ×1", "cost cap stop from 1 (130 of 100) ×1"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("breaches:\n%q\nwant\n%q", got, want)
	}
	// The SOC 2 attestation names those besides the incident's.
	rec, err = e.Export(ctx, "acme", auditor, export.Input{IncidentID: res.IncidentID, BundleType: runproof.BundleSOC2, Format: runproof.FormatJSON})
	if err != nil {
		t.Fatal(err)
	}
	var soc2 evidence.SOC2Bundle
	if err := json.Unmarshal(download(t, e, rec), &soc2); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(soc2.AttestationStatement, `policy "big step" was breached`) ||
		!strings.Contains(soc2.AttestationStatement, `Its steps also went over "slow" (warn) and "cost cap" (stop).`) {
		t.Errorf("attestation: %s", soc2.AttestationStatement)
	}
}

// TestCSVWithContent: a CSV of steps holds no content, so asking for it
// changes nothing of the file.
func TestCSVWithContent(t *testing.T) {
	ctx := context.Background()
	store := storetest.OpenSQLite(t)
	svc, runID := longRun(t, store, 0)
	start := time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
	var in []service.StepInput
	for i := range int64(30) {
		in = append(in, service.StepInput{StepIndex: &i, Timestamp: start.Add(time.Duration(i) * time.Second).Format(time.RFC3339Nano),
			StepType: "llm:gpt-4o", InputTokens: 10, CostCents: "0.5", Content: jsontext.Value(fmt.Sprintf(`{"prompt":"step %d, \"quoted\", a,b"}`, i))})
	}
	steps, err := service.ValidateSteps(in, start.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.AppendSteps(ctx, "acme", runID, steps); err != nil {
		t.Fatal(err)
	}
	e := newLedgered(t, store, nil).exporter
	var files [2][]byte
	for i, content := range []bool{false, true} {
		rec, err := e.Export(ctx, "acme", auditor, export.Input{RunID: runID, Format: runproof.FormatCSV, IncludeContent: content})
		if err != nil {
			t.Fatal(err)
		}
		files[i] = download(t, e, rec)
	}
	if !bytes.Equal(files[0], files[1]) || len(files[0]) == 0 {
		t.Errorf("the CSV with content differs from the one without:\n%s\n%s", files[0], files[1])
	}
}

// stoppingStore stops a run, by steps that break its cost cap, once an
// export is recorded: the run is stopped between the export's request and
// its build, as an agent's next call can.
type stoppingStore struct {
	runproof.Store
	stop func()
	once sync.Once
}

func (s *stoppingStore) CreateExport(ctx context.Context, r runproof.ExportRequest) error {
	err := s.Store.CreateExport(ctx, r)
	if err == nil {
		s.once.Do(s.stop)
	}
	return err
}

// TestExportOfARunStoppedMeanwhile: a run asked for without an incident,
// and stopped before its bundle is built, is refused saying so, not as
// evidence the database contradicts (which would accuse it of being
// changed behind runproof's back); asked again, it is exported with its
// incident. The ledger verifies throughout.
func TestExportOfARunStoppedMeanwhile(t *testing.T) {
	storetest.Each(t, func(t *testing.T, store runproof.Store) {
		ctx := context.Background()
		svc := service.New(store, service.Options{})
		run := cappedRun(t, svc, "1", "stopped-later")
		appendSteps(t, svc, run.ID, 0, 1) // 0.5 cents: under the cap
		s := &stoppingStore{Store: store, stop: func() { appendSteps(t, svc, run.ID, 1, 3) }}
		lx := newLedgered(t, s, nil)
		_, err := lx.exporter.Export(ctx, "acme", auditor, export.Input{RunID: run.ID, Format: runproof.FormatZIP})
		var failed *export.Failed
		if !errors.As(err, &failed) || runproof.ErrorCode(err) != runproof.ECONFLICT ||
			!strings.Contains(failed.Export.FailureReason, "was stopped by a policy") || !strings.Contains(failed.Export.FailureReason, "ask again") {
			t.Fatalf("export of a run stopped meanwhile: %v, want it failed saying why", err)
		}
		stopped, err := store.GetRun(ctx, "acme", run.ID)
		if err != nil || stopped.IncidentID == "" {
			t.Fatalf("run %+v, %v: want it stopped by its cost cap", stopped, err)
		}
		rec, err := lx.exporter.Export(ctx, "acme", auditor, export.Input{RunID: run.ID, Format: runproof.FormatZIP})
		if err != nil || rec.IncidentID != stopped.IncidentID {
			t.Fatalf("asked again: %+v, %v; want the run's incident", rec, err)
		}
		z := download(t, lx.exporter, rec)
		if rep := verify.ZIP(bytes.NewReader(z), int64(len(z)), verify.Options{Key: lx.key.Public()}); !rep.Authentic() {
			t.Errorf("the ZIP does not verify: %v", rep.Failure)
		}
		if err := lx.verify(ctx, "acme"); err != nil {
			t.Errorf("ledger: %v", err)
		}
	})
}

package export_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/runproof/runproof/internal/export"
	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/service"
	"github.com/runproof/runproof/internal/store/storetest"
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

// TestExportReadsTheRunAsItWas: an export reads the run's steps a page at
// a time, as many as the run had when the export read it; steps its agent
// appends meanwhile are left to the next export, not a reason to fail.
func TestExportReadsTheRunAsItWas(t *testing.T) {
	ctx := context.Background()
	store := storetest.OpenSQLite(t)
	svc := service.New(store, service.Options{})
	run, _, err := svc.CreateRun(ctx, "acme", service.RunInput{RunID: "long-run", AgentID: "bot",
		StartedAt: "2026-11-22T09:00:00Z"})
	if err != nil {
		t.Fatal(err)
	}
	const steps = 2500 // three pages
	for from := 0; from < steps; from += service.MaxStepsPerCall {
		appendSteps(t, svc, run.ID, from, min(service.MaxStepsPerCall, steps-from))
	}
	g := &growingStore{Store: store, grow: func() { appendSteps(t, svc, run.ID, steps, 3) }}
	arts, _ := tempArtifacts(t)
	e := export.New(g, arts, export.Options{NewID: ids(3), Now: func() time.Time { return fixed }})
	rec, err := e.Export(ctx, "acme", auditor, export.Input{RunID: run.ID, Format: runproof.FormatJSON})
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
	if g.pages != 3 {
		t.Errorf("the steps were read in %d queries, want 3 pages", g.pages)
	}
}

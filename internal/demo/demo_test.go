package demo_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/runproof/runproof/internal/demo"
	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/store/storetest"
)

func counter() func() string {
	n := 0
	return func() string { n++; return fmt.Sprintf("00000000-0000-7000-8000-%012d", n) }
}

func TestSeed(t *testing.T) {
	ctx := context.Background()
	store := storetest.OpenSQLite(t)
	day := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	res, err := demo.Seed(ctx, demo.Options{Store: store, Day: day, NewID: counter()})
	if err != nil {
		t.Fatal(err)
	}
	if res.Runs < 24 || res.Policies != 6 {
		t.Fatalf("seeded %d runs, %d policies", res.Runs, res.Policies)
	}
	types := map[runproof.PolicyType]int{}
	for _, inc := range res.Incidents {
		types[inc.ViolationType]++
	}
	for _, want := range []runproof.PolicyType{runproof.PolicyCostLimit, runproof.PolicyTokenLimit,
		runproof.PolicyStepLimit, runproof.PolicyStepTypeDenied, runproof.PolicyExpression} {
		if types[want] != 1 {
			t.Errorf("%d incidents of type %s, want 1 (all: %v)", types[want], want, types)
		}
	}
	if res.Showcase.ViolationType != runproof.PolicyCostLimit {
		t.Errorf("showcase incident is %+v", res.Showcase)
	}
	// The long run warns without an incident.
	runs, err := store.ListRuns(ctx, runproof.ListRunsParams{TenantID: demo.Tenant, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var warned int
	for _, r := range runs {
		if r.Totals.DurationMicros > 180_000_000 && r.IncidentID == "" && r.Status == runproof.RunCompleted {
			warned++
		}
	}
	if warned == 0 {
		t.Error("no run went over the duration warning without an incident")
	}
	if ok, err := demo.Seeded(ctx, store, demo.Tenant); !ok || err != nil {
		t.Fatalf("Seeded = %v, %v", ok, err)
	}
	for _, inc := range res.Incidents {
		t.Logf("%s %s %q threshold %s actual %s step %d risk %s", inc.RunID, inc.ViolationType, inc.PolicyName, inc.ThresholdValue, inc.ActualValue, inc.InflectionStepIndex, inc.RiskLevel)
	}
}

// TestSeedInterrupted: a demo stopped in the middle of seeding is not taken
// for seeded, and seeding again finishes it as one run would have: no
// policy twice, no run left running, every incident there.
func TestSeedInterrupted(t *testing.T) {
	ctx := context.Background()
	day := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	whole, err := demo.Seed(ctx, demo.Options{Store: storetest.OpenSQLite(t), Day: day, NewID: counter()})
	if err != nil {
		t.Fatal(err)
	}

	store := storetest.OpenSQLite(t)
	ids := counter()
	// The process stops after the third step of run 20, after the first
	// incidents.
	_, err = demo.Seed(ctx, demo.Options{Store: &stopAfter{Store: store, run: "demo-run-020", updates: 3}, Day: day, NewID: ids})
	if err == nil {
		t.Fatal("the interrupted seed did not fail")
	}
	if r, err := store.GetRun(ctx, demo.Tenant, "demo-run-020"); err != nil || r.Status != runproof.RunRunning || r.Totals.Steps != 3 {
		t.Fatalf("the interrupted run: %+v, %v", r, err)
	}
	if ok, err := demo.Seeded(ctx, store, demo.Tenant); ok || err != nil {
		t.Fatalf("Seeded after an interrupted seed = %v, %v", ok, err)
	}
	// Resumed the next day: the day of the runs already there is kept.
	res, err := demo.Seed(ctx, demo.Options{Store: store, Day: day.AddDate(0, 0, 1), NewID: ids})
	if err != nil {
		t.Fatal(err)
	}
	if res.Runs != whole.Runs || res.Steps != whole.Steps || len(res.Incidents) != len(whole.Incidents) ||
		res.Showcase.RunID != whole.Showcase.RunID || res.Incidents[0].RunID != whole.Incidents[0].RunID {
		t.Errorf("resumed seed %d runs, %d steps, %d incidents, showcase %s; whole %d, %d, %d, %s",
			res.Runs, res.Steps, len(res.Incidents), res.Showcase.RunID, whole.Runs, whole.Steps, len(whole.Incidents), whole.Showcase.RunID)
	}
	policies, err := store.ActivePolicies(ctx, demo.Tenant)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range policies {
		if p.Version != 1 {
			t.Errorf("policy %q has version %d: added twice", p.Name, p.Version)
		}
	}
	runs, err := store.ListRuns(ctx, runproof.ListRunsParams{TenantID: demo.Tenant, Limit: 100})
	if err != nil || len(runs) != whole.Runs {
		t.Fatalf("%d runs, %v", len(runs), err)
	}
	for _, r := range runs {
		if r.Status == runproof.RunRunning {
			t.Errorf("run %s is still running", r.ID)
		}
	}
	if ok, err := demo.Seeded(ctx, store, demo.Tenant); !ok || err != nil {
		t.Fatalf("Seeded after resuming = %v, %v", ok, err)
	}
}

// stopAfter is a store that fails every change to one run after its first
// few, as if the process had stopped there.
type stopAfter struct {
	runproof.Store
	run     string
	updates int
}

func (s *stopAfter) UpdateRun(ctx context.Context, p runproof.UpdateRunParams, fn func(runproof.RunState) (runproof.RunChange, error)) error {
	if p.RunID == s.run {
		if s.updates == 0 {
			return errors.New("the process stopped")
		}
		s.updates--
	}
	return s.Store.UpdateRun(ctx, p, fn)
}

package demo_test

import (
	"context"
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

package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/runproof/runproof/internal/runproof"
)

// t0 is the base of every fixture time: UTC and whole microseconds, as the
// store returns times, so fixtures compare equal to what is read back.
var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// at returns t0 plus n seconds.
func at(n int) time.Time { return t0.Add(time.Duration(n) * time.Second) }

func ptr[T any](v T) *T { return &v }

func fixturePolicies(tenant string) []runproof.Policy {
	return []runproof.Policy{
		{ID: "pol-tokens", TenantID: tenant, Name: "tokens", Version: 1, Type: runproof.PolicyTokenLimit,
			Threshold: "1000", Action: runproof.ActionStop, CreatedAt: t0},
		{ID: "pol-deny", TenantID: tenant, Name: "deny", Version: 2, Type: runproof.PolicyStepTypeDenied,
			Action: runproof.ActionWarn, StepTypes: []string{"shell", "browser"}, CreatedAt: t0.Add(time.Microsecond)},
	}
}

func testSnapshot(t *testing.T, tenant string) runproof.Snapshot {
	t.Helper()
	snap, err := runproof.NewSnapshot(tenant, fixturePolicies(tenant), t0)
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

// newRun returns a running run of tenant and the snapshot it was started under.
func newRun(t *testing.T, tenant, id, agent string, started time.Time) (runproof.Run, runproof.Snapshot) {
	snap := testSnapshot(t, tenant)
	return runproof.Run{
		TenantID: tenant, ID: id, AgentID: agent, Goal: "goal of " + id, TraceID: "trace-" + id,
		Status: runproof.RunRunning, SnapshotID: snap.ID, StartedAt: started,
		CreatedAt: started.Add(time.Millisecond),
	}, snap
}

func createRun(t *testing.T, s runproof.Store, tenant, id, agent string, started time.Time) runproof.Run {
	t.Helper()
	r, snap := newRun(t, tenant, id, agent, started)
	if err := s.CreateRun(context.Background(), r, snap); err != nil {
		t.Fatal(err)
	}
	return r
}

// newStep returns step i of a run, its content hash computed as ingest does.
func newStep(t *testing.T, tenant, runID string, i int64) runproof.Step {
	t.Helper()
	st := runproof.Step{
		TenantID: tenant, RunID: runID, Index: i, Timestamp: at(int(i) + 1), StepType: "llm_call",
		InputTokens: 10 * (i + 1), OutputTokens: 5, CostMicrocents: 1_234_567 * (i + 1),
		DurationMicros: 1500, Status: runproof.StepOK, RecordedAt: at(int(i) + 100),
	}
	st.ContentHash = runproof.StepContentHash(st)
	return st
}

// AppendSteps adds steps to a run through UpdateRun, counting them in its totals.
func AppendSteps(t testing.TB, s runproof.Store, tenant, runID string, steps ...runproof.Step) {
	t.Helper()
	if err := appendSteps(s, tenant, runID, steps...); err != nil {
		t.Fatal(err)
	}
}

func appendSteps(s runproof.Store, tenant, runID string, steps ...runproof.Step) error {
	return s.UpdateRun(context.Background(), runproof.UpdateRunParams{TenantID: tenant, RunID: runID, StepsFrom: 1},
		func(st runproof.RunState) (runproof.RunChange, error) {
			r := st.Run
			for _, x := range steps {
				r.Totals = r.Totals.Add(x)
			}
			return runproof.RunChange{Run: r, Steps: steps}, nil
		})
}

func newIncident(tenant, id, runID string, violation time.Time) runproof.Incident {
	return runproof.Incident{
		ID: id, TenantID: tenant, RunID: runID, PolicyID: "pol-tokens", PolicyVersion: 1,
		PolicyName: "tokens", ViolationType: runproof.PolicyTokenLimit, ThresholdValue: "1000",
		ActualValue: "1200", InflectionStepIndex: 3, ViolationAt: violation,
		DetectedAt: violation.Add(time.Millisecond), RiskLevel: runproof.RiskHigh,
		RemediationStatus: "pending", CreatedAt: violation.Add(2 * time.Millisecond),
	}
}

func newAuditEvent(tenant, id, category string, occurred time.Time) runproof.AuditEvent {
	return runproof.AuditEvent{
		ID: id, TenantID: tenant, OccurredAt: occurred, Actor: "key-1", ActorType: runproof.OriginHuman,
		Category: category, Action: "GET /api/v1/runs", Resource: "run/r1", Decision: runproof.DecisionAllow,
		Status: 200, CorrelationID: "corr-" + id, SourceComponent: "api",
	}
}

// equal fails the test unless got and want are deeply equal.
func equal(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got %s\nwant %s", what, show(got), show(want))
	}
}

// show renders v as JSON (readable times and pointees) and then with %+v
// (the fields JSON hides).
func show(v any) string {
	b, _ := json.Marshal(v)
	return fmt.Sprintf("%s\n     %+v", b, v)
}

// wantCode fails the test unless err carries the runproof error code.
func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if got := runproof.ErrorCode(err); got != code {
		t.Errorf("%s: error %v has code %q, want %q", what, err, got, code)
	}
}

package evidence_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/runproof/runproof/internal/evidence"
	"github.com/runproof/runproof/internal/policy"
	"github.com/runproof/runproof/internal/runproof"
)

var t0 = time.Date(2026, 3, 10, 14, 0, 0, 0, time.UTC)

const tenant = "tenant-acme"

type stepSpec struct {
	typ        string
	in, out    int64
	costMicro  int64
	durMicro   int64
	content    string // JSON, "" for none
	atMicroOff int64  // extra offset of the timestamp, µs
}

type runSpec struct {
	n        int // distinguishes ids
	goal     string
	policies []runproof.Policy
	steps    []stepSpec
	history  evidence.AgentHistory
	detect   time.Duration // detection delay after the inflection step's timestamp
	// oneRequest: the steps after the inflection came in the request that
	// held it, and were recorded with it, at the stop.
	oneRequest bool
}

func pol(name string, typ runproof.PolicyType, threshold string, action runproof.Action, stepTypes ...string) runproof.Policy {
	return runproof.Policy{ID: "pol-" + name, TenantID: tenant, Name: name, Version: 1, Type: typ,
		Threshold: threshold, Action: action, StepTypes: stepTypes, CreatedAt: t0.Add(-24 * time.Hour)}
}

func same(n int, s stepSpec) []stepSpec {
	out := make([]stepSpec, n)
	for i := range out {
		out[i] = s
	}
	return out
}

// simulate judges the steps the way the service does (evaluation, stop,
// incident) and returns the source of a bundle.
func simulate(t testing.TB, rs runSpec) evidence.Source {
	t.Helper()
	ps := make([]runproof.Policy, len(rs.policies))
	for i, p := range rs.policies {
		q, err := policy.Normalize(p)
		if err != nil {
			t.Fatalf("policy %s: %v", p.Name, err)
		}
		q.ID, q.Version, q.TenantID, q.CreatedAt = p.ID, p.Version, p.TenantID, p.CreatedAt
		ps[i] = q
	}
	snap, err := runproof.NewSnapshot(tenant, ps, t0)
	if err != nil {
		t.Fatal(err)
	}
	eval, err := policy.Compile(snap.Policies)
	if err != nil {
		t.Fatal(err)
	}
	run := runproof.Run{TenantID: tenant, ID: fmt.Sprintf("0195a3c4-7e2b-7c1d-9f00-3a5b6c7d8e%02d", rs.n),
		AgentID: "agent-research", Goal: rs.goal, TraceID: fmt.Sprintf("4bf92f3577b34da6a3ce929d0e0e47%02d", rs.n),
		Status: runproof.RunRunning, SnapshotID: snap.ID, StartedAt: t0, CreatedAt: t0}
	src := evidence.Source{Run: run, Snapshot: snap, History: rs.history}
	var steps []runproof.Step
	var inflection runproof.Step // the step that stopped the run, once it did
	for i, sp := range rs.steps {
		s := runproof.Step{TenantID: tenant, RunID: run.ID, Index: int64(i),
			Timestamp: t0.Add(time.Duration(i+1)*time.Second + time.Duration(sp.atMicroOff)*time.Microsecond),
			StepType:  sp.typ, InputTokens: sp.in, OutputTokens: sp.out, CostMicrocents: sp.costMicro, DurationMicros: sp.durMicro}
		if sp.content != "" {
			if s.Content, err = runproof.CanonicalJSON([]byte(sp.content)); err != nil {
				t.Fatal(err)
			}
			s.ContentDigest = runproof.DigestBytes(s.Content)
		}
		s.ContentHash = runproof.StepContentHash(s)
		stopped := src.Run.Status == runproof.RunStopped
		underWay := stopped && s.UnderWayAt(inflection.Timestamp)
		r := eval.Evaluate(policy.Input{AgentID: run.AgentID, Before: src.Run.Totals, Stopped: stopped, UnderWay: underWay, Step: s})
		s.Status, s.IsInflection, s.Findings, s.RecordedAt = r.Status, r.IsInflection, r.Findings, s.Timestamp
		switch {
		case rs.oneRequest && stopped:
			s.RecordedAt = *src.Run.StoppedAt
		case underWay: // it ended after the stop, and came then
			s.RecordedAt = src.Run.StoppedAt.Add(time.Second)
		}
		src.Run.Totals = r.Totals
		if r.IsInflection {
			inflection = s
			v := *r.Violation
			detected := s.Timestamp.Add(rs.detect)
			th, ac := policy.FixedValues(v)
			src.Incident = &runproof.Incident{ID: fmt.Sprintf("0195a3c4-9a10-7b2c-8d3e-4f5a6b7c8d%02d", rs.n), TenantID: tenant, RunID: run.ID,
				PolicyID: v.PolicyID, PolicyVersion: v.PolicyVersion, PolicyName: v.PolicyName, ViolationType: v.Type,
				ThresholdValue: v.Threshold, ActualValue: v.Actual, InflectionStepIndex: s.Index,
				ViolationAt: s.Timestamp, DetectedAt: detected, ContainedAt: &detected,
				RiskLevel:         policy.Risk(policy.RiskInput{Type: v.Type, Threshold: th, Actual: ac, CostMicrocents: src.Run.Totals.CostMicrocents}),
				RemediationStatus: "pending", CreatedAt: detected}
			src.Run.Status, src.Run.StoppedAt, src.Run.IncidentID = runproof.RunStopped, &detected, src.Incident.ID
			src.Run.TerminationReason = "policy_violation: " + v.PolicyName
		}
		steps = append(steps, s)
	}
	src.Steps = evidence.StepsOf(steps)
	end := t0.Add(time.Duration(len(rs.steps)+1) * time.Second)
	src.Run.CompletedAt = &end
	if src.Run.Status != runproof.RunStopped {
		src.Run.Status, src.Run.TerminationReason = runproof.RunCompleted, "completed"
	}
	return src
}

const cent = runproof.MicrocentsPerCent

// The fixed data set of the golden files.
func costRun(t testing.TB) evidence.Source { return simulate(t, costSpec()) }

func costSpec() runSpec {
	return runSpec{n: 1, goal: "Summarise the quarterly sales report for the board",
		policies: []runproof.Policy{
			pol("cost cap", runproof.PolicyCostLimit, "100", runproof.ActionStop),
			pol("token budget", runproof.PolicyTokenLimit, "100000", runproof.ActionWarn),
			pol("no shell", runproof.PolicyStepTypeDenied, "", runproof.ActionStop, "shell:exec"),
		},
		steps: same(6, stepSpec{typ: "llm:gpt-4o", in: 400, out: 150, costMicro: 30 * cent, durMicro: 1_250_500,
			content: `{"response": "Revenue grew <8%> & margins held.", "prompt": "Summarise section 3"}`}),
		history: evidence.AgentHistory{CompletedRuns: 5, TwiceMedianSteps: 24},
		detect:  200 * time.Millisecond,
	}
}

func tokenRun(t testing.TB) evidence.Source {
	src := simulate(t, runSpec{n: 2,
		policies: []runproof.Policy{
			pol("token budget", runproof.PolicyTokenLimit, "10000", runproof.ActionStop),
			pol("cost cap", runproof.PolicyCostLimit, "1000", runproof.ActionStop),
		},
		steps:   same(4, stepSpec{typ: "llm:claude-sonnet", in: 2500, out: 500, costMicro: 4_500_000, durMicro: 3_000_000}),
		history: evidence.AgentHistory{CompletedRuns: 2, TwiceMedianSteps: 18},
		detect:  35 * time.Millisecond,
	})
	src.Incident.RemediationStatus = "in_progress"
	return src
}

func deniedRun(t testing.TB) evidence.Source {
	src := simulate(t, runSpec{n: 3, goal: "Clean up old build artifacts",
		policies: []runproof.Policy{
			pol("no shell", runproof.PolicyStepTypeDenied, "", runproof.ActionStop, "shell:exec", "shell:sudo"),
			pol("cost cap", runproof.PolicyCostLimit, "100", runproof.ActionStop),
		},
		steps: []stepSpec{
			{typ: "llm:gpt-4o", in: 900, out: 120, costMicro: 1_234_567, durMicro: 800_000},
			{typ: "tool:search", in: 0, out: 0, costMicro: 0, durMicro: 150_250},
			{typ: "shell:exec", in: 0, out: 0, costMicro: 10, durMicro: 5_000, atMicroOff: 123_456},
		},
		history: evidence.AgentHistory{CompletedRuns: 4, TwiceMedianSteps: 6},
		detect:  1500 * time.Millisecond,
	})
	src.Incident.RemediationStatus = "completed"
	return src
}

func cleanRun(t testing.TB) evidence.Source {
	return simulate(t, runSpec{n: 4, goal: "Answer a customer question about delivery times",
		policies: []runproof.Policy{pol("cost cap", runproof.PolicyCostLimit, "100", runproof.ActionStop)},
		steps:    same(3, stepSpec{typ: "llm:gpt-4o-mini", in: 300, out: 80, costMicro: 10 * cent, durMicro: 640_000}),
	})
}

func goldenOptions() evidence.Options {
	return evidence.Options{BundleID: "01JQ3F8Z6Y", CreatedAt: t0.Add(time.Hour), ExportedBy: "user-7f3a",
		ExportReason: "quarterly SOC 2 evidence collection", IncludeRawSteps: true,
		PreparedFor: "Chief Technology Officer", PreparedBy: "Ada Lovelace"}
}

// stepsOf reads the steps of a source.
func stepsOf(t testing.TB, src evidence.Source) []runproof.Step {
	t.Helper()
	var steps []runproof.Step
	for s, err := range src.Steps {
		if err != nil {
			t.Fatal(err)
		}
		steps = append(steps, s)
	}
	return steps
}

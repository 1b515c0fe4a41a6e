package pdfr

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

// run describes a run to simulate: every step costs and weighs the same.
type run struct {
	agent, goal string
	policies    []runproof.Policy
	steps       int
	stepType    string
	in, out     int64
	costMicro   int64
	durMicro    int64
}

func pol(name string, typ runproof.PolicyType, threshold string, action runproof.Action, stepTypes ...string) runproof.Policy {
	return runproof.Policy{ID: "pol-" + name, TenantID: tenant, Name: name, Version: 1, Type: typ,
		Threshold: threshold, Action: action, StepTypes: stepTypes, CreatedAt: t0.Add(-24 * time.Hour)}
}

// simulate judges the steps the way the service does (evaluation, stop,
// incident; an agent that ignores the stop keeps sending steps) and returns
// the source of a bundle.
func simulate(tb testing.TB, rs run) evidence.Source {
	tb.Helper()
	ps := make([]runproof.Policy, len(rs.policies))
	for i, p := range rs.policies {
		q, err := policy.Normalize(p)
		if err != nil {
			tb.Fatalf("policy %s: %v", p.Name, err)
		}
		q.ID, q.Version, q.TenantID, q.CreatedAt = p.ID, p.Version, p.TenantID, p.CreatedAt
		ps[i] = q
	}
	snap, err := runproof.NewSnapshot(tenant, ps, t0)
	if err != nil {
		tb.Fatal(err)
	}
	eval, err := policy.Compile(snap.Policies)
	if err != nil {
		tb.Fatal(err)
	}
	r := runproof.Run{TenantID: tenant, ID: "0195a3c4-7e2b-7c1d-9f00-3a5b6c7d8e01", AgentID: rs.agent, Goal: rs.goal,
		TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", Status: runproof.RunRunning, SnapshotID: snap.ID, StartedAt: t0, CreatedAt: t0}
	src := evidence.Source{Run: r, Snapshot: snap, History: evidence.AgentHistory{CompletedRuns: 5, TwiceMedianSteps: int64(rs.steps) * 4}}
	var steps []runproof.Step
	for i := range rs.steps {
		s := runproof.Step{TenantID: tenant, RunID: r.ID, Index: int64(i), Timestamp: t0.Add(time.Duration(i+1) * time.Second),
			StepType: rs.stepType, InputTokens: rs.in, OutputTokens: rs.out, CostMicrocents: rs.costMicro, DurationMicros: rs.durMicro}
		s.ContentDigest = runproof.DigestBytes(fmt.Appendf(nil, `{"step":%d}`, i))
		s.ContentHash = runproof.StepContentHash(s)
		res := eval.Evaluate(policy.Input{AgentID: r.AgentID, Before: src.Run.Totals, Stopped: src.Run.Status == runproof.RunStopped, Step: s})
		s.Status, s.IsInflection, s.Findings, s.RecordedAt = res.Status, res.IsInflection, res.Findings, s.Timestamp
		src.Run.Totals = res.Totals
		if res.IsInflection {
			v := *res.Violation
			detected := s.Timestamp.Add(200 * time.Millisecond)
			th, ac := policy.FixedValues(v)
			src.Incident = &runproof.Incident{ID: "0195a3c4-9a10-7b2c-8d3e-4f5a6b7c8d01", TenantID: tenant, RunID: r.ID,
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
	end := t0.Add(time.Duration(rs.steps+1) * time.Second)
	src.Run.CompletedAt = &end
	if src.Run.Status != runproof.RunStopped {
		src.Run.Status, src.Run.TerminationReason = runproof.RunCompleted, "completed"
	}
	return src
}

// costRun breaks its cost cap at step `at` of n (each step costs 30 cents)
// and keeps going.
func costRun(tb testing.TB, agent string, n, at int) evidence.Source {
	return simulate(tb, run{agent: agent, goal: "Summarise the quarterly sales report for the board",
		policies: []runproof.Policy{
			pol("cost cap", runproof.PolicyCostLimit, fmt.Sprint(30*at+10), runproof.ActionStop),
			pol("token budget", runproof.PolicyTokenLimit, "100000000", runproof.ActionWarn),
			pol("no shell", runproof.PolicyStepTypeDenied, "", runproof.ActionStop, "shell:exec"),
		},
		steps: n, stepType: "llm:gpt-4o", in: 400, out: 150, costMicro: 30 * runproof.MicrocentsPerCent, durMicro: 1_250_500,
	})
}

func options() evidence.Options {
	return evidence.Options{BundleID: "01JQ3F8Z6Y", CreatedAt: t0.Add(time.Hour), ExportedBy: "user-7f3a",
		ExportReason: "quarterly SOC 2 evidence collection", IncludeRawSteps: true, PreparedFor: "Chief Technology Officer"}
}

// bundles builds the three bundles of a source.
func bundles(tb testing.TB, src evidence.Source) (*evidence.EvidenceBundle, *evidence.SOC2Bundle, *evidence.ExecutiveDebriefBundle) {
	tb.Helper()
	ev, err := evidence.BuildEvidence(src, options())
	if err != nil {
		tb.Fatal(err)
	}
	soc2, err := evidence.BuildSOC2(src, options())
	if err != nil {
		tb.Fatal(err)
	}
	debrief, err := evidence.BuildExecutiveDebrief(src, options())
	if err != nil {
		tb.Fatal(err)
	}
	return &ev, &soc2, &debrief
}

// editSteps changes the steps of src.
func editSteps(tb testing.TB, src *evidence.Source, edit func(steps []runproof.Step)) {
	tb.Helper()
	var steps []runproof.Step
	for s, err := range src.Steps {
		if err != nil {
			tb.Fatal(err)
		}
		steps = append(steps, s)
	}
	edit(steps)
	// The steps as if recorded so: hashed, and counted in the run's totals.
	var t runproof.Totals
	for i := range steps {
		steps[i].ContentHash = runproof.StepContentHash(steps[i])
		t = t.Add(steps[i])
	}
	src.Run.Totals = t
	src.Steps = evidence.StepsOf(steps)
}

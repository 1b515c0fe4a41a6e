package storetest

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"testing"
	"time"

	"github.com/runproof/runproof/internal/runproof"
)

// golden is the dump Scenario must produce on every engine. Regenerate it
// with: go test ./internal/store/storetest -update
//
//go:embed testdata/scenario.json
var golden []byte

// goldenPath is where golden lives, relative to this package.
const goldenPath = "testdata/scenario.json"

// testScenario checks the engine against the golden dump, so that SQLite and
// PostgreSQL are held to the same bytes even when tested apart.
func testScenario(t *testing.T, h Harness) {
	got := scenario(t, h.Store)
	if !bytes.Equal(got, golden) {
		t.Errorf("dump differs from %s (if the change is intended: go test ./internal/store/storetest -update)\n got %s\nwant %s",
			goldenPath, got, golden)
	}
}

// scenario performs one fixed sequence of writes on an empty store and
// returns the indented JSON of everything read back, including the fields
// the domain types hide from JSON. Any two engines must return the same bytes.
func scenario(t *testing.T, s runproof.Store) []byte {
	t.Helper()
	ctx := context.Background()
	check := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	// Times in another zone and below the microsecond, as clients send them.
	zone := time.FixedZone("UTC-7", -7*3600)
	base := time.Date(2025, 6, 30, 17, 59, 59, 999_999_999, zone)
	tm := func(ms int) time.Time { return base.Add(time.Duration(ms) * time.Millisecond) }

	key := runproof.APIKey{ID: "key-1", TenantID: "acme", Role: runproof.RoleAgent, Name: "agent key",
		Hash: "sha256:0000000000000000000000000000000000000000000000000000000000000001", CreatedAt: tm(0)}
	check(s.CreateAPIKey(ctx, key))
	for i, p := range []runproof.Policy{
		{ID: "pol-1", Name: "token budget", Type: runproof.PolicyTokenLimit, Threshold: "100", Action: runproof.ActionStop},
		{ID: "pol-2", Name: "no shell", Type: runproof.PolicyStepTypeDenied, Action: runproof.ActionWarn, StepTypes: []string{"shell"}},
		{ID: "pol-3", Name: "token budget", Type: runproof.PolicyTokenLimit, Threshold: "120.5", Action: runproof.ActionStop},
		{ID: "pol-4", Name: "Cost", Type: runproof.PolicyCostLimit, Threshold: "0.25", Action: runproof.ActionStop, StepTypes: []string{}},
	} {
		p.TenantID, p.CreatedAt = "acme", tm(i+1)
		_, err := s.CreatePolicies(ctx, nil, p)
		check(err)
	}
	active, err := s.ActivePolicies(ctx, "acme")
	check(err)
	snap, err := runproof.NewSnapshot("acme", active, tm(10))
	check(err)

	for i, id := range []string{"run-b", "run-a", "run-c"} {
		r := runproof.Run{TenantID: "acme", ID: id, AgentID: "agent-" + id[4:], Goal: "goal ✓ " + id,
			TraceID: "0123456789abcdef0123456789abcde" + id[4:], Status: runproof.RunRunning,
			SnapshotID: snap.ID, StartedAt: tm(20 + i%2), CreatedAt: tm(21 + i)}
		check(s.CreateRun(ctx, r, snap))
	}
	for i := range int64(3) {
		check(s.UpdateRun(ctx, runproof.UpdateRunParams{TenantID: "acme", RunID: "run-a", StepsFrom: i - 1, StepsTo: i},
			func(st runproof.RunState) (runproof.RunChange, error) {
				step := runproof.Step{Index: i, Timestamp: tm(30 + int(i)), StepType: "llm_call",
					InputTokens: 40, OutputTokens: 7, CostMicrocents: 333_333, DurationMicros: 1_234_567,
					Status: runproof.StepOK, RecordedAt: tm(31 + int(i))}
				if i == 1 {
					step.StepType, step.Content = "shell", json.RawMessage(`{"cmd":"ls -la","env":{"Z":"1","A":"é"}}`)
					step.ContentDigest = runproof.DigestBytes(step.Content)
				}
				step.ContentHash = runproof.StepContentHash(step)
				run, change := st.Run, runproof.RunChange{}
				run.Totals = run.Totals.Add(step)
				if i == 2 {
					step.Status, step.IsInflection = runproof.StepViolation, true
					step.Findings = []runproof.Finding{{PolicyID: "pol-1", PolicyName: "token budget", PolicyVersion: 2,
						Type: runproof.PolicyTokenLimit, Action: runproof.ActionStop, Outcome: runproof.OutcomeExceeded,
						Threshold: "120.5", Actual: "141"}}
					inc := runproof.Incident{ID: "inc-1", TenantID: "acme", RunID: "run-a", PolicyID: "pol-1",
						PolicyVersion: 2, PolicyName: "token budget", ViolationType: runproof.PolicyTokenLimit,
						ThresholdValue: "120.5", ActualValue: "141", InflectionStepIndex: 2,
						ViolationAt: step.Timestamp, DetectedAt: tm(40), ContainedAt: ptr(tm(41)),
						RiskLevel: runproof.RiskHigh, RemediationStatus: "pending", CreatedAt: tm(40)}
					run.Status, run.StoppedAt, run.IncidentID = runproof.RunStopped, ptr(tm(41)), inc.ID
					run.TerminationReason = "token budget exceeded"
					change.Incident = &inc
				}
				change.Run, change.Steps = run, []runproof.Step{step}
				return change, nil
			}))
	}
	check(s.UpdateRun(ctx, runproof.UpdateRunParams{TenantID: "acme", RunID: "run-b", StepsFrom: 1},
		func(st runproof.RunState) (runproof.RunChange, error) {
			st.Run.Status, st.Run.CompletedAt = runproof.RunCompleted, ptr(tm(50))
			return runproof.RunChange{Run: st.Run}, nil
		}))
	check(s.AppendAuditEvents(ctx,
		runproof.AuditEvent{ID: "ev-2", TenantID: "acme", OccurredAt: tm(60), Actor: "key-1",
			ActorType: runproof.OriginAgent, Category: runproof.AuditWrite, Action: "POST /api/v1/runs",
			Resource: "run/run-a", Decision: runproof.DecisionAllow, Status: 201, CorrelationID: "c-1",
			SourceComponent: "api"},
		runproof.AuditEvent{ID: "ev-1", TenantID: "acme", OccurredAt: tm(60), Actor: "system",
			ActorType: runproof.OriginSystem, Category: runproof.AuditIntegrity, Action: "ledger verify",
			Resource: "ledger", Decision: runproof.DecisionAllow, CorrelationID: "c-2",
			SourceComponent: "cli", Detail: "ok"}))

	for _, r := range []runproof.ExportRequest{
		{ID: "exp-2", Scope: runproof.ScopeLLMRun, RunID: "run-a", IncidentID: "inc-1",
			BundleType: runproof.BundleEvidence, Format: runproof.FormatZIP, RequestedBy: "user-7",
			Origin: runproof.OriginHuman, SourceComponent: "api", CorrelationID: "c-3",
			ExportReason: "incident review ✓", PeriodStart: ptr(tm(20)), PeriodEnd: ptr(tm(50)), CreatedAt: tm(70)},
		{ID: "exp-1", Scope: runproof.ScopeSystem, BundleType: runproof.BundleExecutiveDebrief,
			Format: runproof.FormatJSON, RequestedBy: "key-1", Origin: runproof.OriginAgent,
			SourceComponent: "cli", CreatedAt: tm(70)},
		{ID: "exp-3", Scope: runproof.ScopeCompliance, BundleType: runproof.BundleSOC2,
			Format: runproof.FormatPDF, RequestedBy: "system", Origin: runproof.OriginSystem,
			SourceComponent: "scheduler", PeriodStart: ptr(tm(0)), CreatedAt: tm(74)},
	} {
		r.TenantID = "acme"
		check(s.CreateExport(ctx, r))
	}
	for _, e := range []runproof.ExportEvent{
		{ExportID: "exp-2", Kind: runproof.ExportEventCompleted, At: tm(71),
			Checksum:  "sha256:00000000000000000000000000000000000000000000000000000000000000ff",
			SizeBytes: 1 << 33, BundleID: "bundle-1", Artifact: "acme/exp-2.zip"},
		{ExportID: "exp-1", Kind: runproof.ExportEventFailed, At: tm(72), Reason: "render failed: ✗ step 3"},
		{ExportID: "exp-2", Kind: runproof.ExportEventDelivered, At: tm(73)},
	} {
		e.TenantID = "acme"
		check(s.AppendExportEvent(ctx, e))
	}

	// Read everything back, with the fields JSON hides alongside.
	type stepRow struct {
		Step                           runproof.Step
		TenantID, RunID                string
		CostMicrocents, DurationMicros int64
	}
	type exportRow struct {
		Export   runproof.Export
		Artifact string
	}
	type runRow struct {
		Run                            runproof.Run
		CostMicrocents, DurationMicros int64
		Steps                          []stepRow
	}
	var dump struct {
		Key       runproof.APIKey
		KeyHash   string
		Policies  []runproof.Policy
		Snapshot  runproof.Snapshot
		Runs      []runRow
		Incidents []runproof.Incident
		Incident  runproof.Incident
		Audit     []runproof.AuditEvent
		Exports   []exportRow
		Export    exportRow
	}
	dump.Key, err = s.APIKeyByHash(ctx, key.Hash)
	check(err)
	dump.KeyHash = dump.Key.Hash
	dump.Policies, err = s.ActivePolicies(ctx, "acme")
	check(err)
	dump.Snapshot, err = s.GetSnapshot(ctx, "acme", snap.ID)
	check(err)
	runs, err := s.ListRuns(ctx, runproof.ListRunsParams{TenantID: "acme", Limit: 10})
	check(err)
	for _, r := range runs {
		r, err := s.GetRun(ctx, "acme", r.ID)
		check(err)
		row := runRow{Run: r, CostMicrocents: r.Totals.CostMicrocents, DurationMicros: r.Totals.DurationMicros}
		steps, err := s.ListSteps(ctx, runproof.ListStepsParams{TenantID: "acme", RunID: r.ID})
		check(err)
		for _, st := range steps {
			row.Steps = append(row.Steps, stepRow{st, st.TenantID, st.RunID, st.CostMicrocents, st.DurationMicros})
		}
		dump.Runs = append(dump.Runs, row)
	}
	dump.Incidents, err = s.ListIncidents(ctx, runproof.ListIncidentsParams{TenantID: "acme"})
	check(err)
	dump.Incident, err = s.GetIncident(ctx, "acme", "inc-1")
	check(err)
	dump.Audit, err = s.ListAuditEvents(ctx, runproof.ListAuditParams{TenantID: "acme"})
	check(err)
	exports, err := s.ListExports(ctx, runproof.ListExportsParams{TenantID: "acme"})
	check(err)
	for _, e := range exports {
		dump.Exports = append(dump.Exports, exportRow{e, e.Artifact})
	}
	exp, err := s.GetExport(ctx, "acme", "exp-2")
	check(err)
	dump.Export = exportRow{exp, exp.Artifact}
	b, err := json.MarshalIndent(dump, "", "  ")
	check(err)
	return append(b, '\n')
}

package httpapi_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/service"
	"github.com/runproof/runproof/internal/store/storetest"
)

// systemRun sends run r-sys: 20 cents and 300 tokens a step against a stop
// policy "cost cap" (100 cents) and a warn policy "token budget" (1000
// tokens). Tokens reach 80 % at step 2 and go over at step 3; cost reaches
// 80 % at step 3 and goes over at step 5, which stops the run. The agent
// sends steps 6 and 7 after the stop, then ends the run, and it is
// exported. A clean run r-old, started a minute earlier, comes second in
// the lists.
func systemRun(t *testing.T, e *env, admin, agent string) (exportID string) {
	t.Helper()
	e.must(201, e.do("POST", "/api/v1/policies", admin, map[string]any{"name": "cost cap", "type": "cost_limit", "threshold": 100, "action": "stop"}))
	e.must(201, e.do("POST", "/api/v1/policies", admin, map[string]any{"name": "token budget", "type": "token_limit", "threshold": 1000, "action": "warn"}))
	e.must(201, e.do("POST", "/api/v1/runs", agent, map[string]any{"run_id": "r-old", "agent_id": "indexer",
		"started_at": time.Now().Add(-time.Minute).UTC().Format(time.RFC3339Nano)}))
	e.must(201, e.do("POST", "/api/v1/runs", agent, map[string]any{"run_id": "r-sys", "agent_id": "support-bot"}))
	var res struct {
		Decision   string `json:"decision"`
		IncidentID string `json:"incident_id"`
	}
	e.must(200, e.do("POST", "/api/v1/runs/r-sys/steps", agent, steps(0, 5, 20, 300))).decode(t, &res)
	if res.Decision != "stop" || res.IncidentID == "" {
		t.Fatalf("steps 0-5: %+v", res)
	}
	e.must(200, e.do("POST", "/api/v1/runs/r-sys/steps", agent, steps(6, 7, 20, 300))).decode(t, &res)
	if res.Decision != "stop" {
		t.Fatalf("steps 6-7: %+v", res)
	}
	e.must(200, e.do("POST", "/api/v1/runs/r-sys/complete", agent, map[string]any{"status": "completed"}))
	// Ended by its agent, the stopped run takes no more steps (but for a
	// while those that ended by its end); a re-sent one is still a no-op.
	var p problemDoc
	after := step(8, 20, 300)
	after["timestamp"] = time.Now().Add(time.Minute).UTC().Format(time.RFC3339Nano)
	e.must(409, e.do("POST", "/api/v1/runs/r-sys/steps", agent, map[string]any{"steps": []any{after}})).decode(t, &p)
	if !strings.Contains(p.Detail, "was stopped, and its agent ended it") {
		t.Errorf("a step after the end: %s", p.Detail)
	}
	e.must(200, e.do("POST", "/api/v1/runs/r-sys/steps", agent, steps(7, 7, 20, 300)))
	var rec struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	}
	e.must(201, e.do("POST", "/api/v1/exports", admin, map[string]any{"run_id": "r-sys", "format": "json"})).decode(t, &rec)
	if rec.Status != "completed" {
		t.Fatalf("export %+v", rec)
	}
	return rec.ID
}

func TestSystemTopic(t *testing.T) {
	storetest.Each(t, func(t *testing.T, store runproof.Store) {
		e := newEnv(t, store)
		admin, agent, viewer := e.key("acme", runproof.RoleAdmin), e.key("acme", runproof.RoleAgent), e.key("acme", runproof.RoleViewer)
		other := e.key("globex", runproof.RoleAdmin)
		exportID := systemRun(t, e, admin, agent)

		var run runproof.Run
		e.must(200, e.do("GET", "/api/v1/runs/r-sys", admin, nil)).decode(t, &run)
		var inc runproof.Incident
		e.must(200, e.do("GET", "/api/v1/incidents/"+run.IncidentID, admin, nil)).decode(t, &inc)
		var snap runproof.Snapshot
		e.must(200, e.do("GET", "/api/v1/logs/system/r-sys/snapshot", admin, nil)).decode(t, &snap)
		if run.Status != runproof.RunStopped || run.StoppedAt == nil || run.CompletedAt == nil || len(snap.Policies) != 2 {
			t.Fatalf("run %+v, snapshot %+v", run, snap)
		}
		policyIDs := []string{snap.Policies[0].ID, snap.Policies[1].ID} // cost cap, token budget

		t.Run("list", func(t *testing.T) {
			type item struct {
				RunID       string     `json:"run_id"`
				AgentID     string     `json:"agent_id"`
				SnapshotID  string     `json:"policy_snapshot_id"`
				Status      string     `json:"status"`
				StartedAt   time.Time  `json:"started_at"`
				StoppedAt   *time.Time `json:"stopped_at"`
				CompletedAt *time.Time `json:"completed_at"`
				IncidentID  string     `json:"incident_id"`
				StepCount   int64      `json:"step_count"`
			}
			type list struct {
				Items      []item                `json:"items"`
				NextCursor string                `json:"next_cursor"`
				Evidence   runproof.EvidenceMeta `json:"evidence"`
			}
			var all list
			r := e.must(200, e.do("GET", "/api/v1/logs/system", viewer, nil))
			r.decode(t, &all)
			if len(all.Items) != 2 || strings.Contains(string(r.body), `"next_cursor"`) { // absent on the last page
				t.Fatalf("list = %s", r.body)
			}
			got, old := all.Items[0], all.Items[1]
			if got.RunID != "r-sys" || got.AgentID != "support-bot" || got.SnapshotID != run.SnapshotID || got.Status != "stopped" ||
				!got.StartedAt.Equal(run.StartedAt) || got.StoppedAt == nil || !got.StoppedAt.Equal(*run.StoppedAt) ||
				got.CompletedAt == nil || !got.CompletedAt.Equal(*run.CompletedAt) || got.IncidentID != inc.ID || got.StepCount != 8 {
				t.Errorf("r-sys = %+v", got)
			}
			if old.RunID != "r-old" || old.Status != "running" || old.StoppedAt != nil || old.CompletedAt != nil || old.IncidentID != "" || old.StepCount != 0 {
				t.Errorf("r-old = %+v", old)
			}
			if ev := all.Evidence; ev.TenantID != "acme" || !slices.Equal(ev.IncidentIDs, []string{inc.ID}) || !strings.HasPrefix(ev.Checksum, "sha256:") {
				t.Errorf("evidence = %+v", ev)
			}

			// The same cursor pagination and filters as /logs/llm-runs.
			var p1, p2 list
			e.must(200, e.do("GET", "/api/v1/logs/system?limit=1", viewer, nil)).decode(t, &p1)
			if len(p1.Items) != 1 || p1.Items[0].RunID != "r-sys" || p1.NextCursor == "" {
				t.Fatalf("page 1 = %+v", p1)
			}
			e.must(200, e.do("GET", "/api/v1/logs/system?limit=1&cursor="+p1.NextCursor, viewer, nil)).decode(t, &p2)
			if len(p2.Items) != 1 || p2.Items[0].RunID != "r-old" || p2.NextCursor != "" {
				t.Fatalf("page 2 = %+v", p2)
			}
			for query, want := range map[string]string{"status=stopped": "r-sys", "agent_id=indexer": "r-old", "status=running": "r-old",
				"to=" + run.StartedAt.Add(-time.Second).Format(time.RFC3339Nano): "r-old"} {
				var l list
				e.must(200, e.do("GET", "/api/v1/logs/system?"+query, viewer, nil)).decode(t, &l)
				if len(l.Items) != 1 || l.Items[0].RunID != want {
					t.Errorf("%s: %+v", query, l.Items)
				}
			}
			e.must(422, e.do("GET", "/api/v1/logs/system?status=weird", viewer, nil))
			e.must(422, e.do("GET", "/api/v1/logs/system?cursor=!!", viewer, nil))

			var theirs list
			e.must(200, e.do("GET", "/api/v1/logs/system", other, nil)).decode(t, &theirs)
			if len(theirs.Items) != 0 || theirs.Evidence.TenantID != "globex" {
				t.Errorf("another tenant's list = %+v", theirs)
			}
		})

		t.Run("telemetry", func(t *testing.T) {
			type point struct {
				StepIndex            int64     `json:"step_index"`
				Timestamp            time.Time `json:"timestamp"`
				Status               string    `json:"status"`
				InputTokens          int64     `json:"input_tokens"`
				OutputTokens         int64     `json:"output_tokens"`
				Tokens               int64     `json:"tokens"`
				CostCents            float64   `json:"cost_cents"`
				DurationMs           float64   `json:"duration_ms"`
				CumulativeTokens     int64     `json:"cumulative_tokens"`
				CumulativeCostCents  float64   `json:"cumulative_cost_cents"`
				CumulativeDurationMs float64   `json:"cumulative_duration_ms"`
			}
			type limit struct {
				PolicyID               string  `json:"policy_id"`
				PolicyName             string  `json:"policy_name"`
				Type                   string  `json:"type"`
				Action                 string  `json:"action"`
				Threshold              float64 `json:"threshold"`
				Used                   float64 `json:"used"`
				UsedPercent            float64 `json:"used_percent"`
				FirstStep80Percent     *int64  `json:"first_step_80_percent"`
				FirstStepOverThreshold *int64  `json:"first_step_over_threshold"`
			}
			var tel struct {
				RunID      string  `json:"run_id"`
				SnapshotID string  `json:"policy_snapshot_id"`
				Points     []point `json:"points"`
				Totals     struct {
					Steps      int64   `json:"steps"`
					Tokens     int64   `json:"tokens"`
					CostCents  float64 `json:"cost_cents"`
					DurationMs float64 `json:"duration_ms"`
				} `json:"totals"`
				Limits   []limit               `json:"limits"`
				Evidence runproof.EvidenceMeta `json:"evidence"`
			}
			e.must(200, e.do("GET", "/api/v1/logs/system/r-sys/telemetry", viewer, nil)).decode(t, &tel)
			if tel.RunID != "r-sys" || tel.SnapshotID != run.SnapshotID || len(tel.Points) != 8 {
				t.Fatalf("telemetry = %+v", tel)
			}
			status := []string{"ok", "ok", "warning", "warning", "warning", "violation", "violation", "violation"}
			for i, p := range tel.Points {
				n := float64(i + 1)
				want := point{StepIndex: int64(i), Timestamp: base.Add(time.Duration(i) * time.Second), Status: status[i],
					InputTokens: 300, Tokens: 300, CostCents: 20, DurationMs: 250.5,
					CumulativeTokens: int64(300 * (i + 1)), CumulativeCostCents: 20 * n, CumulativeDurationMs: 250.5 * n}
				if !p.Timestamp.Equal(want.Timestamp) {
					t.Errorf("point %d timestamp %s, want %s", i, p.Timestamp, want.Timestamp)
				}
				p.Timestamp = want.Timestamp
				if p != want {
					t.Errorf("point %d = %+v, want %+v", i, p, want)
				}
			}
			if tot := tel.Totals; tot.Steps != 8 || tot.Tokens != 2400 || tot.CostCents != 160 || tot.DurationMs != 2004 {
				t.Errorf("totals = %+v", tot)
			}
			i := func(n int64) *int64 { return &n }
			want := []limit{
				{PolicyID: policyIDs[0], PolicyName: "cost cap", Type: "cost_limit", Action: "stop", Threshold: 100, Used: 160, UsedPercent: 160,
					FirstStep80Percent: i(3), FirstStepOverThreshold: i(5)},
				{PolicyID: policyIDs[1], PolicyName: "token budget", Type: "token_limit", Action: "warn", Threshold: 1000, Used: 2400, UsedPercent: 240,
					FirstStep80Percent: i(2), FirstStepOverThreshold: i(3)},
			}
			if len(tel.Limits) != len(want) {
				t.Fatalf("limits = %+v", tel.Limits)
			}
			for k, l := range tel.Limits {
				w := want[k]
				if l.PolicyID != w.PolicyID || l.PolicyName != w.PolicyName || l.Type != w.Type || l.Action != w.Action ||
					l.Threshold != w.Threshold || l.Used != w.Used || l.UsedPercent != w.UsedPercent ||
					*l.FirstStep80Percent != *w.FirstStep80Percent || *l.FirstStepOverThreshold != *w.FirstStepOverThreshold {
					t.Errorf("limit %d = %+v, want %+v", k, l, w)
				}
			}
			if ev := tel.Evidence; ev.RunID != "r-sys" || ev.TraceID != run.TraceID || !slices.Equal(ev.IncidentIDs, []string{inc.ID}) ||
				!slices.Equal(ev.PolicyIDs, policyIDs) {
				t.Errorf("evidence = %+v", ev)
			}

			// Pages of points: running totals go on from the steps before
			// the page; totals and limits are the whole run's.
			type page struct {
				Points []point               `json:"points"`
				Next   *int64                `json:"next_from_index"`
				Limits []limit               `json:"limits"`
				Totals struct{ Steps int64 } `json:"totals"`
			}
			var pg page
			e.must(200, e.do("GET", "/api/v1/logs/system/r-sys/telemetry?from_index=3&limit=2", viewer, nil)).decode(t, &pg)
			if len(pg.Points) != 2 || pg.Points[0].StepIndex != 3 || pg.Points[1].CumulativeTokens != 1500 ||
				pg.Next == nil || *pg.Next != 5 || pg.Totals.Steps != 8 || pg.Limits[0].Used != 160 || *pg.Limits[0].FirstStep80Percent != 3 {
				t.Errorf("page from 3 = %+v", pg)
			}
			pg = page{}
			e.must(200, e.do("GET", "/api/v1/logs/system/r-sys/telemetry?from_index=6&limit=2", viewer, nil)).decode(t, &pg)
			if len(pg.Points) != 2 || pg.Points[1].StepIndex != 7 || pg.Next != nil {
				t.Errorf("last page = %+v", pg)
			}
			e.must(422, e.do("GET", "/api/v1/logs/system/r-sys/telemetry?from_index=-1", viewer, nil))
			e.must(422, e.do("GET", "/api/v1/logs/system/r-sys/telemetry?limit=10001", viewer, nil))

			// A run with no steps: no points, nothing used.
			var clean struct {
				Points []point `json:"points"`
				Limits []limit `json:"limits"`
			}
			e.must(200, e.do("GET", "/api/v1/logs/system/r-old/telemetry", viewer, nil)).decode(t, &clean)
			if len(clean.Points) != 0 || len(clean.Limits) != 2 || clean.Limits[0].UsedPercent != 0 || clean.Limits[0].FirstStep80Percent != nil {
				t.Errorf("clean run telemetry = %+v", clean)
			}
		})

		t.Run("events", func(t *testing.T) {
			type event struct {
				At        time.Time      `json:"at"`
				Kind      string         `json:"kind"`
				StepIndex *int64         `json:"step_index"`
				Detail    map[string]any `json:"detail"`
			}
			var doc struct {
				RunID    string                `json:"run_id"`
				Events   []event               `json:"events"`
				Evidence runproof.EvidenceMeta `json:"evidence"`
			}
			e.must(200, e.do("GET", "/api/v1/logs/system/r-sys/events", admin, nil)).decode(t, &doc)
			var exp struct {
				Checksum    string     `json:"checksum"`
				CompletedAt *time.Time `json:"completed_at"`
			}
			e.must(200, e.do("GET", "/api/v1/exports/"+exportID, admin, nil)).decode(t, &exp)
			stepTime := func(i int) string { return base.Add(time.Duration(i) * time.Second).Format(time.RFC3339Nano) }
			want := []struct {
				kind   string
				step   int64 // -1: none
				at     time.Time
				detail map[string]any
			}{
				{"run.started", -1, run.CreatedAt, map[string]any{"agent_id": "support-bot", "policy_snapshot_id": run.SnapshotID,
					"policy_count": 2.0, "reported_at": run.StartedAt.Format(time.RFC3339Nano)}},
				{"step.warning", 2, inc.DetectedAt, map[string]any{"policy_id": policyIDs[1], "policy_name": "token budget", "policy_type": "token_limit",
					"action": "warn", "outcome": "approaching", "threshold": "1000", "actual": "900", "reported_at": stepTime(2)}},
				{"step.warning", 3, inc.DetectedAt, map[string]any{"policy_id": policyIDs[1], "policy_name": "token budget", "policy_type": "token_limit",
					"action": "warn", "outcome": "exceeded", "threshold": "1000", "actual": "1200", "reported_at": stepTime(3)}},
				{"incident.opened", 5, inc.DetectedAt, map[string]any{"incident_id": inc.ID, "policy_id": policyIDs[0], "policy_name": "cost cap",
					"policy_type": "cost_limit", "action": "stop", "threshold": "100", "actual": "120", "risk_level": string(inc.RiskLevel),
					"reported_at": stepTime(5)}},
				{"run.stopped", 5, *run.StoppedAt, map[string]any{"decision": "stop", "termination_reason": "policy_violation: cost cap", "incident_id": inc.ID,
					"reported_at": stepTime(5)}},
				{"steps.after_stop", 6, time.Time{}, map[string]any{"count": 2.0, "first_step_index": 6.0, "last_step_index": 7.0, "reported_at": stepTime(6)}},
				{"run.ended", -1, *run.CompletedAt, map[string]any{"status": "stopped", "ended_as": "completed", "termination_reason": "policy_violation: cost cap"}},
				{"export.completed", -1, *exp.CompletedAt, map[string]any{"export_id": exportID, "bundle_type": "evidence", "format": "json",
					"incident_id": inc.ID, "checksum": exp.Checksum}},
			}
			if len(doc.Events) != len(want) {
				t.Fatalf("%d events, want %d: %+v", len(doc.Events), len(want), doc.Events)
			}
			// A viewer, who may not read export records, sees the rest.
			var viewed struct {
				Events []service.SystemEvent `json:"events"`
			}
			e.must(200, e.do("GET", "/api/v1/logs/system/r-sys/events", viewer, nil)).decode(t, &viewed)
			if len(viewed.Events) != len(want)-1 || viewed.Events[len(viewed.Events)-1].Kind != "run.ended" {
				t.Errorf("a viewer's events: %+v", viewed.Events)
			}
			for i, ev := range doc.Events {
				w := want[i]
				step := int64(-1)
				if ev.StepIndex != nil {
					step = *ev.StepIndex
				}
				if ev.Kind != w.kind || step != w.step || (!w.at.IsZero() && !ev.At.Equal(w.at)) || !sameJSON(ev.Detail, w.detail) {
					t.Errorf("event %d = %+v %v, want %s step %d at %s %v", i, ev, ev.Detail, w.kind, w.step, w.at, w.detail)
				}
				if i > 0 && ev.At.Before(doc.Events[i-1].At) {
					t.Errorf("event %d (%s) is before event %d", i, ev.Kind, i-1)
				}
			}
			// The steps after the stop were recorded by the second call, after the stop.
			if after := doc.Events[5].At; !after.After(*run.StoppedAt) || after.After(*run.CompletedAt) {
				t.Errorf("steps.after_stop at %s, stopped at %s, ended at %s", after, run.StoppedAt, run.CompletedAt)
			}
			if ev := doc.Evidence; doc.RunID != "r-sys" || ev.RunID != "r-sys" || !slices.Equal(ev.IncidentIDs, []string{inc.ID}) {
				t.Errorf("run %q, evidence %+v", doc.RunID, ev)
			}

			// A clean run has only its start.
			var clean struct {
				Events []event `json:"events"`
			}
			e.must(200, e.do("GET", "/api/v1/logs/system/r-old/events", viewer, nil)).decode(t, &clean)
			if len(clean.Events) != 1 || clean.Events[0].Kind != "run.started" {
				t.Errorf("clean run events = %+v", clean.Events)
			}
		})

		t.Run("replay", func(t *testing.T) {
			// An audit event in the window, which only a key that reads
			// the audit log sees.
			if err := e.svc.Record(context.Background(), runproof.AuditEvent{TenantID: "acme", OccurredAt: inc.ViolationAt, Actor: "key_1",
				ActorType: runproof.OriginHuman, Category: runproof.AuditAccess, Action: "GET /api/v1/logs/llm-runs", Decision: runproof.DecisionAllow,
				SourceComponent: "api"}); err != nil {
				t.Fatal(err)
			}
			audited := func(key, path string) int {
				t.Helper()
				var rp struct {
					Items []struct {
						Source string `json:"source"`
					} `json:"items"`
					AuditEvents int `json:"audit_events"`
				}
				e.must(200, e.do("GET", path, key, nil)).decode(t, &rp)
				n := 0
				for _, it := range rp.Items {
					if it.Source == "audit" {
						n++
					}
				}
				if n != rp.AuditEvents || len(rp.Items) == n {
					t.Errorf("%s: %d audit items, audit_events %d, %d items", path, n, rp.AuditEvents, len(rp.Items))
				}
				return n
			}
			for _, path := range []string{"/api/v1/logs/llm-runs/r-sys/replay", "/api/v1/logs/system/r-sys/replay"} {
				if n := audited(admin, path); n == 0 {
					t.Errorf("admin's %s holds no audit event", path)
				}
				for _, key := range []string{viewer, e.key("acme", runproof.RoleExporter)} {
					if n := audited(key, path); n != 0 {
						t.Errorf("%s shows %d audit events to a key that may not read the audit log", path, n)
					}
				}
				e.must(403, e.do("GET", path, agent, nil)) // an agent reads no log at all
			}
		})

		t.Run("audit", func(t *testing.T) {
			ctx := context.Background()
			t0 := time.Now().Add(-10 * time.Minute)
			for _, ev := range []runproof.AuditEvent{
				{ID: "sys-1", TenantID: "acme", OccurredAt: t0, Actor: "system", ActorType: runproof.OriginSystem,
					Category: runproof.AuditIntegrity, Action: "ledger verify", Decision: runproof.DecisionAllow, SourceComponent: "cli", Detail: "ok"},
				{ID: "sys-2", TenantID: "acme", OccurredAt: t0.Add(time.Minute), Actor: "exporter-job", ActorType: runproof.OriginSystem,
					Category: runproof.AuditWrite, Action: "export", Decision: runproof.DecisionAllow, SourceComponent: "scheduler"},
				{ID: "sys-3", TenantID: "globex", OccurredAt: t0, Actor: "system", ActorType: runproof.OriginSystem,
					Category: runproof.AuditIdentity, Action: "keys create", Decision: runproof.DecisionAllow, SourceComponent: "cli"},
			} {
				if err := e.svc.Record(ctx, ev); err != nil {
					t.Fatal(err)
				}
			}
			auditor := e.key("acme", runproof.RoleAuditor)
			ids := func(key, query string) []string {
				t.Helper()
				var l struct {
					Items    []runproof.AuditEvent `json:"items"`
					Evidence runproof.EvidenceMeta `json:"evidence"`
				}
				e.must(200, e.do("GET", "/api/v1/logs/system/audit"+query, key, nil)).decode(t, &l)
				out := []string{}
				for _, ev := range l.Items {
					out = append(out, ev.ID)
				}
				if l.Evidence.Checksum == "" {
					t.Errorf("no evidence: %+v", l.Evidence)
				}
				return out
			}
			// The keys above were made through the service, which records
			// nothing; every API call is recorded with source api: none of
			// them is listed.
			for query, want := range map[string][]string{
				"":                  {"sys-2", "sys-1"},
				"?limit=1":          {"sys-2"},
				"?limit=1&offset=1": {"sys-1"},
				"?offset=2":         {},
				"?to=" + t0.Add(30*time.Second).UTC().Format(time.RFC3339Nano): {"sys-1"},
			} {
				if got := ids(auditor, query); !slices.Equal(got, want) {
					t.Errorf("system audit%s = %v, want %v", query, got, want)
				}
			}
			if got := ids(other, ""); !slices.Equal(got, []string{"sys-3"}) {
				t.Errorf("globex's system audit = %v", got)
			}
			e.must(403, e.do("GET", "/api/v1/logs/system/audit", viewer, nil))
			e.must(422, e.do("GET", "/api/v1/logs/system/audit?limit=0", auditor, nil))
			// The audit route does not shadow a run called "audit".
			e.must(201, e.do("POST", "/api/v1/runs", agent, map[string]any{"run_id": "audit", "agent_id": "bot"}))
			e.must(200, e.do("GET", "/api/v1/logs/system/audit/snapshot", viewer, nil))
			e.must(200, e.do("GET", "/api/v1/logs/system/audit/events", viewer, nil))
		})

		t.Run("access", func(t *testing.T) {
			for _, p := range []string{"/api/v1/logs/system/r-sys/telemetry", "/api/v1/logs/system/r-sys/events"} {
				e.must(404, e.do("GET", p, other, nil))
				e.must(401, e.do("GET", p, "", nil))
				e.must(405, e.do("POST", p, admin, map[string]any{}))
				e.must(403, e.do("GET", p, agent, nil)) // an agent reads no log
				e.must(200, e.do("GET", p, viewer, nil))
			}
			e.must(404, e.do("GET", "/api/v1/logs/system/nope/telemetry", admin, nil))
			e.must(404, e.do("GET", "/api/v1/logs/system/nope/events", admin, nil))
			e.must(403, e.do("GET", "/api/v1/logs/system/audit", agent, nil))
		})
	})
}

// sameJSON reports whether got, decoded from JSON, holds exactly want.
func sameJSON(got, want map[string]any) bool {
	if len(got) != len(want) {
		return false
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			return false
		}
	}
	return true
}

package service

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"

	"github.com/runproof/runproof/internal/otlp"
	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/store/storetest"
)

// stepsStart is when the steps of stepJSON start: an hour before the tests.
var stepsStart = time.Now().Add(-time.Hour).Truncate(time.Second)

// stepJSON is one step as an agent sends it, at index i, i seconds after
// stepsStart; extra members replace the defaults.
func stepJSON(i int, extra map[string]any) map[string]any {
	s := map[string]any{"step_index": i, "timestamp": stepsStart.Add(time.Duration(i) * time.Second).Format(time.RFC3339Nano),
		"step_type": "llm:gpt-4o", "input_tokens": 10, "output_tokens": 5, "cost_cents": 1.5, "duration_ms": 250,
		"content": map[string]any{"prompt": fmt.Sprintf("step %d", i)}}
	for k, v := range extra {
		s[k] = v
	}
	return s
}

// appendJSON sends steps as the HTTP API does: decoded, then appended.
func appendJSON(t testing.TB, svc *Service, tenant, run string, steps ...map[string]any) (StepsResult, error) {
	t.Helper()
	body, err := json.Marshal(map[string]any{"steps": steps})
	if err != nil {
		t.Fatal(err)
	}
	decoded, err := DecodeSteps(body, svc.Now())
	if err != nil {
		return StepsResult{}, err
	}
	return svc.AppendSteps(context.Background(), tenant, run, decoded)
}

// wantField fails unless err is EINVALID naming field first.
func wantField(t *testing.T, err error, field string) {
	t.Helper()
	if runproof.ErrorCode(err) != runproof.EINVALID {
		t.Fatalf("error %v (code %q), want %s naming %s", err, runproof.ErrorCode(err), runproof.EINVALID, field)
	}
	if f := runproof.ErrorFields(err); len(f) == 0 || f[0].Field != field {
		t.Fatalf("error names %+v, want %s", f, field)
	}
}

// openRun creates a run with the tenant's active policies.
func openRun(t testing.TB, svc *Service, tenant, run string) {
	t.Helper()
	if _, _, err := svc.CreateRun(context.Background(), tenant, RunInput{RunID: run, AgentID: "bot"}); err != nil {
		t.Fatal(err)
	}
}

// TestStepValuesBounded: no value or running total can exceed 2^53, so no
// sum wraps around and every number reads back exactly from JSON.
func TestStepValuesBounded(t *testing.T) {
	storetest.Each(t, func(t *testing.T, store runproof.Store) {
		ctx := context.Background()
		svc := New(store, Options{})
		if _, err := svc.CreatePolicies(ctx, "acme", PolicyInput{Name: "cost cap", Type: runproof.PolicyCostLimit, Threshold: "100", Action: runproof.ActionStop}); err != nil {
			t.Fatal(err)
		}
		openRun(t, svc, "acme", "r1")
		for _, tt := range []struct {
			name  string
			step  map[string]any
			field string
		}{
			{"cost", map[string]any{"cost_cents": 10000000000000}, "steps[0].cost_cents"},
			{"cost just over", map[string]any{"cost_cents": 1000000000.000001}, "steps[0].cost_cents"},
			{"cost with 16 digits", map[string]any{"cost_cents": json.Number("9000000000.123456")}, "steps[0].cost_cents"},
			{"duration", map[string]any{"duration_ms": 1e16}, "steps[0].duration_ms"},
			{"input tokens", map[string]any{"input_tokens": int64(1)<<53 + 1}, "steps[0].input_tokens"},
			{"output tokens", map[string]any{"output_tokens": int64(1) << 62}, "steps[0].output_tokens"},
		} {
			_, err := appendJSON(t, svc, "acme", "r1", stepJSON(0, tt.step))
			wantField(t, err, tt.field)
			if msg := runproof.ErrorFields(err)[0].Message; len(msg) < 16 || msg[:16] != "must be at most " {
				t.Errorf("%s: message %q", tt.name, msg)
			}
		}

		// Values at the bound are taken; a step that would bring a running
		// total past it is refused, and nothing of its call is stored.
		if _, err := appendJSON(t, svc, "acme", "r1", stepJSON(0, map[string]any{"input_tokens": int64(1) << 52, "output_tokens": int64(1) << 52})); err != nil {
			t.Fatal(err)
		}
		_, err := appendJSON(t, svc, "acme", "r1", stepJSON(1, nil), stepJSON(2, map[string]any{"input_tokens": 0, "output_tokens": 1}))
		wantField(t, err, "steps[0].input_tokens")
		openRun(t, svc, "acme", "r2")
		_, err = appendJSON(t, svc, "acme", "r2", stepJSON(0, map[string]any{"cost_cents": 1000000000}), stepJSON(1, map[string]any{"cost_cents": 0.000001}))
		wantField(t, err, "steps[1].cost_cents")
		for _, id := range []string{"r1", "r2"} {
			run, err := store.GetRun(ctx, "acme", id)
			if err != nil || run.Totals.Steps > 1 || run.Totals.CostMicrocents < 0 {
				t.Fatalf("run %s: totals %+v, %v", id, run.Totals, err)
			}
		}
	})
}

// TestFailingExpression: an expression that fails on a step (a division by
// zero) neither refuses the call nor stops the run: the step is stored as a
// warning with the failure among its findings, and governance counts it.
// OTLP ingest, which retries when another export takes the next indexes,
// stores such spans at once.
func TestFailingExpression(t *testing.T) {
	storetest.Each(t, func(t *testing.T, store runproof.Store) {
		ctx := context.Background()
		svc := New(store, Options{})
		if _, err := svc.CreatePolicies(ctx, "acme", PolicyInput{Name: "ratio", Type: runproof.PolicyExpression,
			Expression: "run.tokens / step.tokens > 10", Action: runproof.ActionStop}); err != nil {
			t.Fatal(err)
		}
		openRun(t, svc, "acme", "r1")
		res, err := appendJSON(t, svc, "acme", "r1", stepJSON(0, nil),
			stepJSON(1, map[string]any{"input_tokens": 0, "output_tokens": 0}), stepJSON(2, nil))
		if err != nil {
			t.Fatal(err)
		}
		if res.Decision != AgentAllow || res.Steps[1].Status != runproof.StepWarning || res.Steps[0].Status != runproof.StepOK {
			t.Fatalf("result %+v", res)
		}
		page, err := svc.Trace(ctx, "acme", "r1", 0, 0)
		steps := page.Steps
		if err != nil || len(steps) != 3 {
			t.Fatalf("%d steps stored, %v", len(steps), err)
		}
		if f := steps[1].Findings; len(f) != 1 || f[0].Outcome != runproof.OutcomeFailed || f[0].PolicyName != "ratio" ||
			!strings.Contains(f[0].Error, "division by zero") {
			t.Fatalf("findings %+v", f)
		}
		g, err := svc.Governance(ctx, "acme", "r1")
		if err != nil {
			t.Fatal(err)
		}
		e := g.Evaluations[0]
		if e.StepsFailed != 1 || e.FirstFailedStep == nil || *e.FirstFailedStep != 1 || e.Breached ||
			!strings.Contains(e.LastError, "division by zero") || len(g.Incidents) != 0 {
			t.Fatalf("governance %+v", g)
		}

		// The first span of otlpRequest has no tokens.
		const trace = "2cf7651916cd43dd8448eb211c80319e"
		for _, r := range otlp.Map(otlpRequest(trace, 0, 3), otlp.Options{Now: time.Now()}).Runs {
			sr, err := svc.IngestSpans(ctx, "acme", r)
			if err != nil || len(sr.Rejected) > 0 || len(sr.Steps) != 3 || sr.Steps[0].Status != runproof.StepWarning {
				t.Fatalf("spans: %+v, %v", sr, err)
			}
		}
	})
}

// TestIngestSpansRefused: spans that AppendSteps refuses for what they hold
// (here a run's tokens past 2^53) are rejected at once, not retried as if
// another export had taken their indexes, and open no run.
func TestIngestSpansRefused(t *testing.T) {
	storetest.Each(t, func(t *testing.T, store runproof.Store) {
		svc := New(store, Options{})
		const trace = "3df7651916cd43dd8448eb211c80319f"
		req := otlpRequest(trace, 0, 2)
		for _, sp := range req.ResourceSpans[0].ScopeSpans[0].Spans {
			sp.Attributes[0].Value.Value = &commonpb.AnyValue_IntValue{IntValue: runproof.MaxExact}
		}
		for _, r := range otlp.Map(req, otlp.Options{Now: time.Now()}).Runs {
			res, err := svc.IngestSpans(context.Background(), "acme", r)
			if err != nil || len(res.Rejected) != 2 || len(res.Steps) != 0 {
				t.Fatalf("result %+v, error %v", res, err)
			}
			// Both name the span at fault, the second one, by its id.
			for _, rj := range res.Rejected {
				if want := "span " + r.Spans[1].SpanID + ": input_tokens would bring"; !strings.HasPrefix(rj.Reason, want) {
					t.Errorf("rejected %s: %q, want it to start %q", rj.SpanID, rj.Reason, want)
				}
			}
			// None stored: no run was opened for them.
			if _, err := store.GetRun(context.Background(), "acme", r.ID); runproof.ErrorCode(err) != runproof.ENOTFOUND {
				t.Errorf("a run whose every span was refused: %v, want not found", err)
			}
		}
	})
}

// TestKeyNames: a key's name is kept without surrounding white space, and
// a blank one is its role, as no name is.
func TestKeyNames(t *testing.T) {
	svc := New(storetest.OpenSQLite(t), Options{})
	for name, want := range map[string]string{"  Ada Lovelace ": "Ada Lovelace", "   ": "auditor", "": "auditor"} {
		_, k, err := svc.CreateAPIKey(context.Background(), "acme", KeyInput{Role: runproof.RoleAuditor, Name: name})
		if err != nil || k.Name != want {
			t.Errorf("name %q: %q, %v; want %q", name, k.Name, err, want)
		}
	}
}

// TestTenantIDs: a tenant id names the directory of the tenant's export
// artifacts, so "." and ids holding ".." are refused when a key is made,
// and a key of such a tenant stored before is not accepted.
func TestTenantIDs(t *testing.T) {
	storetest.Each(t, func(t *testing.T, store runproof.Store) {
		ctx := context.Background()
		svc := New(store, Options{})
		for _, bad := range []string{"a..b", "..", ".", "...", "a/b", "", strings.Repeat("a", 129)} {
			_, _, err := svc.CreateAPIKey(ctx, bad, KeyInput{Role: runproof.RoleAdmin})
			wantField(t, err, "tenant")
		}
		for _, good := range []string{"a.b", ".a", "acme:eu-1", "x_y.z-", strings.Repeat("a", 128)} {
			if _, _, err := svc.CreateAPIKey(ctx, good, KeyInput{Role: runproof.RoleAdmin}); err != nil {
				t.Errorf("tenant %q: %v", good, err)
			}
		}
		secret := KeyPrefix + strings.Repeat("ab", 32)
		if err := store.CreateAPIKey(ctx, runproof.APIKey{ID: "key_old", TenantID: "a..b", Role: runproof.RoleAdmin,
			Name: "old", Hash: HashKey(secret), CreatedAt: svc.Now()}); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.Authenticate(ctx, secret); runproof.ErrorCode(err) != runproof.EUNAUTHORIZED {
			t.Fatalf("key of tenant a..b: %v", err)
		}
	})
}

// TestResendAfterEnd: re-sending identical steps of an ended run is a no-op
// answered from the stored outcome; only new steps are refused.
func TestResendAfterEnd(t *testing.T) {
	storetest.Each(t, func(t *testing.T, store runproof.Store) {
		ctx := context.Background()
		svc := New(store, Options{})
		if _, _, err := svc.CreateRun(ctx, "acme", RunInput{RunID: "r1", AgentID: "bot", StartedAt: stepsStart.Format(time.RFC3339Nano)}); err != nil {
			t.Fatal(err)
		}
		first, err := appendJSON(t, svc, "acme", "r1", stepJSON(0, nil), stepJSON(1, nil))
		if err != nil {
			t.Fatal(err)
		}
		// ended after step 1 and before step 2 began
		end := stepsStart.Add(1500 * time.Millisecond).Format(time.RFC3339Nano)
		if _, err := svc.CompleteRun(ctx, "acme", "r1", CompleteInput{CompletedAt: end}); err != nil {
			t.Fatal(err)
		}
		again, err := appendJSON(t, svc, "acme", "r1", stepJSON(0, nil), stepJSON(1, nil))
		a, _ := json.Marshal(again)
		b, _ := json.Marshal(first)
		if err != nil || string(a) != string(b) || !again.Steps[0].Resent || first.Steps[0].Resent {
			t.Fatalf("re-send after the end: %+v, %v; first answer %+v", again, err, first)
		}
		later := stepJSON(2, map[string]any{"timestamp": stepsStart.Add(5 * time.Second).Format(time.RFC3339Nano)}) // begun after the end
		for _, batch := range [][]map[string]any{{later}, {stepJSON(1, nil), later}} {
			if _, err := appendJSON(t, svc, "acme", "r1", batch...); runproof.ErrorCode(err) != runproof.ECONFLICT {
				t.Fatalf("new step after the end: %v, want %s", err, runproof.ECONFLICT)
			}
		}
		if run, err := store.GetRun(ctx, "acme", "r1"); err != nil || run.Totals.Steps != 2 || run.Status != runproof.RunCompleted {
			t.Fatalf("run %+v, %v", run, err)
		}
	})
}

// TestLateSteps: a run that ended takes, for LateGrace, the steps that
// ended by its end (a root span can reach runproof before its last child).
// One that breaks a stop policy opens an incident of a run that ended on
// its own: nothing to stop, nothing contained.
func TestLateSteps(t *testing.T) {
	storetest.Each(t, func(t *testing.T, store runproof.Store) {
		ctx := context.Background()
		end := stepsStart.Add(10 * time.Second)
		// The end reaches runproof an hour after the agent's time for it
		// (an agent's clock behind, a root span sent late): the window runs
		// from when runproof recorded it.
		clock := end.Add(time.Hour)
		svc := New(store, Options{Now: func() time.Time { return clock }})
		if _, err := svc.CreatePolicies(ctx, "acme", PolicyInput{Name: "cost cap", Type: runproof.PolicyCostLimit, Threshold: "4", Action: runproof.ActionStop}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := svc.CreateRun(ctx, "acme", RunInput{RunID: "r1", AgentID: "bot", StartedAt: stepsStart.Format(time.RFC3339Nano)}); err != nil {
			t.Fatal(err)
		}
		if _, err := appendJSON(t, svc, "acme", "r1", stepJSON(0, nil), stepJSON(1, nil)); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.CompleteRun(ctx, "acme", "r1", CompleteInput{CompletedAt: end.Format(time.RFC3339Nano)}); err != nil {
			t.Fatal(err)
		}
		late, err := appendJSON(t, svc, "acme", "r1", stepJSON(2, nil))
		if err != nil || late.Decision != AgentAllow || !late.Steps[0].IsInflection || late.IncidentID == "" {
			t.Fatalf("a late step over the limit: %+v, %v", late, err)
		}
		run, err := store.GetRun(ctx, "acme", "r1")
		if err != nil || run.Status != runproof.RunCompleted || run.StoppedAt != nil || run.IncidentID == "" || run.Totals.Steps != 3 {
			t.Fatalf("run %+v, %v", run, err)
		}
		inc, err := store.GetIncident(ctx, "acme", run.IncidentID)
		if err != nil || inc.ContainedAt != nil || inc.InflectionStepIndex != 2 {
			t.Fatalf("incident %+v, %v", inc, err)
		}
		after := map[string]any{"timestamp": end.Add(time.Second).Format(time.RFC3339Nano)} // ends past the end
		if _, err := appendJSON(t, svc, "acme", "r1", stepJSON(3, after)); runproof.ErrorCode(err) != runproof.ECONFLICT {
			t.Errorf("a step that ended after the run: %v, want %s", err, runproof.ECONFLICT)
		}
		clock = end.Add(time.Hour + LateGrace)
		if _, err := appendJSON(t, svc, "acme", "r1", stepJSON(3, nil)); runproof.ErrorCode(err) != runproof.ECONFLICT ||
			!strings.Contains(err.Error(), "is completed: it takes no more steps (this one came more than 5 minutes after the run ended)") {
			t.Errorf("a step %v after the end was recorded: %v, want %s", LateGrace, err, runproof.ECONFLICT)
		}
	})
}

// TestCreateRunConcurrently: identical POST /runs sent at once all answer
// the one run stored, whichever came first; exactly one created it.
// TestCreateRunAgain: a run sent again as it was is the stored run; sent
// with other fields, a conflict naming them.
func TestCreateRunAgain(t *testing.T) {
	ctx := context.Background()
	svc := New(storetest.OpenSQLite(t), Options{})
	in := RunInput{RunID: "r1", AgentID: "bot", Goal: "answer"}
	first, _, err := svc.CreateRun(ctx, "acme", in)
	if err != nil {
		t.Fatal(err)
	}
	if again, created, err := svc.CreateRun(ctx, "acme", in); err != nil || created || again.SnapshotID != first.SnapshotID {
		t.Errorf("sent again: %+v, created %v, %v", again, created, err)
	}
	_, _, err = svc.CreateRun(ctx, "acme", RunInput{RunID: "r1", AgentID: "other", Goal: "ask"})
	if runproof.ErrorCode(err) != runproof.ECONFLICT || !strings.Contains(err.Error(), "another agent_id, goal:") {
		t.Errorf("sent with other fields: %v", err)
	}
	if f := runproof.ErrorFields(err); len(f) != 2 || f[0].Field != "agent_id" || f[1].Field != "goal" {
		t.Errorf("sent with other fields: the error names %+v, want agent_id and goal", f)
	}
}

func TestCreateRunConcurrently(t *testing.T) {
	storetest.Each(t, func(t *testing.T, store runproof.Store) {
		svc := New(store, Options{})
		for round := range 5 {
			in := RunInput{RunID: fmt.Sprintf("r%d", round), AgentID: "bot", Goal: "answer"}
			var (
				wg      sync.WaitGroup
				mu      sync.Mutex
				created int
				errs    []error
			)
			for range 16 {
				wg.Go(func() {
					run, c, err := svc.CreateRun(context.Background(), "acme", in)
					mu.Lock()
					defer mu.Unlock()
					if err == nil && run.ID != in.RunID {
						err = fmt.Errorf("run %q", run.ID)
					}
					if err != nil {
						errs = append(errs, err)
					}
					if c {
						created++
					}
				})
			}
			wg.Wait()
			if len(errs) > 0 || created != 1 {
				t.Fatalf("run %s: created %d times, errors %v", in.RunID, created, errs)
			}
		}
	})
}

// TestReplayAuditEvents: a replay holds every audit event of its window, over
// as many pages as it takes, up to MaxReplayAuditEvents; past that it says it
// is truncated, and how many it holds.
func TestReplayAuditEvents(t *testing.T) {
	storetest.Each(t, func(t *testing.T, store runproof.Store) {
		ctx := context.Background()
		svc := New(store, Options{})
		centre := stepsStart
		if _, _, err := svc.CreateRun(ctx, "acme", RunInput{RunID: "r1", AgentID: "bot", StartedAt: centre.Format(time.RFC3339)}); err != nil {
			t.Fatal(err)
		}
		// n events from 29 s before the centre on, one every 5 ms, and
		// one outside the window on each side.
		add := func(n int) {
			t.Helper()
			events := []runproof.AuditEvent{{OccurredAt: centre.Add(-31 * time.Second)}, {OccurredAt: centre.Add(31 * time.Second)}}
			for i := range n {
				events = append(events, runproof.AuditEvent{OccurredAt: centre.Add(-29*time.Second + time.Duration(i)*5*time.Millisecond)})
			}
			for i := range events {
				events[i].TenantID, events[i].Actor, events[i].ActorType = "acme", "key_1", runproof.OriginAgent
				events[i].Category, events[i].Action, events[i].Decision = runproof.AuditAccess, "GET /api/v1/logs/llm-runs", runproof.DecisionAllow
			}
			if err := svc.Record(ctx, events...); err != nil {
				t.Fatal(err)
			}
		}
		count := func() (Replay, int) {
			t.Helper()
			rp, err := svc.Replay(ctx, "acme", "r1", true)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, it := range rp.Items {
				if it.Source == "audit" {
					n++
				}
			}
			return rp, n
		}
		add(2500)
		if rp, n := count(); n != 2500 || rp.AuditEvents != 2500 || rp.Truncated {
			t.Fatalf("%d audit events in the replay (audit_events %d, truncated %v), want 2500", n, rp.AuditEvents, rp.Truncated)
		}
		// A caller who may not read the audit log sees none of them.
		if rp, err := svc.Replay(ctx, "acme", "r1", false); err != nil || rp.AuditEvents != 0 || len(rp.Items) != 1 || rp.Items[0].Kind != EventRunStarted {
			t.Fatalf("replay without the audit log: %+v, %v", rp, err)
		}
		add(MaxReplayAuditEvents - 2500)
		if rp, n := count(); n != MaxReplayAuditEvents || rp.Truncated {
			t.Fatalf("%d audit events in the replay (truncated %v), want %d", n, rp.Truncated, MaxReplayAuditEvents)
		}
		add(1)
		if rp, n := count(); n != MaxReplayAuditEvents || rp.AuditEvents != n || !rp.Truncated {
			t.Fatalf("%d audit events in the replay (audit_events %d, truncated %v), want %d, truncated", n, rp.AuditEvents, rp.Truncated, MaxReplayAuditEvents)
		}
	})
}

// TestReplayAuditTies: audit events of the same time are in the replay in
// the order they were recorded (of their ids), as the rest of it, oldest
// first.
func TestReplayAuditTies(t *testing.T) {
	ctx := context.Background()
	svc := New(storetest.OpenSQLite(t), Options{})
	centre := stepsStart
	if _, _, err := svc.CreateRun(ctx, "acme", RunInput{RunID: "r1", AgentID: "bot", StartedAt: centre.Format(time.RFC3339)}); err != nil {
		t.Fatal(err)
	}
	var events []runproof.AuditEvent
	for _, id := range []string{"a", "b", "c"} {
		events = append(events, runproof.AuditEvent{ID: "0195a3c5-0000-7000-8000-00000000000" + id, TenantID: "acme", OccurredAt: centre.Add(time.Second),
			Actor: "key_1", ActorType: runproof.OriginHuman, Category: runproof.AuditAccess, Action: "GET /api/v1/logs/llm-runs/" + id, Decision: runproof.DecisionAllow})
	}
	if err := svc.Record(ctx, events...); err != nil {
		t.Fatal(err)
	}
	rp, err := svc.Replay(ctx, "acme", "r1", true)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, it := range rp.Items {
		if it.Source == "audit" {
			got = append(got, it.Kind[len(it.Kind)-1:])
		}
	}
	if strings.Join(got, "") != "abc" {
		t.Errorf("audit events of one time in the order %v, want a, b, c", got)
	}
}

// TestReplaySystemEvents: a replay's system items are the run's system
// events, named as SystemEvents names them; those of a run sent long after
// it ran are placed by the agent's times, which the window is of.
func TestReplaySystemEvents(t *testing.T) {
	ctx := context.Background()
	svc := New(storetest.OpenSQLite(t), Options{})
	if _, err := svc.CreatePolicies(ctx, "acme", PolicyInput{Name: "cap", Type: runproof.PolicyStepLimit, Threshold: "1", Action: runproof.ActionStop}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		run  string
		at   time.Time
		want []string
	}{
		{"now", time.Now().UTC(), []string{EventRunStarted, EventIncidentOpened, EventRunStopped, EventRunEnded}},
		// Its stop is placed by the step that broke the rule, as the
		// incident is; its end is the server's, a year later, outside the
		// window.
		{"last-year", time.Now().UTC().AddDate(-1, 0, 0), []string{EventRunStarted, EventIncidentOpened, EventRunStopped}},
	} {
		t.Run(c.run, func(t *testing.T) {
			replaySystemEvents(t, svc, c.run, c.at, c.want)
		})
	}
}

func replaySystemEvents(t *testing.T, svc *Service, runID string, at time.Time, want []string) {
	ctx := context.Background()
	ts := at.Format(time.RFC3339Nano)
	if _, _, err := svc.CreateRun(ctx, "acme", RunInput{RunID: runID, AgentID: "bot", StartedAt: ts}); err != nil {
		t.Fatal(err)
	}
	if _, err := appendJSON(t, svc, "acme", runID, stepJSON(0, map[string]any{"timestamp": ts}), stepJSON(1, map[string]any{"timestamp": ts})); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.CompleteRun(ctx, "acme", runID, CompleteInput{Status: runproof.RunCancelled}); err != nil {
		t.Fatal(err)
	}
	rp, err := svc.Replay(ctx, "acme", runID, false)
	if err != nil {
		t.Fatal(err)
	}
	events, err := svc.SystemEvents(ctx, "acme", runID, false)
	if err != nil {
		t.Fatal(err)
	}
	told := map[string]SystemEvent{}
	for _, ev := range events.Events {
		told[ev.Kind] = ev
	}
	var kinds []string
	for _, it := range rp.Items {
		if it.Source != "system" {
			continue
		}
		kinds = append(kinds, it.Kind)
		if !reflect.DeepEqual(it.Data, told[it.Kind]) {
			t.Errorf("%s: the replay tells %+v, the run's events %+v", it.Kind, it.Data, told[it.Kind])
		}
	}
	if !slices.Equal(kinds, want) {
		t.Errorf("system items %v, want %v", kinds, want)
	}
}

// appendSteps sends a run n steps (stepJSON), a millisecond apart from an
// hour ago, as many a call as a call may hold.
func appendSteps(t *testing.T, svc *Service, tenant, run string, n int) {
	t.Helper()
	start := time.Now().Add(-time.Hour)
	for from := 0; from < n; from += MaxStepsPerCall {
		batch := make([]map[string]any, 0, MaxStepsPerCall)
		for i := from; i < min(from+MaxStepsPerCall, n); i++ {
			at := start.Add(time.Duration(i) * time.Millisecond).Format(time.RFC3339Nano)
			batch = append(batch, stepJSON(i, map[string]any{"timestamp": at}))
		}
		if _, err := appendJSON(t, svc, tenant, run, batch...); err != nil {
			t.Fatal(err)
		}
	}
}

// TestGovernanceAcrossPages: governance counts every step of a run longer
// than one page of steps.
func TestGovernanceAcrossPages(t *testing.T) {
	ctx := context.Background()
	svc := New(storetest.OpenSQLite(t), Options{})
	const steps, limit = MaxTracePage + 50, MaxTracePage + 20
	if _, err := svc.CreatePolicies(ctx, "acme", PolicyInput{Name: "long", Type: runproof.PolicyStepLimit,
		Threshold: Threshold(strconv.Itoa(limit)), Action: runproof.ActionWarn}); err != nil {
		t.Fatal(err)
	}
	openRun(t, svc, "acme", "r1")
	appendSteps(t, svc, "acme", "r1", steps)
	g, err := svc.Governance(ctx, "acme", "r1")
	if err != nil {
		t.Fatal(err)
	}
	// Over the limit from step index limit on: steps - limit of them.
	e := g.Evaluations[0]
	if e.StepsExceeded != steps-limit || e.FirstExceededStep == nil || *e.FirstExceededStep != limit || !e.Breached {
		t.Errorf("evaluation %+v", e)
	}
	// The system events find the breach on the second page too.
	events, err := svc.SystemEvents(ctx, "acme", "r1", false)
	if err != nil {
		t.Fatal(err)
	}
	var warnings []int64
	for _, ev := range events.Events {
		if ev.Kind == EventStepWarning {
			warnings = append(warnings, *ev.StepIndex)
		}
	}
	if len(warnings) != 2 || warnings[1] != limit {
		t.Errorf("step warnings at %v, want the first approach and the breach at %d", warnings, limit)
	}
	// So does the telemetry, with a point a step, in two pages.
	tel, err := svc.Telemetry(ctx, "acme", "r1", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if u := tel.Limits[0]; len(tel.Points) != MaxTracePage || tel.NextFromIndex == nil || *tel.NextFromIndex != MaxTracePage ||
		tel.Totals.Steps != steps || u.FirstStepOverThreshold == nil || *u.FirstStepOverThreshold != limit {
		t.Errorf("telemetry: %d points, next %v, totals %+v, limit %+v", len(tel.Points), tel.NextFromIndex, tel.Totals, u)
	}
	if tel, err = svc.Telemetry(ctx, "acme", "r1", *tel.NextFromIndex, 0); err != nil {
		t.Fatal(err)
	}
	if n := len(tel.Points); n != steps-MaxTracePage || tel.NextFromIndex != nil || tel.Points[n-1].CumulativeTokens != int64(steps)*15 {
		t.Errorf("telemetry's last page: %d points, next %v", n, tel.NextFromIndex)
	}
}

// TestSystemEventsLifeOrder: events recorded at the same time are listed
// in the order of the run's life: the stop a step caused before what the
// steps sent after it broke.
func TestSystemEventsLifeOrder(t *testing.T) {
	ctx := context.Background()
	svc := New(storetest.OpenSQLite(t), Options{})
	for _, p := range []PolicyInput{
		{Name: "a-steps", Type: runproof.PolicyStepLimit, Threshold: "1", Action: runproof.ActionWarn},
		{Name: "b-deny", Type: runproof.PolicyStepTypeDenied, StepTypes: []string{"tool:shell"}, Action: runproof.ActionStop},
	} {
		if _, err := svc.CreatePolicies(ctx, "acme", p); err != nil {
			t.Fatal(err)
		}
	}
	openRun(t, svc, "acme", "r1")
	if _, err := appendJSON(t, svc, "acme", "r1", stepJSON(0, map[string]any{"step_type": "tool:shell"}), stepJSON(1, nil)); err != nil {
		t.Fatal(err)
	}
	events, err := svc.SystemEvents(ctx, "acme", "r1", false)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range events.Events {
		k := e.Kind
		if e.StepIndex != nil {
			k += fmt.Sprintf("@%d", *e.StepIndex)
		}
		got = append(got, k)
	}
	want := []string{EventRunStarted, EventIncidentOpened + "@0", EventRunStopped + "@0", EventStepWarning + "@1", EventStepsAfterStop + "@1"}
	if !slices.Equal(got, want) {
		t.Errorf("events\n%v\nwant\n%v", got, want)
	}
}

// stepReads counts the reads of steps from a store: pages of them and
// running totals.
type stepReads struct {
	runproof.Store
	pages, totals int
}

func (s *stepReads) ListSteps(ctx context.Context, p runproof.ListStepsParams) ([]runproof.Step, error) {
	s.pages++
	return s.Store.ListSteps(ctx, p)
}

func (s *stepReads) RunningTotals(ctx context.Context, tenantID, runID string, index int64) (runproof.Totals, error) {
	s.totals++
	return s.Store.RunningTotals(ctx, tenantID, runID, index)
}

// TestTelemetryReadsWhatItNeeds: a page of telemetry reads its steps and
// the one after, and finds the running totals before it and the steps
// where its limits were first approached and broken in a few stored
// running totals, however far into the run it is; its totals are still
// the run's.
func TestTelemetryReadsWhatItNeeds(t *testing.T) {
	ctx := context.Background()
	store := &stepReads{Store: storetest.OpenSQLite(t)}
	svc := New(store, Options{})
	const steps = MaxTracePage + 50
	for _, p := range []PolicyInput{
		{Name: "tokens", Type: runproof.PolicyTokenLimit, Threshold: "300", Action: runproof.ActionWarn},  // 15 tokens a step: 80 % at index 15, over at 20
		{Name: "cost", Type: runproof.PolicyCostLimit, Threshold: "1000000", Action: runproof.ActionWarn}, // never approached
	} {
		if _, err := svc.CreatePolicies(ctx, "acme", p); err != nil {
			t.Fatal(err)
		}
	}
	openRun(t, svc, "acme", "r1")
	appendSteps(t, svc, "acme", "r1", steps)
	const bisection = 14 // running totals read to find one step of 10 050
	check := func(from int64, limit int, wantTotals, wantPoints int) Telemetry {
		t.Helper()
		store.pages, store.totals = 0, 0
		tel, err := svc.Telemetry(ctx, "acme", "r1", from, limit)
		if err != nil {
			t.Fatal(err)
		}
		tokens, cost := tel.Limits[0], tel.Limits[1]
		if tokens.PolicyName != "tokens" {
			tokens, cost = cost, tokens
		}
		if store.pages != 1 || store.totals != wantTotals || len(tel.Points) != wantPoints || tel.Totals.Steps != steps ||
			tokens.Used != steps*15 || tokens.FirstStep80Percent == nil || *tokens.FirstStep80Percent != 15 ||
			tokens.FirstStepOverThreshold == nil || *tokens.FirstStepOverThreshold != 20 ||
			cost.Used != steps*1.5 || cost.FirstStep80Percent != nil || cost.FirstStepOverThreshold != nil {
			t.Errorf("from %d: %d pages of steps and %d running totals read, want 1 and %d; %d points, want %d; totals %+v; limits %+v",
				from, store.pages, store.totals, wantTotals, len(tel.Points), wantPoints, tel.Totals, tel.Limits)
		}
		return tel
	}
	// The page shows where the limits were approached and broken.
	if tel := check(0, 30, 0, 30); tel.NextFromIndex == nil || *tel.NextFromIndex != 30 || tel.Points[29].CumulativeTokens != 30*15 {
		t.Errorf("next page from %v, want 30; last point %+v", tel.NextFromIndex, tel.Points[29])
	}
	// It does not: they are found by bisection.
	if tel := check(0, 10, 2*bisection, 10); tel.NextFromIndex == nil || *tel.NextFromIndex != 10 {
		t.Errorf("next page from %v, want 10", tel.NextFromIndex)
	}
	if tel := check(17, 10, 1+bisection, 10); tel.Points[0].CumulativeTokens != 18*15 {
		t.Errorf("a page from 17 starts at %+v, want the totals of 18 steps", tel.Points[0])
	}
	if tel := check(MaxTracePage, 0, 1+2*bisection, 50); tel.NextFromIndex != nil || tel.Points[49].CumulativeTokens != steps*15 {
		t.Errorf("last page: next %v, last point %+v", tel.NextFromIndex, tel.Points[49])
	}
}

// staleRun is a store whose runs are read as they were before their last
// steps were appended: telemetry read while an agent appends.
type staleRun struct {
	runproof.Store
	lag int // steps appended since the run was read
}

func (s staleRun) GetRun(ctx context.Context, tenantID, runID string) (runproof.Run, error) {
	run, err := s.Store.GetRun(ctx, tenantID, runID)
	if err != nil {
		return run, err
	}
	steps, err := s.Store.ListSteps(ctx, runproof.ListStepsParams{TenantID: tenantID, RunID: runID, Limit: int(run.Totals.Steps) - s.lag})
	run.Totals = runproof.Totals{}
	for _, st := range steps {
		run.Totals = run.Totals.Add(st)
	}
	return run, err
}

// TestTelemetryOfTheRunAsRead: steps appended after the run was read are
// left out, so that the points never run past the totals.
func TestTelemetryOfTheRunAsRead(t *testing.T) {
	ctx := context.Background()
	store := storetest.OpenSQLite(t)
	svc := New(store, Options{})
	openRun(t, svc, "acme", "r1")
	appendSteps(t, svc, "acme", "r1", 5)
	tel, err := New(staleRun{Store: store, lag: 2}, Options{}).Telemetry(ctx, "acme", "r1", 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(tel.Points) != 3 || tel.Totals.Steps != 3 || tel.Points[2].CumulativeTokens != tel.Totals.Tokens() || tel.NextFromIndex != nil {
		t.Errorf("%d points, totals %+v, next %v: want the 3 steps of the run as read", len(tel.Points), tel.Totals, tel.NextFromIndex)
	}
}

// TestCompleteAgain: ending a run again as it ended is a no-op; with
// another status or another completed_at it is a conflict, and the first
// end stands.
func TestCompleteAgain(t *testing.T) {
	storetest.Each(t, func(t *testing.T, store runproof.Store) {
		ctx := context.Background()
		svc := New(store, Options{})
		start := stepsStart.Add(-time.Hour)
		if _, _, err := svc.CreateRun(ctx, "acme", RunInput{RunID: "r1", AgentID: "bot", StartedAt: start.Format(time.RFC3339)}); err != nil {
			t.Fatal(err)
		}
		end := start.Add(30 * time.Minute).Format(time.RFC3339)
		first, err := svc.CompleteRun(ctx, "acme", "r1", CompleteInput{Status: runproof.RunCompleted, CompletedAt: end})
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range []CompleteInput{{Status: runproof.RunCompleted, CompletedAt: end}, {Status: runproof.RunCompleted}} {
			if again, err := svc.CompleteRun(ctx, "acme", "r1", in); err != nil || !again.CompletedAt.Equal(*first.CompletedAt) {
				t.Errorf("%+v again: %+v, %v", in, again, err)
			}
		}
		for field, in := range map[string]CompleteInput{
			"completed_at": {Status: runproof.RunCompleted, CompletedAt: start.Add(45 * time.Minute).Format(time.RFC3339)},
			"status":       {Status: runproof.RunFailed},
		} {
			_, err := svc.CompleteRun(ctx, "acme", "r1", in)
			if f := runproof.ErrorFields(err); runproof.ErrorCode(err) != runproof.ECONFLICT || len(f) != 1 || f[0].Field != field {
				t.Errorf("%+v after the end: %v naming %+v, want %s naming %s", in, err, f, runproof.ECONFLICT, field)
			}
		}
	})
}

// TestEndStoppedRun: a run runproof stopped stays stopped when its agent
// ends it, and keeps the status the agent ended it as; ending it again as
// that is a no-op, as another is a conflict.
func TestEndStoppedRun(t *testing.T) {
	storetest.Each(t, func(t *testing.T, store runproof.Store) {
		ctx := context.Background()
		svc := New(store, Options{})
		if _, err := svc.CreatePolicies(ctx, "acme", PolicyInput{Name: "cap", Type: runproof.PolicyCostLimit, Threshold: "1", Action: runproof.ActionStop}); err != nil {
			t.Fatal(err)
		}
		openRun(t, svc, "acme", "r1")
		if res, err := appendJSON(t, svc, "acme", "r1", stepJSON(0, nil)); err != nil || res.Decision != "stop" {
			t.Fatalf("step: %+v, %v", res, err)
		}
		run, err := svc.CompleteRun(ctx, "acme", "r1", CompleteInput{Status: runproof.RunFailed})
		if err != nil || run.Status != runproof.RunStopped || run.EndedAs != runproof.RunFailed || run.CompletedAt == nil {
			t.Fatalf("ended: %+v, %v", run, err)
		}
		if again, err := svc.CompleteRun(ctx, "acme", "r1", CompleteInput{Status: runproof.RunFailed}); err != nil || !again.CompletedAt.Equal(*run.CompletedAt) {
			t.Errorf("ended again as failed: %+v, %v", again, err)
		}
		if _, err := svc.CompleteRun(ctx, "acme", "r1", CompleteInput{Status: runproof.RunCancelled}); runproof.ErrorCode(err) != runproof.ECONFLICT {
			t.Errorf("ended again as cancelled: %v, want %s", err, runproof.ECONFLICT)
		}
		if stored, err := store.GetRun(ctx, "acme", "r1"); err != nil || stored.EndedAs != runproof.RunFailed || stored.Status != runproof.RunStopped {
			t.Errorf("stored: %+v, %v", stored, err)
		}
	})
}

// TestCompleteRunAheadOfTheServer: a run that started within the clock
// skew allowed, after the server's time, ends at its start, or its last
// step if later, when the agent ends it without a time; a completed_at
// before its start is refused.
func TestCompleteRunAheadOfTheServer(t *testing.T) {
	ctx := context.Background()
	svc := New(storetest.OpenSQLite(t), Options{})
	start := runproof.Timestamp(svc.Now().Add(3 * time.Minute))
	for _, id := range []string{"r1", "r2", "r3"} {
		if _, _, err := svc.CreateRun(ctx, "acme", RunInput{RunID: id, AgentID: "bot", StartedAt: start.Format(time.RFC3339Nano)}); err != nil {
			t.Fatal(err)
		}
	}
	run, err := svc.CompleteRun(ctx, "acme", "r1", CompleteInput{Status: runproof.RunCompleted})
	if err != nil || run.CompletedAt == nil || !run.CompletedAt.Equal(start) || run.Status != runproof.RunCompleted {
		t.Errorf("ended %+v, %v; want completed at its start %s", run, err, start)
	}
	// With a step later still, at that step.
	last := start.Add(90 * time.Second)
	if _, err := appendJSON(t, svc, "acme", "r3", stepJSON(0, map[string]any{"timestamp": last.Format(time.RFC3339Nano)})); err != nil {
		t.Fatal(err)
	}
	if run, err := svc.CompleteRun(ctx, "acme", "r3", CompleteInput{}); err != nil || !run.CompletedAt.Equal(last) {
		t.Errorf("ended %+v, %v; want completed at its last step %s", run, err, last)
	}
	_, err = svc.CompleteRun(ctx, "acme", "r2", CompleteInput{CompletedAt: start.Add(-time.Second).Format(time.RFC3339Nano)})
	wantField(t, err, "completed_at")
}

// staleRuns answers GetRun with the run as it stood a step before, as a
// read just before an agent's last step landed would.
type staleRuns struct{ runproof.Store }

func (s staleRuns) GetRun(ctx context.Context, tenantID, runID string) (runproof.Run, error) {
	r, err := s.Store.GetRun(ctx, tenantID, runID)
	r.Totals.Steps = max(r.Totals.Steps-1, 0)
	return r, err
}

// TestCompleteRunAfterLateStep: a run ended without a time ends no earlier
// than a step stored while it was being ended.
func TestCompleteRunAfterLateStep(t *testing.T) {
	ctx := context.Background()
	store := storetest.OpenSQLite(t)
	svc := New(store, Options{})
	start := runproof.Timestamp(svc.Now().Add(time.Minute))
	if _, _, err := svc.CreateRun(ctx, "acme", RunInput{RunID: "r1", AgentID: "bot", StartedAt: start.Format(time.RFC3339Nano)}); err != nil {
		t.Fatal(err)
	}
	for i, at := range []time.Time{start.Add(time.Second), start.Add(2 * time.Minute)} {
		if _, err := appendJSON(t, svc, "acme", "r1", stepJSON(i, map[string]any{"timestamp": at.Format(time.RFC3339Nano)})); err != nil {
			t.Fatal(err)
		}
	}
	late := New(staleRuns{store}, Options{})
	if run, err := late.CompleteRun(ctx, "acme", "r1", CompleteInput{}); err != nil || !run.CompletedAt.Equal(start.Add(2*time.Minute)) {
		t.Errorf("ended %+v, %v; want at the late step", run, err)
	}
}

// TestOverflowBounds: a step may not bring a run's cost or duration past
// runproof.MaxFixed, but a run a runproof of before that bound took past
// it still takes steps, up to runproof.MaxExact.
func TestOverflowBounds(t *testing.T) {
	for _, c := range []struct {
		before, step int64
		field        string
	}{
		{runproof.MaxFixed - 1, 1, ""},
		{runproof.MaxFixed, 1, "cost_cents"},
		{5_000_000_000_000_000, 0, ""},
		{5_000_000_000_000_000, 1, ""},
		{runproof.MaxExact, 1, "cost_cents"},
	} {
		field, _ := overflow(runproof.Totals{CostMicrocents: c.before}, runproof.Step{CostMicrocents: c.step})
		if field != c.field {
			t.Errorf("cost %d then %d: %q, want %q", c.before, c.step, field, c.field)
		}
		field, _ = overflow(runproof.Totals{DurationMicros: c.before}, runproof.Step{DurationMicros: c.step})
		if want := strings.Replace(c.field, "cost_cents", "duration_ms", 1); field != want {
			t.Errorf("duration %d then %d: %q, want %q", c.before, c.step, field, want)
		}
	}
}

// TestReplayStepsBounded: a window of more steps than a page holds a page
// of them, around its centre, and says that it holds no more.
func TestReplayStepsBounded(t *testing.T) {
	ctx := context.Background()
	svc := New(storetest.OpenSQLite(t), Options{})
	openRun(t, svc, "acme", "r1")
	const steps = MaxTracePage + 2000 // a millisecond apart: all in the window
	appendSteps(t, svc, "acme", "r1", steps)
	rp, err := svc.Replay(ctx, "acme", "r1", false)
	if err != nil {
		t.Fatal(err)
	}
	var first, last int64 = -1, -1
	n := 0
	for _, it := range rp.Items {
		if st, ok := it.Data.(runproof.Step); ok {
			if first < 0 {
				first = st.Index
			}
			last = st.Index
			n++
		}
	}
	if n != MaxTracePage || !rp.StepsTruncated || last != steps-1 || first != steps-MaxTracePage {
		t.Errorf("%d steps, %d to %d, truncated %v: want the last %d, truncated", n, first, last, rp.StepsTruncated, MaxTracePage)
	}
	// Timestamps out of index order: steps 0-1999 and the last are in the
	// window, the others an hour before it. The page holds them all.
	openRun(t, svc, "acme", "r3")
	end := time.Now().Add(-time.Minute)
	for from := 0; from < steps; from += MaxStepsPerCall {
		var batch []map[string]any
		for i := from; i < min(from+MaxStepsPerCall, steps); i++ {
			at := end.Add(-time.Hour)
			if i < 2000 || i == steps-1 {
				at = end.Add(-time.Second)
			}
			batch = append(batch, stepJSON(i, map[string]any{"timestamp": at.Format(time.RFC3339Nano)}))
		}
		if _, err := appendJSON(t, svc, "acme", "r3", batch...); err != nil {
			t.Fatal(err)
		}
	}
	if rp, err = svc.Replay(ctx, "acme", "r3", false); err != nil {
		t.Fatal(err)
	}
	n = 0
	for _, it := range rp.Items {
		if _, ok := it.Data.(runproof.Step); ok {
			n++
		}
	}
	if n != 2001 || rp.StepsTruncated {
		t.Errorf("steps out of index order: %d in the replay, truncated %v; want 2001, not truncated", n, rp.StepsTruncated)
	}

	// A short run's window holds all its steps.
	openRun(t, svc, "acme", "r2")
	appendSteps(t, svc, "acme", "r2", 10)
	if rp, err = svc.Replay(ctx, "acme", "r2", false); err != nil || rp.StepsTruncated {
		t.Errorf("a short run: truncated %v (%v)", rp.StepsTruncated, err)
	}
}

// TestPagesBoundedByContent: a page of a run's steps ends with the step
// whose content fills it, however few steps that is, so that a run of
// large steps is read a few at a time. (The store's bound is checked on
// both engines by the conformance suite.)
func TestPagesBoundedByContent(t *testing.T) {
	store := storetest.OpenSQLite(t)
	ctx := context.Background()
	svc := New(store, Options{})
	openRun(t, svc, "acme", "r1")
	big := strings.Repeat("x", 7<<19) // 3.5 MiB: a fifth fills a page
	for i := range 6 {
		if _, err := appendJSON(t, svc, "acme", "r1", stepJSON(i, map[string]any{"content": big})); err != nil {
			t.Fatal(err)
		}
	}
	var pages [][2]int64 // first index, next
	for from := int64(0); from >= 0; {
		page, err := svc.Trace(ctx, "acme", "r1", from, 0)
		if err != nil || len(page.Steps) == 0 {
			t.Fatalf("page from %d: %d steps, %v", from, len(page.Steps), err)
		}
		pages = append(pages, [2]int64{page.Steps[0].Index, page.Next})
		from = page.Next
	}
	if want := [][2]int64{{0, 5}, {5, -1}}; !slices.Equal(pages, want) {
		t.Errorf("trace pages (first step, next): %v, want %v", pages, want)
	}
	rp, err := svc.Replay(ctx, "acme", "r1", false)
	if err != nil {
		t.Fatal(err)
	}
	var indexes []int64
	for _, it := range rp.Items {
		if st, ok := it.Data.(runproof.Step); ok {
			indexes = append(indexes, st.Index)
		}
	}
	// Centred on the last step: the five before it fill a page.
	if !slices.Equal(indexes, []int64{5}) || !rp.StepsTruncated {
		t.Errorf("replay: steps %v, truncated %v; want the centre's, 5, truncated", indexes, rp.StepsTruncated)
	}
	tel, err := svc.Telemetry(ctx, "acme", "r1", 0, 0)
	if err != nil || len(tel.Points) != 6 || tel.NextFromIndex != nil {
		t.Errorf("telemetry, which reads no content: %d points, next %v, %v", len(tel.Points), tel.NextFromIndex, err)
	}
}

// TestRunEndEvents: a run's end is a system event of a kind for each way
// it ends, named after the status the agent ended it with.
func TestRunEndEvents(t *testing.T) {
	ctx := context.Background()
	svc := New(storetest.OpenSQLite(t), Options{})
	for _, status := range []runproof.RunStatus{runproof.RunCompleted, runproof.RunFailed, runproof.RunCancelled} {
		run, _, err := svc.CreateRun(ctx, "acme", RunInput{AgentID: "a"})
		if err == nil {
			_, err = svc.CompleteRun(ctx, "acme", run.ID, CompleteInput{Status: status})
		}
		if err != nil {
			t.Fatal(err)
		}
		got, err := svc.SystemEvents(ctx, "acme", run.ID, false)
		if err != nil {
			t.Fatal(err)
		}
		last := got.Events[len(got.Events)-1]
		if want := "run." + string(status); last.Kind != want || last.Detail.Status != string(status) {
			t.Errorf("ended %s: last event %+v, want %s", status, last, want)
		}
	}
}

// TestRunEndAfterItsLife: a run that arrives once it has ended (as an OTLP
// run does) ended, by its agent's clock, before runproof recorded its
// start and steps; its end is still listed after them, at its own time.
func TestRunEndAfterItsLife(t *testing.T) {
	ctx := context.Background()
	svc := New(storetest.OpenSQLite(t), Options{})
	now := svc.Now()
	run, _, err := svc.CreateRun(ctx, "acme", RunInput{RunID: "late", AgentID: "a",
		StartedAt: runproof.FormatTime(now.Add(-time.Hour))})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := appendJSON(t, svc, "acme", run.ID, stepJSON(0, map[string]any{"timestamp": runproof.FormatTime(now.Add(-50 * time.Minute))})); err != nil {
		t.Fatal(err)
	}
	ended := now.Add(-40 * time.Minute)
	if _, err := svc.CompleteRun(ctx, "acme", run.ID, CompleteInput{CompletedAt: runproof.FormatTime(ended)}); err != nil {
		t.Fatal(err)
	}
	got, err := svc.SystemEvents(ctx, "acme", run.ID, false)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, e := range got.Events {
		kinds = append(kinds, e.Kind)
	}
	last := got.Events[len(got.Events)-1]
	if got.Events[0].Kind != EventRunStarted || last.Kind != EventRunCompleted || !last.At.Equal(ended) {
		t.Errorf("events %v, the end at %v; want run.started first, run.completed last at %v", kinds, last.At, ended)
	}
}

// TestEndedBeforeEndedAs: a run a runproof of before ended_as ended (a
// server of that version beside a newer one) is taken to have ended as
// its status says: another end is a conflict, the same end a no-op.
func TestEndedBeforeEndedAs(t *testing.T) {
	ctx := context.Background()
	store := storetest.OpenSQLite(t)
	svc := New(store, Options{})
	at := time.Now().UTC().Add(-time.Minute).Truncate(time.Microsecond)
	snap, err := runproof.NewSnapshot("acme", nil, at)
	if err != nil {
		t.Fatal(err)
	}
	run := runproof.Run{TenantID: "acme", ID: "r-old", AgentID: "bot", Status: runproof.RunCompleted, TerminationReason: "completed",
		SnapshotID: snap.ID, StartedAt: at, CompletedAt: &at, CreatedAt: at}
	if err := store.CreateRun(ctx, run, snap); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.CompleteRun(ctx, "acme", "r-old", CompleteInput{Status: runproof.RunFailed}); runproof.ErrorCode(err) != runproof.ECONFLICT ||
		!strings.Contains(err.Error(), "already ended as completed") {
		t.Errorf("ended again as failed: %v, want a conflict", err)
	}
	if _, err := svc.CompleteRun(ctx, "acme", "r-old", CompleteInput{Status: runproof.RunCompleted}); err != nil {
		t.Errorf("ended again as completed: %v, want a no-op", err)
	}
}

package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/runproof/runproof/internal/artifact"
	"github.com/runproof/runproof/internal/export"
	"github.com/runproof/runproof/internal/httpapi"
	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/service"
	"github.com/runproof/runproof/internal/signing"
	"github.com/runproof/runproof/internal/store/storetest"
)

// env is a real server on a loopback port over a real store.
type env struct {
	t      *testing.T
	url    string
	svc    *service.Service
	header http.Header // added to every request when set
}

func newEnv(t *testing.T, store runproof.Store) *env {
	t.Helper()
	return newSigningEnv(t, store, nil)
}

// newSigningEnv is newEnv with signing keys: ZIP exports and signed
// download URLs, with servers' starts recorded before this one (uses).
func newSigningEnv(t *testing.T, store runproof.Store, keys *signing.Keyring, uses ...signing.KeyUse) *env {
	t.Helper()
	svc := service.New(store, service.Options{})
	dir, err := artifact.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(httpapi.New(svc, export.New(store, dir, export.Options{Keys: keys}), httpapi.Options{Keys: keys, KeyUses: uses}))
	t.Cleanup(srv.Close)
	return &env{t: t, url: srv.URL, svc: svc}
}

func (e *env) key(tenant string, role runproof.Role) string {
	e.t.Helper()
	secret, _, err := e.svc.CreateAPIKey(context.Background(), tenant, service.KeyInput{Role: role})
	if err != nil {
		e.t.Fatal(err)
	}
	return secret
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

func (e *env) do(method, path, key string, body any) response {
	e.t.Helper()
	r, err := e.try(method, path, key, body)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

// try sends a request and returns its answer, or why none came.
func (e *env) try(method, path, key string, body any) (response, error) {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, e.url+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	req.Header.Set("Content-Type", "application/json")
	for name, values := range e.header {
		req.Header[name] = values
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return response{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return response{}, err
	}
	return response{status: res.StatusCode, header: res.Header, body: b}, nil
}

// must fails the test unless the response has the status.
func (e *env) must(status int, r response) response {
	e.t.Helper()
	if r.status != status {
		e.t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	return r
}

var base = time.Now().UTC().Add(-time.Hour).Truncate(time.Second)

func step(i int, cents float64, tokens int) map[string]any {
	return map[string]any{"step_index": i, "timestamp": base.Add(time.Duration(i) * time.Second).Format(time.RFC3339Nano),
		"step_type": "llm:gpt-4o", "input_tokens": tokens, "output_tokens": 0, "cost_cents": cents, "duration_ms": 250.5,
		"content": map[string]any{"prompt": fmt.Sprintf("step %d", i)}}
}

func steps(from, to int, cents float64, tokens int) map[string]any {
	var s []any
	for i := from; i <= to; i++ {
		s = append(s, step(i, cents, tokens))
	}
	return map[string]any{"steps": s}
}

// stoppedRun records run r-1 of agent bot, stopped at its step 3 by a cost
// cap, and returns the id of its incident.
func (e *env) stoppedRun(admin, agent string) string {
	e.t.Helper()
	e.must(201, e.do("POST", "/api/v1/policies", admin, map[string]any{"name": "cost cap", "type": "cost_limit", "threshold": 100, "action": "stop"}))
	e.must(201, e.do("POST", "/api/v1/runs", agent, map[string]any{"run_id": "r-1", "agent_id": "bot"}))
	var res struct {
		IncidentID string `json:"incident_id"`
	}
	e.must(200, e.do("POST", "/api/v1/runs/r-1/steps", agent, steps(0, 5, 30, 100))).decode(e.t, &res)
	return res.IncidentID
}

func TestAgentFlow(t *testing.T) {
	storetest.Each(t, func(t *testing.T, store runproof.Store) {
		e := newEnv(t, store)
		admin, agent, other := e.key("acme", runproof.RoleAdmin), e.key("acme", runproof.RoleAgent), e.key("globex", runproof.RoleAdmin)

		created := e.must(201, e.do("POST", "/api/v1/policies", admin, map[string]any{"name": "cost cap", "type": "cost_limit", "threshold": 100, "action": "stop"}))
		var pol runproof.Policy
		created.decode(t, &pol)
		if loc := created.header.Get("Location"); loc != "/api/v1/policies/"+pol.ID {
			t.Errorf("a new policy's Location %q, want its versions' route", loc)
		}
		e.must(200, e.do("GET", created.header.Get("Location"), admin, nil))
		e.must(201, e.do("POST", "/api/v1/policies", admin, map[string]any{"name": "token budget", "type": "token_limit", "threshold": 100000, "action": "warn"}))

		var run struct{ RunID, PolicySnapshotID, Status string }
		e.must(201, e.do("POST", "/api/v1/runs", agent, map[string]any{"agent_id": "support-bot", "goal": "answer ticket"})).decode(t, &struct {
			RunID            *string `json:"run_id"`
			PolicySnapshotID *string `json:"policy_snapshot_id"`
			Status           *string `json:"status"`
		}{&run.RunID, &run.PolicySnapshotID, &run.Status})
		if run.Status != "running" || !strings.HasPrefix(run.PolicySnapshotID, "sha256:") {
			t.Fatalf("run = %+v", run)
		}

		var res service.StepsResult
		e.must(200, e.do("POST", "/api/v1/runs/"+run.RunID+"/steps", agent, steps(0, 2, 30, 100))).decode(t, &res)
		if res.Decision != "allow" || res.IncidentID != "" {
			t.Fatalf("first call = %+v", res)
		}
		var res2 service.StepsResult
		e.must(200, e.do("POST", "/api/v1/runs/"+run.RunID+"/steps", agent, steps(3, 5, 30, 100))).decode(t, &res2)
		if res2.Decision != "stop" || res2.IncidentID == "" {
			t.Fatalf("second call = %+v", res2)
		}
		want := []string{"ok", "ok", "warning", "violation", "violation", "violation"}
		for i, s := range append(res.Steps, res2.Steps...) {
			if string(s.Status) != want[i] || s.IsInflection != (i == 3) || s.StepIndex != int64(i) || !strings.HasPrefix(s.ContentHash, "sha256:") {
				t.Errorf("step %d = %+v, want %s, inflection %v", i, s, want[i], i == 3)
			}
		}
		// Re-sending is a no-op that still answers stop.
		var again service.StepsResult
		e.must(200, e.do("POST", "/api/v1/runs/"+run.RunID+"/steps", agent, steps(3, 5, 30, 100))).decode(t, &again)
		if again.Decision != "stop" || len(again.Steps) != 3 || !again.Steps[0].IsInflection {
			t.Fatalf("re-send = %+v", again)
		}

		var trace struct {
			Steps    []map[string]any      `json:"steps"`
			Evidence runproof.EvidenceMeta `json:"evidence"`
		}
		e.must(200, e.do("GET", "/api/v1/logs/llm-runs/"+run.RunID+"/trace", admin, nil)).decode(t, &trace)
		if len(trace.Steps) != 6 {
			t.Fatalf("trace = %+v", trace.Steps)
		}
		for i, s := range trace.Steps {
			if s["status"] != want[i] || s["is_inflection"] != (i == 3) {
				t.Errorf("stored step %d = %v, want %s, inflection %v", i, s, want[i], i == 3)
			}
		}
		if trace.Evidence.TenantID != "acme" || trace.Evidence.RunID != run.RunID || !strings.HasPrefix(trace.Evidence.Checksum, "sha256:") ||
			len(trace.Evidence.IncidentIDs) != 1 || trace.Evidence.Origin != runproof.OriginHuman || len(trace.Evidence.PolicyIDs) != 2 {
			t.Fatalf("evidence = %+v, want the run's incident and its snapshot's 2 policies", trace.Evidence)
		}
		// A page at a time: where the next starts, until the last.
		var page struct {
			Steps []map[string]any `json:"steps"`
			Next  *int64           `json:"next_from_index"`
		}
		e.must(200, e.do("GET", "/api/v1/logs/llm-runs/"+run.RunID+"/trace?from_index=2&limit=2", admin, nil)).decode(t, &page)
		if len(page.Steps) != 2 || page.Steps[0]["step_index"] != 2.0 || page.Next == nil || *page.Next != 4 {
			t.Fatalf("page from 2: %+v, next %v", page.Steps, page.Next)
		}
		page.Next = nil
		e.must(200, e.do("GET", "/api/v1/logs/llm-runs/"+run.RunID+"/trace?from_index=4&limit=2", admin, nil)).decode(t, &page)
		if len(page.Steps) != 2 || page.Steps[1]["step_index"] != 5.0 || page.Next != nil {
			t.Fatalf("last page: %+v, next %v", page.Steps, page.Next)
		}
		e.must(422, e.do("GET", "/api/v1/logs/llm-runs/"+run.RunID+"/trace?limit=10001", admin, nil))
		e.must(422, e.do("GET", "/api/v1/logs/llm-runs/"+run.RunID+"/trace?from_index=-1", admin, nil))

		var incs struct{ Items []runproof.Incident }
		e.must(200, e.do("GET", "/api/v1/incidents", admin, nil)).decode(t, &incs)
		if len(incs.Items) != 1 {
			t.Fatalf("%d incidents, want 1", len(incs.Items))
		}
		inc := incs.Items[0]
		if inc.ThresholdValue != "100" || inc.ActualValue != "120" || inc.InflectionStepIndex != 3 || inc.PolicyName != "cost cap" ||
			inc.ViolationType != runproof.PolicyCostLimit || inc.ID != res2.IncidentID || inc.ContainedAt == nil ||
			!inc.ViolationAt.Equal(base.Add(3*time.Second)) {
			t.Fatalf("incident = %+v", inc)
		}

		var env struct {
			Status            string `json:"status"`
			TerminationReason string `json:"termination_reason"`
			Totals            struct {
				Steps     int     `json:"steps"`
				CostCents float64 `json:"cost_cents"`
			} `json:"totals"`
		}
		e.must(200, e.do("GET", "/api/v1/logs/llm-runs/"+run.RunID+"/envelope", admin, nil)).decode(t, &env)
		if env.Status != "stopped" || env.Totals.Steps != 6 || env.Totals.CostCents != 180 {
			t.Fatalf("envelope = %+v", env)
		}

		// Another tenant sees nothing.
		for _, p := range []string{"/api/v1/logs/llm-runs/" + run.RunID + "/envelope", "/api/v1/logs/llm-runs/" + run.RunID + "/trace",
			"/api/v1/incidents/" + inc.ID, "/api/v1/runs/" + run.RunID} {
			e.must(404, e.do("GET", p, other, nil))
		}
		e.must(404, e.do("POST", "/api/v1/runs/"+run.RunID+"/steps", e.key("globex", runproof.RoleAgent), steps(6, 6, 1, 1)))
		var otherIncs struct{ Items []runproof.Incident }
		e.must(200, e.do("GET", "/api/v1/incidents", other, nil)).decode(t, &otherIncs)
		if len(otherIncs.Items) != 0 {
			t.Fatalf("other tenant sees %d incidents", len(otherIncs.Items))
		}

		// The agent polls its run's state and the policies, and reads
		// nothing more: no step content, no log, no incident.
		var polled runproof.Run
		e.must(200, e.do("GET", "/api/v1/runs/"+run.RunID, agent, nil)).decode(t, &polled)
		if polled.Status != runproof.RunStopped || polled.IncidentID != res2.IncidentID {
			t.Errorf("the agent polls %+v", polled)
		}
		e.must(200, e.do("GET", "/api/v1/policies", agent, nil))
		for _, path := range []string{"/trace", "/envelope", "/governance", "/replay"} {
			e.must(403, e.do("GET", "/api/v1/logs/llm-runs/"+run.RunID+path, agent, nil))
		}
		e.must(403, e.do("GET", "/api/v1/incidents/"+res2.IncidentID, agent, nil))
		e.must(403, e.do("GET", "/api/v1/logs/llm-runs", agent, nil))

		// The audit log holds the writes and reads with their actors.
		var audit struct{ Items []runproof.AuditEvent }
		e.must(200, e.do("GET", "/api/v1/logs/audit?limit=100", admin, nil)).decode(t, &audit)
		keyID := func(secret string) string {
			t.Helper()
			k, err := store.APIKeyByHash(context.Background(), service.HashKey(secret))
			if err != nil {
				t.Fatal(err)
			}
			return k.ID
		}
		actors := map[runproof.Origin]string{runproof.OriginHuman: keyID(admin), runproof.OriginAgent: keyID(agent)}
		seen := map[string]string{}
		for _, ev := range audit.Items {
			if ev.TenantID != "acme" {
				t.Fatalf("audit event of %s in acme's log", ev.TenantID)
			}
			if want, ok := actors[ev.ActorType]; ok && ev.Actor != want {
				t.Errorf("audit %s by %s %q, want key %q", ev.Action, ev.ActorType, ev.Actor, want)
			}
			seen[ev.Action] = string(ev.ActorType) + " " + ev.Category
		}
		for action, want := range map[string]string{
			"POST /api/v1/runs/{run_id}/steps":            "AGENT write",
			"POST /api/v1/runs":                           "AGENT write",
			"POST /api/v1/policies":                       "HUMAN write",
			"GET /api/v1/logs/llm-runs/{run_id}/trace":    "HUMAN access",
			"GET /api/v1/incidents":                       "HUMAN access",
			"GET /api/v1/logs/llm-runs/{run_id}/envelope": "HUMAN access",
			"GET /api/v1/runs/{run_id}":                   "AGENT access",
		} {
			if seen[action] != want {
				t.Errorf("audit %q = %q, want %q", action, seen[action], want)
			}
		}
	})
}

func TestWarnPolicy(t *testing.T) {
	storetest.Each(t, func(t *testing.T, store runproof.Store) {
		e := newEnv(t, store)
		admin := e.key("acme", runproof.RoleAdmin)
		e.must(201, e.do("POST", "/api/v1/policies", admin, map[string]any{"name": "cost cap", "type": "cost_limit", "threshold": 100, "action": "stop"}))
		e.must(201, e.do("POST", "/api/v1/policies", admin, map[string]any{"name": "token budget", "type": "token_limit", "threshold": 100000, "action": "warn"}))
		e.must(201, e.do("POST", "/api/v1/runs", admin, map[string]any{"run_id": "r-tokens", "agent_id": "researcher"}))

		var res service.StepsResult
		e.must(200, e.do("POST", "/api/v1/runs/r-tokens/steps", admin, steps(0, 4, 1, 30000))).decode(t, &res)
		want := []string{"ok", "ok", "warning", "warning", "warning"} // 30k, 60k, 90k (80 %), 120k (over), 150k
		for i, s := range res.Steps {
			if string(s.Status) != want[i] || s.IsInflection {
				t.Errorf("step %d = %+v, want %s", i, s, want[i])
			}
		}
		if res.Decision != "allow" || res.IncidentID != "" {
			t.Fatalf("result = %+v", res)
		}
		var g service.Governance
		e.must(200, e.do("GET", "/api/v1/logs/llm-runs/r-tokens/governance", admin, nil)).decode(t, &g)
		var tok *service.Evaluation
		for i := range g.Evaluations {
			if g.Evaluations[i].PolicyName == "token budget" {
				tok = &g.Evaluations[i]
			}
		}
		if tok == nil || !tok.Breached || tok.FirstExceededStep == nil || *tok.FirstExceededStep != 3 || tok.StepsExceeded != 2 || tok.LastActual != "150000" {
			t.Fatalf("token evaluation = %+v", tok)
		}
		if len(g.Incidents) != 0 {
			t.Fatalf("incidents = %+v", g.Incidents)
		}
		var incs struct{ Items []runproof.Incident }
		e.must(200, e.do("GET", "/api/v1/incidents", admin, nil)).decode(t, &incs)
		if len(incs.Items) != 0 {
			t.Fatalf("%d incidents, want none", len(incs.Items))
		}
	})
}

// TestStepsMetric: the steps counter counts steps stored, not re-sends.
func TestStepsMetric(t *testing.T) {
	e := newEnv(t, storetest.OpenSQLite(t))
	agent := e.key("acme", runproof.RoleAgent)
	e.must(201, e.do("POST", "/api/v1/runs", agent, map[string]any{"run_id": "r-m", "agent_id": "bot"}))
	e.must(200, e.do("POST", "/api/v1/runs/r-m/steps", agent, steps(0, 2, 1, 10)))
	e.must(200, e.do("POST", "/api/v1/runs/r-m/steps", agent, steps(0, 2, 1, 10)))
	body := string(e.must(200, e.do("GET", "/metrics", "", nil)).body)
	total := 0.0
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, "runproof_steps_ingested_total{") {
			var v float64
			if _, err := fmt.Sscan(line[strings.LastIndex(line, " ")+1:], &v); err != nil {
				t.Fatal(err)
			}
			total += v
		}
	}
	if total != 3 {
		t.Errorf("%v steps counted, 3 stored:\n%s", total, body)
	}
}

// TestExportMetrics: /metrics counts the exports the server ended, and
// shows what it makes and what audit events wait or were lost.
func TestExportMetrics(t *testing.T) {
	e := newEnv(t, storetest.OpenSQLite(t))
	admin, agent := e.key("acme", runproof.RoleAdmin), e.key("acme", runproof.RoleAgent)
	inc := stoppedRun(t, e, admin, agent, "r-1")
	for range 2 {
		e.must(201, e.do("POST", "/api/v1/exports", admin, map[string]any{"incident_id": inc, "format": "json"}))
	}
	body := string(e.must(200, e.do("GET", "/metrics", "", nil)).body)
	for _, want := range []string{`runproof_exports_total{status="completed"} 2`, `runproof_exports_total{status="failed"} 0`,
		"runproof_exports_making 0", "runproof_exports_waiting 0", "runproof_ledger_tenants_behind 0",
		"runproof_audit_events_waiting 0", "runproof_audit_events_lost_total 0"} {
		if !strings.Contains(body, "\n"+want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// TestPolicyReadBackSentAgain: a policy as runproof answers it, less what
// runproof assigns, can be sent again as the policy's next version, its
// threshold (a string in answers) included.
func TestPolicyReadBackSentAgain(t *testing.T) {
	e := newEnv(t, storetest.OpenSQLite(t))
	admin := e.key("acme", runproof.RoleAdmin)
	e.must(201, e.do("POST", "/api/v1/policies", admin, map[string]any{"name": "cost cap", "type": "cost_limit", "threshold": 0.25, "action": "stop"}))
	e.must(201, e.do("POST", "/api/v1/policies", admin, map[string]any{"name": "no shell", "type": "step_type_denied", "step_types": []string{"shell"}, "action": "warn"}))
	var list struct {
		Items []map[string]any `json:"items"`
	}
	e.must(200, e.do("GET", "/api/v1/policies", admin, nil)).decode(t, &list)
	if len(list.Items) != 2 {
		t.Fatalf("%d policies", len(list.Items))
	}
	for _, p := range list.Items {
		for _, assigned := range []string{"id", "tenant_id", "version", "created_at"} {
			delete(p, assigned)
		}
		var again runproof.Policy
		e.must(201, e.do("POST", "/api/v1/policies", admin, p)).decode(t, &again)
		if again.Version != 2 || again.Threshold != p["threshold"] {
			t.Errorf("sent again %v: %+v", p, again)
		}
	}
}

// heldAudit is a store whose audit writes wait, once held, until let go.
type heldAudit struct {
	runproof.Store
	held    atomic.Bool
	release chan struct{}
}

func (s *heldAudit) AppendAuditEvents(ctx context.Context, events ...runproof.AuditEvent) error {
	if s.held.Load() {
		<-s.release
	}
	return s.Store.AppendAuditEvents(ctx, events...)
}

// TestAnswerBeforeAudit: a client has its answer, with its length, while
// the request's audit event waits for the database's writer.
func TestAnswerBeforeAudit(t *testing.T) {
	store := &heldAudit{Store: storetest.OpenSQLite(t), release: make(chan struct{})}
	e := newEnv(t, store)
	key := e.key("acme", runproof.RoleAdmin)
	store.held.Store(true)
	var released atomic.Bool
	var once sync.Once
	release := func() { once.Do(func() { close(store.release) }) }
	go func() { // the audit event is let go after a while, whatever came of the request
		time.Sleep(5 * time.Second)
		released.Store(true)
		release()
	}()
	r := e.must(200, e.do("GET", "/api/v1/policies", key, nil))
	if released.Load() {
		t.Error("the answer waited for its audit event to be written")
	}
	release()
	if r.header.Get("Content-Length") == "" {
		t.Errorf("the answer went out without its length: %v", r.header)
	}
}

// TestAgentBoundKey: an agent key bound to its agent opens runs of that
// agent alone (its agent_id by default), and another agent's runs do not
// exist for it: it cannot poll, write or end them, through the API or
// OTLP.
func TestAgentBoundKey(t *testing.T) {
	storetest.Each(t, func(t *testing.T, store runproof.Store) {
		e := newEnv(t, store)
		admin := e.key("acme", runproof.RoleAdmin)
		bound := func(agent string) string {
			secret, _, err := e.svc.CreateAPIKey(context.Background(), "acme", service.KeyInput{Role: runproof.RoleAgent, AgentID: agent})
			if err != nil {
				t.Fatal(err)
			}
			return secret
		}
		billing, other := bound("billing-agent"), bound("support-bot")

		e.must(201, e.do("POST", "/api/v1/runs", billing, map[string]any{"run_id": "b-1"}))
		var run runproof.Run
		e.must(200, e.do("GET", "/api/v1/runs/b-1", billing, nil)).decode(t, &run)
		if run.AgentID != "billing-agent" {
			t.Errorf("a run opened without agent_id is of agent %q, want the key's", run.AgentID)
		}
		var refused problem
		e.must(403, e.do("POST", "/api/v1/runs", billing, map[string]any{"run_id": "b-2", "agent_id": "support-bot"})).decode(t, &refused)
		if len(refused.Errors) != 1 || refused.Errors[0].Field != "agent_id" {
			t.Errorf("a run of another agent opened with a bound key: the problem names %+v, want agent_id", refused.Errors)
		}
		e.must(200, e.do("POST", "/api/v1/runs/b-1/steps", billing, steps(0, 1, 1, 10)))
		e.must(200, e.do("GET", "/api/v1/runs/b-1", billing, nil))

		// Another agent's key, and another agent's run made by an admin.
		e.must(201, e.do("POST", "/api/v1/runs", admin, map[string]any{"run_id": "s-1", "agent_id": "support-bot"}))
		for _, c := range []struct {
			method, path string
			body         any
		}{
			{"GET", "/api/v1/runs/b-1", nil},
			{"POST", "/api/v1/runs/b-1/steps", steps(2, 2, 1, 10)},
			{"POST", "/api/v1/runs/b-1/complete", map[string]any{"status": "cancelled"}},
		} {
			e.must(404, e.do(c.method, c.path, other, c.body))
		}
		e.must(404, e.do("GET", "/api/v1/runs/s-1", billing, nil))
		// Opening a run under the id of another agent's tells nothing of it.
		for _, body := range []map[string]any{{"run_id": "s-1"}, {"run_id": "s-1", "agent_id": "billing-agent", "goal": "g"}} {
			var p httpapi.Problem
			e.must(409, e.do("POST", "/api/v1/runs", billing, body)).decode(t, &p)
			if p.Detail != `run_id "s-1" is taken: use another` {
				t.Errorf("re-opening another agent's run: %q", p.Detail)
			}
		}
		e.must(200, e.do("POST", "/api/v1/runs/s-1/steps", other, steps(0, 0, 1, 10)))
		e.must(200, e.do("POST", "/api/v1/runs/b-1/complete", billing, map[string]any{"status": "completed"}))
		var after runproof.Run
		e.must(200, e.do("GET", "/api/v1/runs/b-1", admin, nil)).decode(t, &after)
		if after.Totals.Steps != 2 || after.EndedAs != runproof.RunCompleted {
			t.Errorf("run b-1: %d steps, ended as %q; want the 2 its agent sent, completed by it", after.Totals.Steps, after.EndedAs)
		}

		// OTLP: spans whose resource names another agent are refused; those
		// that name none (service.name only, here billing-agent), or a
		// sub-agent on a span, are the key's agent's.
		named := pbSpan(traceA, "00000000000000c1", "", "chat gpt-4o", 1, 2, kv("gen_ai.operation.name", "chat"),
			kv("gen_ai.agent.name", "billing-agent"))
		// (Its token count, not a number, is not said to be counted as absent
		// in a span that is not stored.)
		foreign := pbRequest(pbSpan(traceA, "00000000000000c1", "", "chat gpt-4o", 1, 2, kv("gen_ai.operation.name", "chat"),
			kv("gen_ai.usage.input_tokens", "12")))
		foreign.ResourceSpans[0].Resource.Attributes = append(foreign.ResourceSpans[0].Resource.Attributes, kv("gen_ai.agent.name", "billing-agent"))
		if p := partial(t, e.postOTLP(other, "application/x-protobuf", "", pbBody(t, foreign))); p.GetRejectedSpans() != 1 ||
			!strings.Contains(p.GetErrorMessage(), `bound to agent "support-bot"`) || strings.Contains(p.GetErrorMessage(), "could not be read") {
			t.Errorf("a span whose resource names billing-agent sent with support-bot's key: %v", p)
		}
		// Of one trace's spans under two resources, only those of the one
		// that names another agent are refused.
		mixed := pbRequest(pbSpan(traceD, "00000000000000f1", "", "chat gpt-4o", 1, 2, kv("gen_ai.operation.name", "chat")))
		mixed.ResourceSpans[0].Resource.Attributes = append(mixed.ResourceSpans[0].Resource.Attributes, kv("gen_ai.agent.name", "support-bot"))
		mixed.ResourceSpans = append(mixed.ResourceSpans, foreign.ResourceSpans[0])
		mixed.ResourceSpans[1].ScopeSpans[0].Spans[0].TraceId = unhex(traceD)
		if p := partial(t, e.postOTLP(other, "application/x-protobuf", "", pbBody(t, mixed))); p.GetRejectedSpans() != 1 ||
			!strings.Contains(p.GetErrorMessage(), `span 00000000000000c1: this key is bound to agent "support-bot"`) {
			t.Errorf("spans of two resources, one naming billing-agent, sent with support-bot's key: %v", p)
		}
		var mixedRun runproof.Run
		e.must(200, e.do("GET", "/api/v1/runs/"+traceD, admin, nil)).decode(t, &mixedRun)
		if mixedRun.AgentID != "support-bot" || mixedRun.Totals.Steps != 1 {
			t.Errorf("the run of those spans: agent %q, %d steps; want support-bot's, 1", mixedRun.AgentID, mixedRun.Totals.Steps)
		}
		unnamed := pbSpan(traceC, "00000000000000e1", "", "chat gpt-4o", 1, 2, kv("gen_ai.operation.name", "chat"))
		subAgent := pbSpan(traceC, "00000000000000e2", "00000000000000e1", "invoke_agent researcher", 1, 2,
			kv("gen_ai.operation.name", "invoke_agent"), kv("gen_ai.agent.name", "researcher"))
		if p := partial(t, e.postOTLP(other, "application/x-protobuf", "", pbBody(t, pbRequest(subAgent, unnamed)))); p != nil {
			t.Errorf("spans naming no agent or a sub-agent sent with support-bot's key: %v", p)
		}
		var traced runproof.Run
		e.must(200, e.do("GET", "/api/v1/runs/"+traceC, admin, nil)).decode(t, &traced)
		if traced.AgentID != "support-bot" || traced.Totals.Steps != 2 {
			t.Errorf("the run of spans naming no agent or a sub-agent, sent with support-bot's key, is agent %q's with %d steps; want support-bot's, 2",
				traced.AgentID, traced.Totals.Steps)
		}
		if p := partial(t, e.postOTLP(billing, "application/x-protobuf", "", pbBody(t, pbRequest(named)))); p != nil {
			t.Errorf("a span naming billing-agent sent with its key: %v", p)
		}
		// Its own agent's span, in the trace of another agent's run.
		e.must(201, e.do("POST", "/api/v1/runs", admin, map[string]any{"run_id": traceB, "agent_id": "support-bot", "trace_id": traceB}))
		intruder := pbSpan(traceB, "00000000000000d1", "", "chat gpt-4o", 1, 2, kv("gen_ai.operation.name", "chat"))
		if p := partial(t, e.postOTLP(billing, "application/x-protobuf", "", pbBody(t, pbRequest(intruder)))); p.GetRejectedSpans() != 1 ||
			!strings.Contains(p.GetErrorMessage(), "is another agent's") {
			t.Errorf("a span of billing-agent in support-bot's run: %v", p)
		}
	})
}

// TestLedgerMetrics: a server with a ledger shows the tenants it could not
// seal.
func TestLedgerMetrics(t *testing.T) {
	e := newFullEnv(t, storetest.OpenSQLite(t))
	body := string(e.must(200, e.do("GET", "/metrics", "", nil)).body)
	if !strings.Contains(body, "\nrunproof_ledger_tenants_unsealed 0\n") {
		t.Errorf("/metrics lacks runproof_ledger_tenants_unsealed:\n%s", body)
	}
}

package httpapi_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/runproof/runproof/internal/artifact"
	"github.com/runproof/runproof/internal/export"
	"github.com/runproof/runproof/internal/httpapi"
	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/service"
	"github.com/runproof/runproof/internal/store/storetest"
)

type problem struct {
	Type   string                `json:"type"`
	Status int                   `json:"status"`
	Detail string                `json:"detail"`
	Errors []runproof.FieldError `json:"errors"`
}

func TestBadInput(t *testing.T) {
	e := newEnv(t, storetest.OpenSQLite(t))
	admin, viewer := e.key("acme", runproof.RoleAdmin), e.key("acme", runproof.RoleViewer)
	e.must(201, e.do("POST", "/api/v1/runs", admin, map[string]any{"run_id": "r1", "agent_id": "bot"}))
	e.must(200, e.do("POST", "/api/v1/runs/r1/steps", admin, steps(0, 0, 1, 1)))
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	tooMany := steps(1, 1001, 0, 0)
	huge := `{"steps":[{"step_index":1,"timestamp":"` + base.Format(time.RFC3339) + `","step_type":"x","content":"` + strings.Repeat("a", 5<<20) + `"}]}`

	tests := []struct {
		name, method, path, key string
		body                    any
		status                  int
		field                   string // the field the problem must name, if any
	}{
		{"no key", "POST", "/api/v1/runs", "", map[string]any{"agent_id": "a"}, 401, ""},
		{"wrong key", "POST", "/api/v1/runs", "rp_nope", map[string]any{"agent_id": "a"}, 401, ""},
		{"viewer cannot write runs", "POST", "/api/v1/runs", viewer, map[string]any{"agent_id": "a"}, 403, ""},
		{"viewer cannot write policies", "POST", "/api/v1/policies", viewer, map[string]any{"name": "x"}, 403, ""},

		{"policy unknown type", "POST", "/api/v1/policies", admin, map[string]any{"name": "p", "type": "magic", "threshold": 1, "action": "stop"}, 422, "type"},
		{"policy bad CEL", "POST", "/api/v1/policies", admin, map[string]any{"name": "p", "type": "expression", "expression": "step.cost_cents >", "action": "stop"}, 422, "expression"},
		{"policy CEL not bool", "POST", "/api/v1/policies", admin, map[string]any{"name": "p", "type": "expression", "expression": "step.tokens + 1", "action": "warn"}, 422, "expression"},
		{"policy negative threshold", "POST", "/api/v1/policies", admin, map[string]any{"name": "p", "type": "cost_limit", "threshold": -5, "action": "stop"}, 422, "threshold"},
		{"policy unknown action", "POST", "/api/v1/policies", admin, map[string]any{"name": "p", "type": "cost_limit", "threshold": 5, "action": "explode"}, 422, "action"},
		{"policy unknown field", "POST", "/api/v1/policies", admin, map[string]any{"name": "p", "type": "cost_limit", "threshold": 5, "action": "stop", "limit": 3}, 422, "limit"},
		{"policy malformed", "POST", "/api/v1/policies", admin, `{"name": `, 400, ""},
		{"policy member twice", "POST", "/api/v1/policies", admin, `{"name": "p", "type": "cost_limit", "threshold": 5, "threshold": 6, "action": "stop"}`, 422, "threshold"},
		{"step member twice", "POST", "/api/v1/runs/r1/steps", admin,
			`{"steps":[{"step_index":1,"step_index":2,"timestamp":"2026-01-01T00:00:00Z","step_type":"x"}]}`, 422, "steps[0].step_index"},
		{"content member twice", "POST", "/api/v1/runs/r1/steps", admin,
			`{"steps":[{"step_index":1,"timestamp":"2026-01-01T00:00:00Z","step_type":"x","content":{"a":1,"a":2}}]}`, 422, "steps[0].content.a"},

		{"run without agent", "POST", "/api/v1/runs", admin, map[string]any{"goal": "x"}, 422, "agent_id"},
		{"run with a blank agent", "POST", "/api/v1/runs", admin, map[string]any{"agent_id": "   "}, 422, "agent_id"},
		{"run bad trace id", "POST", "/api/v1/runs", admin, map[string]any{"agent_id": "a", "trace_id": "xyz"}, 422, "trace_id"},
		{"run in the future", "POST", "/api/v1/runs", admin, map[string]any{"agent_id": "a", "started_at": future}, 422, "started_at"},
		{"run unknown field", "POST", "/api/v1/runs", admin, map[string]any{"agent_id": "a", "owner": "me"}, 422, "owner"},
		{"run id ..", "POST", "/api/v1/runs", admin, map[string]any{"agent_id": "a", "run_id": ".."}, 422, "run_id"},
		{"run id .", "POST", "/api/v1/runs", admin, map[string]any{"agent_id": "a", "run_id": "."}, 422, "run_id"},
		{"run id conflict", "POST", "/api/v1/runs", admin, map[string]any{"run_id": "r1", "agent_id": "someone-else"}, 409, ""},
		{"run not UTF-8", "POST", "/api/v1/runs", admin, []byte("{\"agent_id\": \"a\xff\"}"), 400, ""},

		{"steps of unknown run", "POST", "/api/v1/runs/nope/steps", admin, steps(0, 0, 1, 1), 404, ""},
		{"negative tokens", "POST", "/api/v1/runs/r1/steps", admin, map[string]any{"steps": []any{
			map[string]any{"step_index": 1, "timestamp": base.Format(time.RFC3339), "step_type": "x", "input_tokens": -1}}}, 422, "steps[0].input_tokens"},
		{"negative cost", "POST", "/api/v1/runs/r1/steps", admin, map[string]any{"steps": []any{step(1, 1, 1), step(2, -3, 1)}}, 422, "steps[1].cost_cents"},
		{"tokens not a number", "POST", "/api/v1/runs/r1/steps", admin, `{"steps":[{"step_index":1,"timestamp":"2026-01-01T00:00:00Z","step_type":"x"},{"step_index":2,"timestamp":"2026-01-01T00:00:00Z","step_type":"x","input_tokens":"many"}]}`, 422, "steps[1].input_tokens"},
		{"gap inside a call", "POST", "/api/v1/runs/r1/steps", admin, map[string]any{"steps": []any{step(1, 1, 1), step(3, 1, 1)}}, 422, "steps[1].step_index"},
		{"duplicate inside a call", "POST", "/api/v1/runs/r1/steps", admin, map[string]any{"steps": []any{step(1, 1, 1), step(1, 1, 1)}}, 422, "steps[1].step_index"},
		{"gap after stored steps", "POST", "/api/v1/runs/r1/steps", admin, steps(5, 6, 1, 1), 422, "steps[0].step_index"},
		{"timestamp in the future", "POST", "/api/v1/runs/r1/steps", admin, map[string]any{"steps": []any{map[string]any{"step_index": 1, "timestamp": future, "step_type": "x"}}}, 422, "steps[0].timestamp"},
		{"timestamp not RFC 3339", "POST", "/api/v1/runs/r1/steps", admin, map[string]any{"steps": []any{map[string]any{"step_index": 1, "timestamp": "yesterday", "step_type": "x"}}}, 422, "steps[0].timestamp"},
		{"missing step type", "POST", "/api/v1/runs/r1/steps", admin, map[string]any{"steps": []any{map[string]any{"step_index": 1, "timestamp": base.Format(time.RFC3339)}}}, 422, "steps[0].step_type"},
		{"unknown step field", "POST", "/api/v1/runs/r1/steps", admin, map[string]any{"steps": []any{step(1, 1, 1), map[string]any{"step_index": 2, "timestamp": base.Format(time.RFC3339), "step_type": "x", "status": "ok"}}}, 422, "steps[1].status"},
		{"no steps", "POST", "/api/v1/runs/r1/steps", admin, map[string]any{"steps": []any{}}, 422, "steps"},
		{"content number beyond a double", "POST", "/api/v1/runs/r1/steps", admin, `{"steps":[{"step_index":1,"timestamp":"2026-01-01T00:00:00Z","step_type":"x","content":{"x":1e400}}]}`, 422, "steps[0].content"},
		{"content number more precise than a double", "POST", "/api/v1/runs/r1/steps", admin, `{"steps":[{"step_index":1,"timestamp":"2026-01-01T00:00:00Z","step_type":"x","content":[9007199254740993]}]}`, 422, "steps[0].content"},
		{"not UTF-8", "POST", "/api/v1/runs/r1/steps", admin, []byte("{\"steps\":[{\"step_index\":1,\"timestamp\":\"2026-01-01T00:00:00Z\",\"step_type\":\"\xc3\x28\"}]}"), 400, ""},
		{"conflicting re-send", "POST", "/api/v1/runs/r1/steps", admin, steps(0, 0, 2, 1), 409, ""},
		{"over 1000 steps", "POST", "/api/v1/runs/r1/steps", admin, tooMany, 413, ""},
		{"over 4 MiB", "POST", "/api/v1/runs/r1/steps", admin, huge, 413, ""},

		{"complete unknown status", "POST", "/api/v1/runs/r1/complete", admin, map[string]any{"status": "exploded"}, 422, "status"},
		{"complete unknown run", "POST", "/api/v1/runs/nope/complete", admin, nil, 404, ""},
		{"complete unknown field", "POST", "/api/v1/runs/r1/complete", admin, map[string]any{"reason": "x"}, 422, "reason"},

		{"logs are read-only", "POST", "/api/v1/logs/llm-runs", admin, map[string]any{}, 405, ""},
		{"bad cursor", "GET", "/api/v1/logs/llm-runs?cursor=!!", admin, nil, 422, "cursor"},
		{"unknown query parameter", "GET", "/api/v1/logs/llm-runs?limt=5", admin, nil, 422, "limt"},
		{"query parameter of a route that takes none", "GET", "/api/v1/policies?limit=5", admin, nil, 422, "limit"},
		{"bad status filter", "GET", "/api/v1/logs/llm-runs?status=weird", admin, nil, 422, "status"},
		{"limit zero", "GET", "/api/v1/logs/llm-runs?limit=0", admin, nil, 422, "limit"},
		{"limit over the most", "GET", "/api/v1/logs/llm-runs?limit=501", admin, nil, 422, "limit"},
		{"negative limit", "GET", "/api/v1/exports?limit=-1", admin, nil, 422, "limit"},
		{"viewer cannot read audit", "GET", "/api/v1/logs/audit", viewer, nil, 403, ""},
		{"empty path segment", "GET", "/api/v1/exports//download", admin, nil, 404, ""},
		{"dot segment", "GET", "/api/v1/runs/./steps", admin, nil, 404, ""},
		{"double slash before the API", "GET", "//api/v1/policies", admin, nil, 404, ""},
		{"bad incident status filter", "GET", "/api/v1/incidents?status=bogus", admin, nil, 422, "status"},
		{"bad audit category filter", "GET", "/api/v1/logs/audit?category=bogus", admin, nil, 422, "category"},
		{"parameter given twice", "GET", "/api/v1/logs/llm-runs?limit=1&limit=2", admin, nil, 422, "limit"},
		{"number with a sign", "GET", "/api/v1/logs/llm-runs/r1/trace?from_index=%2B1", admin, nil, 422, "from_index"},
		{"null body", "POST", "/api/v1/runs/r1/complete", admin, "null", 400, ""},
		{"null policy", "POST", "/api/v1/policies", admin, " null ", 400, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := e.do("GET", "/api/v1/logs/llm-runs/r1/trace", admin, nil)
			r := e.do(tt.method, tt.path, tt.key, tt.body)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
				t.Fatalf("content type %q: %s", ct, r.body)
			}
			var p problem
			r.decode(t, &p)
			if p.Status != tt.status || p.Detail == "" {
				t.Fatalf("problem = %+v", p)
			}
			if tt.field != "" && (len(p.Errors) == 0 || p.Errors[0].Field != tt.field) {
				t.Fatalf("problem names %+v, want field %q", p.Errors, tt.field)
			}
			if tt.name == "steps of unknown run" && !strings.HasSuffix(p.Detail, "open the run first with POST /api/v1/runs") {
				t.Errorf("steps of a run not opened: %q, want how to open it", p.Detail)
			}
			// Nothing of a failed call is stored: the run reads back the same.
			after := e.do("GET", "/api/v1/logs/llm-runs/r1/trace", admin, nil)
			if !bytes.Equal(stripEvidence(t, before.body), stripEvidence(t, after.body)) {
				t.Fatalf("the run changed:\n%s\n%s", before.body, after.body)
			}
		})
	}
}

// stripEvidence drops the evidence member, whose recorded_at and
// correlation id differ between two reads of the same data.
func stripEvidence(t *testing.T, body []byte) []byte {
	t.Helper()
	var v map[string]json.RawMessage
	if err := json.Unmarshal(body, &v); err != nil || v["evidence"] == nil {
		t.Fatalf("no evidence in %s", body)
	}
	delete(v, "evidence")
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRejectedBatchLeavesRunAsBefore(t *testing.T) {
	storetest.Each(t, func(t *testing.T, store runproof.Store) {
		e := newEnv(t, store)
		admin := e.key("acme", runproof.RoleAdmin)
		e.must(201, e.do("POST", "/api/v1/policies", admin, map[string]any{"name": "cap", "type": "cost_limit", "threshold": 10, "action": "stop"}))
		e.must(201, e.do("POST", "/api/v1/runs", admin, map[string]any{"run_id": "r", "agent_id": "bot"}))
		e.must(200, e.do("POST", "/api/v1/runs/r/steps", admin, steps(0, 1, 3, 1)))
		envelope := func() []byte {
			return stripEvidence(t, e.do("GET", "/api/v1/logs/llm-runs/r/envelope", admin, nil).body)
		}
		trace := func() []byte { return stripEvidence(t, e.do("GET", "/api/v1/logs/llm-runs/r/trace", admin, nil).body) }
		env0, tr0 := envelope(), trace()

		// Rejected calls that would have broken the policy (and so opened an
		// incident and stopped the run): a conflicting re-send of step 1,
		// and an invalid last step. Nothing of either may stay.
		e.must(409, e.do("POST", "/api/v1/runs/r/steps", admin, map[string]any{"steps": []any{step(1, 4, 1), step(2, 5, 1), step(3, 5, 1)}}))
		e.must(422, e.do("POST", "/api/v1/runs/r/steps", admin, map[string]any{"steps": []any{step(2, 5, 1), step(3, -5, 1)}}))
		if !bytes.Equal(env0, envelope()) || !bytes.Equal(tr0, trace()) {
			t.Fatal("a rejected batch changed the run")
		}
		var incs struct{ Items []runproof.Incident }
		e.must(200, e.do("GET", "/api/v1/incidents", admin, nil)).decode(t, &incs)
		if len(incs.Items) != 0 {
			t.Fatalf("a rejected batch opened %d incidents", len(incs.Items))
		}
		// The same steps, valid, go through.
		e.must(200, e.do("POST", "/api/v1/runs/r/steps", admin, map[string]any{"steps": []any{step(1, 3, 1), step(2, 5, 1), step(3, 5, 1)}}))
		if bytes.Equal(tr0, trace()) {
			t.Fatal("the good batch was not stored")
		}
	})
}

func TestRoutesAreDocumented(t *testing.T) {
	e := newEnv(t, storetest.OpenSQLite(t))
	var doc struct {
		OpenAPI string                    `json:"openapi"`
		Paths   map[string]map[string]any `json:"paths"`
	}
	e.must(200, e.do("GET", "/openapi.json", "", nil)).decode(t, &doc)
	if doc.OpenAPI != "3.1.0" {
		t.Fatalf("openapi = %q", doc.OpenAPI)
	}
	for _, want := range []string{"post /api/v1/runs/{run_id}/steps", "get /api/v1/logs/llm-runs/{run_id}/replay", "get /api/v1/incidents/{incident_id}"} {
		method, path, _ := strings.Cut(want, " ")
		if doc.Paths[path][method] == nil {
			t.Errorf("%s is not documented", want)
		}
	}
	// Every documented operation answers (not the catch-all 404).
	admin := e.key("acme", runproof.RoleAdmin)
	for path, ops := range doc.Paths {
		for method := range ops {
			p := strings.NewReplacer("{run_id}", "x", "{incident_id}", "x").Replace(path)
			r := e.do(strings.ToUpper(method), p, admin, map[string]any{})
			if r.status == 404 && strings.Contains(string(r.body), "no such route") {
				t.Errorf("%s %s is documented but not routed", method, path)
			}
		}
	}
}

// A body in an encoding the JSON API does not take is refused as such
// (415), not read as broken JSON.
func TestContentEncodingRefused(t *testing.T) {
	e := newEnv(t, storetest.OpenSQLite(t))
	admin := e.key("acme", runproof.RoleAdmin)
	req, err := http.NewRequest("POST", e.url+"/api/v1/runs", strings.NewReader("\x1f\x8b..."))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+admin)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Content-Encoding", "gzip")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusUnsupportedMediaType || res.Header.Get("Content-Type") != "application/problem+json" ||
		!strings.Contains(string(b), "Content-Encoding") {
		t.Errorf("%d %s: %s", res.StatusCode, res.Header.Get("Content-Type"), b)
	}
}

// A revoked key is refused like an unknown one, saying so, and its
// tenant's audit log keeps the refusal.
func TestRevokedKey(t *testing.T) {
	s := storetest.OpenSQLite(t)
	e := newEnv(t, s)
	admin, other := e.key("acme", runproof.RoleAdmin), e.key("acme", runproof.RoleAuditor)
	e.must(200, e.do("GET", "/api/v1/policies", admin, nil))
	k, err := s.APIKeyByHash(context.Background(), service.HashKey(admin))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.RevokeAPIKey(context.Background(), "acme", k.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	r := e.must(401, e.do("GET", "/api/v1/policies", admin, nil))
	if r.header.Get("Content-Type") != "application/problem+json" || !strings.Contains(string(r.body), "revoked") {
		t.Errorf("%s: %s", r.header.Get("Content-Type"), r.body)
	}
	e.must(401, e.do("GET", "/api/v1/policies", admin, nil)) // again within the minute: not recorded again
	var audit struct{ Items []runproof.AuditEvent }
	e.must(200, e.do("GET", "/api/v1/logs/audit/authorization", other, nil)).decode(t, &audit)
	if len(audit.Items) != 1 || audit.Items[0].Actor != k.ID || audit.Items[0].Decision != runproof.DecisionDeny ||
		audit.Items[0].Status != http.StatusUnauthorized || audit.Items[0].Action != "GET /api/v1/policies" || !strings.Contains(audit.Items[0].Detail, "revoked") {
		t.Errorf("the refusal's audit events: %+v", audit.Items)
	}
}

// A query string with a broken escape is refused, not read as if the
// parameter were absent.
func TestMalformedQuery(t *testing.T) {
	e := newEnv(t, storetest.OpenSQLite(t))
	admin := e.key("acme", runproof.RoleAdmin)
	var p problemDoc
	e.must(422, e.do("GET", "/api/v1/logs/llm-runs?cursor=%%%", admin, nil)).decode(t, &p)
	if len(p.Errors) != 1 || p.Errors[0].Field != "query" || !strings.Contains(p.Detail, "invalid URL escape") {
		t.Errorf("%+v", p)
	}
	e.must(200, e.do("GET", "/api/v1/logs/llm-runs?limit=5", admin, nil))
	// A + left unescaped reads as a space: the message says so.
	e.must(422, e.do("GET", "/api/v1/logs/audit?to=2026-12-07T10:00:00+01:00", admin, nil)).decode(t, &p)
	if len(p.Errors) != 1 || p.Errors[0].Field != "to" || !strings.Contains(p.Errors[0].Message, "%2B") {
		t.Errorf("an unescaped +: %+v", p)
	}
	e.must(200, e.do("GET", "/api/v1/logs/audit?to=2026-12-07T10:00:00%2B01:00", admin, nil))
	// Authentication, permissions and the audit event come first.
	e.must(401, e.do("GET", "/api/v1/logs/llm-runs?cursor=%%%", "", nil))
	viewer := e.key("acme", runproof.RoleViewer)
	e.must(403, e.do("POST", "/api/v1/policies?x=%zz", viewer, map[string]any{"name": "p"}))
	e.must(422, e.do("GET", "/api/v1/logs/llm-runs?a=1;b=2", admin, nil)).decode(t, &p)
	if strings.Contains(p.Detail, "%25") || !strings.Contains(p.Detail, "semicolon") {
		t.Errorf("a semicolon: %s", p.Detail)
	}
	var audit struct {
		Items []runproof.AuditEvent `json:"items"`
	}
	e.must(200, e.do("GET", "/api/v1/logs/audit?limit=100", admin, nil)).decode(t, &audit)
	denied := false
	for _, ev := range audit.Items {
		denied = denied || ev.Decision == runproof.DecisionDeny && ev.Resource == "/api/v1/policies"
	}
	if !denied {
		t.Error("the refused attempt with a broken query left no audit event")
	}
}

// TestEveryQueryParameterNamed: a query with several parameters at fault
// is answered once, naming each.
func TestEveryQueryParameterNamed(t *testing.T) {
	e := newEnv(t, storetest.OpenSQLite(t))
	admin := e.key("acme", runproof.RoleAdmin)
	for path, want := range map[string][]string{
		"/api/v1/logs/llm-runs?limit=abc&from=yesterday&status=x&cursor=zzz":           {"cursor", "from", "limit", "status"},
		"/api/v1/logs/audit?limit=abc&from=yesterday&category=x":                       {"category", "from", "limit"},
		"/api/v1/incidents?limit=0&offset=-1&to=soon&status=x":                         {"limit", "offset", "status", "to"},
		"/api/v1/incidents?detected_before=soon&from=x":                                {"detected_before", "from"},
		"/api/v1/exports?to=soon&offset=-1":                                            {"offset", "to"},
		"/api/v1/logs/audit/exports?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z": {"to"},
	} {
		var p problem
		e.must(422, e.do("GET", path, admin, nil)).decode(t, &p)
		var got []string
		for _, f := range p.Errors {
			got = append(got, f.Field)
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s names %v, want %v", path, got, want)
		}
	}
}

// TestOneAuthorization: two Authorization headers are refused, not read
// as the first.
func TestOneAuthorization(t *testing.T) {
	e := newEnv(t, storetest.OpenSQLite(t))
	a, b := e.key("acme", runproof.RoleAdmin), e.key("other", runproof.RoleAdmin)
	req, err := http.NewRequest("GET", e.url+"/api/v1/policies", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Add("Authorization", "Bearer "+a)
	req.Header.Add("Authorization", "Bearer "+b)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != 401 || !strings.Contains(string(body), "send one Authorization header, not 2") {
		t.Errorf("two keys: %d %s", res.StatusCode, body)
	}
}

// TestBodyLength: a body announced over the limit is refused before it is
// sent; one that ends before its Content-Length is named so, without the
// connection's addresses.
func TestBodyLength(t *testing.T) {
	e := newEnv(t, storetest.OpenSQLite(t))
	admin := e.key("acme", runproof.RoleAdmin)
	send := func(length int64, body string) (int, string) {
		t.Helper()
		conn, err := net.Dial("tcp", strings.TrimPrefix(e.url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "POST /api/v1/runs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
			admin, length, body)
		if tc, ok := conn.(*net.TCPConn); ok && length > int64(len(body)) && length < service.MaxBodyBytes {
			tc.CloseWrite() // the rest never comes
		}
		res, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if code, body := send(service.MaxBodyBytes+1, "{}"); code != 413 || !strings.Contains(body, "the body is over") ||
		strings.Contains(body, "steps") { // the advice of the steps route is not this one's
		t.Errorf("announced over the limit: %d %s", code, body)
	}
	if code, body := send(1000, "{}"); code != 400 || !strings.Contains(body, "the body was cut short") ||
		strings.Contains(body, "127.0.0.1") {
		t.Errorf("shorter than announced: %d %s", code, body)
	}
}

// Stop expressions are refused once the tenant's could cost more together
// on one step than a step's expressions share; the answer names the field.
func TestStopExpressionsBudget(t *testing.T) {
	e := newEnv(t, storetest.OpenSQLite(t))
	admin := e.key("acme", runproof.RoleAdmin)
	list := "[" + strings.TrimSuffix(strings.Repeat("1,", 39), ",") + "]"
	costly := list + ".all(x, " + list + ".all(y, x == y))" // nearly the most one expression may cost
	e.must(201, e.do("POST", "/api/v1/policies", admin, map[string]any{"name": "a", "type": "expression", "expression": costly, "action": "stop"}))
	var p problemDoc
	e.must(422, e.do("POST", "/api/v1/policies", admin, map[string]any{"name": "b", "type": "expression", "expression": costly, "action": "stop"})).decode(t, &p)
	if len(p.Errors) != 1 || p.Errors[0].Field != "expression" || !strings.Contains(p.Errors[0].Message, `stop expressions with "b" (2 in all) could cost`) {
		t.Errorf("a second costly stop expression: %+v", p)
	}
	e.must(201, e.do("POST", "/api/v1/policies", admin, map[string]any{"name": "b", "type": "expression", "expression": costly, "action": "warn"}))
	e.must(201, e.do("POST", "/api/v1/policies", admin, map[string]any{"name": "a", "type": "expression", "expression": costly + " && true", "action": "stop"}))
}

// A refused key is logged with why, its id when known, and the
// correlation id the client was answered with.
func TestUnauthenticatedLogged(t *testing.T) {
	store := storetest.OpenSQLite(t)
	svc := service.New(store, service.Options{})
	dir, err := artifact.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	logFile, err := os.Create(filepath.Join(t.TempDir(), "log")) // written by the server's goroutines, read here
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	logged := func() string { b, _ := os.ReadFile(logFile.Name()); return string(b) }
	srv := httptest.NewServer(httpapi.New(svc, export.New(store, dir, export.Options{}),
		httpapi.Options{Logger: slog.New(slog.NewTextHandler(logFile, nil))}))
	defer srv.Close()
	e := &env{t: t, url: srv.URL, svc: svc}
	var p struct {
		CorrelationID string `json:"correlation_id"`
	}
	e.must(401, e.do("GET", "/api/v1/policies", "rp_nosuchkey", nil)).decode(t, &p)
	if line := logged(); !strings.Contains(line, "unauthenticated request") || !strings.Contains(line, "reason=") ||
		p.CorrelationID == "" || !strings.Contains(line, "correlation_id="+p.CorrelationID) {
		t.Errorf("the log of an unknown key's request: %s (answered %+v)", line, p)
	}
	secret, key, err := svc.CreateAPIKey(context.Background(), "acme", service.KeyInput{Role: runproof.RoleViewer})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.RevokeAPIKey(context.Background(), "acme", key.ID); err != nil {
		t.Fatal(err)
	}
	e.must(401, e.do("GET", "/api/v1/policies", secret, nil))
	if line := logged(); !strings.Contains(line, "key_id="+key.ID) || !strings.Contains(line, "revoked") {
		t.Errorf("the log of a revoked key's request: %s", line)
	}
}

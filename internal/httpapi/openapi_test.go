package httpapi_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/runproof/runproof/internal/artifact"
	"github.com/runproof/runproof/internal/export"
	"github.com/runproof/runproof/internal/httpapi"
	"github.com/runproof/runproof/internal/ledger"
	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/service"
	"github.com/runproof/runproof/internal/signing"
	"github.com/runproof/runproof/internal/store/storetest"
)

const openAPIURL = "https://runproof.test/openapi.json"

// contract checks requests and answers of a test server against the
// server's own /openapi.json, made strict: an object may hold no member
// that its schema does not list.
type contract struct {
	e        *env
	doc      map[string]any
	compiler *jsonschema.Compiler
	seen     map[string]bool // "get /api/v1/runs/{run_id} 200"
}

func newContract(e *env) *contract {
	e.t.Helper()
	r := e.must(200, e.do("GET", "/openapi.json", "", nil))
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(r.body))
	if err != nil {
		e.t.Fatal(err)
	}
	closeObjects(v)
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	if err := c.AddResource(openAPIURL, v); err != nil {
		e.t.Fatal(err)
	}
	return &contract{e: e, doc: v.(map[string]any), compiler: c, seen: map[string]bool{}}
}

// closeObjects forbids, in every object schema of v, the members its
// properties do not list.
func closeObjects(v any) {
	switch v := v.(type) {
	case map[string]any:
		if _, ok := v["properties"].(map[string]any); ok && v["additionalProperties"] == nil {
			v["additionalProperties"] = false
		}
		for _, x := range v {
			closeObjects(x)
		}
	case []any:
		for _, x := range v {
			closeObjects(x)
		}
	}
}

var pathParam = regexp.MustCompile(`\{[a-z_]+\}`)

// do sends a request to route (a path of the document, with an optional
// query) with args in place of its parameters, checks the status, and
// checks the bodies sent and answered against the document.
func (c *contract) do(status int, method, route, key string, body any, args ...string) response {
	t := c.e.t
	t.Helper()
	tmpl, query, _ := strings.Cut(route, "?")
	i := 0
	p := pathParam.ReplaceAllStringFunc(tmpl, func(string) string { i++; return url.PathEscape(args[i-1]) })
	if query != "" {
		p += "?" + query
	}
	op, ok := c.doc["paths"].(map[string]any)[tmpl].(map[string]any)[strings.ToLower(method)].(map[string]any)
	if !ok && status < 400 {
		t.Fatalf("%s %s is not documented", method, tmpl)
	}
	base := "/paths/" + pointerEscape(tmpl) + "/" + strings.ToLower(method)
	if body != nil && status < 300 && op["requestBody"] != nil && tmpl != "/v1/traces" {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		c.validate(method+" "+tmpl+" request", base+"/requestBody/content/application~1json/schema", b)
	}
	r := c.e.must(status, c.e.do(method, p, key, body))
	what := fmt.Sprintf("%s %s %d", strings.ToLower(method), tmpl, status)
	responses, _ := op["responses"].(map[string]any)
	res, documented := responses[fmt.Sprint(status)].(map[string]any)
	switch {
	case status >= 400 && op == nil: // no such route: the problem of the catch-all
		if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
			t.Fatalf("%s: content type %q", what, ct)
		}
		c.validate(what, "/components/schemas/httpapi.Problem", r.body)
	case status >= 400:
		name := fmt.Sprint(status)
		if !documented {
			name, res = "default", responses["default"].(map[string]any)
		}
		ct := r.header.Get("Content-Type")
		if _, ok := res["content"].(map[string]any)[ct]; !ok {
			t.Fatalf("%s: content type %q, not one the document gives for %s", what, ct, name)
		}
		if strings.HasSuffix(ct, "json") {
			c.validate(what, base+"/responses/"+name+"/content/"+pointerEscape(ct)+"/schema", r.body)
		}
	case !documented:
		t.Fatalf("%s: the status is not documented", what)
	case res["content"] != nil:
		ct := r.header.Get("Content-Type")
		media, _, _ := strings.Cut(ct, ";")
		content, _ := res["content"].(map[string]any)[media].(map[string]any)
		switch {
		case content == nil:
			t.Fatalf("%s: content type %q, not one the document gives", what, ct)
		case content["schema"].(map[string]any)["format"] == "binary": // an artifact or a note, as it is
		default:
			c.validate(what, base+"/responses/"+fmt.Sprint(status)+"/content/"+pointerEscape(media)+"/schema", r.body)
		}
	}
	c.seen[what] = true
	return r
}

func (c *contract) validate(what, ptr string, body []byte) {
	t := c.e.t
	t.Helper()
	sch, err := c.compiler.Compile(openAPIURL + "#" + (&url.URL{Fragment: ptr}).EscapedFragment())
	if err != nil {
		t.Fatalf("%s: schema %s: %v", what, ptr, err)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("%s: %v: %s", what, err, body)
	}
	if err := sch.Validate(v); err != nil {
		t.Errorf("%s does not match the document: %v\n%.2000s", what, err, body)
	}
}

func pointerEscape(s string) string {
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(s)
}

// unseen lists the documented JSON answers no request got.
func (c *contract) unseen() []string {
	var out []string
	for path, ops := range c.doc["paths"].(map[string]any) {
		for method, op := range ops.(map[string]any) {
			for status, res := range op.(map[string]any)["responses"].(map[string]any) {
				what := method + " " + path + " " + status
				if status != "default" && res.(map[string]any)["content"] != nil && !c.seen[what] {
					out = append(out, what)
				}
			}
		}
	}
	slices.Sort(out)
	return out
}

// newFullEnv is newEnv with an export ledger and signing keys, as serve
// runs.
func newFullEnv(t *testing.T, store runproof.Store) *env {
	t.Helper()
	l, err := ledger.New(store, ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, ed25519.SeedSize)), "runproof.test", ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := signing.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dir, err := artifact.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	svc := service.New(store, service.Options{})
	srv := httptest.NewServer(httpapi.New(svc, export.New(store, dir, export.Options{Keys: keys, Ledger: l}),
		httpapi.Options{Ledger: l, Keys: keys}))
	t.Cleanup(srv.Close)
	return &env{t: t, url: srv.URL, svc: svc}
}

// TestOpenAPIDescribesResponses sends real requests to a server and checks
// every JSON body sent and answered against the schema the server's own
// /openapi.json gives for it, with no member left undocumented. Every
// documented JSON answer must come up at least once, so a route added or
// changed without its document fails here.
func TestOpenAPIDescribesResponses(t *testing.T) {
	storetest.Each(t, func(t *testing.T, store runproof.Store) {
		e := newFullEnv(t, store)
		c := newContract(e)
		admin, agent, viewer := e.key("acme", runproof.RoleAdmin), e.key("acme", runproof.RoleAgent), e.key("acme", runproof.RoleViewer)
		auditor := e.key("acme", runproof.RoleAuditor)

		// The write side, with a run that warns, is stopped and goes on.
		c.do(201, "POST", "/api/v1/policies", admin, map[string]any{"name": "cost cap", "type": "cost_limit", "threshold": 100, "action": "stop"})
		c.do(201, "POST", "/api/v1/policies", admin, map[string]any{"name": "token budget", "type": "token_limit", "threshold": 1000.0, "action": "warn"})
		c.do(201, "POST", "/api/v1/policies", admin, map[string]any{"name": "no shell", "type": "step_type_denied", "step_types": []string{"tool:shell"}, "action": "warn"})
		var brief runproof.Policy
		c.do(201, "POST", "/api/v1/policies", admin, map[string]any{"name": "brief", "type": "step_limit", "threshold": 5, "action": "warn"}).decode(t, &brief)
		c.do(200, "DELETE", "/api/v1/policies/{policy_id}", admin, nil, brief.ID)
		c.do(200, "GET", "/api/v1/policies/{policy_id}", viewer, nil, brief.ID)
		c.do(200, "GET", "/api/v1/policies", viewer, nil)
		open := map[string]any{"run_id": "r-1", "agent_id": "support-bot", "goal": "answer a ticket", "trace_id": strings.Repeat("ab", 16)}
		c.do(201, "POST", "/api/v1/runs", agent, open)
		c.do(200, "POST", "/api/v1/runs", agent, open)
		c.do(200, "POST", "/api/v1/runs/{run_id}/steps", agent, steps(0, 5, 20, 300), "r-1")
		withContent := steps(6, 7, 20.25, 300)
		withContent["steps"].([]any)[1].(map[string]any)["content"] = []any{"a list", 1, nil}
		c.do(200, "POST", "/api/v1/runs/{run_id}/steps", agent, withContent, "r-1")
		c.do(200, "POST", "/api/v1/runs/{run_id}/complete", agent, map[string]any{"status": "completed"}, "r-1")
		c.do(200, "GET", "/api/v1/runs/{run_id}", agent, nil, "r-1")
		c.do(201, "POST", "/api/v1/runs", agent, map[string]any{"run_id": "r-2", "agent_id": "indexer",
			"started_at": time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)})
		start := base.Add(time.Second).UnixNano()
		otlpBody := `{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"billing-agent"}}]},
		 "scopeSpans":[{"scope":{"name":"manual"},"spans":[{
		  "traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"00f067aa0ba902b7","name":"chat gpt-4o-mini","kind":3,
		  "startTimeUnixNano":"` + itoa(start) + `","endTimeUnixNano":"` + itoa(start+1_500_000_000) + `",
		  "attributes":[{"key":"gen_ai.operation.name","value":{"stringValue":"chat"}},
		   {"key":"gen_ai.request.model","value":{"stringValue":"gpt-4o-mini"}},
		   {"key":"gen_ai.usage.input_tokens","value":{"intValue":"2000"}}],
		  "status":{"code":1}}]}]}]}`
		c.do(200, "POST", "/v1/traces", agent, otlpBody)

		// Exports, the ledger and the keys.
		var inc struct {
			Items []runproof.Incident `json:"items"`
		}
		c.do(200, "GET", "/api/v1/incidents", viewer, nil).decode(t, &inc)
		if len(inc.Items) != 1 {
			t.Fatalf("incidents: %+v", inc.Items)
		}
		incID := inc.Items[0].ID
		c.do(200, "GET", "/api/v1/incidents?status=pending&run_id=r-1", viewer, nil)
		c.do(200, "GET", "/api/v1/incidents/{incident_id}", viewer, nil, incID)
		c.do(200, "POST", "/api/v1/incidents/{incident_id}/remediation", admin, map[string]any{"remediation_status": "in_progress"}, incID)
		var rec struct {
			ID string `json:"id"`
		}
		c.do(201, "POST", "/api/v1/exports", admin, map[string]any{"run_id": "r-1", "format": "zip", "bundle_type": "evidence",
			"include_content": true, "export_reason": "audit", "prepared_for": "auditor"}).decode(t, &rec)
		var soc2 struct {
			ID string `json:"id"`
		}
		c.do(201, "POST", "/api/v1/exports", admin, map[string]any{"incident_id": incID, "format": "json", "bundle_type": "soc2", "scope": "compliance"}).decode(t, &soc2)
		e.header = http.Header{"Prefer": {"respond-async"}}
		var async struct{ ID, Status string }
		c.do(202, "POST", "/api/v1/exports", admin, map[string]any{"incident_id": incID, "format": "csv"}).decode(t, &async)
		e.header = nil
		for deadline := time.Now().Add(10 * time.Second); async.Status == "pending" && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond) // it is made in the background
			e.must(200, e.do("GET", "/api/v1/exports/"+async.ID, admin, nil)).decode(t, &async)
		}
		if async.Status != "completed" {
			t.Fatalf("the export asked with Prefer: respond-async is %s", async.Status)
		}
		c.do(201, "POST", "/api/v1/exports/{export_id}/reviews", admin, map[string]any{"review_status": "APPROVED", "auditor_notes": "ok"}, soc2.ID)
		c.do(200, "GET", "/api/v1/exports/{export_id}/reviews", admin, nil, soc2.ID)
		c.do(200, "POST", "/api/v1/incidents/{incident_id}/export/executive-debrief", admin, map[string]any{"format": "csv"}, incID)
		c.do(200, "POST", "/api/v1/incidents/{incident_id}/export/evidence", admin, map[string]any{"format": "json"}, incID)
		c.do(200, "POST", "/api/v1/incidents/{incident_id}/export/soc2", admin, map[string]any{"format": "pdf"}, incID)
		c.do(200, "GET", "/api/v1/exports/{export_id}/download", admin, nil, rec.ID)
		c.do(200, "GET", "/api/v1/exports", admin, nil)
		c.do(200, "GET", "/api/v1/exports/{export_id}", admin, nil, rec.ID)
		c.do(200, "GET", "/api/v1/exports/{export_id}/proof", admin, nil, rec.ID)
		c.do(200, "GET", "/api/v1/ledger/checkpoint", viewer, nil)
		c.do(200, "GET", "/api/v1/ledger/consistency?from=1", viewer, nil)
		c.do(200, "GET", "/api/v1/signing-keys", viewer, nil)

		// The logs API, every topic and level.
		var page struct {
			NextCursor string `json:"next_cursor"`
		}
		c.do(200, "GET", "/api/v1/logs/llm-runs?limit=1", viewer, nil).decode(t, &page)
		c.do(200, "GET", "/api/v1/logs/llm-runs?cursor="+page.NextCursor, viewer, nil)
		for _, level := range []string{"envelope", "trace", "governance", "replay", "export"} {
			c.do(200, "GET", "/api/v1/logs/llm-runs/{run_id}/"+level, admin, nil, "r-1")
			c.do(200, "GET", "/api/v1/logs/llm-runs/{run_id}/"+level, admin, nil, "r-2")
		}
		c.do(200, "GET", "/api/v1/logs/system?status=stopped", viewer, nil)
		for _, level := range []string{"snapshot", "telemetry", "events", "replay"} {
			c.do(200, "GET", "/api/v1/logs/system/{run_id}/"+level, viewer, nil, "r-1")
			c.do(200, "GET", "/api/v1/logs/system/{run_id}/"+level, viewer, nil, "r-2")
		}
		if err := e.svc.Record(t.Context(), runproof.AuditEvent{TenantID: "acme", Actor: "system", ActorType: runproof.OriginSystem,
			Category: runproof.AuditIntegrity, Action: "ledger verify", Decision: runproof.DecisionAllow, SourceComponent: "cli", Detail: "ok"}); err != nil {
			t.Fatal(err)
		}
		c.do(200, "GET", "/api/v1/logs/system/audit", auditor, nil)

		// Problems.
		c.do(401, "GET", "/api/v1/logs/llm-runs", "", nil)
		c.do(403, "POST", "/api/v1/runs", viewer, map[string]any{"agent_id": "a"})
		c.do(404, "GET", "/api/v1/logs/llm-runs/{run_id}/trace", viewer, nil, "nope")
		c.do(409, "POST", "/api/v1/runs/{run_id}/steps", agent, steps(0, 0, 1, 1), "r-1")
		c.do(422, "POST", "/api/v1/policies", admin, map[string]any{"name": "p", "type": "magic", "threshold": "1", "action": "explode"})
		c.do(400, "POST", "/api/v1/runs", agent, `{"agent_id": `)
		c.do(405, "POST", "/api/v1/logs/llm-runs", admin, map[string]any{})
		// OTLP's: problems for the key, google.rpc.Status for the body.
		c.do(401, "POST", "/v1/traces", "", otlpBody)
		c.do(403, "POST", "/v1/traces", viewer, otlpBody)
		c.do(400, "POST", "/v1/traces", agent, `{"resourceSpans": 7}`)
		c.do(400, "POST", "/v1/traces?x=1", agent, otlpBody)
		e.header = http.Header{"Content-Type": {"text/plain"}}
		c.do(415, "POST", "/v1/traces", agent, otlpBody)
		e.header = nil

		// The audit log last, so that it holds all of the above.
		for _, topic := range []string{"", "/identity", "/authorization", "/access", "/integrity", "/exports"} {
			c.do(200, "GET", "/api/v1/logs/audit"+topic, auditor, nil)
		}
		for _, op := range []string{"/healthz", "/readyz", "/metrics", "/openapi.json"} {
			c.do(200, "GET", op, "", nil)
		}
		if missing := c.unseen(); len(missing) > 0 {
			t.Errorf("documented answers no request got (add them to this test):\n%s", strings.Join(missing, "\n"))
		}
	})
}

// TestOpenAPIQueryTypes: query parameters are typed as the API reads them:
// times as date-times, tree sizes as integers, statuses by their enums.
func TestOpenAPIQueryTypes(t *testing.T) {
	e := newEnv(t, storetest.OpenSQLite(t))
	var doc struct {
		Paths map[string]map[string]struct {
			Parameters []struct {
				Name   string         `json:"name"`
				Schema map[string]any `json:"schema"`
			} `json:"parameters"`
		} `json:"paths"`
	}
	e.must(200, e.do("GET", "/openapi.json", "", nil)).decode(t, &doc)
	param := func(path, name string) map[string]any {
		for _, p := range doc.Paths[path]["get"].Parameters {
			if p.Name == name {
				return p.Schema
			}
		}
		t.Fatalf("%s has no parameter %s", path, name)
		return nil
	}
	for _, c := range []struct {
		path, name, want string
	}{
		{"/api/v1/ledger/consistency", "from", `{"minimum":1,"type":"integer"}`},
		{"/api/v1/ledger/consistency", "to", `{"minimum":1,"type":"integer"}`},
		{"/api/v1/logs/audit", "to", `{"format":"date-time","type":"string"}`},
		{"/api/v1/incidents", "detected_before", `{"format":"date-time","type":"string"}`},
		{"/api/v1/incidents", "status", `{"enum":["pending","in_progress","completed"],"type":"string"}`},
		{"/api/v1/logs/llm-runs", "status", `{"enum":["running","stopped","completed","failed","cancelled"],"type":"string"}`},
	} {
		if got, _ := json.Marshal(param(c.path, c.name)); string(got) != c.want {
			t.Errorf("%s %s: %s, want %s", c.path, c.name, got, c.want)
		}
	}
}

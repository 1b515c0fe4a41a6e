package httpapi_test

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/runproof/runproof/internal/httpapi"
	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/store/storetest"
)

// TestOpenAPIRequestRules: what the document says of request bodies holds.
// A body without a member it calls required, with an enum member of
// another value, or with a member it does not list where it closes the
// object (additionalProperties false), is refused (422) naming the member.
func TestOpenAPIRequestRules(t *testing.T) {
	e := newEnv(t, storetest.OpenSQLite(t))
	admin, agent, auditor := e.key("acme", runproof.RoleAdmin), e.key("acme", runproof.RoleAgent), e.key("acme", runproof.RoleAuditor)
	res := struct{ IncidentID string }{e.stoppedRun(admin, agent)}
	var rec struct {
		ID string `json:"id"`
	}
	e.must(201, e.do("POST", "/api/v1/exports", auditor, map[string]any{"incident_id": res.IncidentID, "bundle_type": "soc2", "format": "json"})).decode(t, &rec)
	var doc map[string]any
	e.must(200, e.do("GET", "/openapi.json", "", nil)).decode(t, &doc)

	// A body the server takes empty is not required by the document.
	for route, want := range map[string]bool{"/api/v1/runs/{run_id}/complete": false, "/api/v1/incidents/{incident_id}/export/soc2": false,
		"/api/v1/runs/{run_id}/steps": true, "/api/v1/exports": true} {
		op := doc["paths"].(map[string]any)[route].(map[string]any)["post"].(map[string]any)
		if got := op["requestBody"].(map[string]any)["required"]; got != want {
			t.Errorf("POST %s: the document says its body is required: %v, want %v", route, got, want)
		}
	}

	for _, tt := range []struct {
		route, path, key string
		body             map[string]any // a valid body
		required         []string       // what the document must say, at least
	}{
		{"/api/v1/policies", "/api/v1/policies", admin,
			map[string]any{"name": "p", "type": "token_limit", "threshold": 10, "action": "warn"}, []string{"name", "type", "action"}},
		{"/api/v1/runs", "/api/v1/runs", agent, map[string]any{"run_id": "r-2", "agent_id": "bot"}, []string{"agent_id"}},
		{"/api/v1/runs/{run_id}/steps", "/api/v1/runs/r-1/steps", agent, steps(6, 6, 1, 1), []string{"steps"}},
		{"/api/v1/runs/{run_id}/complete", "/api/v1/runs/r-1/complete", agent, map[string]any{"status": "completed"}, nil},
		{"/api/v1/incidents/{incident_id}/remediation", "/api/v1/incidents/" + res.IncidentID + "/remediation", admin,
			map[string]any{"remediation_status": "in_progress"}, []string{"remediation_status"}},
		{"/api/v1/exports", "/api/v1/exports", auditor,
			map[string]any{"scope": "llm_run", "run_id": "r-1", "bundle_type": "executive_debrief", "format": "json", "classification": "PUBLIC"},
			[]string{"format"}},
		{"/api/v1/exports/{export_id}/reviews", "/api/v1/exports/" + rec.ID + "/reviews", auditor,
			map[string]any{"review_status": "REVIEWED"}, []string{"review_status"}},
		{"/api/v1/incidents/{incident_id}/export/evidence", "/api/v1/incidents/" + res.IncidentID + "/export/evidence", auditor,
			map[string]any{"format": "json", "classification": "PUBLIC"}, nil}, // format defaults to json
	} {
		op := doc["paths"].(map[string]any)[tt.route].(map[string]any)["post"].(map[string]any)
		schema := resolve(doc, op["requestBody"].(map[string]any)["content"].(map[string]any)["application/json"].(map[string]any)["schema"].(map[string]any))
		for _, m := range tt.required {
			if !slices.Contains(schema["required"].([]any), any(m)) {
				t.Errorf("POST %s: the document does not say that %s is required", tt.route, m)
			}
		}
		// Every value an enum lists is one the server knows: it may be
		// refused with the rest of the body, but not as a value it does not
		// take, as one the document does not list is.
		refusal := func(b map[string]any, member string) string {
			resp := e.do("POST", tt.path, tt.key, b)
			var p httpapi.Problem
			if resp.status == 422 {
				resp.decode(t, &p)
			}
			for _, f := range p.Errors {
				if strings.HasSuffix(f.Field, member) {
					return f.Message
				}
			}
			return ""
		}
		for name, p := range schema["properties"].(map[string]any) {
			values, _ := resolve(doc, p.(map[string]any))["enum"].([]any)
			if len(values) == 0 {
				continue
			}
			b := maps.Clone(tt.body)
			b[name] = "bogus"
			unknown := refusal(b, name)
			for _, v := range values {
				b[name] = v
				if got := refusal(b, name); got != "" && got == unknown {
					t.Errorf("POST %s: %s %v, a value the document lists, is refused as unknown: %s", tt.route, name, v, got)
				}
			}
		}
		for _, r := range rules(doc, schema, tt.body) {
			resp := e.do("POST", tt.path, tt.key, r.body)
			var p httpapi.Problem
			if resp.status == 422 {
				resp.decode(t, &p)
			}
			if resp.status != 422 || !slices.ContainsFunc(p.Errors, func(f runproof.FieldError) bool { return strings.HasSuffix(f.Field, r.member) }) {
				t.Errorf("POST %s %s %s: status %d, %s", tt.route, r.what, r.member, resp.status, resp.body)
			}
		}
	}
}

// rule is a change to a valid body that the document says is refused,
// and the member the refusal names.
type rule struct {
	what, member string
	body         map[string]any
}

// rules lists the changes to body that its schema refuses, and those to
// its first step (a body of "steps") that the steps' schema refuses.
func rules(doc, schema, body map[string]any) []rule {
	var out []rule
	req, _ := schema["required"].([]any)
	for _, m := range req {
		b := maps.Clone(body)
		delete(b, m.(string))
		out = append(out, rule{"without", m.(string), b})
	}
	props, _ := schema["properties"].(map[string]any)
	for name, p := range props {
		if _, ok := resolve(doc, p.(map[string]any))["enum"]; ok {
			b := maps.Clone(body)
			b[name] = "bogus"
			out = append(out, rule{"with another value of", name, b})
		}
	}
	if schema["additionalProperties"] == false {
		b := maps.Clone(body)
		b["zzz"] = 1
		out = append(out, rule{"with the unknown member", "zzz", b})
	}
	if s, ok := body["steps"].([]any); ok && len(s) > 0 {
		items := resolve(doc, props["steps"].(map[string]any)["items"].(map[string]any))
		for _, r := range rules(doc, items, s[0].(map[string]any)) {
			b := maps.Clone(body)
			b["steps"] = []any{r.body}
			out = append(out, rule{r.what + " (a step)", r.member, b})
		}
	}
	return out
}

func resolve(doc, s map[string]any) map[string]any {
	if ref, ok := s["$ref"].(string); ok {
		return doc["components"].(map[string]any)["schemas"].(map[string]any)[strings.TrimPrefix(ref, "#/components/schemas/")].(map[string]any)
	}
	return s
}

// TestOpenAPIEnumsAreTheDomains: the allowed values the document lists
// are the domain's own lists, so that a value added to one is documented.
func TestOpenAPIEnumsAreTheDomains(t *testing.T) {
	e := newEnv(t, storetest.OpenSQLite(t))
	var doc map[string]any
	e.must(200, e.do("GET", "/openapi.json", "", nil)).decode(t, &doc)
	schemas := doc["components"].(map[string]any)["schemas"].(map[string]any)
	enum := func(schema, member string) []string {
		p := schemas[schema].(map[string]any)["properties"].(map[string]any)[member].(map[string]any)
		var out []string
		for _, v := range p["enum"].([]any) {
			out = append(out, v.(string))
		}
		return out
	}
	var types []string
	for _, pt := range runproof.PolicyTypes {
		types = append(types, string(pt))
	}
	for _, c := range []struct {
		schema, member string
		want           []string
	}{
		{"service.PolicyInput", "type", types},
		{"service.RemediationInput", "remediation_status", runproof.RemediationStatuses},
	} {
		if got := enum(c.schema, c.member); !slices.Equal(got, c.want) {
			t.Errorf("%s.%s: the document allows %v, the domain %v", c.schema, c.member, got, c.want)
		}
	}
}

// TestOpenAPILimits: every limit parameter the document lists takes its
// maximum and refuses one more, and 0, naming limit.
func TestOpenAPILimits(t *testing.T) {
	e := newEnv(t, storetest.OpenSQLite(t))
	admin, agent := e.key("acme", runproof.RoleAdmin), e.key("acme", runproof.RoleAgent)
	incident := e.stoppedRun(admin, agent)
	var doc map[string]any
	e.must(200, e.do("GET", "/openapi.json", "", nil)).decode(t, &doc)
	ids := strings.NewReplacer("{run_id}", "r-1", "{incident_id}", incident)
	checked := 0
	for route, item := range doc["paths"].(map[string]any) {
		get, ok := item.(map[string]any)["get"].(map[string]any)
		if !ok {
			continue
		}
		params, _ := get["parameters"].([]any)
		for _, p := range params {
			p := p.(map[string]any)
			if p["name"] != "limit" {
				continue
			}
			schema := p["schema"].(map[string]any)
			most, ok := schema["maximum"].(float64)
			if !ok || schema["minimum"] != 1.0 {
				t.Errorf("GET %s: limit is %v, want a minimum of 1 and a maximum", route, schema)
				continue
			}
			path := ids.Replace(route)
			if r := e.do("GET", fmt.Sprintf("%s?limit=%d", path, int(most)), admin, nil); r.status != 200 {
				t.Errorf("GET %s?limit=%d (the maximum): status %d, %s", path, int(most), r.status, r.body)
			}
			for _, bad := range []int{0, int(most) + 1} {
				r := e.do("GET", fmt.Sprintf("%s?limit=%d", path, bad), admin, nil)
				var prob httpapi.Problem
				if r.status == 422 {
					r.decode(t, &prob)
				}
				if r.status != 422 || len(prob.Errors) != 1 || prob.Errors[0].Field != "limit" {
					t.Errorf("GET %s?limit=%d: status %d, %s; want 422 naming limit", path, bad, r.status, r.body)
				}
			}
			checked++
		}
	}
	if checked < 10 {
		t.Errorf("%d routes with a limit checked, want them all", checked)
	}
}

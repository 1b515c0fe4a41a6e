package httpapi_test

import (
	"strings"
	"testing"

	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/store/storetest"
)

// TestRetirePolicy: a retired policy judges no new run, while a run
// started before keeps it; it is retired once, by its tenant's admins
// only; a policy of its name makes it active again.
func TestRetirePolicy(t *testing.T) {
	storetest.Each(t, func(t *testing.T, store runproof.Store) {
		e := newEnv(t, store)
		admin, viewer, agent, other := e.key("acme", runproof.RoleAdmin), e.key("acme", runproof.RoleViewer),
			e.key("acme", runproof.RoleAgent), e.key("globex", runproof.RoleAdmin)
		var capped runproof.Policy
		e.must(201, e.do("POST", "/api/v1/policies", admin, map[string]any{"name": "cost cap", "type": "cost_limit", "threshold": 100, "action": "stop"})).decode(t, &capped)
		e.must(201, e.do("POST", "/api/v1/policies", admin, map[string]any{"name": "tokens", "type": "token_limit", "threshold": 100000, "action": "warn"}))
		e.must(201, e.do("POST", "/api/v1/runs", agent, map[string]any{"run_id": "before", "agent_id": "bot"}))

		path := "/api/v1/policies/" + capped.ID
		e.must(403, e.do("DELETE", path, viewer, nil))
		e.must(404, e.do("DELETE", path, other, nil))
		e.must(404, e.do("DELETE", "/api/v1/policies/no-such-policy", admin, nil))
		var retired runproof.Policy
		e.must(200, e.do("DELETE", path, admin, nil)).decode(t, &retired)
		if !retired.Retired || retired.Version != 2 || retired.Name != "cost cap" || retired.Threshold != "100" {
			t.Errorf("the retiring version: %+v", retired)
		}
		if r := e.must(409, e.do("DELETE", path, admin, nil)); r.header.Get("Content-Type") != "application/problem+json" ||
			!strings.Contains(string(r.body), "retired at") {
			t.Errorf("retiring it again: %s", r.body)
		}

		var active struct{ Items []runproof.Policy }
		e.must(200, e.do("GET", "/api/v1/policies", admin, nil)).decode(t, &active)
		if len(active.Items) != 1 || active.Items[0].Name != "tokens" {
			t.Errorf("active policies after retiring: %+v", active.Items)
		}
		// A new run is not stopped by it; the run started before is.
		e.must(201, e.do("POST", "/api/v1/runs", agent, map[string]any{"run_id": "after", "agent_id": "bot"}))
		var res struct{ Decision string }
		e.must(200, e.do("POST", "/api/v1/runs/after/steps", agent, steps(0, 5, 30, 100))).decode(t, &res)
		if res.Decision != "allow" {
			t.Errorf("a run started after the retirement: %s, want allow", res.Decision)
		}
		e.must(200, e.do("POST", "/api/v1/runs/before/steps", agent, steps(0, 5, 30, 100))).decode(t, &res)
		if res.Decision != "stop" {
			t.Errorf("a run started before the retirement: %s, want stop", res.Decision)
		}

		// Its versions show the retiring one, to its tenant alone.
		var versions struct{ Items []runproof.Policy }
		e.must(200, e.do("GET", path, viewer, nil)).decode(t, &versions)
		if len(versions.Items) != 2 || versions.Items[0].Retired || !versions.Items[1].Retired {
			t.Errorf("versions: %+v", versions.Items)
		}
		e.must(404, e.do("GET", path, other, nil))

		// Its name makes it active again, as its next version.
		var back runproof.Policy
		e.must(201, e.do("POST", "/api/v1/policies", admin, map[string]any{"name": "cost cap", "type": "cost_limit", "threshold": 50, "action": "stop"})).decode(t, &back)
		if back.ID != capped.ID || back.Version != 3 || back.Retired {
			t.Errorf("the policy made active again: %+v", back)
		}
		e.must(200, e.do("GET", "/api/v1/policies", admin, nil)).decode(t, &active)
		if len(active.Items) != 2 {
			t.Errorf("active policies after its return: %+v", active.Items)
		}
	})
}

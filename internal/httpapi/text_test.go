package httpapi_test

import (
	"context"
	"encoding/base64"
	"testing"

	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/store/storetest"
)

// TestControlCharacters: text fields holding a control character (U+0000,
// which PostgreSQL cannot store as text, among them) are refused with a 422
// naming the field, the same on both engines; step content, which is free
// JSON, keeps them.
func TestControlCharacters(t *testing.T) {
	storetest.Each(t, func(t *testing.T, store runproof.Store) {
		e := newEnv(t, store)
		admin := e.key("acme", runproof.RoleAdmin)
		e.must(201, e.do("POST", "/api/v1/runs", admin, map[string]any{"run_id": "r1", "agent_id": "bot", "goal": "two\nlines\tand a tab"}))
		withStep := func(field string, v any) map[string]any {
			s := step(0, 1, 1)
			s[field] = v
			return map[string]any{"steps": []any{s}}
		}
		cursor := base64.RawURLEncoding.EncodeToString([]byte(`{"t":"2026-01-01T00:00:00Z","id":"r\u0000"}`))
		tests := []struct {
			name, method, path string
			body               any
			status             int
			field              string
		}{
			{"agent id", "POST", "/api/v1/runs", map[string]any{"agent_id": "bot\x00"}, 422, "agent_id"},
			{"agent id with a line feed", "POST", "/api/v1/runs", map[string]any{"agent_id": "bot\n"}, 422, "agent_id"},
			{"goal", "POST", "/api/v1/runs", map[string]any{"agent_id": "bot", "goal": "g\x00"}, 422, "goal"},
			{"run id", "POST", "/api/v1/runs", map[string]any{"run_id": "r\x00", "agent_id": "bot"}, 422, "run_id"},
			{"step type", "POST", "/api/v1/runs/r1/steps", withStep("step_type", "llm\x00"), 422, "steps[0].step_type"},
			{"policy name", "POST", "/api/v1/policies", map[string]any{"name": "cap\x00", "type": "cost_limit", "threshold": 5, "action": "stop"}, 422, "name"},
			{"policy step types", "POST", "/api/v1/policies", map[string]any{"name": "deny", "type": "step_type_denied", "step_types": []string{"shell", "rm\x00"}, "action": "stop"}, 422, "step_types[1]"},
			{"export reason", "POST", "/api/v1/exports", map[string]any{"run_id": "r1", "format": "json", "export_reason": "audit\x00"}, 422, "export_reason"},
			{"prepared for", "POST", "/api/v1/exports", map[string]any{"run_id": "r1", "format": "json", "prepared_for": "board\x00"}, 422, "prepared_for"},
			{"correlation id", "POST", "/api/v1/exports", map[string]any{"run_id": "r1", "format": "json", "correlation_id": "c\x00"}, 422, "correlation_id"},
			{"export run id", "POST", "/api/v1/exports", map[string]any{"run_id": "r\x00", "format": "json"}, 422, "run_id"},
			{"export incident id", "POST", "/api/v1/exports", map[string]any{"incident_id": "i\x00", "format": "json"}, 422, "incident_id"},
			{"run id in the path", "GET", "/api/v1/logs/llm-runs/r%001/trace", nil, 404, ""},
			{"export id in the path", "GET", "/api/v1/exports/x%00", nil, 404, ""},
			{"query", "GET", "/api/v1/logs/llm-runs?agent_id=bot%00", nil, 422, "agent_id"},
			{"cursor", "GET", "/api/v1/logs/llm-runs?cursor=" + cursor, nil, 422, "cursor"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r := e.do(tt.method, tt.path, admin, tt.body)
				if r.status != tt.status {
					t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
				}
				var p problem
				r.decode(t, &p)
				if tt.field != "" && (len(p.Errors) == 0 || p.Errors[0].Field != tt.field) {
					t.Fatalf("problem names %+v, want field %q", p.Errors, tt.field)
				}
			})
		}

		e.must(200, e.do("POST", "/api/v1/runs/r1/steps", admin, withStep("content", map[string]any{"a": "nul \x00 and bell \a"})))
		var trace struct {
			Steps []map[string]any `json:"steps"`
		}
		e.must(200, e.do("GET", "/api/v1/logs/llm-runs/r1/trace", admin, nil)).decode(t, &trace)
		if len(trace.Steps) != 1 || trace.Steps[0]["content"].(map[string]any)["a"] != "nul \x00 and bell \a" {
			t.Fatalf("steps %+v", trace.Steps)
		}
		if run, err := e.svc.GetRun(context.Background(), "acme", "r1"); err != nil || run.Goal != "two\nlines\tand a tab" {
			t.Fatalf("run %+v, %v", run, err)
		}
	})
}

package service

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/store/storetest"
)

func BenchmarkDecodeSteps500(b *testing.B) {
	var steps []map[string]any
	start := fuzzNow.Add(-time.Hour)
	for i := range 500 {
		steps = append(steps, map[string]any{"step_index": i, "timestamp": start.Add(time.Duration(i) * time.Millisecond).Format(time.RFC3339Nano),
			"step_type": "llm:gpt-4o", "input_tokens": 120 + i%50, "output_tokens": 40, "cost_cents": 0.25, "duration_ms": 812.5,
			"content": map[string]any{"prompt": "Summarise the ticket", "response": "The customer asks for a refund."}})
	}
	body, _ := json.Marshal(map[string]any{"steps": steps})
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeSteps(body, fuzzNow); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGovernance: how a run of 50 000 steps with 2 KB of content each
// was judged, and its system events. Both read the steps' findings only.
func BenchmarkGovernance(b *testing.B) {
	ctx := context.Background()
	svc := New(storetest.OpenSQLite(b), Options{})
	const steps = 50_000
	if _, err := svc.CreatePolicies(ctx, "acme", PolicyInput{Name: "long", Type: runproof.PolicyStepLimit,
		Threshold: "49000", Action: runproof.ActionWarn}); err != nil {
		b.Fatal(err)
	}
	openRun(b, svc, "acme", "r1")
	content := map[string]any{"prompt": strings.Repeat("Summarise the ticket. ", 100)}
	start := time.Now().Add(-time.Hour)
	for from := 0; from < steps; from += MaxStepsPerCall {
		var batch []map[string]any
		for i := from; i < min(from+MaxStepsPerCall, steps); i++ {
			batch = append(batch, stepJSON(i, map[string]any{"content": content,
				"timestamp": start.Add(time.Duration(i) * time.Millisecond).Format(time.RFC3339Nano)}))
		}
		if _, err := appendJSON(b, svc, "acme", "r1", batch...); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("governance", func(b *testing.B) {
		for b.Loop() {
			if g, err := svc.Governance(ctx, "acme", "r1"); err != nil || g.Evaluations[0].StepsExceeded != steps-49_000 {
				b.Fatal(err, g.Evaluations)
			}
		}
	})
	b.Run("events", func(b *testing.B) {
		for b.Loop() {
			if _, err := svc.SystemEvents(ctx, "acme", "r1", false); err != nil {
				b.Fatal(err)
			}
		}
	})
}

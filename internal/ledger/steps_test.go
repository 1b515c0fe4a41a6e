package ledger_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/runproof/runproof/internal/ledger"
	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/store/storetest"
)

// stepsRun stores a run of n steps, with content, through the store as
// ingest does.
func stepsRun(t *testing.T, s runproof.Store, tenant, runID string, from, n int) {
	t.Helper()
	ctx := context.Background()
	if from == 0 {
		snap, err := runproof.NewSnapshot(tenant, nil, t0)
		if err != nil {
			t.Fatal(err)
		}
		run := runproof.Run{TenantID: tenant, ID: runID, AgentID: "bot", Status: runproof.RunRunning, SnapshotID: snap.ID,
			StartedAt: t0, CreatedAt: t0}
		if err := s.CreateRun(ctx, run, snap); err != nil {
			t.Fatal(err)
		}
	}
	steps := make([]runproof.Step, n)
	for i := range steps {
		st := runproof.Step{TenantID: tenant, RunID: runID, Index: int64(from + i), Timestamp: t0.Add(time.Duration(from+i) * time.Second),
			StepType: "llm:gpt", InputTokens: 10, OutputTokens: 5, CostMicrocents: 1000, DurationMicros: 10,
			Status: runproof.StepOK, RecordedAt: t0.Add(time.Duration(from+i) * time.Second)}
		content, err := runproof.CanonicalJSON([]byte(fmt.Sprintf(`{"prompt":"step %d"}`, from+i)))
		if err != nil {
			t.Fatal(err)
		}
		st.Content, st.ContentDigest = content, runproof.DigestBytes(content)
		st.ContentHash = runproof.StepContentHash(st)
		steps[i] = st
	}
	storetest.AppendSteps(t, s, tenant, runID, steps...)
}

// TestSealSteps: a run's steps are sealed a range at a time, each range
// once, and the log verifies with them; nothing is left to seal after.
func TestSealSteps(t *testing.T) {
	eachEngine(t, func(t *testing.T, e engine) {
		ctx := context.Background()
		l := newLedger(t, e.Store)
		stepsRun(t, e.Store, "acme", "r-1", 0, 5)
		stepsRun(t, e.Store, "acme", "r-2", 0, 2)
		stepsRun(t, e.Store, "globex", "r-1", 0, 3)
		if n, err := l.SyncSteps(ctx, "acme"); err != nil || n != 2 {
			t.Fatalf("sync: %d, %v; want an entry for each of 2 runs", n, err)
		}
		stepsRun(t, e.Store, "acme", "r-1", 5, 3)
		if n, err := l.SyncSteps(ctx, "acme"); err != nil || n != 1 {
			t.Fatalf("second sync: %d, %v; want the new steps of r-1", n, err)
		}
		if n, err := l.SyncSteps(ctx, "acme"); err != nil || n != 0 {
			t.Fatalf("third sync: %d, %v; want nothing", n, err)
		}
		rep, err := verifyAs(ctx, e.Store, l, "acme", nil)
		if err != nil || rep.Entries != 3 || rep.StepRanges != 3 || rep.Steps != 10 {
			t.Fatalf("verify: %+v, %v; want 3 ranges sealing 10 steps", rep, err)
		}
		if left, err := e.Store.StepsToSeal(ctx, "globex", 10); err != nil || len(left) != 1 {
			t.Errorf("another tenant's steps: %v, %v; want still to seal", left, err)
		}
	})
}

// TestSealStepsConcurrently: two processes sealing a tenant's steps while
// an agent sends more seal each step once, and the log verifies.
func TestSealStepsConcurrently(t *testing.T) {
	eachEngine(t, func(t *testing.T, e engine) {
		ctx := context.Background()
		stepsRun(t, e.Store, "acme", "r-1", 0, 2)
		stepsRun(t, e.Store, "acme", "r-2", 0, 2)
		sealers := []*ledger.Ledger{newLedger(t, e.Store), newLedger(t, e.Store)}
		var wg sync.WaitGroup
		var sent atomic.Bool // the agent is done
		for _, l := range sealers {
			wg.Go(func() {
				for pass := 0; pass < 10 || !sent.Load(); pass++ {
					if _, err := l.SyncSteps(ctx, "acme"); err != nil {
						t.Errorf("sync: %v", err)
						return
					}
				}
			})
		}
		for i := range 10 { // the agent, meanwhile
			stepsRun(t, e.Store, "acme", "r-1", 2+i*3, 3)
		}
		sent.Store(true)
		wg.Wait()
		if _, err := sealers[0].SyncSteps(ctx, "acme"); err != nil {
			t.Fatal(err)
		}
		rep, err := verifyAs(ctx, e.Store, sealers[0], "acme", nil)
		if err != nil || rep.Steps != 34 {
			t.Fatalf("verify: %+v, %v; want the 34 steps sealed once each", rep, err)
		}
	})
}

// TestTamperSteps changes a sealed step behind the triggers' back, with
// its content_hash written anew to match: verification names the entry
// that seals it. Steps not sealed yet are not covered.
func TestTamperSteps(t *testing.T) {
	drills := []struct {
		name, sql string
		want      string
	}{
		{"edit a step and its content_hash alike", "", "a step was changed behind runproof's back"},
		{"edit a step's content", `UPDATE steps SET content = '{"prompt":"forged"}' WHERE run_id = 'r-2' AND step_index = 1`,
			"step 1 does not match its content_digest"},
		{"delete a step", `DELETE FROM steps WHERE run_id = 'r-2' AND step_index = 2`, "step 2 is missing"},
	}
	for _, d := range drills {
		t.Run(d.name, func(t *testing.T) {
			eachEngine(t, func(t *testing.T, e engine) {
				ctx := context.Background()
				l := newLedger(t, e.Store)
				stepsRun(t, e.Store, "acme", "r-1", 0, 3)
				stepsRun(t, e.Store, "acme", "r-2", 0, 4)
				if _, err := l.SyncSteps(ctx, "acme"); err != nil {
					t.Fatal(err)
				}
				dropStepTriggers(t, e)
				if d.sql != "" {
					e.exec(t, d.sql)
				} else {
					forgeStep(t, e, "acme", "r-2", 1)
				}
				inPages(func() {
					_, err := verifyAs(ctx, e.Store, l, "acme", nil)
					wantMismatch(t, err, 1) // r-2's entry, after r-1's
					if !strings.Contains(err.Error(), "steps 0 to 3 of run r-2") || !strings.Contains(err.Error(), d.want) {
						t.Errorf("the mismatch does not say which steps, and what: %v", err)
					}
				})
			})
		})
	}
}

// forgeStep gives a stored step another step type and writes its
// content_hash anew to match, as whoever owns the database could.
func forgeStep(t *testing.T, e engine, tenant, runID string, index int64) {
	t.Helper()
	steps, err := e.Store.ListSteps(context.Background(), runproof.ListStepsParams{TenantID: tenant, RunID: runID, FromIndex: index, Limit: 1})
	if err != nil || len(steps) != 1 {
		t.Fatalf("step %d: %v", index, err)
	}
	st := steps[0]
	st.StepType = "tool:shell"
	e.exec(t, fmt.Sprintf("UPDATE steps SET step_type = 'tool:shell', content_hash = '%s' WHERE tenant_id = '%s' AND run_id = '%s' AND step_index = %d",
		runproof.StepContentHash(st), tenant, runID, index))
}

// dropStepTriggers removes what keeps steps append-only.
func dropStepTriggers(t *testing.T, e engine) {
	t.Helper()
	if e.name == "sqlite" {
		e.exec(t, "DROP TRIGGER steps_no_update", "DROP TRIGGER steps_no_delete")
	} else {
		e.exec(t, "DROP TRIGGER steps_append_only ON steps")
	}
}

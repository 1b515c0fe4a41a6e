package ledger_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/runproof/runproof/internal/ledger"
	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/service"
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
		if left, err := e.Store.StepsToSeal(ctx, "globex", "", 10); err != nil || len(left) != 1 {
			t.Errorf("another tenant's steps: %v, %v; want still to seal", left, err)
		}
		stepsRun(t, e.Store, "acme", "r-3", 0, 1)
		if rep, err := verifyAs(ctx, e.Store, l, "acme", nil); err != nil || rep.Unsealed != 1 {
			t.Errorf("verify with a run not sealed yet: %+v, %v; want it counted", rep, err)
		}
	})
}

// TestVerifyProgressWithinSteps: a steps entry that seals many steps is
// said to be under way after each page of them, not only once checked.
func TestVerifyProgressWithinSteps(t *testing.T) {
	ctx := context.Background()
	s := storetest.OpenSQLite(t)
	l := newLedger(t, s)
	stepsRun(t, s, "acme", "r-1", 0, 2500)
	if n, err := l.SyncSteps(ctx, "acme"); err != nil || n != 1 {
		t.Fatalf("sync: %d, %v; want one entry", n, err)
	}
	var calls []string
	_, err := ledger.Verify(ctx, s, ledger.VerifyParams{TenantID: "acme", VerifierKeys: []string{l.VerifierKey()},
		Progress: func(done, total int64) { calls = append(calls, fmt.Sprintf("%d/%d", done, total)) }})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"0/1", "0/1", "0/1", "1/1"}; !slices.Equal(calls, want) { // three pages of steps, then the entry
		t.Errorf("progress %v, want %v", calls, want)
	}
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

// TestTamperSteps changes sealed steps, or what keeps the count of those
// sealed, behind the triggers' back: verification names the entry that
// seals the step (index 1, r-2's, after r-1's), or, for the count, the run.
func TestTamperSteps(t *testing.T) {
	const r2 = "run_id = 'r-2'"
	drills := []struct {
		name  string
		sql   func(e engine) []string // nil: forgeStep
		index int64
		want  string
	}{
		{"edit a step and its content_hash alike", nil, 1, "a step was changed behind runproof's back"},
		{"edit a step's status", func(engine) []string {
			return []string{"UPDATE steps SET status = 'violation' WHERE " + r2 + " AND step_index = 1"}
		}, 1, "a step was changed behind runproof's back"},
		{"make another step the inflection", func(engine) []string {
			return []string{"UPDATE steps SET is_inflection = true WHERE " + r2 + " AND step_index = 2"}
		}, 1, "a step was changed behind runproof's back"},
		{"date a step's receipt earlier", func(e engine) []string {
			if e.name == "sqlite" {
				return []string{"UPDATE steps SET recorded_at = '2026-01-01T00:00:00.000000Z' WHERE " + r2 + " AND step_index = 3"}
			}
			return []string{"UPDATE steps SET recorded_at = recorded_at - interval '1 hour' WHERE " + r2 + " AND step_index = 3"}
		}, 1, "a step was changed behind runproof's back"},
		{"add findings to a step", func(engine) []string {
			return []string{`UPDATE steps SET findings = '[{"policy_id":"p","policy_name":"p","type":"cost_limit","threshold":"1","actual":"2","action":"warn"}]' WHERE ` + r2 + " AND step_index = 0"}
		}, 1, "a step was changed behind runproof's back"},
		{"drop a step's content", func(engine) []string {
			return []string{"UPDATE steps SET content = NULL WHERE " + r2 + " AND step_index = 1"}
		}, 1, "a step was changed behind runproof's back"},
		{"edit a step's content", func(engine) []string {
			return []string{`UPDATE steps SET content = '{"prompt":"forged"}' WHERE ` + r2 + " AND step_index = 1"}
		}, 1, "step 1 does not match its content_digest"},
		{"delete a step", func(engine) []string {
			return []string{"DELETE FROM steps WHERE " + r2 + " AND step_index = 2"}
		}, 1, "step 2 is missing"},
		{"count a run's steps sealed beyond the log", func(engine) []string {
			return []string{"UPDATE run_seals SET sealed_steps = 1000 WHERE " + r2}
		}, -1, "run r-2: its steps are counted sealed up to 1000, but its steps entries seal them up to 4"},
		{"forget how far a run is sealed", func(engine) []string {
			return []string{"DELETE FROM run_seals WHERE " + r2}
		}, -1, "run r-2: its steps are counted sealed up to 0, but its steps entries seal them up to 4"},
		{"take steps out of a run's count", func(e engine) []string {
			drop := "DROP TRIGGER runs_change_only_as_run"
			if e.name == "postgres" {
				drop += " ON runs"
			}
			return []string{drop, "UPDATE runs SET steps = 2 WHERE id = 'r-2'"}
		}, -1, "run r-2 records 2 steps, but 4 are sealed"},
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
				if d.sql == nil {
					forgeStep(t, e, "acme", "r-2", 1)
				} else {
					e.exec(t, d.sql(e)...)
				}
				inPages(func(pageSize int64) {
					_, err := verifyPaged(ctx, e.Store, l, "acme", nil, pageSize)
					wantMismatch(t, err, d.index)
					if !strings.Contains(err.Error(), d.want) || d.index >= 0 && !strings.Contains(err.Error(), "steps 0 to 3 of run r-2") {
						t.Errorf("the mismatch does not say which steps, and what: %v", err)
					}
				})
			})
		})
	}
}

// TestSealStepsPastABadRun: a run whose stored steps do not hold, or
// cannot be read, is left unsealed and named; the tenant's other runs are
// sealed all the same.
func TestSealStepsPastABadRun(t *testing.T) {
	for _, c := range []struct{ poison, want string }{
		{`UPDATE steps SET content = '{"prompt":"forged"}' WHERE run_id = 'r-1' AND step_index = 1`, "step 1 does not match its content_digest"},
		{`UPDATE steps SET findings = 'not json' WHERE run_id = 'r-1' AND step_index = 1`, ""}, // unreadable: each engine says so its own way
	} {
		eachEngine(t, func(t *testing.T, e engine) {
			ctx := context.Background()
			l := newLedger(t, e.Store)
			stepsRun(t, e.Store, "acme", "r-1", 0, 2)
			stepsRun(t, e.Store, "acme", "r-2", 0, 2)
			dropStepTriggers(t, e)
			e.exec(t, c.poison)
			n, err := l.SyncSteps(ctx, "acme")
			if n != 1 || err == nil || !strings.Contains(err.Error(), `the steps of run "r-1" are not sealed`) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("sync: %d, %v; want r-2 sealed and r-1 named", n, err)
			}
		})
	}
}

// TestCheckSteps: an export's check of a run's steps catches a changed
// step in a range sealed after the run was read, of which the export read
// only the first steps, by reading the range to its end; and steps read
// as sealed pass, with their content or without it.
func TestCheckSteps(t *testing.T) {
	eachEngine(t, func(t *testing.T, e engine) {
		ctx := context.Background()
		l := newLedger(t, e.Store)
		stepsRun(t, e.Store, "acme", "r-1", 0, 5) // the export reads these 5
		for _, without := range []bool{false, true} {
			t.Run(fmt.Sprintf("without content %v", without), func(t *testing.T) {
				read, err := e.Store.ListSteps(ctx, runproof.ListStepsParams{TenantID: "acme", RunID: "r-1", Limit: 5, WithoutContent: without})
				if err != nil {
					t.Fatal(err)
				}
				if !without {
					stepsRun(t, e.Store, "acme", "r-1", 5, 2) // meanwhile, 2 more come and [0, 7) is sealed
					if _, err := l.SyncSteps(ctx, "acme"); err != nil {
						t.Fatal(err)
					}
				}
				check := func(unread bool) error {
					c, err := l.CheckSteps(ctx, "acme", "r-1", unread)
					if err != nil {
						return err
					}
					for _, s := range read {
						if err := c.Add(s); err != nil {
							return err
						}
					}
					return c.Done(ctx, 7)
				}
				if err := check(without); err != nil {
					t.Fatalf("the steps as sealed: %v", err)
				}
				if without { // their content taken for gone
					if err := check(false); runproof.ErrorCode(err) != runproof.ECONFLICT {
						t.Errorf("steps read without content, checked as read with it: %v", err)
					}
				}
				read[2].StepType = "tool:shell"
				read[2].ContentHash = runproof.StepContentHash(read[2])
				if err := check(without); runproof.ErrorCode(err) != runproof.ECONFLICT || !strings.Contains(err.Error(), "steps 0 to 6 of run \"r-1\" are not those the ledger sealed") {
					t.Errorf("a changed step in a range read in part: %v", err)
				}
			})
		}
	})
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

// dropStepTriggers removes what keeps steps append-only and how far runs
// are sealed only going up.
func dropStepTriggers(t *testing.T, e engine) {
	t.Helper()
	if e.name == "sqlite" {
		e.exec(t, "DROP TRIGGER steps_no_update", "DROP TRIGGER steps_no_delete", "DROP TRIGGER run_seals_only_up", "DROP TRIGGER run_seals_no_delete")
	} else {
		e.exec(t, "DROP TRIGGER steps_append_only ON steps", "DROP TRIGGER run_seals_only_up ON run_seals", "DROP TRIGGER run_seals_no_delete ON run_seals")
	}
}

// TestTamperIncident: incidents are not entries of the log, but each must
// agree with its inflection step, which is: an incident changed behind
// runproof's back fails verification, naming it and the field, on
// whichever page of incidents it is.
func TestTamperIncident(t *testing.T) {
	eachEngine(t, func(t *testing.T, e engine) {
		ctx := context.Background()
		svc := service.New(e.Store, service.Options{})
		if _, err := svc.CreatePolicies(ctx, "acme", service.PolicyInput{Name: "cap", Type: runproof.PolicyStepLimit,
			Threshold: "2", Action: runproof.ActionStop}); err != nil {
			t.Fatal(err)
		}
		// Four runs stopped at their third step; the first run's incident is
		// the oldest, listed last.
		var incidents []string
		for r := range 4 {
			start := svc.Now().Add(time.Duration(r-10) * time.Minute)
			run := fmt.Sprintf("r-%d", r)
			if _, _, err := svc.CreateRun(ctx, "acme", service.RunInput{RunID: run, AgentID: "bot", StartedAt: start.Format(time.RFC3339Nano)}); err != nil {
				t.Fatal(err)
			}
			var in []service.StepInput
			for i := range int64(4) {
				in = append(in, service.StepInput{StepIndex: &i, Timestamp: start.Add(time.Duration(i) * time.Second).Format(time.RFC3339Nano),
					StepType: "llm:gpt", InputTokens: 10})
			}
			steps, err := service.ValidateSteps(in, svc.Now())
			if err != nil {
				t.Fatal(err)
			}
			res, err := svc.AppendSteps(ctx, "acme", run, steps)
			if err != nil || res.IncidentID == "" {
				t.Fatalf("append: %+v, %v; want an incident", res, err)
			}
			incidents = append(incidents, res.IncidentID)
		}
		l := newLedger(t, e.Store)
		if _, err := l.SyncSteps(ctx, "acme"); err != nil {
			t.Fatal(err)
		}
		inPages(func(pageSize int64) {
			if rep, err := verifyPaged(ctx, e.Store, l, "acme", nil, pageSize); err != nil || rep.Incidents != 4 {
				t.Fatalf("before tampering, pages of %d: %+v, %v; want 4 incidents that agree", pageSize, rep, err)
			}
		})
		if e.name == "sqlite" {
			e.exec(t, "DROP TRIGGER incidents_remediation_only")
		} else {
			e.exec(t, "DROP TRIGGER incidents_remediation_only ON incidents")
		}
		e.exec(t, fmt.Sprintf("UPDATE incidents SET policy_name = 'Harmless rule' WHERE id = '%s'", incidents[0]))
		inPages(func(pageSize int64) {
			_, err := verifyPaged(ctx, e.Store, l, "acme", nil, pageSize)
			wantMismatch(t, err, -1)
			if err == nil || !strings.Contains(err.Error(), "incident "+incidents[0]+" disagrees with its inflection step 2") ||
				!strings.Contains(err.Error(), `its policy_name is "Harmless rule", the step's "cap"`) {
				t.Errorf("pages of %d: the mismatch does not name the incident and the field: %v", pageSize, err)
			}
		})
	})
}

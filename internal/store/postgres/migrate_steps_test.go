package postgres

import (
	"context"
	"testing"
	"time"
)

// TestMigrateStepsUnsealedWhileStepsCome: a step a runproof of schema 21
// adds while migration 22 runs, committed while the migration waits on
// runs, makes its run wait for its seal all the same.
func TestMigrateStepsUnsealedWhileStepsCome(t *testing.T) {
	ctx := context.Background()
	s, p := scratch(t)
	if _, err := p.UpTo(ctx, 21); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO policy_snapshots (tenant_id, id, policies, created_at) VALUES ('t1', 'snap', '[]', '2026-01-02T15:04:05.000000Z')`,
		`INSERT INTO runs (tenant_id, id, agent_id, goal, trace_id, status, snapshot_id, started_at, termination_reason,
			incident_id, steps, input_tokens, output_tokens, cost_microcents, duration_micros, created_at)
			VALUES ('t1', 'r', 'bot', '', '', 'running', 'snap', '2026-01-02T15:04:05.000000Z', '', '', 5, 0, 0, 0, 0, '2026-01-02T15:04:05.000000Z')`,
		`INSERT INTO run_seals (tenant_id, run_id, sealed_steps) VALUES ('t1', 'r', 5)`,
	} {
		if err := s.ExecRaw(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	tx, err := s.pool.Begin(ctx) // an older runproof's UpdateRun
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `UPDATE runs SET steps = 6 WHERE tenant_id = 't1' AND id = 'r'`); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Migrate(ctx) }()
	// Wait until the migration waits for the lock on runs (CREATE TRIGGER).
	for i := 0; ; i++ {
		var n int
		if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
			WHERE NOT l.granted AND c.relname = 'runs' AND c.relnamespace = current_schema()::regnamespace`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			break
		}
		if i > 500 {
			t.Fatal("the migration never waited on runs")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	got, err := s.StepsToSeal(ctx, "t1", "", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Sealed != 5 || got[0].Stored != 6 {
		t.Errorf("run r has 6 steps, 5 sealed; StepsToSeal = %v, want it waiting for its seal", got)
	}
}

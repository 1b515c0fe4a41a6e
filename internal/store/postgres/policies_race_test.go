package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/runproof/runproof/internal/runproof"
)

// TestCreatePoliciesCheckRace: a batch whose check waits for the tenant's
// lock sees the batch that held it, whatever isolation the database's
// sessions default to: of two that each allow one "only-" policy, one is
// stored.
func TestCreatePoliciesCheckRace(t *testing.T) {
	eachIsolation(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		only := func(name string) runproof.Policy {
			return runproof.Policy{ID: name, TenantID: "t1", Name: name, Type: runproof.PolicyStepLimit, Threshold: "1",
				Action: runproof.ActionStop, CreatedAt: time.Now()}
		}
		onlyOne := func(active []runproof.Policy) error {
			if len(active) > 0 {
				return runproof.Errorf(runproof.ECONFLICT, "one only")
			}
			return nil
		}
		inside, release, first := make(chan struct{}), make(chan struct{}), make(chan error, 1)
		go func() {
			_, err := s.CreatePolicies(ctx, func(active []runproof.Policy) error {
				close(inside) // holding the lock
				<-release
				return onlyOne(active)
			}, only("only-a"))
			first <- err
		}()
		<-inside
		second := make(chan error, 1)
		go func() { _, err := s.CreatePolicies(ctx, onlyOne, only("only-b")); second <- err }()
		time.Sleep(200 * time.Millisecond) // the second waits for the lock
		close(release)
		if err := <-first; err != nil {
			t.Fatal(err)
		}
		if err := <-second; runproof.ErrorCode(err) != runproof.ECONFLICT {
			t.Errorf("the second batch, checked once the first was stored: %v, want it refused", err)
		}
		if got, err := s.ActivePolicies(ctx, "t1"); err != nil || len(got) != 1 {
			t.Errorf("%d policies stored, want 1 (%v)", len(got), err)
		}
	})
}

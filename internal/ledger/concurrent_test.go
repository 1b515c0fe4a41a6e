package ledger_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/runproof/runproof/internal/ledger"
	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/store/storetest"
)

// appendAll appends each export from its own goroutine, spread over the
// ledgers, and checks the outcome: one index each, no index twice, and a
// log that verifies.
func appendAll(t *testing.T, s runproof.Store, ledgers []*ledger.Ledger, recs []runproof.Export) {
	t.Helper()
	ctx := context.Background()
	idx := make([]int64, len(recs))
	errs := make([]error, len(recs))
	var wg sync.WaitGroup
	for i, r := range recs {
		wg.Go(func() { idx[i], errs[i] = ledgers[i%len(ledgers)].Append(ctx, r) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	seen := make([]bool, len(recs))
	for i, n := range idx {
		if n < 0 || n >= int64(len(recs)) || seen[n] {
			t.Fatalf("export %d got index %d, out of range or given twice", i, n)
		}
		seen[n] = true
	}
	rep, err := verifyAs(ctx, s, ledgers[0], "acme", nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Entries != int64(len(recs)) || rep.Checkpoints != int64(len(recs)) {
		t.Errorf("report %+v, want %d entries and checkpoints", rep, len(recs))
	}
}

func TestConcurrentAppends(t *testing.T) {
	const n = 48
	storetest.Each(t, func(t *testing.T, s runproof.Store) {
		appendAll(t, s, []*ledger.Ledger{newLedger(t, s)}, finish(t, s, "acme", 0, n))
	})
	// Two servers on one PostgreSQL database, each with its own pool.
	t.Run("postgres two pools", func(t *testing.T) {
		a, b := storetest.OpenPostgresPair(t)
		appendAll(t, a, []*ledger.Ledger{newLedger(t, a), newLedger(t, b)}, finish(t, a, "acme", 0, n))
	})
}

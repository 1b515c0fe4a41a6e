package export_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/runproof/runproof/internal/artifact"
	"github.com/runproof/runproof/internal/demo"
	"github.com/runproof/runproof/internal/export"
	"github.com/runproof/runproof/internal/ledger"
	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/signing"
	"github.com/runproof/runproof/internal/store/storetest"
)

// flakyLedger fails its first appends of finished exports, as a ledger
// whose database hiccups would.
type flakyLedger struct {
	*ledger.Ledger
	failures int
}

func (f *flakyLedger) Append(ctx context.Context, rec runproof.Export) (int64, error) {
	if f.failures > 0 {
		f.failures--
		return 0, errors.New("connection reset")
	}
	return f.Ledger.Append(ctx, rec)
}

// TestLedgerCatchesUp: an export whose ledger append fails still stands,
// and the tenant's log gets it before the next export, in order.
func TestLedgerCatchesUp(t *testing.T) {
	storetest.Each(t, func(t *testing.T, store runproof.Store) {
		ctx := context.Background()
		inc := seeded(t, store)
		keys, err := signing.Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		l, err := ledger.New(store, keys.Active().Private, keys.Active().ID, ledger.Options{})
		if err != nil {
			t.Fatal(err)
		}
		dir, err := artifact.NewDir(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		flaky := &flakyLedger{Ledger: l, failures: 1}
		e := export.New(store, dir, export.Options{Ledger: flaky, NewID: ids(2), Now: func() time.Time { return fixed }})
		first, err := e.Export(ctx, demo.Tenant, auditor, export.Input{IncidentID: inc.ID, Format: runproof.FormatJSON})
		if err != nil || first.Status != runproof.ExportCompleted {
			t.Fatalf("export with a failing ledger append: %+v, %v", first, err)
		}
		if _, err := l.Prove(ctx, demo.Tenant, first.ID); runproof.ErrorCode(err) != runproof.ENOTFOUND {
			t.Fatalf("the first export is in the ledger already: %v", err)
		}
		second, err := e.Export(ctx, demo.Tenant, auditor, export.Input{IncidentID: inc.ID, Format: runproof.FormatCSV})
		if err != nil {
			t.Fatal(err)
		}
		p1, err := l.Prove(ctx, demo.Tenant, first.ID)
		if err != nil {
			t.Fatalf("the first export was not caught up: %v", err)
		}
		p2, err := l.Prove(ctx, demo.Tenant, second.ID)
		if err != nil || p1.Index >= p2.Index {
			t.Fatalf("indexes %d, %d (%v)", p1.Index, p2.Index, err)
		}
		if _, err := l.Verify(ctx, demo.Tenant, nil); err != nil {
			t.Fatalf("ledger verify after catching up: %v", err)
		}
	})
}

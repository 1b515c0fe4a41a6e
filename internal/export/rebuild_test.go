package export_test

import (
	"bytes"
	"context"
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

// TestZIPRebuildsByteForByte: the same export made again from the same
// records, with the same key, at the same time, gives the same ZIP, on
// SQLite as on PostgreSQL: two real exports differ only by their times
// (created_at, hence the entries' times) and ids.
func TestZIPRebuildsByteForByte(t *testing.T) {
	keys, err := signing.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	key := keys.Active()
	var zips [][]byte
	storetest.Each(t, func(t *testing.T, store runproof.Store) {
		ctx := context.Background()
		inc := seeded(t, store)
		l, err := ledger.New(store, key.Private, key.ID, ledger.Options{})
		if err != nil {
			t.Fatal(err)
		}
		dir, err := artifact.NewDir(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		e := export.New(store, dir, export.Options{Keys: keys, Ledger: l, NewID: ids(2), Now: func() time.Time { return fixed }})
		rec, err := e.Export(ctx, demo.Tenant, auditor, export.Input{IncidentID: inc.ID, BundleType: runproof.BundleSOC2, Format: runproof.FormatZIP})
		if err != nil {
			t.Fatal(err)
		}
		zips = append(zips, download(t, e, rec))
	})
	if len(zips) == 2 && !bytes.Equal(zips[0], zips[1]) {
		t.Errorf("the same ZIP export differs between SQLite and PostgreSQL (%d and %d bytes)", len(zips[0]), len(zips[1]))
	}
}

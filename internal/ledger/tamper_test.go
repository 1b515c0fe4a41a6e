package ledger_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/runproof/runproof/internal/ledger"
	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/store/storetest"
)

// signed is a ledger of 8 exports appended one by one (checkpoints of
// sizes 1 to 8), with what an auditor took away before anyone tampered: a
// proof of entry 5 and the checkpoint of size 8.
type signed struct {
	ledger *ledger.Ledger
	recs   []runproof.Export
	proof  ledger.Proof
	c8     []byte
}

func newSigned(t *testing.T, e engine) signed {
	t.Helper()
	ctx := context.Background()
	l := newLedger(t, e.Store)
	recs := finish(t, e.Store, "acme", 0, 8)
	appendEach(t, l, recs)
	p, err := l.Prove(ctx, "acme", recs[5].ID)
	if err != nil {
		t.Fatal(err)
	}
	c, err := l.Checkpoint(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := verifyAs(ctx, e.Store, l, "acme", nil); err != nil {
		t.Fatalf("before tampering: %v", err)
	}
	return signed{ledger: l, recs: recs, proof: p, c8: c.Note}
}

// TestTamper changes the records behind the triggers' back, row by row;
// verification names the first entry at fault each time, and what the
// auditor took away still holds.
func TestTamper(t *testing.T) {
	leafWith := func(rec runproof.Export) []byte {
		e, err := ledger.ExportEntryFor(rec)
		if err != nil {
			t.Fatal(err)
		}
		e.Checksum = runproof.DigestBytes([]byte("forged"))
		b, err := e.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	forged := runproof.DigestBytes([]byte("forged"))
	drills := []struct {
		name   string
		index  int64
		older  bool // check against the auditor's checkpoint of size 8
		tamper func(t *testing.T, e engine, recs []runproof.Export)
	}{
		{"edit an old record's checksum", 2, false, func(t *testing.T, e engine, recs []runproof.Export) {
			e.exec(t, fmt.Sprintf("UPDATE export_events SET checksum = '%s' WHERE export_id = '%s'", forged, recs[2].ID))
		}},
		{"edit an old record and its entry alike", 2, false, func(t *testing.T, e engine, recs []runproof.Export) {
			e.exec(t, fmt.Sprintf("UPDATE export_events SET checksum = '%s' WHERE export_id = '%s'", forged, recs[2].ID),
				fmt.Sprintf("UPDATE ledger_entries SET data = %s WHERE idx = 2", e.blob(leafWith(recs[2]))))
		}},
		{"edit a stored hash", 4, false, func(t *testing.T, e engine, recs []runproof.Export) {
			e.exec(t, fmt.Sprintf("UPDATE ledger_hashes SET hash = %s WHERE idx = %d",
				e.blob(make([]byte, 32)), tlog.StoredHashIndex(0, 4)))
		}},
		{"delete an entry", 3, false, func(t *testing.T, e engine, recs []runproof.Export) {
			e.exec(t, "DELETE FROM ledger_entries WHERE idx = 3")
		}},
		{"delete an export's outcome", 4, false, func(t *testing.T, e engine, recs []runproof.Export) {
			e.exec(t, fmt.Sprintf("DELETE FROM export_events WHERE export_id = '%s'", recs[4].ID))
		}},
		{"reorder two entries", 1, false, func(t *testing.T, e engine, recs []runproof.Export) {
			e.exec(t, "UPDATE ledger_entries SET idx = 100 WHERE idx = 1",
				"UPDATE ledger_entries SET idx = 1 WHERE idx = 5",
				"UPDATE ledger_entries SET idx = 5 WHERE idx = 100")
		}},
		{"truncate the tail", 6, false, func(t *testing.T, e engine, recs []runproof.Export) {
			e.exec(t, "DELETE FROM ledger_entries WHERE idx >= 6")
		}},
		{"truncate the tail, its hashes and checkpoints", 6, true, func(t *testing.T, e engine, recs []runproof.Export) {
			e.exec(t, "DELETE FROM ledger_entries WHERE idx >= 6",
				fmt.Sprintf("DELETE FROM ledger_hashes WHERE idx >= %d", tlog.StoredHashCount(6)),
				"DELETE FROM ledger_checkpoints WHERE tree_size > 6")
		}},
	}
	for _, d := range drills {
		t.Run(d.name, func(t *testing.T) {
			eachEngine(t, func(t *testing.T, e engine) {
				ctx := context.Background()
				sg := newSigned(t, e)
				e.dropTriggers(t)
				d.tamper(t, e, sg.recs)

				var older []byte
				if d.older {
					older = sg.c8
				}
				inPages(func(pageSize int64) {
					_, err := verifyPaged(ctx, e.Store, sg.ledger, "acme", older, pageSize)
					wantMismatch(t, err, d.index)
				})
				if err := checkProof(sg.proof, sg.ledger.VerifierKey()); err != nil {
					t.Errorf("the proof taken before: %v", err)
				}
			})
		})
	}
}

// TestForgedTail plays a tamperer who also rewrites the tree from the
// changed entry on and signs it with a key of their own: the stored log is
// consistent again, yet verification with the published key names the
// entry, the proof taken before still holds against its own checkpoint,
// and the new head is not consistent with the old checkpoint.
func TestForgedTail(t *testing.T) {
	drills := []struct {
		name  string
		from  int   // first entry rewritten
		order []int // exports appended again from there, by number
		edit  bool  // change the checksum of export 2 first
	}{
		{"edit an old record's checksum", 2, []int{2, 3, 4, 5, 6, 7}, true},
		{"delete a record", 3, []int{4, 5, 6, 7}, false},
		{"reorder two", 1, []int{5, 2, 3, 4, 1, 6, 7}, false},
	}
	for _, d := range drills {
		t.Run(d.name, func(t *testing.T) {
			eachEngine(t, func(t *testing.T, e engine) {
				ctx := context.Background()
				sg := newSigned(t, e)
				e.dropTriggers(t)
				if d.edit {
					e.exec(t, fmt.Sprintf("UPDATE export_events SET checksum = '%s' WHERE export_id = '%s'",
						runproof.DigestBytes([]byte("forged")), sg.recs[2].ID))
				}
				e.exec(t, fmt.Sprintf("DELETE FROM ledger_entries WHERE idx >= %d", d.from),
					fmt.Sprintf("DELETE FROM ledger_hashes WHERE idx >= %d", tlog.StoredHashCount(int64(d.from))),
					fmt.Sprintf("DELETE FROM ledger_checkpoints WHERE tree_size > %d", d.from))
				forger, err := ledger.New(e.Store, otherKey, keyName, ledger.Options{Verifiers: []string{sg.ledger.VerifierKey()}})
				if err != nil {
					t.Fatal(err)
				}
				var again []runproof.Export
				for _, i := range d.order {
					rec, err := e.Store.GetExport(ctx, "acme", sg.recs[i].ID)
					if err != nil {
						t.Fatal(err)
					}
					again = append(again, rec)
				}
				appendEach(t, forger, again)
				appendEach(t, forger, finish(t, e.Store, "acme", 8, 2)) // the forged head grows on

				// With the published key, the first forged checkpoint names the entry.
				inPages(func(pageSize int64) {
					_, err := verifyPaged(ctx, e.Store, sg.ledger, "acme", nil, pageSize)
					wantMismatch(t, err, int64(d.from))
				})
				// With the keys recorded in the database, the forgery holds
				// together; the auditor's checkpoint does not.
				if _, err := ledger.Verify(ctx, e.Store, ledger.VerifyParams{TenantID: "acme"}); err != nil {
					t.Errorf("forged log against its own keys: %v", err)
				}
				_, err = ledger.Verify(ctx, e.Store, ledger.VerifyParams{TenantID: "acme", Checkpoint: sg.c8})
				var m *ledger.Mismatch
				if !errors.As(err, &m) {
					t.Errorf("forged log against the auditor's checkpoint: %v, want a mismatch", err)
				}

				if err := checkProof(sg.proof, sg.ledger.VerifierKey()); err != nil {
					t.Errorf("the proof taken before: %v", err)
				}
				c, err := forger.ProveConsistency(ctx, "acme", 8, 0)
				if err != nil {
					t.Fatal(err)
				}
				_, newTree, err := ledger.OpenCheckpoint([]byte(c.NewCheckpoint), forger.VerifierKey())
				if err != nil {
					t.Fatal(err)
				}
				_, oldTree, err := ledger.OpenCheckpoint(sg.c8, sg.ledger.VerifierKey())
				if err != nil {
					t.Fatal(err)
				}
				if err := tlog.CheckTree(c.TreeProof, newTree.N, newTree.Hash, oldTree.N, oldTree.Hash); err == nil {
					t.Error("the forged head is consistent with the checkpoint taken before")
				}
				// The ledger does not sign over the forgery.
				_, err = sg.ledger.Append(ctx, finish(t, e.Store, "acme", 10, 1)[0])
				if !errors.Is(err, ledger.ErrDiverged) {
					t.Errorf("append over the forged head: %v, want ErrDiverged", err)
				}
				if !strings.Contains(fmt.Sprint(err), "run `runproof ledger verify`") {
					t.Errorf("the append error does not say what to do: %v", err)
				}
			})
		})
	}
}

// TestRepeatedEntry lifts the store's uniqueness and appends, with the
// ledger's own key, an export that is already in the log again in place
// of the entries from 3 on (as a tamperer holding the key could, or a
// faulty append): the tree holds together and each entry matches its
// record, yet verification names the repeat.
func TestRepeatedEntry(t *testing.T) {
	eachEngine(t, func(t *testing.T, e engine) {
		ctx := context.Background()
		sg := newSigned(t, e)
		e.dropTriggers(t)
		if e.name == "sqlite" { // a table's UNIQUE goes only with the table
			e.exec(t, "CREATE TABLE ledger_entries_loose AS SELECT * FROM ledger_entries",
				"DROP TABLE ledger_entries", "ALTER TABLE ledger_entries_loose RENAME TO ledger_entries")
		} else {
			e.exec(t, "ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_tenant_id_export_id_entry_type_key")
		}
		e.exec(t, "DELETE FROM ledger_entries WHERE idx >= 3",
			fmt.Sprintf("DELETE FROM ledger_hashes WHERE idx >= %d", tlog.StoredHashCount(3)),
			"DELETE FROM ledger_checkpoints WHERE tree_size > 3")
		rec, err := e.Store.GetExport(ctx, "acme", sg.recs[1].ID)
		if err != nil {
			t.Fatal(err)
		}
		appendEach(t, sg.ledger, []runproof.Export{rec})
		if n, err := e.Store.FirstRepeatedLedgerEntry(ctx, "acme"); err != nil || n != 3 {
			t.Fatalf("first repeated entry %d, %v; want 3", n, err)
		}
		inPages(func(pageSize int64) {
			_, err := verifyPaged(ctx, e.Store, sg.ledger, "acme", nil, pageSize)
			wantMismatch(t, err, 3)
			if !strings.Contains(err.Error(), "in the ledger twice") {
				t.Errorf("the mismatch does not say the entry is repeated: %v", err)
			}
		})
	})
}

// TestTamperCheckpoint changes kept checkpoints behind the triggers' back.
// Every checkpoint must state the tree recomputed at its size, and the
// latest must be signed; an older checkpoint whose signature alone was
// broken is found only when every signature is checked.
func TestTamperCheckpoint(t *testing.T) {
	forged := tlog.Hash{1, 2, 3}
	// restate returns a checkpoint's note stating another tree hash, its
	// signature left as it was.
	restate := func(note []byte) []byte {
		lines := strings.SplitN(string(note), "\n", 4)
		lines[2] = forged.String()
		return []byte(strings.Join(lines, "\n"))
	}
	// unsign returns a checkpoint's note with one character of its
	// signature changed.
	unsign := func(note []byte) []byte {
		b := bytes.Clone(note)
		i := len(b) - 10
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return b
	}
	drills := []struct {
		name   string
		index  int64 // -1: only found with AllSignatures
		all    int64 // the index with AllSignatures
		tamper func(t *testing.T, e engine, c3, c8 runproof.LedgerCheckpoint)
	}{
		{"break an old checkpoint's signature", -1, 2, func(t *testing.T, e engine, c3, c8 runproof.LedgerCheckpoint) {
			e.exec(t, fmt.Sprintf("UPDATE ledger_checkpoints SET note = %s WHERE tree_size = 3", e.blob(unsign(c3.Note))))
		}},
		{"restate an old checkpoint's tree in its note", 2, 2, func(t *testing.T, e engine, c3, c8 runproof.LedgerCheckpoint) {
			e.exec(t, fmt.Sprintf("UPDATE ledger_checkpoints SET note = %s WHERE tree_size = 3", e.blob(restate(c3.Note))))
		}},
		{"restate an old checkpoint's tree in its note and row", 2, 2, func(t *testing.T, e engine, c3, c8 runproof.LedgerCheckpoint) {
			e.exec(t, fmt.Sprintf("UPDATE ledger_checkpoints SET note = %s, hash = %s WHERE tree_size = 3",
				e.blob(restate(c3.Note)), e.blob(forged[:])))
		}},
		{"break the latest checkpoint's signature", 7, 7, func(t *testing.T, e engine, c3, c8 runproof.LedgerCheckpoint) {
			e.exec(t, fmt.Sprintf("UPDATE ledger_checkpoints SET note = %s WHERE tree_size = 8", e.blob(unsign(c8.Note))))
		}},
		{"break an old checkpoint's signature and the latest's", 2, 2, func(t *testing.T, e engine, c3, c8 runproof.LedgerCheckpoint) {
			e.exec(t, fmt.Sprintf("UPDATE ledger_checkpoints SET note = %s WHERE tree_size = 3", e.blob(unsign(c3.Note))),
				fmt.Sprintf("UPDATE ledger_checkpoints SET note = %s WHERE tree_size = 8", e.blob(unsign(c8.Note))))
		}},
	}
	for _, d := range drills {
		t.Run(d.name, func(t *testing.T) {
			eachEngine(t, func(t *testing.T, e engine) {
				ctx := context.Background()
				sg := newSigned(t, e)
				c3, err := e.Store.LedgerCheckpoint(ctx, "acme", 3)
				if err != nil {
					t.Fatal(err)
				}
				c8, err := e.Store.LedgerCheckpoint(ctx, "acme", 8)
				if err != nil {
					t.Fatal(err)
				}
				e.dropTriggers(t)
				d.tamper(t, e, c3, c8)

				inPages(func(pageSize int64) {
					p := ledger.VerifyParams{TenantID: "acme", VerifierKeys: []string{sg.ledger.VerifierKey()}, PageSize: pageSize}
					rep, err := ledger.Verify(ctx, e.Store, p)
					if d.index < 0 {
						if err != nil || rep.Checkpoints != 8 || rep.Signatures != 1 {
							t.Errorf("only the latest signature checked: %+v, %v; want 8 checkpoints that hold, 1 signature", rep, err)
						}
					} else {
						wantMismatch(t, err, d.index)
					}
					p.AllSignatures = true
					_, err = ledger.Verify(ctx, e.Store, p)
					wantMismatch(t, err, d.all)
				})
			})
		})
	}
}

// TestTamperDuplicateRequest: an export's request stored twice (its
// primary key dropped, on PostgreSQL, where that is one statement) is
// named at the entry of the export, not as an entry missing after it.
func TestTamperDuplicateRequest(t *testing.T) {
	e := engine{"postgres", storetest.PostgresHarness(t)}
	ctx := context.Background()
	sg := newSigned(t, e)
	e.dropTriggers(t)
	e.exec(t, "ALTER TABLE exports DROP CONSTRAINT exports_pkey CASCADE",
		fmt.Sprintf("INSERT INTO exports SELECT * FROM exports WHERE id = '%s'", sg.recs[3].ID))
	inPages(func(pageSize int64) {
		_, err := verifyPaged(ctx, e.Store, sg.ledger, "acme", nil, pageSize)
		wantMismatch(t, err, 3)
		if err == nil || !strings.Contains(err.Error(), "stored more than once") {
			t.Errorf("got %v, want the export stored twice", err)
		}
	})
}

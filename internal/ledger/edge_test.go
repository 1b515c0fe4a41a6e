package ledger

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"math/bits"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/runproof/runproof/internal/runproof"
)

// TestEdge builds trees leaf by leaf as Verify does, pruning after every
// few leaves: the tree hash at each size and a consistency proof with a
// kept older size come out as from every stored hash, while only the
// hashes of the tree's complete subtrees (one per bit of its size) and
// those kept stay.
func TestEdge(t *testing.T) {
	const n = 300
	var all []tlog.Hash // every stored hash, as the store keeps them
	full := tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(indexes))
		for i, idx := range indexes {
			out[i] = all[idx]
		}
		return out, nil
	})
	for _, every := range []int64{1, 3, 64} {
		for _, old := range []int64{0, 1, 7, 100} {
			t.Run(fmt.Sprintf("prune every %d, proof from %d", every, old), func(t *testing.T) {
				all = all[:0]
				e := edge{hashes: map[int64]tlog.Hash{}}
				if old > 0 {
					v := &verification{latest: runproof.LedgerCheckpoint{Size: n}, p: VerifyParams{Checkpoint: signedSize(t, old)}}
					if e.keep = v.olderProofHashes(); len(e.keep) == 0 {
						t.Fatal("no hashes kept for the consistency proof")
					}
				}
				for i := range int64(n) {
					leaf := []byte(fmt.Sprintf("leaf %d", i))
					want, err := tlog.StoredHashes(i, leaf, full)
					if err != nil {
						t.Fatal(err)
					}
					all = append(all, want...)
					got, err := tlog.StoredHashes(i, leaf, &e)
					if err != nil {
						t.Fatalf("leaf %d: %v", i, err)
					}
					base := tlog.StoredHashIndex(0, i)
					for k, h := range got {
						e.hashes[base+int64(k)] = h
					}
					if (i+1)%every != 0 {
						continue
					}
					e.prune(i + 1)
					if max := bits.OnesCount64(uint64(i+1)) + len(e.keep); len(e.hashes) > max {
						t.Fatalf("size %d: %d hashes kept, want at most %d", i+1, len(e.hashes), max)
					}
					th, err := tlog.TreeHash(i+1, &e)
					if err != nil {
						t.Fatalf("tree hash at %d: %v", i+1, err)
					}
					if wantTH, _ := tlog.TreeHash(i+1, full); th != wantTH {
						t.Fatalf("tree hash at %d differs", i+1)
					}
				}
				if old > 0 {
					p, err := tlog.ProveTree(n, old, &e)
					if err != nil {
						t.Fatal(err)
					}
					newTH, _ := tlog.TreeHash(n, full)
					oldTH, _ := tlog.TreeHash(old, full)
					if err := tlog.CheckTree(p, n, newTH, old, oldTH); err != nil {
						t.Fatal(err)
					}
				}
			})
		}
	}
}

// signedSize returns a checkpoint note of a tree of size n (its hash
// made up), signed by a new key.
func signedSize(t *testing.T, n int64) []byte {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, _, err := newSigner(key, "test")
	if err != nil {
		t.Fatal(err)
	}
	msg, err := note.Sign(&note.Note{Text: string(checkpointText("test/acme", tlog.Tree{N: n}))}, signer)
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

package ledger

import (
	"fmt"

	"golang.org/x/mod/sumdb/tlog"
)

// edge is a tree's recomputed stored hashes that are still needed, as a
// tlog.HashReader: those of the complete subtrees the tree so far is made
// of, which the next entries' hashes and the tree hash are computed from
// (O(log n)), and those kept for a consistency proof.
type edge struct {
	hashes map[int64]tlog.Hash // by stored hash index
	keep   map[int64]bool
}

func (t *edge) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, idx := range indexes {
		h, ok := t.hashes[idx]
		if !ok {
			return nil, fmt.Errorf("hash %d not computed or no longer kept", idx)
		}
		out[i] = h
	}
	return out, nil
}

// prune drops the hashes a tree of size entries no longer needs.
func (t *edge) prune(size int64) {
	need := map[int64]bool{}
	for level := 0; size>>level > 0; level++ {
		if n := size >> level; n&1 == 1 {
			need[tlog.StoredHashIndex(level, n-1)] = true
		}
	}
	for i := range t.hashes {
		if !need[i] && !t.keep[i] {
			delete(t.hashes, i)
		}
	}
}

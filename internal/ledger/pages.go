package ledger

import (
	"context"
	"slices"
	"sync"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/runproof/runproof/internal/runproof"
)

// Verify reads the log a page at a time, ahead of its checks (verify.go).

// A page is what pageReader hands over: the entries of [from, to) as
// stored with their export records, their audit events and stored
// hashes, and the checkpoints of size in (from, to], opened.
type page struct {
	from        int64
	entries     []runproof.LedgerRecord
	audit       map[string]runproof.AuditEvent // by id
	storedFrom  int64                          // the stored hash index of stored[0]
	stored      []tlog.Hash                    // the stored hashes of the entries
	storedErr   error                          // ENOTFOUND when one is missing
	checkpoints []openedCheckpoint
	err         error // a failure to read: the last page
}

// An openedCheckpoint is a checkpoint row with what its note says.
type openedCheckpoint struct {
	runproof.LedgerCheckpoint
	signed bool           // its signature is checked
	keys   note.Verifiers // with these
	origin string
	tree   tlog.Tree
	err    error // the note does not open (or its signature does not hold)
}

// pageReader reads a log's pages, up to size entries.
type pageReader struct {
	store runproof.LedgerStore
	p     VerifyParams
	size  int64
	given note.Verifiers            // of VerifierKeys
	own   map[string]note.Verifiers // the recorded keys, parsed once

	ahead  []runproof.LedgerCheckpoint // checkpoints read ahead, smallest first
	noMore bool                        // no checkpoint is left to read
}

// run reads pages ahead, each on a goroutine of its own, as many at a
// time as out holds and one more, and hands them over in order: out
// receives one channel per page, which receives the page. It closes out
// after the last page, or after a failure to read, or when ctx is done,
// and returns once every read has.
func (r *pageReader) run(ctx context.Context, out chan<- chan page) {
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(out)
	for from := int64(0); from < r.size; from += r.p.PageSize {
		to := min(from+r.p.PageSize, r.size)
		next := make(chan page, 1)
		select {
		case out <- next: // waits while the reads ahead fill the processors
		case <-ctx.Done():
			return
		}
		// Checkpoints are read in order here, the rest of the page aside.
		cps, err := r.checkpoints(ctx, from, to)
		if err != nil {
			next <- page{err: err}
			return
		}
		opened := r.prepare(cps)
		wg.Go(func() { next <- r.read(ctx, from, to, opened) })
	}
}

// read reads the entries of [from, to), their export records and stored
// hashes, and opens the page's checkpoints.
func (r *pageReader) read(ctx context.Context, from, to int64, cps []openedCheckpoint) page {
	pg := page{from: from, checkpoints: cps}
	entries, err := r.store.LedgerRecords(ctx, r.p.TenantID, from, to)
	if err != nil {
		return page{err: err}
	}
	pg.entries = entries
	if slices.ContainsFunc(entries, func(e runproof.LedgerRecord) bool { return e.Type == AuditEntryType }) {
		events, err := r.store.LedgerAuditEvents(ctx, r.p.TenantID, from, to)
		if err != nil {
			return page{err: err}
		}
		pg.audit = make(map[string]runproof.AuditEvent, len(events))
		for _, ev := range events {
			pg.audit[ev.ID] = ev
		}
	}
	pg.storedFrom = tlog.StoredHashCount(from)
	indexes := make([]int64, tlog.StoredHashCount(from+int64(len(entries)))-pg.storedFrom)
	for i := range indexes {
		indexes[i] = pg.storedFrom + int64(i)
	}
	hs, err := r.store.LedgerHashes(ctx, r.p.TenantID, indexes)
	pg.storedErr = err
	pg.stored = make([]tlog.Hash, len(hs))
	for i, h := range hs {
		pg.stored[i] = h
	}
	for i := range pg.checkpoints {
		pg.checkpoints[i].open()
	}
	return pg
}

// checkpoints returns the checkpoints of size in (from, to], reading
// ahead a batch at a time.
func (r *pageReader) checkpoints(ctx context.Context, from, to int64) ([]runproof.LedgerCheckpoint, error) {
	for !r.noMore && (len(r.ahead) == 0 || r.ahead[len(r.ahead)-1].Size <= to) {
		after := from
		if len(r.ahead) > 0 {
			after = r.ahead[len(r.ahead)-1].Size
		}
		cps, err := r.store.LedgerCheckpoints(ctx, r.p.TenantID, after, int(r.p.PageSize))
		if err != nil {
			return nil, err
		}
		r.ahead, r.noMore = append(r.ahead, cps...), len(cps) < int(r.p.PageSize)
	}
	n := 0
	for n < len(r.ahead) && r.ahead[n].Size <= to {
		n++
	}
	out := r.ahead[:n:n]
	r.ahead = r.ahead[n:]
	return out, nil
}

// prepare pairs each checkpoint with the verifiers of its signature when
// every one's is to be checked or when it is the latest.
func (r *pageReader) prepare(cps []runproof.LedgerCheckpoint) []openedCheckpoint {
	out := make([]openedCheckpoint, len(cps))
	for i, c := range cps {
		out[i].LedgerCheckpoint = c
		if r.p.AllSignatures || c.Size == r.size {
			out[i].signed = true
			out[i].keys, out[i].err = r.verifiers(c)
		}
	}
	return out
}

// open reads the checkpoint's note, checking its signature if asked.
func (c *openedCheckpoint) open() {
	switch {
	case c.err != nil:
	case c.signed:
		c.origin, c.tree, c.err = openCheckpoint(c.Note, c.keys)
	default:
		c.origin, c.tree, c.err = readCheckpoint(c.Note)
	}
}

// verifiers returns the verifiers a checkpoint's signature is checked
// with: the given keys, or else the one recorded with it.
func (r *pageReader) verifiers(c runproof.LedgerCheckpoint) (note.Verifiers, error) {
	if len(r.p.VerifierKeys) > 0 {
		return r.given, nil
	}
	if vs, ok := r.own[c.VerifierKey]; ok {
		return vs, nil
	}
	vs, err := newVerifiers([]string{c.VerifierKey})
	if err != nil {
		return nil, err
	}
	r.own[c.VerifierKey] = vs
	return vs, nil
}

package ledger_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/runproof/runproof/internal/ledger"
	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/store/storetest"
)

// leafOf returns the leaf bytes of a made-up completed export number i,
// the size of a real one (about 500 bytes).
func leafOf(tb testing.TB, i int) []byte {
	at := t0.Add(time.Duration(i) * time.Second)
	done := at.Add(time.Second)
	e, err := ledger.ExportEntryFor(runproof.Export{ExportRequest: runproof.ExportRequest{
		ID: fmt.Sprintf("0199c0de-0000-7000-8000-%012d", i), TenantID: "acme", Scope: runproof.ScopeLLMRun,
		RunID: fmt.Sprintf("run-%d", i), IncidentID: fmt.Sprintf("inc-%d", i), BundleType: runproof.BundleEvidence,
		Format: runproof.FormatZIP, RequestedBy: "0199c0de-aaaa-7000-8000-000000000001", Origin: runproof.OriginHuman,
		SourceComponent: "api", CorrelationID: fmt.Sprintf("%032x", i), CreatedAt: at},
		Status: runproof.ExportCompleted, CompletedAt: &done, Checksum: runproof.DigestBytes([]byte{byte(i)}),
		BundleID: fmt.Sprintf("EVD-%08d", i), SizeBytes: 123456})
	if err != nil {
		tb.Fatal(err)
	}
	b, err := e.Bytes()
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// memTree is a tree's stored hashes in memory, built as the ledger builds
// them in the store; reads counts the hashes read.
type memTree struct {
	hashes []tlog.Hash
	reads  int
}

func (m *memTree) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	m.reads += len(indexes)
	out := make([]tlog.Hash, len(indexes))
	for i, idx := range indexes {
		out[i] = m.hashes[idx]
	}
	return out, nil
}

func buildTree(tb testing.TB, n int, leaf []byte) *memTree {
	m := &memTree{hashes: make([]tlog.Hash, 0, 2*n)}
	for i := range n {
		hs, err := tlog.StoredHashes(int64(i), leaf, m)
		if err != nil {
			tb.Fatal(err)
		}
		m.hashes = append(m.hashes, hs...)
	}
	return m
}

// BenchmarkAppend measures appends per second, one export per append (a
// transaction, stored hashes and a signed checkpoint each).
func BenchmarkAppend(b *testing.B) {
	for _, eng := range []struct {
		name string
		open func(testing.TB) runproof.Store
	}{{"sqlite", storetest.OpenSQLite}, {"postgres", storetest.OpenPostgres}} {
		b.Run(eng.name, func(b *testing.B) {
			s := eng.open(b)
			l := newLedger(b, s)
			recs := finish(b, s, "acme", 0, b.N)
			ctx := context.Background()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := l.Append(ctx, recs[i]); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
		})
	}
}

// BenchmarkProve measures an inclusion proof at 10^3, 10^5 and 10^6
// entries, over stored hashes in memory: the hashes read per proof grow
// with log n.
func BenchmarkProve(b *testing.B) {
	leaf := leafOf(b, 1)
	for _, n := range []int{1e3, 1e5, 1e6} {
		m := buildTree(b, n, leaf)
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			m.reads = 0
			for i := 0; i < b.N; i++ {
				if _, err := tlog.ProveRecord(int64(n), int64(i*7919%n), m); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(m.reads)/float64(b.N), "hashes/op")
		})
	}
}

// BenchmarkProveStore measures Ledger.Prove over SQLite: one entry read,
// one checkpoint read, one read of O(log n) hashes.
func BenchmarkProveStore(b *testing.B) {
	for _, n := range []int{1e3, 1e5} {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			s := storetest.OpenSQLite(b)
			l := newLedger(b, s)
			ctx := context.Background()
			recs := make([]runproof.Export, 0, 1000)
			for i := 0; i < n; i += 1000 { // batches: one checkpoint per thousand
				recs = recs[:0]
				for j := i; j < min(i+1000, n); j++ {
					done := t0
					recs = append(recs, runproof.Export{ExportRequest: runproof.ExportRequest{ID: fmt.Sprintf("x%07d", j),
						TenantID: "acme", CreatedAt: t0}, Status: runproof.ExportCompleted, CompletedAt: &done})
				}
				if _, err := l.AppendBatch(ctx, "acme", recs); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := l.Prove(ctx, "acme", fmt.Sprintf("x%07d", i*7919%n)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkVerify compares checking against hashing the same leaf bytes
// with SHA-256, timed in the same run; "x-sha256" is the ratio.
//
//   - tree: recomputing a whole tree of 2^16 leaves (every stored hash and
//     the tree hash), per leaf: what `ledger verify` does after reading.
//   - proof n=…: checking one inclusion proof (leaf hash and the proof's
//     path) against a tree of n entries, per proof.
//   - proof+signature: the same with the checkpoint's note signature.
func BenchmarkVerify(b *testing.B) {
	const leaves = 1 << 16
	data := make([][]byte, leaves)
	for i := range data {
		data[i] = leafOf(b, i)
	}
	ratio := func(b *testing.B, perOp time.Duration, shaPerOp func()) {
		start := time.Now()
		for i := 0; i < b.N; i++ {
			shaPerOp()
		}
		base := time.Since(start)
		b.ReportMetric(float64(perOp)/float64(base), "x-sha256")
	}

	b.Run("tree", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			m := &memTree{hashes: make([]tlog.Hash, 0, 2*leaves)}
			for k, d := range data {
				hs, err := tlog.StoredHashes(int64(k), d, m)
				if err != nil {
					b.Fatal(err)
				}
				m.hashes = append(m.hashes, hs...)
			}
			if _, err := tlog.TreeHash(leaves, m); err != nil {
				b.Fatal(err)
			}
		}
		elapsed := b.Elapsed()
		b.StopTimer()
		ratio(b, elapsed, func() {
			for _, d := range data {
				sha256.Sum256(d)
			}
		})
		b.ReportMetric(float64(elapsed.Nanoseconds())/float64(b.N)/leaves, "ns/leaf")
	})

	signed, v := signTree(b)
	for _, n := range []int{1e3, 1e6} {
		leaf := data[0]
		m := buildTree(b, n, leaf)
		th, err := tlog.TreeHash(int64(n), m)
		if err != nil {
			b.Fatal(err)
		}
		idx := int64(n / 3)
		p, err := tlog.ProveRecord(int64(n), idx, m)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("proof n=%d", n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if err := tlog.CheckRecord(p, int64(n), th, idx, tlog.RecordHash(leaf)); err != nil {
					b.Fatal(err)
				}
			}
			elapsed := b.Elapsed()
			b.StopTimer()
			ratio(b, elapsed, func() { sha256.Sum256(leaf) })
		})
		if n == 1e6 {
			b.Run(fmt.Sprintf("proof+signature n=%d", n), func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					if _, err := note.Open(signed, note.VerifierList(v)); err != nil {
						b.Fatal(err)
					}
					if err := tlog.CheckRecord(p, int64(n), th, idx, tlog.RecordHash(leaf)); err != nil {
						b.Fatal(err)
					}
				}
				elapsed := b.Elapsed()
				b.StopTimer()
				ratio(b, elapsed, func() { sha256.Sum256(leaf) })
			})
		}
	}
}

// signTree returns a checkpoint signed by the test key and its verifier.
func signTree(b *testing.B) ([]byte, note.Verifier) {
	s := storetest.OpenSQLite(b)
	l := newLedger(b, s)
	if _, err := l.Append(context.Background(), finish(b, s, "acme", 0, 1)[0]); err != nil {
		b.Fatal(err)
	}
	c, err := l.Checkpoint(context.Background(), "acme")
	if err != nil {
		b.Fatal(err)
	}
	v, err := note.NewVerifier(l.VerifierKey())
	if err != nil {
		b.Fatal(err)
	}
	return c.Note, v
}

// verifyEntries is the size of the ledgers BenchmarkVerifyLedger checks.
const verifyEntries = 10_000

// BenchmarkVerifyLedger times ledger.Verify as `runproof ledger verify`
// calls it, over a store of 10 000 finished exports, and in the same run
// SHA-256 over the same leaf bytes; "x-sha256" is the ratio. The ledger
// has a checkpoint after every entry, as the server appends exports one
// by one ("every=1"), or after every thousand, as Ledger.Sync appends
// them ("every=1000"). Verify checks the latest checkpoint's signature
// ("latest-signature", the default) or every one's ("all-signatures").
// "read-leaves-only" is the floor of any check against the store: reading
// the stored leaves back and hashing them, nothing else. Filling the PostgreSQL ledger one entry at a time takes most of a
// minute.
func BenchmarkVerifyLedger(b *testing.B) {
	for _, eng := range []struct {
		name string
		open func(testing.TB) runproof.Store
	}{{"sqlite", storetest.OpenSQLite}, {"postgres", openPostgresFast}} {
		for _, every := range []int{1, 1000} {
			b.Run(fmt.Sprintf("%s/every=%d", eng.name, every), func(b *testing.B) {
				ctx := context.Background()
				s := eng.open(b)
				l := newLedger(b, s)
				recs := storeFinished(b, s, "acme", verifyEntries)
				for i := 0; i < len(recs); i += every {
					if _, err := l.AppendBatch(ctx, "acme", recs[i:min(i+every, len(recs))]); err != nil {
						b.Fatal(err)
					}
				}
				entries, err := s.LedgerEntries(ctx, "acme", 0, verifyEntries)
				if err != nil || len(entries) != verifyEntries {
					b.Fatalf("%d entries, %v", len(entries), err)
				}
				// The floor of any check against this store: reading the
				// stored leaves back, a page at a time, and hashing them.
				b.Run("read-leaves-only", func(b *testing.B) {
					for b.Loop() {
						for from := int64(0); from < verifyEntries; from += 1000 {
							page, err := s.LedgerEntries(ctx, "acme", from, from+1000)
							if err != nil {
								b.Fatal(err)
							}
							for _, e := range page {
								sha256.Sum256(e.Data)
							}
						}
					}
					reportPerEntry(b, entries)
				})
				for _, all := range []bool{false, true} {
					name := "latest-signature"
					if all {
						name = "all-signatures"
					}
					b.Run(name, func(b *testing.B) {
						// Every export finished before now must be in the ledger.
						p := ledger.VerifyParams{TenantID: "acme", VerifierKeys: []string{l.VerifierKey()},
							FinishedBefore: time.Now(), AllSignatures: all}
						for b.Loop() {
							if _, err := ledger.Verify(ctx, s, p); err != nil {
								b.Fatal(err)
							}
						}
						reportPerEntry(b, entries)
					})
				}
			})
		}
	}
}

// reportPerEntry reports the time of one loop of b per entry, and its
// ratio to SHA-256 over the entries' leaf bytes, timed now.
func reportPerEntry(b *testing.B, entries []runproof.LedgerEntry) {
	perOp := b.Elapsed() / time.Duration(b.N)
	const rounds = 20
	start := time.Now()
	for range rounds {
		for _, e := range entries {
			sha256.Sum256(e.Data)
		}
	}
	sha := time.Since(start) / rounds
	n := float64(len(entries))
	b.ReportMetric(float64(perOp.Nanoseconds())/n, "ns/entry")
	b.ReportMetric(float64(sha.Nanoseconds())/n, "sha256-ns/entry")
	b.ReportMetric(float64(perOp)/float64(sha), "x-sha256")
}

// storeFinished stores n finished exports of tenant (see finished) from
// several goroutines and returns their records, oldest first.
func storeFinished(tb testing.TB, s runproof.Store, tenant string, n int) []runproof.Export {
	tb.Helper()
	ctx := context.Background()
	recs := make([]runproof.Export, n)
	const workers = 8
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n && errs[w] == nil; i += workers {
				req, ev := finished(tenant, i)
				errs[w] = s.CreateExport(ctx, req)
				if errs[w] == nil {
					errs[w] = s.AppendExportEvent(ctx, ev)
				}
				recs[i] = runproof.FoldExport(req, []runproof.ExportEvent{ev})
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		tb.Fatal(err)
	}
	return recs
}

// openPostgresFast opens a PostgreSQL store whose sessions do not wait for
// each commit to reach the disk, so that the ledgers fill in seconds.
func openPostgresFast(tb testing.TB) runproof.Store {
	if u := os.Getenv(storetest.PostgresURLEnv); u != "" {
		sep := "?"
		if strings.Contains(u, "?") {
			sep = "&"
		}
		tb.Setenv(storetest.PostgresURLEnv, u+sep+"synchronous_commit=off")
	}
	return storetest.OpenPostgres(tb)
}

package ledger_test

import (
	"context"
	"crypto/sha256"
	"fmt"
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
	e, err := ledger.EntryFor(runproof.Export{ExportRequest: runproof.ExportRequest{
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

// BenchmarkVerifyStore measures `ledger verify` over SQLite: per entry, an
// export record read and its leaf recomputed, the stored hashes read and
// compared, and a checkpoint's signature and tree hash checked.
func BenchmarkVerifyStore(b *testing.B) {
	const n = 1000
	s := storetest.OpenSQLite(b)
	l := newLedger(b, s)
	appendEach(b, l, finish(b, s, "acme", 0, n))
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := l.Verify(ctx, "acme", nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/entry")
}

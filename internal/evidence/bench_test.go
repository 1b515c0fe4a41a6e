package evidence_test

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"testing"
	"time"

	"github.com/runproof/runproof/internal/evidence"
	"github.com/runproof/runproof/internal/render/csvr"
	"github.com/runproof/runproof/internal/render/jsonr"
	"github.com/runproof/runproof/internal/runproof"
)

// bigRun is a run of n steps that breaks its cost limit at 90 % of the way.
func bigRun(b testing.TB, n int, content bool) evidence.Source {
	specs := make([]stepSpec, n)
	for i := range specs {
		specs[i] = stepSpec{typ: []string{"llm:gpt-4o", "tool:search", "tool:fetch"}[i%3], in: int64(100 + i%500), out: int64(i % 97),
			costMicro: int64(1_000_000 + i%7_919), durMicro: int64(10_000 + i%3_333), atMicroOff: int64(i % 1000)}
		if content {
			specs[i].content = fmt.Sprintf(`{"prompt":"step %d: look up the order","response":"found %d items"}`, i, i%13)
		}
	}
	threshold := fmt.Sprint(n * 9 / 10)
	return simulate(b, runSpec{n: 99, goal: "Reconcile the ledger", steps: specs, detect: 50 * time.Millisecond,
		policies: []runproof.Policy{pol("cost cap", runproof.PolicyCostLimit, threshold, runproof.ActionStop)}})
}

// BenchmarkBundle10k builds the evidence bundle of a 10 000-step run and
// renders it as JSON and CSV, against a reference: json.Marshal of the same
// steps and its SHA-256. "ratio" is bundle time / reference time (goal ≤ 3).
func BenchmarkBundle10k(b *testing.B) {
	for _, content := range []bool{false, true} {
		b.Run(fmt.Sprintf("content=%v", content), func(b *testing.B) {
			src := bigRun(b, 10_000, content)
			steps := stepsOf(b, src)
			opts := goldenOptions()
			opts.IncludeContent = content
			var bundleTime, refTime time.Duration
			var bundleBytes, bundleAllocs, refBytes uint64
			var m0, m1, m2 runtime.MemStats
			iterations := 0
			b.ReportAllocs()
			for b.Loop() {
				iterations++
				runtime.ReadMemStats(&m0)
				start := time.Now()
				bundle, err := evidence.BuildEvidence(src, opts)
				if err != nil {
					b.Fatal(err)
				}
				e := jsonr.NewEncoder(io.Discard)
				if err := e.Encode(&bundle); err != nil {
					b.Fatal(err)
				}
				if err := csvr.WriteBundle(io.Discard, &bundle); err != nil {
					b.Fatal(err)
				}
				bundleTime += time.Since(start)
				runtime.ReadMemStats(&m1)
				start = time.Now()
				ref, err := json.Marshal(steps)
				if err != nil {
					b.Fatal(err)
				}
				sha256.Sum256(ref)
				refTime += time.Since(start)
				runtime.ReadMemStats(&m2)
				bundleBytes += m1.TotalAlloc - m0.TotalAlloc
				bundleAllocs += m1.Mallocs - m0.Mallocs
				refBytes += m2.TotalAlloc - m1.TotalAlloc
			}
			n := float64(iterations)
			b.ReportMetric(float64(bundleTime.Nanoseconds())/n, "bundle-ns/op")
			b.ReportMetric(float64(refTime.Nanoseconds())/n, "reference-ns/op")
			b.ReportMetric(float64(bundleTime)/float64(refTime), "ratio")
			b.ReportMetric(float64(bundleBytes)/n, "bundle-B/op")
			b.ReportMetric(float64(bundleAllocs)/n, "bundle-allocs/op")
			b.ReportMetric(float64(refBytes)/n, "reference-B/op")
		})
	}
}

// Command zip measures the signed ZIP bundle of a run of many steps against
// stock tools, in the same run:
//
//   - export: runproof's whole ZIP export of the run (reading the run, building
//     and sealing the bundle, rendering bundle.json, steps.csv and report.pdf,
//     signing, compressing, storing and recording it) against `zip -q -6` and
//     `sha256sum` of the same member files on disk;
//   - memory: the heap an export takes over the heap before it, at its
//     peak (sampled every 5 ms during one untimed export), for the ZIP and
//     for the same bundle as JSON alone: the steps stream from the
//     database to a temporary file and from it to the output, so that the
//     JSON export's heap stays flat whatever the number of steps; the
//     ZIP's is more: its PDF report, which the PDF library holds whole,
//     and the steps kept decoded for it, up to 100 000 (some 40 MB);
//   - verify: runproof verify of that ZIP (every check, with the key), in
//     bytes per second, against `sha256sum` of the same bytes: of the member
//     files (the bytes verify inflates and checks, as `sha256sum -c
//     SHA256SUMS` does after `unzip`), and of the ZIP file itself, whose
//     compressed bytes stand for several times as many checked. The least
//     any full check does, inflating every member and hashing it, is timed
//     with stock tools too: `unzip -p | sha256sum`.
//
// The run is recorded through the service (calls of 1000 steps) under a cost
// policy that stops it, so that the bundle has an incident. Rounds alternate
// runproof and the reference; the median of each is kept.
//
//	go run ./bench/zip [-steps 10000] [-rounds 5] [-cpuprofile FILE] [-keep FILE.zip]
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"time"

	"github.com/runproof/runproof/bench/internal/benchenv"
	"github.com/runproof/runproof/internal/artifact"
	"github.com/runproof/runproof/internal/export"
	"github.com/runproof/runproof/internal/ledger"
	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/service"
	"github.com/runproof/runproof/internal/signing"
	"github.com/runproof/runproof/internal/store/sqlite"
	"github.com/runproof/runproof/internal/verify"
)

const tenant = "bench"

func main() {
	n := flag.Int("steps", 10_000, "steps of the run")
	rounds := flag.Int("rounds", 5, "alternating rounds of runproof and the reference; the median of each is kept")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the timed runproof work to this file")
	keep := flag.String("keep", "", "copy the ZIP measured to this file, to inspect it")
	flag.Parse()
	if err := run(context.Background(), *n, *rounds, *cpuprofile, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "bench/zip:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, n, rounds int, cpuprofile, keep string) error {
	for _, tool := range []string{"zip", "unzip", "sha256sum", "sh"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("the reference needs %s: %w", tool, err)
		}
	}
	dir, err := os.MkdirTemp("", "runproof-bench-zip-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	store, err := sqlite.Open(ctx, filepath.Join(dir, "runproof.db"))
	if err != nil {
		return err
	}
	defer store.Close()
	if err := store.Migrate(ctx); err != nil {
		return err
	}
	runID, err := seed(ctx, store, n)
	if err != nil {
		return err
	}
	keys, err := signing.Open(filepath.Join(dir, "keys"))
	if err != nil {
		return err
	}
	key := keys.Active()
	led, err := ledger.New(store, key.Private, key.ID, ledger.Options{})
	if err != nil {
		return err
	}
	// As serve does: the export then checks every step against the ledger.
	if _, err := led.SyncSteps(ctx, tenant); err != nil {
		return err
	}
	arts, err := artifact.NewDir(filepath.Join(dir, "artifacts"))
	if err != nil {
		return err
	}
	exporter := export.New(store, arts, export.Options{Keys: keys, Ledger: led})
	who := export.Requester{ID: "bench", Origin: runproof.OriginSystem, SourceComponent: "bench"}
	in := export.Input{RunID: runID, Format: runproof.FormatZIP, IncludeContent: true}

	peak, err := peakHeap(func() error { _, err := exporter.Export(ctx, tenant, who, in); return err })
	if err != nil {
		return err
	}
	asJSON := in
	asJSON.Format = runproof.FormatJSON
	peakJSON, err := peakHeap(func() error { _, err := exporter.Export(ctx, tenant, who, asJSON); return err })
	if err != nil {
		return err
	}

	if cpuprofile != "" {
		f, err := os.Create(cpuprofile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}

	var exportTimes, zipTimes, verifyTimes, sumTimes, sumZipTimes, unzipTimes []float64
	var zipFile string
	var zipSize, memberSize int64
	var members []string
	for round := range rounds {
		t0 := time.Now()
		rec, err := exporter.Export(ctx, tenant, who, in)
		if err != nil {
			return err
		}
		exportTimes = append(exportTimes, time.Since(t0).Seconds())
		if round == 0 {
			if zipFile, members, err = unpack(ctx, exporter, rec, dir); err != nil {
				return err
			}
			zipSize = rec.SizeBytes
			if memberSize, err = sizes(dir, members); err != nil {
				return err
			}
			if keep != "" {
				if err := copyFile(zipFile, keep); err != nil {
					return err
				}
			}
		}

		// The reference: the same files compressed and hashed by stock tools.
		out := filepath.Join(dir, "ref.zip")
		os.Remove(out) // zip adds to an existing archive
		t0 = time.Now()
		if err := tool(dir, "zip", append([]string{"-q", "-6", out}, members...)...); err != nil {
			return err
		}
		if err := tool(dir, "sha256sum", members...); err != nil {
			return err
		}
		zipTimes = append(zipTimes, time.Since(t0).Seconds())

		t0 = time.Now()
		if err := verifyFile(zipFile, key.Public()); err != nil {
			return err
		}
		verifyTimes = append(verifyTimes, time.Since(t0).Seconds())
		t0 = time.Now()
		if err := tool(dir, "sha256sum", members...); err != nil {
			return err
		}
		sumTimes = append(sumTimes, time.Since(t0).Seconds())
		t0 = time.Now()
		if err := tool(dir, "sha256sum", zipFile); err != nil {
			return err
		}
		sumZipTimes = append(sumZipTimes, time.Since(t0).Seconds())
		t0 = time.Now()
		if err := tool(dir, "sh", "-c", `unzip -p "$1" | sha256sum`, "sh", zipFile); err != nil {
			return err
		}
		unzipTimes = append(unzipTimes, time.Since(t0).Seconds())
	}

	exp, ref := benchenv.Median(exportTimes), benchenv.Median(zipTimes)
	ver, sum, sumZip := benchenv.Median(verifyTimes), benchenv.Median(sumTimes), benchenv.Median(sumZipTimes)
	mb, zmb := float64(memberSize)/1e6, float64(zipSize)/1e6
	fmt.Printf("%d steps: ZIP of %.1f MB holding %.1f MB of members; median of %d rounds\n", n, zmb, mb, rounds)
	fmt.Printf("%-13s %14s %24s %8s %s\n", "", "runproof", "reference", "ratio", "goal")
	fmt.Printf("%-13s %11.0f ms %21.0f ms %8.2f %s\n", "export", exp*1000, ref*1000, exp/ref, "<= 2 (runproof export time / zip -6 + sha256sum time)")
	fmt.Printf("%-13s %11.1f MB %24s %8s %s\n", "memory", float64(peak)/1e6, "", "", "(peak heap during one export over the heap before it; the PDF report and, up to 100 000, the steps it reads)")
	fmt.Printf("%-13s %11.1f MB %24s %8s %s\n", "  as JSON", float64(peakJSON)/1e6, "", "", "flat (the same, exported as JSON)")
	fmt.Printf("%-13s %9.0f MB/s %19.0f MB/s %8.2f %s\n", "verify", mb/ver, mb/sum, sum/ver,
		">= 0.7 (member bytes checked per second / sha256sum of the member files)")
	fmt.Printf("%-13s %9.0f MB/s %19.0f MB/s %8.2f %s\n", "  of the ZIP", zmb/ver, zmb/sumZip, sumZip/ver,
		"(ZIP bytes per second / sha256sum of the ZIP file)")
	unzip := benchenv.Median(unzipTimes)
	fmt.Printf("%-13s %9.0f MB/s %19.0f MB/s %8.2f %s\n", "  stock tools", zmb/unzip, zmb/sumZip, sumZip/unzip,
		"(unzip -p | sha256sum of the ZIP, the least a full check does / sha256sum of the ZIP file)")
	return nil
}

// seed records a run of n steps through the service, in calls of 1000 steps,
// under a cost policy that stops it at about nine tenths of its steps.
func seed(ctx context.Context, store runproof.Store, n int) (string, error) {
	svc := service.New(store, service.Options{})
	if _, err := svc.CreatePolicies(ctx, tenant, service.PolicyInput{Name: "cost cap", Type: runproof.PolicyCostLimit,
		Threshold: service.Threshold(fmt.Sprint(n / 4 * 9 / 10)), Action: runproof.ActionStop}); err != nil {
		return "", err
	}
	start := time.Now().UTC().Add(-24 * time.Hour)
	run, _, err := svc.CreateRun(ctx, tenant, service.RunInput{RunID: "bench-run", AgentID: "bench-agent", Goal: "Answer the support queue",
		StartedAt: start.Format(time.RFC3339Nano)})
	if err != nil {
		return "", err
	}
	for from := 0; from < n; from += service.MaxStepsPerCall {
		var in []service.StepInput
		for i := from; i < min(from+service.MaxStepsPerCall, n); i++ {
			idx := int64(i)
			in = append(in, service.StepInput{StepIndex: &idx, Timestamp: start.Add(time.Duration(i) * 100 * time.Millisecond).Format(time.RFC3339Nano),
				StepType: "llm:gpt-4o", InputTokens: int64(120 + i%50), OutputTokens: 40, CostCents: "0.25", DurationMs: "812.5",
				Content: []byte(`{"prompt":"Summarise the ticket","response":"The customer asks for a refund."}`)})
		}
		steps, err := service.ValidateSteps(in, time.Now())
		if err != nil {
			return "", err
		}
		if _, err := svc.AppendSteps(ctx, tenant, run.ID, steps); err != nil {
			return "", err
		}
	}
	return run.ID, nil
}

// unpack writes the export's ZIP and its members into dir, with unzip's
// help, and returns the ZIP's path and the members' names.
func unpack(ctx context.Context, exporter *export.Exporter, rec runproof.Export, dir string) (string, []string, error) {
	_, art, err := exporter.Open(ctx, rec.TenantID, rec.ID)
	if err != nil {
		return "", nil, err
	}
	defer art.Close()
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, art); err != nil {
		return "", nil, err
	}
	name := filepath.Join(dir, "bundle.zip")
	if err := os.WriteFile(name, buf.Bytes(), 0o600); err != nil {
		return "", nil, err
	}
	if err := tool(dir, "unzip", "-q", "-o", name); err != nil {
		return "", nil, err
	}
	members := []string{"manifest.json", "manifest.sig", "SHA256SUMS", "bundle.json", "steps.csv", "report.pdf"}
	if _, err := os.Stat(filepath.Join(dir, "proof.json")); err == nil {
		members = append(members, "proof.json")
	}
	return name, members, nil
}

func verifyFile(name string, key []byte) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return err
	}
	if rep := verify.ZIP(f, info.Size(), verify.Options{Key: key}); !rep.Authentic() {
		return fmt.Errorf("the bundle does not verify: %v", rep.Failure)
	}
	return nil
}

func tool(dir, name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %v: %s", name, err, out)
	}
	return nil
}

func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o600)
}

// sizes adds up the sizes of the files named, in dir.
func sizes(dir string, names []string) (int64, error) {
	var n int64
	for _, name := range names {
		info, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			return 0, err
		}
		n += info.Size()
	}
	return n, nil
}

// peakHeap runs f and returns the most heap in use while it ran over the
// heap in use before, sampled every 5 ms.
func peakHeap(f func() error) (uint64, error) {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	base, peak := m.HeapInuse, m.HeapInuse
	done := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				var m runtime.MemStats
				runtime.ReadMemStats(&m)
				peak = max(peak, m.HeapInuse)
			}
		}
	}()
	err := f()
	close(done)
	<-sampled
	return peak - base, err
}

package verify_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/runproof/runproof/internal/artifact"
	"github.com/runproof/runproof/internal/demo"
	"github.com/runproof/runproof/internal/export"
	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/service"
	"github.com/runproof/runproof/internal/signing"
	"github.com/runproof/runproof/internal/store/storetest"
	"github.com/runproof/runproof/internal/verify"
)

// exporter exports from a store holding the demo data set (or seed's data)
// with a fresh signing key.
type exporter struct {
	e     *export.Exporter
	store runproof.Store
	key   signing.Key
}

func newExporter(t testing.TB, store runproof.Store) *exporter {
	t.Helper()
	dir, err := artifact.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	keys, err := signing.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &exporter{e: export.New(store, dir, export.Options{Keys: keys}), store: store, key: keys.Active()}
}

// demoExporter seeds the demo data set and returns its showcase incident.
func demoExporter(t testing.TB) (*exporter, runproof.Incident) {
	t.Helper()
	store := storetest.OpenSQLite(t)
	res, err := demo.Seed(context.Background(), demo.Options{Store: store, Day: time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	return newExporter(t, store), res.Showcase
}

// zip exports a ZIP bundle and returns its bytes.
func (x *exporter) zip(t testing.TB, tenant string, in export.Input) []byte {
	t.Helper()
	in.Format = runproof.FormatZIP
	ctx := context.Background()
	rec, err := x.e.Export(ctx, tenant, export.Requester{ID: "test", Origin: runproof.OriginSystem, SourceComponent: "test"}, in)
	if err != nil {
		t.Fatal(err)
	}
	_, art, err := x.e.Open(ctx, rec.TenantID, rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer art.Close()
	b, err := io.ReadAll(art)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func check(zip []byte, key ed25519.PublicKey) (*verify.Report, string) {
	var out bytes.Buffer
	rep := verify.ZIP(bytes.NewReader(zip), int64(len(zip)), verify.Options{Key: key, Out: &out})
	return rep, out.String()
}

// TestExportedBundlesVerify verifies every bundle type the exporter makes,
// with and without steps and content.
func TestExportedBundlesVerify(t *testing.T) {
	x, inc := demoExporter(t)
	for _, bundle := range []runproof.BundleType{runproof.BundleEvidence, runproof.BundleSOC2, runproof.BundleExecutiveDebrief} {
		for _, in := range []export.Input{
			{IncidentID: inc.ID, IncludeContent: true},
			{RunID: inc.RunID},
			{IncidentID: inc.ID, IncludeRawSteps: new(false)},
		} {
			in.BundleType = bundle
			name := fmt.Sprintf("%s/steps=%v/content=%v", bundle, in.IncludeRawSteps == nil, in.IncludeContent)
			t.Run(name, func(t *testing.T) {
				z := x.zip(t, demo.Tenant, in)
				rep, out := check(z, x.key.Public())
				if !rep.OK() || !rep.Authentic() {
					t.Fatalf("does not verify:\n%s", out)
				}
				if n := strings.Count(out, "\nok   ") + 1; n < 9 || strings.Contains(out, "FAIL") || strings.Contains(out, "warn") {
					t.Errorf("%d ok lines, or a FAIL or warn line:\n%s", n, out)
				}
			})
		}
	}
}

// TestWithoutKey: the same checks run, the signature is not checked, and the
// report says so.
func TestWithoutKey(t *testing.T) {
	x, inc := demoExporter(t)
	z := x.zip(t, demo.Tenant, export.Input{IncidentID: inc.ID})
	rep, out := check(z, nil)
	if !rep.OK() || rep.Authentic() {
		t.Fatalf("OK %v, Authentic %v, want true and false:\n%s", rep.OK(), rep.Authentic(), out)
	}
	want := "warn manifest.sig: signature not verified: no --key given (manifest names key " + x.key.ID + ")"
	if !strings.Contains(out, want+"\n") || len(rep.Warnings) != 1 {
		t.Errorf("output lacks %q as the one warning:\n%s", want, out)
	}
}

// TestProofHook: a proof.json is handed to Options.CheckProof, or reported
// as not checked.
func TestProofHook(t *testing.T) {
	x, inc := demoExporter(t)
	z := withProof(t, x.zip(t, demo.Tenant, export.Input{IncidentID: inc.ID}), []byte(`{"proof":true}`))
	rep, out := check(z, x.key.Public())
	if !rep.Authentic() || !strings.Contains(out, "warn proof.json: present but not checked\n") {
		t.Errorf("want a verified bundle with proof.json not checked:\n%s", out)
	}
	var got []byte
	rep = verify.ZIP(bytes.NewReader(z), int64(len(z)), verify.Options{Key: x.key.Public(),
		CheckProof: func(manifest, proof []byte) error {
			got = proof
			return fmt.Errorf("inclusion proof does not hold")
		}})
	if f := rep.Failure; f == nil || f.File != "proof.json" || string(got) != `{"proof":true}` {
		t.Errorf("failure %+v, proof handed %q", f, got)
	}
}

// TestStockTools checks a bundle with unzip, openssl, jq and sha256sum
// alone, as docs/integrity.md tells an auditor to: the signature of
// manifest.json, then the files against the digests it lists. A file
// forged with SHA256SUMS made again to match passes sha256sum -c
// SHA256SUMS, which is not signed, but not that check.
func TestStockTools(t *testing.T) {
	for _, tool := range []string{"unzip", "zipinfo", "sha256sum", "openssl", "jq", "sh"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("SKIPPED: %s is not installed, so the bundle cannot be checked with stock tools (%v)", tool, err)
		}
	}
	const againstManifest = `jq -r '.files[] | "\(.sha256)  \(.name)"' manifest.json | sha256sum -c`
	const memberList = `zipinfo -1 "$1" | LC_ALL=C sort | paste -sd' ' -`
	const sevenMembers = "SHA256SUMS bundle.json manifest.json manifest.sig proof.json report.pdf steps.csv\n"
	x, inc := demoExporter(t)
	for _, bundle := range []runproof.BundleType{runproof.BundleEvidence, runproof.BundleSOC2, runproof.BundleExecutiveDebrief} {
		t.Run(string(bundle), func(t *testing.T) {
			dir := t.TempDir()
			zipPath, pubPath := filepath.Join(dir, "bundle.zip"), filepath.Join(dir, "pub.pem")
			// This exporter keeps no ledger: the proof.json a server's holds
			// is added, whose proof these commands do not check.
			z := withProof(t, x.zip(t, demo.Tenant, export.Input{IncidentID: inc.ID, BundleType: bundle}), []byte(`{}`))
			must(t, os.WriteFile(zipPath, z, 0o600))
			must(t, os.WriteFile(pubPath, signing.PublicPEM(x.key.Public()), 0o600))
			if members := run(t, dir, "sh", "-c", memberList, "sh", zipPath); members != sevenMembers {
				t.Errorf("the members: %q, want %q", members, sevenMembers)
			}
			out := filepath.Join(dir, "bundle")
			run(t, dir, "unzip", "-q", zipPath, "-d", out)
			sig := run(t, out, "openssl", "pkeyutl", "-verify", "-pubin", "-inkey", pubPath, "-rawin", "-in", "manifest.json", "-sigfile", "manifest.sig")
			if !strings.Contains(sig, "Signature Verified Successfully") {
				t.Errorf("openssl says %q", sig)
			}
			sums := run(t, out, "sh", "-c", againstManifest)
			for _, f := range []string{"bundle.json: OK", "steps.csv: OK", "report.pdf: OK"} {
				if !strings.Contains(sums, f) {
					t.Errorf("the files against the manifest:\n%s\nwithout %q", sums, f)
				}
			}

			// A forged bundle.json, SHA256SUMS made again to match it.
			forged := filepath.Join(out, "bundle.json")
			b, err := os.ReadFile(forged)
			must(t, err)
			must(t, os.WriteFile(forged, append(b, ' '), 0o600))
			must(t, os.WriteFile(filepath.Join(out, "SHA256SUMS"), []byte(run(t, out, "sha256sum", "bundle.json", "steps.csv", "report.pdf", "manifest.json")), 0o600))
			run(t, out, "sha256sum", "-c", "SHA256SUMS")
			cmd := exec.Command("sh", "-c", againstManifest)
			cmd.Dir = out
			if msg, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(msg), "bundle.json: FAILED") {
				t.Errorf("the forged bundle.json against the manifest: %v\n%s", err, msg)
			}

			// A ZIP holding a forged bundle.json after the signed one: unzip
			// extracts the first, other readers the last.
			doubled := filepath.Join(dir, "doubled.zip")
			must(t, os.WriteFile(doubled, withMember(t, zipPath, "bundle.json", b), 0o600))
			if members := run(t, dir, "sh", "-c", memberList, "sh", doubled); members == sevenMembers || !strings.Contains(members, "bundle.json bundle.json") {
				t.Errorf("a doubled bundle.json: the members %q", members)
			}
			added := filepath.Join(dir, "added.zip")
			must(t, os.WriteFile(added, withMember(t, zipPath, "README.txt", []byte("hi")), 0o600))
			if members := run(t, dir, "sh", "-c", memberList, "sh", added); members == sevenMembers {
				t.Errorf("an added README.txt: the members %q", members)
			}
		})
	}
}

// withMember returns the ZIP at path with one more member, name holding
// data, after the others.
func withMember(t *testing.T, path, name string, data []byte) []byte {
	t.Helper()
	zr, err := zip.OpenReader(path)
	must(t, err)
	defer zr.Close()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, f := range zr.File {
		must(t, zw.Copy(f))
	}
	w, err := zw.Create(name)
	must(t, err)
	_, err = w.Write(data)
	must(t, err)
	must(t, zw.Close())
	return buf.Bytes()
}

func run(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// seedRun records a run of n steps through the service, in calls of 1000,
// under a cost policy that stops it at about nine tenths of its steps: the
// run has an incident and every later step is judged after the stop.
func seedRun(t testing.TB, store runproof.Store, n int) string {
	t.Helper()
	ctx := context.Background()
	svc := service.New(store, service.Options{})
	const tenant = "bench"
	if _, err := svc.CreatePolicies(ctx, tenant, service.PolicyInput{Name: "cost cap", Type: runproof.PolicyCostLimit,
		Threshold: service.Threshold(fmt.Sprint(n / 4 * 9 / 10)), Action: runproof.ActionStop}); err != nil {
		t.Fatal(err)
	}
	run, _, err := svc.CreateRun(ctx, tenant, service.RunInput{RunID: "run-1", AgentID: "agent"})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now().UTC().Add(-time.Hour)
	for from := 0; from < n; from += service.MaxStepsPerCall {
		var in []service.StepInput
		for i := from; i < min(from+service.MaxStepsPerCall, n); i++ {
			idx := int64(i)
			in = append(in, service.StepInput{StepIndex: &idx, Timestamp: start.Add(time.Duration(i) * time.Millisecond).Format(time.RFC3339Nano),
				StepType: "llm:gpt-4o", InputTokens: int64(120 + i%50), OutputTokens: 40, CostCents: "0.25", DurationMs: "812.5",
				Content: []byte(`{"prompt":"Summarise the ticket","response":"The customer asks for a refund."}`)})
		}
		steps, err := service.ValidateSteps(in, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := svc.AppendSteps(ctx, tenant, run.ID, steps); err != nil {
			t.Fatal(err)
		}
	}
	return run.ID
}

// BenchmarkVerify verifies the ZIP of runs of 10 000 and 100 000 steps. Its
// B/op stays flat: nothing is allocated per step.
func BenchmarkVerify(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("steps=%d", n), func(b *testing.B) {
			store := storetest.OpenSQLite(b)
			runID := seedRun(b, store, n)
			x := newExporter(b, store)
			z := x.zip(b, "bench", export.Input{RunID: runID, IncludeContent: true})
			b.SetBytes(int64(len(z)))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if rep := verify.ZIP(bytes.NewReader(z), int64(len(z)), verify.Options{Key: x.key.Public()}); !rep.Authentic() {
					b.Fatal(rep.Failure)
				}
			}
		})
	}
}

// rewrite copies a ZIP, passing each member's bytes through edit (nil
// drops the member), then adds the extra members (name, data).
func rewrite(t testing.TB, z []byte, edit func(name string, data []byte) []byte, extra ...string) []byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(z), int64(len(z)))
	must(t, err)
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	add := func(h zip.FileHeader, data []byte) {
		w, err := zw.CreateHeader(&h)
		must(t, err)
		_, err = w.Write(data)
		must(t, err)
	}
	for _, f := range zr.File {
		rc, err := f.Open()
		must(t, err)
		data, err := io.ReadAll(rc)
		must(t, err)
		if data = edit(f.Name, data); data != nil {
			add(f.FileHeader, data)
		}
	}
	for i := 0; i+1 < len(extra); i += 2 {
		add(zip.FileHeader{Name: extra[i], Method: zip.Deflate}, []byte(extra[i+1]))
	}
	must(t, zw.Close())
	return buf.Bytes()
}

// withProof adds a proof.json and its line in SHA256SUMS.
func withProof(t testing.TB, z, proof []byte) []byte {
	sum := sha256.Sum256(proof)
	return rewrite(t, z, func(name string, data []byte) []byte {
		if name == "SHA256SUMS" {
			return fmt.Appendf(data, "%x  proof.json\n", sum)
		}
		return data
	}, "proof.json", string(proof))
}

// TestLargestAmountsVerify: the largest costs and durations a run may
// reach (runproof.MaxFixed, with every decimal place) are written exactly
// in bundle.json and steps.csv, so the bundle's totals add up; one more
// significant digit, which a float64 would not keep, is refused when sent.
func TestLargestAmountsVerify(t *testing.T) {
	store := storetest.OpenSQLite(t)
	ctx := context.Background()
	svc := service.New(store, service.Options{})
	run, _, err := svc.CreateRun(ctx, "acme", service.RunInput{RunID: "big", AgentID: "agent"})
	must(t, err)
	start := time.Now().UTC().Add(-time.Hour)
	step := func(i int64, cost, duration int64) service.StepInput {
		return service.StepInput{StepIndex: &i, Timestamp: start.Add(time.Duration(i) * time.Second).Format(time.RFC3339Nano), StepType: "llm:gpt-4o",
			CostCents:  service.Number(runproof.FormatFixed(cost, runproof.MicrocentsPerCent)),
			DurationMs: service.Number(runproof.FormatFixed(duration, runproof.MicrosPerMilli))}
	}
	// Two steps whose totals are MaxFixed-1 units: 999999999.999999 cents.
	half := int64(runproof.MaxFixed / 2)
	in := []service.StepInput{step(0, half+123_457, half+125), step(1, half-123_458, half-126)}
	if _, err := service.ValidateSteps([]service.StepInput{step(0, 9_000_000_000_123_456, 0)}, time.Now()); err == nil {
		t.Fatal("a cost of 9000000000.123456 cents, 16 significant digits, was taken")
	}
	steps, err := service.ValidateSteps(in, time.Now())
	must(t, err)
	_, err = svc.AppendSteps(ctx, "acme", run.ID, steps)
	must(t, err)
	x := newExporter(t, store)
	z := x.zip(t, "acme", export.Input{RunID: run.ID, BundleType: runproof.BundleEvidence})
	if rep, out := check(z, x.key.Public()); !rep.OK() {
		t.Fatalf("does not verify:\n%s", out)
	}
	var bundle []byte
	rewrite(t, z, func(name string, data []byte) []byte {
		if name == "bundle.json" {
			bundle = data
		}
		return data
	})
	for _, want := range []string{string(in[0].CostCents), string(in[1].CostCents), "999999999.999999", "999999999999.999"} {
		if !bytes.Contains(bundle, []byte(want)) {
			t.Errorf("bundle.json does not hold %s", want)
		}
	}
}

// countingReaderAt counts the bytes read through it.
type countingReaderAt struct {
	r    io.ReaderAt
	read int64
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	c.read += int64(n)
	return n, err
}

// TestHugeDirectory: a file of a hundred thousand empty members, with a
// comment or without, is refused from its end records alone, before its
// central directory is read: archive/zip would read every entry first.
func TestHugeDirectory(t *testing.T) {
	for _, comment := range []string{"", "<script>"} {
		var b bytes.Buffer
		zw := zip.NewWriter(&b)
		for i := range 100_000 {
			if _, err := zw.CreateHeader(&zip.FileHeader{Name: fmt.Sprintf("e%06d", i), Method: zip.Store}); err != nil {
				t.Fatal(err)
			}
		}
		must(t, zw.SetComment(comment))
		must(t, zw.Close())
		r := &countingReaderAt{r: bytes.NewReader(b.Bytes())}
		var out bytes.Buffer
		rep := verify.ZIP(r, int64(b.Len()), verify.Options{Out: &out})
		if rep.OK() || !strings.Contains(out.String(), "the central directory would be read from offset") || r.read > 1<<20 {
			t.Errorf("comment %q: failure %v, %d bytes read of %d:\n%s", comment, rep.Failure, r.read, b.Len(), out.String())
		}
	}
}

// TestForgedMemberNamed: a member changed with SHA256SUMS made again to
// match is named as the file at fault, not SHA256SUMS; SHA256SUMS changed
// alone is.
func TestForgedMemberNamed(t *testing.T) {
	x, inc := demoExporter(t)
	z := x.zip(t, demo.Tenant, export.Input{IncidentID: inc.ID})
	var forged []byte
	members := rewrite(t, z, func(name string, data []byte) []byte {
		if name == "bundle.json" {
			forged = bytes.Replace(data, []byte(`"tenant_id":"demo"`), []byte(`"tenant_id":"dema"`), 1)
			return forged
		}
		return data
	})
	sum := sha256.Sum256(forged)
	sums := func(z []byte, sum string) []byte {
		return rewrite(t, z, func(name string, data []byte) []byte {
			if name != "SHA256SUMS" {
				return data
			}
			var out []string
			for line := range strings.Lines(string(data)) {
				if strings.HasSuffix(line, "  bundle.json\n") {
					line = sum + "  bundle.json\n"
				}
				out = append(out, line)
			}
			return []byte(strings.Join(out, ""))
		})
	}
	for name, c := range map[string]struct {
		zip  []byte
		file string
	}{
		"bundle.json and SHA256SUMS": {sums(members, hex.EncodeToString(sum[:])), "bundle.json"},
		"SHA256SUMS alone":           {sums(z, hex.EncodeToString(sum[:])), "SHA256SUMS"},
	} {
		rep, out := check(c.zip, x.key.Public())
		if rep.OK() || rep.Failure == nil || rep.Failure.File != c.file {
			t.Errorf("%s changed: failure %+v, want one naming %s:\n%s", name, rep.Failure, c.file, out)
		}
	}
}

// TestOneDisk: a bundle whose end record or central directory says it is
// split over disks (fields archive/zip ignores, which unzip heeds) does not
// verify.
func TestOneDisk(t *testing.T) {
	x, inc := demoExporter(t)
	good := x.zip(t, demo.Tenant, export.Input{IncidentID: inc.ID})
	end := bytes.LastIndex(good, []byte("PK\x05\x06"))
	dir := bytes.Index(good, []byte("PK\x01\x02"))
	for _, c := range []struct {
		name string
		at   int
		want string
	}{
		{"number of this disk", end + 4, "split over several disks"},
		{"disk where the directory starts", end + 6, "split over several disks"},
		{"entries on this disk", end + 8, "split over several disks"},
		{"an entry's disk", dir + 34, "starts on disk 3"},
	} {
		z := bytes.Clone(good)
		z[c.at] ^= 3
		var out bytes.Buffer
		if rep := verify.ZIP(bytes.NewReader(z), int64(len(z)), verify.Options{Key: x.key.Public(), Out: &out}); rep.OK() ||
			!strings.Contains(out.String(), c.want) {
			t.Errorf("%s changed: failure %v\n%s", c.name, rep.Failure, out.String())
		}
	}
}

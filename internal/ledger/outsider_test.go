package ledger_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/runproof/runproof/internal/store/storetest"
)

// checker is a program that checks proof.json with tlog, note and the
// standard library only: what an auditor without runproof can run.
const checker = "../../docs/examples/checkproof"

// TestOutsiderChecksProof writes a proof and the artifact it covers to
// files, then has the outside checker judge them, as they are and altered.
func TestOutsiderChecksProof(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a program")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool in PATH")
	}
	checkImports(t)

	ctx := context.Background()
	s := storetest.OpenSQLite(t)
	l := newLedger(t, s)
	recs := finish(t, s, "acme", 0, 11)
	appendEach(t, l, recs)
	p, err := l.Prove(ctx, "acme", recs[6].ID)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	proofPath := write("proof.json", b)
	artifact := write("artifact.json", []byte(recs[6].ID)) // finish's checksum is the digest of the id

	run := func(args ...string) (string, bool) {
		cmd := exec.Command(goTool, append([]string{"run", checker}, args...)...)
		out, err := cmd.CombinedOutput()
		return strings.TrimSpace(string(out)), err == nil
	}
	if out, ok := run("-key", l.VerifierKey(), proofPath, artifact); !ok || !strings.HasPrefix(out, "ok: export "+recs[6].ID) {
		t.Fatalf("the checker refused a good proof: %s", out)
	} else {
		t.Log(out)
	}

	pemOf := func(name string, key ed25519.PrivateKey) string {
		der, err := x509.MarshalPKIXPublicKey(key.Public())
		if err != nil {
			t.Fatal(err)
		}
		return write(name, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	}
	if out, ok := run("-pem", pemOf("pub.pem", testKey), proofPath, artifact); !ok || !strings.HasPrefix(out, "ok: ") {
		t.Errorf("the checker refused a good proof with the PEM key: %s", out)
	}
	// Without a key, the proof holds but its signer is unchecked: exit 3.
	if out, ok := run(proofPath, artifact); ok || !strings.HasPrefix(out, "ok: ") || !strings.Contains(out, "UNVERIFIED") {
		t.Errorf("the checker without a key: %s (exit 0: %v), want ok, then UNVERIFIED and a failing exit", out, ok)
	}
	der, err := x509.MarshalPKCS8PrivateKey(testKey)
	if err != nil {
		t.Fatal(err)
	}
	private := write("private.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	if out, ok := run("-pem", private, proofPath); ok || !strings.Contains(out, "is a private key: give the public key") {
		t.Errorf("the checker given a private key: %s", out)
	}

	p.Leaf = append([]byte(nil), p.Leaf...)
	p.Leaf[len(p.Leaf)-3] ^= 1 // one bit of the leaf
	b, _ = json.Marshal(p)
	altered := write("altered.json", b)
	other := write("other.json", []byte("not the artifact"))
	for _, c := range []struct {
		name string
		args []string
	}{
		{"altered leaf", []string{"-key", l.VerifierKey(), altered}},
		{"other artifact", []string{"-key", l.VerifierKey(), proofPath, other}},
		{"other key", []string{"-key", newLedgerKey(t, s, otherKey).VerifierKey(), proofPath}},
		{"other PEM key", []string{"-pem", pemOf("other.pem", otherKey), proofPath}},
	} {
		if out, ok := run(c.args...); ok {
			t.Errorf("%s: the checker accepted it: %s", c.name, out)
		} else {
			t.Logf("%s: %s", c.name, out)
		}
	}
}

// TestOutsiderChecksZIP has the outside checker judge a ZIP's proof.json
// against its manifest.json, given as files or as the ZIP, as they are
// and altered.
func TestOutsiderChecksZIP(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a program")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool in PATH")
	}
	ctx := context.Background()
	s := storetest.OpenSQLite(t)
	l := newZIPLedger(t, s)
	appendEach(t, l, finish(t, s, "acme", 0, 4))
	z := sealZIP(t, s, l, "acme", 4)
	p, err := l.ProveManifest(ctx, "acme", z.rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	z.end(t, s, l, "")
	proof, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	var zb bytes.Buffer
	if err := z.sealed.Write(&zb, proof); err != nil {
		t.Fatal(err)
	}
	zipPath := write("bundle.zip", zb.Bytes())
	proofPath, manifestPath := write("proof.json", proof), write("manifest.json", z.manifest)
	der, err := x509.MarshalPKIXPublicKey(testKey.Public())
	if err != nil {
		t.Fatal(err)
	}
	pub := write("pub.pem", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))

	run := func(args ...string) (string, bool) {
		cmd := exec.Command(goTool, append([]string{"run", checker}, args...)...)
		out, err := cmd.CombinedOutput()
		return strings.TrimSpace(string(out)), err == nil
	}
	for _, args := range [][]string{{"-pem", pub, proofPath, manifestPath}, {"-pem", pub, zipPath}} {
		if out, ok := run(args...); !ok || !strings.HasPrefix(out, "ok: the manifest of export "+z.rec.ID) {
			t.Fatalf("%v: the checker refused a good proof: %s", args, out)
		} else {
			t.Log(out)
		}
	}
	altered := write("altered.json", bytes.Replace(z.manifest, []byte(z.rec.BundleID), []byte("EVD-OTHER"), 1))
	// proof.json with a member that says other than the checkpoint or the
	// leaf it proves.
	edited := func(name string, edit func(m map[string]any)) string {
		var m map[string]any
		if err := json.Unmarshal(proof, &m); err != nil {
			t.Fatal(err)
		}
		edit(m)
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return write(name, b)
	}
	cases := []struct {
		name string
		args []string
	}{
		{"altered manifest", []string{"-pem", pub, proofPath, altered}},
		{"no manifest", []string{"-pem", pub, proofPath}},
		{"other key", []string{"-key", newLedgerKey(t, s, otherKey).VerifierKey(), zipPath}},
	}
	for name, edit := range map[string]func(m map[string]any){
		"another type":         func(m map[string]any) { m["type"] = "something.else" },
		"another tree size":    func(m map[string]any) { m["tree_size"] = 99 },
		"another origin":       func(m map[string]any) { m["origin"] = "runproof/ledger/other" },
		"another verifier key": func(m map[string]any) { m["verifier_key"] = "garbage" },
		"another bundle type":  func(m map[string]any) { m["manifest"].(map[string]any)["bundle_type"] = "soc2" },
		"a member of its own":  func(m map[string]any) { m["verified_by"] = "mallory" },
		"the leaf as an entry": func(m map[string]any) { m["entry"] = m["manifest"] },
	} {
		cases = append(cases, struct {
			name string
			args []string
		}{name, []string{"-pem", pub, edited(strings.ReplaceAll(name, " ", "-")+".json", edit), manifestPath}})
	}
	for _, c := range cases {
		if out, ok := run(c.args...); ok {
			t.Errorf("%s: the checker accepted it: %s", c.name, out)
		} else {
			t.Logf("%s: %s", c.name, out)
		}
	}
	// The ZIP given where its manifest.json goes is named as the mistake.
	if out, ok := run("-pem", pub, proofPath, zipPath); ok || !strings.Contains(out, "is a ZIP, not its manifest.json: give the ZIP alone") {
		t.Errorf("proof.json with the ZIP: %s", out)
	}
}

// checkImports makes sure the checker needs nothing but the standard
// library and golang.org/x/mod.
func checkImports(t *testing.T) {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(checker, "main.go"), nil, parser.ImportsOnly)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range f.Imports {
		path, _ := strconv.Unquote(imp.Path.Value)
		first, _, _ := strings.Cut(path, "/")
		if strings.Contains(first, ".") && !strings.HasPrefix(path, "golang.org/x/mod/sumdb/") {
			t.Errorf("the checker imports %s", path)
		}
	}
}

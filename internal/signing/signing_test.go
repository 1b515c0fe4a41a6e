package signing_test

import (
	"crypto/ed25519"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runproof/runproof/internal/signing"
)

func TestKeyringRotatesAndKeepsOldKeys(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	kr, err := signing.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	first := kr.Active()
	files, _ := filepath.Glob(filepath.Join(dir, "*.pem"))
	if len(files) != 1 {
		t.Fatalf("files %v", files)
	}
	if info, _ := os.Stat(files[0]); info.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", info.Mode().Perm())
	}
	second, err := kr.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	again, err := signing.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	keys := again.Keys()
	if len(keys) != 2 || keys[0].ID != first.ID || again.Active().ID != second.ID || first.ID == second.ID {
		t.Fatalf("after rotation: %v, active %s", keys, again.Active().ID)
	}
	all, _ := os.ReadDir(dir)
	all = slices.DeleteFunc(all, func(e os.DirEntry) bool { return e.Name() == ".first-key.lock" }) // which a first key is made under
	if len(all) != 2 {
		t.Errorf("the key directory holds %v, want the two keys alone", all)
	}
}

// TestOpenSSLAcceptsSignatures checks both directions with the stock tool:
// openssl verifies our signature, and we load a key openssl made.
func TestOpenSSLAcceptsSignatures(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("SKIPPED: openssl is not installed; install it to check signatures against a stock tool")
	}
	dir := t.TempDir()
	kr, err := signing.Open(filepath.Join(dir, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	k := kr.Active()
	msg := []byte(`{"export_id":"e-1"}`)
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pub, in, sig := write("pub.pem", signing.PublicPEM(k.Public())), write("msg", msg), write("sig", k.Sign(msg))
	out, err := exec.Command("openssl", "pkeyutl", "-verify", "-pubin", "-inkey", pub, "-rawin", "-in", in, "-sigfile", sig).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl refused the signature: %v %s", err, out)
	}
	write("msg", []byte(`{"export_id":"e-2"}`))
	if err := exec.Command("openssl", "pkeyutl", "-verify", "-pubin", "-inkey", pub, "-rawin", "-in", in, "-sigfile", sig).Run(); err == nil {
		t.Fatal("openssl accepted a signature over other bytes")
	}

	priv := filepath.Join(dir, "openssl.pem")
	if out, err := exec.Command("openssl", "genpkey", "-algorithm", "ed25519", "-out", priv).CombinedOutput(); err != nil {
		t.Fatalf("openssl genpkey: %v %s", err, out)
	}
	loaded, err := signing.ReadKeyFile(priv)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := signing.ParsePublicPEM(signing.PublicPEM(loaded.Public()))
	if err != nil || !ed25519.Verify(parsed, msg, loaded.Sign(msg)) {
		t.Fatalf("round trip: %v", err)
	}
	if _, err := signing.ReadKeyFile(pub); err == nil {
		t.Error("a public key was read as a private key")
	}
	privPEM, err := os.ReadFile(priv)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := signing.ParsePublicPEM(privPEM); err == nil || !strings.Contains(err.Error(), "give its public half") {
		t.Errorf("a private key read as a public one: %v", err)
	}
	two := append(signing.PublicPEM(loaded.Public()), signing.PublicPEM(loaded.Public())...)
	if _, err := signing.ParsePublicPEM(two); err == nil || !strings.Contains(err.Error(), "more than one PEM block") {
		t.Errorf("a file of two keys: %v", err)
	}
}

// TestKeyUses: the starts recorded are read back oldest first, whichever
// process wrote them, and a line a crash cut short is skipped.
func TestKeyUses(t *testing.T) {
	dir := t.TempDir()
	kr, err := signing.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if uses, err := kr.Uses(); err != nil || len(uses) != 0 {
		t.Fatalf("no start yet: %v, %v", uses, err)
	}
	first := kr.Active().ID
	later, earlier := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := kr.BeginUse(later); err != nil {
		t.Fatal(err)
	}
	second, err := kr.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	if err := kr.BeginUse(earlier); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "uses"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("2026-03-01T00:0"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	uses, err := kr.Uses()
	want := []signing.KeyUse{{At: earlier, KeyID: second.ID}, {At: later, KeyID: first}}
	if err != nil || !slices.Equal(uses, want) {
		t.Errorf("uses %v, %v; want %v", uses, err, want)
	}
}

// TestFirstKeyOnce: processes opening a new directory at once (serve and
// demo started together) all sign with the one first key, not each with
// its own; the lock file a process left as it stopped holds no one up.
func TestFirstKeyOnce(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "signing-keys")
	const n = 8
	ids := make(chan string, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			kr, err := signing.Open(dir)
			if err != nil {
				t.Error(err)
				return
			}
			ids <- kr.Active().ID
		})
	}
	wg.Wait()
	close(ids)
	seen := map[string]bool{}
	for id := range ids {
		seen[id] = true
	}
	if pems, _ := filepath.Glob(filepath.Join(dir, "*.pem")); len(seen) != 1 || len(pems) != 1 {
		t.Errorf("%d keys in use, %d key files, want one of each", len(seen), len(pems))
	}

	left := filepath.Join(t.TempDir(), "signing-keys")
	if err := os.MkdirAll(left, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(left, ".first-key.lock"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if kr, err := signing.Open(left); err != nil || kr.Active().ID == "" {
		t.Errorf("a directory with a lock file left behind: %v", err)
	}
}

// TestHiddenFilesAreNotKeys: what a write cut short leaves in the keys'
// directory (a hidden temporary file, empty, whatever its name ends with)
// is not read as a key.
func TestHiddenFilesAreNotKeys(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "signing-keys")
	kr, err := signing.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{".tmp-20270101T000000Z-0123456789abcdef.pem-X", ".tmp-X-20270101T000000Z-0123456789abcdef.pem"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	again, err := signing.Open(dir)
	if err != nil || again.Active().ID != kr.Active().ID {
		t.Fatalf("reopened with temporary files left: %v", err)
	}
	if _, err := again.Verifying(); err != nil {
		t.Fatalf("verifying keys: %v", err)
	}
}

// TestHasKeys: a directory that cannot be read is an error, not one
// without keys; hidden files are not keys.
func TestHasKeys(t *testing.T) {
	dir := t.TempDir()
	for name, want := range map[string]bool{filepath.Join(dir, "none"): false, dir: false} {
		if has, err := signing.HasKeys(name); has != want || err != nil {
			t.Errorf("HasKeys(%s) = %v, %v", name, has, err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, ".tmp-key.pem-1"), []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	if has, err := signing.HasKeys(dir); has || err != nil {
		t.Errorf("a hidden file: %v, %v", has, err)
	}
	if _, err := signing.Open(dir); err != nil {
		t.Fatal(err)
	}
	if has, err := signing.HasKeys(dir); !has || err != nil {
		t.Errorf("a key: %v, %v", has, err)
	}
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := signing.HasKeys(file); err == nil { // as a directory out of reach (root reads any)
		t.Error("a directory that cannot be read has no keys, no error")
	}
}

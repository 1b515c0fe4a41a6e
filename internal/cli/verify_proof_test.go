package cli_test

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runproof/runproof/internal/signing"
)

// TestVerifyProof: a ZIP of the demo carries proof.json and verifies;
// proof.json altered (a leaf byte, a proof hash, the checkpoint's
// signature), with SHA256SUMS made to match as a forger would, fails
// naming proof.json.
func TestVerifyProof(t *testing.T) {
	dir := t.TempDir()
	data, out := filepath.Join(dir, "data"), filepath.Join(dir, "out")
	if r := runCLI(t, "", "demo", "--data", data, "--out", out); r.code != 0 {
		t.Fatalf("demo: %d %s", r.code, r.stderr)
	}
	keys, err := signing.Open(filepath.Join(data, "signing-keys"))
	if err != nil {
		t.Fatal(err)
	}
	pub := writeFile(t, "pub.pem", string(signing.PublicPEM(keys.Active().Public())))
	good := filepath.Join(out, "evidence.zip")
	r := runCLI(t, "", "verify", good, "--key", pub)
	if r.code != 0 || !strings.Contains(r.stdout, "ok   proof.json:") || !strings.Contains(r.stdout, "VERIFIED") {
		t.Fatalf("the demo's ZIP: %d %q %q", r.code, r.stdout, r.stderr)
	}
	b, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}

	flip := func(b64 string, at int) string {
		raw, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			t.Fatal(err)
		}
		if at < 0 {
			at += len(raw)
		}
		raw[at] ^= 1
		return base64.StdEncoding.EncodeToString(raw)
	}
	for _, tc := range []struct {
		name   string
		change func(p map[string]any)
		want   string
	}{
		{"a leaf byte", func(p map[string]any) { p["leaf"] = flip(p["leaf"].(string), 20) }, "its leaf is not the leaf of manifest.json"},
		{"a proof hash", func(p map[string]any) {
			h := p["record_proof"].([]any)
			h[len(h)-1] = flip(h[len(h)-1].(string), 0)
		}, "is not in the signed tree"},
		{"the checkpoint signature", func(p map[string]any) {
			cp := p["checkpoint"].(string)
			i := strings.LastIndex(strings.TrimSuffix(cp, "\n"), " ")
			p["checkpoint"] = cp[:i+1] + flip(strings.TrimSpace(cp[i+1:]), -1) + "\n"
		}, "checkpoint signature"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			zipPath := writeFile(t, "altered.zip", string(alterProof(t, b, tc.change)))
			r := runCLI(t, "", "verify", zipPath, "--key", pub)
			wantError(t, r, 1, "does not verify: proof.json: ")
			if !strings.Contains(r.stderr, tc.want) {
				t.Errorf("stderr = %q, want it to say %q", r.stderr, tc.want)
			}
		})
	}
}

// alterProof returns the ZIP with its proof.json changed and SHA256SUMS
// listing the new digest, members in the same order.
func alterProof(t *testing.T, b []byte, change func(p map[string]any)) []byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	read := func(f *zip.File) []byte {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		data, err := io.ReadAll(rc)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	files := map[string][]byte{}
	for _, f := range zr.File {
		files[f.Name] = read(f)
	}
	var p map[string]any
	if err := json.Unmarshal(files["proof.json"], &p); err != nil {
		t.Fatal(err)
	}
	change(p)
	proof, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	oldSum, newSum := sha256.Sum256(files["proof.json"]), sha256.Sum256(proof)
	files["proof.json"] = proof
	files["SHA256SUMS"] = bytes.Replace(files["SHA256SUMS"], []byte(hex.EncodeToString(oldSum[:])), []byte(hex.EncodeToString(newSum[:])), 1)

	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, f := range zr.File {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: f.Name, Method: f.Method, Modified: f.Modified})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(files[f.Name]); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

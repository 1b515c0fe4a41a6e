package cli_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/runproof/runproof/internal/artifact"
	"github.com/runproof/runproof/internal/bundlezip"
	"github.com/runproof/runproof/internal/cli"
	"github.com/runproof/runproof/internal/demo"
	"github.com/runproof/runproof/internal/export"
	"github.com/runproof/runproof/internal/ledger"
	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/signing"
	"github.com/runproof/runproof/internal/store/storetest"
)

// signedZIPs exports the demo's showcase incident as signed ZIP bundles,
// with their ledger proofs, through the exporter.
type signedZIPs struct {
	e   *export.Exporter
	inc runproof.Incident
	key signing.Key
	dir string // where the files of a test go
	pub string // the key's public half, PEM
}

func newSignedZIPs(t *testing.T) *signedZIPs {
	t.Helper()
	store := storetest.OpenSQLite(t)
	res, err := demo.Seed(context.Background(), demo.Options{Store: store, Day: time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	arts, err := artifact.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	keys, err := signing.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	key := keys.Active()
	led, err := ledger.New(store, key.Private, key.ID, ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	z := &signedZIPs{e: export.New(store, arts, export.Options{Keys: keys, Ledger: led}), inc: res.Showcase, key: key, dir: t.TempDir()}
	z.pub = z.write(t, "pub.pem", signing.PublicPEM(key.Public()))
	return z
}

// export returns the bytes of a new ZIP export of the incident.
func (z *signedZIPs) export(t *testing.T, bundle runproof.BundleType) []byte {
	t.Helper()
	ctx := context.Background()
	rec, err := z.e.Export(ctx, demo.Tenant, export.Requester{ID: "test", Origin: runproof.OriginSystem, SourceComponent: "test"},
		export.Input{IncidentID: z.inc.ID, BundleType: bundle, Format: runproof.FormatZIP, IncludeContent: true})
	if err != nil {
		t.Fatal(err)
	}
	_, art, err := z.e.Open(ctx, rec.TenantID, rec.ID)
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

func (z *signedZIPs) write(t *testing.T, name string, b []byte) string {
	t.Helper()
	path := filepath.Join(z.dir, name)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// zipReader reads the ZIP z.
func zipReader(t *testing.T, z []byte) *zip.Reader {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(z), int64(len(z)))
	if err != nil {
		t.Fatal(err)
	}
	return zr
}

// member returns one member of a ZIP.
func member(t *testing.T, z []byte, name string) []byte {
	t.Helper()
	zr := zipReader(t, z)
	rc, err := zr.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// entry is a member to add, with its header.
type entry struct {
	header zip.FileHeader
	data   string
}

// rewrite copies a ZIP member by member, passing each member's bytes
// through edit (nil drops it), then adds the extra entries.
func rewrite(t *testing.T, z []byte, edit func(name string, data []byte) []byte, extra ...entry) []byte {
	t.Helper()
	zr := zipReader(t, z)
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	add := func(h zip.FileHeader, data []byte) {
		w, err := zw.CreateHeader(&h)
		if err == nil {
			_, err = w.Write(data)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range zr.File {
		if data := edit(f.Name, member(t, z, f.Name)); data != nil {
			add(f.FileHeader, data)
		}
	}
	for _, e := range extra {
		add(e.header, []byte(e.data))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func keep(_ string, data []byte) []byte { return data }

// flipMiddle changes one byte in the middle of the member called name.
func flipMiddle(name string) func(string, []byte) []byte {
	return func(n string, data []byte) []byte {
		if n == name {
			data = bytes.Clone(data)
			data[len(data)/2] ^= 0x01
		}
		return data
	}
}

// reseal rebuilds a ZIP from its members after edit, with a manifest and
// SHA256SUMS that describe the edited members, signed by signer (and with
// sig as its signature instead, when sig is not nil). It has no proof.json.
func reseal(t *testing.T, z []byte, edit func(string, []byte) []byte, signer bundlezip.Signer, sig []byte) []byte {
	t.Helper()
	var m bundlezip.Manifest
	if err := json.Unmarshal(member(t, z, bundlezip.ManifestName), &m); err != nil {
		t.Fatal(err)
	}
	var members []bundlezip.Member
	for _, name := range []string{bundlezip.BundleName, bundlezip.StepsName, bundlezip.ReportName} {
		members = append(members, bundlezip.Member{Name: name, Data: edit(name, member(t, z, name))})
	}
	if k, ok := signer.(signing.Key); ok {
		m.KeyID = k.ID
	}
	sealed, err := bundlezip.Seal(m, members, signer)
	if err != nil {
		t.Fatal(err)
	}
	if sig != nil {
		sealed.Signature = sig
	}
	var buf bytes.Buffer
	if err := sealed.Write(&buf, nil); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// rehash sets a bundle's content_hash to what its content gives.
func rehash(t *testing.T, bundle []byte) []byte {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(bundle, &m); err != nil {
		t.Fatal(err)
	}
	var old string
	if err := json.Unmarshal(m["content_hash"], &old); err != nil {
		t.Fatal(err)
	}
	delete(m, "content_hash")
	d, err := runproof.Digest(m)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Replace(bundle, []byte(old), []byte(d), 1)
}

// editStep changes the tokens of the bundle's fourth step (and the
// matching CSV row with it when csv is set).
var fourthTokens = regexp.MustCompile(`("step_index":3,.*?"tokens":)(\d)`)

func editStepTokens(data []byte) []byte {
	return fourthTokens.ReplaceAllFunc(data, func(m []byte) []byte {
		m = bytes.Clone(m)
		m[len(m)-1] = '0' + (m[len(m)-1]-'0'+1)%10
		return m
	})
}

// TestVerifyTampered changes ZIPs in every way a forger or an accident
// would and runs runproof verify on each: it fails with exit status 1 and
// names the cause.
func TestVerifyTampered(t *testing.T) {
	z := newSignedZIPs(t)
	good := z.export(t, runproof.BundleEvidence)
	other := z.export(t, runproof.BundleEvidence) // another export, same key
	debrief := z.export(t, runproof.BundleExecutiveDebrief)
	forger, err := signing.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	forgerKey := forger.Active()
	forgerPub := z.write(t, "forger.pem", signing.PublicPEM(forgerKey.Public()))

	r := runCLI(t, "", "verify", z.write(t, "good.zip", good), "--key", z.pub)
	if r.code != 0 || !strings.Contains(r.stdout, "ok   proof.json") ||
		!regexp.MustCompile(`\nVERIFIED: \S+ is complete and unchanged, signed by ed25519:\w+: evidence EVD-[\w-]+, export [\w-]+ of tenant "[\w-]+"\n$`).MatchString(r.stdout) {
		t.Fatalf("the untouched bundle: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// A forgery that holds together, signed by the forger.
	forged := reseal(t, good, onBundle(func(b []byte) []byte {
		return rehash(t, bytes.Replace(b, []byte(`"exported_by":"test"`), []byte(`"exported_by":"mallory"`), 1))
	}), forgerKey, nil)
	badProof := []byte(`{"type":"runproof.manifest-proof.v1"}`)
	cases := []struct {
		name string
		zip  []byte
		key  string // default z.pub
		want string // in the error line
	}{
		{"byte of manifest.json", rewrite(t, good, flipMiddle("manifest.json")), "", "manifest.json or manifest.sig was changed"},
		{"manifest.json no longer JSON", rewrite(t, good, func(name string, data []byte) []byte {
			if name == "manifest.json" {
				return append(data, '}')
			}
			return data
		}), "", "manifest.sig: the signature does not verify with key ed25519:"},
		{"manifest.json naming another key", rewrite(t, good, func(name string, data []byte) []byte {
			if name == "manifest.json" {
				return regexp.MustCompile(`"key_id":"ed25519:\w+"`).ReplaceAll(data, []byte(`"key_id":"ed25519:0000000000000000"`))
			}
			return data
		}), "", "manifest.json names key ed25519:0000000000000000, but the key given is ed25519:"},
		{"byte of manifest.sig", rewrite(t, good, flipMiddle("manifest.sig")), "", "manifest.sig: the signature does not verify"},
		{"byte of SHA256SUMS", rewrite(t, good, flipMiddle("SHA256SUMS")), "", "SHA256SUMS: "},
		{"byte of bundle.json", rewrite(t, good, flipMiddle("bundle.json")), "", "bundle.json: sha256 "},
		{"byte of steps.csv", rewrite(t, good, flipMiddle("steps.csv")), "", "steps.csv: sha256 "},
		{"byte of report.pdf", rewrite(t, good, flipMiddle("report.pdf")), "", "report.pdf: sha256 "},
		{"byte of proof.json", rewrite(t, good, flipMiddle("proof.json")), "", "for proof.json, whose sha256 is"},
		{"proof.json of another export, with its SHA256SUMS line", rewrite(t, good, func(name string, data []byte) []byte {
			switch name {
			case "proof.json":
				return member(t, other, "proof.json")
			case "SHA256SUMS":
				return bytes.Replace(data, []byte(fmt.Sprintf("%x", sha256.Sum256(member(t, good, "proof.json")))),
					[]byte(fmt.Sprintf("%x", sha256.Sum256(member(t, other, "proof.json")))), 1)
			}
			return data
		}), "", "proof.json: "},
		{"no manifest.sig", rewrite(t, good, dropping("manifest.sig")), "", "members: manifest.sig is missing"},
		{"no bundle.json", rewrite(t, good, dropping("bundle.json")), "", "members: bundle.json is missing"},
		{"no steps.csv", rewrite(t, good, dropping("steps.csv")), "", "members: steps.csv is missing"},
		{"no report.pdf", rewrite(t, good, dropping("report.pdf")), "", "members: report.pdf is missing"},
		{"no SHA256SUMS", rewrite(t, good, dropping("SHA256SUMS")), "", "members: SHA256SUMS is missing"},
		{"no proof.json", rewrite(t, good, dropping("proof.json")), "", "SHA256SUMS: proof.json is listed, but the ZIP has none: it was taken out"},
		{"no proof.json, nor its line in SHA256SUMS", rewrite(t, good, withoutProof), "", "proof.json: proof.json is missing"},
		{"an added member", rewrite(t, good, keep, file("notes.txt", "hello")), "", `members: unexpected member "notes.txt"`},
		{"a duplicate member", rewrite(t, good, keep, file("bundle.json", "{}")), "", "members: member bundle.json appears twice"},
		{"a path out of the bundle", rewrite(t, good, keep, file("../bundle.json", "{}")), "", `member "../bundle.json" has a path leading out of the bundle`},
		{"an absolute path", rewrite(t, good, keep, file("/etc/bundle.json", "{}")), "", `member "/etc/bundle.json" has an absolute path`},
		{"a backslash", rewrite(t, good, keep, file(`x\bundle.json`, "{}")), "", "has a backslash in its name"},
		{"a directory", rewrite(t, good, keep, file("bundle/", "")), "", `member "bundle/" is a directory`},
		{"bytes before the first member", append([]byte("<script>alert(1)</script>"), good...), "",
			"members: 25 bytes before the first member belong to no member"},
		{"a member's record before the first member", withPrefixMember(t, good), "",
			`members: the member header at offset 0 is not that of "manifest.json", the next member the directory names`},
		{"a member record after a member's deflate stream", withTrailingData(t, good, "bundle.json", []byte("PK\x03\x04<script>alert(1)</script>")), "",
			"bytes after the member's deflate stream belong to nothing"},
		{"another name in a local header", withLocalName(t, good, "steps.csv", "evil.html"), "",
			`members: member "steps.csv" is named "evil.html" in its local header`},
		{"a setuid, executable mode", withHeader(t, good, "report.pdf", 0x02014b50, func(h []byte) {
			binary.LittleEndian.PutUint16(h[4:], 3<<8) // made on Unix
			binary.LittleEndian.PutUint32(h[38:], 0o104777<<16)
		}), "", `members: member "report.pdf" carries file attributes (urwxrwxrwx)`},
		{"another ZIP version in the directory", withHeader(t, good, "steps.csv", 0x02014b50, func(h []byte) { h[4] = 21 }), "",
			`members: member "steps.csv" gives ZIP versions 21 and 0`},
		{"internal file attributes", withHeader(t, good, "steps.csv", 0x02014b50, func(h []byte) { h[36] = 1 }), "",
			"members: central directory entry 5 carries internal file attributes"},
		{"another ZIP version in a local header", withHeader(t, good, "steps.csv", 0x04034b50, func(h []byte) { h[4] = 20 }), "",
			`members: the local header of member "steps.csv" differs from its directory entry`},
		{"another time in a local header's extended timestamp", withHeader(t, good, "steps.csv", 0x04034b50, func(h []byte) {
			h[30+len("steps.csv")+5]++ // the extra field's Unix time, after its id, size and flags
		}), "", `members: the local header of member "steps.csv" differs from its directory entry`},
		{"a member comment", rewrite(t, good, keep, entry{header: zip.FileHeader{Name: "notes", Comment: "<script>"}}), "",
			"members: central directory entry 8 has a comment"},
		{"bytes after the directory's entries", withDirectoryTail(t, good, []byte("<html><script>alert(1)</script></html>")), "",
			"members: 38 bytes at the end of the central directory belong to no entry"},
		{"bytes between two members", withGap(t, good, "steps.csv", []byte("<script>alert(1)</script>")), "",
			"members: bytes at offset"},
		{"a comment", withComment(t, good, "<script>alert(1)</script>"), "", "members: the ZIP has a comment of 25 bytes: a bundle has none"},
		{"a symbolic link", rewrite(t, good, dropping("report.pdf"), symlink("report.pdf", "/etc/passwd")), "",
			`members: member "report.pdf" is a symbolic link`},
		{"the signature of another ZIP", rewrite(t, good, func(name string, data []byte) []byte {
			if name == "manifest.sig" {
				return member(t, other, "manifest.sig")
			}
			return data
		}), "", "manifest.sig: the signature does not verify"},
		{"another key given", good, forgerPub, "manifest.json names key " + z.key.ID + ", but the key given is " + forgerKey.ID},
		{"steps edited, manifest and SHA256SUMS recomputed, signature kept",
			reseal(t, good, onBundle(func(b []byte) []byte { return rehash(t, editStepTokens(b)) }), z.key, member(t, good, "manifest.sig")),
			"", "manifest.sig: the signature does not verify"},
		{"a self-consistent forgery signed with another key", forged, "",
			"manifest.json names key " + forgerKey.ID + ", but the key given is " + z.key.ID},
		{"a step edited and re-signed, content_hash left", reseal(t, good, onBundle(editStepTokens), z.key, nil),
			"", "bundle.json content_hash: the bundle says"},
		{"a step edited and re-signed with its content_hash", reseal(t, good, onBundle(func(b []byte) []byte { return rehash(t, editStepTokens(b)) }), z.key, nil),
			"", "bundle.json steps: steps[3]: tokens"},
		{"a CSV row edited and re-signed", reseal(t, good, func(name string, data []byte) []byte {
			if name == "steps.csv" {
				lines := bytes.Split(data, []byte("\n"))
				lines[4] = bytes.Replace(lines[4], []byte(",ok,"), []byte(",warning,"), 1)
				return bytes.Join(lines, []byte("\n"))
			}
			return data
		}, z.key, nil), "", "steps.csv rows: line 5: status is warning, bundle.json has ok (step_index 3)"},
		{"a total edited and re-signed", reseal(t, good, onBundle(func(b []byte) []byte {
			return rehash(t, regexp.MustCompile(`"total_tokens":\d`).ReplaceAll(b, []byte(`"total_tokens":9`)))
		}), z.key, nil), "", "bundle.json totals: its steps' tokens add up to"},
		{"a debrief's cost edited and re-signed", reseal(t, debrief, onBundle(func(b []byte) []byte {
			return rehash(t, regexp.MustCompile(`"cost_incurred_cents":\d+`).ReplaceAll(b, []byte(`"cost_incurred_cents":5`)))
		}), z.key, nil), "", "steps.csv rows: its rows cost 241.1018 cents up to the inflection, which is not bundle.json's cost_incurred_cents 5"},
		{"not canonical, re-signed", reseal(t, good, onBundle(func(b []byte) []byte { return append(bytes.Clone(b), '\n') }), z.key, nil),
			"", "bundle.json form: it is not in canonical (RFC 8785) form"},
		{"a proof that does not hold", rewrite(t, good, func(name string, data []byte) []byte {
			switch name {
			case "proof.json":
				return badProof
			case "SHA256SUMS":
				return bytes.Replace(data, []byte(fmt.Sprintf("%x", sha256.Sum256(member(t, good, "proof.json")))),
					[]byte(fmt.Sprintf("%x", sha256.Sum256(badProof))), 1)
			}
			return data
		}), "", "proof.json: "},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			key := c.key
			if key == "" {
				key = z.pub
			}
			path := z.write(t, strings.ReplaceAll(c.name, " ", "_")+".zip", c.zip)
			r := runCLI(t, "", "verify", path, "--key", key)
			wantError(t, r, 1, c.want)
			if !strings.Contains(r.stderr, path+" does not verify") {
				t.Errorf("stderr does not name the file: %q", r.stderr)
			}
			if lines := strings.Split(strings.TrimSpace(r.stdout), "\n"); !strings.HasPrefix(lines[len(lines)-1], "FAIL ") ||
				strings.Count(r.stdout, "FAIL ") != 1 || strings.Contains(r.stdout, "VERIFIED") {
				t.Errorf("stdout does not end with its one FAIL line:\n%s", r.stdout)
			}
		})
	}

	// The forgery is self-consistent but for the ledger proof a forger would
	// need a ledger of their own to make: all else passes, without a key or
	// with the forger's.
	for _, key := range [][]string{nil, {"--key", forgerPub}} {
		r = runCLI(t, "", append([]string{"verify", z.write(t, "forged.zip", forged)}, key...)...)
		if r.code != 1 || !strings.HasSuffix(strings.TrimSpace(r.stdout), "FAIL proof.json: proof.json is missing: "+
			"a runproof ZIP carries the ledger proof of its manifest, without which nothing shows the export was recorded "+
			"(one made before runproof kept an export ledger has none, and passes with --without-proof)") {
			t.Errorf("the forgery, %v: exit %d\n%s%s", key, r.code, r.stdout, r.stderr)
		}
	}

	// A ZIP made before runproof kept an export ledger, without proof.json,
	// passes with --without-proof, which says what was not shown; a ZIP
	// with proof.json has it checked all the same.
	noProof := z.write(t, "no-proof.zip", rewrite(t, good, withoutProof))
	r = runCLI(t, "", "verify", noProof, "--key", z.pub, "--without-proof")
	if r.code != 0 || !strings.Contains(r.stdout, "warn proof.json: absent: nothing in the ZIP shows the export was recorded") ||
		!strings.Contains(r.stdout, "\nVERIFIED: ") || !strings.Contains(r.stdout, "\n  but not checked: proof.json: absent") {
		t.Errorf("without proof.json, --without-proof: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// The flag gives up the one check a forger without a ledger cannot
	// pass: then only the key tells the forgery, which is not VERIFIED
	// without it.
	r = runCLI(t, "", "verify", z.write(t, "forged2.zip", forged), "--without-proof")
	if r.code != 3 || !strings.Contains(r.stdout, "warn proof.json: absent") || !strings.Contains(r.stdout, "\nUNVERIFIED: ") {
		t.Errorf("the forgery, --without-proof: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// withoutProof drops proof.json and its line in SHA256SUMS: a ZIP as runproof
// made them before it kept an export ledger.
func withoutProof(name string, data []byte) []byte {
	switch name {
	case "proof.json":
		return nil
	case "SHA256SUMS":
		return regexp.MustCompile(`(?m)^.*  proof\.json\n`).ReplaceAll(data, nil)
	}
	return data
}

func dropping(name string) func(string, []byte) []byte {
	return func(n string, data []byte) []byte {
		if n == name {
			return nil
		}
		return data
	}
}

func onBundle(edit func([]byte) []byte) func(string, []byte) []byte {
	return func(name string, data []byte) []byte {
		if name == bundlezip.BundleName {
			return edit(data)
		}
		return data
	}
}

// withPrefixMember returns the ZIP z with a whole stored member record
// before its first member, which its directory does not name: a reader
// that walks the headers sees one more member than the directory.
func withPrefixMember(t *testing.T, z []byte) []byte {
	t.Helper()
	var prefix bytes.Buffer
	pw := zip.NewWriter(&prefix)
	w, err := pw.CreateHeader(&zip.FileHeader{Name: "evil.html", Method: zip.Store})
	if err == nil {
		_, err = w.Write([]byte("<script>alert(1)</script>"))
	}
	if err == nil {
		err = pw.Flush()
	}
	if err != nil {
		t.Fatal(err)
	}
	zr := zipReader(t, z)
	out := bytes.NewBuffer(bytes.Clone(prefix.Bytes()))
	zw := zip.NewWriter(out)
	zw.SetOffset(int64(prefix.Len()))
	for _, f := range zr.File {
		if err := zw.Copy(f); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// withGap returns the ZIP z with junk just before the member called name,
// and its central directory moved to match: every offset past it shifted.
func withGap(t *testing.T, z []byte, name string, junk []byte) []byte {
	t.Helper()
	end := len(z) - 22 // the end record; z has no comment
	dir := int(binary.LittleEndian.Uint32(z[end+16:]))
	type entry struct{ at, offset int } // where a directory entry is, and the offset it records
	var entries []entry
	at := -1
	for p := dir; binary.LittleEndian.Uint32(z[p:]) == 0x02014b50; {
		n := int(binary.LittleEndian.Uint16(z[p+28:]))
		e := entry{p, int(binary.LittleEndian.Uint32(z[p+42:]))}
		if string(z[p+46:p+46+n]) == name {
			at = e.offset
		}
		entries = append(entries, e)
		p += 46 + n + int(binary.LittleEndian.Uint16(z[p+30:])) + int(binary.LittleEndian.Uint16(z[p+32:]))
	}
	if at < 0 {
		t.Fatalf("no member %s", name)
	}
	out := slices.Concat(z[:at], junk, z[at:])
	moved := func(p int) int { return p + len(junk) } // everything from at on
	for _, e := range entries {
		if e.offset >= at {
			binary.LittleEndian.PutUint32(out[moved(e.at)+42:], uint32(e.offset+len(junk)))
		}
	}
	binary.LittleEndian.PutUint32(out[moved(end)+16:], uint32(moved(dir)))
	return out
}

// withTrailingData returns the ZIP z with junk after the deflate stream
// of the member called name, counted in its sizes in both its headers.
func withTrailingData(t *testing.T, z []byte, name string, junk []byte) []byte {
	t.Helper()
	zr := zipReader(t, z)
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, f := range zr.File {
		raw, err := f.OpenRaw()
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(raw)
		if err != nil {
			t.Fatal(err)
		}
		h := f.FileHeader
		if f.Name == name {
			if f.Method != zip.Deflate {
				t.Fatalf("%s is not deflated", name)
			}
			data = append(data, junk...)
			h.CompressedSize64 += uint64(len(junk))
		}
		w, err := zw.CreateRaw(&h)
		if err == nil {
			_, err = w.Write(data)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// withLocalName returns the ZIP z with the local header of the member
// called name naming it other (of the same length) instead.
func withLocalName(t *testing.T, z []byte, name, other string) []byte {
	t.Helper()
	out := bytes.Clone(z)
	i := bytes.Index(out, []byte(name))
	for i >= 0 && (i < 30 || binary.LittleEndian.Uint32(out[i-30:]) != 0x04034b50) {
		j := bytes.Index(out[i+1:], []byte(name))
		if j < 0 {
			t.Fatalf("no local header of %s", name)
		}
		i += 1 + j
	}
	copy(out[i:], other)
	return out
}

// withHeader returns the ZIP z with the header of signature sig (a local
// header, 0x04034b50, or a central directory entry, 0x02014b50) of the
// member called name changed by edit.
func withHeader(t *testing.T, z []byte, name string, sig uint32, edit func(h []byte)) []byte {
	t.Helper()
	out := bytes.Clone(z)
	nameLenAt, nameAt := 26, 30 // in a local header
	if sig == 0x02014b50 {
		nameLenAt, nameAt = 28, 46
	}
	le := binary.LittleEndian
	for i := 0; i+nameAt+len(name) <= len(out); i++ {
		if le.Uint32(out[i:]) == sig && int(le.Uint16(out[i+nameLenAt:])) == len(name) && string(out[i+nameAt:i+nameAt+len(name)]) == name {
			edit(out[i:])
			return out
		}
	}
	t.Fatalf("no header of %s", name)
	return nil
}

// withDirectoryTail returns the ZIP z with junk after the entries of its
// central directory, counted in the directory's size.
func withDirectoryTail(t *testing.T, z []byte, junk []byte) []byte {
	t.Helper()
	end := len(z) - 22 // the end record; z has no comment
	out := slices.Concat(z[:end], junk, z[end:])
	size := out[len(out)-22+12:]
	binary.LittleEndian.PutUint32(size, binary.LittleEndian.Uint32(size)+uint32(len(junk)))
	return out
}

// withComment returns the ZIP z with the comment c.
func withComment(t *testing.T, z []byte, c string) []byte {
	t.Helper()
	zr := zipReader(t, z)
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, f := range zr.File {
		if err := zw.Copy(f); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.SetComment(c); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func file(name, data string) entry {
	return entry{header: zip.FileHeader{Name: name, Method: zip.Deflate}, data: data}
}

func symlink(name, target string) entry {
	e := file(name, target)
	e.header.SetMode(fs.ModeSymlink | 0o777)
	return e
}

// TestVerifyUsage: the command's own errors, each one line.
func TestVerifyUsage(t *testing.T) {
	z := newSignedZIPs(t)
	good := z.write(t, "good.zip", z.export(t, runproof.BundleSOC2))
	notZIP := z.write(t, "bundle.json", []byte(`{}`))
	priv := z.write(t, "key.pem", []byte("-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n"))

	wantError(t, runCLI(t, "", "verify"), 2, "verify: give one FILE.zip")
	wantError(t, runCLI(t, "", "verify", good, good), 2, "verify: give one FILE.zip")
	wantError(t, runCLI(t, "", "verify", filepath.Join(z.dir, "missing.zip")), 1, "missing.zip: no such file")
	wantError(t, runCLI(t, "", "verify", notZIP), 1, "members: not a ZIP archive")
	wantError(t, runCLI(t, "", "verify", z.dir), 1, "is a directory, not a ZIP file")
	wantError(t, runCLI(t, "", "verify", good, "--key", filepath.Join(z.dir, "nokey.pem")), 1, "--key "+filepath.Join(z.dir, "nokey.pem")+": no such file")
	wantError(t, runCLI(t, "", "verify", good, "--key", notZIP), 1, `not a PEM "PUBLIC KEY" file`)
	wantError(t, runCLI(t, "", "verify", good, "--key", priv), 1, "is a private key: give its public key (openssl pkey -in")

	// Ctrl-C stops the check, which then says it is not done.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var stdout, stderr bytes.Buffer
	code := cli.Main(ctx, []string{"verify", good, "--key", z.pub}, strings.NewReader(""), &stdout, &stderr)
	wantError(t, result{code, stdout.String(), stderr.String()}, 1, "interrupted before every check was done: not verified")
	if stdout.Len() > 0 {
		t.Errorf("checks went on, or failed, after Ctrl-C:\n%s", stdout.String())
	}

	r := runCLI(t, "", "verify", good)
	want := "warn manifest.sig: signature not verified: no --key given (manifest names key " + z.key.ID + ")"
	if r.code != 3 || !strings.Contains(r.stdout, want) || !strings.Contains(r.stdout, "\nUNVERIFIED: ") ||
		r.stderr != "runproof: verify: "+good+" is not verified: without --key its signature was not checked, and anyone could have made a bundle that passes the other checks\n" {
		t.Errorf("without --key: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, "", "verify", "-h")
	for _, s := range []string{`jq -r '.files[] | "\(.sha256)  \(.name)"' manifest.json | sha256sum -c`, "openssl pkeyutl -verify -pubin -inkey ../pub.pem -rawin -in manifest.json -sigfile manifest.sig", "zipinfo -1 evidence.zip | sort | uniq -d",
		"UNVERIFIED", "Exit status"} {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("help lacks %q", s)
		}
	}
}

// TestSchema1BundlesVerify: ZIPs of bundle schema version 1, as `runproof
// demo` made them (testdata/schema1), keep verifying, their ledger proofs
// too. A bundle handed to an auditor must verify with every later
// runproof: a change to how bundles are written that fails here needs a
// new schema version, which verify reads alongside this one.
func TestSchema1BundlesVerify(t *testing.T) {
	dir := filepath.Join("testdata", "schema1")
	for _, name := range []string{"evidence.zip", "soc2.zip", "executive-debrief.zip"} {
		r := runCLI(t, "", "verify", filepath.Join(dir, name), "--key", filepath.Join(dir, "signing-key.pub.pem"))
		if r.code != 0 || strings.Contains(r.stdout, "warn") || !strings.Contains(r.stdout, "ok   proof.json") {
			t.Errorf("%s: code %d\n%s%s", name, r.code, r.stdout, r.stderr)
		}
	}
}

// TestVerifySaysStepsLeftOut: a ZIP whose export left the steps out
// verifies, and says so beside "complete and unchanged".
func TestVerifySaysStepsLeftOut(t *testing.T) {
	dir := t.TempDir()
	data, out := filepath.Join(dir, "data"), filepath.Join(dir, "out")
	if r := runCLI(t, "", "demo", "--data", data, "--out", out); r.code != 0 {
		t.Fatalf("demo: %d %s", r.code, r.stderr)
	}
	zip := filepath.Join(dir, "no-steps.zip")
	if r := runCLI(t, "", "export", "--tenant", "demo", "--run", "demo-run-014", "--format", "zip", "--no-steps", "-o", zip, "--data", data); r.code != 0 {
		t.Fatalf("export: %d %s", r.code, r.stderr)
	}
	r := runCLI(t, "", "verify", zip, "--key", filepath.Join(out, "signing-key.pub.pem"))
	if r.code != 0 || !strings.Contains(r.stdout, "\nVERIFIED: ") || !strings.Contains(r.stdout, "\n  but its export left out 7 of the run's 7 steps (their totals are in)\n") ||
		!strings.Contains(r.stdout, "ok   steps.csv rows: no rows: the export left out the run's 7 steps") {
		t.Errorf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

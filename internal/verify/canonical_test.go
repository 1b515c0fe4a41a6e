package verify

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"unicode/utf16"

	"github.com/runproof/runproof/internal/evidence/evidencetest"
	"github.com/runproof/runproof/internal/runproof"
)

// goldenBundles are the bundles of the evidence and export golden files.
func goldenBundles(t *testing.T) map[string][]byte {
	t.Helper()
	var names []string
	for _, dir := range []string{"../evidence/testdata", "../export/testdata"} {
		m, err := filepath.Glob(filepath.Join(dir, "*.json"))
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, m...)
	}
	if len(names) < 10 {
		t.Fatalf("found only %d golden bundles", len(names))
	}
	out := map[string][]byte{}
	for _, name := range names {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		out[name] = b
	}
	return out
}

// referenceDigest is the content_hash recipe of docs/bundles.md, done with
// the canonicalizer: parse, drop the members, canonicalize, hash.
func referenceDigest(t *testing.T, b []byte, drop ...string) string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, name := range drop {
		delete(m, name)
	}
	d, err := runproof.Digest(m)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestStreamingHashMatchesVerifyContentHash checks the streaming
// content_hash (and a SOC 2 bundle's evidence_digest) against
// evidencetest.VerifyContentHash and the canonicalizer on every golden bundle,
// and on each with a value changed.
func TestStreamingHashMatchesVerifyContentHash(t *testing.T) {
	for name, b := range goldenBundles(t) {
		t.Run(filepath.Base(name), func(t *testing.T) {
			if err := evidencetest.VerifyContentHash(b); err != nil {
				t.Fatalf("golden file: %v", err)
			}
			f, err := scanBundle(bytes.NewReader(b), nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := f.gotContentHash.String(); got != f.contentHash || got != referenceDigest(t, b, "content_hash") {
				t.Errorf("streaming content_hash %s, bundle says %s", got, f.contentHash)
			}
			if f.bundleType == "soc2" {
				if err := evidencetest.VerifyEvidenceDigest(b); err != nil {
					t.Fatal(err)
				}
				drop := append([]string{"content_hash"}, keys(soc2Members)...)
				if got := f.gotEvidenceDigest.String(); got != f.evidenceDigest || got != referenceDigest(t, b, drop...) {
					t.Errorf("streaming evidence_digest %s, bundle says %s", got, f.evidenceDigest)
				}
			}
			if f.stepProblem != "" {
				t.Errorf("step problem: %s", f.stepProblem)
			}
			// A changed value: both recipes agree on the new digest, which is
			// no longer the one written.
			changed := bytes.Replace(b, []byte(`"exported_by":"`), []byte(`"exported_by":"X`), 1)
			if bytes.Equal(changed, b) {
				changed = bytes.Replace(b, []byte(`"prepared_by":"`), []byte(`"prepared_by":"X`), 1)
			}
			f, err = scanBundle(bytes.NewReader(changed), nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := f.gotContentHash.String(); got == f.contentHash || got != referenceDigest(t, changed, "content_hash") {
				t.Errorf("changed bundle: streaming content_hash %s, reference %s", got, referenceDigest(t, changed, "content_hash"))
			}
			if evidencetest.VerifyContentHash(changed) == nil {
				t.Error("VerifyContentHash accepts the changed bundle")
			}
		})
	}
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestNotCanonical: JSON with the same content as a golden bundle but not
// in canonical form is refused, even though its content_hash holds.
func TestNotCanonical(t *testing.T) {
	b, err := os.ReadFile("../export/testdata/evidence.json")
	if err != nil {
		t.Fatal(err)
	}
	for name, edit := range map[string]func([]byte) []byte{
		"trailing newline":  func(b []byte) []byte { return append(slices.Clone(b), '\n') },
		"trailing NUL":      func(b []byte) []byte { return append(slices.Clone(b), 0, '{') },
		"space after colon": func(b []byte) []byte { return bytes.Replace(b, []byte(`"run_id":`), []byte(`"run_id": `), 1) },
		"escaped letter": func(b []byte) []byte {
			return bytes.Replace(b, []byte(`"bundle_type":"evidence"`), []byte(`"bundle_type":"\u0065vidence"`), 1)
		},
		"escaped slash": func(b []byte) []byte { return bytes.Replace(b, []byte(`"llm:gpt-4o"`), []byte(`"llm:gpt\/4o"`), 1) },
		"number 1.0": func(b []byte) []byte {
			return bytes.Replace(b, []byte(`"schema_version":1`), []byte(`"schema_version":1.0`), 1)
		},
		"number 1e0": func(b []byte) []byte {
			return bytes.Replace(b, []byte(`"schema_version":1`), []byte(`"schema_version":1e0`), 1)
		},
		"members swapped": func(b []byte) []byte {
			b = bytes.Replace(b, []byte(`"agent_id":"research-agent",`), nil, 1)
			return bytes.Replace(b, []byte(`"bundle_type":"evidence",`), []byte(`"bundle_type":"evidence","agent_id":"research-agent",`), 1)
		},
		"duplicate member": func(b []byte) []byte {
			return bytes.Replace(b, []byte(`"run_id":`), []byte(`"run_id":"x","run_id":`), 1)
		},
	} {
		t.Run(name, func(t *testing.T) {
			edited := edit(b)
			if bytes.Equal(edited, b) {
				t.Fatal("the edit changed nothing")
			}
			f, err := scanBundle(bytes.NewReader(edited), nil)
			var fe *formError
			if errors.As(err, &fe) {
				return
			}
			t.Errorf("accepted (facts %+v, err %v)", f, err)
		})
	}
}

// TestCanonicalTokens checks the token checks against the canonicalizer.
func TestCanonicalTokens(t *testing.T) {
	for _, tok := range []string{
		`0`, `-0`, `1`, `-1`, `1.0`, `1.5`, `0.1`, `1e21`, `1e+21`, `1e20`, `100000000000000000000`, `1e-6`, `0.000001`,
		`1e-7`, `1E-7`, `0.0000001`, `123456789012345`, `1234567890123456`, `12345678901234567890`, `9007199254740993`,
		`0.30000000000000004`, `5e-324`, `1.7976931348623157e308`, `2.5e-7`, `1e400`,
		`812.5`, `0.25`, `-0.5`, `0.10`, `-0.0`, `0.0`, `10.0`, `0.000001`, `0.0000010`, `0.00000123`, `-0.000001`, `0.000012`,
		`12345678901234.5`, `123456789012345.6`, `0.123456789012345`, `0.1234567890123456`, `0.000001234567890123`,
		`9007199254740993.5`, `1.000000000000001`, `1.0000000000000001`,
		`""`, `"a"`, `"\""`, `"\\"`, `"\/"`, `"/"`, `"\n"`, `"\u000a"`, `"\u001f"`, `"\u001F"`, `"\u0000"`, `"\u007f"`,
		"\"\u007f\"", `"é"`, `"\u00e9"`, `"\b\f\n\r\t"`, `"\u0008"`, "\"\u2028\"", `"\u2028"`, `"😀"`, `"\ud83d\ude00"`,
	} {
		canon, err := runproof.CanonicalJSON([]byte(tok))
		if err != nil {
			continue // not one value the canonicalizer takes (1e400)
		}
		want := bytes.Equal(canon, []byte(tok))
		if got := tokenCanonical([]byte(tok)); got != want {
			t.Errorf("%s: canonical %v, the canonicalizer says %v (%s)", tok, got, want, canon)
		}
	}
}

func tokenCanonical(tok []byte) bool {
	var scratch []byte
	if tok[0] == '"' {
		return canonicalString(tok)
	}
	return canonicalNumber(tok, &scratch)
}

// FuzzCanonicalTokens compares the token checks with the canonicalizer on
// any number or string.
func FuzzCanonicalTokens(f *testing.F) {
	for _, s := range []string{`1.5`, `1e-7`, `"\u001f"`, `"a\/b"`, `-0`, `0.000001`, `812.5`, `0.0000010`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		canon, err := runproof.CanonicalJSON([]byte(tok))
		// One string or number token, as the decoder hands it over.
		if err != nil || len(tok) == 0 || strings.Trim(tok, " \t\r\n") != tok ||
			!(tok[0] == '"' || tok[0] == '-' || tok[0] >= '0' && tok[0] <= '9') {
			return
		}
		if got, want := tokenCanonical([]byte(tok)), bytes.Equal(canon, []byte(tok)); got != want {
			t.Errorf("%s: canonical %v, the canonicalizer says %v (%s)", tok, got, want, canon)
		}
	})
}

func TestLessUTF16(t *testing.T) {
	words := []string{"", "a", "ab", "b", "\u00e9", "\uff61", "\U0001f600", "\U0001f601", "\ue000", "z", "\u007f",
		"a\ue000", "a\U0001f600", "a\u00e9b", "a\u00e9"}
	for _, a := range words {
		for _, b := range words {
			ua, ub := utf16.Encode([]rune(a)), utf16.Encode([]rune(b))
			if got, want := lessUTF16([]byte(a), []byte(b)), slices.Compare(ua, ub) < 0; got != want {
				t.Errorf("lessUTF16(%q, %q) = %v, want %v", a, b, got, want)
			}
		}
	}
}

func TestFixed(t *testing.T) {
	for _, s := range []string{"0", "1", "0.5", "0.9828", "241.1018", "0.000001", "0.0000005", "0.0000004", "1e-6",
		"2.5e2", "123456789012345", "9007199254.740992", "9007199254.740993", "1.", ".5", "-1", "abc", "01"} {
		want, werr := runproof.ParseFixed(s, runproof.MicrocentsPerCent)
		got, gerr := fixed([]byte(s), runproof.MicrocentsPerCent)
		if got != want || (werr == nil) != (gerr == nil) {
			t.Errorf("fixed(%q) = %d, %v; ParseFixed gives %d, %v", s, got, gerr, want, werr)
		}
	}
}

// TestCSVReader reads what encoding/csv writes, record for record.
func TestCSVReader(t *testing.T) {
	records := [][]string{{"a", "b", ""}, {"x,y", `say "hi"`, "two\nlines"}, {"\r", " lead", "tail "}, {`""`, "", ","}}
	checkCSV(t, records)
	checkCSV(t, nil)
}

func FuzzCSVReader(f *testing.F) {
	f.Add("a", "b,c", "d\"e")
	f.Add("", "\n", "\r\n")
	f.Fuzz(func(t *testing.T, a, b, c string) {
		checkCSV(t, [][]string{{a, b, c}, {c, a, b}})
	})
}

func checkCSV(t *testing.T, records [][]string) {
	t.Helper()
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	if err := w.WriteAll(records); err != nil {
		t.Fatal(err)
	}
	r := newCSVReader(strings.NewReader(buf.String()))
	for i, want := range records {
		if err := r.read(); err != nil {
			t.Fatalf("record %d: %v (file %q)", i, err, buf.String())
		}
		got := make([]string, len(r.ends))
		for j := range got {
			got[j] = string(r.field(j))
		}
		if !slices.Equal(got, want) {
			t.Fatalf("record %d is %q, want %q (file %q)", i, got, want, buf.String())
		}
	}
	if err := r.read(); err != io.EOF {
		t.Fatalf("after the last record: %v", err)
	}
}

// TestGoldenSteps reads the golden steps CSV files and checks them against
// the steps of the bundle they were written from.
func TestGoldenSteps(t *testing.T) {
	for _, name := range []string{"cost", "denied", "token"} {
		b, err := os.ReadFile("../evidence/testdata/" + name + ".evidence.json")
		if err != nil {
			t.Fatal(err)
		}
		c, err := os.ReadFile("../evidence/testdata/" + name + ".evidence.csv")
		if err != nil {
			t.Fatal(err)
		}
		f, err := scanBundle(bytes.NewReader(b), nil)
		if err != nil {
			t.Fatal(err)
		}
		rows, err := scanSteps(bytes.NewReader(c))
		if err != nil {
			t.Fatal(err)
		}
		if rows.rows != f.steps || rows.rows == 0 || !bytes.Equal(rows.digest, f.rows) {
			t.Errorf("%s: %d rows and %d steps, digests equal %v", name, rows.rows, f.steps, bytes.Equal(rows.digest, f.rows))
		}
	}
}

// TestScanInPieces reads every golden bundle through readers that hand
// over a byte, or a few, at a time: tokens cut by the buffer's refills
// read as whole ones do, and every digest is the same.
func TestScanInPieces(t *testing.T) {
	for name, b := range goldenBundles(t) {
		whole, err := scanBundle(bytes.NewReader(b), nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, r := range []io.Reader{iotest.OneByteReader(bytes.NewReader(b)), iotest.HalfReader(bytes.NewReader(b)),
			&choppy{b: b, rnd: rand.New(rand.NewPCG(1, uint64(len(b))))}} {
			got, err := scanBundle(r, nil)
			if err != nil {
				t.Fatalf("%s through %T: %v", name, r, err)
			}
			if !reflect.DeepEqual(got, whole) {
				t.Errorf("%s through %T: %+v, read whole %+v", name, r, got, whole)
			}
		}
	}
}

// choppy hands b over in pieces of random sizes, some of them empty.
type choppy struct {
	b   []byte
	rnd *rand.Rand
}

func (c *choppy) Read(p []byte) (int, error) {
	if len(c.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), c.rnd.IntN(7))], c.b)
	c.b = c.b[n:]
	return n, nil
}

// FuzzScanBundle: whatever bundle.json holds, the scanner accepts it only
// when it is canonical JSON (the canonicalizer gives it back unchanged),
// its content_hash is then the one the reference recipe gives, and reading
// it a byte at a time changes nothing.
func FuzzScanBundle(f *testing.F) {
	step := `{"content":{"prompt":"Summarise"},"content_digest":"sha256:1e","content_hash":"sha256:2f","cost_cents":0.25,` +
		`"duration_ms":812.5,"input_tokens":120,"is_inflection":false,"output_tokens":40,"status":"ok","step_index":0,` +
		`"step_type":"llm:gpt-4o","timestamp":"2026-01-01T00:00:00Z","tokens":160}`
	for _, seed := range []string{`{"bundle_type":"evidence","content_hash":"sha256:00","steps":[` + step + `],"total_steps":1}`,
		`{"bundle_type":"soc2","content_hash":"sha256:00","criteria_covered":["CC7.2"],"evidence_digest":"x","run_id":"r"}`, `{}`, `{"a":[1,2.5,"x\u001f\n",true,null,{"b":{}}],"content_hash":"sha256:00"}`,
		`{"steps":[{"content":{"x":"\u00e9"},"cost_cents":1}]}`, `{"a":1e21}`, `{"a":"\u0041"}`, `{"a" :1}`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		whole, err := scanBundle(bytes.NewReader(b), nil)
		bytewise, err2 := scanBundle(iotest.OneByteReader(bytes.NewReader(b)), nil)
		if fmt.Sprint(err) != fmt.Sprint(err2) || err == nil && !reflect.DeepEqual(whole, bytewise) {
			t.Fatalf("read whole: %v, %+v; a byte at a time: %v, %+v", err, whole, err2, bytewise)
		}
		if err != nil {
			var fe *formError
			if !errors.As(err, &fe) {
				t.Fatalf("not a form error: %v", err)
			}
			return
		}
		canon, cerr := runproof.CanonicalJSON(b)
		if cerr != nil || !bytes.Equal(canon, b) {
			t.Fatalf("accepted %q, which is not canonical (%q, %v)", b, canon, cerr)
		}
		if got, want := whole.gotContentHash.String(), referenceDigest(t, b, "content_hash"); got != want {
			t.Fatalf("%q: content_hash %s, the reference %s", b, got, want)
		}
	})
}

// TestScanReadError: when reading bundle.json fails, the scanner says so,
// wherever the document was cut, rather than finding fault with the JSON.
func TestScanReadError(t *testing.T) {
	errRead := errors.New("the disk is on fire")
	for _, prefix := range []string{``, `{`, `{"steps":`, `{"policy_context":`, `{"steps":[`, `{"a":"\u00`, `{"a":"\`,
		`{"a":1.0`, `{"a":1e2`, `{"a":tr`, `{"a":"x`, `{"a":1}`} {
		_, err := scanBundle(iotest.DataErrReader(&failing{data: []byte(prefix), err: errRead}), nil)
		if !errors.Is(err, errRead) {
			t.Errorf("%q then a read error: %v", prefix, err)
		}
	}
	for _, doc := range []string{`{"a":"\u00`, `{"a":"\`} {
		_, err := scanBundle(strings.NewReader(doc), nil)
		if err == nil || !strings.Contains(err.Error(), "a string does not end") {
			t.Errorf("%q: %v", doc, err)
		}
	}
}

// failing reads data, then fails with err.
type failing struct {
	data []byte
	err  error
}

func (f *failing) Read(p []byte) (int, error) {
	if len(f.data) == 0 {
		return 0, f.err
	}
	n := copy(p, f.data)
	f.data = f.data[n:]
	return n, nil
}

// An escape JSON does not allow is named as invalid; one JSON allows but
// RFC 8785 would write otherwise is named as not canonical.
func TestScanEscapes(t *testing.T) {
	for doc, want := range map[string]string{
		`{"a":"\q"}`:     "invalid escape",
		`{"a":"\u00zz"}`: "invalid escape",
		`{"a":"\/"}`:     "RFC 8785",
		`{"a":"\u0041"}`: "RFC 8785",
		`{"steps": []}`:  "whitespace",
		`{"steps":[ {`:   "whitespace",
	} {
		_, err := scanBundle(strings.NewReader(doc), nil)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", doc, err, want)
		}
	}
}

// TestDeepNestingMessage: a bundle nested too deep is named as such, in a
// message of bounded length.
func TestDeepNestingMessage(t *testing.T) {
	deep := strings.Repeat(`{"a":`, maxDepth+10) + "1" + strings.Repeat("}", maxDepth+10)
	_, err := scanBundle(strings.NewReader(deep), nil)
	if err == nil || !strings.Contains(err.Error(), "nested more than") || len(err.Error()) > 400 {
		t.Fatalf("%d bytes: %.400v", len(fmt.Sprint(err)), err)
	}
}

// endless reads prefix, then fill over and over, for ever.
type endless struct {
	prefix []byte
	fill   []byte
	at     int // in fill
}

func (e *endless) Read(p []byte) (int, error) {
	n := copy(p, e.prefix)
	e.prefix = e.prefix[n:]
	for i := n; i < len(p); i++ {
		p[i] = e.fill[e.at]
		e.at = (e.at + 1) % len(e.fill)
	}
	return len(p), nil
}

// A value or a record without end (a small ZIP can inflate to gigabytes
// of one) is refused once it is longer than any runproof writes, rather
// than held.
func TestEndlessTokens(t *testing.T) {
	for _, c := range []struct{ prefix, fill string }{{`{"a":"`, "a"}, {`{"a":-0.1`, "1"}} {
		_, err := scanBundle(&endless{prefix: []byte(c.prefix), fill: []byte(c.fill)}, nil)
		if err == nil || !strings.Contains(err.Error(), "a value longer than 33554432 bytes") {
			t.Errorf("%q then endless %s: %v", c.prefix, c.fill, err)
		}
	}
	r := newCSVReader(&endless{prefix: []byte("a,\"b\n"), fill: []byte(strings.Repeat("a", 1023) + "\n")})
	if err := r.read(); err == nil || !strings.Contains(err.Error(), "a record longer than 4194304 bytes") {
		t.Errorf("a quoted field of endless lines: %v", err)
	}
}

package verify

import (
	"archive/zip"
	"bytes"
	"cmp"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"sync"

	"github.com/runproof/runproof/internal/bundlezip"
	"github.com/runproof/runproof/internal/evidence"
	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/signing"
)

// MaxSmallMember bounds the members read whole: manifest.json, manifest.sig,
// SHA256SUMS and proof.json. The others are streamed, whatever their size.
const MaxSmallMember = 16 << 20

// Options tune a verification.
type Options struct {
	// Key is the public key the manifest must be signed with. Without it the
	// signature is not checked, a warning line says so, and the report is
	// never Authentic.
	Key ed25519.PublicKey
	// Out receives one line per check as it completes; nil for none.
	Out io.Writer
	// CheckProof checks proof.json, the export's ledger inclusion proof,
	// against manifest.json; with it, proof.json is required. Without it a
	// proof.json is reported as present but not checked.
	CheckProof func(manifest, proof []byte) error
	// WithoutProof lets a ZIP without proof.json pass CheckProof's check,
	// with a warning line: one made before runproof kept an export ledger.
	WithoutProof bool
}

// Report is the outcome of a verification.
type Report struct {
	Lines    []string           // one per check, as written to Options.Out
	Failure  *Failure           // the first check that failed; nil when every check held
	Warnings []string           // what was not checked
	Manifest bundlezip.Manifest // as read; zero when it could not be
	// SignatureChecked is set when the signature was checked against
	// Options.Key (and held, unless Failure says otherwise).
	SignatureChecked bool
}

// OK reports whether every check held.
func (r *Report) OK() bool { return r.Failure == nil }

// Authentic reports whether every check held and the manifest's signature
// was verified with the key given.
func (r *Report) Authentic() bool { return r.Failure == nil && r.SignatureChecked }

// Failure is a check that did not hold.
type Failure struct {
	Check string // e.g. "bundle.json totals"
	File  string // the member at fault; "" for the ZIP as a whole
	Cause string
}

func (f *Failure) Error() string { return f.Check + ": " + f.Cause }

// Expected members, and whether each is required. proof.json is required
// by checkProof when the caller checks ledger proofs.
var members = map[string]bool{bundlezip.ManifestName: true, bundlezip.SignatureName: true, bundlezip.SumsName: true,
	bundlezip.BundleName: true, bundlezip.StepsName: true, bundlezip.ReportName: true, bundlezip.ProofName: false}

// memberOrder is the order in which bundlezip writes them.
var memberOrder = []string{bundlezip.ManifestName, bundlezip.SignatureName, bundlezip.SumsName,
	bundlezip.BundleName, bundlezip.StepsName, bundlezip.ReportName, bundlezip.ProofName}

// maxDirectory bounds the bytes from a bundle's central directory to the
// end of the file: its entries, end records and comment, far fewer for
// a bundle's members.
const maxDirectory = 4 << 20

// streamed are the members read as streams, in the manifest's order.
var streamed = []string{bundlezip.BundleName, bundlezip.StepsName, bundlezip.ReportName}

// ZIP verifies the signed ZIP bundle of size bytes read from r: its members,
// the manifest and its signature, SHA256SUMS, then bundle.json, steps.csv
// and report.pdf streamed against the manifest and each other. It stops at
// the first check that fails. Memory stays flat whatever the bundle's size:
// only the small members (at most MaxSmallMember each) are read whole.
func ZIP(r io.ReaderAt, size int64, opts Options) *Report {
	v := &verification{opts: opts, rep: &Report{}}
	_ = v.checkMembers(r, size) && v.readManifest() && v.checkSignature() && v.checkManifest() && v.checkSums() && v.checkContents() &&
		v.checkSumsAgree() && v.checkProof()
	return v.rep
}

// verification is one run of ZIP.
type verification struct {
	opts     Options
	rep      *Report
	files    map[string]*zip.File
	manifest []byte // manifest.json as read
	proofRaw []byte // proof.json, nil when absent
	// sumsDisagree is SHA256SUMS's first line that disagrees with the
	// manifest on a streamed member, said once the member is hashed: the
	// member changed, and SHA256SUMS with it, or SHA256SUMS alone.
	sumsDisagree string
}

func (v *verification) line(s string) {
	v.rep.Lines = append(v.rep.Lines, s)
	if v.opts.Out != nil {
		fmt.Fprintln(v.opts.Out, s)
	}
}

func (v *verification) ok(check, format string, args ...any) {
	v.line("ok   " + check + ": " + fmt.Sprintf(format, args...))
}

func (v *verification) warn(check, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	v.rep.Warnings = append(v.rep.Warnings, check+": "+msg)
	v.line("warn " + check + ": " + msg)
}

// fail records the failure and returns false, to end the verification.
func (v *verification) fail(check, file, format string, args ...any) bool {
	v.rep.Failure = &Failure{Check: check, File: file, Cause: fmt.Sprintf(format, args...)}
	v.line("FAIL " + v.rep.Failure.Error())
	return false
}

// checkMembers checks that the ZIP holds the bundle's members and nothing else,
// each a plain file under a plain name, of a size it is sane to read.
func (v *verification) checkMembers(r io.ReaderAt, size int64) bool {
	const check = "members"
	// archive/zip reads every entry from where the end record puts the
	// central directory up to the first thing that is not an entry,
	// whatever count the end record gives (it compares 16 bits of it),
	// before anything can be checked: a file of millions of empty entries
	// would take minutes and gigabytes. A bundle's directory is small.
	if at, ok := directoryOffset(r, size); ok && size-at > maxDirectory {
		return v.fail(check, "", "the central directory would be read from offset %d, %d bytes before the end of the file: "+
			"a bundle's, of at most %d members, takes far less", at, size-at, len(memberOrder))
	}
	zr, err := zip.NewReader(r, size)
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) { // names are checked below
		return v.fail(check, "", "not a ZIP archive (%v)", err)
	}
	// Nothing but members (layout): bytes before, between or after them
	// (which ZIP readers tolerate) or a comment would make the file more
	// than the bundle signed.
	if zr.Comment != "" {
		return v.fail(check, "", "the ZIP has a comment of %d bytes: a bundle has none", len(zr.Comment))
	}
	if len(zr.File) > 0 {
		if why := layout(r, size, zr.File); why != "" {
			return v.fail(check, "", "%s: a bundle's file holds its members and nothing else", why)
		}
	}
	zr.RegisterDecompressor(zip.Deflate, exactInflate)
	v.files = map[string]*zip.File{}
	for _, f := range zr.File {
		name := f.Name
		switch {
		case name == "":
			return v.fail(check, name, "a member has an empty name")
		case strings.Contains(name, `\`):
			return v.fail(check, name, "member %q has a backslash in its name", name)
		case strings.HasPrefix(name, "/") || len(name) > 1 && name[1] == ':':
			return v.fail(check, name, "member %q has an absolute path", name)
		case name == ".." || strings.HasPrefix(name, "../") || strings.Contains(name, "/../") || strings.HasSuffix(name, "/.."):
			return v.fail(check, name, "member %q has a path leading out of the bundle", name)
		case strings.HasSuffix(name, "/") || f.Mode().IsDir():
			return v.fail(check, name, "member %q is a directory: a bundle holds files only", name)
		case f.Mode()&fs.ModeSymlink != 0:
			return v.fail(check, name, "member %q is a symbolic link: a bundle holds files only", name)
		case !f.Mode().IsRegular():
			return v.fail(check, name, "member %q is not a regular file (%v)", name, f.Mode().Type())
		case f.ExternalAttrs != 0: // a mode (setuid, executable…) unzip would give the file
			return v.fail(check, name, "member %q carries file attributes (%v): a bundle's members have none", name, f.Mode())
		case f.CreatorVersion != f.ReaderVersion || !slices.Contains(zipVersions, f.ReaderVersion):
			return v.fail(check, name, "member %q gives ZIP versions %d and %d: a bundle's members give one of %v twice", name, f.CreatorVersion, f.ReaderVersion, zipVersions)
		case path.Clean(name) != name || strings.Contains(name, "/"):
			return v.fail(check, name, "unexpected member %q: a bundle holds %s only", name, strings.Join(memberOrder, ", "))
		}
		if _, known := members[name]; !known {
			return v.fail(check, name, "unexpected member %q: a bundle holds %s only", name, strings.Join(memberOrder, ", "))
		}
		if v.files[name] != nil {
			return v.fail(check, name, "member %s appears twice", name)
		}
		if f.Flags&0x1 != 0 {
			return v.fail(check, name, "member %s is encrypted", name)
		}
		if f.Method != zip.Store && f.Method != zip.Deflate {
			return v.fail(check, name, "member %s is compressed with method %d: only stored and deflated members are read", name, f.Method)
		}
		v.files[name] = f
	}
	var present []string
	for _, name := range memberOrder {
		f := v.files[name]
		if f == nil {
			if members[name] {
				return v.fail(check, name, "%s is missing", name)
			}
			continue
		}
		if small := !slices.Contains(streamed, name); small && f.UncompressedSize64 > MaxSmallMember {
			return v.fail(check, name, "%s declares %d bytes: more than the %d bytes it may have", name, f.UncompressedSize64, MaxSmallMember)
		}
		present = append(present, name)
	}
	v.ok(check, "%s, nothing else", strings.Join(present, ", "))
	return true
}

// readSmall reads a small member whole.
func (v *verification) readSmall(name string) ([]byte, error) {
	rc, err := v.files[name].Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, MaxSmallMember+1))
	if err == nil && len(b) > MaxSmallMember {
		err = fmt.Errorf("more than %d bytes", MaxSmallMember)
	}
	return b, err
}

// readManifest reads manifest.json, whose signature is checked before its
// form: a manifest changed by hand is said to be changed, not misshapen.
func (v *verification) readManifest() bool {
	b, err := v.readSmall(bundlezip.ManifestName)
	if err != nil {
		return v.fail(bundlezip.ManifestName, bundlezip.ManifestName, "cannot be read from the ZIP (%v)", err)
	}
	v.manifest = b
	return true
}

// namedKey is the key_id manifest.json names, "" when it names none it can
// be read for.
func (v *verification) namedKey() string {
	var m struct {
		KeyID string `json:"key_id"`
	}
	_ = json.Unmarshal(v.manifest, &m)
	return m.KeyID
}

// checkManifest checks manifest.json's form.
func (v *verification) checkManifest() bool {
	const check, name = bundlezip.ManifestName, bundlezip.ManifestName
	m, cause := parseManifest(v.manifest)
	if cause != "" {
		return v.fail(check, name, "%s", cause)
	}
	if v.opts.Key != nil && m.KeyID != signing.KeyID(v.opts.Key) {
		return v.fail(check, name, "it names key %s, but it is signed by key %s", m.KeyID, signing.KeyID(v.opts.Key))
	}
	v.rep.Manifest = m
	v.ok(check, "schema_version %d, canonical JSON; %s bundle %s of tenant %s, export %s", m.SchemaVersion, m.BundleType,
		m.BundleID, m.TenantID, m.ExportID)
	return true
}

// parseManifest reads a manifest and checks that it is one runproof
// writes; it returns the cause when it is not.
func parseManifest(b []byte) (bundlezip.Manifest, string) {
	var m bundlezip.Manifest
	var head struct {
		SchemaVersion *int `json:"schema_version"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return m, fmt.Sprintf("not a JSON object (%v)", err)
	}
	if head.SchemaVersion == nil {
		return m, "it has no schema_version"
	}
	if *head.SchemaVersion != bundlezip.SchemaVersion {
		return m, fmt.Sprintf("schema_version %d is not one this runproof reads (%d)", *head.SchemaVersion, bundlezip.SchemaVersion)
	}
	if c, err := runproof.CanonicalJSON(b); err != nil || !bytes.Equal(c, b) {
		return m, "it is not in canonical (RFC 8785) form"
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return m, fmt.Sprintf("not a manifest of schema_version %d (%v)", bundlezip.SchemaVersion, err)
	}
	if again, err := runproof.Canonical(m); err != nil || !bytes.Equal(again, b) {
		return m, fmt.Sprintf("it holds values a manifest of schema_version %d does not", bundlezip.SchemaVersion)
	}
	switch m.BundleType {
	case runproof.BundleEvidence, runproof.BundleSOC2, runproof.BundleExecutiveDebrief:
	default:
		return m, fmt.Sprintf("bundle_type %q is not evidence, soc2 or executive_debrief", m.BundleType)
	}
	if !strings.HasPrefix(m.KeyID, "ed25519:") {
		return m, fmt.Sprintf("key_id %q is not an Ed25519 key id", m.KeyID)
	}
	if len(m.Files) != len(streamed) {
		return m, fmt.Sprintf("it lists %d files, not %s", len(m.Files), strings.Join(streamed, ", "))
	}
	for i, f := range m.Files {
		if f.Name != streamed[i] {
			return m, fmt.Sprintf("files[%d] is %q, not %s", i, f.Name, streamed[i])
		}
		if !isHexDigest(f.SHA256) || f.Size < 0 {
			return m, fmt.Sprintf("files[%d] (%s) has no valid size and sha256", i, f.Name)
		}
	}
	p := m.Population
	switch {
	case p.Truncated:
		return m, "its population says truncated: the export left records out"
	case p.Steps < 0 || p.StepsOmitted < 0 || p.StepsOmitted > p.Steps:
		return m, fmt.Sprintf("population steps %d and steps_omitted %d do not add up", p.Steps, p.StepsOmitted)
	case (p.FirstStepIndex != nil) != (p.Steps > 0) || (p.LastStepIndex != nil) != (p.Steps > 0):
		return m, fmt.Sprintf("population has %d steps but first_step_index %s and last_step_index %s", p.Steps,
			optPtr(p.FirstStepIndex), optPtr(p.LastStepIndex))
	case p.Steps > 0 && *p.LastStepIndex-*p.FirstStepIndex+1 != p.Steps:
		return m, fmt.Sprintf("population has %d steps but indexes %d to %d", p.Steps, *p.FirstStepIndex, *p.LastStepIndex)
	}
	return m, ""
}

func optPtr(p *int64) opt {
	if p == nil {
		return opt{}
	}
	return opt{*p, true}
}

func isHexDigest(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// checkSignature checks manifest.sig against the key given.
func (v *verification) checkSignature() bool {
	const check, name = bundlezip.SignatureName, bundlezip.SignatureName
	sig, err := v.readSmall(name)
	if err != nil {
		return v.fail(check, name, "cannot be read from the ZIP (%v)", err)
	}
	if len(sig) != ed25519.SignatureSize {
		return v.fail(check, name, "%d bytes, not the %d of an Ed25519 signature", len(sig), ed25519.SignatureSize)
	}
	named := v.namedKey()
	if v.opts.Key == nil {
		v.warn(check, "signature not verified: no --key given (manifest names key %s)", cmp.Or(named, "none"))
		return true
	}
	if len(v.opts.Key) != ed25519.PublicKeySize {
		return v.fail(check, "", "the key given is not an Ed25519 public key")
	}
	id := signing.KeyID(v.opts.Key)
	switch {
	case ed25519.Verify(v.opts.Key, v.manifest, sig):
	case named != "" && named != id:
		return v.fail(check, bundlezip.ManifestName, "manifest.json names key %s, but the key given is %s: give that key "+
			"(if %s is the key that signed the bundle, manifest.json or manifest.sig was changed)", named, id, id)
	default:
		return v.fail(check, name, "the signature does not verify with key %s: manifest.json or manifest.sig was changed", id)
	}
	v.rep.SignatureChecked = true
	v.ok(check, "Ed25519 signature of manifest.json by key %s verified", id)
	return true
}

// checkSums checks that SHA256SUMS holds the manifest's digests, manifest.json's
// own and proof.json's, one line each, in `sha256sum -c` form.
func (v *verification) checkSums() bool {
	const check, name = bundlezip.SumsName, bundlezip.SumsName
	b, err := v.readSmall(name)
	if err != nil {
		return v.fail(check, name, "cannot be read from the ZIP (%v)", err)
	}
	want := map[string]string{bundlezip.ManifestName: hexSum(v.manifest)}
	for _, f := range v.rep.Manifest.Files {
		want[f.Name] = f.SHA256
	}
	if v.files[bundlezip.ProofName] != nil {
		if v.proofRaw, err = v.readSmall(bundlezip.ProofName); err != nil {
			return v.fail(check, bundlezip.ProofName, "proof.json cannot be read from the ZIP (%v)", err)
		}
		want[bundlezip.ProofName] = hexSum(v.proofRaw)
	}
	if len(b) == 0 || b[len(b)-1] != '\n' {
		return v.fail(check, name, "it does not end with a newline")
	}
	seen := map[string]bool{}
	for i, line := range strings.Split(string(b[:len(b)-1]), "\n") {
		sum, file, ok := strings.Cut(line, "  ")
		if !ok || !isHexDigest(sum) {
			return v.fail(check, name, "line %d is not a sha256sum line (64 hex digits, two spaces, a file name)", i+1)
		}
		w, known := want[file]
		switch {
		case !known && file == bundlezip.ProofName:
			return v.fail(check, file, "proof.json is listed, but the ZIP has none: it was taken out")
		case !known:
			return v.fail(check, name, "line %d names %q, which is not a file of the bundle", i+1, file)
		case seen[file]:
			return v.fail(check, name, "%s is listed twice", file)
		case sum != w && file == bundlezip.ManifestName:
			return v.fail(check, file, "it gives sha256 %s for manifest.json, whose sha256 is %s", sum, w)
		case sum != w && file == bundlezip.ProofName:
			return v.fail(check, file, "it gives sha256 %s for proof.json, whose sha256 is %s", sum, w)
		case sum != w && slices.Contains(streamed, file):
			if v.sumsDisagree == "" {
				v.sumsDisagree = fmt.Sprintf("it gives sha256 %s for %s, the manifest %s", sum, file, w)
			}
		case sum != w:
			return v.fail(check, name, "it gives sha256 %s for %s, the manifest %s", sum, file, w)
		}
		seen[file] = true
	}
	for _, file := range memberOrder {
		if _, wanted := want[file]; wanted && !seen[file] {
			return v.fail(check, name, "it has no line for %s", file)
		}
	}
	if v.sumsDisagree == "" {
		v.ok(check, "%d digests, as in the manifest", len(seen))
	}
	return true
}

// checkSumsAgree fails on the line of SHA256SUMS that disagrees with the
// manifest on a member whose own digest, checked since, is the manifest's.
func (v *verification) checkSumsAgree() bool {
	if v.sumsDisagree != "" {
		return v.fail(bundlezip.SumsName, bundlezip.SumsName, "%s", v.sumsDisagree)
	}
	return true
}

func hexSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// checkContents streams bundle.json, steps.csv and report.pdf, each in its own
// goroutine, then checks what they hold against the manifest and each other.
func (v *verification) checkContents() bool {
	m := &v.rep.Manifest
	for _, f := range m.Files {
		if declared := v.files[f.Name].UncompressedSize64; declared != uint64(f.Size) {
			// Checked before anything is inflated: a ZIP that claims more
			// (a "zip bomb") is refused, and archive/zip stops reading at
			// the size declared.
			return v.fail(f.Name, f.Name, "the ZIP entry declares %d bytes, the manifest %d", declared, f.Size)
		}
	}
	var (
		wg                  sync.WaitGroup
		bundle, steps, pdf  *memberReader
		facts               *bundleFacts
		bundleErr, stepsErr error
		csv                 csvFacts
		pdfHead             [5]byte
	)
	wg.Go(func() {
		var done func()
		bundle, done = v.stream(bundlezip.BundleName)
		defer done()
		if facts, bundleErr = scanBundle(bundle, nil); bundleErr != nil {
			bundle.drain()
		}
	})
	wg.Go(func() {
		var done func()
		steps, done = v.stream(bundlezip.StepsName)
		defer done()
		if csv, stepsErr = scanSteps(steps); stepsErr != nil {
			steps.drain()
		}
	})
	wg.Go(func() {
		var done func()
		pdf, done = v.stream(bundlezip.ReportName)
		defer done()
		io.ReadFull(pdf, pdfHead[:])
		pdf.drain()
	})
	wg.Wait()

	for i, r := range []*memberReader{bundle, steps, pdf} {
		f := m.Files[i]
		got := hex.EncodeToString(r.h.Sum(nil))
		switch {
		case r.err != nil:
			return v.fail(f.Name, f.Name, "cannot be read from the ZIP (%v)", r.err)
		case r.n != f.Size:
			return v.fail(f.Name, f.Name, "%d bytes, the manifest says %d", r.n, f.Size)
		case got != f.SHA256:
			return v.fail(f.Name, f.Name, "sha256 %s, the manifest says %s", got, f.SHA256)
		case f.Name == bundlezip.ReportName && string(pdfHead[:]) != "%PDF-":
			return v.fail(f.Name, f.Name, "it is not a PDF file")
		}
		v.ok(f.Name, "%d bytes, sha256 %s…, as in the manifest", r.n, got[:16])
	}
	return v.bundle(facts, bundleErr) && v.rows(facts, csv, stepsErr)
}

// bundle judges what the pass over bundle.json found.
func (v *verification) bundle(f *bundleFacts, scanErr error) bool {
	const name = bundlezip.BundleName
	if scanErr != nil {
		return v.fail("bundle.json form", name, "%v", scanErr)
	}
	v.ok("bundle.json form", "canonical (RFC 8785) JSON: member order, strings and numbers checked token by token")
	if f.contentHash != f.gotContentHash.String() {
		return v.fail("bundle.json content_hash", name, "the bundle says %q, its content gives %s", f.contentHash, f.gotContentHash)
	}
	v.ok("bundle.json content_hash", "%s recomputed", f.contentHash)
	m := &v.rep.Manifest
	if f.bundleType == string(runproof.BundleSOC2) {
		if f.evidenceDigest != f.gotEvidenceDigest.String() {
			return v.fail("bundle.json evidence_digest", name, "the bundle says %q, its evidence members give %s", f.evidenceDigest, f.gotEvidenceDigest)
		}
		v.ok("bundle.json evidence_digest", "%s recomputed", f.evidenceDigest)
	}
	if cause := identity(f, m); cause != "" {
		return v.fail("bundle.json identity", name, "%s", cause)
	}
	v.ok("bundle.json identity", "bundle_id, bundle_type, tenant_id, run_id and incident as in the manifest")
	if m.BundleType == runproof.BundleExecutiveDebrief {
		return true // a debrief holds no steps: steps.csv is checked against the manifest
	}
	if f.stepProblem != "" {
		return v.fail("bundle.json steps", name, "%s", f.stepProblem)
	}
	if f.steps > 0 {
		v.ok("bundle.json steps", "%d steps, each content_hash (and content_digest) recomputed, indexes contiguous, statuses valid", f.steps)
	} else {
		v.ok("bundle.json steps", "no steps included (%s omitted)", f.stepsOmitted)
	}
	detail, cause := totals(f, m.Population)
	if cause != "" {
		return v.fail("bundle.json totals", name, "%s", cause)
	}
	v.ok("bundle.json totals", "%s", detail)
	return true
}

// identity checks that the bundle is the one the manifest describes.
func identity(f *bundleFacts, m *bundlezip.Manifest) string {
	p := m.Population
	switch {
	case f.schemaVersion != opt{evidence.SchemaVersion, true}:
		return fmt.Sprintf("schema_version is %s, not %d", f.schemaVersion, evidence.SchemaVersion)
	case f.bundleID != m.BundleID:
		return fmt.Sprintf("bundle_id is %q, the manifest says %q", f.bundleID, m.BundleID)
	case f.bundleType != string(m.BundleType):
		return fmt.Sprintf("bundle_type is %q, the manifest says %q", f.bundleType, m.BundleType)
	case f.tenantID != m.TenantID:
		return fmt.Sprintf("tenant_id is %q, the manifest says %q", f.tenantID, m.TenantID)
	case f.runID != p.RunID:
		return fmt.Sprintf("run_id is %q, the manifest's population says %q", f.runID, p.RunID)
	case p.IncidentID != "" && f.incidentID != p.IncidentID:
		return fmt.Sprintf("incident_id is %q, the manifest's population says %q", f.incidentID, p.IncidentID)
	case (f.incidentID != "") != (p.Incidents == 1) || p.Incidents > 1:
		return fmt.Sprintf("incident_id is %q, but the manifest's population counts %d incidents", f.incidentID, p.Incidents)
	case f.contentHash == "":
		return "it has no content_hash"
	}
	return ""
}

// totals checks the counts, sums, indexes and inflection of an evidence or
// SOC 2 bundle against its steps and the manifest's population.
func totals(f *bundleFacts, p bundlezip.Population) (detail, cause string) {
	for _, m := range []struct {
		name string
		v    opt
	}{{"total_steps", f.totalSteps}, {"steps_omitted", f.stepsOmitted}, {"total_tokens", f.totalTokens},
		{"total_cost_cents", f.totalCost}, {"total_duration_ms", f.totalDuration}} {
		if !m.v.ok {
			return "", m.name + " is missing"
		}
	}
	total, omitted := f.totalSteps.v, f.stepsOmitted.v
	first, last := optPtr(p.FirstStepIndex), optPtr(p.LastStepIndex)
	switch {
	case !f.hasSteps:
		return "", "steps is missing"
	case total != p.Steps:
		return "", fmt.Sprintf("total_steps is %d, the manifest's population says %d", total, p.Steps)
	case omitted != p.StepsOmitted:
		return "", fmt.Sprintf("steps_omitted is %d, the manifest's population says %d", omitted, p.StepsOmitted)
	case f.steps != total-omitted:
		return "", fmt.Sprintf("it holds %d steps, but total_steps %d - steps_omitted %d is %d", f.steps, total, omitted, total-omitted)
	case f.firstIndex != first || f.lastIndex != last:
		return "", fmt.Sprintf("first_step_index and last_step_index are %s and %s, the manifest's population says %s and %s",
			f.firstIndex, f.lastIndex, first, last)
	case f.steps > 0 && (f.firstSeen != first.v || f.lastSeen != first.v+f.steps-1):
		return "", fmt.Sprintf("its steps run from step_index %d to %d, not from first_step_index %d", f.firstSeen, f.lastSeen, first.v)
	}
	if omitted == 0 {
		switch {
		case f.lastSeen != last.v && total > 0:
			return "", fmt.Sprintf("its last step has step_index %d, not last_step_index %d", f.lastSeen, last.v)
		case f.tokens != f.totalTokens.v:
			return "", fmt.Sprintf("its steps' tokens add up to %d, not total_tokens %d", f.tokens, f.totalTokens.v)
		case f.cost != f.totalCost.v:
			return "", fmt.Sprintf("its steps' cost_cents add up to %s, not total_cost_cents %s", cents(f.cost), cents(f.totalCost.v))
		case f.duration != f.totalDuration.v:
			return "", fmt.Sprintf("its steps' duration_ms add up to %s, not total_duration_ms %s",
				runproof.FormatFixed(f.duration, runproof.MicrosPerMilli), runproof.FormatFixed(f.totalDuration.v, runproof.MicrosPerMilli))
		}
	}
	if f.incidentID == "" {
		switch {
		case f.inflections > 0:
			return "", fmt.Sprintf("step_index %d is marked is_inflection, but there is no incident", f.inflectionIndex)
		case f.violationIndex.ok || f.violatedPolicy:
			return "", "it names a violation step or policy, but there is no incident"
		}
		detail = "no incident"
	} else {
		vi := f.violationIndex
		switch {
		case !vi.ok || !first.ok || vi.v < first.v || vi.v > last.v:
			return "", fmt.Sprintf("violation_step_index %s is not a step of the run", vi)
		case !f.violatedPolicy:
			return "", "policy_context names no violated policy, but there is an incident"
		case f.inflections > 1:
			return "", fmt.Sprintf("%d steps are marked is_inflection: an incident has one", f.inflections)
		case f.steps > 0 && (f.inflections != 1 || f.inflectionIndex != vi.v):
			return "", fmt.Sprintf("the step marked is_inflection is not violation_step_index %d", vi.v)
		}
		detail = fmt.Sprintf("inflection at step %d", vi.v)
	}
	if omitted > 0 {
		return fmt.Sprintf("%d steps, all omitted: counts as in the manifest (the sums cannot be checked without the steps); %s", total, detail), ""
	}
	return fmt.Sprintf("%d steps, %d tokens, %s cents, %s ms, as the steps add up and the manifest counts; %s", total, f.tokens,
		cents(f.cost), runproof.FormatFixed(f.duration, runproof.MicrosPerMilli), detail), ""
}

// rows judges steps.csv against the manifest's population and, for an
// evidence or SOC 2 bundle, against the steps of bundle.json.
func (v *verification) rows(f *bundleFacts, c csvFacts, scanErr error) bool {
	const check, name = "steps.csv rows", bundlezip.StepsName
	m := &v.rep.Manifest
	p := m.Population
	want := p.Steps - p.StepsOmitted
	switch {
	case scanErr != nil:
		return v.fail(check, name, "%v", scanErr)
	case c.rows != want:
		return v.fail(check, name, "%d rows, but the manifest's population has %d steps, %d of them omitted", c.rows, p.Steps, p.StepsOmitted)
	case c.rows > 0 && (c.first != *p.FirstStepIndex || c.last != *p.LastStepIndex):
		return v.fail(check, name, "its rows run from step_index %d to %d, the manifest's population from %d to %d",
			c.first, c.last, *p.FirstStepIndex, *p.LastStepIndex)
	case c.inflections > 1 || c.inflections == 1 && p.Incidents == 0:
		return v.fail(check, name, "%d rows are marked is_inflection, for %d incidents", c.inflections, p.Incidents)
	}
	switch {
	case c.rows == 0 && p.StepsOmitted > 0:
		v.ok(check, "no rows: the export left out the run's %d steps, as the manifest's population says", p.StepsOmitted)
		return true
	case m.BundleType == runproof.BundleExecutiveDebrief && c.inflections == 0:
		return v.fail(check, name, "no row is marked is_inflection: a debrief is of an incident")
	case m.BundleType == runproof.BundleExecutiveDebrief && f.costIncurred.v != (c.upTo+runproof.MicrocentsPerCent/2)/runproof.MicrocentsPerCent:
		return v.fail(check, name, "its rows cost %s cents up to the inflection, which is not bundle.json's cost_incurred_cents %s", cents(c.upTo), f.costIncurred)
	case m.BundleType == runproof.BundleExecutiveDebrief:
		v.ok(check, "%d rows, step_index %s to %s, as the manifest's population counts; those up to the inflection cost %s cents, bundle.json's cost_incurred_cents %s",
			c.rows, optPtr(p.FirstStepIndex), optPtr(p.LastStepIndex), cents(c.upTo), f.costIncurred)
		return true
	case !bytes.Equal(c.digest, f.rows):
		return v.fail(check, name, "%s", v.rowDifference())
	}
	v.ok(check, "%d rows, the same steps as bundle.json, column by column", c.rows)
	return true
}

// rowDifference reads bundle.json and steps.csv again side by side to name
// the first row that differs, once their digests have said that one does.
func (v *verification) rowDifference() string {
	bundle, done := v.stream(bundlezip.BundleName)
	defer done()
	csvIn, done2 := v.stream(bundlezip.StepsName)
	defer done2()
	sr, err := newStepsReader(csvIn)
	if err != nil {
		return err.Error()
	}
	_, err = scanBundle(bundle, func(b *stepRow) error {
		c, err := sr.next()
		if err == io.EOF {
			return &csvError{fmt.Sprintf("bundle.json has step_index %d, steps.csv has no row for it", b.index)}
		} else if err != nil {
			return err
		}
		if col, mine, theirs := b.diff(c); col != "" {
			return &csvError{fmt.Sprintf("line %d: %s is %s, bundle.json has %s (step_index %d)", sr.csv.line, col, theirs, mine, b.index)}
		}
		return nil
	})
	if err != nil {
		return err.Error()
	}
	if _, err := sr.next(); err != io.EOF {
		return fmt.Sprintf("line %d: a row beyond the steps of bundle.json", sr.csv.line)
	}
	return "its rows differ from the steps of bundle.json"
}

// checkProof hands proof.json to Options.CheckProof. With CheckProof set,
// a ZIP without proof.json fails: runproof makes every ZIP with the ledger
// proof of its manifest, and without one nothing shows that the export was
// recorded.
func (v *verification) checkProof() bool {
	const check = bundlezip.ProofName
	switch {
	case v.proofRaw == nil && v.opts.CheckProof != nil && v.opts.WithoutProof:
		v.warn(check, "absent: nothing in the ZIP shows the export was recorded in the export ledger (as for a ZIP made before runproof kept one); the export's proof from the API shows it")
		return true
	case v.proofRaw == nil && v.opts.CheckProof != nil:
		return v.fail(check, bundlezip.ProofName, "proof.json is missing: a runproof ZIP carries the ledger proof of its manifest, without which nothing shows the export was recorded "+
			"(one made before runproof kept an export ledger has none, and passes with --without-proof)")
	case v.proofRaw == nil:
		return true
	case v.opts.CheckProof == nil:
		v.warn(check, "present but not checked")
		return true
	}
	if err := v.opts.CheckProof(v.manifest, v.proofRaw); err != nil {
		return v.fail(check, bundlezip.ProofName, "%v", err)
	}
	v.ok(check, "the ledger inclusion proof holds")
	return true
}

// zipVersions are the ZIP versions a bundle's member may say it was made
// with and needs, the same twice: 0 as runproof writes them (Go's
// zip.Writer.CreateRaw leaves them so), or 20 and 45 (ZIP64) as
// zip.Writer.CreateHeader fills them.
var zipVersions = []uint16{0, 20, 45}

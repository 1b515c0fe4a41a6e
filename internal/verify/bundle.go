package verify

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/runproof/runproof/internal/runproof"
)

// bundleFacts is what one streaming pass over bundle.json finds: the
// members it checks as written, and what the content gives.
type bundleFacts struct {
	bundleID, bundleType, tenantID, runID, incidentID string
	contentHash, evidenceDigest                       string
	schemaVersion                                     opt
	totalSteps, stepsOmitted, totalTokens             opt
	totalCost, totalDuration                          opt // microcents, microseconds
	firstIndex, lastIndex, violationIndex             opt
	hasSteps                                          bool // a steps member, even empty
	violatedPolicy                                    bool // policy_context names a violated policy

	length                            int64 // of the canonical form of the whole document
	gotContentHash, gotEvidenceDigest digestText
	steps, tokens, cost, duration     int64  // count and sums of the steps present
	firstSeen, lastSeen               int64  // step_index of the first and last step present
	inflections, inflectionIndex      int64  // steps with is_inflection true, and the first one's index
	rows                              []byte // digest of the steps as rows (stepRow.fold)
	stepProblem                       string // the first step that is wrong, and how; "" when none
}

// opt is an integer member that may be absent.
type opt struct {
	v  int64
	ok bool
}

func (o opt) String() string {
	if !o.ok {
		return "absent"
	}
	return fmt.Sprint(o.v)
}

// soc2Members are the members a SOC 2 bundle adds to the evidence ones,
// which its evidence_digest leaves out (docs/bundles.md).
var soc2Members = map[string]bool{"evidence_digest": true, "control_mappings": true, "attestation_statement": true,
	"compliance_period_start": true, "compliance_period_end": true, "auditor_notes": true, "review_status": true,
	"reviewed_by": true, "reviewed_at": true, "criteria_covered": true}

// Members of a step, in RFC 8785 order.
const (
	fContentDigest = iota
	fContentHash
	fCostCents
	fDurationMs
	fInputTokens
	fIsInflection
	fOutputTokens
	fStatus
	fStepIndex
	fStepType
	fTimestamp
	fTokens
	numFields
)

var stepFieldNames = [numFields]string{"content_digest", "content_hash", "cost_cents", "duration_ms", "input_tokens",
	"is_inflection", "output_tokens", "status", "step_index", "step_type", "timestamp", "tokens"}

// stepFieldKinds is the JSON kind of each member: '"' string, '0' number,
// 't' boolean.
var stepFieldKinds = [numFields]jsontext.Kind{'"', '"', '0', '0', '0', 't', '0', '"', '0', '"', '"', '0'}

// scanner reads bundle.json token by token. Each token is checked to be in
// its RFC 8785 form as read (member names in order, strings and numbers
// written canonically) and then hashed as it is, so the digests come out of
// one pass in flat memory however many steps the bundle holds.
type scanner struct {
	dec    *jsontext.Decoder
	facts  *bundleFacts
	onRow  func(*stepRow) error
	hashes [2]sink // 0: content_hash (all but content_hash), 1: evidence_digest (also without the SOC 2 members)
	// content collects one step's content, for its content_digest.
	content sink
	length  int64       // of the canonical form of the whole document so far
	names   [][2][]byte // per depth: the previous and the current member name
	depth   int

	step    [numFields][]byte // the raw members of the step being read
	has     uint32            // which of them it has
	hasBody bool              // it has content
	row     stepRow
	strs    [4][]byte // unquoted strings of row
	rowHash hash.Hash
	buf     []byte // scratch
	head    []byte // scratch of object
}

// sink is a digest fed in chunks.
type sink struct {
	h       hash.Hash
	buf     []byte
	enabled bool // fed at all
	on      bool // fed now
	members int  // top-level members written
	out     [sha256.Size]byte
}

func (k *sink) write(b []byte) {
	k.buf = append(k.buf, b...)
	if len(k.buf) >= 64<<10 {
		k.h.Write(k.buf)
		k.buf = k.buf[:0]
	}
}

func (k *sink) sum() []byte {
	k.h.Write(k.buf)
	k.buf = k.buf[:0]
	return k.h.Sum(k.out[:0])
}

// formError is a bundle.json that is not canonical JSON of a bundle's shape.
type formError struct{ msg string }

func (e *formError) Error() string { return e.msg }

func formErrorf(format string, args ...any) error {
	return &formError{fmt.Sprintf(format, args...)}
}

// scanBundle reads a bundle's JSON from r and returns what it finds. onRow,
// when not nil, is called with every well-formed step instead of folding it
// into the row digest. The error is a *formError when the JSON is not a
// canonical bundle, or onRow's; the facts then hold what was read so far.
func scanBundle(r io.Reader, onRow func(*stepRow) error) (*bundleFacts, error) {
	f := &bundleFacts{}
	// Duplicate names need no tracking: the order check refuses them.
	s := &scanner{dec: jsontext.NewDecoder(r, jsontext.AllowDuplicateNames(true)), facts: f, onRow: onRow,
		content: sink{h: sha256.New()}}
	for i := range s.hashes {
		s.hashes[i] = sink{h: sha256.New(), enabled: true, on: true}
	}
	if onRow == nil {
		s.rowHash = sha256.New()
		s.onRow = func(r *stepRow) error {
			s.buf = r.fold(s.rowHash, s.buf)
			return nil
		}
	}
	if k := s.dec.PeekKind(); k != '{' {
		if _, err := s.dec.ReadValue(); err != nil {
			return f, s.syntax(err)
		}
		return f, formErrorf("it is not a JSON object")
	}
	if err := s.object(s.topMember); err != nil {
		return f, err
	}
	if _, err := s.dec.ReadToken(); err != io.EOF {
		if err == nil {
			return f, formErrorf("more JSON follows the bundle")
		}
		return f, s.syntax(err)
	}
	f.length = s.length
	f.gotContentHash = digestOf(s.hashes[0].sum())
	f.gotEvidenceDigest = digestOf(s.hashes[1].sum())
	if s.rowHash != nil {
		f.rows = s.rowHash.Sum(nil)
	}
	return f, nil
}

var (
	tokOpenObject  = []byte{'{'}
	tokCloseObject = []byte{'}'}
	tokOpenArray   = []byte{'['}
	tokCloseArray  = []byte{']'}
	tokComma       = []byte{','}
)

// emit writes canonical bytes to the digests that are on.
func (s *scanner) emit(b []byte) {
	s.length += int64(len(b))
	for i := range s.hashes {
		if s.hashes[i].on {
			s.hashes[i].write(b)
		}
	}
	if s.content.on {
		s.content.write(b)
	}
}

// syntax words a decoder error.
func (s *scanner) syntax(err error) error {
	var se *jsontext.SyntacticError
	if errors.As(err, &se) {
		return formErrorf("not valid JSON: %v", err)
	}
	return err // reading the ZIP failed
}

// where is the JSON pointer of the value being read, for messages.
func (s *scanner) where() string {
	if p := s.dec.StackPointer(); p != "" {
		return string(p)
	}
	return "the top level"
}

// value reads, checks and emits any value.
func (s *scanner) value() error {
	switch s.dec.PeekKind() {
	case '{':
		return s.object(nil)
	case '[':
		return s.array(s.value)
	}
	_, err := s.scalar()
	return err
}

// scalar reads a string, number or literal, checks its form and emits it.
// The value is valid until the next read.
func (s *scanner) scalar() (jsontext.Value, error) {
	v, err := s.dec.ReadValue()
	if err != nil {
		return nil, s.syntax(err)
	}
	switch v.Kind() {
	case '"':
		if !canonicalString(v) {
			return nil, formErrorf("%s: string %.40s is not written as RFC 8785 writes it", s.where(), v)
		}
	case '0':
		if !canonicalNumber(v, &s.buf) {
			return nil, formErrorf("%s: number %.40s is not written as RFC 8785 writes it", s.where(), v)
		}
	}
	s.emit(v)
	return v, nil
}

// scalarOf reads a scalar of the given kind ('t' for either boolean).
func (s *scanner) scalarOf(kind jsontext.Kind) (jsontext.Value, error) {
	k := s.dec.PeekKind()
	if k == 'f' {
		k = 't'
	}
	if k != kind && k != 0 {
		what := map[jsontext.Kind]string{'"': "a string", '0': "a number", 't': "true or false"}[kind]
		return nil, formErrorf("%s must be %s", s.where(), what)
	}
	return s.scalar()
}

// object reads an object, calling member (or value, when nil) for each
// member's value once its name is read.
func (s *scanner) object(member func(name []byte) error) error {
	if _, err := s.dec.ReadToken(); err != nil {
		return s.syntax(err)
	}
	s.emit(tokOpenObject)
	s.depth++
	if len(s.names) < s.depth {
		s.names = append(s.names, [2][]byte{})
	}
	d := s.depth - 1
	for i := 0; s.dec.PeekKind() != '}'; i++ {
		raw, err := s.dec.ReadValue()
		if err != nil {
			return s.syntax(err)
		}
		if !canonicalString(raw) {
			return formErrorf("%s: member name %.40s is not written as RFC 8785 writes it", s.where(), raw)
		}
		names := &s.names[d]
		names[0], names[1] = names[1], unquote(names[0][:0], raw)
		if i > 0 && !lessUTF16(names[0], names[1]) {
			return formErrorf("%s: member %q follows %q: members are not in RFC 8785 order", s.where(), names[1], names[0])
		}
		// The comma (at the top level, each digest has its own), the
		// name and the colon, emitted at once.
		head := s.head[:0]
		if s.depth == 1 {
			s.topSeparator(names[1], i)
		} else if i > 0 {
			head = append(head, ',')
		}
		s.head = append(append(head, raw...), ':')
		s.emit(s.head)
		if member != nil {
			err = member(s.names[d][1])
		} else {
			err = s.value()
		}
		if err != nil {
			return err
		}
	}
	if _, err := s.dec.ReadToken(); err != nil {
		return s.syntax(err)
	}
	if s.depth == 1 {
		for i := range s.hashes {
			s.hashes[i].on = s.hashes[i].enabled
		}
	}
	s.emit(tokCloseObject)
	s.depth--
	return nil
}

// topSeparator turns each digest on or off for a top-level member and
// writes the comma before it where the digest has an earlier member.
func (s *scanner) topSeparator(name []byte, i int) {
	if i > 0 {
		s.length++
	}
	for j := range s.hashes {
		k := &s.hashes[j]
		skip := string(name) == "content_hash" || j == 1 && soc2Members[string(name)]
		k.on = k.enabled && !skip
		if k.on {
			if k.members > 0 {
				k.write(tokComma)
			}
			k.members++
		}
	}
}

// array reads an array, calling elem for each element.
func (s *scanner) array(elem func() error) error {
	if _, err := s.dec.ReadToken(); err != nil {
		return s.syntax(err)
	}
	s.emit(tokOpenArray)
	for i := 0; s.dec.PeekKind() != ']'; i++ {
		if i > 0 {
			s.emit(tokComma)
		}
		if err := elem(); err != nil {
			return err
		}
	}
	if _, err := s.dec.ReadToken(); err != nil {
		return s.syntax(err)
	}
	s.emit(tokCloseArray)
	return nil
}

// unquote appends the value of a JSON string token to dst.
func unquote(dst, raw []byte) []byte {
	if bytes.IndexByte(raw, '\\') < 0 {
		return append(dst, raw[1:len(raw)-1]...)
	}
	dst, _ = jsontext.AppendUnquote(dst, raw) // the decoder has validated raw
	return dst
}

// topMember reads the value of a top-level member, keeping those checked.
func (s *scanner) topMember(name []byte) error {
	f := s.facts
	switch string(name) {
	case "bundle_id":
		return s.text(&f.bundleID)
	case "bundle_type":
		err := s.text(&f.bundleType)
		s.hashes[1].enabled = f.bundleType == string(runproof.BundleSOC2)
		s.hashes[1].on = s.hashes[1].enabled
		return err
	case "tenant_id":
		return s.text(&f.tenantID)
	case "run_id":
		return s.text(&f.runID)
	case "incident_id":
		return s.text(&f.incidentID)
	case "content_hash":
		return s.text(&f.contentHash)
	case "evidence_digest":
		return s.text(&f.evidenceDigest)
	case "schema_version":
		return s.integer(&f.schemaVersion)
	case "total_steps":
		return s.integer(&f.totalSteps)
	case "steps_omitted":
		return s.integer(&f.stepsOmitted)
	case "total_tokens":
		return s.integer(&f.totalTokens)
	case "first_step_index":
		return s.integer(&f.firstIndex)
	case "last_step_index":
		return s.integer(&f.lastIndex)
	case "violation_step_index":
		return s.integer(&f.violationIndex)
	case "total_cost_cents":
		return s.fixed(&f.totalCost, runproof.MicrocentsPerCent)
	case "total_duration_ms":
		return s.fixed(&f.totalDuration, runproof.MicrosPerMilli)
	case "steps":
		if s.dec.PeekKind() != '[' {
			return formErrorf("%s must be an array", s.where())
		}
		f.hasSteps = true
		return s.array(s.stepValue)
	case "policy_context":
		if s.dec.PeekKind() != '{' {
			return formErrorf("%s must be an object", s.where())
		}
		return s.object(func(name []byte) error {
			f.violatedPolicy = f.violatedPolicy || string(name) == "violated_policy_id"
			return s.value()
		})
	}
	return s.value()
}

func (s *scanner) text(dst *string) error {
	v, err := s.scalarOf('"')
	if err == nil {
		*dst = string(unquote(nil, v))
	}
	return err
}

func (s *scanner) integer(dst *opt) error {
	v, err := s.scalarOf('0')
	if err != nil {
		return err
	}
	n, err := integer(v)
	if err != nil {
		return formErrorf("%s: %v", s.where(), err)
	}
	*dst = opt{n, true}
	return nil
}

func (s *scanner) fixed(dst *opt, scale int64) error {
	v, err := s.scalarOf('0')
	if err != nil {
		return err
	}
	n, err := fixed(v, scale)
	if err != nil {
		return formErrorf("%s: %v", s.where(), err)
	}
	*dst = opt{n, true}
	return nil
}

// stepValue reads one element of steps.
func (s *scanner) stepValue() error {
	if s.dec.PeekKind() != '{' {
		return formErrorf("%s must be a step object", s.where())
	}
	s.has, s.hasBody = 0, false
	if err := s.object(s.stepMember); err != nil {
		return err
	}
	if s.endStep() {
		return s.onRow(&s.row)
	}
	return nil
}

// stepMember reads the value of a step's member, keeping those checked.
func (s *scanner) stepMember(name []byte) error {
	i := -1
	switch string(name) {
	case "content":
		// The content's canonical bytes are also its content_digest's input.
		s.hasBody = true
		s.content.h.Reset()
		s.content.on = true
		err := s.value()
		s.content.on = false
		return err
	case "content_digest":
		i = fContentDigest
	case "content_hash":
		i = fContentHash
	case "cost_cents":
		i = fCostCents
	case "duration_ms":
		i = fDurationMs
	case "input_tokens":
		i = fInputTokens
	case "is_inflection":
		i = fIsInflection
	case "output_tokens":
		i = fOutputTokens
	case "status":
		i = fStatus
	case "step_index":
		i = fStepIndex
	case "step_type":
		i = fStepType
	case "timestamp":
		i = fTimestamp
	case "tokens":
		i = fTokens
	default:
		return s.value()
	}
	v, err := s.scalarOf(stepFieldKinds[i])
	if err != nil {
		return err
	}
	s.step[i] = append(s.step[i][:0], v...)
	s.has |= 1 << i
	return nil
}

// endStep checks the step just read: its members, its content_digest and
// content_hash recomputed, its place after the previous step. It fills
// s.row and reports whether the step is well-formed enough to be a row.
// The first problem is kept in the facts; reading goes on.
func (s *scanner) endStep() bool {
	f, r := s.facts, &s.row
	n := f.steps
	f.steps++
	bad := func(format string, args ...any) {
		if f.stepProblem == "" {
			f.stepProblem = fmt.Sprintf("steps[%d]: ", n) + fmt.Sprintf(format, args...)
		}
	}
	for i, name := range stepFieldNames {
		if i != fContentDigest && s.has&(1<<i) == 0 {
			bad("%s is missing", name)
			return false
		}
	}
	var err error
	for _, c := range []struct {
		dst *int64
		i   int
	}{{&r.index, fStepIndex}, {&r.inputTokens, fInputTokens}, {&r.outputTokens, fOutputTokens}, {&r.tokens, fTokens}} {
		if *c.dst, err = integer(s.step[c.i]); err != nil {
			bad("%s: %v", stepFieldNames[c.i], err)
			return false
		}
	}
	if r.cost, err = fixed(s.step[fCostCents], runproof.MicrocentsPerCent); err != nil {
		bad("cost_cents: %v", err)
		return false
	}
	if r.duration, err = fixed(s.step[fDurationMs], runproof.MicrosPerMilli); err != nil {
		bad("duration_ms: %v", err)
		return false
	}
	s.strs[0] = unquote(s.strs[0][:0], s.step[fTimestamp])
	s.strs[1] = unquote(s.strs[1][:0], s.step[fStepType])
	s.strs[2] = unquote(s.strs[2][:0], s.step[fStatus])
	s.strs[3] = unquote(s.strs[3][:0], s.step[fContentHash])
	r.timestamp, r.stepType, r.status, r.contentHash = s.strs[0], s.strs[1], s.strs[2], s.strs[3]
	r.inflection = s.step[fIsInflection][0] == 't'

	if n == 0 {
		f.firstSeen = r.index
	} else if r.index != f.lastSeen+1 {
		bad("step_index %d follows step_index %d: the steps are not contiguous", r.index, f.lastSeen)
	}
	f.lastSeen = r.index
	f.tokens += r.tokens
	f.cost += r.cost
	f.duration += r.duration
	if r.inflection {
		if f.inflections == 0 {
			f.inflectionIndex = r.index
		}
		f.inflections++
	}
	if !validStatus(r.status) {
		bad("status %q is not ok, warning or violation", r.status)
	}
	if r.tokens != r.inputTokens+r.outputTokens {
		bad("tokens %d is not input_tokens + output_tokens (%d)", r.tokens, r.inputTokens+r.outputTokens)
	}
	hasDigest := s.has&(1<<fContentDigest) != 0
	if s.hasBody {
		got := digestOf(s.content.sum())
		if !hasDigest {
			bad("it has content but no content_digest")
		} else if claimed := s.step[fContentDigest]; !bytes.Equal(claimed[1:len(claimed)-1], got[:]) {
			bad("content_digest %s does not match its content, which gives %s", claimed, got)
		}
	}
	// The step's content_hash (docs/integrity.md): the canonical members
	// are the tokens as read, which are canonical.
	b := append(s.buf[:0], `{"content_digest":`...)
	if hasDigest {
		b = append(b, s.step[fContentDigest]...)
	} else {
		b = append(b, "null"...)
	}
	for _, m := range []struct {
		key string
		i   int
	}{{`,"cost_cents":`, fCostCents}, {`,"duration_ms":`, fDurationMs}, {`,"input_tokens":`, fInputTokens},
		{`,"output_tokens":`, fOutputTokens}, {`,"step_index":`, fStepIndex}, {`,"step_type":`, fStepType},
		{`,"timestamp":`, fTimestamp}} {
		b = append(b, m.key...)
		b = append(b, s.step[m.i]...)
	}
	b = append(b, '}')
	s.buf = b
	sum := sha256.Sum256(b)
	if got := digestOf(sum[:]); !bytes.Equal(r.contentHash, got[:]) {
		bad("content_hash %s does not match the step's members, which give %s", r.contentHash, got)
	}
	return true
}

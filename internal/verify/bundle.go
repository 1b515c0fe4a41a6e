package verify

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/runproof/runproof/internal/evidence"
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
	costIncurred                                      opt // a debrief's cost_incurred_cents
	firstIndex, lastIndex, violationIndex             opt
	hasSteps                                          bool // a steps member, even empty
	violatedPolicy                                    bool // policy_context names a violated policy

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
var soc2Members = func() map[string]bool {
	set := make(map[string]bool, len(evidence.SOC2Members))
	for _, m := range evidence.SOC2Members {
		set[m] = true
	}
	return set
}()

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
var stepFieldKinds = [numFields]byte{'"', '"', '0', '0', '0', 't', '0', '"', '0', '"', '"', '0'}

// maxDepth bounds the nesting of bundle.json, as encoding/json/v2 does.
const maxDepth = 10000

// scanner reads bundle.json token by token (see tokens): each token is
// checked to be in its RFC 8785 form as read, member names in order, so the
// document is its own canonical form and the digests are of the bytes as
// read, spans at a time, in one pass and in flat memory however many steps
// the bundle holds.
type scanner struct {
	tok    *tokens
	facts  *bundleFacts
	onRow  func(*stepRow) error
	hashes [2]sink // 0: content_hash (all but content_hash), 1: evidence_digest (also without the SOC 2 members)
	// content collects one step's content, for its content_digest.
	content sink
	names   [][2][]byte // per depth: the previous and the current member name
	path    []int       // per depth: the element or member being read; -1 before the first
	arrays  []bool      // per depth: an array, not an object
	depth   int

	step    [numFields][]byte // the raw members of the step being read
	has     uint32            // which of them it has
	hasBody bool              // it has content
	row     stepRow
	strs    [4][]byte // unquoted strings of row
	rowHash hash.Hash
	buf     []byte // scratch
}

// sink is a digest fed the bytes read while it is on.
type sink struct {
	h       hash.Hash
	enabled bool // fed at all
	on      bool // fed now
	members int  // top-level members written
	out     [sha256.Size]byte
}

func (k *sink) sum() []byte { return k.h.Sum(k.out[:0]) }

// formError is a bundle.json that is not canonical JSON of a bundle's shape.
type formError struct{ msg string }

func (e *formError) Error() string { return e.msg }

func formErrorf(format string, args ...any) error {
	return &formError{fmt.Sprintf(format, args...)}
}

// scanBundle reads a bundle's JSON from r and returns what it finds. onRow,
// when not nil, is called with every well-formed step instead of folding it
// into the row digest. The error is a *formError when the JSON is not a
// canonical bundle, or onRow's, or r's; the facts then hold what was read
// so far.
func scanBundle(r io.Reader, onRow func(*stepRow) error) (*bundleFacts, error) {
	f := &bundleFacts{}
	s := &scanner{facts: f, onRow: onRow, content: sink{h: sha256.New()}}
	s.tok = newTokens(r, s.feed)
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
	switch s.tok.kind() {
	case '{':
	case '[', '"', '0', 't', 'f', 'n':
		return f, formErrorf("it is not a JSON object")
	default:
		if s.tok.err != nil {
			return f, s.tok.err
		}
		return f, s.tok.unexpected()
	}
	if err := s.object(s.topMember); err != nil {
		if s.tok.err != nil { // what was read was cut short
			return f, s.tok.err
		}
		return f, err
	}
	s.tok.flush()
	switch {
	case s.tok.atEnd() && s.tok.err != nil:
		return f, s.tok.err
	case s.tok.atEnd():
	case isSpace(s.tok.peek()):
		return f, s.tok.whitespace()
	default:
		return f, formErrorf("more JSON follows the bundle (byte %d)", s.tok.offset())
	}
	f.gotContentHash = digestOf(s.hashes[0].sum())
	if s.hashes[1].enabled { // a SOC 2 bundle
		f.gotEvidenceDigest = digestOf(s.hashes[1].sum())
	}
	if s.rowHash != nil {
		f.rows = s.rowHash.Sum(nil)
	}
	return f, nil
}

var tokComma = []byte{','}

// feed writes bytes read to the digests that are on.
func (s *scanner) feed(b []byte) {
	for i := range s.hashes {
		if s.hashes[i].on {
			s.hashes[i].h.Write(b)
		}
	}
	if s.content.on {
		s.content.h.Write(b)
	}
}

// where is the JSON pointer of the value being read, for messages.
func (s *scanner) where() string {
	var b []byte
	for d := range s.depth {
		switch i := s.path[d]; {
		case i < 0:
		case s.arrays[d]:
			b = fmt.Appendf(b, "/%d", i)
		default:
			b = append(b, '/')
			for _, c := range s.names[d][1] {
				switch c {
				case '~':
					b = append(b, "~0"...)
				case '/':
					b = append(b, "~1"...)
				default:
					b = append(b, c)
				}
			}
		}
	}
	if len(b) == 0 {
		return "the top level"
	}
	const most = 240 // a pointer 10 000 levels deep would make a message of tens of KB
	if len(b) > most {
		head, tail := most/2, len(b)-most/2+20
		for head > 0 && !utf8.RuneStart(b[head]) {
			head--
		}
		for tail < len(b) && !utf8.RuneStart(b[tail]) {
			tail++
		}
		return string(b[:head]) + "…" + string(b[tail:])
	}
	return string(b)
}

// token words an error of tokens: where a token not in canonical form is.
func (s *scanner) token(err error) error {
	if te, ok := err.(*tokenError); ok {
		return formErrorf("%s: %v", s.where(), te)
	}
	return err
}

// enter and leave keep track of the containers open.
func (s *scanner) enter(array bool) error {
	if s.depth == maxDepth {
		return formErrorf("%s: nested more than %d deep", s.where(), maxDepth)
	}
	s.depth++
	if len(s.path) < s.depth {
		s.names = append(s.names, [2][]byte{})
		s.path = append(s.path, 0)
		s.arrays = append(s.arrays, false)
	}
	s.path[s.depth-1], s.arrays[s.depth-1] = -1, array
	return nil
}

func (s *scanner) leave() { s.depth-- }

// value reads and checks any value.
func (s *scanner) value() error {
	switch s.tok.kind() {
	case '{':
		return s.object(nil)
	case '[':
		return s.array(s.value)
	}
	_, err := s.scalar()
	return err
}

// scalar reads a string, number or literal and checks its form. The value
// is valid until the next read.
func (s *scanner) scalar() ([]byte, error) {
	var v []byte
	var err error
	switch s.tok.kind() {
	case '"':
		v, err = s.tok.str()
	case '0':
		v, err = s.tok.number(&s.buf)
	case 't', 'f', 'n':
		v, err = s.tok.literal()
	default:
		err = s.tok.unexpected()
	}
	return v, s.token(err)
}

// want checks that the next value is of kind, else names what it must be;
// whitespace, the end or no value at all is the tokenizer's to name.
func (s *scanner) want(kind byte, what string) error {
	switch k := s.tok.kind(); k {
	case kind:
		return nil
	case 0:
		return s.tok.unexpected()
	}
	return formErrorf("%s must be %s", s.where(), what)
}

// scalarOf reads a scalar of the given kind ('t' for either boolean).
func (s *scanner) scalarOf(kind byte) ([]byte, error) {
	k := s.tok.kind()
	if k == 'f' {
		k = 't'
	}
	if k != kind && k != 0 && k != '}' && k != ']' {
		what := map[byte]string{'"': "a string", '0': "a number", 't': "true or false"}[kind]
		return nil, formErrorf("%s must be %s", s.where(), what)
	}
	return s.scalar()
}

// object reads an object, calling member (or value, when nil) for each
// member's value once its name is read.
func (s *scanner) object(member func(name []byte) error) error {
	if err := s.tok.expect('{'); err != nil {
		return err
	}
	if err := s.enter(false); err != nil {
		return err
	}
	d := s.depth - 1
	top := s.depth == 1
	for i := 0; s.tok.peek() != '}'; i++ {
		if top { // the digests take what was read under the member before
			s.tok.flush()
		}
		if i > 0 {
			if err := s.tok.expect(','); err != nil {
				return err
			}
			if top { // each digest writes the comma its members need
				s.tok.skip()
			}
		}
		raw, err := s.tok.str()
		if err != nil {
			return s.token(err)
		}
		names := &s.names[d]
		names[0], names[1] = names[1], unquote(names[0][:0], raw)
		s.path[d] = i
		if i > 0 && !lessUTF16(names[0], names[1]) {
			return formErrorf("%s: member %q follows %q: members are not in RFC 8785 order", s.where(), names[1], names[0])
		}
		if top {
			s.topSeparator(names[1])
		}
		if err := s.tok.expect(':'); err != nil {
			return err
		}
		if member != nil {
			err = member(names[1])
		} else {
			err = s.value()
		}
		if err != nil {
			return err
		}
	}
	if top {
		s.tok.flush()
		for i := range s.hashes {
			s.hashes[i].on = s.hashes[i].enabled
		}
	}
	s.leave()
	return s.tok.expect('}')
}

// topSeparator turns each digest on or off for a top-level member and
// writes the comma before it where the digest has an earlier member.
func (s *scanner) topSeparator(name []byte) {
	for j := range s.hashes {
		k := &s.hashes[j]
		skip := string(name) == "content_hash" || j == 1 && soc2Members[string(name)]
		k.on = k.enabled && !skip
		if k.on {
			if k.members > 0 {
				k.h.Write(tokComma)
			}
			k.members++
		}
	}
}

// array reads an array, calling elem for each element.
func (s *scanner) array(elem func() error) error {
	if err := s.tok.expect('['); err != nil {
		return err
	}
	if err := s.enter(true); err != nil {
		return err
	}
	d := s.depth - 1
	for i := 0; s.tok.peek() != ']'; i++ {
		if i > 0 {
			if err := s.tok.expect(','); err != nil {
				return err
			}
		}
		s.path[d] = i
		if err := elem(); err != nil {
			return err
		}
	}
	s.leave()
	return s.tok.expect(']')
}

// unquote appends the value of a JSON string token to dst.
func unquote(dst, raw []byte) []byte {
	if bytes.IndexByte(raw, '\\') < 0 {
		return append(dst, raw[1:len(raw)-1]...)
	}
	dst, _ = jsontext.AppendUnquote(dst, raw) // the token is valid
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
	case "cost_incurred_cents":
		return s.integer(&f.costIncurred)
	case "total_duration_ms":
		return s.fixed(&f.totalDuration, runproof.MicrosPerMilli)
	case "steps":
		if err := s.want('[', "an array"); err != nil {
			return err
		}
		f.hasSteps = true
		return s.array(s.stepValue)
	case "policy_context":
		if err := s.want('{', "an object"); err != nil {
			return err
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
	if err := s.want('{', "a step object"); err != nil {
		return err
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
		s.tok.flush()
		s.content.h.Reset()
		s.content.on = true
		err := s.value()
		s.tok.flush()
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

package service

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/runproof/runproof/internal/runproof"
)

// Limits of one call that appends steps.
const (
	MaxStepsPerCall = 1000
	MaxBodyBytes    = 4 << 20
	maxFieldErrors  = 50
)

// StepInput is one step as an agent sends it.
type StepInput struct {
	StepIndex    *int64         `json:"step_index" openapi:"required"`
	Timestamp    string         `json:"timestamp" openapi:"required"`
	StepType     string         `json:"step_type" openapi:"required"`
	InputTokens  int64          `json:"input_tokens"`
	OutputTokens int64          `json:"output_tokens"`
	CostCents    Number         `json:"cost_cents"`
	DurationMs   Number         `json:"duration_ms"`
	Content      jsontext.Value `json:"content"`
}

// Number is a JSON number kept as written, so that it converts exactly.
type Number string

// UnmarshalJSONFrom accepts a JSON number (or null) and nothing else.
func (n *Number) UnmarshalJSONFrom(dec *jsontext.Decoder) error {
	v, ok, err := numberToken(dec, false)
	switch {
	case err != nil:
		return err
	case !ok:
		return errors.New("must be a JSON number")
	}
	*n = Number(v)
	return nil
}

// Threshold is a policy's threshold as sent: a JSON number, or a string
// holding one, as runproof answers with ("100"), so that a policy read back
// can be sent again; "" and null when the type has none.
type Threshold string

// UnmarshalJSONFrom accepts a JSON number, a string or null.
func (t *Threshold) UnmarshalJSONFrom(dec *jsontext.Decoder) error {
	v, ok, err := numberToken(dec, true)
	switch {
	case err != nil:
		return err
	case !ok:
		return errThreshold
	}
	*t = Threshold(v)
	return nil
}

// numberToken reads a JSON number, or null as "", and when quoted is set a
// string holding a number (or ""); ok is false for any other token.
func numberToken(dec *jsontext.Decoder, quoted bool) (v string, ok bool, err error) {
	tok, err := dec.ReadToken()
	if err != nil {
		return "", false, err
	}
	switch tok.Kind() {
	case '0':
		return tok.String(), true, nil
	case 'n':
		return "", true, nil
	case '"':
		v = tok.String()
		return v, quoted && (v == "" || isJSONNumber(v)), nil
	}
	return "", false, nil
}

// isJSONNumber reports whether s is a JSON number and nothing else.
func isJSONNumber(s string) bool {
	v := jsontext.Value(s)
	return v.Kind() == '0' && v.IsValid() && strings.TrimSpace(s) == s
}

var errThreshold = errors.New("must be a number, or a string holding one as JSON writes it (such as 10 or 2.5: no spaces, no leading zeros)")

type stepBatch struct {
	Steps []StepInput `json:"steps"`
}

// DecodeJSON decodes one JSON object from body into v, refusing unknown
// members, duplicate names, trailing data and invalid UTF-8, with errors
// that name the field at fault ("steps[3].cost_cents").
func DecodeJSON(body []byte, v any) error {
	if !utf8.Valid(body) {
		return runproof.Errorf(runproof.EMALFORMED, "the body is not valid UTF-8")
	}
	switch trimmed := bytes.TrimSpace(body); {
	case len(trimmed) == 0:
		return runproof.Errorf(runproof.EMALFORMED, "the body is empty: a JSON object is expected")
	case string(trimmed) == "null": // which would leave v as it is
		return runproof.Errorf(runproof.EMALFORMED, "the body must be a JSON object")
	}
	err := decodeObject(body, v)
	if len(runproof.ErrorFields(err)) == 1 {
		err = everyMember(body, reflect.TypeOf(v).Elem(), err)
	}
	return err
}

// everyMember decodes each member of the object body on its own, into a
// new value of type t, so that one answer names every member at fault
// rather than the first the decoder met (first, returned when it finds no
// other). Only a body already refused pays for it.
func everyMember(body []byte, t reflect.Type, first error) error {
	dec := jsontext.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '{' {
		return first
	}
	var errs runproof.Fields
	for dec.PeekKind() == '"' && len(errs) < maxFieldErrors {
		tok, err := dec.ReadToken()
		if err != nil {
			return first
		}
		member, err := jsontext.AppendQuote([]byte("{"), tok.String()) // before the token is voided
		if err != nil {
			return first
		}
		value, err := dec.ReadValue()
		if err != nil {
			return first
		}
		member = append(append(append(member, ':'), value...), '}')
		errs = append(errs, runproof.ErrorFields(decodeObject(member, reflect.New(t).Interface()))...)
	}
	if len(errs) < 2 {
		return first
	}
	return errs.Err()
}

// decodeObject decodes the object body into v, naming the first member at
// fault (DecodeJSON).
func decodeObject(body []byte, v any) error {
	err := json.Unmarshal(body, v, json.RejectUnknownMembers(true))
	var semErr *json.SemanticError
	if errors.As(err, &semErr) && semErr.JSONKind == '0' && semErr.GoType != nil &&
		(semErr.GoType.Kind() == reflect.Int64 || semErr.GoType.Kind() == reflect.Pointer && semErr.GoType.Elem().Kind() == reflect.Int64) {
		// A whole number spelled 1000.0 or 1e3, most likely: read again,
		// the slower way that takes it (the fast way, for every body, is
		// half as fast again).
		reflect.ValueOf(v).Elem().SetZero()
		err = json.Unmarshal(body, v, json.RejectUnknownMembers(true), json.WithUnmarshalers(json.UnmarshalFromFunc(wholeNumber)))
	}
	if err == nil {
		return nil
	}
	var synErr *jsontext.SyntacticError
	switch {
	case errors.As(err, &synErr) && errors.Is(synErr.Err, jsontext.ErrDuplicateName) && synErr.JSONPointer != "":
		return runproof.Invalid(runproof.FieldError{Field: fieldPath(synErr.JSONPointer), Message: "is given twice: a JSON object names each member once"})
	case errors.As(err, &synErr):
		return runproof.Errorf(runproof.EMALFORMED, "the body is not valid JSON (at byte %d): %v", synErr.ByteOffset, synErr.Err)
	case errors.As(err, &semErr) && semErr.JSONPointer == "":
		return runproof.Errorf(runproof.EMALFORMED, "the body must be a JSON object")
	case errors.As(err, &semErr):
		field := fieldPath(semErr.JSONPointer)
		if errors.Is(semErr.Err, json.ErrUnknownName) {
			return runproof.Invalid(runproof.FieldError{Field: field, Message: "is not a known field"})
		}
		return runproof.Invalid(runproof.FieldError{Field: field, Message: typeMessage(semErr)})
	}
	return runproof.Errorf(runproof.EMALFORMED, "the body cannot be decoded: %v", err)
}

// wholeNumber decodes a whole number into an int64 however JSON spells it:
// 1000, 1000.0 or 1e3 (as a Python agent's float is written), exactly; a
// fraction, or a number past 2^53 not written as an integer, is refused.
func wholeNumber(dec *jsontext.Decoder, n *int64) error {
	if dec.PeekKind() != '0' {
		return errors.ErrUnsupported // null, or the wrong type: as for any int64
	}
	v, err := dec.ReadValue()
	if err != nil {
		return err
	}
	s := string(v)
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		*n = i
		return nil
	}
	abs, sign := strings.CutPrefix(s, "-")
	w, err := runproof.ParseAmountExact(abs, 1)
	if err != nil {
		return errors.New("must be a whole number within range")
	}
	if sign {
		w = -w
	}
	*n = w
	return nil
}

// fieldPath turns a JSON pointer ("/steps/3/cost_cents") into the path
// style of problem details ("steps[3].cost_cents").
func fieldPath(p jsontext.Pointer) string {
	var b strings.Builder
	for tok := range p.Tokens() {
		if _, err := strconv.Atoi(tok); err == nil && b.Len() > 0 {
			b.WriteString("[" + tok + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(tok)
	}
	return b.String()
}

func typeMessage(e *json.SemanticError) string {
	if e.GoType == nil {
		return "has the wrong type"
	}
	switch e.GoType {
	case reflect.TypeFor[Number]():
		return "must be a JSON number"
	case reflect.TypeFor[Threshold]():
		return errThreshold.Error()
	}
	t := e.GoType
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int64:
		return "must be a whole number within range"
	case reflect.Bool:
		return "must be true or false"
	case reflect.String:
		return "must be a string"
	case reflect.Slice:
		return "must be an array"
	case reflect.Struct, reflect.Map:
		return "must be an object"
	}
	return "has the wrong type"
}

// DecodeSteps decodes and validates the body of an append-steps call. The
// steps come back with their exact values, canonical content and
// content_hash; status and inflection are left to evaluation.
func DecodeSteps(body []byte, now time.Time) ([]runproof.Step, error) {
	if countSteps(body) > MaxStepsPerCall {
		return nil, runproof.Errorf(runproof.ETOOLARGE, "a call holds at most %d steps, this one holds more: send them in several calls", MaxStepsPerCall)
	}
	var batch stepBatch
	if err := DecodeJSON(body, &batch); err != nil {
		return nil, err
	}
	return ValidateSteps(batch.Steps, now)
}

// countSteps counts the values of the body's "steps" array, up to one past
// MaxStepsPerCall, without decoding them, so that a body of many tiny
// steps ("{}", 3 bytes each) is refused before it takes memory. A body it
// cannot read counts 0: DecodeJSON says what is wrong with it.
func countSteps(body []byte) int {
	if len(body) < 3*MaxStepsPerCall { // too short to hold more
		return 0
	}
	dec := jsontext.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '{' {
		return 0
	}
	for dec.PeekKind() == '"' {
		name, err := dec.ReadToken()
		if err != nil {
			return 0
		}
		if name.String() != "steps" || dec.PeekKind() != '[' {
			if dec.SkipValue() != nil {
				return 0
			}
			continue
		}
		if _, err := dec.ReadToken(); err != nil {
			return 0
		}
		n := 0
		for k := dec.PeekKind(); k != ']' && k != 0 && n <= MaxStepsPerCall; k = dec.PeekKind() {
			if dec.SkipValue() != nil {
				return n
			}
			n++
		}
		return n
	}
	return 0
}

// ValidateSteps checks steps as sent and converts them to runproof.Step.
// Indexes must be consecutive inside one call.
//
// Errors about one step of the call name it by a field path (StepPath).
func ValidateSteps(in []StepInput, now time.Time) ([]runproof.Step, error) {
	switch {
	case len(in) == 0:
		return nil, runproof.Invalid(runproof.FieldError{Field: "steps", Message: "must hold at least one step"})
	case len(in) > MaxStepsPerCall:
		return nil, runproof.Errorf(runproof.ETOOLARGE, "a call holds at most %d steps, this one holds %d: send them in several calls", MaxStepsPerCall, len(in))
	}
	var errs runproof.Fields
	bad := func(i int, field, format string, args ...any) {
		if len(errs) < maxFieldErrors {
			errs.Add(StepPath(i, field), format, args...)
		}
	}
	out := make([]runproof.Step, len(in))
	for i, s := range in {
		st := &out[i]
		switch {
		case s.StepIndex == nil:
			bad(i, "step_index", "is required")
		case *s.StepIndex < 0:
			bad(i, "step_index", "must not be negative")
		case i > 0 && in[i-1].StepIndex != nil && *s.StepIndex == *in[i-1].StepIndex:
			bad(i, "step_index", "duplicates the step before it (%d)", *s.StepIndex)
		case i > 0 && in[i-1].StepIndex != nil && *s.StepIndex != *in[i-1].StepIndex+1:
			bad(i, "step_index", "must be %d, after steps[%d]'s %d: steps of one call are consecutive, in order", *in[i-1].StepIndex+1, i-1, *in[i-1].StepIndex)
		default:
			st.Index = *s.StepIndex
		}
		if ts, err := ParseReportedTime(s.Timestamp, now); err != nil {
			bad(i, "timestamp", "%s", err)
		} else {
			st.Timestamp = ts
		}
		switch {
		case strings.TrimSpace(s.StepType) == "":
			bad(i, "step_type", "is required (the tool, skill or model called)")
		case strings.TrimSpace(s.StepType) != s.StepType:
			bad(i, "step_type", "must not start or end with white space: policies match step types exactly")
		case len(s.StepType) > runproof.MaxStepTypeLen:
			bad(i, "step_type", "must be at most %d bytes", runproof.MaxStepTypeLen)
		case runproof.CheckText(s.StepType) != nil:
			bad(i, "step_type", "%s", runproof.CheckText(s.StepType))
		default:
			st.StepType = s.StepType
		}
		for _, n := range []struct {
			field string
			value int64
		}{{"input_tokens", s.InputTokens}, {"output_tokens", s.OutputTokens}} {
			switch {
			case n.value < 0:
				bad(i, n.field, "must not be negative")
			case n.value > runproof.MaxExact:
				bad(i, n.field, "must be at most %d", runproof.MaxExact)
			}
		}
		st.InputTokens, st.OutputTokens = s.InputTokens, s.OutputTokens
		if s.CostCents != "" {
			v, err := runproof.ParseAmount(string(s.CostCents), runproof.MicrocentsPerCent)
			if err != nil {
				bad(i, "cost_cents", "%s", err)
			}
			st.CostMicrocents = v
		}
		if s.DurationMs != "" {
			v, err := runproof.ParseAmount(string(s.DurationMs), runproof.MicrosPerMilli)
			if err != nil {
				bad(i, "duration_ms", "%s", err)
			}
			st.DurationMicros = v
		}
	}
	if err := errs.Err(); err != nil {
		return nil, err
	}
	// Canonical content and hashes are most of the work: spread them over
	// the cores, so that a big batch is answered sooner.
	contentErrs := make([]error, len(out))
	chunk := max(64, (len(out)+runtime.GOMAXPROCS(0)-1)/runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for from := 0; from < len(out); from += chunk {
		wg.Go(func() {
			for i := from; i < min(from+chunk, len(out)); i++ {
				contentErrs[i] = hashStep(&out[i], in[i].Content)
			}
		})
	}
	wg.Wait()
	for i, err := range contentErrs {
		if err != nil {
			bad(i, "content", "cannot be put in canonical form: %s", err)
		}
	}
	if err := errs.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// hashStep sets the step's canonical content, its digest and the step's
// content_hash. JSON null content counts as none.
func hashStep(st *runproof.Step, content jsontext.Value) error {
	if len(content) > 0 && string(content) != "null" {
		if err := runproof.ExactNumbers(content); err != nil {
			return err
		}
		c, err := runproof.CanonicalJSON(content)
		if err != nil {
			return err
		}
		st.Content, st.ContentDigest = c, runproof.DigestBytes(c)
	}
	st.ContentHash = runproof.StepContentHash(*st)
	return nil
}

// ParseReportedTime parses an RFC 3339 timestamp that an agent reports, refusing
// what runproof.CheckReportedTime refuses, and returns it as runproof
// keeps it.
func ParseReportedTime(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, errors.New("is required (RFC 3339, e.g. 2026-01-02T15:04:05Z)")
	}
	t, err := runproof.ParseTime(s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not an RFC 3339 timestamp (e.g. 2026-01-02T15:04:05Z)", s)
	}
	if err := runproof.CheckReportedTime(t, now); err != nil {
		return time.Time{}, fmt.Errorf("%s %w", s, err)
	}
	return runproof.Timestamp(t), nil
}

// StepPath is the path of a field of the step at place i of a call's
// steps ("steps[3].cost_cents"), or of the step itself when field is empty
// ("steps[3]"): errors about one step of a call name it so.
func StepPath(i int, field string) string {
	if field == "" {
		return fmt.Sprintf("steps[%d]", i)
	}
	return fmt.Sprintf("steps[%d].%s", i, field)
}

// StepOf reads a path StepPath wrote: the step's place in the call and the
// field ("" for the step itself); ok is false for any other path.
func StepOf(path string) (i int, field string, ok bool) {
	rest, ok := strings.CutPrefix(path, "steps[")
	if !ok {
		return 0, "", false
	}
	num, rest, ok := strings.Cut(rest, "]")
	if !ok {
		return 0, "", false
	}
	i, err := strconv.Atoi(num)
	if err != nil || i < 0 {
		return 0, "", false
	}
	if rest == "" {
		return i, "", true
	}
	if field, ok = strings.CutPrefix(rest, "."); !ok || field == "" {
		return 0, "", false
	}
	return i, field, true
}

// Package csvr writes bundles as CSV over an io.Writer: the steps of an
// evidence or SOC 2 bundle one row per step, streaming, and an executive
// debrief as a two-column field,value sheet. Values are written exactly as
// in the bundle's JSON: timestamps as runproof writes them, cents and
// milliseconds as the shortest decimal that reads back to the same number.
//
// Cells are written as they are, never altered: a spreadsheet may read a
// cell starting with "=", "+", "-" or "@" as a formula.
package csvr

import (
	"encoding/csv"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"

	"github.com/runproof/runproof/internal/evidence"
)

// StepHeader is the header row of a steps CSV.
var StepHeader = []string{"step_index", "timestamp", "step_type", "input_tokens", "output_tokens", "tokens",
	"cost_cents", "duration_ms", "status", "is_inflection", "content_hash"}

// Encoder writes steps as CSV rows, after a header row. After the first
// error every call returns it.
type Encoder struct {
	w      *csv.Writer
	header bool
	row    []string
	err    error
}

// NewEncoder returns an Encoder writing to w.
func NewEncoder(w io.Writer) *Encoder {
	return &Encoder{w: csv.NewWriter(w), row: make([]string, len(StepHeader))}
}

// Encode writes one step (and the header row before the first one).
func (e *Encoder) Encode(s evidence.TraceStepEvidence) error {
	if err := e.writeHeader(); err != nil {
		return err
	}
	r := e.row
	r[0] = strconv.FormatInt(s.StepIndex, 10)
	r[1] = s.Timestamp
	r[2] = s.StepType
	r[3] = strconv.FormatInt(s.InputTokens, 10)
	r[4] = strconv.FormatInt(s.OutputTokens, 10)
	r[5] = strconv.FormatInt(s.Tokens, 10)
	r[6] = formatFloat(s.CostCents)
	r[7] = formatFloat(s.DurationMs)
	r[8] = string(s.Status)
	r[9] = strconv.FormatBool(s.IsInflection)
	r[10] = s.ContentHash
	return e.write(r)
}

// Close writes the header if no step was written, flushes, and returns the
// first error. It does not close the writer.
func (e *Encoder) Close() error {
	if err := e.writeHeader(); err != nil {
		return err
	}
	e.w.Flush()
	if e.err == nil {
		e.err = e.w.Error()
	}
	return e.err
}

func (e *Encoder) writeHeader() error {
	if e.err != nil || e.header {
		return e.err
	}
	e.header = true
	return e.write(StepHeader)
}

func (e *Encoder) write(row []string) error {
	if e.err == nil {
		e.err = e.w.Write(row)
	}
	return e.err
}

// WriteBundle writes a bundle as CSV: the steps of an evidence or SOC 2
// bundle, or the field,value sheet of an executive debrief.
func WriteBundle(w io.Writer, bundle evidence.Bundle) error {
	switch b := bundle.(type) {
	case *evidence.EvidenceBundle:
		if b != nil {
			return writeSteps(w, b.Steps)
		}
	case *evidence.SOC2Bundle:
		if b != nil {
			return writeSteps(w, b.Steps)
		}
	case *evidence.ExecutiveDebriefBundle:
		if b != nil {
			return writeSheet(w, b)
		}
	}
	return fmt.Errorf("csvr: cannot write a %T as CSV", bundle)
}

func writeSteps(w io.Writer, steps evidence.StepList) error {
	e := NewEncoder(w)
	for s, err := range steps.All() {
		if err != nil {
			return err
		}
		if err := e.Encode(s); err != nil {
			return err
		}
	}
	return e.Close()
}

// writeSheet writes one field,value row per member of the debrief, in the
// order of its JSON, leaving out absent optional members as the JSON does;
// each recommended action is a numbered row (recommended_actions.1, …).
func writeSheet(w io.Writer, b *evidence.ExecutiveDebriefBundle) error {
	cw := csv.NewWriter(w)
	rows := [][]string{{"field", "value"}}
	v := reflect.ValueOf(b).Elem()
	for i := range v.NumField() {
		if !v.Type().Field(i).IsExported() { // not in the JSON either
			continue
		}
		name, opts, _ := strings.Cut(v.Type().Field(i).Tag.Get("json"), ",")
		f := v.Field(i)
		if opts == "omitempty" && f.IsZero() {
			continue
		}
		if f.Kind() == reflect.Pointer {
			f = f.Elem()
		}
		switch f.Kind() {
		case reflect.Slice:
			for j := range f.Len() {
				rows = append(rows, []string{fmt.Sprintf("%s.%d", name, j+1), f.Index(j).String()})
			}
		case reflect.Int, reflect.Int64:
			rows = append(rows, []string{name, strconv.FormatInt(f.Int(), 10)})
		case reflect.Float64:
			rows = append(rows, []string{name, formatFloat(f.Float())})
		default:
			rows = append(rows, []string{name, f.String()})
		}
	}
	if err := cw.WriteAll(rows); err != nil {
		return err
	}
	return cw.Error()
}

func formatFloat(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

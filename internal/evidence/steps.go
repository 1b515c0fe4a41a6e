package evidence

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"iter"
	"strings"

	"github.com/runproof/runproof/internal/runproof"
)

// StepSeq yields a run's steps in index order. A bundle ranges over it
// once, while it is built, so that a run of any length is never held whole.
type StepSeq = iter.Seq2[runproof.Step, error]

// StepsOf yields the steps of a run held in memory.
func StepsOf(steps []runproof.Step) StepSeq {
	return func(yield func(runproof.Step, error) bool) {
		for _, s := range steps {
			if !yield(s, nil) {
				return
			}
		}
	}
}

// Spool keeps the canonical JSON of a bundle's steps from the moment they
// are built until the bundle is written: where is the caller's choice (a
// temporary file for an export, memory by default; see Options.NewSpool).
// One bundle's builder writes to it, then each Reader reads everything
// written, from the start, and several may read at once.
type Spool interface {
	io.Writer
	Reader() io.Reader
}

// memorySpool is the default Spool.
type memorySpool struct{ bytes.Buffer }

func (m *memorySpool) Reader() io.Reader { return bytes.NewReader(m.Bytes()) }

// StepList is the "steps" member of a bundle: the RFC 8785 JSON of each
// step, comma-separated, kept in a Spool. It is written by the builders
// and read back by the renderers, a step at a time.
type StepList struct {
	spool Spool
	n     int64
	rows  []TraceStepEvidence // without content; nil unless Options.KeepRows
}

// StepListOf returns a list of the given steps, kept in memory.
func StepListOf(steps ...TraceStepEvidence) (StepList, error) {
	w := newStepWriter(nil, false)
	for _, s := range steps {
		if err := w.add(s); err != nil {
			return StepList{}, err
		}
	}
	return w.list, nil
}

// Len is the number of steps in the list.
func (l StepList) Len() int64 { return l.n }

// All yields the steps of the list in order, without their content
// (Content is nil): renderers do not show it, and it is most of what there
// is to decode. They are the rows kept in memory (Options.KeepRows), or
// else decoded from the spool.
func (l StepList) All() iter.Seq2[TraceStepEvidence, error] {
	return func(yield func(TraceStepEvidence, error) bool) {
		if l.rows != nil {
			for _, s := range l.rows {
				if !yield(s, nil) {
					return
				}
			}
			return
		}
		if l.n == 0 {
			return
		}
		dec := json.NewDecoder(l.reader())
		if _, err := dec.Token(); err != nil { // [
			yield(TraceStepEvidence{}, fmt.Errorf("evidence: read steps: %w", err))
			return
		}
		for dec.More() {
			var s struct {
				TraceStepEvidence
				Content skipped `json:"content"` // in place of TraceStepEvidence's
			}
			if err := dec.Decode(&s); err != nil {
				yield(TraceStepEvidence{}, fmt.Errorf("evidence: read steps: %w", err))
				return
			}
			if !yield(s.TraceStepEvidence, nil) {
				return
			}
		}
	}
}

// skipped is a JSON value read and left.
type skipped struct{}

func (*skipped) UnmarshalJSON([]byte) error { return nil }

// reader reads the list as a JSON array.
func (l StepList) reader() io.Reader {
	if l.n == 0 {
		return strings.NewReader("[]")
	}
	return io.MultiReader(strings.NewReader("["), l.spool.Reader(), strings.NewReader("]"))
}

// MarshalJSON returns the list as a JSON array, read whole into memory:
// for encoding/json. Bundles are written with WriteCanonical, which
// streams it.
func (l StepList) MarshalJSON() ([]byte, error) { return io.ReadAll(l.reader()) }

// UnmarshalJSON reads a JSON array of steps into memory, for a bundle
// decoded whole.
func (l *StepList) UnmarshalJSON(b []byte) error {
	var steps []json.RawMessage
	if err := json.Unmarshal(b, &steps); err != nil {
		return err
	}
	spool := &memorySpool{}
	for i, s := range steps {
		c, err := runproof.CanonicalJSON(s)
		if err != nil {
			return err
		}
		if i > 0 {
			spool.WriteByte(',')
		}
		spool.Write(c)
	}
	*l = StepList{spool: spool, n: int64(len(steps))}
	return nil
}

// stepWriter appends steps to a list, each in its RFC 8785 form.
type stepWriter struct {
	list     StepList
	keepRows bool
	buf      bytes.Buffer
	enc      *json.Encoder
}

// newStepWriter returns a writer to spool, or to memory when spool is nil,
// that keeps the rows too when keepRows (Options.KeepRows).
func newStepWriter(spool Spool, keepRows bool) *stepWriter {
	if spool == nil {
		spool = &memorySpool{}
	}
	w := &stepWriter{list: StepList{spool: spool}, keepRows: keepRows}
	w.enc = json.NewEncoder(&w.buf)
	w.enc.SetEscapeHTML(false)
	return w
}

func (w *stepWriter) add(s TraceStepEvidence) error {
	w.buf.Reset()
	if w.list.n > 0 {
		w.buf.WriteByte(',')
	}
	if err := w.enc.Encode(&s); err != nil {
		return err
	}
	out := bytes.TrimSuffix(w.buf.Bytes(), []byte("\n"))
	if !directlyCanonical(&s, out) {
		c, err := runproof.CanonicalJSON(bytes.TrimPrefix(out, []byte(",")))
		if err != nil {
			return err
		}
		if w.list.n > 0 {
			c = append([]byte(","), c...)
		}
		out = c
	}
	if _, err := w.list.spool.Write(out); err != nil {
		return fmt.Errorf("evidence: keep steps: %w", err)
	}
	w.list.n++
	switch {
	case !w.keepRows:
	case len(w.list.rows) == maxKeptRows: // steps came meanwhile: read them back
		w.keepRows, w.list.rows = false, nil
	default:
		s.Content = nil
		w.list.rows = append(w.list.rows, s)
	}
	return nil
}

// maxKeptRows bounds the rows a list keeps in memory (Options.KeepRows), at
// some 400 bytes each: the steps of a longer run are read back from the
// spool, so that an export's memory does not grow with its run.
var maxKeptRows = 100_000

// directlyCanonical reports whether encoding/json's output of a step is
// certain to be its RFC 8785 form. TraceStepEvidence declares its fields in
// RFC 8785 order and holds no maps; what remains is what encoding/json
// writes otherwise: U+2028, U+2029 and invalid UTF-8 (as U+FFFD), which it
// escapes; content that is not canonical; integers beyond 2^53, which JCS
// reads as IEEE doubles.
func directlyCanonical(s *TraceStepEvidence, out []byte) bool {
	const maxExact = 1 << 53
	if bytes.Contains(out, []byte(`\u202`)) || bytes.Contains(out, []byte(`\ufffd`)) ||
		s.StepIndex < 0 || s.StepIndex > maxExact || s.Tokens < 0 || s.Tokens > maxExact ||
		s.InputTokens < 0 || s.OutputTokens < 0 {
		return false
	}
	if s.Content != nil {
		c, err := runproof.CanonicalJSON(s.Content)
		if err != nil || !bytes.Equal(c, s.Content) {
			return false
		}
	}
	return true
}

package jsonr_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/runproof/runproof/internal/evidence"
	"github.com/runproof/runproof/internal/evidence/evidencetest"
	"github.com/runproof/runproof/internal/render/jsonr"
)

type failingWriter struct{ n int }

var errFull = errors.New("disk full")

func (w *failingWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		k := w.n
		w.n = 0
		return k, errFull
	}
	w.n -= len(p)
	return len(p), nil
}

func TestEncodeCanonicalNoNewline(t *testing.T) {
	b := evidence.ExecutiveDebriefBundle{BundleID: "EXEC-1", IncidentSummary: "<b> & \u2028", RecommendedActions: []string{}}
	var buf bytes.Buffer
	e := jsonr.NewEncoder(&buf)
	if err := e.Encode(&b); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	want, err := evidencetest.Canonical(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), want) || bytes.HasSuffix(want, []byte("\n")) {
		t.Errorf("got %s\nwant %s", buf.Bytes(), want)
	}
	if !bytes.Contains(want, []byte("\"<b> & \u2028\"")) {
		t.Errorf("not RFC 8785 string escaping: %s", want)
	}
}

func TestFailingWriter(t *testing.T) {
	for _, n := range []int{0, 10} {
		e := jsonr.NewEncoder(&failingWriter{n: n})
		if err := e.Encode(evidence.EvidenceBundle{}); !errors.Is(err, errFull) {
			t.Errorf("Encode: %v", err)
		}
		if err := e.Encode(evidence.EvidenceBundle{}); !errors.Is(err, errFull) {
			t.Errorf("Encode after a failure: %v", err)
		}
		if err := e.Close(); !errors.Is(err, errFull) {
			t.Errorf("Close: %v", err)
		}
	}
	if err := jsonr.NewEncoder(&bytes.Buffer{}).Encode(func() {}); err == nil {
		t.Error("a func is not JSON")
	}
}

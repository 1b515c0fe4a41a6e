package evidence_test

import (
	"bytes"
	"encoding/json"
	"io"
	"slices"
	"testing"

	"github.com/runproof/runproof/internal/evidence"
	"github.com/runproof/runproof/internal/evidence/evidencetest"
)

// TestStepListReadsBack: the steps a bundle keeps read back the same from
// its spool as from the rows kept in memory, content left out, and the
// bundle's bytes do not depend on where its steps are kept.
func TestStepListReadsBack(t *testing.T) {
	src := bigRun(t, 1000, true)
	opts := goldenOptions()
	opts.IncludeContent = true
	spooled, err := evidence.BuildEvidence(src, opts)
	if err != nil {
		t.Fatal(err)
	}
	opts.KeepRows = true
	kept, err := evidence.BuildEvidence(src, opts)
	if err != nil {
		t.Fatal(err)
	}
	read := func(l evidence.StepList) []evidence.TraceStepEvidence {
		var out []evidence.TraceStepEvidence
		for s, err := range l.All() {
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, s)
		}
		return out
	}
	a, b := read(spooled.Steps), read(kept.Steps)
	if len(a) != 1000 || spooled.Steps.Len() != 1000 || !slices.EqualFunc(a, b, func(x, y evidence.TraceStepEvidence) bool {
		return x.StepIndex == y.StepIndex && x.ContentHash == y.ContentHash && x.CostCents == y.CostCents && x.Content == nil && y.Content == nil
	}) {
		t.Fatalf("read %d steps from the spool, %d kept, not the same", len(a), len(b))
	}
	if x, y := encode(t, spooled), encode(t, kept); !bytes.Equal(x, y) || !bytes.Contains(x, []byte(`"content":{`)) {
		t.Error("the bundle's bytes depend on where its steps are kept, or lost their content")
	}
	for range spooled.Steps.All() {
		break // the decoder stops with its reader
	}

	// A bundle decoded whole reads back as it was written.
	var back evidence.EvidenceBundle
	if err := json.Unmarshal(encode(t, spooled), &back); err != nil {
		t.Fatal(err)
	}
	if back.Steps.Len() != 1000 || !bytes.Equal(encode(t, back), encode(t, spooled)) {
		t.Error("a decoded bundle does not encode to the same bytes")
	}
}

// bufferSpool is a Spool in memory.
type bufferSpool struct{ bytes.Buffer }

func (b *bufferSpool) Reader() io.Reader { return bytes.NewReader(b.Bytes()) }

// TestSpoolPerBundle: options used for several bundles give each its own
// spool, so that no bundle reads another's steps.
func TestSpoolPerBundle(t *testing.T) {
	opts := goldenOptions()
	made := 0
	opts.NewSpool = func() (evidence.Spool, error) { made++; return &bufferSpool{}, nil }
	for _, b := range buildAll(t, costRun(t), opts) {
		if err := evidencetest.VerifyContentHash(b.json); err != nil {
			t.Errorf("%s: %v", b.kind, err)
		}
	}
	if made != 2 { // evidence and SOC 2; the debrief keeps no steps
		t.Errorf("%d spools made, want one per bundle that keeps steps (2)", made)
	}
}

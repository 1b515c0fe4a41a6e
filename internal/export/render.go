package export

import (
	"context"
	"fmt"
	"io"

	"github.com/runproof/runproof/internal/bundlezip"
	"github.com/runproof/runproof/internal/evidence"
	"github.com/runproof/runproof/internal/render/csvr"
	"github.com/runproof/runproof/internal/render/jsonr"
	"github.com/runproof/runproof/internal/render/pdfr"
	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/signing"
)

// stepSink says where the steps of a bundle being built go: kept in a
// spool of newSpool's until the bundle is written, in memory too when
// keepRows, and given to onStep (when set) as they come.
type stepSink struct {
	newSpool func() (evidence.Spool, error)
	keepRows bool // for the PDF report
	onStep   func(evidence.TraceStepEvidence) error
}

// build makes the sealed bundle a request asks for. idSuffix makes its
// bundle_id unique; the builder adds the type's prefix.
func build(r request, src evidence.Source, idSuffix string, to stepSink) (bundle evidence.Bundle, bundleID string, err error) {
	opts := evidence.Options{
		BundleID:        idSuffix,
		CreatedAt:       r.CreatedAt,
		ExportedBy:      r.RequestedBy,
		ExportReason:    r.ExportReason,
		IncludeRawSteps: r.includeRawSteps,
		IncludeContent:  r.includeContent,
		PreparedFor:     r.preparedFor,
		PreparedBy:      r.preparedBy,
		Classification:  r.classification,
		PeriodStart:     r.PeriodStart,
		PeriodEnd:       r.PeriodEnd,
		NewSpool:        to.newSpool,
		KeepRows:        to.keepRows,
		OnStep:          to.onStep,
	}
	switch r.BundleType {
	case runproof.BundleEvidence:
		b, err := evidence.BuildEvidence(src, opts) // sealed
		return &b, b.BundleID, err
	case runproof.BundleSOC2:
		b, err := evidence.BuildSOC2(src, opts) // sealed
		return &b, b.BundleID, err
	case runproof.BundleExecutiveDebrief:
		b, err := evidence.BuildExecutiveDebrief(src, opts) // sealed
		return &b, b.BundleID, err
	}
	return nil, "", fmt.Errorf("export: unknown bundle type %q", r.BundleType)
}

// output is what render needs beyond the request and its records.
type output struct {
	idSuffix string
	key      signing.Key // signs ZIP manifests
	// seal, when set, records a ZIP's signed manifest before the ZIP is
	// written and returns what goes into it as proof.json.
	seal func(bundlezip.Sealed) (proof []byte, err error)
}

// render writes the bundle a request asks for in its format. The run's
// steps are read once, while the bundle is built, and kept in a temporary
// file until it is written: an export holds a page of steps in memory,
// however long the run (the PDF report excepted, which the PDF library
// holds whole).
func render(ctx context.Context, w io.Writer, r request, src evidence.Source, out output) (bundleID string, err error) {
	var sp spools
	defer sp.close()
	to := stepSink{newSpool: sp.new, keepRows: r.Format == runproof.FormatPDF || r.Format == runproof.FormatZIP}
	if r.Format == runproof.FormatZIP {
		return writeZIP(ctx, w, r, src, to, &sp, out)
	}
	var rows *csvr.Encoder // a CSV of steps is written as they are read
	if r.Format == runproof.FormatCSV && r.BundleType != runproof.BundleExecutiveDebrief {
		rows = csvr.NewEncoder(w)
		to.onStep = rows.Encode
	}
	bundle, bundleID, err := build(r, src, out.idSuffix, to)
	if err != nil {
		return "", err
	}
	switch r.Format {
	case runproof.FormatJSON:
		enc := jsonr.NewEncoder(w)
		if err := enc.Encode(bundle); err != nil {
			return "", err
		}
		return bundleID, enc.Close()
	case runproof.FormatCSV:
		if rows != nil {
			return bundleID, rows.Close()
		}
		return bundleID, csvr.WriteBundle(w, bundle) // an executive debrief's sheet
	case runproof.FormatPDF:
		return bundleID, pdfr.Write(ctx, w, bundle, pdfr.Info{ExportID: r.ID})
	}
	return "", fmt.Errorf("export: format %q cannot be rendered", r.Format)
}

// writeZIP writes the signed ZIP bundle: the bundle, its steps, its report
// and the manifest vouching for them, sealed (out.seal) before the ZIP is
// written, with the proof of the sealed manifest. steps.csv is packed
// (deflated and hashed) as the steps are read, the steps of the evidence
// bundle whatever the bundle type; then the report, the slowest member to
// render, is drawn while bundle.json is packed. Its pages are left
// uncompressed: the ZIP deflates the file whole.
func writeZIP(ctx context.Context, w io.Writer, r request, src evidence.Source, to stepSink, spills *spools, out output) (bundleID string, err error) {
	// steps.csv and bundle.json grow with the run: they are kept, deflated,
	// in temporary files until the ZIP is written.
	cp, err := bundlezip.NewPackerTo(bundlezip.StepsName, spills.file())
	if err != nil {
		return "", err
	}
	rows := csvr.NewEncoder(cp)
	to.onStep = rows.Encode
	bundle, bundleID, err := build(r, src, out.idSuffix, to)
	if err != nil {
		return "", err
	}
	if err := rows.Close(); err != nil {
		return "", err
	}
	csv, err := cp.Member()
	if err != nil {
		return "", err
	}
	var report bundlezip.Member
	reportErr := make(chan error, 1)
	go func() {
		pdf, err := bundlezip.NewPacker(bundlezip.ReportName)
		if err == nil {
			err = pdfr.Write(ctx, ctxWriter{ctx, pdf}, bundle, pdfr.Info{ExportID: r.ID, KeyID: out.key.ID, Uncompressed: true})
		}
		if err == nil {
			report, err = pdf.Member()
		}
		reportErr <- err
	}()
	js, err := packJSON(ctx, bundle, spills.file())
	if rerr := <-reportErr; err == nil {
		err = rerr
	}
	if err != nil {
		return "", err
	}
	m := bundlezip.Manifest{ExportID: r.ID, TenantID: r.TenantID, BundleID: bundleID, BundleType: r.BundleType,
		CreatedAt: runproof.FormatTime(r.CreatedAt), KeyID: out.key.ID, Population: population(r, src)}
	s, err := bundlezip.Seal(m, []bundlezip.Member{js, csv, report}, out.key)
	if err != nil {
		return "", err
	}
	var proof []byte
	if out.seal != nil {
		if proof, err = out.seal(s); err != nil {
			return "", err
		}
	}
	return bundleID, s.Write(w, proof)
}

// packJSON packs bundle.json into spill, deflated and hashed as it is
// written.
func packJSON(ctx context.Context, bundle evidence.Bundle, spill bundlezip.Spill) (bundlezip.Member, error) {
	jp, err := bundlezip.NewPackerTo(bundlezip.BundleName, spill)
	if err != nil {
		return bundlezip.Member{}, err
	}
	enc := jsonr.NewEncoder(ctxWriter{ctx, jp})
	if err := enc.Encode(bundle); err != nil {
		return bundlezip.Member{}, err
	}
	if err := enc.Close(); err != nil {
		return bundlezip.Member{}, err
	}
	return jp.Member()
}

// population describes what the export covers.
func population(r request, src evidence.Source) bundlezip.Population {
	p := bundlezip.Population{Scope: r.Scope, RunID: r.RunID, IncidentID: r.IncidentID, IncludeSteps: r.includeRawSteps,
		IncludeContent: r.showsContent(), Runs: 1, Steps: src.Run.Totals.Steps}
	if r.PeriodStart != nil {
		p.PeriodStart = runproof.FormatTime(*r.PeriodStart)
	}
	if r.PeriodEnd != nil {
		p.PeriodEnd = runproof.FormatTime(*r.PeriodEnd)
	}
	if !r.includeRawSteps {
		p.StepsOmitted = p.Steps
	}
	if src.Incident != nil {
		p.Incidents = 1
	}
	if n := src.Run.Totals.Steps; n > 0 { // the bundle holds steps 0 to n-1, or it would not have been built
		first, last := int64(0), n-1
		p.FirstStepIndex, p.LastStepIndex = &first, &last
	}
	return p
}

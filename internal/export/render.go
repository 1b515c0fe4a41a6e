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

// build makes the sealed bundle a request asks for. idSuffix makes its
// bundle_id unique; the builder adds the type's prefix.
func build(r request, src evidence.Source, idSuffix string) (bundle any, bundleID string, err error) {
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

// render writes the bundle a request asks for in its format.
func render(ctx context.Context, w io.Writer, r request, src evidence.Source, out output) (bundleID string, err error) {
	bundle, bundleID, err := build(r, src, out.idSuffix)
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
		return bundleID, csvr.WriteBundle(w, bundle)
	case runproof.FormatPDF:
		return bundleID, pdfr.Write(ctx, w, bundle, pdfr.Info{ExportID: r.ID})
	case runproof.FormatZIP:
		return bundleID, writeZIP(ctx, w, r, src, bundle, bundleID, out)
	}
	return "", fmt.Errorf("export: format %q cannot be rendered", r.Format)
}

// writeZIP writes the signed ZIP bundle: the bundle, its steps, its report
// and the manifest vouching for them, sealed (out.seal) before the ZIP is
// written, with the proof of the sealed manifest.
func writeZIP(ctx context.Context, w io.Writer, r request, src evidence.Source, bundle any, bundleID string, out output) error {
	// The report, the slowest member to render, is drawn while bundle.json
	// and steps.csv are rendered and packed (deflated and hashed). Its pages
	// are left uncompressed: the ZIP deflates the file whole.
	var report bundlezip.Member
	reportErr := make(chan error, 1)
	go func() {
		pdf, err := bundlezip.NewPacker(bundlezip.ReportName)
		if err == nil {
			err = pdfr.Write(ctx, pdf, bundle, pdfr.Info{ExportID: r.ID, KeyID: out.key.ID, Uncompressed: true})
		}
		if err == nil {
			report, err = pdf.Member()
		}
		reportErr <- err
	}()
	js, csv, err := packData(r, src, bundle, out)
	if rerr := <-reportErr; err == nil {
		err = rerr
	}
	if err != nil {
		return err
	}
	m := bundlezip.Manifest{ExportID: r.ID, TenantID: r.TenantID, BundleID: bundleID, BundleType: r.BundleType,
		CreatedAt: runproof.FormatTime(r.CreatedAt), KeyID: out.key.ID, Population: population(r, src)}
	s, err := bundlezip.Seal(m, []bundlezip.Member{js, csv, report}, out.key)
	if err != nil {
		return err
	}
	var proof []byte
	if out.seal != nil {
		if proof, err = out.seal(s); err != nil {
			return err
		}
	}
	return s.Write(w, proof)
}

// packData renders bundle.json and steps.csv into their packers, which
// deflate and hash them as they are written, so that neither is held
// whole. steps.csv holds the steps whatever the bundle type: a debrief's
// come from the evidence of the same run.
func packData(r request, src evidence.Source, bundle any, out output) (js, csv bundlezip.Member, err error) {
	jp, err := bundlezip.NewPacker(bundlezip.BundleName)
	if err != nil {
		return js, csv, err
	}
	enc := jsonr.NewEncoder(jp)
	if err := enc.Encode(bundle); err != nil {
		return js, csv, err
	}
	if err := enc.Close(); err != nil {
		return js, csv, err
	}
	if js, err = jp.Member(); err != nil {
		return js, csv, err
	}
	steps := bundle
	if r.BundleType == runproof.BundleExecutiveDebrief {
		r.BundleType = runproof.BundleEvidence // r is a copy: the manifest still describes the debrief
		if steps, _, err = build(r, src, out.idSuffix); err != nil {
			return js, csv, err
		}
	}
	cp, err := bundlezip.NewPacker(bundlezip.StepsName)
	if err != nil {
		return js, csv, err
	}
	if err := csvr.WriteBundle(cp, steps); err != nil {
		return js, csv, err
	}
	csv, err = cp.Member()
	return js, csv, err
}

// population describes what the export covers.
func population(r request, src evidence.Source) bundlezip.Population {
	p := bundlezip.Population{Scope: r.Scope, RunID: r.RunID, IncidentID: r.IncidentID, IncludeSteps: r.includeRawSteps,
		IncludeContent: r.includeRawSteps && r.includeContent, Runs: 1, Steps: int64(len(src.Steps))}
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
	if n := len(src.Steps); n > 0 {
		p.FirstStepIndex, p.LastStepIndex = &src.Steps[0].Index, &src.Steps[n-1].Index
	}
	return p
}

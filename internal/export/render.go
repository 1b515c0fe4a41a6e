package export

import (
	"fmt"
	"io"

	"github.com/runproof/runproof/internal/evidence"
	"github.com/runproof/runproof/internal/render/csvr"
	"github.com/runproof/runproof/internal/render/jsonr"
	"github.com/runproof/runproof/internal/runproof"
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
		PeriodStart:     r.PeriodStart,
		PeriodEnd:       r.PeriodEnd,
	}
	switch r.BundleType {
	case runproof.BundleEvidence:
		b, err := evidence.BuildEvidence(src, opts)
		if err == nil {
			err = b.Seal()
		}
		return &b, b.BundleID, err
	case runproof.BundleSOC2:
		b, err := evidence.BuildSOC2(src, opts)
		if err == nil {
			err = b.Seal()
		}
		return &b, b.BundleID, err
	case runproof.BundleExecutiveDebrief:
		b, err := evidence.BuildExecutiveDebrief(src, opts)
		if err == nil {
			err = b.Seal()
		}
		return &b, b.BundleID, err
	}
	return nil, "", fmt.Errorf("export: unknown bundle type %q", r.BundleType)
}

// render writes the bundle a request asks for in its format.
func render(w io.Writer, r request, src evidence.Source, idSuffix string) (bundleID string, err error) {
	bundle, bundleID, err := build(r, src, idSuffix)
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
	}
	return "", fmt.Errorf("export: format %q cannot be rendered", r.Format)
}

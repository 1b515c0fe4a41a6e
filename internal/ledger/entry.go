package ledger

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/runproof/runproof/internal/runproof"
)

// ExportEntryType names the version of a finished export's leaf format. A
// later format gets a new name; leaves already written keep theirs.
const ExportEntryType = runproof.ExportEntryType

// ExportEntry is the leaf of one finished export: the export record
// (docs/integrity.md, "Export records")
// as it stood when the export ended, without its delivery, which comes
// later. Its bytes are the RFC 8785 form of this object; times are UTC
// with six fractional digits.
type ExportEntry struct {
	Type            string `json:"type"`
	ExportID        string `json:"export_id"`
	TenantID        string `json:"tenant_id"`
	Status          string `json:"status"` // completed or failed
	Scope           string `json:"scope"`
	RunID           string `json:"run_id,omitempty"`
	IncidentID      string `json:"incident_id,omitempty"`
	BundleType      string `json:"bundle_type"`
	Format          string `json:"format"`
	RequestedBy     string `json:"requested_by"`
	Origin          string `json:"origin"`
	SourceComponent string `json:"source_component"`
	CorrelationID   string `json:"correlation_id,omitempty"`
	ExportReason    string `json:"export_reason,omitempty"`
	PeriodStart     string `json:"period_start,omitempty"`
	PeriodEnd       string `json:"period_end,omitempty"`
	CreatedAt       string `json:"created_at"`
	FinishedAt      string `json:"finished_at"`
	BundleID        string `json:"bundle_id,omitempty"`      // completed, or sealed before it failed
	Checksum        string `json:"checksum,omitempty"`       // completed: sha256 of the delivered artifact
	SizeBytes       int64  `json:"size_bytes,omitempty"`     // completed
	FailureReason   string `json:"failure_reason,omitempty"` // failed
}

// ExportEntryFor returns the entry of a finished export. A pending export has
// none (EINVALID).
func ExportEntryFor(rec runproof.Export) (ExportEntry, error) {
	if rec.Status != runproof.ExportCompleted && rec.Status != runproof.ExportFailed || rec.CompletedAt == nil {
		return ExportEntry{}, runproof.Errorf(runproof.EINVALID, "export %s is %s: only a finished export goes into the ledger", rec.ID, rec.Status)
	}
	return ExportEntry{
		Type: ExportEntryType, ExportID: rec.ID, TenantID: rec.TenantID, Status: string(rec.Status),
		Scope: string(rec.Scope), RunID: rec.RunID, IncidentID: rec.IncidentID,
		BundleType: string(rec.BundleType), Format: string(rec.Format), RequestedBy: rec.RequestedBy,
		Origin: string(rec.Origin), SourceComponent: rec.SourceComponent, CorrelationID: rec.CorrelationID,
		ExportReason: rec.ExportReason, PeriodStart: optTime(rec.PeriodStart), PeriodEnd: optTime(rec.PeriodEnd),
		CreatedAt: runproof.FormatTime(rec.CreatedAt), FinishedAt: runproof.FormatTime(*rec.CompletedAt),
		BundleID: rec.BundleID, Checksum: rec.Checksum, SizeBytes: rec.SizeBytes, FailureReason: rec.FailureReason,
	}, nil
}

func optTime(t *time.Time) string {
	if t == nil {
		return ""
	}
	return runproof.FormatTime(*t)
}

// Bytes returns the leaf bytes: the entry's RFC 8785 form. They are
// written directly, members in the byte order of their names, unless a
// string is not valid UTF-8 or the size is beyond 2^53, which
// runproof.Canonical turns as JCS does.
func (e ExportEntry) Bytes() ([]byte, error) {
	if b, ok := e.appendCanonical(make([]byte, 0, 512)); ok {
		return b, nil
	}
	return runproof.Canonical(e)
}

// appendCanonical appends the entry's RFC 8785 form to b; it reports
// false, leaving the job to runproof.Canonical, for what that one changes.
func (e ExportEntry) appendCanonical(b []byte) ([]byte, bool) {
	if e.SizeBytes > 1<<53 || e.SizeBytes < -(1<<53) {
		return b, false
	}
	valid := true
	sep := byte('{')
	member := func(name, value string, omitEmpty bool) {
		if omitEmpty && value == "" {
			return
		}
		valid = valid && utf8.ValidString(value)
		b = append(append(append(b, sep, '"'), name...), '"', ':')
		b = runproof.AppendJCSString(b, value)
		sep = ','
	}
	member("bundle_id", e.BundleID, true)
	member("bundle_type", e.BundleType, false)
	member("checksum", e.Checksum, true)
	member("correlation_id", e.CorrelationID, true)
	member("created_at", e.CreatedAt, false)
	member("export_id", e.ExportID, false)
	member("export_reason", e.ExportReason, true)
	member("failure_reason", e.FailureReason, true)
	member("finished_at", e.FinishedAt, false)
	member("format", e.Format, false)
	member("incident_id", e.IncidentID, true)
	member("origin", e.Origin, false)
	member("period_end", e.PeriodEnd, true)
	member("period_start", e.PeriodStart, true)
	member("requested_by", e.RequestedBy, false)
	member("run_id", e.RunID, true)
	member("scope", e.Scope, false)
	if e.SizeBytes != 0 {
		b = append(append(b, sep), `"size_bytes":`...)
		b = strconv.AppendInt(b, e.SizeBytes, 10)
	}
	member("source_component", e.SourceComponent, false)
	member("status", e.Status, false)
	member("tenant_id", e.TenantID, false)
	member("type", e.Type, false)
	return append(b, '}'), valid
}

// leafBytes returns the leaf of a finished export.
func leafBytes(rec runproof.Export) ([]byte, error) {
	e, err := ExportEntryFor(rec)
	if err != nil {
		return nil, err
	}
	return e.Bytes()
}

// ParseExportEntry reads leaf bytes back. It does not check that they are
// canonical: a proof covers the bytes as they are.
func ParseExportEntry(data []byte) (ExportEntry, error) {
	var e ExportEntry
	if err := json.Unmarshal(data, &e); err != nil {
		return e, fmt.Errorf("ledger entry: %w", err)
	}
	if e.Type != ExportEntryType {
		return e, fmt.Errorf("ledger entry: type %q, want %q", e.Type, ExportEntryType)
	}
	return e, nil
}

// ManifestEntryType names the version of the sealed manifest leaf.
const ManifestEntryType = runproof.ManifestEntryType

// ManifestEntry is the leaf of a sealed ZIP export: its signed
// manifest.json, by digest, with the manifest's own members that name the
// export. It is appended after the manifest is signed and before the ZIP
// is written, so that the ZIP can carry the proof of its own leaf
// (proof.json). Every member is in manifest.json or is its digest: anyone
// holding the ZIP rebuilds the leaf with ManifestLeaf. The manifest cannot
// hold its own ledger index, as the leaf is made of it; proof.json does.
type ManifestEntry struct {
	Type           string `json:"type"`
	ExportID       string `json:"export_id"`
	TenantID       string `json:"tenant_id"`
	BundleID       string `json:"bundle_id"`
	BundleType     string `json:"bundle_type"`
	CreatedAt      string `json:"created_at"`
	KeyID          string `json:"key_id"`
	ManifestSHA256 string `json:"manifest_sha256"` // "sha256:" and the hex digest of the manifest.json bytes
}

// Bytes returns the leaf bytes: the entry's RFC 8785 form.
func (e ManifestEntry) Bytes() ([]byte, error) { return runproof.Canonical(e) }

// check refuses an entry with an empty member: it names no sealed export.
func (e ManifestEntry) check() error {
	for _, m := range []struct{ name, value string }{{"export_id", e.ExportID}, {"tenant_id", e.TenantID},
		{"bundle_id", e.BundleID}, {"bundle_type", e.BundleType}, {"created_at", e.CreatedAt}, {"key_id", e.KeyID},
		{"manifest_sha256", e.ManifestSHA256}} {
		if m.value == "" {
			return fmt.Errorf("no %s", m.name)
		}
	}
	return nil
}

// ManifestLeaf rebuilds the leaf of a sealed ZIP export from its
// manifest.json bytes alone.
func ManifestLeaf(manifestJSON []byte) ([]byte, error) {
	var m struct {
		ExportID   string `json:"export_id"`
		TenantID   string `json:"tenant_id"`
		BundleID   string `json:"bundle_id"`
		BundleType string `json:"bundle_type"`
		CreatedAt  string `json:"created_at"`
		KeyID      string `json:"key_id"`
	}
	if err := json.Unmarshal(manifestJSON, &m); err != nil {
		return nil, fmt.Errorf("manifest.json: %w", err)
	}
	e := ManifestEntry{Type: ManifestEntryType, ExportID: m.ExportID, TenantID: m.TenantID, BundleID: m.BundleID,
		BundleType: m.BundleType, CreatedAt: m.CreatedAt, KeyID: m.KeyID, ManifestSHA256: runproof.DigestBytes(manifestJSON)}
	if err := e.check(); err != nil {
		return nil, fmt.Errorf("manifest.json: %w", err)
	}
	return e.Bytes()
}

// ManifestEntryFor returns the manifest leaf of a sealed export from its
// record: the request and the sealed event. An export that was not sealed
// has none (EINVALID).
func ManifestEntryFor(rec runproof.Export) (ManifestEntry, error) {
	if rec.ManifestSHA256 == "" {
		return ManifestEntry{}, runproof.Errorf(runproof.EINVALID, "export %s has no sealed manifest", rec.ID)
	}
	e := ManifestEntry{Type: ManifestEntryType, ExportID: rec.ID, TenantID: rec.TenantID, BundleID: rec.BundleID,
		BundleType: string(rec.BundleType), CreatedAt: runproof.FormatTime(rec.CreatedAt), KeyID: rec.KeyID,
		ManifestSHA256: rec.ManifestSHA256}
	if err := e.check(); err != nil {
		return e, runproof.Errorf(runproof.EINVALID, "export %s: sealed manifest: %v", rec.ID, err)
	}
	return e, nil
}

// manifestLeafBytes returns the manifest leaf of a sealed export.
func manifestLeafBytes(rec runproof.Export) ([]byte, error) {
	e, err := ManifestEntryFor(rec)
	if err != nil {
		return nil, err
	}
	return e.Bytes()
}

// ParseManifestEntry reads manifest leaf bytes back, without checking that
// they are canonical.
func ParseManifestEntry(data []byte) (ManifestEntry, error) {
	var e ManifestEntry
	if err := json.Unmarshal(data, &e); err != nil {
		return e, fmt.Errorf("ledger entry: %w", err)
	}
	if e.Type != ManifestEntryType {
		return e, fmt.Errorf("ledger entry: type %q, want %q", e.Type, ManifestEntryType)
	}
	return e, nil
}

package ledger

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/runproof/runproof/internal/runproof"
)

// EntryType names the version of the leaf format. A later format gets a new
// name; leaves already written keep theirs.
const EntryType = "runproof.export.v1"

// Entry is the leaf of one finished export: the export record (DOMAIN.md)
// as it stood when the export ended, without its delivery, which comes
// later. Its bytes are the RFC 8785 form of this object; times are UTC
// with six fractional digits.
type Entry struct {
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
	BundleID        string `json:"bundle_id,omitempty"`      // completed
	Checksum        string `json:"checksum,omitempty"`       // completed: sha256 of the delivered artifact
	SizeBytes       int64  `json:"size_bytes,omitempty"`     // completed
	FailureReason   string `json:"failure_reason,omitempty"` // failed
}

// EntryFor returns the entry of a finished export. A pending export has
// none (EINVALID).
func EntryFor(rec runproof.Export) (Entry, error) {
	if rec.Status != runproof.ExportCompleted && rec.Status != runproof.ExportFailed || rec.CompletedAt == nil {
		return Entry{}, runproof.Errorf(runproof.EINVALID, "export %s is %s: only a finished export goes into the ledger", rec.ID, rec.Status)
	}
	return Entry{
		Type: EntryType, ExportID: rec.ID, TenantID: rec.TenantID, Status: string(rec.Status),
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

// Bytes returns the leaf bytes: the entry's RFC 8785 form.
func (e Entry) Bytes() ([]byte, error) { return runproof.Canonical(e) }

// leafBytes returns the leaf of a finished export.
func leafBytes(rec runproof.Export) ([]byte, error) {
	e, err := EntryFor(rec)
	if err != nil {
		return nil, err
	}
	return e.Bytes()
}

// ParseEntry reads leaf bytes back. It does not check that they are
// canonical: a proof covers the bytes as they are.
func ParseEntry(data []byte) (Entry, error) {
	var e Entry
	if err := json.Unmarshal(data, &e); err != nil {
		return e, fmt.Errorf("ledger entry: %w", err)
	}
	if e.Type != EntryType {
		return e, fmt.Errorf("ledger entry: type %q, want %q", e.Type, EntryType)
	}
	return e, nil
}

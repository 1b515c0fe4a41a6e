package runproof

import (
	"context"
	"fmt"
	"time"
)

// ExportScope is what an export covers.
type ExportScope string

const (
	ScopeLLMRun     ExportScope = "llm_run"
	ScopeSystem     ExportScope = "system"
	ScopeAudit      ExportScope = "audit"
	ScopeCompliance ExportScope = "compliance"
)

// ExportFormat is the file format delivered.
type ExportFormat string

const (
	FormatJSON ExportFormat = "json"
	FormatCSV  ExportFormat = "csv"
	FormatPDF  ExportFormat = "pdf"
	FormatZIP  ExportFormat = "zip"
)

// ExportStatus is an export's lifecycle state.
type ExportStatus string

const (
	ExportPending   ExportStatus = "pending"
	ExportCompleted ExportStatus = "completed"
	ExportFailed    ExportStatus = "failed"
)

// BundleType names the three bundles.
type BundleType string

const (
	BundleEvidence         BundleType = "evidence"
	BundleSOC2             BundleType = "soc2"
	BundleExecutiveDebrief BundleType = "executive_debrief"
)

// ExportRequest is the immutable first entry of an export: what was asked,
// by whom. Its lifecycle follows as ExportEvents; neither is ever updated.
type ExportRequest struct {
	ID              string       `json:"id"`
	TenantID        string       `json:"tenant_id"`
	Scope           ExportScope  `json:"scope"`
	RunID           string       `json:"run_id,omitempty"`
	IncidentID      string       `json:"incident_id,omitempty"`
	BundleType      BundleType   `json:"bundle_type"`
	Format          ExportFormat `json:"format"`
	RequestedBy     string       `json:"requested_by"`
	Origin          Origin       `json:"origin"`
	SourceComponent string       `json:"source_component"`
	CorrelationID   string       `json:"correlation_id,omitempty"`
	ExportReason    string       `json:"export_reason,omitempty"`
	PeriodStart     *time.Time   `json:"period_start,omitempty"`
	PeriodEnd       *time.Time   `json:"period_end,omitempty"`
	CreatedAt       time.Time    `json:"created_at"`
}

// Kinds of export event. A ZIP export is sealed (its manifest signed)
// before it completes or fails; other formats are not.
const (
	ExportEventSealed    = "sealed"
	ExportEventCompleted = "completed"
	ExportEventFailed    = "failed"
	ExportEventDelivered = "delivered"
)

// ExportEvent is one step of an export's lifecycle. An export has at most
// one event of each kind, and one completed-or-failed event.
type ExportEvent struct {
	TenantID       string    `json:"tenant_id"`
	ExportID       string    `json:"export_id"`
	Kind           string    `json:"kind"`
	At             time.Time `json:"at"`
	Checksum       string    `json:"checksum,omitempty"`        // completed: sha256 of the artifact
	SizeBytes      int64     `json:"size_bytes,omitempty"`      // completed
	BundleID       string    `json:"bundle_id,omitempty"`       // sealed, completed
	Artifact       string    `json:"artifact,omitempty"`        // completed: where the artifact store keeps it
	Reason         string    `json:"reason,omitempty"`          // failed: why, for users
	ManifestSHA256 string    `json:"manifest_sha256,omitempty"` // sealed: sha256 of the signed manifest.json
	KeyID          string    `json:"key_id,omitempty"`          // sealed: the key that signed it
	Steps          *int64    `json:"steps,omitempty"`           // completed: the run's steps the bundle was built from
	Remediation    string    `json:"remediation,omitempty"`     // completed: the incident's remediation status the bundle shows
	// RemediationNotesDigest (completed) is the digest of the incident's
	// remediation notes the bundle shows ("" without an incident, or for
	// an export made before it was recorded).
	RemediationNotesDigest string `json:"remediation_notes_digest,omitempty"`
	StepsOmitted           *int64 `json:"steps_omitted,omitempty"` // completed: the run's steps the bundle leaves out
}

// SealedAfterError returns the error of a sealed event refused because
// its export was sealed or ended already.
func SealedAfterError(exportID string) error {
	return Errorf(ECONFLICT, "export %q was sealed or ended already: a manifest is sealed once, before its export ends", exportID)
}

// CheckKind refuses an event of a kind runproof does not know.
func (e ExportEvent) CheckKind() error {
	switch e.Kind {
	case ExportEventSealed, ExportEventCompleted, ExportEventFailed, ExportEventDelivered:
		return nil
	}
	return Invalid(FieldError{Field: "kind", Message: fmt.Sprintf("unknown export event kind %q", e.Kind)})
}

// Export is the export record as the API shows it: the request folded with
// its events (docs/integrity.md, "Export records").
type Export struct {
	ExportRequest
	Status        ExportStatus `json:"status"`
	Checksum      string       `json:"checksum,omitempty"`
	DeliveredAt   *time.Time   `json:"delivered_at,omitempty"`
	CompletedAt   *time.Time   `json:"completed_at,omitempty"`
	BundleID      string       `json:"bundle_id,omitempty"`
	SizeBytes     int64        `json:"size_bytes,omitempty"`
	FailureReason string       `json:"failure_reason,omitempty"`
	// TotalSteps is how many steps of its run a completed export's bundle
	// was built from (nil for exports made before it was recorded).
	TotalSteps *int64 `json:"total_steps,omitempty"`
	// Remediation is the incident's remediation status a completed
	// export's bundle shows ("" without an incident).
	Remediation string `json:"remediation_status,omitempty"`
	// RemediationNotesDigest is the digest of the incident's remediation
	// notes a completed export's bundle shows (see ExportEvent).
	RemediationNotesDigest string `json:"-"`
	// StepsOmitted is how many of those steps a completed export's bundle
	// leaves out (include_raw_steps false; nil for exports made before it
	// was recorded).
	StepsOmitted *int64 `json:"steps_omitted,omitempty"`
	// ManifestSHA256 is the digest of the signed manifest.json of a ZIP
	// export, recorded when it was sealed, before the ZIP was written.
	ManifestSHA256 string     `json:"manifest_sha256,omitempty"`
	KeyID          string     `json:"-"` // the key that signed the manifest
	SealedAt       *time.Time `json:"-"`
	Artifact       string     `json:"-"`
}

// FoldExport builds the record from its request and events, in any order.
func FoldExport(req ExportRequest, events []ExportEvent) Export {
	e := Export{ExportRequest: req, Status: ExportPending}
	for _, ev := range events {
		at := ev.At
		switch ev.Kind {
		case ExportEventSealed:
			e.SealedAt, e.ManifestSHA256, e.KeyID = &at, ev.ManifestSHA256, ev.KeyID
			if e.BundleID == "" { // a failed export keeps the id of the bundle it sealed
				e.BundleID = ev.BundleID
			}
		case ExportEventCompleted:
			e.Status, e.CompletedAt = ExportCompleted, &at
			e.Checksum, e.SizeBytes, e.BundleID, e.Artifact = ev.Checksum, ev.SizeBytes, ev.BundleID, ev.Artifact
			e.TotalSteps, e.Remediation, e.StepsOmitted = ev.Steps, ev.Remediation, ev.StepsOmitted
			e.RemediationNotesDigest = ev.RemediationNotesDigest
		case ExportEventFailed:
			e.Status, e.CompletedAt, e.FailureReason = ExportFailed, &at, ev.Reason
		case ExportEventDelivered:
			if e.DeliveredAt == nil || at.Before(*e.DeliveredAt) {
				e.DeliveredAt = &at
			}
		}
	}
	return e
}

// FoldExports folds each request with its events (any order, of any of the
// requests), in the order of reqs.
func FoldExports(reqs []ExportRequest, events []ExportEvent) []Export {
	byExport := make(map[string][]ExportEvent, len(reqs))
	for _, e := range events {
		byExport[e.ExportID] = append(byExport[e.ExportID], e)
	}
	out := make([]Export, len(reqs))
	for i, r := range reqs {
		out[i] = FoldExport(r, byExport[r.ID])
	}
	return out
}

// ExportStore keeps export records. Both engines implement it next to Store
// and pass the same conformance suite.
type ExportStore interface {
	// CreateExport stores the request of a new export (ECONFLICT on a
	// duplicate id).
	CreateExport(ctx context.Context, req ExportRequest) error
	// AppendExportEvent adds a lifecycle event. ECONFLICT when the export
	// already has an event of that kind, or a completed/failed event and
	// this is the other one; ENOTFOUND when the export does not exist.
	AppendExportEvent(ctx context.Context, ev ExportEvent) error
	GetExport(ctx context.Context, tenantID, exportID string) (Export, error)
	// ListExports returns exports newest first (created_at, then id).
	ListExports(ctx context.Context, p ListExportsParams) ([]Export, error)
	// LeaseExport records that a live process makes the export until a
	// time, and renews it: the lease is the export's, whoever holds it.
	LeaseExport(ctx context.Context, tenantID, exportID string, until time.Time) error
	// UnfinishedExports returns the tenant's exports that have neither
	// completed nor failed and were created before createdBefore or whose
	// lease ran out before leaseBefore, in any order.
	UnfinishedExports(ctx context.Context, tenantID string, createdBefore, leaseBefore time.Time) ([]Export, error)
	// DropExportLeases removes the tenant's leases that ran out before a
	// time.
	DropExportLeases(ctx context.Context, tenantID string, before time.Time) error
	// ExportTenants lists the tenants that have exports, in byte order.
	ExportTenants(ctx context.Context) ([]string, error)
	// AddReview stores a review of an export (ECONFLICT on a duplicate
	// id, ENOTFOUND when the tenant has no such export).
	AddReview(ctx context.Context, r Review) error
	// RunReviews returns the reviews of a run's exports, oldest first
	// (reviewed_at, then id).
	RunReviews(ctx context.Context, tenantID, runID string) ([]Review, error)
}

// Review is a reviewer's sign-off on a SOC 2 export: they read that bundle
// and mark it REVIEWED or APPROVED, with notes. Exports are never changed,
// so the sign-off shows in the SOC 2 bundles of the same run made after it
// that hold the same steps (RunSteps: a run's steps are append-only and
// numbered without gaps, so the same number is the same steps) and the same
// remediation status.
type Review struct {
	TenantID   string `json:"-"`
	ID         string `json:"id"`
	ExportID   string `json:"export_id"` // the export reviewed
	RunID      string `json:"run_id"`
	BundleID   string `json:"bundle_id"` // the bundle reviewed
	Status     string `json:"review_status"`
	ReviewedBy string `json:"reviewed_by"`
	KeyID      string `json:"key_id"` // the API key that recorded it
	Notes      string `json:"auditor_notes,omitempty"`
	RunSteps   int64  `json:"run_steps"` // the run's steps, all in the bundle reviewed
	// Remediation is the incident's remediation status the bundle reviewed
	// shows: a later change shows in the controls, which the review did not
	// see.
	Remediation string `json:"remediation_status,omitempty"`
	// RemediationNotesDigest is the digest of the remediation notes it shows
	// ("" for a review made before it was recorded).
	RemediationNotesDigest string    `json:"-"`
	ReviewedAt             time.Time `json:"reviewed_at"`
}

// ListExportsParams filters exports. Zero values do not filter.
type ListExportsParams struct {
	TenantID   string
	RunID      string
	IncidentID string
	From, To   time.Time // created_at in [From, To)
	Limit      int
	Offset     int
}

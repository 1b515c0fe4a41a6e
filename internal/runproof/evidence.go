package runproof

import "time"

// EvidenceMeta is the evidence metadata every read response carries
// (docs/logs.md): who asked, about what, when, and the digest
// of the data returned.
type EvidenceMeta struct {
	TenantID        string     `json:"tenant_id"`
	RunID           string     `json:"run_id,omitempty"`
	Actor           string     `json:"actor"`
	OccurredAt      *time.Time `json:"occurred_at,omitempty"`
	RecordedAt      time.Time  `json:"recorded_at"`
	TraceID         string     `json:"trace_id,omitempty"`
	PolicyIDs       []string   `json:"policy_ids"`
	IncidentIDs     []string   `json:"incident_ids"`
	ExportID        string     `json:"export_id,omitempty"`
	CorrelationID   string     `json:"correlation_id"`
	SourceComponent string     `json:"source_component"`
	Origin          Origin     `json:"origin"`
	Checksum        string     `json:"checksum"`
}

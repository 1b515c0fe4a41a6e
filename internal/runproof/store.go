package runproof

import (
	"context"
	"time"
)

// Store is the storage contract. SQLite and PostgreSQL implement it and both
// pass the one conformance suite in internal/store/storetest.
//
// Every method is scoped by tenant: a record of another tenant is ENOTFOUND.
// The exceptions span tenants by design, for the server's own work and
// never for a tenant's request: APIKeyByHash (a key names its tenant),
// ExportTenants, LedgerTenants, AuditTenantsToSeal and StepsTenantsToSeal
// (which tenants to seal or verify).
// Methods return *Error values with codes ENOTFOUND and ECONFLICT where noted;
// anything else is an internal error.
type Store interface {
	// ExportStore keeps export records (export.go).
	ExportStore
	// LedgerStore keeps the export ledger (ledger.go).
	LedgerStore

	// Ping reports whether the database answers.
	Ping(ctx context.Context) error
	Close() error

	// CreateAPIKey stores a key; ECONFLICT when its ID or hash exists.
	CreateAPIKey(ctx context.Context, k APIKey) error
	// APIKeyByHash finds a key by the SHA-256 of its secret (ENOTFOUND),
	// revoked or not.
	APIKeyByHash(ctx context.Context, hash string) (APIKey, error)
	// APIKey returns one of the tenant's keys by its id (ENOTFOUND),
	// revoked or not.
	APIKey(ctx context.Context, tenantID, keyID string) (APIKey, error)
	// ListAPIKeys returns the tenant's keys, oldest first.
	ListAPIKeys(ctx context.Context, tenantID string) ([]APIKey, error)
	// RevokeAPIKey marks one of the tenant's keys revoked at a time and
	// returns it; ENOTFOUND when the tenant has no such key, ECONFLICT when
	// it is revoked already.
	RevokeAPIKey(ctx context.Context, tenantID, keyID string, at time.Time) (APIKey, error)

	// CreatePolicies stores each p (all of one tenant) as a new version:
	// when the tenant has a policy of the same name, p takes its ID and the
	// next version; otherwise p.ID and version 1. They are stored together
	// or not at all, so a run is judged by all of them or by none. check,
	// when not nil, is first given the tenant's active policies as they
	// stand while no other write of the tenant's policies can come between;
	// its error is returned and nothing stored. It returns the stored
	// policies, in the order given.
	CreatePolicies(ctx context.Context, check func(active []Policy) error, ps ...Policy) ([]Policy, error)
	// RetirePolicy stores, as the next version of the tenant's policy id,
	// a copy of its latest version that retires it (Retired, created at).
	// ENOTFOUND when the tenant has no such policy, ECONFLICT when it is
	// retired already.
	RetirePolicy(ctx context.Context, tenantID, id string, at time.Time) (Policy, error)
	// PolicyVersions returns every version of the tenant's policy id, the
	// retiring ones included, oldest first; ENOTFOUND when there is none.
	PolicyVersions(ctx context.Context, tenantID, id string) ([]Policy, error)
	// ActivePolicies returns the latest version of each of the tenant's
	// policies but those retired, ordered by name.
	ActivePolicies(ctx context.Context, tenantID string) ([]Policy, error)

	// CreateRun stores a new run and, if not already stored, its snapshot.
	// ECONFLICT when the tenant already has a run with that ID.
	CreateRun(ctx context.Context, r Run, snap Snapshot) error
	GetRun(ctx context.Context, tenantID, runID string) (Run, error)
	// ListRuns returns runs newest first (started_at, then run id, descending).
	ListRuns(ctx context.Context, p ListRunsParams) ([]Run, error)
	GetSnapshot(ctx context.Context, tenantID, snapshotID string) (Snapshot, error)

	// UpdateRun locks the run, loads its state and calls fn; what fn returns
	// is written in the same transaction (new steps, the run's new state, an
	// incident to open). If fn fails, nothing is written and its error is
	// returned. Concurrent calls for one run are serialised.
	UpdateRun(ctx context.Context, p UpdateRunParams, fn func(RunState) (RunChange, error)) error

	// ListSteps returns a run's steps in index order.
	ListSteps(ctx context.Context, p ListStepsParams) ([]Step, error)
	// RunningTotals returns the run's totals over its steps up to and
	// including the one at index (ENOTFOUND when it has no such step): one
	// row's read, however long the run.
	RunningTotals(ctx context.Context, tenantID, runID string, index int64) (Totals, error)

	GetIncident(ctx context.Context, tenantID, incidentID string) (Incident, error)
	// SetRemediation records where the remediation of an incident stands
	// and returns the incident (ENOTFOUND).
	SetRemediation(ctx context.Context, p SetRemediationParams) (Incident, error)
	// ListIncidents returns incidents newest first (violation time, then id).
	ListIncidents(ctx context.Context, p ListIncidentsParams) ([]Incident, error)

	// AppendAuditEvents stores events; they can never be changed afterwards.
	AppendAuditEvents(ctx context.Context, events ...AuditEvent) error
	// ListAuditEvents returns events newest first (occurred_at, then id).
	ListAuditEvents(ctx context.Context, p ListAuditParams) ([]AuditEvent, error)
}

// UpdateRunParams names the run to lock and the range of step indexes whose
// stored steps fn needs to see (none when StepsFrom > StepsTo).
type UpdateRunParams struct {
	TenantID  string
	RunID     string
	StepsFrom int64
	StepsTo   int64
}

// RunState is what UpdateRun hands to its function.
type RunState struct {
	Run      Run
	Snapshot Snapshot
	Existing []Step // stored steps with index in [StepsFrom, StepsTo], in order
	// Inflection is the step that broke a stop policy of the run, nil when
	// it has no incident.
	Inflection *Step
}

// RunChange is what UpdateRun writes: Run replaces the stored run's mutable
// fields (status, stopped_at, completed_at, termination_reason, incident_id,
// totals), Steps are inserted, Incident (if not nil) is opened.
type RunChange struct {
	Run      Run
	Steps    []Step
	Incident *Incident
}

// RunCursor is the position after which a page of runs starts.
type RunCursor struct {
	StartedAt time.Time
	RunID     string
}

// ListRunsParams filters runs. Zero values do not filter. Limit is required.
type ListRunsParams struct {
	TenantID string
	AgentID  string
	Status   RunStatus
	From, To time.Time // started_at in [From, To)
	After    *RunCursor
	Limit    int
}

// ListStepsParams selects steps of one run. Zero values do not filter;
// Limit 0 means all.
type ListStepsParams struct {
	TenantID  string
	RunID     string
	FromIndex int64
	From, To  time.Time // timestamp in [From, To)
	Limit     int
	// Judged keeps only the steps with findings, and reads them without
	// their content: what sums up how a run was judged needs no more.
	Judged bool
	// WithoutContent reads the steps without their content.
	WithoutContent bool
	// MaxContentBytes, when above 0, ends the list with the step whose
	// content brings the content listed to that many bytes or more: a
	// page of steps stays within memory however large each step's
	// content, and holds at least one step.
	MaxContentBytes int64
}

// StepPageBytes bounds the content of one page of steps
// (ListStepsParams.MaxContentBytes). The page's last step may take it past
// the bound, so that every page holds at least one step.
const StepPageBytes = 16 << 20

// SetRemediationParams says where the remediation of an incident stands.
type SetRemediationParams struct {
	TenantID   string
	IncidentID string
	Status     string // pending, in_progress or completed
	Notes      string
}

// ListIncidentsParams filters incidents. Zero values do not filter.
type ListIncidentsParams struct {
	TenantID          string
	RunID             string
	RemediationStatus string
	From, To          time.Time // violation time in [From, To)
	// DetectedBefore, when set, leaves out the incidents detected since:
	// the list as it stood then, which paging by offset needs (violation
	// times are the agents' clocks, so an incident opened later may sort
	// among older ones).
	DetectedBefore time.Time
	Limit          int
	Offset         int
}

// ListAuditParams filters audit events. Zero values do not filter.
type ListAuditParams struct {
	TenantID string
	Category string
	System   bool      // only the events of runproof's own components (source_component not "api", or actor "system")
	From, To time.Time // occurred_at in [From, To)
	Limit    int
	Offset   int
}

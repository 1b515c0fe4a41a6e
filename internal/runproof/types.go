package runproof

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Role is what an API key may do. Each key has exactly one.
type Role string

const (
	RoleViewer   Role = "viewer"   // reads runs, incidents and logs
	RoleExporter Role = "exporter" // viewer, and exports bundles
	RoleAuditor  Role = "auditor"  // exporter, and reviews SOC 2 bundles and reads the audit log
	RoleAdmin    Role = "admin"    // everything, including policies, keys and writing runs
	RoleAgent    Role = "agent"    // writes runs and steps, and polls a run's state (for "stop") and the policies
)

// Roles lists every role, for validation and help texts.
var Roles = []Role{RoleViewer, RoleExporter, RoleAuditor, RoleAdmin, RoleAgent}

// Permission is one capability of a role, checked by the HTTP layer (the
// CLI acts as the operator, who may do everything).
type Permission string

const (
	PermPoll   Permission = "poll"   // a run's state and the active policies: what an agent checks
	PermRead   Permission = "read"   // runs, steps and their content, incidents, the logs
	PermAudit  Permission = "audit"  // the audit log
	PermExport Permission = "export" // create, read and download exports and their proofs
	PermReview Permission = "review" // sign off SOC 2 bundles
	PermManage Permission = "manage" // policies and keys
	PermIngest Permission = "ingest" // create runs and append steps
)

var rolePerms = map[Role][]Permission{
	RoleViewer:   {PermPoll, PermRead},
	RoleExporter: {PermPoll, PermRead, PermExport},
	RoleAuditor:  {PermPoll, PermRead, PermExport, PermReview, PermAudit},
	RoleAdmin:    {PermPoll, PermRead, PermExport, PermReview, PermAudit, PermManage, PermIngest},
	// An agent reads no step content and no log: a key that leaks from
	// one agent shows nothing of the others. A key bound to an agent is
	// held to its runs where these permissions reach (service.ForAgent);
	// the reads of PermRead and beyond are not scoped by agent, so giving
	// an agent one of them would show it every agent's runs.
	RoleAgent: {PermPoll, PermIngest},
}

// Valid reports whether r is a known role.
func (r Role) Valid() bool { _, ok := rolePerms[r]; return ok }

// Can reports whether the role holds the permission.
func (r Role) Can(p Permission) bool {
	for _, q := range rolePerms[r] {
		if q == p {
			return true
		}
	}
	return false
}

// Origin is who initiated an action: an export, or an audited one.
type Origin string

const (
	OriginSystem Origin = "SYSTEM"
	OriginHuman  Origin = "HUMAN"
	OriginAgent  Origin = "AGENT"
)

// Origin is AGENT for agent keys and HUMAN for every other role.
func (r Role) Origin() Origin {
	if r == RoleAgent {
		return OriginAgent
	}
	return OriginHuman
}

// TenantIDRule says which tenant ids ValidTenantID accepts, for messages.
const TenantIDRule = `must be 1-128 letters, digits, '.', '_', ':' or '-', neither "." nor holding ".."`

// ValidTenantID reports whether s can be a tenant id (TenantIDRule). A
// tenant's id names the directory of its export artifacts, hence no "."
// and no "..".
func ValidTenantID(s string) bool {
	return !strings.Contains(s, "..") && ValidID(s)
}

// MaxStepTypeLen is the longest step type, in bytes.
const MaxStepTypeLen = 200

// MaxCorrelationID is the longest correlation id kept, in bytes.
const MaxCorrelationID = 128

// IDRule says which ids ValidID accepts, for messages.
const IDRule = `must be 1-128 letters, digits, '.', '_', ':' or '-', other than "." and ".."`

// ValidID accepts the ids clients choose, such as run ids (IDRule). They
// appear in URL paths, where "." and ".." would name another path.
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > 128 || s == "." || s == ".." {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("._:-", c) >= 0) {
			return false
		}
	}
	return true
}

// RoleNames lists the roles, comma-separated, for messages.
func RoleNames() string {
	names := make([]string, len(Roles))
	for i, r := range Roles {
		names[i] = string(r)
	}
	return strings.Join(names, ", ")
}

// APIKey is a tenant's credential. Only the SHA-256 of the secret is kept.
type APIKey struct {
	ID        string     `json:"id"`
	TenantID  string     `json:"tenant_id"`
	Role      Role       `json:"role"`
	Name      string     `json:"name"`
	AgentID   string     `json:"agent_id,omitempty"` // an agent key's one agent, when bound to it: its runs alone
	Hash      string     `json:"-"`
	CreatedAt time.Time  `json:"created_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"` // from then on the key authenticates nothing
}

// PolicyType is what a policy limits.
type PolicyType string

const (
	PolicyTokenLimit     PolicyType = "token_limit"      // running total of input+output tokens
	PolicyCostLimit      PolicyType = "cost_limit"       // running total cost, cents
	PolicyStepLimit      PolicyType = "step_limit"       // number of steps
	PolicyDurationLimit  PolicyType = "duration_limit"   // running total of step durations, ms
	PolicyStepTypeDenied PolicyType = "step_type_denied" // a step whose type is listed
	PolicyExpression     PolicyType = "expression"       // a CEL expression that is true on a breach
)

// PolicyTypes lists every policy type.
var PolicyTypes = []PolicyType{PolicyTokenLimit, PolicyCostLimit, PolicyStepLimit,
	PolicyDurationLimit, PolicyStepTypeDenied, PolicyExpression}

// IsLimit reports whether the type compares a running total with a threshold.
func (t PolicyType) IsLimit() bool {
	switch t {
	case PolicyTokenLimit, PolicyCostLimit, PolicyStepLimit, PolicyDurationLimit:
		return true
	}
	return false
}

// Unit names the unit of a limit type's threshold and actual value, as
// people read them ("cents"); "" for the other types.
func (t PolicyType) Unit() string {
	switch t {
	case PolicyTokenLimit:
		return "tokens"
	case PolicyCostLimit:
		return "cents"
	case PolicyStepLimit:
		return "steps"
	case PolicyDurationLimit:
		return "ms"
	}
	return ""
}

// UnitFor is the unit of a figure (as its threshold or actual value is
// written) of a limit of type t, singular for 1: "1 step", "2 steps".
func (t PolicyType) UnitFor(figure string) string {
	u := t.Unit()
	if figure == "1" && t != PolicyDurationLimit { // "ms" is no plural
		u = strings.TrimSuffix(u, "s")
	}
	return u
}

// Action is what happens when a policy is broken.
type Action string

const (
	ActionStop Action = "stop" // violation: incident, stop decision
	ActionWarn Action = "warn" // steps marked warning, recorded in governance
)

// Policy is one version of a tenant's rule. Versions of one policy share ID
// and Name; the highest version is the active one.
type Policy struct {
	ID         string     `json:"id"`
	TenantID   string     `json:"tenant_id"`
	Name       string     `json:"name"`
	Version    int        `json:"version"`
	Type       PolicyType `json:"type"`
	Threshold  string     `json:"threshold"` // canonical decimal, "" when the type has none
	Action     Action     `json:"action"`
	StepTypes  []string   `json:"step_types,omitempty"`
	Expression string     `json:"expression,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
	// Retired marks the version that retires a policy: from its
	// CreatedAt on, the policy is not active and new runs are not judged
	// by it. A later version of its name makes it active again.
	Retired bool `json:"retired,omitempty"`
}

// Retiring returns the version that retires p, p's latest version, at a
// time; ECONFLICT when p is retired already.
func (p Policy) Retiring(at time.Time) (Policy, error) {
	if p.Retired {
		return p, Errorf(ECONFLICT, "policy %q (%s) was retired at %s already", p.Name, p.ID, FormatTime(p.CreatedAt))
	}
	p.Version, p.CreatedAt, p.Retired = p.Version+1, at, true
	return p, nil
}

// Snapshot is the frozen set of a tenant's active policies at a run's start.
// Its ID is the digest of the canonical form of Policies (see NewSnapshot).
type Snapshot struct {
	ID        string    `json:"policy_snapshot_id"`
	TenantID  string    `json:"tenant_id"`
	Policies  []Policy  `json:"active_policies"`
	CreatedAt time.Time `json:"created_at"`
}

// RunStatus is a run's lifecycle state.
type RunStatus string

const (
	RunRunning   RunStatus = "running"
	RunStopped   RunStatus = "stopped" // a stop policy was broken; every later call answers stop
	RunCompleted RunStatus = "completed"
	RunFailed    RunStatus = "failed"
	RunCancelled RunStatus = "cancelled"
)

// RunStatuses lists the run statuses.
var RunStatuses = []string{string(RunRunning), string(RunStopped), string(RunCompleted), string(RunFailed), string(RunCancelled)}

// Totals are a run's running sums, kept exactly. Each is a column of runs
// and, but Steps (a step's index and one), a running_ column of steps on
// both engines, which the runs guard
// keeps from going down (a test fails for a column it does not name) and
// which migration 015's trigger works out (PostgreSQL) or checks (SQLite)
// for a step an older runproof stores without it; and a bound in the
// service's overflow check.
type Totals struct {
	Steps          int64 `json:"steps"`
	InputTokens    int64 `json:"input_tokens"`
	OutputTokens   int64 `json:"output_tokens"`
	CostMicrocents int64 `json:"-"`
	DurationMicros int64 `json:"-"`
}

// Tokens is input plus output tokens.
func (t Totals) Tokens() int64 { return t.InputTokens + t.OutputTokens }

// Add returns the totals with one more step counted.
func (t Totals) Add(s Step) Totals {
	t.Steps++
	t.InputTokens += s.InputTokens
	t.OutputTokens += s.OutputTokens
	t.CostMicrocents += s.CostMicrocents
	t.DurationMicros += s.DurationMicros
	return t
}

// Follow returns the totals with st counted as the run's next step, which
// a store keeps as the step's running totals: ECONFLICT when the run has a
// step of st's index already, an error when st would leave a gap.
func (t Totals) Follow(runID string, st Step) (Totals, error) {
	switch {
	case st.Index < t.Steps:
		return t, Errorf(ECONFLICT, "step %d of run %q already exists", st.Index, runID)
	case st.Index > t.Steps:
		return t, fmt.Errorf("step %d of run %q does not follow its %d steps", st.Index, runID, t.Steps)
	}
	return t.Add(st), nil
}

// Run is one agent execution.
type Run struct {
	TenantID    string     `json:"tenant_id"`
	ID          string     `json:"run_id"`
	AgentID     string     `json:"agent_id"`
	Goal        string     `json:"goal"`
	TraceID     string     `json:"trace_id"`
	Status      RunStatus  `json:"status"`
	SnapshotID  string     `json:"policy_snapshot_id"`
	StartedAt   time.Time  `json:"started_at"`
	StoppedAt   *time.Time `json:"stopped_at,omitempty"`
	CompletedAt *time.Time `json:"completed_at,omitempty"`
	// EndedAs is the status the agent ended the run as (completed, failed
	// or cancelled), set with CompletedAt; a stopped run stays stopped.
	EndedAs RunStatus `json:"ended_as,omitempty"`
	// EndRecordedAt is when runproof recorded the end, by its own clock
	// (CompletedAt is the agent's): late steps are taken for a while after.
	EndRecordedAt     *time.Time `json:"-"`
	TerminationReason string     `json:"termination_reason,omitempty"`
	IncidentID        string     `json:"incident_id,omitempty"`
	Totals            Totals     `json:"totals"`
	CreatedAt         time.Time  `json:"recorded_at"`
}

// StepStatus is the outcome of evaluating one step.
type StepStatus string

const (
	StepOK        StepStatus = "ok"
	StepWarning   StepStatus = "warning"
	StepViolation StepStatus = "violation"
)

// Outcome of one policy on one step, recorded as a Finding.
const (
	OutcomeApproaching = "approaching" // running total reached 80 % of the threshold
	OutcomeExceeded    = "exceeded"    // over the threshold (or the rule matched)
	OutcomeAfterStop   = "after_stop"  // the step came after the run was stopped
	OutcomeFailed      = "failed"      // the rule could not be judged on the step (Finding.Error says why)
)

// Finding records why a step is not ok: one policy and what it saw.
type Finding struct {
	PolicyID      string     `json:"policy_id"`
	PolicyName    string     `json:"policy_name"`
	PolicyVersion int        `json:"policy_version"`
	Type          PolicyType `json:"type"`
	Action        Action     `json:"action"`
	Outcome       string     `json:"outcome"`
	Threshold     string     `json:"threshold"`
	Actual        string     `json:"actual"`
	Error         string     `json:"error,omitempty"` // why the rule failed, for the outcome failed
}

// Step is one step of a run. Steps are append-only.
type Step struct {
	TenantID       string          `json:"-"`
	RunID          string          `json:"-"`
	Index          int64           `json:"step_index"`
	Timestamp      time.Time       `json:"timestamp"`
	StepType       string          `json:"step_type"`
	InputTokens    int64           `json:"input_tokens"`
	OutputTokens   int64           `json:"output_tokens"`
	CostMicrocents int64           `json:"-"`
	DurationMicros int64           `json:"-"`
	Content        json.RawMessage `json:"content,omitempty"` // canonical (RFC 8785) bytes, nil when absent
	ContentDigest  string          `json:"content_digest,omitempty"`
	ContentHash    string          `json:"content_hash"`
	Status         StepStatus      `json:"status"`
	IsInflection   bool            `json:"is_inflection"`
	Findings       []Finding       `json:"findings,omitempty"`
	RecordedAt     time.Time       `json:"recorded_at"`
}

// UnderWayAt reports whether the step was under way at t, the start of the
// step that stopped its run, by the agent's clock: it began no later and
// ended no earlier (the agent's root span, or a call it made beside that
// step). The agent learns of a stop only from that step's report, so such
// a step, sent after the stop, does not show it going on. One that had
// ended by t was done before the breach, or is dated so: sent after the
// stop, it counts as going on.
func (s Step) UnderWayAt(t time.Time) bool {
	end := s.Timestamp.Add(time.Duration(s.DurationMicros) * time.Microsecond)
	return !s.Timestamp.After(t) && !end.Before(t)
}

// RiskLevel grades an incident.
type RiskLevel string

const (
	RiskLow      RiskLevel = "low"
	RiskMedium   RiskLevel = "medium"
	RiskHigh     RiskLevel = "high"
	RiskCritical RiskLevel = "critical"
)

// Incident is opened when a step breaks a stop policy.
type Incident struct {
	ID                  string     `json:"incident_id"`
	TenantID            string     `json:"tenant_id"`
	RunID               string     `json:"run_id"`
	PolicyID            string     `json:"policy_id"`
	PolicyVersion       int        `json:"policy_version"`
	PolicyName          string     `json:"policy_name"`
	ViolationType       PolicyType `json:"violation_type"`
	ThresholdValue      string     `json:"threshold_value"`
	ActualValue         string     `json:"actual_value"`
	InflectionStepIndex int64      `json:"inflection_step_index"`
	ViolationAt         time.Time  `json:"violation_time"`
	DetectedAt          time.Time  `json:"detection_time"`
	ContainedAt         *time.Time `json:"containment_time,omitempty"`
	RiskLevel           RiskLevel  `json:"risk_level"`
	RemediationStatus   string     `json:"remediation_status"` // one of RemediationStatuses
	RemediationNotes    string     `json:"remediation_notes,omitempty"`
	CreatedAt           time.Time  `json:"created_at"`
}

// Audit event categories, one per audit topic of the read API.
const (
	AuditIdentity      = "identity"      // key creation and revocation
	AuditAuthorization = "authorization" // allow/deny decisions
	AuditAccess        = "access"        // reads
	AuditWrite         = "write"         // writes: runs, steps, policies
	AuditIntegrity     = "integrity"     // ledger checks
)

// AuditCategories lists the audit categories.
var AuditCategories = []string{AuditIdentity, AuditAuthorization, AuditAccess, AuditWrite, AuditIntegrity}

// Remediation statuses of an incident: an incident opens pending.
const (
	RemediationPending    = "pending"
	RemediationInProgress = "in_progress"
	RemediationCompleted  = "completed"
)

// RemediationStatuses lists the remediation statuses of an incident.
var RemediationStatuses = []string{RemediationPending, RemediationInProgress, RemediationCompleted}

// Audit decisions.
const (
	DecisionAllow = "allow"
	DecisionDeny  = "deny"
)

// AuditEvent records who did what. Audit events are append-only.
type AuditEvent struct {
	ID              string    `json:"id"`
	TenantID        string    `json:"tenant_id"`
	OccurredAt      time.Time `json:"occurred_at"`
	Actor           string    `json:"actor"`      // API key id, or "system"
	ActorType       Origin    `json:"actor_type"` // HUMAN, AGENT or SYSTEM
	Category        string    `json:"category"`
	Action          string    `json:"action"`   // e.g. "POST /api/v1/runs/{run_id}/steps"
	Resource        string    `json:"resource"` // e.g. "run/abc"
	Decision        string    `json:"decision"`
	Status          int       `json:"status"` // HTTP status, 0 outside HTTP
	CorrelationID   string    `json:"correlation_id"`
	SourceComponent string    `json:"source_component"` // api, cli, otlp
	Detail          string    `json:"detail,omitempty"`
}

// NewID returns a new record id: a UUIDv7, so ids sort by creation time.
func NewID() string { return uuid.Must(uuid.NewV7()).String() }

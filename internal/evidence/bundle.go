package evidence

import (
	"encoding/json"
	"time"

	"github.com/runproof/runproof/internal/runproof"
)

// SchemaVersion is the version of the bundle shapes in docs/schema. Every
// bundle carries it as schema_version.
const SchemaVersion = 1

// Bundle id prefixes. Callers pass a unique suffix in Options.BundleID (a
// UUID, say); the builder prefixes it, so that a bundle id always tells its type.
const (
	PrefixEvidence         = "EVD-"
	PrefixSOC2             = "SOC2-"
	PrefixExecutiveDebrief = "EXEC-"
)

// Source is everything a bundle is built from.
type Source struct {
	Run      runproof.Run
	Snapshot runproof.Snapshot // the run's policy snapshot
	Steps    StepSeq           // every step of the run, in index order
	Incident *runproof.Incident
	History  AgentHistory
	// Review is the latest review of an earlier SOC 2 export of the run,
	// made before this export; BuildSOC2 shows it when it covers the same
	// steps and remediation status.
	Review *runproof.Review
}

// Remediation is the incident's remediation status ("" without one).
func (s Source) Remediation() string {
	if s.Incident == nil {
		return ""
	}
	return s.Incident.RemediationStatus
}

// RemediationNotesDigest is the digest of the incident's remediation
// notes, none included ("" without an incident).
func (s Source) RemediationNotesDigest() string {
	if s.Incident == nil {
		return ""
	}
	return runproof.DigestBytes([]byte(s.Incident.RemediationNotes))
}

// AgentHistory describes the same agent's earlier runs that ended without
// an incident. It feeds the debrief's cost-prevented estimate only; zero
// values mean unknown.
type AgentHistory struct {
	CompletedRuns int
	// TwiceMedianSteps is twice the median of their lengths in steps: the
	// median of an even number of runs may fall half way between two.
	TwiceMedianSteps int64
}

// Options are the export's own facts, chosen by the caller.
type Options struct {
	BundleID        string    // unique suffix; the builder adds the type's prefix
	CreatedAt       time.Time // required
	ExportedBy      string    // user id, agent id or "system" (the default)
	ExportReason    string
	IncludeRawSteps bool // false: steps is [] and steps_omitted counts them; totals stay exact
	IncludeContent  bool // with IncludeRawSteps: each step's content, not only its digest
	PreparedFor     string
	PreparedBy      string     // debrief: a name for people; "system" when empty
	PeriodStart     *time.Time // SOC 2 compliance period; default the incident's UTC day (without incident: the run start's, when one end is given; else none)
	PeriodEnd       *time.Time
	Classification  string // debrief: INTERNAL, CONFIDENTIAL (default) or PUBLIC

	// Where the steps go as they are read.

	// NewSpool returns a new, empty spool, where a bundle keeps its steps
	// until it is written (one per bundle built); nil: memory.
	NewSpool func() (Spool, error)
	// KeepRows keeps the steps decoded in memory too, without their
	// content, for a renderer that reads them all more than once (the
	// PDF report: its chart, then its timeline) and would otherwise
	// decode them from the spool each time. Only up to a bound (some
	// 40 MB of rows): a longer run's steps are decoded each time.
	KeepRows bool
	// OnStep, when set, is called with each step the bundle holds, in
	// order, as it is built, or for a debrief with each step its evidence
	// bundle would hold, without content: for a renderer of steps alone
	// (steps.csv), which then need not read them back.
	OnStep func(TraceStepEvidence) error
}

// Optional fields (everywhere in this package): an optional member is left
// out of the JSON when it is unknown or does not apply — never written as
// null. Optional strings use omitempty, optional numbers and indexes a
// pointer with omitempty. Lists are always present, possibly empty.
//
// Times are strings written by runproof.FormatTime (UTC, six fractional
// digits), so the bytes do not depend on how a time.Time was built.

// TraceStepEvidence is one step in a bundle. Its fields are declared in
// RFC 8785 order (sorted by name), so that what encoding/json writes of a
// step is, most often, its canonical form already: the list of steps keeps
// such a step as written, without the cost of the JCS canonicalizer, which
// a bundle may ask of millions of steps (see directlyCanonical).
type TraceStepEvidence struct {
	Content       json.RawMessage     `json:"content,omitempty"`        // added; only with Options.IncludeContent
	ContentDigest string              `json:"content_digest,omitempty"` // added; digest of the content
	ContentHash   string              `json:"content_hash,omitempty"`
	CostCents     float64             `json:"cost_cents"`
	DurationMs    float64             `json:"duration_ms"`
	InputTokens   int64               `json:"input_tokens"` // added
	IsInflection  bool                `json:"is_inflection"`
	OutputTokens  int64               `json:"output_tokens"`         // added
	RecordedAt    string              `json:"recorded_at,omitempty"` // added; when runproof received the step
	Status        runproof.StepStatus `json:"status"`
	StepIndex     int64               `json:"step_index"`
	StepType      string              `json:"step_type"`
	Timestamp     string              `json:"timestamp"`
	Tokens        int64               `json:"tokens"`
}

// ActivePolicy is one policy of the run's snapshot. Fields in RFC 8785 order.
type ActivePolicy struct {
	Action     runproof.Action     `json:"action"`
	Expression string              `json:"expression,omitempty"` // expression policies
	ID         string              `json:"id"`
	Name       string              `json:"name"`
	StepTypes  []string            `json:"step_types,omitempty"` // step_type_denied policies
	Threshold  string              `json:"threshold,omitempty"`  // limit policies
	Type       runproof.PolicyType `json:"type"`
	Version    int                 `json:"version"`
}

// Breach is a policy of the snapshot that the run's steps went over (those
// sent after its stop included): the stop policy of its incident, another
// stop policy its inflection step broke too, a warn policy. Fields in RFC
// 8785 order.
type Breach struct {
	Action         runproof.Action     `json:"action"`
	ActualValue    string              `json:"actual_value"` // on its first step over
	FirstStepIndex int64               `json:"first_step_index"`
	PolicyID       string              `json:"policy_id"`
	PolicyName     string              `json:"policy_name"`
	PolicyVersion  int                 `json:"policy_version"`
	StepsOver      int64               `json:"steps_over"` // the steps judged over it
	ThresholdValue string              `json:"threshold_value"`
	Type           runproof.PolicyType `json:"type"`
}

// Breaches gathers the breaches of a run's steps, handed to Add one at a
// time in index order.
type Breaches struct {
	list  []Breach
	index map[string]int // of list, by policy id
}

// Add counts what the findings of st went over.
func (b *Breaches) Add(st runproof.Step) {
	for _, f := range st.Findings {
		if f.Outcome != runproof.OutcomeExceeded {
			continue
		}
		if i, ok := b.index[f.PolicyID]; ok {
			b.list[i].StepsOver++
			continue
		}
		if b.index == nil {
			b.index = map[string]int{}
		}
		b.index[f.PolicyID] = len(b.list)
		b.list = append(b.list, Breach{Action: f.Action, ActualValue: f.Actual, FirstStepIndex: st.Index, PolicyID: f.PolicyID,
			PolicyName: f.PolicyName, PolicyVersion: f.PolicyVersion, StepsOver: 1, ThresholdValue: f.Threshold, Type: f.Type})
	}
}

// List returns the breaches in the order they began, nil when none.
func (b *Breaches) List() []Breach { return b.list }

// PolicyContext is the snapshot a run was judged by and, when there is an
// incident, the policy it broke. Fields in RFC 8785 order.
type PolicyContext struct {
	ActivePolicies        []ActivePolicy      `json:"active_policies"`
	ActualValue           string              `json:"actual_value,omitempty"`
	Breaches              []Breach            `json:"breaches,omitempty"` // added; every policy the steps went over
	PolicySnapshotID      string              `json:"policy_snapshot_id"`
	ThresholdValue        string              `json:"threshold_value,omitempty"`
	ViolatedPolicyID      string              `json:"violated_policy_id,omitempty"`
	ViolatedPolicyName    string              `json:"violated_policy_name,omitempty"`
	ViolatedPolicyVersion int                 `json:"violated_policy_version,omitempty"` // added
	ViolationType         runproof.PolicyType `json:"violation_type,omitempty"`
}

// Bundle is one of the three bundles a builder makes: *EvidenceBundle,
// *SOC2Bundle or *ExecutiveDebriefBundle, and nothing else.
type Bundle interface {
	bundle() // sealed: only this package's types are bundles
}

func (*EvidenceBundle) bundle()         {}
func (*SOC2Bundle) bundle()             {}
func (*ExecutiveDebriefBundle) bundle() {}

// EvidenceBundle is the engineer's bundle: the run, its policies and every
// step. Fields are declared in RFC 8785 order (sorted by name), only so
// that they read in the order of the written bundle: WriteCanonical has
// the JCS canonicalizer order the members, all but the steps, which their
// list holds in canonical form already. "added" marks the fields runproof
// adds to the required ones (docs/bundles.md).
type EvidenceBundle struct {
	AgentID              string              `json:"agent_id,omitempty"`
	BundleID             string              `json:"bundle_id"`
	BundleType           runproof.BundleType `json:"bundle_type"`
	ContainmentTimestamp string              `json:"containment_timestamp,omitempty"` // added: when the run was stopped
	ContentHash          string              `json:"content_hash,omitempty"`
	CreatedAt            string              `json:"created_at"`
	DetectionTimestamp   string              `json:"detection_timestamp,omitempty"` // added: when runproof judged the inflection step
	ExportReason         string              `json:"export_reason,omitempty"`
	ExportedBy           string              `json:"exported_by"`
	FirstStepIndex       *int64              `json:"first_step_index,omitempty"` // added; absent for a run without steps
	IncidentID           string              `json:"incident_id,omitempty"`
	LastStepIndex        *int64              `json:"last_step_index,omitempty"` // added
	PolicyContext        PolicyContext       `json:"policy_context"`
	RemediationNotes     string              `json:"remediation_notes,omitempty"`  // added: the incident's, what was done
	RemediationStatus    string              `json:"remediation_status,omitempty"` // added: the incident's
	RunCompletedAt       string              `json:"run_completed_at,omitempty"`
	RunEndedAs           runproof.RunStatus  `json:"run_ended_as,omitempty"` // added: what the agent ended the run as (a stopped run stays stopped)
	RunGoal              string              `json:"run_goal,omitempty"`
	RunID                string              `json:"run_id"`
	RunStartedAt         string              `json:"run_started_at"`
	RunStatus            runproof.RunStatus  `json:"run_status"`     // added
	SchemaVersion        int                 `json:"schema_version"` // added
	Steps                StepList            `json:"steps"`
	StepsOmitted         int64               `json:"steps_omitted"` // added: steps left out (IncludeRawSteps false), else 0
	TenantID             string              `json:"tenant_id"`
	TerminationReason    string              `json:"termination_reason,omitempty"`
	TotalCostCents       float64             `json:"total_cost_cents"`
	TotalDurationMs      float64             `json:"total_duration_ms"`
	TotalSteps           int64               `json:"total_steps"`
	TotalTokens          int64               `json:"total_tokens"`
	TraceID              string              `json:"trace_id"`
	ViolationStepIndex   *int64              `json:"violation_step_index,omitempty"`
	ViolationTimestamp   string              `json:"violation_timestamp,omitempty"`
}

// SOC 2 control statuses (docs/bundles.md, "Control statuses").
const (
	StatusDemonstrated  = "DEMONSTRATED"
	StatusPartial       = "PARTIAL"
	StatusNotApplicable = "NOT_APPLICABLE"

	ReviewPending  = "PENDING"
	ReviewReviewed = "REVIEWED"
	ReviewApproved = "APPROVED"
)

// SOC2ControlMapping says how the bundle bears on one SOC 2 control.
type SOC2ControlMapping struct {
	ControlID          string `json:"control_id"`
	ControlName        string `json:"control_name"`
	ControlDescription string `json:"control_description"`
	EvidenceProvided   string `json:"evidence_provided"`
	ComplianceStatus   string `json:"compliance_status"`
}

// SOC2Bundle is the auditor's bundle: every member of the evidence bundle
// (bundle_type "soc2", id "SOC2-…"), flat, plus the SOC 2 members.
type SOC2Bundle struct {
	EvidenceBundle
	// EvidenceDigest (added) is the digest of the evidence members alone:
	// the RFC 8785 form of this bundle without content_hash and without the
	// members below. The attestation statement cites it, since it cannot
	// cite the content_hash that covers the statement itself.
	EvidenceDigest        string               `json:"evidence_digest"`
	ControlMappings       []SOC2ControlMapping `json:"control_mappings"`
	AttestationStatement  string               `json:"attestation_statement"`
	CompliancePeriodStart string               `json:"compliance_period_start,omitempty"`
	CompliancePeriodEnd   string               `json:"compliance_period_end,omitempty"`
	AuditorNotes          string               `json:"auditor_notes,omitempty"`
	// ReviewKeyID is the API key that recorded the sign-off, for the PDF's
	// review block (reviewed_by is the reviewer's own word). The JSON has
	// it in the attestation statement only: a member added here would be
	// one more for every verifier to leave out of the evidence digest.
	ReviewKeyID     string   `json:"-"`
	ReviewStatus    string   `json:"review_status"`
	ReviewedBy      string   `json:"reviewed_by,omitempty"`
	ReviewedAt      string   `json:"reviewed_at,omitempty"`
	CriteriaCovered []string `json:"criteria_covered"`
}

// SOC2Members are the JSON members a SOC2Bundle adds to the evidence ones,
// which its evidence_digest leaves out.
var SOC2Members = []string{"evidence_digest", "control_mappings", "attestation_statement",
	"compliance_period_start", "compliance_period_end", "auditor_notes", "review_status",
	"reviewed_by", "reviewed_at", "criteria_covered"}

// Debrief classifications.
const (
	ClassInternal     = "INTERNAL"
	ClassConfidential = "CONFIDENTIAL"
	ClassPublic       = "PUBLIC"
)

// ExecutiveDebriefBundle is the leader's one-pager about an incident. Its
// sentences hold no ids, field names or hashes, and every figure in them can
// be derived from the evidence bundle of the same incident (the
// cost-prevented method also names the history figures it uses).
type ExecutiveDebriefBundle struct {
	SchemaVersion        int                 `json:"schema_version"` // added
	BundleID             string              `json:"bundle_id"`
	BundleType           runproof.BundleType `json:"bundle_type"`
	CreatedAt            string              `json:"created_at"`
	IncidentSummary      string              `json:"incident_summary"`
	BusinessImpact       string              `json:"business_impact"`
	RiskLevel            runproof.RiskLevel  `json:"risk_level"`
	RunID                string              `json:"run_id"`
	IncidentID           string              `json:"incident_id"`
	TenantID             string              `json:"tenant_id"`
	PolicyViolated       string              `json:"policy_violated"`
	ViolationTime        string              `json:"violation_time"`
	DetectionTime        string              `json:"detection_time"`
	ContainmentTime      string              `json:"containment_time,omitempty"` // added
	RecommendedActions   []string            `json:"recommended_actions"`
	RemediationStatus    string              `json:"remediation_status"`
	RemediationNotes     string              `json:"remediation_notes,omitempty"`
	TimeToDetectSeconds  float64             `json:"time_to_detect_seconds"`
	TimeToContainSeconds *float64            `json:"time_to_contain_seconds,omitempty"`
	CostIncurredCents    int64               `json:"cost_incurred_cents"`
	CostPreventedCents   *int64              `json:"cost_prevented_cents,omitempty"`
	CostPreventedMethod  string              `json:"cost_prevented_method"` // added: how the estimate was made, or why there is none
	PreparedFor          string              `json:"prepared_for,omitempty"`
	PreparedBy           string              `json:"prepared_by"`
	Classification       string              `json:"classification"`
	ContentHash          string              `json:"content_hash,omitempty"`

	// Which of the two costs, 0 in whole cents, was in fact some: less
	// than half a cent. The JSON has whole cents; the PDF says it.
	incurredUnderCent, preventedUnderCent bool
}

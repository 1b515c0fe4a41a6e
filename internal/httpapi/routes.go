package httpapi

import (
	"fmt"
	"net/http"

	"github.com/runproof/runproof/internal/export"
	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/service"
)

// treeSize describes a ledger's tree size as a query parameter.
var treeSize = map[string]any{"type": "integer", "minimum": 1}

// routeTable is the whole API surface on one screen.
func (s *Server) routeTable() []route {
	poll, read, audit, ingest, manage, exp := runproof.PermPoll, runproof.PermRead, runproof.PermAudit, runproof.PermIngest, runproof.PermManage, runproof.PermExport
	review := runproof.PermReview
	runQuery := []string{"limit", "cursor", "agent_id", "status", "from", "to"}
	periodQuery := []string{"limit", "offset", "from", "to"}
	return []route{
		{method: "GET", path: "/healthz", summary: "The process is up.", handle: s.healthz},
		{method: "GET", path: "/readyz", summary: "The store answers.", handle: s.readyz},
		{method: "GET", path: "/metrics", summary: "Prometheus metrics.", handle: s.metricsHandler},
		{method: "GET", path: "/openapi.json", summary: "This document.", handle: s.openapi},

		{method: "POST", path: "/api/v1/policies", perm: manage, summary: "Add a policy, or a new version of one.",
			request: service.PolicyInput{}, response: runproof.Policy{}, status: http.StatusCreated, handle: s.createPolicy},
		{method: "GET", path: "/api/v1/policies", perm: poll, summary: "The active version of every policy.",
			response: policyList{}, handle: s.listPolicies},
		{method: "GET", path: "/api/v1/policies/{policy_id}", perm: poll, summary: "Every version of a policy, oldest first, the one that retires it included.",
			response: policyList{}, handle: s.policyVersions},
		{method: "DELETE", path: "/api/v1/policies/{policy_id}", perm: manage,
			summary:  "Retire a policy: runs started from now on are not judged by it. Answers the version that retires it; adding a policy of its name makes it active again.",
			response: runproof.Policy{}, handle: s.retirePolicy},

		{method: "POST", path: "/api/v1/runs", perm: ingest, summary: "Open a run; the active policies are frozen into its snapshot.",
			request: service.RunInput{}, response: runCreated{}, status: http.StatusCreated, repeatStatus: http.StatusOK, handle: s.createRun},
		{method: "GET", path: "/api/v1/runs/{run_id}", perm: poll, summary: "A run's state: agents poll it for a stop.",
			response: runproof.Run{}, handle: s.getRun},
		{method: "POST", path: "/api/v1/runs/{run_id}/steps", perm: ingest, summary: "Append steps, numbered from 0 without gaps and sent in order; each is judged and the agent told allow or stop.",
			request: stepBatchDoc{}, response: service.StepsResult{}, handle: s.appendSteps},
		{method: "POST", path: "/api/v1/runs/{run_id}/complete", perm: ingest, summary: "End a run.",
			request: service.CompleteInput{}, bodyOptional: true, response: runproof.Run{}, handle: s.completeRun},
		{method: "POST", path: "/v1/traces", perm: ingest, summary: "OTLP/HTTP trace export (protobuf or JSON, gzip allowed): GenAI spans become steps; see docs/otel.md.",
			request: otlpTracesDoc{}, response: otlpResponseDoc{}, otlp: true, handle: s.otlpTraces},

		{method: "GET", path: "/api/v1/logs/llm-runs", perm: read, evidence: true, summary: "Runs, newest first, with cursor pagination.",
			query: runQuery, maxLimit: service.MaxRunsPage, response: runList{}, handle: s.listRuns},
		{method: "GET", path: "/api/v1/logs/llm-runs/{run_id}/envelope", perm: read, evidence: true, summary: "O1: the canonical run record.",
			response: runproof.Run{}, handle: s.envelope},
		{method: "GET", path: "/api/v1/logs/llm-runs/{run_id}/trace", perm: read, evidence: true,
			summary: fmt.Sprintf("O2: every step of the run, in index order, up to %d and about %d MiB of content an answer (next_from_index, when more).",
				service.MaxTracePage, runproof.StepPageBytes>>20),
			query: []string{"from_index", "limit"}, maxLimit: service.MaxTracePage,
			response: traceDoc{}, handle: s.trace},
		{method: "GET", path: "/api/v1/logs/llm-runs/{run_id}/governance", perm: read, evidence: true, summary: "O3: policy snapshot, evaluations, incidents.",
			response: service.Governance{}, handle: s.governance},
		{method: "GET", path: "/api/v1/logs/llm-runs/{run_id}/replay", perm: read, evidence: true, summary: "O4: the 60 s window around the inflection.",
			response: service.Replay{}, handle: s.replay},

		{method: "GET", path: "/api/v1/logs/llm-runs/{run_id}/export", perm: exp, evidence: true, summary: "O5: formats available and past exports of the run, newest first.",
			query: []string{"limit", "offset"}, response: runExportsDoc{}, handle: s.runExports},

		{method: "GET", path: "/api/v1/logs/system", perm: read, evidence: true, summary: "Runs as runproof handled them, newest first, with cursor pagination.",
			query: runQuery, maxLimit: service.MaxRunsPage, response: systemRunList{}, handle: s.listSystem},
		{method: "GET", path: "/api/v1/logs/system/{run_id}/snapshot", perm: read, evidence: true, summary: "O1: the configuration in force for a run: its policy snapshot.",
			response: runproof.Snapshot{}, handle: s.systemSnapshot},
		{method: "GET", path: "/api/v1/logs/system/{run_id}/telemetry", perm: read, evidence: true, summary: fmt.Sprintf("O2: per-step numbers with running totals, up to %d steps an answer (next_from_index, when more), "+
			"the run's totals and the share of each limit policy used.", service.MaxTracePage),
			query: []string{"from_index", "limit"}, maxLimit: service.MaxTracePage, response: service.Telemetry{}, handle: s.systemTelemetry},
		{method: "GET", path: "/api/v1/logs/system/{run_id}/events", perm: read, evidence: true, summary: "O3: the run's system events in time order: run.started, step.warning, incident.opened, run.stopped, " +
			"steps.after_stop, run.completed|failed|cancelled|ended, export.completed|failed (docs/logs.md).",
			response: service.RunEvents{}, handle: s.systemEvents},
		{method: "GET", path: "/api/v1/logs/system/{run_id}/replay", perm: read, evidence: true, summary: "O4: the 60 s window around the inflection.",
			response: service.Replay{}, handle: s.replay},
		{method: "GET", path: "/api/v1/logs/system/audit", perm: audit, evidence: true, summary: "O5: audit events of runproof's own components (today the CLI), newest first.",
			query: periodQuery, response: auditList{}, handle: s.systemAudit},

		{method: "GET", path: "/api/v1/incidents", perm: read, evidence: true, summary: "Incidents, newest first.",
			query: []string{"limit", "offset", "status", "run_id", "from", "to", "detected_before"}, response: incidentList{}, handle: s.listIncidents,
			querySchemas: map[string]map[string]any{"status": {"type": "string", "enum": runproof.RemediationStatuses}}}, // the remediation's status
		{method: "GET", path: "/api/v1/incidents/{incident_id}", perm: read, evidence: true, summary: "One incident.",
			response: runproof.Incident{}, handle: s.getIncident},
		{method: "POST", path: "/api/v1/incidents/{incident_id}/remediation", perm: manage,
			summary: "Record where the incident's remediation stands (pending, in_progress, completed) with notes; later bundles show it, and SOC 2 control CC7.4 needs it.",
			request: service.RemediationInput{}, response: runproof.Incident{}, handle: s.setRemediation},

		{method: "POST", path: "/api/v1/exports", perm: exp, summary: "Export a bundle of a run or an incident; recorded in the export ledger. With `Prefer: respond-async`, answered at once (202), made in the background.",
			request: export.Input{}, response: exportView{}, status: http.StatusCreated, async: true, long: true, handle: s.createExport},
		{method: "GET", path: "/api/v1/exports", perm: exp, summary: "Export records, newest first.",
			query: []string{"limit", "offset", "run_id", "incident_id", "from", "to"}, response: exportList{}, handle: s.listExports},
		{method: "GET", path: "/api/v1/exports/{export_id}", perm: exp, summary: "One export record.",
			response: exportView{}, handle: s.getExport},
		{method: "POST", path: "/api/v1/exports/{export_id}/reviews", perm: review,
			summary: "Sign off a completed SOC 2 export (REVIEWED or APPROVED, with notes): later SOC 2 bundles of the run that hold the same steps carry the sign-off.",
			request: export.ReviewInput{}, response: runproof.Review{}, status: http.StatusCreated, handle: s.reviewExport},
		{method: "GET", path: "/api/v1/exports/{export_id}/reviews", perm: exp, summary: "The sign-offs of an export, oldest first.",
			response: reviewList{}, handle: s.exportReviews},
		{method: "GET", path: "/api/v1/exports/{export_id}/download", perm: exp, signedURL: true,
			summary: "The artifact, with its sha256 in Repr-Digest; the first download is recorded. With the query of a record's download_url " +
				"(tenant, key, expires, signature), no API key is needed until it expires, 15 minutes after it was given.",
			query: []string{"tenant", "key", "expires", "signature"}, media: artifactMedia(), long: true, handle: s.downloadExport},
		{method: "GET", path: "/api/v1/exports/{export_id}/proof", perm: exp, summary: "Inclusion proof of the export's ledger entry against the latest signed checkpoint.",
			response: proofDoc{}, handle: s.exportProof},
		{method: "GET", path: "/api/v1/signing-keys", perm: read, summary: "Public keys that sign ZIP manifests and ledger checkpoints, active first; retired keys stay listed.",
			response: signingKeyList{}, handle: s.signingKeys},
		{method: "GET", path: "/api/v1/ledger/checkpoint", perm: read, summary: "The latest signed checkpoint of the tenant's export ledger (a signed note, text/plain).",
			media: []string{"text/plain"}, handle: s.ledgerCheckpoint},
		{method: "GET", path: "/api/v1/ledger/consistency", perm: read, summary: "Proof that the tree of size from (any size up to to) is a prefix of the checkpoint of size to (default: the latest).",
			query: []string{"from", "to"}, response: consistencyDoc{}, handle: s.ledgerConsistency,
			querySchemas: map[string]map[string]any{"from": treeSize, "to": treeSize}},
		{method: "POST", path: "/api/v1/incidents/{incident_id}/export/evidence", perm: exp, summary: "The evidence bundle of an incident, as the response body.",
			request: incidentExportBody{}, bodyOptional: true, media: artifactMedia(), long: true, handle: s.incidentExport(runproof.BundleEvidence)},
		{method: "POST", path: "/api/v1/incidents/{incident_id}/export/soc2", perm: exp, summary: "The SOC 2 bundle of an incident, as the response body.",
			request: incidentExportBody{}, bodyOptional: true, media: artifactMedia(), long: true, handle: s.incidentExport(runproof.BundleSOC2)},
		{method: "POST", path: "/api/v1/incidents/{incident_id}/export/executive-debrief", perm: exp, summary: "The executive debrief of an incident, as the response body.",
			request: incidentExportBody{}, bodyOptional: true, media: artifactMedia(), long: true, handle: s.incidentExport(runproof.BundleExecutiveDebrief)},

		{method: "GET", path: "/api/v1/logs/audit", perm: audit, evidence: true, summary: "Audit events, newest first.",
			query: append([]string{"category"}, periodQuery...), response: auditList{}, handle: s.listAudit("")},
		{method: "GET", path: "/api/v1/logs/audit/identity", perm: audit, evidence: true, summary: "O1: key creation and revocation (each use of a key is an access or write event).",
			query: periodQuery, response: auditList{}, handle: s.listAudit(runproof.AuditIdentity)},
		{method: "GET", path: "/api/v1/logs/audit/authorization", perm: audit, evidence: true, summary: "O2: denied requests.",
			query: periodQuery, response: auditList{}, handle: s.listAudit(runproof.AuditAuthorization)},
		{method: "GET", path: "/api/v1/logs/audit/access", perm: audit, evidence: true, summary: "O3: who read what.",
			query: periodQuery, response: auditList{}, handle: s.listAudit(runproof.AuditAccess)},
		{method: "GET", path: "/api/v1/logs/audit/integrity", perm: audit, evidence: true, summary: "O4: integrity checks and their results.",
			query: periodQuery, response: auditList{}, handle: s.listAudit(runproof.AuditIntegrity)},
		{method: "GET", path: "/api/v1/logs/audit/exports", perm: audit, evidence: true, summary: "O5: export records, newest first.",
			query: periodQuery, response: exportList{}, handle: s.auditExports},
	}
}

// incidentExportBody is the body of an incident export, as decoded and as
// the API document shows it.
type incidentExportBody struct {
	Format          runproof.ExportFormat `json:"format" openapi:"enum=json|csv|pdf|zip"` // default json
	ExportReason    string                `json:"export_reason"`
	PreparedFor     string                `json:"prepared_for"`
	PreparedBy      string                `json:"prepared_by"`
	Classification  string                `json:"classification" openapi:"enum=INTERNAL|CONFIDENTIAL|PUBLIC"`
	IncludeRawSteps *bool                 `json:"include_raw_steps"`
	IncludeContent  bool                  `json:"include_content"`
	CorrelationID   string                `json:"correlation_id"`
}

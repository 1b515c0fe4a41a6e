package cli

import (
	"context"
	"time"

	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/service"
)

// record stores the audit events of what a command did. The change they
// account for is made, so they are stored even after Ctrl-C, but within
// ten seconds: a database gone away does not hold the command.
func record(ctx context.Context, svc *service.Service, evs ...runproof.AuditEvent) error {
	ctx, cancel := afterCancel(ctx)
	defer cancel()
	return svc.Record(ctx, evs...)
}

// afterCancel is ctx for work that goes on after Ctrl-C (what is done is
// said and recorded), for ten seconds at most: a database gone away does
// not hold the command.
func afterCancel(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
}

// cliEvent is the audit event of something a command did for the tenant:
// done by the user who ran it (operator: "cli:alice"), as the export
// records of the command line name them, so that "who made this key?" has
// an answer.
func cliEvent(tenant, category, action, resource, decision, detail string) runproof.AuditEvent {
	return runproof.AuditEvent{TenantID: tenant, Actor: operator(), ActorType: runproof.OriginHuman,
		Category: category, Action: action, Resource: resource, Decision: decision, SourceComponent: "cli", Detail: detail}
}

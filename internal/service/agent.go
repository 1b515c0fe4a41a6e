package service

import (
	"context"

	"github.com/runproof/runproof/internal/runproof"
)

// agentKey is the context key of the one agent a caller may act for.
type agentKey struct{}

// ForAgent returns ctx for a caller bound to one agent (an agent key made
// for it): the runs it opens are that agent's, and it writes, ends and
// reads no other run, which it is told does not exist, as another
// tenant's. The binding is the caller's identity, carried as such by the
// request's context.
func ForAgent(ctx context.Context, agentID string) context.Context {
	return context.WithValue(ctx, agentKey{}, agentID)
}

// boundAgent is the agent ctx's caller is bound to, "" for any agent.
func boundAgent(ctx context.Context) string {
	a, _ := ctx.Value(agentKey{}).(string)
	return a
}

// ownRun returns ENOTFOUND, as for a run that does not exist, when ctx's
// caller is bound to an agent and run is another agent's.
func ownRun(ctx context.Context, run runproof.Run) error {
	if a := boundAgent(ctx); a != "" && run.AgentID != a {
		return runproof.Errorf(runproof.ENOTFOUND, "run %q not found", run.ID)
	}
	return nil
}

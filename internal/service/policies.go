package service

import (
	"context"
	"slices"

	"github.com/runproof/runproof/internal/policy"
	"github.com/runproof/runproof/internal/runproof"
)

// PolicyInput is a policy as an operator sends it.
type PolicyInput struct {
	Name       string              `json:"name" openapi:"required"`
	Type       runproof.PolicyType `json:"type" openapi:"required,enum=token_limit|cost_limit|step_limit|duration_limit|step_type_denied|expression"`
	Threshold  Threshold           `json:"threshold"`
	Action     runproof.Action     `json:"action" openapi:"required,enum=stop|warn"`
	StepTypes  []string            `json:"step_types"`
	Expression string              `json:"expression"`
}

// policy is the tenant's policy the input says, yet to be normalized.
func (in PolicyInput) policy(tenantID string) runproof.Policy {
	return runproof.Policy{TenantID: tenantID, Name: in.Name, Type: in.Type, Threshold: string(in.Threshold),
		Action: in.Action, StepTypes: in.StepTypes, Expression: in.Expression}
}

// ValidatePolicy checks a policy as CreatePolicies does, storing nothing:
// to check several before storing any.
func ValidatePolicy(tenantID string, in PolicyInput) error {
	_, err := policy.Normalize(in.policy(tenantID))
	return err
}

// CreatePolicies validates policies and stores each as a new version: the
// first version of a new name, or the next version of an existing one. They
// are stored together or not at all, so no run is judged by some of them
// without the others. Runs already started keep the snapshot they were
// judged by. Stop expressions that could cost more together than a step's
// budget, with the tenant's active ones, are refused (policy.CheckStopCost).
func (s *Service) CreatePolicies(ctx context.Context, tenantID string, ins ...PolicyInput) ([]runproof.Policy, error) {
	ps := make([]runproof.Policy, len(ins))
	for i, in := range ins {
		p := in.policy(tenantID)
		p.ID, p.CreatedAt = s.newID(), s.Now()
		var err error
		if ps[i], err = policy.Normalize(p); err != nil {
			return nil, err
		}
	}
	if !slices.ContainsFunc(ps, policy.IsStopExpression) { // none to hold to a step's budget
		return s.store.CreatePolicies(ctx, nil, ps...)
	}
	// The costs of the stop expressions are worked out before the store
	// takes its lock: the check under it reads them.
	before, err := s.store.ActivePolicies(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	known := policy.StopCosts(slices.Concat(before, ps))
	return s.store.CreatePolicies(ctx, func(active []runproof.Policy) error { return policy.CheckStopCost(active, ps, known) }, ps...)
}

// SamePolicy reports whether in says what the tenant's policy p, as
// stored, says already: sending it would only make a new version of it.
func SamePolicy(p runproof.Policy, in PolicyInput) bool {
	want, err := policy.Normalize(in.policy(p.TenantID))
	return err == nil && want.Name == p.Name && want.Type == p.Type && want.Threshold == p.Threshold &&
		want.Action == p.Action && slices.Equal(want.StepTypes, p.StepTypes) && want.Expression == p.Expression
}

// RetirePolicy retires the tenant's policy policyID: runs started from now
// on are not judged by it, runs already started keep their snapshot. It
// returns the version that retires it. A later CreatePolicies of its name
// makes it active again.
func (s *Service) RetirePolicy(ctx context.Context, tenantID, policyID string) (runproof.Policy, error) {
	return s.store.RetirePolicy(ctx, tenantID, policyID, s.Now())
}

// PolicyVersions returns every version of the tenant's policy policyID,
// oldest first: the retiring ones too, which no list of active policies
// shows.
func (s *Service) PolicyVersions(ctx context.Context, tenantID, policyID string) ([]runproof.Policy, error) {
	return s.store.PolicyVersions(ctx, tenantID, policyID)
}

// ActivePolicies returns the latest version of each of the tenant's
// policies but those retired.
func (s *Service) ActivePolicies(ctx context.Context, tenantID string) ([]runproof.Policy, error) {
	return s.store.ActivePolicies(ctx, tenantID)
}

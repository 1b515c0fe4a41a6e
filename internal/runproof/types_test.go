package runproof

import "testing"

// TestAgentRole pins what an agent's key may do: the reads beyond polling
// its run are not scoped by agent (see rolePerms), so an agent must hold
// none of them.
func TestAgentRole(t *testing.T) {
	for _, p := range []Permission{PermRead, PermAudit, PermExport, PermReview, PermManage} {
		if RoleAgent.Can(p) {
			t.Errorf("an agent may %s: every agent's runs would show to each", p)
		}
	}
	for _, p := range []Permission{PermPoll, PermIngest} {
		if !RoleAgent.Can(p) {
			t.Errorf("an agent may not %s", p)
		}
	}
}

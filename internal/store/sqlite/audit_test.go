package sqlite

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runproof/runproof/internal/runproof"
)

// TestListPlans: the audit events of one category, or of the system, and
// the runs of one status are found through their index, not by reading
// every event or run of the tenant.
func TestListPlans(t *testing.T) {
	s := openMigrated(t)
	for p, want := range map[*runproof.ListAuditParams]string{
		{TenantID: "acme", Category: runproof.AuditIdentity, Limit: 50}:  "USING INDEX audit_category (tenant_id=? AND category=?)",
		{TenantID: "acme", Category: runproof.AuditIntegrity, Offset: 9}: "USING INDEX audit_category (tenant_id=? AND category=?)",
		{TenantID: "acme", Limit: 50}:                                    "USING INDEX audit_occurred (tenant_id=?)",
		{TenantID: "acme", System: true, Limit: 50}:                      "USING INDEX audit_system (tenant_id=?)",
	} {
		query, args := auditListQuery(*p)
		if plan := queryPlan(t, s, query, args); !strings.Contains(plan, want) {
			t.Errorf("%+v: plan %q, want %q", *p, plan, want)
		}
	}
	for _, p := range []runproof.ListRunsParams{
		{TenantID: "acme", Status: runproof.RunRunning, Limit: 50},
		{TenantID: "acme", AgentID: "bot", Status: runproof.RunFailed, Limit: 50},
	} {
		query, args := runListQuery(p)
		if plan, want := queryPlan(t, s, query, args), "USING INDEX runs_status (tenant_id=? AND status=?)"; !strings.Contains(plan, want) {
			t.Errorf("%+v: plan %q, want %q", p, plan, want)
		}
	}
}

// queryPlan is how SQLite would answer query, its steps joined by "; ".
func queryPlan(t *testing.T, s *Store, query string, args []any) string {
	t.Helper()
	rows, err := s.db.QueryContext(context.Background(), "EXPLAIN QUERY PLAN "+query, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	return strings.Join(plan, "; ")
}

// openMigrated opens a new database in a temporary directory, migrated.
func openMigrated(t *testing.T) *Store {
	t.Helper()
	return openMigratedAt(t, filepath.Join(t.TempDir(), "runproof.db"))
}

// openMigratedAt opens the database at path, migrated, closed when the
// test ends.
func openMigratedAt(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

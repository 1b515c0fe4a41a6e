package sqlite

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runproof/runproof/internal/runproof"
)

// TestAuditListPlans: the audit events of one category are found through
// their index, not by reading every event of the tenant.
func TestAuditListPlans(t *testing.T) {
	ctx := context.Background()
	s := openMigrated(t)
	for p, want := range map[*runproof.ListAuditParams]string{
		{TenantID: "acme", Category: runproof.AuditIdentity, Limit: 50}:  "USING INDEX audit_category (tenant_id=? AND category=?)",
		{TenantID: "acme", Category: runproof.AuditIntegrity, Offset: 9}: "USING INDEX audit_category (tenant_id=? AND category=?)",
		{TenantID: "acme", Limit: 50}:                                    "USING INDEX audit_occurred (tenant_id=?)",
	} {
		query, args := auditListQuery(*p)
		rows, err := s.db.QueryContext(ctx, "EXPLAIN QUERY PLAN "+query, args...)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		if !strings.Contains(strings.Join(plan, "; "), want) {
			t.Errorf("%+v: plan %q, want %q", *p, plan, want)
		}
	}
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

package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/runproof/runproof/internal/runproof"
)

// Harness is one engine under test: an empty, migrated store and a way to
// run raw SQL on the same database (to try what the store never does).
type Harness struct {
	Store runproof.Store
	Exec  func(ctx context.Context, query string) error
}

// Exercise runs the whole suite against the engine open returns; open is
// called once per subtest and must return an empty store each time.
func Exercise(t *testing.T, open func(t *testing.T) Harness) {
	tests := []struct {
		name string
		fn   func(t *testing.T, h Harness)
	}{
		{"APIKeys", testAPIKeys},
		{"Policies", testPolicies},
		{"PoliciesConcurrent", testPoliciesConcurrent},
		{"Runs", testRuns},
		{"TimesNormalised", testTimesNormalised},
		{"ListRuns", testListRuns},
		{"UpdateRun", testUpdateRun},
		{"UpdateRunFails", testUpdateRunFails},
		{"UpdateRunConcurrent", testUpdateRunConcurrent},
		{"UpdateRunBatch", testUpdateRunBatch},
		{"Steps", testSteps},
		{"Incidents", testIncidents},
		{"AuditEvents", testAuditEvents},
		{"AppendOnly", testAppendOnly},
		{"Exports", testExports},
		{"ExportEvents", testExportEvents},
		{"ExportEventsConcurrent", testExportEventsConcurrent},
		{"ExportTenantsFinishedSince", testExportTenantsFinishedSince},
		{"ListExports", testListExports},
		{"ExportLeases", testExportLeases},
		{"ExportsAppendOnly", testExportsAppendOnly},
		{"Reviews", testReviews},
		{"Ledger", testLedger},
		{"LedgerRecords", testLedgerRecords},
		{"LedgerConcurrent", testLedgerConcurrent},
		{"LedgerAppendOnly", testLedgerAppendOnly},
		{"AuditSealing", testAuditSealing},
		{"StepsToSeal", testStepsToSeal},
		{"StepsSealedWhileAdded", testStepsSealedWhileAdded},
		{"Scenario", testScenario},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, open(t)) })
	}
}

func testAPIKeys(t *testing.T, h Harness) {
	ctx, s := context.Background(), h.Store
	k := runproof.APIKey{ID: "key-1", TenantID: "t1", Role: runproof.RoleAuditor, Name: "ci", Hash: "sha256:aa", CreatedAt: t0}
	if err := s.CreateAPIKey(ctx, k); err != nil {
		t.Fatal(err)
	}
	got, err := s.APIKeyByHash(ctx, "sha256:aa")
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "key by hash", got, k)

	dupID := k
	dupID.Hash = "sha256:bb"
	wantCode(t, "same ID", s.CreateAPIKey(ctx, dupID), runproof.ECONFLICT)
	dupHash := k
	dupHash.ID = "key-2"
	wantCode(t, "same hash", s.CreateAPIKey(ctx, dupHash), runproof.ECONFLICT)
	_, err = s.APIKeyByHash(ctx, "sha256:cc")
	wantCode(t, "unknown hash", err, runproof.ENOTFOUND)
	_, err = s.APIKeyByHash(ctx, "sha256:bb")
	wantCode(t, "hash of a refused key", err, runproof.ENOTFOUND)

	k2 := runproof.APIKey{ID: "key-2", TenantID: "t1", Role: runproof.RoleAgent, Name: "bot", AgentID: "billing-agent", Hash: "sha256:dd", CreatedAt: at(1)}
	other := runproof.APIKey{ID: "key-3", TenantID: "t2", Role: runproof.RoleAdmin, Name: "admin", Hash: "sha256:ee", CreatedAt: at(1)}
	for _, key := range []runproof.APIKey{k2, other} {
		if err := s.CreateAPIKey(ctx, key); err != nil {
			t.Fatal(err)
		}
	}
	revoked, err := s.RevokeAPIKey(ctx, "t1", "key-2", at(2))
	if err != nil {
		t.Fatal(err)
	}
	k2.RevokedAt = ptr(at(2))
	equal(t, "revoked key", revoked, k2)
	got, err = s.APIKeyByHash(ctx, "sha256:dd")
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "revoked key by hash", got, k2)
	_, err = s.RevokeAPIKey(ctx, "t1", "key-2", at(3))
	wantCode(t, "revoked twice", err, runproof.ECONFLICT)
	_, err = s.RevokeAPIKey(ctx, "t1", "key-3", at(3))
	wantCode(t, "another tenant's key", err, runproof.ENOTFOUND)
	keys, err := s.ListAPIKeys(ctx, "t1")
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "t1's keys", keys, []runproof.APIKey{k, k2})
	if got, err = s.APIKey(ctx, "t1", "key-2"); err != nil {
		t.Fatal(err)
	}
	equal(t, "revoked key by id", got, k2)
	_, err = s.APIKey(ctx, "t1", "key-3")
	wantCode(t, "another tenant's key by id", err, runproof.ENOTFOUND)
	_, err = s.APIKey(ctx, "t1", "key-9")
	wantCode(t, "unknown key id", err, runproof.ENOTFOUND)
	if got, err := s.APIKeyByHash(ctx, "sha256:ee"); err != nil || got.RevokedAt != nil {
		t.Errorf("the other tenant's key: %+v, %v", got, err)
	}
	// Behind the store's back, a key changes once only: when revoked.
	for _, q := range []string{
		"UPDATE api_keys SET revoked_at = NULL WHERE id = 'key-2'",
		"UPDATE api_keys SET role = 'admin' WHERE id = 'key-1'",
		"UPDATE api_keys SET tenant_id = 't2' WHERE id = 'key-1'",
		"UPDATE api_keys SET agent_id = 'other' WHERE id = 'key-2'",
		"DELETE FROM api_keys WHERE id = 'key-1'",
		"TRUNCATE api_keys",
	} {
		if err := h.Exec(ctx, q); err == nil {
			t.Errorf("%s: accepted", q)
		}
	}
	if got, err := s.APIKeyByHash(ctx, "sha256:dd"); err != nil || got.RevokedAt == nil {
		t.Errorf("the revoked key after the attempts: %+v, %v", got, err)
	}
}

func testPolicies(t *testing.T, h Harness) {
	ctx, s := context.Background(), h.Store
	create := func(p runproof.Policy) runproof.Policy {
		t.Helper()
		got, err := s.CreatePolicies(ctx, nil, p)
		if err != nil {
			t.Fatal(err)
		}
		return got[0]
	}
	// "B" sorts before "a" byte-wise, which is the order both engines use.
	a1 := create(runproof.Policy{ID: "pa", TenantID: "t1", Name: "a", Type: runproof.PolicyStepTypeDenied,
		Action: runproof.ActionWarn, StepTypes: []string{"shell"}, CreatedAt: at(1)})
	b1 := create(runproof.Policy{ID: "pb", TenantID: "t1", Name: "B", Type: runproof.PolicyCostLimit,
		Threshold: "2.5", Action: runproof.ActionStop, StepTypes: []string{}, CreatedAt: at(2)})
	a2 := create(runproof.Policy{ID: "ignored", TenantID: "t1", Name: "a", Type: runproof.PolicyExpression,
		Action: runproof.ActionStop, Expression: "step.input_tokens > 10", CreatedAt: at(3).Add(999 * time.Nanosecond)})
	other := create(runproof.Policy{ID: "px", TenantID: "t2", Name: "a", Type: runproof.PolicyStepLimit,
		Threshold: "3", Action: runproof.ActionStop, CreatedAt: at(4)})

	if a1.Version != 1 || a1.ID != "pa" {
		t.Errorf("first version: got %s v%d, want pa v1", a1.ID, a1.Version)
	}
	if b1.StepTypes != nil {
		t.Errorf("empty step types returned as %#v, want nil", b1.StepTypes)
	}
	if a2.Version != 2 || a2.ID != "pa" {
		t.Errorf("second version: got %s v%d, want pa v2", a2.ID, a2.Version)
	}
	if want := at(3); !a2.CreatedAt.Equal(want) {
		t.Errorf("created_at: got %v, want %v (truncated to microseconds)", a2.CreatedAt, want)
	}
	if other.Version != 1 || other.ID != "px" {
		t.Errorf("other tenant: got %s v%d, want px v1", other.ID, other.Version)
	}

	got, err := s.ActivePolicies(ctx, "t1")
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "active policies of t1", got, []runproof.Policy{b1, a2})
	got, err = s.ActivePolicies(ctx, "t2")
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "active policies of t2", got, []runproof.Policy{other})
	got, err = s.ActivePolicies(ctx, "t3")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Errorf("tenant without policies: got %v", got)
	}

	// An ID already used by another name of the tenant is a conflict.
	_, err = s.CreatePolicies(ctx, nil, runproof.Policy{ID: "pa", TenantID: "t1", Name: "c",
		Type: runproof.PolicyStepLimit, Threshold: "1", Action: runproof.ActionStop, CreatedAt: at(5)})
	wantCode(t, "ID of another name", err, runproof.ECONFLICT)
	if want := `policy id "pa" already belongs to a policy other than "c"`; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("ID of another name: error %v, want %q", err, want)
	}

	// Retiring copies the latest version as the next, marked retired; the
	// policy is then not active, and its name makes it active again.
	_, err = s.RetirePolicy(ctx, "t2", "pa", at(6))
	wantCode(t, "another tenant's policy", err, runproof.ENOTFOUND)
	retired, err := s.RetirePolicy(ctx, "t1", "pa", at(6))
	if err != nil {
		t.Fatal(err)
	}
	want := a2
	want.Version, want.CreatedAt, want.Retired = 3, at(6), true
	equal(t, "the retiring version", retired, want)
	_, err = s.RetirePolicy(ctx, "t1", "pa", at(7))
	wantCode(t, "retired already", err, runproof.ECONFLICT)
	if got, err = s.ActivePolicies(ctx, "t1"); err != nil {
		t.Fatal(err)
	}
	equal(t, "active policies once a is retired", got, []runproof.Policy{b1})
	a4 := create(runproof.Policy{ID: "new", TenantID: "t1", Name: "a", Type: runproof.PolicyStepLimit,
		Threshold: "9", Action: runproof.ActionStop, CreatedAt: at(8), Retired: true})
	if a4.ID != "pa" || a4.Version != 4 || a4.Retired {
		t.Errorf("a policy of a retired name: got %s v%d retired %v, want pa v4, active", a4.ID, a4.Version, a4.Retired)
	}
	if got, err = s.ActivePolicies(ctx, "t1"); err != nil {
		t.Fatal(err)
	}
	equal(t, "active policies once a is back", got, []runproof.Policy{b1, a4})
	versions, err := s.PolicyVersions(ctx, "t1", "pa")
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "the versions of a, the retiring one included", versions, []runproof.Policy{a1, a2, retired, a4})
	_, err = s.PolicyVersions(ctx, "t2", "pa")
	wantCode(t, "another tenant's policy versions", err, runproof.ENOTFOUND)
}

func testPoliciesConcurrent(t *testing.T, h Harness) {
	ctx, s := context.Background(), h.Store
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			_, errs[i] = s.CreatePolicies(ctx, nil, runproof.Policy{ID: fmt.Sprintf("p%d", i), TenantID: "t1",
				Name: "steps", Type: runproof.PolicyStepLimit, Threshold: fmt.Sprint(i + 1),
				Action: runproof.ActionStop, CreatedAt: at(i)})
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	got, err := s.ActivePolicies(ctx, "t1")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Version != n {
		t.Fatalf("after %d concurrent versions: got %+v, want one policy at version %d", n, got, n)
	}

	// Retiring it while new versions come: each takes its own version,
	// and one retirement holds, the others find it retired.
	var retired atomic.Int32
	for i := range n {
		wg.Go(func() {
			if i%2 == 0 {
				_, errs[i] = s.CreatePolicies(ctx, nil, runproof.Policy{TenantID: "t1", Name: "steps", Type: runproof.PolicyStepLimit,
					Threshold: "1", Action: runproof.ActionStop, CreatedAt: at(n + i)})
				return
			}
			_, err := s.RetirePolicy(ctx, "t1", got[0].ID, at(n+i))
			if err == nil {
				retired.Add(1)
			} else if runproof.ErrorCode(err) != runproof.ECONFLICT {
				errs[i] = err
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if retired.Load() == 0 {
		t.Error("no retirement held")
	}
	all, err := s.ActivePolicies(ctx, "t1")
	if err != nil {
		t.Fatal(err)
	}
	if len(all) > 1 || len(all) == 1 && all[0].Version <= n {
		t.Errorf("after versions and retirements at once: %+v", all)
	}

	// Policies added together are seen together: while two writers add
	// new versions of the same four names (in opposite orders, which must
	// not deadlock), a reader always finds the four at one version.
	set := func(round int, names ...string) []runproof.Policy {
		ps := make([]runproof.Policy, len(names))
		for i, name := range names {
			ps[i] = runproof.Policy{ID: "set-" + name, TenantID: "t3", Name: name, Type: runproof.PolicyStepLimit,
				Threshold: fmt.Sprint(round + 1), Action: runproof.ActionStop, CreatedAt: at(round)}
		}
		return ps
	}
	if _, err := s.CreatePolicies(ctx, nil, set(0, "w", "x", "y", "z")...); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var torn []runproof.Policy
	var reads int
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			ps, err := s.ActivePolicies(ctx, "t3")
			if err != nil {
				errs[0] = err
				return
			}
			reads++
			if len(ps) != 4 || slices.ContainsFunc(ps, func(p runproof.Policy) bool { return p.Version != ps[0].Version }) {
				torn = ps
				return
			}
		}
	})
	var writers sync.WaitGroup
	for w, names := range [][]string{{"w", "x", "y", "z"}, {"z", "y", "x", "w"}} {
		writers.Go(func() {
			for round := range 10 {
				if _, err := s.CreatePolicies(ctx, nil, set(round, names...)...); err != nil {
					errs[1+w] = err
					return
				}
			}
		})
	}
	writers.Wait()
	close(done)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if torn != nil {
		t.Fatalf("a read between versions added together: %+v", torn)
	}
	if got, err := s.ActivePolicies(ctx, "t3"); err != nil || len(got) != 4 || got[0].Version != 21 {
		t.Errorf("after 20 sets of 4 versions: %+v, %v", got, err)
	}
	t.Logf("%d reads while the sets were added", reads)

	// A batch whose last policy cannot be stored stores none of them.
	if _, err := s.CreatePolicies(ctx, nil, runproof.Policy{ID: "whole-1", TenantID: "t4", Name: "one", Type: runproof.PolicyStepLimit,
		Threshold: "1", Action: runproof.ActionStop, CreatedAt: at(0)}); err != nil {
		t.Fatal(err)
	}
	_, err = s.CreatePolicies(ctx, nil,
		runproof.Policy{ID: "whole-2", TenantID: "t4", Name: "two", Type: runproof.PolicyStepLimit, Threshold: "2", Action: runproof.ActionStop, CreatedAt: at(1)},
		runproof.Policy{ID: "whole-1", TenantID: "t4", Name: "three", Type: runproof.PolicyStepLimit, Threshold: "3", Action: runproof.ActionStop, CreatedAt: at(1)})
	if got, _ := s.ActivePolicies(ctx, "t4"); err == nil || len(got) != 1 {
		t.Errorf("a batch whose second policy takes the first's id: %v, and the tenant has %+v, want an error and the one policy", err, got)
	}

	// check sees the active policies with no other write between it and
	// the batch's: of two batches at once that each allow only one
	// "only-" policy, one is stored.
	onlyOne := func(active []runproof.Policy) error {
		if slices.ContainsFunc(active, func(p runproof.Policy) bool { return strings.HasPrefix(p.Name, "only-") }) {
			return runproof.Errorf(runproof.ECONFLICT, "one only")
		}
		return nil
	}
	for round := range 5 {
		tenant := fmt.Sprint("t-only-", round)
		for i := range 2 {
			wg.Go(func() {
				_, errs[i] = s.CreatePolicies(ctx, onlyOne, runproof.Policy{ID: fmt.Sprint("only-", i), TenantID: tenant,
					Name: fmt.Sprint("only-", i), Type: runproof.PolicyStepLimit, Threshold: "1", Action: runproof.ActionStop, CreatedAt: at(round)})
			})
		}
		wg.Wait()
		got, err := s.ActivePolicies(ctx, tenant)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || (errs[0] == nil) == (errs[1] == nil) || runproof.ErrorCode(errors.Join(errs[:2]...)) != runproof.ECONFLICT {
			t.Errorf("two batches at once, each checked against the other: %d stored, errors %v and %v", len(got), errs[0], errs[1])
		}
		errs[0], errs[1] = nil, nil
	}
}

func testRuns(t *testing.T, h Harness) {
	ctx, s := context.Background(), h.Store
	r, snap := newRun(t, "t1", "r1", "agent-1", at(0))
	if err := s.CreateRun(ctx, r, snap); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetRun(ctx, "t1", "r1")
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "run", got, r)
	gotSnap, err := s.GetSnapshot(ctx, "t1", snap.ID)
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "snapshot", gotSnap, snap)

	wantCode(t, "same run again", s.CreateRun(ctx, r, snap), runproof.ECONFLICT)

	// A second run under the same snapshot shares it.
	r2, snap2 := newRun(t, "t1", "r2", "agent-1", at(1))
	if err := s.CreateRun(ctx, r2, snap2); err != nil {
		t.Fatalf("second run under one snapshot: %v", err)
	}

	// Another tenant sees nothing of t1 but may use the same IDs.
	_, err = s.GetRun(ctx, "t2", "r1")
	wantCode(t, "run of another tenant", err, runproof.ENOTFOUND)
	_, err = s.GetSnapshot(ctx, "t2", snap.ID)
	wantCode(t, "snapshot of another tenant", err, runproof.ENOTFOUND)
	_, err = s.GetRun(ctx, "t1", "nope")
	wantCode(t, "unknown run", err, runproof.ENOTFOUND)
	r3, snap3 := newRun(t, "t2", "r1", "agent-1", at(2))
	if err := s.CreateRun(ctx, r3, snap3); err != nil {
		t.Fatalf("same run ID in another tenant: %v", err)
	}
	if got, _ := s.GetRun(ctx, "t1", "r1"); !got.StartedAt.Equal(r.StartedAt) {
		t.Errorf("t1's run changed by t2's: %+v", got)
	}
}

// testTimesNormalised checks that times come back in UTC, truncated to
// microseconds, whatever zone and precision they were written with.
func testTimesNormalised(t *testing.T, h Harness) {
	ctx, s := context.Background(), h.Store
	zone := time.FixedZone("UTC+5:30", 5*3600+1800)
	started := time.Date(2025, 3, 1, 17, 30, 0, 123456789, zone)
	r, snap := newRun(t, "t1", "r1", "a", started)
	r.StoppedAt = ptr(started.Add(time.Second))
	if err := s.CreateRun(ctx, r, snap); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetRun(ctx, "t1", "r1")
	if err != nil {
		t.Fatal(err)
	}
	want := time.Date(2025, 3, 1, 12, 0, 0, 123456000, time.UTC)
	if got.StartedAt != want || got.StartedAt.Location() != time.UTC {
		t.Errorf("started_at: got %#v, want %#v", got.StartedAt, want)
	}
	if got.StoppedAt == nil || *got.StoppedAt != want.Add(time.Second) {
		t.Errorf("stopped_at: got %v, want %v", got.StoppedAt, want.Add(time.Second))
	}
	if got.CompletedAt != nil {
		t.Errorf("completed_at: got %v, want nil", got.CompletedAt)
	}
}

func testListRuns(t *testing.T, h Harness) {
	ctx, s := context.Background(), h.Store
	// r3 and r4 start at the same time, so the run ID orders them.
	r1 := createRun(t, s, "t1", "r1", "agent-a", at(10))
	r2 := createRun(t, s, "t1", "r2", "agent-b", at(20))
	r3 := createRun(t, s, "t1", "r3", "agent-a", at(30))
	r4 := createRun(t, s, "t1", "r4", "agent-a", at(30))
	r5 := createRun(t, s, "t1", "r5", "agent-b", at(40))
	createRun(t, s, "t2", "x1", "agent-a", at(25))
	err := s.UpdateRun(ctx, runproof.UpdateRunParams{TenantID: "t1", RunID: "r2", StepsFrom: 1},
		func(st runproof.RunState) (runproof.RunChange, error) {
			st.Run.Status = runproof.RunCompleted
			st.Run.CompletedAt = ptr(at(21))
			return runproof.RunChange{Run: st.Run}, nil
		})
	if err != nil {
		t.Fatal(err)
	}
	r2.Status, r2.CompletedAt = runproof.RunCompleted, ptr(at(21))

	tests := []struct {
		name string
		p    runproof.ListRunsParams
		want []runproof.Run
	}{
		{"all", runproof.ListRunsParams{Limit: 100}, []runproof.Run{r5, r4, r3, r2, r1}},
		{"limit", runproof.ListRunsParams{Limit: 2}, []runproof.Run{r5, r4}},
		{"agent", runproof.ListRunsParams{AgentID: "agent-a", Limit: 100}, []runproof.Run{r4, r3, r1}},
		{"status", runproof.ListRunsParams{Status: runproof.RunCompleted, Limit: 100}, []runproof.Run{r2}},
		{"running of agent-b", runproof.ListRunsParams{AgentID: "agent-b", Status: runproof.RunRunning, Limit: 100}, []runproof.Run{r5}},
		{"from", runproof.ListRunsParams{From: at(30), Limit: 100}, []runproof.Run{r5, r4, r3}},
		{"to", runproof.ListRunsParams{To: at(30), Limit: 100}, []runproof.Run{r2, r1}},
		{"from to", runproof.ListRunsParams{From: at(20), To: at(40), Limit: 100}, []runproof.Run{r4, r3, r2}},
		{"after tie", runproof.ListRunsParams{After: &runproof.RunCursor{StartedAt: at(30), RunID: "r4"}, Limit: 100}, []runproof.Run{r3, r2, r1}},
		{"after", runproof.ListRunsParams{After: &runproof.RunCursor{StartedAt: at(30), RunID: "r3"}, Limit: 1}, []runproof.Run{r2}},
		{"after last", runproof.ListRunsParams{After: &runproof.RunCursor{StartedAt: at(10), RunID: "r1"}, Limit: 100}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.p.TenantID = "t1"
			got, err := s.ListRuns(ctx, tt.p)
			if err != nil {
				t.Fatal(err)
			}
			equal(t, "runs", runIDs(got), runIDs(tt.want))
			if len(got) == len(tt.want) {
				equal(t, "runs", got, tt.want)
			}
		})
	}

	t.Run("pages", func(t *testing.T) {
		var ids []string
		p := runproof.ListRunsParams{TenantID: "t1", Limit: 2}
		for range 10 {
			page, err := s.ListRuns(ctx, p)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) == 0 {
				break
			}
			ids = append(ids, runIDs(page)...)
			last := page[len(page)-1]
			p.After = &runproof.RunCursor{StartedAt: last.StartedAt, RunID: last.ID}
		}
		equal(t, "pages", ids, []string{"r5", "r4", "r3", "r2", "r1"})
	})
}

func runIDs(runs []runproof.Run) []string {
	var ids []string
	for _, r := range runs {
		ids = append(ids, r.ID)
	}
	return ids
}

func testUpdateRun(t *testing.T, h Harness) {
	ctx, s := context.Background(), h.Store
	r := createRun(t, s, "t1", "r1", "a", at(0))
	snap := testSnapshot(t, "t1")
	var steps []runproof.Step
	for i := range int64(4) {
		steps = append(steps, newStep(t, "t1", "r1", i))
	}
	AppendSteps(t, s, "t1", "r1", steps[:2]...)

	inc := newIncident("t1", "inc-1", "r1", at(3))
	var seen runproof.RunState
	err := s.UpdateRun(ctx, runproof.UpdateRunParams{TenantID: "t1", RunID: "r1", StepsFrom: 1, StepsTo: 5},
		func(st runproof.RunState) (runproof.RunChange, error) {
			seen = st
			run := st.Run
			for _, x := range steps[2:] {
				run.Totals = run.Totals.Add(x)
			}
			run.Status = runproof.RunStopped
			run.StoppedAt = ptr(at(4))
			run.TerminationReason = "policy tokens exceeded"
			run.IncidentID = inc.ID
			return runproof.RunChange{Run: run, Steps: steps[2:], Incident: &inc}, nil
		})
	if err != nil {
		t.Fatal(err)
	}

	wantRun := r
	for _, x := range steps[:2] {
		wantRun.Totals = wantRun.Totals.Add(x)
	}
	equal(t, "run handed to fn", seen.Run, wantRun)
	equal(t, "snapshot handed to fn", seen.Snapshot, snap)
	equal(t, "existing steps in [1, 5]", seen.Existing, steps[1:2])

	for _, x := range steps[2:] {
		wantRun.Totals = wantRun.Totals.Add(x)
	}
	wantRun.Status, wantRun.StoppedAt = runproof.RunStopped, ptr(at(4))
	wantRun.TerminationReason, wantRun.IncidentID = "policy tokens exceeded", inc.ID
	got, err := s.GetRun(ctx, "t1", "r1")
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "run after update", got, wantRun)
	gotSteps, err := s.ListSteps(ctx, runproof.ListStepsParams{TenantID: "t1", RunID: "r1"})
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "steps", gotSteps, steps)
	gotInc, err := s.GetIncident(ctx, "t1", "inc-1")
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "incident", gotInc, inc)

	// The whole range, and an empty one.
	for _, tt := range []struct {
		from, to int64
		want     []runproof.Step
	}{{0, 3, steps}, {2, 1, nil}, {4, 10, nil}} {
		err := s.UpdateRun(ctx, runproof.UpdateRunParams{TenantID: "t1", RunID: "r1", StepsFrom: tt.from, StepsTo: tt.to},
			func(st runproof.RunState) (runproof.RunChange, error) {
				equal(t, fmt.Sprintf("existing steps in [%d, %d]", tt.from, tt.to), st.Existing, tt.want)
				return runproof.RunChange{Run: st.Run}, nil
			})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func testUpdateRunFails(t *testing.T, h Harness) {
	ctx, s := context.Background(), h.Store
	r := createRun(t, s, "t1", "r1", "a", at(0))
	step0 := newStep(t, "t1", "r1", 0)
	AppendSteps(t, s, "t1", "r1", step0)
	r.Totals = r.Totals.Add(step0)
	inc := newIncident("t1", "inc-1", "r1", at(3))
	changeAll := func(st runproof.RunState, steps ...runproof.Step) runproof.RunChange {
		st.Run.Status = runproof.RunFailed
		st.Run.Totals.Steps += 10
		return runproof.RunChange{Run: st.Run, Steps: steps, Incident: &inc}
	}

	errFn := errors.New("fn failed")
	err := s.UpdateRun(ctx, runproof.UpdateRunParams{TenantID: "t1", RunID: "r1"},
		func(st runproof.RunState) (runproof.RunChange, error) {
			return changeAll(st, newStep(t, "t1", "r1", 1)), errFn
		})
	if err != errFn {
		t.Errorf("fn's error: got %v, want it unchanged", err)
	}

	// A step index already stored refuses the whole change.
	err = s.UpdateRun(ctx, runproof.UpdateRunParams{TenantID: "t1", RunID: "r1"},
		func(st runproof.RunState) (runproof.RunChange, error) {
			return changeAll(st, newStep(t, "t1", "r1", 1), step0), nil
		})
	wantCode(t, "stored step index", err, runproof.ECONFLICT)

	err = s.UpdateRun(ctx, runproof.UpdateRunParams{TenantID: "t2", RunID: "r1"},
		func(st runproof.RunState) (runproof.RunChange, error) {
			t.Error("fn called for a run of another tenant")
			return runproof.RunChange{}, nil
		})
	wantCode(t, "run of another tenant", err, runproof.ENOTFOUND)

	got, err := s.GetRun(ctx, "t1", "r1")
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "run", got, r)
	steps, err := s.ListSteps(ctx, runproof.ListStepsParams{TenantID: "t1", RunID: "r1"})
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "steps", steps, []runproof.Step{step0})
	_, err = s.GetIncident(ctx, "t1", "inc-1")
	wantCode(t, "incident of a failed update", err, runproof.ENOTFOUND)
}

// testUpdateRunConcurrent has several writers each append the step whose
// index is the run's step count: only if updates of one run are serialised
// do they end with indexes 0..n-1 and no conflict.
func testUpdateRunConcurrent(t *testing.T, h Harness) {
	ctx, s := context.Background(), h.Store
	createRun(t, s, "t1", "r1", "a", at(0))
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			errs[i] = s.UpdateRun(ctx, runproof.UpdateRunParams{TenantID: "t1", RunID: "r1", StepsFrom: 1},
				func(st runproof.RunState) (runproof.RunChange, error) {
					step := runproof.Step{Index: st.Run.Totals.Steps, Timestamp: at(i), StepType: "tool",
						Status: runproof.StepOK, RecordedAt: at(i)}
					st.Run.Totals = st.Run.Totals.Add(step)
					return runproof.RunChange{Run: st.Run, Steps: []runproof.Step{step}}, nil
				})
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	steps, err := s.ListSteps(ctx, runproof.ListStepsParams{TenantID: "t1", RunID: "r1"})
	if err != nil {
		t.Fatal(err)
	}
	var idx []int64
	for _, st := range steps {
		idx = append(idx, st.Index)
	}
	equal(t, "step indexes", idx, []int64{0, 1, 2, 3, 4, 5, 6, 7})
	r, err := s.GetRun(ctx, "t1", "r1")
	if err != nil {
		t.Fatal(err)
	}
	if r.Totals.Steps != n {
		t.Errorf("step count: got %d, want %d", r.Totals.Steps, n)
	}
}

// testUpdateRunBatch writes the largest batch ingest sends at once.
func testUpdateRunBatch(t *testing.T, h Harness) {
	ctx, s := context.Background(), h.Store
	createRun(t, s, "t1", "r1", "a", at(0))
	const n = 500
	steps := make([]runproof.Step, n)
	for i := range steps {
		steps[i] = newStep(t, "t1", "r1", int64(i))
	}
	start := time.Now()
	AppendSteps(t, s, "t1", "r1", steps...)
	t.Logf("UpdateRun with %d steps: %v", n, time.Since(start))
	got, err := s.ListSteps(ctx, runproof.ListStepsParams{TenantID: "t1", RunID: "r1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n {
		t.Fatalf("got %d steps, want %d", len(got), n)
	}
	equal(t, "steps", got, steps)
}

func testSteps(t *testing.T, h Harness) {
	ctx, s := context.Background(), h.Store
	createRun(t, s, "t1", "r1", "a", at(0))
	var steps []runproof.Step
	for i := range int64(5) {
		steps = append(steps, newStep(t, "t1", "r1", i))
	}
	// Content is kept byte for byte, even where it is not canonical.
	steps[1].Content = json.RawMessage(`{"prompt":"héllo \u00e9","n":[1,2.50]}`)
	steps[1].ContentDigest = runproof.DigestBytes(steps[1].Content)
	steps[2].Content = json.RawMessage(` { "b" : 1 , "a" : "x" } `)
	steps[2].ContentDigest = runproof.DigestBytes(steps[2].Content)
	steps[3].Content = json.RawMessage(`{"tool":"shell"}`)
	steps[3].ContentDigest = runproof.DigestBytes(steps[3].Content)
	steps[3].Status, steps[3].IsInflection = runproof.StepViolation, true
	steps[3].Findings = []runproof.Finding{{PolicyID: "pol-tokens", PolicyName: "tokens", PolicyVersion: 1,
		Type: runproof.PolicyTokenLimit, Action: runproof.ActionStop, Outcome: runproof.OutcomeExceeded,
		Threshold: "1000", Actual: "1200"}}
	steps[4].Status = runproof.StepWarning
	steps[4].Findings = []runproof.Finding{{PolicyID: "pol-deny", PolicyName: "deny", PolicyVersion: 2,
		Type: runproof.PolicyStepTypeDenied, Action: runproof.ActionWarn, Outcome: runproof.OutcomeAfterStop}}
	AppendSteps(t, s, "t1", "r1", steps...)
	createRun(t, s, "t2", "r1", "a", at(0))

	all, err := s.ListSteps(ctx, runproof.ListStepsParams{TenantID: "t1", RunID: "r1"})
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "steps", all, steps)
	if len(all) == 5 {
		if string(all[2].Content) != ` { "b" : 1 , "a" : "x" } ` {
			t.Errorf("content changed: %q", all[2].Content)
		}
		if all[0].Content != nil || all[0].Findings != nil {
			t.Errorf("absent content and findings: got %#v and %#v, want nil", all[0].Content, all[0].Findings)
		}
	}

	// Judged steps are those with findings, read without their content.
	var judged []runproof.Step
	for _, st := range steps[3:] {
		st.Content = nil
		judged = append(judged, st)
	}

	withoutContent := slices.Clone(steps)
	for i := range withoutContent {
		withoutContent[i].Content = nil
	}

	tests := []struct {
		name string
		p    runproof.ListStepsParams
		want []runproof.Step
	}{
		{"judged", runproof.ListStepsParams{Judged: true}, judged},
		{"judged from index", runproof.ListStepsParams{FromIndex: 4, Judged: true}, judged[1:]},
		{"from index", runproof.ListStepsParams{FromIndex: 3}, steps[3:]},
		{"limit", runproof.ListStepsParams{FromIndex: 1, Limit: 2}, steps[1:3]},
		{"time range", runproof.ListStepsParams{From: steps[1].Timestamp, To: steps[3].Timestamp}, steps[1:3]},
		{"from time", runproof.ListStepsParams{From: steps[4].Timestamp}, steps[4:]},
		{"past the end", runproof.ListStepsParams{FromIndex: 5}, nil},
		// The list ends with the step whose content fills it (steps 0 and
		// 4 have none).
		{"content bound", runproof.ListStepsParams{MaxContentBytes: 1}, steps[:2]},
		{"content bound after a step", runproof.ListStepsParams{MaxContentBytes: int64(len(steps[1].Content)) + 1}, steps[:3]},
		{"content bound met", runproof.ListStepsParams{MaxContentBytes: int64(len(steps[1].Content) + len(steps[2].Content))}, steps[:3]},
		{"content bound from index", runproof.ListStepsParams{FromIndex: 3, MaxContentBytes: 1}, steps[3:4]},
		{"content bound and limit", runproof.ListStepsParams{FromIndex: 2, Limit: 1, MaxContentBytes: 1 << 20}, steps[2:3]},
		{"content bound not met", runproof.ListStepsParams{FromIndex: 1, MaxContentBytes: 1 << 20}, steps[1:]},
		{"content bound past the end", runproof.ListStepsParams{FromIndex: 5, MaxContentBytes: 1}, nil},
		{"content bound, judged", runproof.ListStepsParams{Judged: true, MaxContentBytes: 1}, judged},
		{"without content", runproof.ListStepsParams{FromIndex: 1, Limit: 3, WithoutContent: true, MaxContentBytes: 1}, withoutContent[1:4]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.p.TenantID, tt.p.RunID = "t1", "r1"
			got, err := s.ListSteps(ctx, tt.p)
			if err != nil {
				t.Fatal(err)
			}
			equal(t, "steps", got, tt.want)
		})
	}
	got, err := s.ListSteps(ctx, runproof.ListStepsParams{TenantID: "t2", RunID: "r1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Errorf("another tenant's run of the same ID has %d steps, want 0", len(got))
	}

	// Each step keeps the run's totals up to it, over every call that
	// appended steps.
	more := newStep(t, "t1", "r1", 5)
	AppendSteps(t, s, "t1", "r1", more)
	var want runproof.Totals
	for i, st := range append(steps, more) {
		want = want.Add(st)
		got, err := s.RunningTotals(ctx, "t1", "r1", int64(i))
		if err != nil || got != want {
			t.Errorf("running totals at step %d: %+v (%v), want %+v", i, got, err, want)
		}
	}
	for _, at := range []struct{ tenant, run string }{{"t1", "r1"}, {"t2", "r1"}, {"t1", "nope"}} {
		idx := int64(6)
		if at.tenant == "t2" {
			idx = 0 // of the other tenant's run
		}
		if _, err := s.RunningTotals(ctx, at.tenant, at.run, idx); runproof.ErrorCode(err) != runproof.ENOTFOUND {
			t.Errorf("running totals of %s's run %s at %d: %v, want %s", at.tenant, at.run, idx, err, runproof.ENOTFOUND)
		}
	}
}

func testIncidents(t *testing.T, h Harness) {
	ctx, s := context.Background(), h.Store
	open := func(tenant, runID string, incs ...runproof.Incident) {
		t.Helper()
		for _, inc := range incs {
			err := s.UpdateRun(ctx, runproof.UpdateRunParams{TenantID: tenant, RunID: runID, StepsFrom: 1},
				func(st runproof.RunState) (runproof.RunChange, error) {
					return runproof.RunChange{Run: st.Run, Incident: &inc}, nil
				})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	createRun(t, s, "t1", "r1", "a", at(0))
	createRun(t, s, "t1", "r2", "a", at(0))
	createRun(t, s, "t2", "r1", "a", at(0))
	i1 := newIncident("t1", "i1", "r1", at(10))
	i1.DetectedAt = at(50) // reported late: its agent's clock runs behind
	i2 := newIncident("t1", "i2", "r1", at(20))
	i2.ContainedAt, i2.RemediationStatus, i2.RiskLevel = ptr(at(21)), "completed", runproof.RiskCritical
	i3 := newIncident("t1", "i3", "r2", at(20)) // same time as i2: the ID orders them
	i4 := newIncident("t1", "i4", "r2", at(30))
	open("t1", "r1", i1, i2)
	open("t1", "r2", i3, i4)
	open("t2", "r1", newIncident("t2", "x1", "r1", at(15)))

	got, err := s.GetIncident(ctx, "t1", "i2")
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "incident", got, i2)
	_, err = s.GetIncident(ctx, "t2", "i2")
	wantCode(t, "incident of another tenant", err, runproof.ENOTFOUND)

	// Remediation is recorded after the incident opens, in its tenant only.
	fixed, err := s.SetRemediation(ctx, runproof.SetRemediationParams{TenantID: "t1", IncidentID: "i2", Status: "in_progress", Notes: "rolled back the prompt ✓"})
	if err != nil {
		t.Fatal(err)
	}
	i2.RemediationStatus, i2.RemediationNotes = "in_progress", "rolled back the prompt ✓"
	equal(t, "incident after its remediation", fixed, i2)
	if got, err = s.GetIncident(ctx, "t1", "i2"); err != nil {
		t.Fatal(err)
	}
	equal(t, "incident read back after its remediation", got, i2)
	_, err = s.SetRemediation(ctx, runproof.SetRemediationParams{TenantID: "t2", IncidentID: "i2", Status: "completed"})
	wantCode(t, "remediation of another tenant's incident", err, runproof.ENOTFOUND)

	// Opening an incident ID twice is a conflict.
	err = s.UpdateRun(ctx, runproof.UpdateRunParams{TenantID: "t1", RunID: "r1", StepsFrom: 1},
		func(st runproof.RunState) (runproof.RunChange, error) {
			return runproof.RunChange{Run: st.Run, Incident: &i1}, nil
		})
	wantCode(t, "same incident twice", err, runproof.ECONFLICT)

	tests := []struct {
		name string
		p    runproof.ListIncidentsParams
		want []runproof.Incident
	}{
		{"all", runproof.ListIncidentsParams{}, []runproof.Incident{i4, i3, i2, i1}},
		{"run", runproof.ListIncidentsParams{RunID: "r1"}, []runproof.Incident{i2, i1}},
		{"remediation", runproof.ListIncidentsParams{RemediationStatus: "pending"}, []runproof.Incident{i4, i3, i1}},
		{"from to", runproof.ListIncidentsParams{From: at(10), To: at(30)}, []runproof.Incident{i3, i2, i1}},
		{"detected before", runproof.ListIncidentsParams{DetectedBefore: at(50)}, []runproof.Incident{i4, i3, i2}},
		{"limit offset", runproof.ListIncidentsParams{Limit: 2, Offset: 1}, []runproof.Incident{i3, i2}},
		{"offset", runproof.ListIncidentsParams{Offset: 3}, []runproof.Incident{i1}},
		{"none", runproof.ListIncidentsParams{RunID: "r9"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.p.TenantID = "t1"
			got, err := s.ListIncidents(ctx, tt.p)
			if err != nil {
				t.Fatal(err)
			}
			equal(t, "incidents", got, tt.want)
		})
	}
}

func testAuditEvents(t *testing.T, h Harness) {
	ctx, s := context.Background(), h.Store
	e1 := newAuditEvent("t1", "e1", runproof.AuditAccess, at(1))
	e2 := newAuditEvent("t1", "e2", runproof.AuditAuthorization, at(2))
	e2.Decision, e2.Status, e2.Detail = runproof.DecisionDeny, 403, "role viewer lacks export"
	e3 := newAuditEvent("t1", "e3", runproof.AuditAccess, at(2)) // same time as e2: the ID orders them
	e4 := newAuditEvent("t1", "e4", runproof.AuditWrite, at(3))
	e4.ActorType, e4.Actor, e4.Status, e4.SourceComponent = runproof.OriginSystem, "system", 0, "cli"
	if err := s.AppendAuditEvents(ctx, e1, e2); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendAuditEvents(ctx, e3, e4, newAuditEvent("t2", "e1", runproof.AuditAccess, at(1))); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendAuditEvents(ctx); err != nil {
		t.Fatalf("no events: %v", err)
	}
	// All or nothing: e5 must not be stored when e1 is refused.
	err := s.AppendAuditEvents(ctx, newAuditEvent("t1", "e5", runproof.AuditAccess, at(5)), e1)
	wantCode(t, "same event twice", err, runproof.ECONFLICT)

	tests := []struct {
		name string
		p    runproof.ListAuditParams
		want []runproof.AuditEvent
	}{
		{"all", runproof.ListAuditParams{}, []runproof.AuditEvent{e4, e3, e2, e1}},
		{"category", runproof.ListAuditParams{Category: runproof.AuditAccess}, []runproof.AuditEvent{e3, e1}},
		{"from to", runproof.ListAuditParams{From: at(2), To: at(3)}, []runproof.AuditEvent{e3, e2}},
		{"limit offset", runproof.ListAuditParams{Limit: 2, Offset: 1}, []runproof.AuditEvent{e3, e2}},
		{"offset", runproof.ListAuditParams{Offset: 3}, []runproof.AuditEvent{e1}},
		{"none", runproof.ListAuditParams{Category: runproof.AuditIntegrity}, nil},
		{"runproof's own", runproof.ListAuditParams{System: true}, []runproof.AuditEvent{e4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.p.TenantID = "t1"
			got, err := s.ListAuditEvents(ctx, tt.p)
			if err != nil {
				t.Fatal(err)
			}
			equal(t, "events", got, tt.want)
		})
	}

	// An event that waits for the ledger but is gone from the audit log
	// (deleted behind the store's back) is named, not skipped for ever.
	if err := h.Exec(ctx, `INSERT INTO audit_unsealed (tenant_id, id, occurred_at) VALUES ('t1', 'ghost', '2026-01-02T15:04:05.000000Z')`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AuditEventsToSeal(ctx, "t1", 100); err == nil || !strings.Contains(err.Error(), "ghost") {
		t.Errorf("a waiting event gone from the log: %v", err)
	}
	if got, err := s.AuditEventsToSeal(ctx, "t2", 100); err != nil || len(got) != 1 {
		t.Errorf("the other tenant's waiting events: %v, %v", got, err)
	}
}

// testAppendOnly tries, behind the store's back, what the database itself
// must refuse.
func testAppendOnly(t *testing.T, h Harness) {
	ctx, s := context.Background(), h.Store
	createRun(t, s, "t1", "r1", "a", at(0))
	AppendSteps(t, s, "t1", "r1", newStep(t, "t1", "r1", 0), newStep(t, "t1", "r1", 1))
	inc := newIncident("t1", "inc-1", "r1", at(3))
	err := s.UpdateRun(ctx, runproof.UpdateRunParams{TenantID: "t1", RunID: "r1"},
		func(st runproof.RunState) (runproof.RunChange, error) {
			st.Run.Status, st.Run.StoppedAt, st.Run.IncidentID = runproof.RunStopped, ptr(at(3)), inc.ID
			st.Run.TerminationReason = "policy_violation: tokens"
			st.Run.CompletedAt, st.Run.EndedAs = ptr(at(4)), runproof.RunCancelled // its agent ended it
			return runproof.RunChange{Run: st.Run, Incident: &inc}, nil
		})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AppendAuditEvents(ctx, newAuditEvent("t1", "e1", runproof.AuditAccess, at(1))); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreatePolicies(ctx, nil, fixturePolicies("t1")[0]); err != nil {
		t.Fatal(err)
	}
	dump := func() string {
		steps, err1 := s.ListSteps(ctx, runproof.ListStepsParams{TenantID: "t1", RunID: "r1"})
		events, err2 := s.ListAuditEvents(ctx, runproof.ListAuditParams{TenantID: "t1"})
		policies, err3 := s.ActivePolicies(ctx, "t1")
		r, err4 := s.GetRun(ctx, "t1", "r1")
		snap, err5 := s.GetSnapshot(ctx, "t1", r.SnapshotID)
		in, err6 := s.GetIncident(ctx, "t1", inc.ID)
		if err := errors.Join(err1, err2, err3, err4, err5, err6); err != nil {
			t.Fatal(err)
		}
		return show([]any{steps, events, policies, snap, r, in})
	}
	before := dump()

	// TRUNCATE is PostgreSQL's; on SQLite it is not even SQL, and fails too.
	for _, q := range []string{
		"UPDATE steps SET step_type = 'x'",
		"DELETE FROM steps",
		"TRUNCATE steps",
		"UPDATE audit_events SET actor = 'x'",
		"DELETE FROM audit_events",
		"TRUNCATE audit_events",
		"UPDATE policies SET threshold = '1'",
		"DELETE FROM policies",
		"TRUNCATE policies",
		"UPDATE policy_snapshots SET policies = '[]'",
		"DELETE FROM policy_snapshots",
		// Runs and incidents change, but only as runproof changes them.
		"DELETE FROM runs",
		"TRUNCATE runs",
		"UPDATE runs SET agent_id = 'b'",
		"UPDATE runs SET snapshot_id = 'other'",
		"UPDATE runs SET started_at = created_at",
		"UPDATE runs SET cost_microcents = 0",
		"UPDATE runs SET steps = 1",
		// The stop and the end are written once.
		"UPDATE runs SET status = 'completed'",
		"UPDATE runs SET status = 'running', stopped_at = NULL",
		"UPDATE runs SET incident_id = ''",
		"UPDATE runs SET stopped_at = started_at",
		"UPDATE runs SET termination_reason = 'completed'",
		"UPDATE runs SET completed_at = started_at",
		"UPDATE runs SET ended_as = 'completed'",
		"DELETE FROM incidents",
		"TRUNCATE incidents",
		"UPDATE incidents SET actual_value = '1'",
		"UPDATE incidents SET inflection_step_index = 0",
		"UPDATE incidents SET detected_at = violation_at",
		"UPDATE incidents SET policy_name = 'other'",
	} {
		if err := h.Exec(ctx, q); err == nil {
			t.Errorf("%s: succeeded, want refused", q)
		}
	}
	if after := dump(); after != before {
		t.Errorf("data changed:\nbefore %s\n after %s", before, after)
	}
}

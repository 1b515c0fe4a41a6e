package evidence_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/runproof/runproof/internal/evidence"
	"github.com/runproof/runproof/internal/runproof"
)

const schemaDir = "../../docs/schema"

// schemas compiles docs/schema/*.schema.json, by bundle type.
func schemas(t *testing.T) map[string]*jsonschema.Schema {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	ids := map[string]string{}
	for _, kind := range []string{"evidence", "soc2", "executive_debrief"} {
		f, err := os.Open(filepath.Join(schemaDir, kind+".schema.json"))
		if err != nil {
			t.Fatal(err)
		}
		doc, err := jsonschema.UnmarshalJSON(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		id, _ := doc.(map[string]any)["$id"].(string)
		if err := c.AddResource(id, doc); err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		ids[kind] = id
	}
	out := map[string]*jsonschema.Schema{}
	for kind, id := range ids {
		s, err := c.Compile(id)
		if err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		out[kind] = s
	}
	return out
}

func validate(t *testing.T, s *jsonschema.Schema, b []byte) error {
	t.Helper()
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return s.Validate(v)
}

// variants are sources and options beyond the golden data set.
func variants(t *testing.T) map[string]struct {
	src  evidence.Source
	opts evidence.Options
} {
	noSteps, notContained, empty := goldenOptions(), costRun(t), cleanRun(t)
	noSteps.IncludeRawSteps = false
	notContained.Incident.ContainedAt, notContained.Run.Status, notContained.Run.StoppedAt = nil, runproof.RunCompleted, nil
	empty.Steps, empty.Run.Totals = nil, runproof.Totals{}
	minimal := evidence.Options{BundleID: "x", CreatedAt: t0}
	ended := costRun(t) // stopped, then ended by its agent
	endedAt := t0.Add(time.Hour)
	ended.Run.CompletedAt, ended.Run.EndedAs = &endedAt, runproof.RunCancelled
	reviewed := costRun(t)
	reviewed.Review = &runproof.Review{BundleID: "SOC2-earlier", Status: evidence.ReviewApproved, ReviewedBy: "Ada Lovelace",
		Notes: "Trace checked.", RunSteps: reviewed.Run.Totals.Steps, Remediation: reviewed.Remediation(), ReviewedAt: t0}
	return map[string]struct {
		src  evidence.Source
		opts evidence.Options
	}{
		"steps omitted":      {costRun(t), noSteps},
		"not contained":      {notContained, goldenOptions()},
		"run without steps":  {empty, goldenOptions()},
		"minimal options":    {deniedRun(t), minimal},
		"reviewed":           {reviewed, goldenOptions()},
		"ended by its agent": {ended, goldenOptions()},
	}
}

func TestBundlesMatchSchemas(t *testing.T) {
	s := schemas(t)
	check := func(name string, bs []built) {
		for _, b := range bs {
			if err := validate(t, s[b.kind], b.json); err != nil {
				t.Errorf("%s %s: %v", name, b.kind, err)
			}
			if err := evidence.VerifyContentHash(b.json); err != nil {
				t.Errorf("%s %s: %v", name, b.kind, err)
			}
		}
	}
	for _, c := range dataSet {
		opts := goldenOptions()
		opts.IncludeContent = c.content
		check(c.name, buildAll(t, c.src(t), opts))
	}
	for name, v := range variants(t) {
		check(name, buildAll(t, v.src, v.opts))
	}
}

// TestSchemasRefuse checks that the schemas are not vacuous.
func TestSchemasRefuse(t *testing.T) {
	s := schemas(t)
	bs := buildAll(t, costRun(t), goldenOptions())
	edits := []struct {
		kind      string
		old, new_ string
	}{
		{"evidence", `"bundle_id":"EVD-`, `"bundle_id":"SOC2-`},
		{"evidence", `"status":"violation"`, `"status":"stopped"`},
		{"evidence", `"total_steps":6,`, ``},
		{"soc2", `"compliance_status":"PARTIAL"`, `"compliance_status":"MAYBE"`},
		{"soc2", `"bundle_type":"soc2"`, `"bundle_type":"evidence"`},
		{"executive_debrief", `"risk_level":"medium"`, `"risk_level":"severe"`},
		{"executive_debrief", `"content_hash":"sha256:`, `"content_hash":"md5:`},
		{"executive_debrief", `"cost_incurred_cents":120`, `"cost_incurred_cents":1.5`},
	}
	for _, e := range edits {
		for _, b := range bs {
			if b.kind != e.kind {
				continue
			}
			changed := strings.Replace(string(b.json), e.old, e.new_, 1)
			if changed == string(b.json) {
				t.Fatalf("%s: %q not found", e.kind, e.old)
			}
			if !json.Valid([]byte(changed)) {
				t.Fatalf("%s: edit %q made invalid JSON", e.kind, e.old)
			}
			if validate(t, s[e.kind], []byte(changed)) == nil {
				t.Errorf("%s with %q → %q passes the schema", e.kind, e.old, e.new_)
			}
		}
	}
}

// TestRunEndedAs: a stopped run its agent ended says, in its bundles, what
// the agent ended it as.
func TestRunEndedAs(t *testing.T) {
	v := variants(t)["ended by its agent"]
	for _, b := range buildAll(t, v.src, v.opts) {
		if b.kind != "executive_debrief" && !bytes.Contains(b.json, []byte(`"run_ended_as":"cancelled"`)) {
			t.Errorf("%s: no run_ended_as", b.kind)
		}
		if !bytes.Contains(b.json, []byte(`"run_status":"stopped"`)) && b.kind != "executive_debrief" {
			t.Errorf("%s: not stopped", b.kind)
		}
	}
}

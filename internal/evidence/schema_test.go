package evidence_test

import (
	"bytes"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/runproof/runproof/internal/evidence"
	"github.com/runproof/runproof/internal/evidence/evidencetest"
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
		KeyID: "0199c0de-aaaa-7000-8000-000000000002", Notes: "Trace checked.", RunSteps: reviewed.Run.Totals.Steps, Remediation: reviewed.Remediation(), ReviewedAt: t0}
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
			if err := evidencetest.VerifyContentHash(b.json); err != nil {
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

// TestSchemasNameEveryMember checks that the schemas keep up with the
// bundle types: every member a bundle type writes, at any depth, is a
// property of the matching schema object, and every property is a member
// the type writes. The schemas allow unknown members, so validation alone
// would let a new member go undocumented and unchecked.
func TestSchemasNameEveryMember(t *testing.T) {
	docs := map[string]map[string]any{} // by file name
	for _, kind := range []string{"evidence", "soc2", "executive_debrief"} {
		b, err := os.ReadFile(filepath.Join(schemaDir, kind+".schema.json"))
		if err != nil {
			t.Fatal(err)
		}
		var doc map[string]any
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		docs[kind+".schema.json"] = doc
	}
	for file, typ := range map[string]reflect.Type{
		"evidence.schema.json":          reflect.TypeFor[evidence.EvidenceBundle](),
		"soc2.schema.json":              reflect.TypeFor[evidence.SOC2Bundle](),
		"executive_debrief.schema.json": reflect.TypeFor[evidence.ExecutiveDebriefBundle](),
	} {
		compareMembers(t, typ.Name(), typ, schemaNode{docs, file, docs[file]})
	}
}

// schemaNode is one schema object, in the file its references are relative to.
type schemaNode struct {
	docs map[string]map[string]any // every schema file, by name
	file string
	node map[string]any
}

// ref returns the schema n's $ref points at, if it has one.
func (n schemaNode) ref(t *testing.T) (schemaNode, bool) {
	t.Helper()
	ref, ok := n.node["$ref"].(string)
	if !ok {
		return schemaNode{}, false
	}
	file, pointer, _ := strings.Cut(ref, "#")
	if file == "" {
		file = n.file
	}
	var v any = n.docs[file]
	for _, name := range strings.Split(strings.TrimPrefix(pointer, "/"), "/") {
		if m, ok := v.(map[string]any); ok && name != "" {
			v = m[name]
		}
	}
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("%s: $ref %q leads nowhere", n.file, ref)
	}
	return schemaNode{n.docs, file, m}, true
}

// properties returns the properties of n and of the schemas it refers to,
// n's own first.
func (n schemaNode) properties(t *testing.T) map[string]schemaNode {
	t.Helper()
	out := map[string]schemaNode{}
	if r, ok := n.ref(t); ok {
		out = r.properties(t)
	}
	props, _ := n.node["properties"].(map[string]any)
	for name, p := range props {
		out[name] = schemaNode{n.docs, n.file, p.(map[string]any)}
	}
	return out
}

// items returns the schema of the items of the array n describes.
func (n schemaNode) items(t *testing.T) (schemaNode, bool) {
	t.Helper()
	if items, ok := n.node["items"].(map[string]any); ok {
		return schemaNode{n.docs, n.file, items}, true
	}
	if r, ok := n.ref(t); ok {
		return r.items(t)
	}
	return schemaNode{}, false
}

// jsonMembers returns the JSON members encoding/json writes for the struct
// type typ, with their types; the members of an embedded struct without a
// name of its own are promoted, as encoding/json does.
func jsonMembers(typ reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for f := range typ.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case name == "-" || !f.IsExported() && !f.Anonymous:
		case f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct:
			maps.Copy(out, jsonMembers(f.Type))
		case name == "":
			out[f.Name] = f.Type
		default:
			out[name] = f.Type
		}
	}
	return out
}

// compareMembers compares the members of the struct type typ with the
// properties of n, and the members of the structs it holds with the
// properties of their schemas. path names typ in messages.
func compareMembers(t *testing.T, path string, typ reflect.Type, n schemaNode) {
	t.Helper()
	members, props := jsonMembers(typ), n.properties(t)
	for name, ft := range members {
		p, ok := props[name]
		if !ok {
			t.Errorf("%s: %s is not a property in %s", path, name, n.file)
			continue
		}
		if ft == reflect.TypeFor[evidence.StepList]() { // it writes itself as a list of steps
			ft = reflect.TypeFor[[]evidence.TraceStepEvidence]()
		}
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct {
			if p, ok = p.items(t); !ok {
				t.Errorf("%s.%s: a list of objects, but no array of items in %s", path, name, n.file)
				continue
			}
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct {
			compareMembers(t, path+"."+name, ft, p)
		}
	}
	for name := range props {
		if _, ok := members[name]; !ok {
			t.Errorf("%s: property %s in %s is no member of %s", path, name, n.file, typ.Name())
		}
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

// TestSchemaKnowsEveryPolicyType: the bundles' schema lists the policy
// types there are, so that a bundle of a new type still validates.
func TestSchemaKnowsEveryPolicyType(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(schemaDir, "evidence.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Defs struct {
			PolicyType struct {
				Enum []runproof.PolicyType `json:"enum"`
			} `json:"policy_type"`
		} `json:"$defs"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if got := doc.Defs.PolicyType.Enum; !slices.Equal(got, runproof.PolicyTypes) {
		t.Errorf("evidence.schema.json's policy_type is %v, the policy types %v", got, runproof.PolicyTypes)
	}
}

package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/go-json-experiment/json/jsontext"
	yaml "go.yaml.in/yaml/v3"
)

// yamlToJSON reads a policy file's YAML (1.2, so on and yes stay words)
// as the JSON the API would take. A file must hold one document; a "---"
// that ends it, or a document of comments alone, does not count. A number
// is taken as written, and refused with its line when YAML would read it
// as another number than it looks (010 is 8 in YAML 1.1, 0x10 is 16,
// 1_000 is 1000): stored, it would be what YAML made of it, silently.
func yamlToJSON(raw []byte) ([]byte, error) {
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	var doc *yaml.Node
	for docs := 0; ; {
		var n yaml.Node
		if err := dec.Decode(&n); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("not valid YAML: %v", strings.TrimPrefix(err.Error(), "yaml: "))
		}
		if len(n.Content) == 0 || n.Content[0].ShortTag() == "!!null" {
			continue
		}
		if docs++; docs > 1 {
			return nil, fmt.Errorf("holds more than one YAML document (the --- at line %d begins a second): put the policies in one list, a \"- name: …\" item each", n.Line)
		}
		doc = n.Content[0]
	}
	if doc == nil {
		return []byte("null"), nil
	}
	var out bytes.Buffer
	w := yamlWriter{enc: jsontext.NewEncoder(&out), budget: maxYAMLNodes}
	if err := w.value(doc); err != nil {
		return nil, err
	}
	return bytes.TrimSpace(out.Bytes()), nil
}

// maxYAMLNodes bounds the values a file may stand for once its aliases
// are expanded: a few aliases of aliases would otherwise make billions.
const maxYAMLNodes = 100_000

// yamlWriter writes YAML nodes as JSON.
type yamlWriter struct {
	enc    *jsontext.Encoder
	budget int
}

func (w *yamlWriter) value(n *yaml.Node) error {
	if w.budget--; w.budget < 0 {
		return fmt.Errorf("line %d: the file stands for more than %d values once its aliases (*name) are expanded: write the policies out", n.Line, maxYAMLNodes)
	}
	if n.Style&yaml.TaggedStyle != 0 { // !!int 5 means 5, but !!str 5 would not
		return fmt.Errorf("line %d: the YAML tag %s is not taken here: write a plain value", n.Line, n.Tag)
	}
	switch n.Kind {
	case yaml.AliasNode:
		return w.value(n.Alias)
	case yaml.SequenceNode:
		if err := w.enc.WriteToken(jsontext.BeginArray); err != nil {
			return err
		}
		for _, c := range n.Content {
			if err := w.value(c); err != nil {
				return err
			}
		}
		return w.enc.WriteToken(jsontext.EndArray)
	case yaml.MappingNode:
		if err := w.enc.WriteToken(jsontext.BeginObject); err != nil {
			return err
		}
		seen := make(map[string]int, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.ShortTag() == "!!merge" {
				return fmt.Errorf("line %d: YAML merge keys (<<) are not taken here: write the members out", k.Line)
			}
			if k.Kind != yaml.ScalarNode {
				return fmt.Errorf("line %d: a key must be a plain word, such as name or threshold", k.Line)
			}
			if line, ok := seen[k.Value]; ok {
				return fmt.Errorf("line %d: %s is given twice in one policy (first at line %d)", k.Line, k.Value, line)
			}
			seen[k.Value] = k.Line
			if err := w.enc.WriteToken(jsontext.String(k.Value)); err != nil {
				return err
			}
			if err := w.value(v); err != nil {
				return err
			}
		}
		return w.enc.WriteToken(jsontext.EndObject)
	case yaml.ScalarNode:
		return w.scalar(n)
	}
	return fmt.Errorf("line %d: unexpected YAML", n.Line)
}

func (w *yamlWriter) scalar(n *yaml.Node) error {
	switch n.ShortTag() {
	case "!!str", "!!timestamp": // a date stays as written
		return w.enc.WriteToken(jsontext.String(n.Value))
	case "!!null":
		return w.enc.WriteToken(jsontext.Null)
	case "!!bool":
		return w.enc.WriteToken(jsontext.Bool(strings.EqualFold(n.Value, "true")))
	case "!!int", "!!float":
		num := plainNumber(n.Value)
		if !jsontext.Value(num).IsValid() {
			return fmt.Errorf("line %d: %s is not a plain number (YAML reads 010 as 8, 0x10 as 16, 1_000 as 1000): write it as 10 or 2.5", n.Line, n.Value)
		}
		return w.enc.WriteValue(jsontext.Value(num))
	}
	return fmt.Errorf("line %d: the YAML tag %s is not taken here: write a plain value", n.Line, n.Tag)
}

// plainNumber writes a YAML number that reads as it looks (+5, .5, 1.)
// as JSON writes it; any other stays as it is, for the JSON check to
// refuse.
func plainNumber(s string) string {
	sign, digits := "", strings.TrimPrefix(s, "+")
	if rest, ok := strings.CutPrefix(digits, "-"); ok {
		sign, digits = "-", rest
	}
	if strings.HasPrefix(digits, ".") && len(digits) > 1 && digits[1] >= '0' && digits[1] <= '9' {
		digits = "0" + digits
	}
	if strings.HasSuffix(digits, ".") {
		digits += "0"
	}
	return sign + digits
}

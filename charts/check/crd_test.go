package check

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"k8s.io/kube-openapi/pkg/validation/spec"
	"k8s.io/kube-openapi/pkg/validation/strfmt"
	"k8s.io/kube-openapi/pkg/validation/validate"
	"sigs.k8s.io/yaml"
)

// crdSchema is one version of a CustomResourceDefinition's OpenAPI v3
// schema, checked as the API server does (types, enums, required fields)
// and, as its structural pruning would silently drop them, with every field
// the schema does not know reported as an error.
type crdSchema struct {
	group, version, kind string
	schema               *spec.Schema
}

// loadCRD reads the schema of version from the CRD YAML at path.
func loadCRD(t *testing.T, path, version string) *crdSchema {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var crd struct {
		Spec struct {
			Group string `json:"group"`
			Names struct {
				Kind string `json:"kind"`
			} `json:"names"`
			Versions []struct {
				Name   string `json:"name"`
				Schema struct {
					OpenAPIV3Schema json.RawMessage `json:"openAPIV3Schema"`
				} `json:"schema"`
			} `json:"versions"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(raw, &crd); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	for _, v := range crd.Spec.Versions {
		if v.Name != version {
			continue
		}
		s := new(spec.Schema)
		if err := json.Unmarshal(v.Schema.OpenAPIV3Schema, s); err != nil {
			t.Fatalf("%s: version %s schema: %v", path, version, err)
		}
		return &crdSchema{group: crd.Spec.Group, version: version, kind: crd.Spec.Names.Kind, schema: s}
	}
	t.Fatalf("%s: no version %s", path, version)
	return nil
}

// check validates the YAML document doc against c.
func (c *crdSchema) check(doc []byte) error {
	var obj map[string]any
	if err := yaml.Unmarshal(doc, &obj); err != nil {
		return err
	}
	if want := c.group + "/" + c.version; obj["apiVersion"] != want || obj["kind"] != c.kind {
		return fmt.Errorf("%v %v, want %s %s", obj["apiVersion"], obj["kind"], want, c.kind)
	}
	if unknown := unknownFields("", obj, c.schema); len(unknown) > 0 {
		return fmt.Errorf("%s: unknown fields %s", c.kind, strings.Join(unknown, ", "))
	}
	res := validate.NewSchemaValidator(c.schema, nil, "", strfmt.Default).Validate(obj)
	if !res.IsValid() {
		msgs := make([]string, len(res.Errors))
		for i, e := range res.Errors {
			msgs[i] = e.Error()
		}
		return fmt.Errorf("%s: %s", c.kind, strings.Join(msgs, "; "))
	}
	return nil
}

// unknownFields returns the paths in v that schema s has no place for.
// metadata is left to the API server's ObjectMeta, as CRD schemas do.
func unknownFields(path string, v any, s *spec.Schema) []string {
	if s == nil || preservesUnknown(s) {
		return nil
	}
	var out []string
	switch v := v.(type) {
	case map[string]any:
		for k, val := range v {
			p := path + "." + k
			if path == "" && k == "metadata" {
				continue
			}
			if ps, ok := s.Properties[k]; ok {
				out = append(out, unknownFields(p, val, &ps)...)
				continue
			}
			if ap := s.AdditionalProperties; ap != nil && (ap.Allows || ap.Schema != nil) {
				out = append(out, unknownFields(p, val, ap.Schema)...)
				continue
			}
			out = append(out, p)
		}
	case []any:
		if s.Items != nil && s.Items.Schema != nil {
			for i, val := range v {
				out = append(out, unknownFields(fmt.Sprintf("%s[%d]", path, i), val, s.Items.Schema)...)
			}
		}
	}
	slices.Sort(out)
	return out
}

func preservesUnknown(s *spec.Schema) bool {
	b, ok := s.Extensions.GetBool("x-kubernetes-preserve-unknown-fields")
	return ok && b
}

// TestCRDCheckFails shows the schema check refuses an unknown field, a
// wrong type and a missing required field.
func TestCRDCheckFails(t *testing.T) {
	app := argocdSchema(t)
	good := `apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: x}
spec:
  project: default
  source: {repoURL: "https://example.com/x.git", path: ., targetRevision: main}
  destination: {server: "https://kubernetes.default.svc", namespace: x}
`
	if err := app.check([]byte(good)); err != nil {
		t.Fatalf("a good Application: %v", err)
	}
	for _, tt := range []struct{ name, from, to, want string }{
		{"unknown field", "project: default", "project: default\n  projekt: default", ".spec.projekt"},
		{"misspelt nested field", "path: .", "paht: .", ".spec.source.paht"},
		{"wrong type", "project: default", "project: [default]", "spec.project"},
		{"missing required", "  destination: {server: \"https://kubernetes.default.svc\", namespace: x}\n", "", "destination"},
		{"other kind", "kind: Application", "kind: AppProject", "want argoproj.io/v1alpha1 Application"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			bad := strings.Replace(good, tt.from, tt.to, 1)
			if bad == good {
				t.Fatalf("no %q to replace", tt.from)
			}
			if err := app.check([]byte(bad)); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one with %q", err, tt.want)
			}
		})
	}
}

package api

import (
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

type openAPIDoc struct {
	OpenAPI    string                          `yaml:"openapi"`
	Paths      map[string]map[string]openAPIOp `yaml:"paths"`
	Components struct {
		Schemas map[string]struct {
			Enum []string `yaml:"enum"`
		} `yaml:"schemas"`
	} `yaml:"components"`
}

type openAPIOp struct {
	OperationID string         `yaml:"operationId"`
	RequestBody any            `yaml:"requestBody"`
	Responses   map[string]any `yaml:"responses"`
}

func readOpenAPI(t *testing.T) openAPIDoc {
	t.Helper()
	data, err := os.ReadFile("../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc openAPIDoc
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("docs/openapi.yaml is not valid YAML: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("docs/openapi.yaml: openapi %q, want 3.x", doc.OpenAPI)
	}
	return doc
}

var ginParam = regexp.MustCompile(`:([A-Za-z_]+)`)

// The OpenAPI document is the contract clients build on: every route the
// router serves is in it, and it names no route the router does not serve.
func TestOpenAPIDocumentsExactlyTheRoutesTheRouterServes(t *testing.T) {
	doc := readOpenAPI(t)
	served := map[string]bool{}
	for _, r := range newEngine(Deps{}).Routes() {
		served[r.Method+" "+ginParam.ReplaceAllString(r.Path, "{$1}")] = true
	}
	documented := map[string]bool{}
	opIDs := map[string]string{}
	for path, ops := range doc.Paths {
		for method, op := range ops {
			if method == "parameters" {
				continue
			}
			key := strings.ToUpper(method) + " " + path
			documented[key] = true
			if op.OperationID == "" {
				t.Errorf("%s: no operationId", key)
			} else if other, dup := opIDs[op.OperationID]; dup {
				t.Errorf("%s and %s share operationId %s", key, other, op.OperationID)
			}
			opIDs[op.OperationID] = key
			if len(op.Responses) == 0 {
				t.Errorf("%s: no responses documented", key)
			}
			// A route that reads a body refuses a malformed one (400) and
			// one over the limit (413): clients must be told both.
			if op.RequestBody != nil {
				for _, code := range []string{"400", "413"} {
					if _, ok := op.Responses[code]; !ok {
						t.Errorf("%s: takes a request body but documents no %s", key, code)
					}
				}
			}
		}
	}
	for _, k := range sortedKeys(served) {
		if !documented[k] {
			t.Errorf("served but not in docs/openapi.yaml: %s", k)
		}
	}
	for _, k := range sortedKeys(documented) {
		if !served[k] {
			t.Errorf("in docs/openapi.yaml but not served: %s", k)
		}
	}
}

// The error codes the document promises are the ones the code answers.
func TestOpenAPIErrorCodesAreTheAPIsCodes(t *testing.T) {
	doc := readOpenAPI(t)
	enum := append([]string(nil), doc.Components.Schemas["ErrorCode"].Enum...)
	codes := append([]string(nil), errorCodes...)
	sort.Strings(enum)
	sort.Strings(codes)
	if !slices.Equal(enum, codes) {
		t.Fatalf("ErrorCode enum in docs/openapi.yaml = %v\nthe code answers with  %v", enum, codes)
	}
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

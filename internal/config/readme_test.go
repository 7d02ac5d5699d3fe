package config

import (
	"os"
	"regexp"
	"testing"
)

// The README's configuration table is the operators' reference: every
// variable the code reads is in it, with the code's default, and it names
// none the code does not read.
func TestREADMEConfigurationTableMatchesTheCode(t *testing.T) {
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `([A-Z][A-Z0-9_]+)` \\| (`([^`]*)`)? *\\|")
	documented := map[string]string{}
	for _, m := range row.FindAllStringSubmatch(string(data), -1) {
		documented[m[1]] = m[3]
	}
	known := map[string]bool{}
	for _, v := range Vars() {
		known[v.Name] = true
		def, ok := documented[v.Name]
		if !ok {
			t.Errorf("README configuration table lacks %s", v.Name)
			continue
		}
		if def != v.Default {
			t.Errorf("README says %s defaults to %q, the code says %q", v.Name, def, v.Default)
		}
	}
	for name := range documented {
		if !known[name] {
			t.Errorf("README documents %s, which the code does not read", name)
		}
	}
}

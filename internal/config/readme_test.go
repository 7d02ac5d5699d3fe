package config

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
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

// The README's layout section is where a new engineer starts reading: it
// names every file of workflows/ and every package under internal/, so a
// file added without a line there fails here.
func TestREADMELayoutNamesEveryWorkflowFileAndInternalPackage(t *testing.T) {
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, layout, ok := strings.Cut(string(data), "\n## Layout\n")
	if !ok {
		t.Fatal("README has no Layout section")
	}
	layout, _, _ = strings.Cut(layout, "\n## ")
	words := map[string]bool{}
	for _, w := range regexp.MustCompile(`[A-Za-z0-9_.]+`).FindAllString(layout, -1) {
		words[w] = true
	}
	files, err := filepath.Glob("../../workflows/*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if name := filepath.Base(f); !strings.HasSuffix(name, "_test.go") && !words[name] {
			t.Errorf("README layout does not name workflows/%s", name)
		}
	}
	dirs, err := os.ReadDir("..")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		if d.IsDir() && !words[d.Name()] {
			t.Errorf("README layout does not name internal/%s", d.Name())
		}
	}
	if len(files) == 0 || len(dirs) == 0 {
		t.Fatalf("found %d workflow files and %d internal packages: the paths are wrong", len(files), len(dirs))
	}
}

package config

// Consistency of docker-compose.yml, Dockerfile and deploy/ with this package's
// configuration contract (Vars, Load). No Docker engine is needed: the files are
// parsed and checked. Each check returns the problems it finds; TestComposeFile
// runs them on the real files and TestComposeChecksCatchMistakes proves each one
// fails on a realistic mistake.
//
// The demo (`docker compose --env-file deploy/demo.env --profile demo up`) is
// checked the same way: deploy/demo.env against config.Vars() and the file, the
// public demo keys of deploy/demo/keys against the values in deploy/demo.env
// (loaded with paysim and wxpay), and the paysim service against the api and
// worker it plays WeChat for.

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"maps"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"ordersaga/internal/paysim"
	"ordersaga/internal/wxpay"
)

const (
	composeRepoRoot   = "../.."              // the repository, from this package
	composeFilePath   = "docker-compose.yml" // relative to composeRepoRoot
	composeEnvExample = "deploy/compose.env.example"
	composeBinary     = "/ordersaga" // the binary in the image
	composeSecretsDir = "secrets"    // user-provided key files, never in the repository
	composeTemporalFE = "7233"       // Temporal frontend gRPC port (server default)
	composeHealthURL  = "http://127.0.0.1:8080/healthz"

	composeDemoEnv     = "deploy/demo.env" // the demo's --env-file
	composeDemoProfile = "demo"
	composeDemoLabel   = "PUBLIC DEMO KEY"      // heads every PEM file of the demo keys
	composeNotifyPath  = "/v1/wechatpay/notify" // the API's WeChat Pay notify route
	composeEventsPath  = "/v1/wechat/events"    // the API's message push route (shipping events)
	composeOpenAPI     = "docs/openapi.yaml"    // the API contract, kept equal to the router
)

// composeModePaysim is the simulator's subcommand (not a config.Mode: paysim
// reads flags, not config.Load).
const composeModePaysim Mode = "paysim"

// composeDemoServices exist only in the demo profile.
var composeDemoServices = []string{"paysim"}

// composeDemoKeyFiles make a paysim key directory (paysim.EnsureDevKeys).
var composeDemoKeyFiles = []string{
	paysim.FileMchPrivateKey, paysim.FileMchPublicKey, paysim.FilePlatformPrivateKey, paysim.FilePublicKey, paysim.FileKeysMeta,
}

// composeCLIVars are read from an --env-file by the Compose CLI itself.
var composeCLIVars = []string{"COMPOSE_PROJECT_NAME", "COMPOSE_PROFILES"}

// composeSubcommands are the subcommands of the ordersaga binary (main.go).
var composeSubcommands = []string{"dev", "api", "worker", "migrate", "paysim", "healthcheck"}

// composeRequiredServices must exist in docker-compose.yml.
var composeRequiredServices = []string{
	"postgres", "temporal-schema", "temporal", "temporal-setup", "temporal-ui", "migrate", "api", "worker",
}

// composeExpectedDeps is the start order the stack relies on.
var composeExpectedDeps = []struct{ from, to, condition string }{
	{"migrate", "postgres", "service_healthy"},
	{"temporal-schema", "postgres", "service_healthy"},
	{"temporal", "postgres", "service_healthy"},
	{"temporal", "temporal-schema", "service_completed_successfully"},
	{"temporal-setup", "temporal", "service_healthy"},
	{"api", "migrate", "service_completed_successfully"},
	{"api", "temporal-setup", "service_completed_successfully"},
	{"worker", "migrate", "service_completed_successfully"},
	{"worker", "temporal-setup", "service_completed_successfully"},
}

// composeSearchAttributes are the custom search attributes the order workflows
// upsert (DESIGN.md); temporal-setup must register them with these types.
var composeSearchAttributes = map[string]string{
	"OrderNo": "Keyword", "OrderStatus": "Keyword", "OrderUserID": "Keyword", "OrderAmountFen": "Int", "OrderRefundedFen": "Int",
}

// ---------------------------------------------------------------------------
// The compose file, in small structs of our own.

type composeFile struct {
	Name     string                     `yaml:"name"`
	Services map[string]*composeService `yaml:"services"`
	Volumes  map[string]any             `yaml:"volumes"`
	Secrets  map[string]composeSecret   `yaml:"secrets"`
}

type composeSecret struct {
	File        string `yaml:"file"`
	Environment string `yaml:"environment"`
	External    bool   `yaml:"external"`
}

type composeService struct {
	Image           string              `yaml:"image"`
	Build           *composeBuild       `yaml:"build"`
	Command         composeStrings      `yaml:"command"`
	Entrypoint      composeStrings      `yaml:"entrypoint"`
	Environment     composeEnv          `yaml:"environment"`
	EnvFile         composeStrings      `yaml:"env_file"`
	DependsOn       composeDependsOn    `yaml:"depends_on"`
	Ports           []composePort       `yaml:"ports"`
	Volumes         []composeMount      `yaml:"volumes"`
	Secrets         []composeSecretRef  `yaml:"secrets"`
	Healthcheck     *composeHealthcheck `yaml:"healthcheck"`
	ContainerName   string              `yaml:"container_name"`
	Restart         string              `yaml:"restart"`
	StopGracePeriod string              `yaml:"stop_grace_period"`
	Profiles        []string            `yaml:"profiles"`
	Tmpfs           composeStrings      `yaml:"tmpfs"`
	User            string              `yaml:"user"`
}

type composeBuild struct {
	Context    string `yaml:"context"`
	Dockerfile string `yaml:"dockerfile"`
}

func (b *composeBuild) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		b.Context = n.Value
		return nil
	}
	type plain composeBuild
	return n.Decode((*plain)(b))
}

// composeStrings is a command-like field: a list, or a string split on spaces.
type composeStrings []string

func (s *composeStrings) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*s = strings.Fields(n.Value)
		return nil
	}
	var list []string
	err := n.Decode(&list)
	*s = list
	return err
}

// composeEnv is an environment section, list ("K=V") or map form. A variable
// without a value is passed through from the shell: kept as ${K}.
type composeEnv map[string]string

func (e *composeEnv) UnmarshalYAML(n *yaml.Node) error {
	*e = composeEnv{}
	if n.Kind == yaml.SequenceNode {
		var list []string
		if err := n.Decode(&list); err != nil {
			return err
		}
		for _, item := range list {
			k, v, ok := strings.Cut(item, "=")
			if !ok {
				v = "${" + k + "}"
			}
			(*e)[k] = v
		}
		return nil
	}
	var m map[string]any // decoding into a map applies YAML merge keys (<<)
	if err := n.Decode(&m); err != nil {
		return err
	}
	for k, v := range m {
		if v == nil {
			(*e)[k] = "${" + k + "}"
		} else {
			(*e)[k] = fmt.Sprint(v)
		}
	}
	return nil
}

// composeDependsOn maps each dependency to its condition.
type composeDependsOn map[string]string

func (d *composeDependsOn) UnmarshalYAML(n *yaml.Node) error {
	*d = composeDependsOn{}
	if n.Kind == yaml.SequenceNode {
		var list []string
		if err := n.Decode(&list); err != nil {
			return err
		}
		for _, s := range list {
			(*d)[s] = "service_started"
		}
		return nil
	}
	var m map[string]struct {
		Condition string `yaml:"condition"`
	}
	if err := n.Decode(&m); err != nil {
		return err
	}
	for k, v := range m {
		if v.Condition == "" {
			v.Condition = "service_started"
		}
		(*d)[k] = v.Condition
	}
	return nil
}

// composePort keeps the short syntax raw: it may hold ${...} with colons, so it
// is split only after interpolation.
type composePort struct {
	Raw                       string
	Target, Published, HostIP string // long syntax
}

func (p *composePort) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		p.Raw = n.Value
		return nil
	}
	var long struct {
		Target    string `yaml:"target"`
		Published string `yaml:"published"`
		HostIP    string `yaml:"host_ip"`
	}
	if err := n.Decode(&long); err != nil {
		return err
	}
	p.Target, p.Published, p.HostIP = long.Target, long.Published, long.HostIP
	return nil
}

// composeMount is a volumes entry; the short syntax is split after interpolation.
type composeMount struct {
	Raw                  string
	Type, Source, Target string // long syntax
}

func (m *composeMount) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		m.Raw = n.Value
		return nil
	}
	var long struct {
		Type   string `yaml:"type"`
		Source string `yaml:"source"`
		Target string `yaml:"target"`
	}
	if err := n.Decode(&long); err != nil {
		return err
	}
	m.Type, m.Source, m.Target = long.Type, long.Source, long.Target
	return nil
}

type composeSecretRef struct{ Source, Target string }

func (s *composeSecretRef) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		s.Source = n.Value
		return nil
	}
	var long struct {
		Source string `yaml:"source"`
		Target string `yaml:"target"`
	}
	err := n.Decode(&long)
	s.Source, s.Target = long.Source, long.Target
	return err
}

// path is where the secret appears in the container.
func (s composeSecretRef) path() string {
	switch {
	case s.Target == "":
		return "/run/secrets/" + s.Source
	case strings.HasPrefix(s.Target, "/"):
		return s.Target
	default:
		return "/run/secrets/" + s.Target
	}
}

type composeHealthcheck struct {
	Test    composeHealthTest `yaml:"test"`
	Disable bool              `yaml:"disable"`
}

// composeHealthTest is ["CMD", ...], ["CMD-SHELL", "..."] or a shell string.
type composeHealthTest []string

func (t *composeHealthTest) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*t = composeHealthTest{"CMD-SHELL", n.Value}
		return nil
	}
	var list []string
	err := n.Decode(&list)
	*t = list
	return err
}

func (h *composeHealthcheck) active() bool {
	return h != nil && !h.Disable && len(h.Test) > 0 && h.Test[0] != "NONE"
}

// ---------------------------------------------------------------------------
// Interpolation, as Compose does it: $$, $VAR, ${VAR}, ${VAR:-default},
// ${VAR-default}, ${VAR:?message}, ${VAR?message}, ${VAR:+alt}, ${VAR+alt}.

// composeVars are the variables Compose would read from .env / the shell.
type composeVars struct {
	set map[string]string
	// dummyRequired replaces an unset ${VAR:?msg} by a dummy value that passes
	// config validation, instead of failing; except the variable named omit.
	dummyRequired bool
	omit          string
}

type composeMissingError struct{ name, message string }

func (e *composeMissingError) Error() string {
	return fmt.Sprintf("required variable %s is missing a value: %s", e.name, e.message)
}

var composeVarName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*`)

func (v composeVars) interpolate(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); {
		if s[i] != '$' {
			b.WriteByte(s[i])
			i++
			continue
		}
		rest := s[i+1:]
		switch {
		case strings.HasPrefix(rest, "$"):
			b.WriteByte('$')
			i += 2
		case strings.HasPrefix(rest, "{"):
			depth, end := 0, -1
			for j := i + 1; j < len(s) && end < 0; j++ {
				switch s[j] {
				case '{':
					depth++
				case '}':
					if depth--; depth == 0 {
						end = j
					}
				}
			}
			if end < 0 {
				return "", fmt.Errorf("unterminated ${ in %q", s)
			}
			val, err := v.expand(s[i+2 : end])
			if err != nil {
				return "", err
			}
			b.WriteString(val)
			i = end + 1
		default:
			name := composeVarName.FindString(rest)
			if name == "" {
				b.WriteByte('$')
				i++
				continue
			}
			val, _ := v.lookup(name)
			b.WriteString(val)
			i += 1 + len(name)
		}
	}
	return b.String(), nil
}

func (v composeVars) lookup(name string) (string, bool) {
	if name == v.omit {
		return "", false
	}
	val, ok := v.set[name]
	return val, ok
}

func (v composeVars) expand(expr string) (string, error) {
	name := composeVarName.FindString(expr)
	if name == "" {
		return "", fmt.Errorf("invalid interpolation ${%s}", expr)
	}
	op := expr[len(name):]
	val, ok := v.lookup(name)
	present := ok && val != ""
	for _, o := range []string{":-", "-", ":?", "?", ":+", "+"} {
		if !strings.HasPrefix(op, o) {
			continue
		}
		arg := op[len(o):]
		isSet := ok
		if strings.HasPrefix(o, ":") {
			isSet = present
		}
		switch strings.TrimPrefix(o, ":") {
		case "-":
			if isSet {
				return val, nil
			}
			return v.interpolate(arg)
		case "?":
			if isSet {
				return val, nil
			}
			if v.dummyRequired && name != v.omit {
				return composeDummy(name), nil
			}
			return "", &composeMissingError{name, arg}
		case "+":
			if isSet {
				return v.interpolate(arg)
			}
			return "", nil
		}
	}
	if op != "" {
		return "", fmt.Errorf("invalid interpolation ${%s}", expr)
	}
	return val, nil
}

// composeDummy is a value for a required variable that config.Load accepts.
func composeDummy(name string) string {
	if strings.HasSuffix(name, "_URL") {
		return "https://shop.example.com/v1/wechatpay/notify"
	}
	return strings.Repeat("x", 32) // APIv3 key: exactly 32; JWT secret: >= 32
}

var composeRef = regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)`)

// composeRefs lists the variables a string interpolates.
func composeRefs(s string) []string {
	var names []string
	for _, m := range composeRef.FindAllStringSubmatch(strings.ReplaceAll(s, "$$", ""), -1) {
		names = append(names, m[1])
	}
	return names
}

// ---------------------------------------------------------------------------
// The project under test: the compose file and the files it refers to.

type composeProject struct {
	root    string
	file    composeFile
	scalars []string           // every scalar value in the compose file (no comments)
	overlay map[string]*string // path -> replaced content (nil = deleted), for mutation tests
	tmp     string             // for copies of repository files that code reads by path
	tmpN    int
}

func loadComposeProject(t *testing.T) *composeProject {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(composeRepoRoot, composeFilePath))
	if err != nil {
		t.Fatalf("read %s: %v", composeFilePath, err)
	}
	p := &composeProject{root: composeRepoRoot, overlay: map[string]*string{}, tmp: t.TempDir()}
	if err := yaml.Unmarshal(data, &p.file); err != nil {
		t.Fatalf("parse %s: %v", composeFilePath, err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Kind == yaml.ScalarNode {
			p.scalars = append(p.scalars, n.Value)
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(&doc)
	if len(p.file.Services) == 0 {
		t.Fatalf("%s defines no services", composeFilePath)
	}
	return p
}

// clean turns a path of the compose file (relative to its directory) into a
// path relative to the repository, or "" when it points outside.
func (p *composeProject) clean(rel string) string {
	c := path.Clean(strings.TrimPrefix(rel, "./"))
	if c == ".." || strings.HasPrefix(c, "../") || path.IsAbs(c) {
		return ""
	}
	return c
}

func (p *composeProject) readFile(rel string) (string, error) {
	if c, ok := p.overlay[rel]; ok {
		if c == nil {
			return "", os.ErrNotExist
		}
		return *c, nil
	}
	b, err := os.ReadFile(filepath.Join(p.root, filepath.FromSlash(rel)))
	return string(b), err
}

func (p *composeProject) exists(rel string) bool {
	if c, ok := p.overlay[rel]; ok {
		return c != nil
	}
	_, err := os.Stat(filepath.Join(p.root, filepath.FromSlash(rel)))
	return err == nil
}

// listDir lists the regular files directly in a directory of the repository.
func (p *composeProject) listDir(rel string) []string {
	var files []string
	entries, _ := os.ReadDir(filepath.Join(p.root, filepath.FromSlash(rel)))
	for _, e := range entries {
		if !e.IsDir() {
			files = append(files, path.Join(rel, e.Name()))
		}
	}
	for f, c := range p.overlay {
		if path.Dir(f) == rel && c != nil && !slices.Contains(files, f) {
			files = append(files, f)
		}
	}
	sort.Strings(files)
	return files
}

// copyDir makes a new empty directory for copies of repository files.
func (p *composeProject) copyDir() (string, error) {
	p.tmpN++
	dir := filepath.Join(p.tmp, fmt.Sprintf("copy%d", p.tmpN))
	return dir, os.MkdirAll(dir, 0o700)
}

// copyTo writes a repository file (as the overlay has it) into dir, for code
// that reads files by path (paysim.EnsureDevKeys, wxpay, config.Load).
func (p *composeProject) copyTo(dir, rel string) (string, error) {
	text, err := p.readFile(rel)
	if err != nil {
		return "", err
	}
	f := filepath.Join(dir, path.Base(rel))
	return f, os.WriteFile(f, []byte(text), 0o600)
}

func (p *composeProject) serviceNames() []string {
	names := make([]string, 0, len(p.file.Services))
	for n := range p.file.Services {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// appServices run the ordersaga image: built from the Dockerfile, or using the
// image name a built service tags.
func (p *composeProject) appServices() []string {
	built := map[string]bool{}
	for _, s := range p.file.Services {
		if s.Build != nil && s.Image != "" {
			built[s.Image] = true
		}
	}
	var names []string
	for _, n := range p.serviceNames() {
		s := p.file.Services[n]
		if s.Build != nil || built[s.Image] {
			names = append(names, n)
		}
	}
	return names
}

// composeModeOf reads the mode from the service's command.
func composeModeOf(s *composeService) Mode {
	if len(s.Command) == 0 {
		return ""
	}
	return Mode(s.Command[0])
}

// env resolves a service's environment. Variables of .env are taken from vars.
func (p *composeProject) env(s *composeService, vars composeVars) (map[string]string, error) {
	out := map[string]string{}
	var errs []error
	for k, raw := range s.Environment {
		v, err := vars.interpolate(raw)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", k, err))
		}
		out[k] = v
	}
	return out, errors.Join(errs...)
}

// checkEnv is the environment with dummy values for the required variables,
// as if .env were complete and set nothing optional.
func (p *composeProject) checkEnv(s *composeService) map[string]string {
	env, _ := p.env(s, composeVars{dummyRequired: true})
	return env
}

// composeVolume is a volumes entry after interpolation.
type composeVolume struct {
	bind           bool
	source, target string
}

func (p *composeProject) mounts(s *composeService) (mounts []composeVolume) {
	vars := composeVars{dummyRequired: true}
	for _, m := range s.Volumes {
		src, dst, typ := m.Source, m.Target, m.Type
		if m.Raw != "" {
			raw, _ := vars.interpolate(m.Raw)
			parts := strings.Split(raw, ":")
			if len(parts) == 1 {
				dst = parts[0]
			} else {
				src, dst = parts[0], parts[1]
			}
			typ = "volume"
			if strings.HasPrefix(src, ".") || strings.HasPrefix(src, "/") || strings.HasPrefix(src, "~") {
				typ = "bind"
			}
		}
		mounts = append(mounts, composeVolume{typ == "bind", src, dst})
	}
	return mounts
}

// hostFileFor finds the repository file behind a path in a container: a bind
// mount of that file, or of a directory that contains it.
func (p *composeProject) hostFileFor(s *composeService, inContainer string) (string, bool) {
	for _, m := range p.mounts(s) {
		if !m.bind {
			continue
		}
		if inContainer == m.target {
			return p.clean(m.source), true
		}
		if rel, ok := strings.CutPrefix(inContainer, strings.TrimSuffix(m.target, "/")+"/"); ok {
			return p.clean(path.Join(m.source, rel)), true
		}
	}
	return "", false
}

// initDatabase reads the postgres init scripts mounted into
// /docker-entrypoint-initdb.d and returns the databases and roles they create.
func (p *composeProject) initDatabase() (databases, roles []string, problems []string) {
	pg := p.file.Services["postgres"]
	if pg == nil {
		return nil, nil, []string{"no postgres service"}
	}
	var files []string
	for _, m := range p.mounts(pg) {
		if !m.bind || !strings.HasPrefix(m.target, "/docker-entrypoint-initdb.d") {
			continue
		}
		src := p.clean(m.source)
		if m.target == "/docker-entrypoint-initdb.d" || m.target == "/docker-entrypoint-initdb.d/" {
			files = append(files, p.listDir(src)...)
		} else {
			files = append(files, src)
		}
	}
	if len(files) == 0 {
		return nil, nil, []string{"postgres: no init script is mounted into /docker-entrypoint-initdb.d"}
	}
	createDB := regexp.MustCompile(`(?i)\bCREATE\s+DATABASE\s+"?([A-Za-z_][A-Za-z0-9_]*)"?`)
	createRole := regexp.MustCompile(`(?i)\bCREATE\s+(?:ROLE|USER)\s+"?([A-Za-z_][A-Za-z0-9_]*)"?`)
	for _, f := range files {
		text, err := p.readFile(f)
		if err != nil {
			problems = append(problems, fmt.Sprintf("postgres init script %s: %v", f, err))
			continue
		}
		for _, m := range createDB.FindAllStringSubmatch(text, -1) {
			databases = append(databases, m[1])
		}
		for _, m := range createRole.FindAllStringSubmatch(text, -1) {
			roles = append(roles, m[1])
		}
	}
	return databases, roles, problems
}

// dockerfile finds the Dockerfile the ordersaga services are built from.
func (p *composeProject) dockerfile() (string, []composeDockerStage, error) {
	for _, n := range p.appServices() {
		b := p.file.Services[n].Build
		if b == nil {
			continue
		}
		name := b.Dockerfile
		if name == "" {
			name = "Dockerfile"
		}
		rel := p.clean(path.Join(b.Context, name))
		text, err := p.readFile(rel)
		if err != nil {
			return rel, nil, err
		}
		return rel, composeParseDockerfile(text), nil
	}
	return "", nil, errors.New("no ordersaga service has a build section")
}

// ---------------------------------------------------------------------------
// A small Dockerfile reader: stages and their instructions.

type composeDockerStage struct {
	image, name string
	instrs      [][2]string // {INSTRUCTION, arguments}
}

func composeParseDockerfile(text string) []composeDockerStage {
	var stages []composeDockerStage
	var logical []string
	var cur strings.Builder
	for _, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && cur.Len() == 0) {
			continue
		}
		if strings.HasSuffix(trimmed, "\\") {
			cur.WriteString(strings.TrimSuffix(trimmed, "\\") + " ")
			continue
		}
		cur.WriteString(trimmed)
		logical = append(logical, cur.String())
		cur.Reset()
	}
	for _, l := range logical {
		instr, args, _ := strings.Cut(l, " ")
		instr, args = strings.ToUpper(instr), strings.TrimSpace(args)
		if instr == "FROM" {
			st := composeDockerStage{}
			fields := strings.Fields(args)
			for i := 0; i < len(fields); i++ {
				switch {
				case strings.HasPrefix(fields[i], "--"):
				case strings.EqualFold(fields[i], "AS") && i+1 < len(fields):
					st.name = fields[i+1]
					i++
				case st.image == "":
					st.image = fields[i]
				}
			}
			stages = append(stages, st)
			continue
		}
		if len(stages) > 0 {
			stages[len(stages)-1].instrs = append(stages[len(stages)-1].instrs, [2]string{instr, args})
		}
	}
	return stages
}

// composeImagePinned says why an image reference is not pinned ("" if it is).
func composeImagePinned(ref string) string {
	if ref == "" {
		return "no image"
	}
	if _, digest, ok := strings.Cut(ref, "@"); ok {
		if regexp.MustCompile(`^sha256:[0-9a-f]{64}$`).MatchString(digest) {
			return ""
		}
		return "malformed digest"
	}
	colon, slash := strings.LastIndex(ref, ":"), strings.LastIndex(ref, "/")
	if colon < slash || colon < 0 {
		return "no tag (means latest)"
	}
	if tag := ref[colon+1:]; tag == "" || tag == "latest" {
		return "tag latest"
	}
	return ""
}

// ---------------------------------------------------------------------------
// The checks.

type composeCheck struct {
	name string
	run  func(p *composeProject) []string
}

var composeChecks = []composeCheck{
	{"services", checkComposeServices},
	{"depends_on", checkComposeDependsOn},
	{"env-names", checkComposeEnvNames},
	{"env-required", checkComposeEnvRequired},
	{"commands", checkComposeCommands},
	{"database-url", checkComposeDatabaseURL},
	{"temporal-address", checkComposeTemporalAddress},
	{"temporal-database", checkComposeTemporalDatabase},
	{"temporal-namespace", checkComposeNamespaceAndSearchAttributes},
	{"ports", checkComposePorts},
	{"images", checkComposeImages},
	{"temporal-version", checkComposeTemporalVersion},
	{"docker-context", checkComposeDockerContext},
	{"dockerfile", checkComposeDockerfile},
	{"healthchecks", checkComposeHealthchecks},
	{"files", checkComposeFiles},
	{"secrets", checkComposeSecrets},
	{"env-example", checkComposeEnvExample},
	{"stop-grace", checkComposeStopGrace},
	{"demo-env", checkComposeDemoEnv},
	{"demo-keys", checkComposeDemoKeys},
	{"demo-paysim", checkComposeDemoPaysim},
}

func checkComposeServices(p *composeProject) (problems []string) {
	for _, n := range slices.Concat(composeRequiredServices, composeDemoServices) {
		if p.file.Services[n] == nil {
			problems = append(problems, fmt.Sprintf("service %s is missing", n))
		}
	}
	if len(p.appServices()) == 0 {
		problems = append(problems, "no service is built from the Dockerfile")
	}
	return problems
}

func checkComposeDependsOn(p *composeProject) (problems []string) {
	valid := []string{"service_started", "service_healthy", "service_completed_successfully"}
	for _, n := range p.serviceNames() {
		deps := p.file.Services[n].DependsOn
		for _, to := range slices.Sorted(maps.Keys(deps)) {
			cond := deps[to]
			target := p.file.Services[to]
			switch {
			case target == nil:
				problems = append(problems, fmt.Sprintf("%s depends on %s, which does not exist", n, to))
				continue
			case to == n:
				problems = append(problems, fmt.Sprintf("%s depends on itself", n))
			case !slices.Contains(valid, cond):
				problems = append(problems, fmt.Sprintf("%s depends on %s with unknown condition %q", n, to, cond))
			case cond == "service_healthy" && !target.Healthcheck.active():
				problems = append(problems, fmt.Sprintf("%s waits for %s to be healthy, but %s has no health check", n, to, to))
			case cond == "service_completed_successfully" && (target.Restart == "always" || target.Restart == "unless-stopped"):
				problems = append(problems, fmt.Sprintf("%s waits for %s to complete, but %s restarts %s", n, to, to, target.Restart))
			}
		}
	}
	// No cycles.
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(n string, trail []string)
	visit = func(n string, trail []string) {
		if state[n] == 1 {
			problems = append(problems, "depends_on cycle: "+strings.Join(append(trail, n), " -> "))
			return
		}
		if state[n] == 2 || p.file.Services[n] == nil {
			return
		}
		state[n] = 1
		for to := range p.file.Services[n].DependsOn {
			visit(to, append(trail, n))
		}
		state[n] = 2
	}
	for _, n := range p.serviceNames() {
		visit(n, nil)
	}
	for _, d := range composeExpectedDeps {
		s := p.file.Services[d.from]
		if s == nil {
			continue // reported by "services"
		}
		if got, ok := s.DependsOn[d.to]; !ok || got != d.condition {
			problems = append(problems, fmt.Sprintf("%s must depend on %s with condition %s (got %q)", d.from, d.to, d.condition, got))
		}
	}
	return problems
}

func checkComposeEnvNames(p *composeProject) (problems []string) {
	known := map[string]bool{}
	for _, v := range Vars() {
		known[v.Name] = true
	}
	for _, n := range p.appServices() {
		s := p.file.Services[n]
		if len(s.EnvFile) > 0 {
			problems = append(problems, fmt.Sprintf("%s: uses env_file %v; list its variables under environment so they can be checked", n, s.EnvFile))
		}
		for _, k := range slices.Sorted(maps.Keys(s.Environment)) {
			if !known[k] {
				problems = append(problems, fmt.Sprintf("%s: %s is not a variable of config.Vars()", n, k))
			}
		}
	}
	return problems
}

// checkComposeEnvRequired: every variable required in the service's mode is
// provided, either as a fixed value or as ${VAR:?message}, so that a user who
// forgot it gets a message instead of a container that fails to start.
func checkComposeEnvRequired(p *composeProject) (problems []string) {
	for _, n := range p.appServices() {
		s := p.file.Services[n]
		mode := composeModeOf(s)
		for _, v := range Vars() {
			if !slices.Contains(v.Required, mode) {
				continue
			}
			raw, ok := s.Environment[v.Name]
			if !ok {
				problems = append(problems, fmt.Sprintf("%s (%s mode): %s is required but not provided", n, mode, v.Name))
				continue
			}
			got, err := composeVars{}.interpolate(raw)
			var missing *composeMissingError
			switch {
			case errors.As(err, &missing):
				if strings.TrimSpace(missing.message) == "" {
					problems = append(problems, fmt.Sprintf("%s: %s: ${%s:?} has no message for the user", n, v.Name, missing.name))
				}
			case err != nil:
				problems = append(problems, fmt.Sprintf("%s: %s: %v", n, v.Name, err))
			case strings.TrimSpace(got) == "":
				problems = append(problems, fmt.Sprintf("%s: %s is required in %s mode but %q is empty when .env does not set it; use ${VAR:?message}", n, v.Name, mode, raw))
			}
		}
	}
	return problems
}

func checkComposeCommands(p *composeProject) (problems []string) {
	for _, n := range p.appServices() {
		s := p.file.Services[n]
		if len(s.Entrypoint) > 0 && !slices.Equal(s.Entrypoint, []string{composeBinary}) {
			problems = append(problems, fmt.Sprintf("%s: entrypoint %v replaces the binary", n, s.Entrypoint))
		}
		if len(s.Command) == 0 {
			problems = append(problems, fmt.Sprintf("%s: no command; give the subcommand explicitly", n))
			continue
		}
		if !slices.Contains(composeSubcommands, s.Command[0]) {
			problems = append(problems, fmt.Sprintf("%s: command %q is not a subcommand of ordersaga %v", n, s.Command[0], composeSubcommands))
		}
		if slices.Contains([]string{"api", "worker", "migrate", "paysim"}, n) && s.Command[0] != n {
			problems = append(problems, fmt.Sprintf("service %s runs %q, not %q", n, s.Command[0], n))
		}
		if h := s.Healthcheck; h.active() && len(h.Test) > 1 && h.Test[0] == "CMD" && h.Test[1] == composeBinary {
			if len(h.Test) < 3 || h.Test[2] != "healthcheck" {
				problems = append(problems, fmt.Sprintf("%s: health check runs %v, not `ordersaga healthcheck`", n, h.Test[1:]))
			}
		}
	}
	return problems
}

func checkComposeDatabaseURL(p *composeProject) (problems []string) {
	dbs, roles, problems := p.initDatabase()
	pg := p.file.Services["postgres"]
	for _, n := range p.appServices() {
		raw, ok := p.checkEnv(p.file.Services[n])["DATABASE_URL"]
		if !ok {
			continue // env-required reports it where it is required
		}
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			problems = append(problems, fmt.Sprintf("%s: DATABASE_URL %q is not a postgres:// URL", n, raw))
			continue
		}
		if host := u.Hostname(); host != "postgres" || pg == nil {
			problems = append(problems, fmt.Sprintf("%s: DATABASE_URL host %q is not the postgres service", n, host))
		}
		if port := u.Port(); port != "" && port != "5432" {
			problems = append(problems, fmt.Sprintf("%s: DATABASE_URL port %s; postgres listens on 5432", n, port))
		}
		if db := strings.TrimPrefix(u.Path, "/"); !slices.Contains(dbs, db) {
			problems = append(problems, fmt.Sprintf("%s: DATABASE_URL database %q is not created by the init script (it creates %v)", n, db, dbs))
		}
		if user := u.User.Username(); !slices.Contains(roles, user) && (pg == nil || user != pg.Environment["POSTGRES_USER"]) {
			problems = append(problems, fmt.Sprintf("%s: DATABASE_URL user %q is not created by the init script (it creates %v)", n, user, roles))
		}
	}
	return problems
}

// temporalFrontend is the host:port the temporal service serves.
func (p *composeProject) temporalFrontend() (host, port string, ok bool) {
	s := p.file.Services["temporal"]
	if s == nil || !strings.HasPrefix(s.Image, "temporalio/server:") {
		return "", "", false
	}
	port = composeTemporalFE
	if v := p.checkEnv(s)["FRONTEND_GRPC_PORT"]; v != "" {
		port = v
	}
	return "temporal", port, true
}

func checkComposeTemporalAddress(p *composeProject) (problems []string) {
	host, port, ok := p.temporalFrontend()
	if !ok {
		return []string{"no temporal service running temporalio/server"}
	}
	want := net.JoinHostPort(host, port)
	// Every service that is given TEMPORAL_ADDRESS (api and worker must be:
	// see env-required) talks to the temporal service.
	for _, n := range p.serviceNames() {
		addr, set := p.checkEnv(p.file.Services[n])["TEMPORAL_ADDRESS"]
		if set && addr != want {
			problems = append(problems, fmt.Sprintf("%s: TEMPORAL_ADDRESS %q, but the temporal service serves %s", n, addr, want))
		}
	}
	return problems
}

func checkComposeTemporalDatabase(p *composeProject) (problems []string) {
	dbs, roles, problems := p.initDatabase()
	t := p.file.Services["temporal"]
	if t == nil {
		return append(problems, "no temporal service")
	}
	env := p.checkEnv(t)
	def := func(k, d string) string {
		if env[k] == "" {
			return d
		}
		return env[k]
	}
	if db := env["DB"]; db != "postgres12" && db != "postgres12_pgx" {
		problems = append(problems, fmt.Sprintf("temporal: DB=%q, want postgres12", db))
	}
	if seeds := env["POSTGRES_SEEDS"]; p.file.Services[seeds] == nil || seeds != "postgres" {
		problems = append(problems, fmt.Sprintf("temporal: POSTGRES_SEEDS=%q is not the postgres service", seeds))
	}
	if port := def("DB_PORT", "5432"); port != "5432" {
		problems = append(problems, fmt.Sprintf("temporal: DB_PORT=%s; postgres listens on 5432", port))
	}
	if user := env["POSTGRES_USER"]; !slices.Contains(roles, user) {
		problems = append(problems, fmt.Sprintf("temporal: POSTGRES_USER %q is not created by the init script (it creates %v)", user, roles))
	}
	names := map[string]string{"DBNAME": def("DBNAME", "temporal"), "VISIBILITY_DBNAME": def("VISIBILITY_DBNAME", "temporal_visibility")}
	for _, k := range []string{"DBNAME", "VISIBILITY_DBNAME"} {
		if !slices.Contains(dbs, names[k]) {
			problems = append(problems, fmt.Sprintf("temporal: %s %q is not created by the init script (it creates %v)", k, names[k], dbs))
		}
	}
	if env["DYNAMIC_CONFIG_FILE_PATH"] == "" {
		problems = append(problems, "temporal: DYNAMIC_CONFIG_FILE_PATH is not set")
	}
	// The schema job must migrate the same databases on the same server.
	for _, dep := range slices.Sorted(maps.Keys(t.DependsOn)) {
		job := p.file.Services[dep]
		if job == nil || t.DependsOn[dep] != "service_completed_successfully" {
			continue
		}
		jenv := p.checkEnv(job)
		want := map[string]string{
			"SQL_PLUGIN": env["DB"], "SQL_HOST": env["POSTGRES_SEEDS"], "SQL_USER": env["POSTGRES_USER"],
			"DBNAME": names["DBNAME"], "VISIBILITY_DBNAME": names["VISIBILITY_DBNAME"],
		}
		for _, k := range slices.Sorted(maps.Keys(want)) {
			if jenv[k] != want[k] {
				problems = append(problems, fmt.Sprintf("%s: %s=%q, but the temporal server uses %q", dep, k, jenv[k], want[k]))
			}
		}
	}
	return problems
}

func checkComposeNamespaceAndSearchAttributes(p *composeProject) (problems []string) {
	setup := p.file.Services["temporal-setup"]
	if setup == nil {
		return []string{"no temporal-setup service"}
	}
	// The namespace the setup job creates is the one api and worker use, with
	// and without TEMPORAL_NAMESPACE in .env.
	for _, set := range []map[string]string{{}, {"TEMPORAL_NAMESPACE": "shop"}} {
		vars := composeVars{set: set, dummyRequired: true}
		senv, _ := p.env(setup, vars)
		created := senv["TEMPORAL_NAMESPACE"]
		if created == "" {
			created = "default"
		}
		for _, n := range p.appServices() {
			s := p.file.Services[n]
			if composeModeOf(s) != ModeAPI && composeModeOf(s) != ModeWorker {
				continue
			}
			env, _ := p.env(s, vars)
			cfg, _ := Load(composeModeOf(s), func(k string) string { return env[k] })
			if cfg.TemporalNamespace != created {
				problems = append(problems, fmt.Sprintf("%s uses namespace %q but temporal-setup creates %q (.env: %v)", n, cfg.TemporalNamespace, created, set))
			}
		}
	}
	registered := map[string]string{}
	for _, pair := range strings.Fields(p.checkEnv(setup)["SEARCH_ATTRIBUTES"]) {
		name, typ, _ := strings.Cut(pair, "=")
		registered[name] = typ
	}
	for _, name := range slices.Sorted(maps.Keys(composeSearchAttributes)) {
		if got := registered[name]; !strings.EqualFold(got, composeSearchAttributes[name]) {
			problems = append(problems, fmt.Sprintf("temporal-setup: search attribute %s registered as %q, want %s", name, got, composeSearchAttributes[name]))
		}
	}
	return problems
}

// ports resolves a service's ports to (published, container) pairs.
func (p *composeProject) ports(s *composeService) (out [][2]string) {
	vars := composeVars{dummyRequired: true}
	for _, port := range s.Ports {
		if port.Raw == "" {
			out = append(out, [2]string{port.Published, port.Target})
			continue
		}
		raw, _ := vars.interpolate(port.Raw)
		raw, _, _ = strings.Cut(raw, "/")
		published, target := "", raw
		if i := strings.LastIndex(raw, ":"); i >= 0 {
			published, target = raw[:i], raw[i+1:]
			if j := strings.LastIndex(published, ":"); j >= 0 {
				published = published[j+1:]
			}
		}
		out = append(out, [2]string{published, target})
	}
	return out
}

// httpPort is the container port the service listens on: HTTP_ADDR, or
// paysim's -addr.
func (p *composeProject) httpPort(s *composeService) string {
	if composeModeOf(s) == composeModePaysim {
		settings, _ := p.paysimSettings(s, composeVars{dummyRequired: true})
		_, port, err := net.SplitHostPort(settings["addr"])
		if err != nil {
			return "invalid -addr " + settings["addr"]
		}
		return port
	}
	addr := p.checkEnv(s)["HTTP_ADDR"]
	if addr == "" {
		for _, v := range Vars() {
			if v.Name == "HTTP_ADDR" {
				addr = v.Default
			}
		}
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "invalid HTTP_ADDR " + addr
	}
	return port
}

func composeHealthURLOf(test []string) string {
	for i, a := range test {
		for _, f := range []string{"-url", "--url"} {
			if a == f && i+1 < len(test) {
				return test[i+1]
			}
			if v, ok := strings.CutPrefix(a, f+"="); ok {
				return v
			}
		}
	}
	return composeHealthURL
}

func checkComposePorts(p *composeProject) (problems []string) {
	for _, n := range p.appServices() {
		s := p.file.Services[n]
		port, listener := p.httpPort(s), "HTTP_ADDR"
		if composeModeOf(s) == composeModePaysim {
			listener = "paysim -addr"
		}
		for _, pp := range p.ports(s) {
			if pp[1] != port {
				problems = append(problems, fmt.Sprintf("%s: publishes container port %s, but %s listens on %s", n, pp[1], listener, port))
			}
		}
		if h := s.Healthcheck; h.active() && slices.Contains(h.Test, "healthcheck") {
			u, err := url.Parse(composeHealthURLOf(h.Test))
			if err != nil || u.Port() != port {
				problems = append(problems, fmt.Sprintf("%s: health check URL %q does not reach %s port %s", n, composeHealthURLOf(h.Test), listener, port))
			}
		}
		if composeModeOf(s) == ModeWorker {
			if s.ContainerName != "" {
				problems = append(problems, fmt.Sprintf("%s: container_name %q prevents scaling", n, s.ContainerName))
			}
			for _, pp := range p.ports(s) {
				if pp[0] != "" {
					problems = append(problems, fmt.Sprintf("%s: publishes host port %s, which prevents scaling", n, pp[0]))
				}
			}
		}
	}
	api := p.file.Services["api"]
	if api == nil {
		return problems
	}
	port, published := p.httpPort(api), false
	for _, pp := range p.ports(api) {
		published = published || (pp[1] == port && pp[0] != "")
	}
	if !published {
		problems = append(problems, fmt.Sprintf("api: container port %s (HTTP_ADDR) is not published", port))
	}
	if _, stages, err := p.dockerfile(); err == nil && len(stages) > 0 {
		exposed := false
		for _, in := range stages[len(stages)-1].instrs {
			if in[0] == "EXPOSE" {
				for _, f := range strings.Fields(in[1]) {
					exposed = exposed || strings.TrimSuffix(f, "/tcp") == port
				}
			}
		}
		if !exposed {
			problems = append(problems, fmt.Sprintf("Dockerfile does not EXPOSE the api port %s", port))
		}
	}
	return problems
}

func checkComposeImages(p *composeProject) (problems []string) {
	vars := composeVars{dummyRequired: true}
	images := map[string]bool{}
	apps := p.appServices()
	for _, n := range p.serviceNames() {
		s := p.file.Services[n]
		img, err := vars.interpolate(s.Image)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: image: %v", n, err))
		}
		if slices.Contains(apps, n) {
			images[img] = true
			if s.Build == nil {
				problems = append(problems, fmt.Sprintf("%s: no build section", n))
			}
			if img == "" {
				problems = append(problems, fmt.Sprintf("%s: builds an image without a name; give all ordersaga services the same image name", n))
			}
		}
		if img == "" && s.Build != nil {
			continue // reported above
		}
		if why := composeImagePinned(img); why != "" {
			problems = append(problems, fmt.Sprintf("%s: image %q is not pinned: %s", n, img, why))
		}
	}
	if len(images) > 1 {
		problems = append(problems, fmt.Sprintf("ordersaga services use different images %v; build one", slices.Sorted(maps.Keys(images))))
	}
	for _, n := range apps {
		if b := p.file.Services[n].Build; b != nil {
			df := b.Dockerfile
			if df == "" {
				df = "Dockerfile"
			}
			if rel := p.clean(path.Join(b.Context, df)); rel == "" || !p.exists(rel) {
				problems = append(problems, fmt.Sprintf("%s: build context %q has no %s", n, b.Context, df))
			}
		}
	}
	return problems
}

// checkComposeTemporalVersion: the Temporal images are the version of the
// server go.mod pins — the embedded server's, and the one `ordersaga
// cluster` builds — and the Web UI's the ui-server go.mod pins.
func checkComposeTemporalVersion(p *composeProject) (problems []string) {
	gomod, err := p.readFile("go.mod")
	if err != nil {
		return []string{"go.mod: " + err.Error()}
	}
	pinned := func(module string) string {
		m := regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(module) + ` v(\S+)`).FindStringSubmatch(gomod)
		if m == nil {
			problems = append(problems, "go.mod does not require "+module)
			return ""
		}
		return m[1]
	}
	want := map[string]string{"temporalio/server": pinned("go.temporal.io/server"), "temporalio/admin-tools": pinned("go.temporal.io/server"),
		"temporalio/ui": pinned("github.com/temporalio/ui-server/v2")}
	for _, n := range p.serviceNames() {
		repo, tag, _ := strings.Cut(p.file.Services[n].Image, ":")
		if v, ok := want[repo]; ok && v != "" && tag != v {
			problems = append(problems, fmt.Sprintf("%s: image %s:%s, but go.mod pins %s", n, repo, tag, v))
		}
	}
	return problems
}

// checkComposeDockerContext: the image build sees every file the binary
// embeds from deploy/ (package ordersaga/deploy), which .dockerignore
// otherwise leaves out with the rest of deploy/.
func checkComposeDockerContext(p *composeProject) (problems []string) {
	ignore, err := p.readFile(".dockerignore")
	if err != nil {
		return []string{".dockerignore is missing"}
	}
	lines := strings.Fields(ignore)
	if !slices.Contains(lines, "deploy") && !slices.Contains(lines, "deploy/") {
		return nil
	}
	src, err := p.readFile("deploy/embed.go")
	if err != nil {
		return nil // nothing embedded
	}
	need := []string{"deploy/embed.go"}
	for _, m := range regexp.MustCompile(`(?m)^//go:embed (.+)$`).FindAllStringSubmatch(src, -1) {
		for _, f := range strings.Fields(m[1]) {
			need = append(need, "deploy/"+f)
		}
	}
	for _, f := range need {
		if !slices.Contains(lines, "!"+f) {
			problems = append(problems, fmt.Sprintf(".dockerignore leaves out deploy/ but does not bring back %s (the binary embeds it)", f))
		}
	}
	return problems
}

func checkComposeDockerfile(p *composeProject) (problems []string) {
	rel, stages, err := p.dockerfile()
	if err != nil {
		return []string{fmt.Sprintf("Dockerfile %s: %v", rel, err)}
	}
	if len(stages) < 2 {
		return []string{fmt.Sprintf("%s: want a multi-stage build, found %d stage(s)", rel, len(stages))}
	}
	var names []string
	for i, st := range stages {
		if st.image != "scratch" && !slices.Contains(names, st.image) {
			if strings.Contains(st.image, "$") {
				problems = append(problems, fmt.Sprintf("%s: stage %d FROM %q cannot be checked for a pinned tag", rel, i, st.image))
			} else if why := composeImagePinned(st.image); why != "" {
				problems = append(problems, fmt.Sprintf("%s: stage %d FROM %q is not pinned: %s", rel, i, st.image, why))
			}
		}
		if st.name != "" {
			names = append(names, st.name)
		}
	}
	// Build stage: static, reproducible, dependencies cached before the source.
	build := stages[:len(stages)-1]
	var all []string
	downloadAt, copySourceAt := -1, -1
	for _, st := range build {
		for _, in := range st.instrs {
			all = append(all, in[0]+" "+in[1])
			if in[0] == "RUN" && strings.Contains(in[1], "go mod download") && downloadAt < 0 {
				downloadAt = len(all)
			}
			if in[0] == "COPY" && regexp.MustCompile(`^(--\S+\s+)*\.\s+\S+$`).MatchString(in[1]) && copySourceAt < 0 {
				copySourceAt = len(all)
			}
		}
	}
	text := strings.Join(all, "\n")
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-s -w", "go build"} {
		if !strings.Contains(text, want) {
			problems = append(problems, fmt.Sprintf("%s: build stage lacks %q", rel, want))
		}
	}
	if downloadAt < 0 || copySourceAt < 0 || downloadAt > copySourceAt {
		problems = append(problems, fmt.Sprintf("%s: `go mod download` must run before the source is copied (COPY . ...), so the module layer is cached", rel))
	}
	// Final stage: the binary, as a non-root user.
	final := stages[len(stages)-1]
	var entrypoint []string
	copied, user := false, ""
	for _, in := range final.instrs {
		switch in[0] {
		case "ENTRYPOINT":
			entrypoint = nil
			if err := json.Unmarshal([]byte(in[1]), &entrypoint); err != nil {
				entrypoint = []string{"(shell form) " + in[1]}
			}
		case "COPY", "ADD":
			f := strings.Fields(in[1])
			copied = copied || (len(f) > 0 && f[len(f)-1] == composeBinary)
		case "USER":
			user = in[1]
		}
	}
	if !slices.Equal(entrypoint, []string{composeBinary}) {
		problems = append(problems, fmt.Sprintf("%s: final stage ENTRYPOINT is %q, want [%q]", rel, entrypoint, composeBinary))
	}
	if !copied {
		problems = append(problems, fmt.Sprintf("%s: final stage does not copy the binary to %s", rel, composeBinary))
	}
	if u, _, _ := strings.Cut(user, ":"); u == "" || u == "root" || u == "0" {
		problems = append(problems, fmt.Sprintf("%s: final stage runs as root (USER %q)", rel, user))
	}
	return problems
}

func checkComposeHealthchecks(p *composeProject) (problems []string) {
	want := map[string]string{
		"postgres": "pg_isready",
		"temporal": "", // any probe
		"api":      "healthcheck",
		"worker":   "healthcheck",
		"paysim":   "healthcheck",
	}
	for _, n := range []string{"postgres", "temporal", "api", "worker", "paysim"} {
		s := p.file.Services[n]
		if s == nil {
			continue
		}
		if !s.Healthcheck.active() {
			problems = append(problems, fmt.Sprintf("%s: no health check", n))
			continue
		}
		if w := want[n]; w != "" && !strings.Contains(strings.Join(s.Healthcheck.Test, " "), w) {
			problems = append(problems, fmt.Sprintf("%s: health check %v does not use %s", n, s.Healthcheck.Test, w))
		}
	}
	return problems
}

func checkComposeFiles(p *composeProject) (problems []string) {
	for _, n := range p.serviceNames() {
		s := p.file.Services[n]
		for _, m := range p.mounts(s) {
			if !m.bind {
				if _, declared := p.file.Volumes[m.source]; m.source != "" && !declared {
					problems = append(problems, fmt.Sprintf("%s: volume %q is not declared under volumes:", n, m.source))
				}
				continue
			}
			rel := p.clean(m.source)
			if rel == "" || !p.exists(rel) {
				problems = append(problems, fmt.Sprintf("%s: mounts %s, which is not in the repository", n, m.source))
			}
		}
		// Scripts run from a mount and files named by the environment exist.
		var refs []string
		for _, a := range append(slices.Clone([]string(s.Entrypoint)), s.Command...) {
			if strings.HasPrefix(a, "/") && (strings.HasSuffix(a, ".sh") || strings.HasSuffix(a, ".yaml")) {
				refs = append(refs, a)
			}
		}
		if v := p.checkEnv(s)["DYNAMIC_CONFIG_FILE_PATH"]; v != "" {
			if !strings.HasPrefix(v, "/") {
				v = "/etc/temporal/" + v // the server image's working directory
			}
			refs = append(refs, v)
		}
		for _, ref := range refs {
			host, ok := p.hostFileFor(s, ref)
			if !ok || host == "" || !p.exists(host) {
				problems = append(problems, fmt.Sprintf("%s: %s is not mounted from a file of the repository", n, ref))
			}
		}
	}
	return problems
}

func checkComposeSecrets(p *composeProject) (problems []string) {
	for _, name := range slices.Sorted(maps.Keys(p.file.Secrets)) {
		sec := p.file.Secrets[name]
		if sec.File == "" {
			continue
		}
		// As a production .env leaves it: SECRETS_DIR unset.
		file, err := composeVars{dummyRequired: true}.interpolate(sec.File)
		if err != nil {
			problems = append(problems, fmt.Sprintf("secret %s: file: %v", name, err))
		}
		if rel := p.clean(file); rel == "" || !strings.HasPrefix(rel, composeSecretsDir+"/") {
			problems = append(problems, fmt.Sprintf("secret %s: file %q is not under ./%s/ when .env does not move it", name, file, composeSecretsDir))
		}
	}
	for _, n := range p.serviceNames() {
		s := p.file.Services[n]
		paths := map[string]bool{}
		for _, ref := range s.Secrets {
			if _, ok := p.file.Secrets[ref.Source]; !ok {
				problems = append(problems, fmt.Sprintf("%s: secret %q is not declared under secrets:", n, ref.Source))
			}
			paths[ref.path()] = true
		}
		env := p.checkEnv(s)
		for _, k := range slices.Sorted(maps.Keys(env)) {
			if strings.HasPrefix(env[k], "/run/secrets/") && !paths[env[k]] {
				problems = append(problems, fmt.Sprintf("%s: %s=%s, but no secret is mounted there", n, k, env[k]))
			}
			if strings.HasSuffix(k, "_FILE") && slices.Contains(p.appServices(), n) && !strings.HasPrefix(env[k], "/run/secrets/") {
				problems = append(problems, fmt.Sprintf("%s: %s=%q; key files come from ./%s as /run/secrets/...", n, k, env[k], composeSecretsDir))
			}
		}
	}
	// Secrets never reach an image.
	ignore, err := p.readFile(".dockerignore")
	if err != nil {
		return append(problems, ".dockerignore is missing")
	}
	lines := strings.Fields(ignore)
	for _, want := range []string{composeSecretsDir, ".env", ".git"} {
		if !slices.Contains(lines, want) && !slices.Contains(lines, want+"/") && !slices.Contains(lines, "/"+want) {
			problems = append(problems, fmt.Sprintf(".dockerignore does not exclude %s", want))
		}
	}
	return problems
}

// checkComposeEnvExample: every variable the compose file reads from .env is
// documented in deploy/compose.env.example.
func checkComposeEnvExample(p *composeProject) (problems []string) {
	example, err := p.readFile(composeEnvExample)
	if err != nil {
		return []string{fmt.Sprintf("%s: %v", composeEnvExample, err)}
	}
	seen := map[string]bool{}
	for _, s := range p.scalars {
		for _, name := range composeRefs(s) {
			if seen[name] {
				continue
			}
			seen[name] = true
			if !regexp.MustCompile(`(?m)^#?\s*` + name + `=`).MatchString(example) {
				problems = append(problems, fmt.Sprintf("%s: %s (read by docker-compose.yml) is not documented", composeEnvExample, name))
			}
		}
	}
	sort.Strings(problems)
	return problems
}

// checkComposeStopGrace: Docker kills a container stop_grace_period (default
// 10s) after SIGTERM; the process needs SHUTDOWN_TIMEOUT to drain.
func checkComposeStopGrace(p *composeProject) (problems []string) {
	for _, n := range p.appServices() {
		s := p.file.Services[n]
		if m := composeModeOf(s); m != ModeAPI && m != ModeWorker {
			continue
		}
		env := p.checkEnv(s)
		cfg, _ := Load(composeModeOf(s), func(k string) string { return env[k] })
		grace := 10 * time.Second
		if s.StopGracePeriod != "" {
			d, err := time.ParseDuration(s.StopGracePeriod)
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s: stop_grace_period %q: %v", n, s.StopGracePeriod, err))
				continue
			}
			grace = d
		}
		if grace <= cfg.ShutdownTimeout {
			problems = append(problems, fmt.Sprintf("%s: stop_grace_period %v is not longer than SHUTDOWN_TIMEOUT %v", n, grace, cfg.ShutdownTimeout))
		}
	}
	return problems
}

// ---------------------------------------------------------------------------
// The demo profile: paysim plays WeChat Pay and jscode2session for api and
// worker, with the public demo keys; deploy/demo.env is the --env-file.

// composeDemo is deploy/demo.env, as Compose reads it for interpolation.
type composeDemo struct {
	vars   map[string]string
	names  []string // in file order
	interp composeVars
}

// composeParseEnvFile reads KEY=value lines. The demo file keeps values plain
// (no quotes, $, spaces, # or backslashes), so that Compose's dotenv reader
// and this one cannot disagree.
func composeParseEnvFile(name, text string) (vars map[string]string, names []string, problems []string) {
	vars = map[string]string{}
	for i, line := range strings.Split(text, "\n") {
		l := strings.TrimSpace(line)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if !ok || composeVarName.FindString(k) != k {
			problems = append(problems, fmt.Sprintf("%s:%d: %q is not NAME=value", name, i+1, l))
			continue
		}
		if strings.ContainsAny(v, "\"'`$ #\\") {
			problems = append(problems, fmt.Sprintf("%s:%d: %s: keep demo values plain (no quotes, $, spaces, # or backslashes)", name, i+1, k))
		}
		if _, dup := vars[k]; dup {
			problems = append(problems, fmt.Sprintf("%s:%d: %s is set twice", name, i+1, k))
		}
		vars[k] = v
		names = append(names, k)
	}
	return vars, names, problems
}

func (p *composeProject) demo() (*composeDemo, []string) {
	text, err := p.readFile(composeDemoEnv)
	if err != nil {
		return nil, []string{fmt.Sprintf("%s: %v", composeDemoEnv, err)}
	}
	vars, names, problems := composeParseEnvFile(composeDemoEnv, text)
	return &composeDemo{vars: vars, names: names, interp: composeVars{set: vars}}, problems
}

// composePaysimFlag is a flag of `ordersaga paysim`.
type composePaysimFlag struct {
	isBool bool
	def    string
}

// composePaysimFlags reads the simulator's own flag set from `paysim -h`, so
// that a flag it renames or drops is noticed here.
var composePaysimFlags = sync.OnceValues(func() (map[string]composePaysimFlag, error) {
	var out bytes.Buffer
	if err := paysim.RunCommand(context.Background(), []string{"-h"}, &out); !errors.Is(err, flag.ErrHelp) {
		return nil, fmt.Errorf("ordersaga paysim -h: %v", err)
	}
	flags := map[string]composePaysimFlag{}
	defaultRe := regexp.MustCompile(`\(default "?(.*?)"?\)$`)
	last := ""
	for _, line := range strings.Split(out.String(), "\n") {
		head, usage, _ := strings.Cut(line, "\t")
		if f := strings.Fields(head); strings.HasPrefix(line, "  -") && len(f) > 0 {
			last = strings.TrimPrefix(f[0], "-")
			flags[last] = composePaysimFlag{isBool: len(f) == 1}
		}
		if m := defaultRe.FindStringSubmatch(strings.TrimSpace(usage)); m != nil && last != "" {
			fl := flags[last]
			fl.def = m[1]
			flags[last] = fl
		}
	}
	for _, want := range []string{"addr", "keys", "appid", "mchid", "secret", "notify-url"} {
		if _, ok := flags[want]; !ok {
			return nil, fmt.Errorf("ordersaga paysim -h lists no -%s:\n%s", want, out.String())
		}
	}
	return flags, nil
})

// paysimService is the service that runs `ordersaga paysim`.
func (p *composeProject) paysimService() (string, *composeService, []string) {
	var names []string
	for _, n := range p.appServices() {
		if composeModeOf(p.file.Services[n]) == composeModePaysim {
			names = append(names, n)
		}
	}
	switch len(names) {
	case 0:
		return "", nil, []string{"no service runs `ordersaga paysim`: the demo profile has no simulator"}
	case 1:
		return names[0], p.file.Services[names[0]], nil
	}
	return "", nil, []string{fmt.Sprintf("services %v all run `ordersaga paysim`; the demo needs one", names)}
}

// paysimSettings are the simulator's effective settings with .env = vars:
// a flag, else (appid, mchid, secret) the environment variable paysim reads
// as its default, else paysim's default.
func (p *composeProject) paysimSettings(s *composeService, vars composeVars) (map[string]string, []string) {
	defs, err := composePaysimFlags()
	if err != nil {
		return map[string]string{}, []string{err.Error()}
	}
	var args []string
	var problems []string
	for _, a := range s.Command[1:] {
		v, err := vars.interpolate(a)
		if err != nil {
			problems = append(problems, fmt.Sprintf("paysim command: %v", err))
		}
		args = append(args, v)
	}
	got := map[string]string{}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") || a == "-" || a == "--" {
			problems = append(problems, fmt.Sprintf("paysim argument %q is not a flag (ordersaga paysim takes none)", a))
			continue
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		def, ok := defs[name]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("-%s is not a flag of ordersaga paysim", name))
		case hasVal:
			got[name] = val
		case def.isBool:
			got[name] = "true"
		case i+1 < len(args):
			i++
			got[name] = args[i]
		default:
			problems = append(problems, fmt.Sprintf("paysim flag -%s has no value", name))
		}
	}
	env, _ := p.env(s, vars)
	fallback := map[string][2]string{
		"appid":        {"WECHAT_APPID", paysim.DefaultAppID},
		"mchid":        {"WECHATPAY_MCHID", paysim.DefaultMchID},
		"secret":       {"WECHAT_APP_SECRET", paysim.DefaultLoginSecret},
		"push-token":   {"WECHAT_PUSH_TOKEN", ""},
		"push-aes-key": {"WECHAT_PUSH_AES_KEY", ""},
	}
	for name, def := range defs {
		if _, set := got[name]; set {
			continue
		}
		if fb, ok := fallback[name]; ok {
			got[name] = fb[1]
			if v := strings.TrimSpace(env[fb[0]]); v != "" {
				got[name] = v
			}
			continue
		}
		got[name] = def.def
	}
	return got, problems
}

// secretFile is the repository file behind a /run/secrets/... path of the
// service, with .env = vars ("" when it is not a file of the repository).
func (p *composeProject) secretFile(s *composeService, inContainer string, vars composeVars) (string, error) {
	for _, ref := range s.Secrets {
		if ref.path() != inContainer {
			continue
		}
		sec, ok := p.file.Secrets[ref.Source]
		if !ok || sec.File == "" {
			return "", fmt.Errorf("secret %s is not a file", ref.Source)
		}
		file, err := vars.interpolate(sec.File)
		if err != nil {
			return "", err
		}
		rel := p.clean(file)
		if rel == "" || !p.exists(rel) {
			return "", fmt.Errorf("secret %s: %s is not a file of the repository", ref.Source, file)
		}
		return rel, nil
	}
	return "", errors.New("no secret is mounted there")
}

// demoServices are the api and worker services: what the demo configures.
func (p *composeProject) demoServices() (names []string) {
	for _, n := range p.appServices() {
		if m := composeModeOf(p.file.Services[n]); m == ModeAPI || m == ModeWorker {
			names = append(names, n)
		}
	}
	return names
}

// checkNotifyURL: the simulator, in the compose network, reaches the api
// service's notify route.
func (p *composeProject) checkNotifyURL(where, raw string) (problems []string) {
	return p.checkAPIURL(where, raw, composeNotifyPath)
}

// checkAPIURL: raw is the api service's route, as the simulator reaches it
// over the compose network.
func (p *composeProject) checkAPIURL(where, raw, route string) (problems []string) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return []string{fmt.Sprintf("%s: notify URL %q is not a URL", where, raw)}
	}
	target := p.file.Services[u.Hostname()]
	switch {
	case target == nil || composeModeOf(target) != ModeAPI:
		problems = append(problems, fmt.Sprintf("%s: notify URL %q: host %q is not the api service (the simulator posts over the compose network)", where, raw, u.Hostname()))
	case u.Scheme != "http":
		problems = append(problems, fmt.Sprintf("%s: notify URL %q: the api service serves plain http inside the compose network", where, raw))
	default:
		port := u.Port()
		if port == "" {
			port = "80"
		}
		if want := p.httpPort(target); port != want {
			problems = append(problems, fmt.Sprintf("%s: notify URL %q: port %s is not the api's HTTP_ADDR port %s", where, raw, port, want))
		}
	}
	if u.Path != route || u.RawQuery != "" {
		problems = append(problems, fmt.Sprintf("%s: URL %q: path %q is not the route %s", where, raw, u.Path, route))
	}
	if spec, err := p.readFile(composeOpenAPI); err != nil || !strings.Contains(spec, "\n  "+route+":") {
		problems = append(problems, fmt.Sprintf("%s has no route %s (%v)", composeOpenAPI, route, err))
	}
	return problems
}

// checkComposeDemoEnv: deploy/demo.env names only variables that do
// something, sets every variable the file requires, turns the profile on in a
// project of its own, passes config.Load in every mode with the real demo key
// files, and points api and worker at the simulator and the simulator at api.
func checkComposeDemoEnv(p *composeProject) []string {
	d, problems := p.demo()
	if d == nil {
		return problems
	}
	known, read := map[string]bool{}, map[string]bool{}
	for _, v := range Vars() {
		known[v.Name] = true
	}
	for _, s := range p.scalars {
		for _, name := range composeRefs(s) {
			read[name] = true
		}
	}
	for _, k := range d.names {
		switch {
		case slices.Contains(composeCLIVars, k):
		case !known[k] && !read[k]:
			problems = append(problems, fmt.Sprintf("%s: %s is neither a variable of config.Vars() nor read by docker-compose.yml", composeDemoEnv, k))
		case !read[k]:
			problems = append(problems, fmt.Sprintf("%s: %s is a variable of config.Vars(), but docker-compose.yml passes it to no service: setting it changes nothing", composeDemoEnv, k))
		}
	}
	// Complete: `docker compose --env-file deploy/demo.env` needs nothing else.
	missing := map[string]bool{}
	for _, s := range p.scalars {
		var m *composeMissingError
		if _, err := d.interp.interpolate(s); errors.As(err, &m) {
			missing[m.name] = true
		} else if err != nil {
			problems = append(problems, fmt.Sprintf("docker-compose.yml with %s: %v", composeDemoEnv, err))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(missing)) {
		problems = append(problems, fmt.Sprintf("%s does not set %s, which docker-compose.yml requires", composeDemoEnv, name))
	}
	// Compose: the profile on, and a project of its own.
	if got := d.vars["COMPOSE_PROFILES"]; got != composeDemoProfile {
		problems = append(problems, fmt.Sprintf("%s: COMPOSE_PROFILES=%q; want %q, so that the simulator runs whenever the demo settings do", composeDemoEnv, got, composeDemoProfile))
	}
	if name := d.vars["COMPOSE_PROJECT_NAME"]; name == "" || name == p.file.Name || !regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`).MatchString(name) {
		problems = append(problems, fmt.Sprintf("%s: COMPOSE_PROJECT_NAME=%q: give the demo a valid project name other than %q (the same project would share production's containers and database volume)", composeDemoEnv, name, p.file.Name))
	}
	simName, sim, simProblems := p.paysimService()
	problems = append(problems, simProblems...)
	// Every ordersaga process accepts its demo environment.
	for _, n := range p.appServices() {
		s := p.file.Services[n]
		mode := composeModeOf(s)
		if mode != ModeAPI && mode != ModeWorker && mode != ModeMigrate {
			continue
		}
		env, err := p.env(s, d.interp)
		if err != nil {
			continue // reported above
		}
		dir, err := p.copyDir()
		if err != nil {
			return append(problems, err.Error())
		}
		for k, v := range env {
			if !strings.HasPrefix(v, "/run/secrets/") {
				continue
			}
			rel, err := p.secretFile(s, v, d.interp)
			if err == nil {
				env[k], err = p.copyTo(dir, rel)
			}
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s (demo): %s=%s: %v", n, k, v, err))
			}
		}
		cfg, err := Load(mode, func(k string) string { return env[k] })
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: config.Load(%s) rejects the demo environment:\n%v", n, mode, err))
			continue
		}
		if mode == ModeMigrate || sim == nil {
			continue
		}
		want := "http://" + net.JoinHostPort(simName, p.httpPort(sim))
		// Both call the mini-program API: the api jscode2session, the
		// worker stable_token and shipping management.
		urls := map[string]string{"WECHATPAY_BASE_URL": cfg.PayBaseURL, "WECHAT_API_BASE_URL": cfg.WechatAPIBaseURL}
		for _, k := range slices.Sorted(maps.Keys(urls)) {
			if got := strings.TrimSuffix(urls[k], "/"); got != want {
				problems = append(problems, fmt.Sprintf("%s (demo): %s=%q is not the simulator %s", n, k, urls[k], want))
			}
		}
		if mode == ModeWorker {
			problems = append(problems, p.checkNotifyURL(n+" (demo) WECHATPAY_NOTIFY_URL", cfg.PayNotifyURL)...)
		}
	}
	return problems
}

// checkComposeDemoKeys: paysim loads the demo keys from its -keys directory
// (a tmpfs it can lock, every file mounted from one directory of the
// repository, loudly labelled), and the values and key files api and worker
// get in the demo are the same keys.
func checkComposeDemoKeys(p *composeProject) []string {
	d, problems := p.demo()
	if d == nil {
		return problems
	}
	simName, sim, simProblems := p.paysimService()
	if sim == nil {
		return append(problems, simProblems...)
	}
	settings, _ := p.paysimSettings(sim, d.interp)
	keysDir := settings["keys"]
	if !path.IsAbs(keysDir) {
		return append(problems, fmt.Sprintf("%s: -keys %q: give the key directory as an absolute path in the container", simName, keysDir))
	}
	problems = append(problems, p.checkKeysTmpfs(simName, sim, keysDir)...)
	dir, err := p.copyDir()
	if err != nil {
		return append(problems, err.Error())
	}
	srcDir, complete := "", true
	for _, f := range composeDemoKeyFiles {
		inContainer := path.Join(keysDir, f)
		host, ok := p.hostFileFor(sim, inContainer)
		if !ok || host == "" || !p.exists(host) {
			problems = append(problems, fmt.Sprintf("%s: %s is not mounted from a file of the repository (paysim needs all of %v, or it generates new keys)", simName, inContainer, composeDemoKeyFiles))
			complete = false
			continue
		}
		switch {
		case path.Base(host) != f:
			problems = append(problems, fmt.Sprintf("%s: %s is mounted from %s; keep the names of paysim.EnsureDevKeys", simName, inContainer, host))
		case srcDir == "":
			srcDir = path.Dir(host)
		case path.Dir(host) != srcDir:
			problems = append(problems, fmt.Sprintf("%s: the demo keys come from both %s and %s; keep them in one directory", simName, srcDir, path.Dir(host)))
		}
		text, _ := p.readFile(host)
		if before, _, isPEM := strings.Cut(text, "-----BEGIN"); isPEM && !strings.Contains(before, composeDemoLabel) {
			problems = append(problems, fmt.Sprintf("%s does not start with %q: say in the file that it is a published demo key", host, composeDemoLabel))
		}
		if f == paysim.FileKeysMeta {
			var meta struct{ Note string }
			note := ""
			if json.Unmarshal([]byte(text), &meta) == nil {
				note = strings.ToLower(meta.Note)
			}
			if !strings.Contains(note, "public") || !strings.Contains(note, "never") {
				problems = append(problems, fmt.Sprintf("%s: its note must say the keys are public and never for a real merchant", host))
			}
		}
		if _, err := p.copyTo(dir, host); err != nil {
			problems = append(problems, err.Error())
		}
	}
	if !complete {
		return problems
	}
	keys, err := paysim.EnsureDevKeys(dir)
	if err != nil {
		return append(problems, fmt.Sprintf("%s cannot load the demo keys of %s: %s", simName, srcDir, strings.ReplaceAll(err.Error(), dir, srcDir)))
	}
	// api and worker: the values of keys.json, the key files of the same pairs.
	for _, n := range p.demoServices() {
		s := p.file.Services[n]
		env, _ := p.env(s, d.interp)
		values := map[string]string{
			"WECHATPAY_APIV3_KEY":       keys.APIv3Key,
			"WECHATPAY_PUBLIC_KEY_ID":   keys.PublicKeyID,
			"WECHATPAY_MCH_CERT_SERIAL": keys.MchCertSerial,
		}
		for _, k := range slices.Sorted(maps.Keys(values)) {
			if got, set := env[k]; set && got != values[k] {
				problems = append(problems, fmt.Sprintf("%s (demo): %s differs from %s/%s: paysim would refuse the shop", n, k, srcDir, paysim.FileKeysMeta))
			}
		}
		if len(env["WECHATPAY_APIV3_KEY"]) != 32 {
			problems = append(problems, fmt.Sprintf("%s (demo): WECHATPAY_APIV3_KEY is %d bytes, not 32", n, len(env["WECHATPAY_APIV3_KEY"])))
		}
		keyDir, err := p.copyDir()
		if err != nil {
			return append(problems, err.Error())
		}
		load := func(k string) (string, bool) {
			v, set := env[k]
			if !set {
				return "", false
			}
			rel, err := p.secretFile(s, v, d.interp)
			var f string
			if err == nil {
				f, err = p.copyTo(keyDir, rel)
			}
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s (demo): %s=%s: %v", n, k, v, err))
				return "", false
			}
			return f, true
		}
		if f, ok := load("WECHATPAY_MCH_PRIVATE_KEY_FILE"); ok {
			priv, err := wxpay.LoadPrivateKeyFile(f)
			switch {
			case err != nil:
				problems = append(problems, fmt.Sprintf("%s (demo): WECHATPAY_MCH_PRIVATE_KEY_FILE: %v", n, err))
			case !priv.PublicKey.Equal(keys.MchPublicKey):
				problems = append(problems, fmt.Sprintf("%s (demo): the merchant private key does not match %s/%s, the key paysim verifies requests with", n, srcDir, paysim.FileMchPublicKey))
			}
		}
		if f, ok := load("WECHATPAY_PUBLIC_KEY_FILE"); ok {
			pub, err := wxpay.LoadPublicKeyFile(f)
			switch {
			case err != nil:
				problems = append(problems, fmt.Sprintf("%s (demo): WECHATPAY_PUBLIC_KEY_FILE: %v", n, err))
			case !pub.Equal(keys.PublicKey):
				problems = append(problems, fmt.Sprintf("%s (demo): the WeChat Pay public key is not %s/%s, the public half of the key paysim signs with", n, srcDir, paysim.FilePublicKey))
			}
		}
	}
	return problems
}

// checkKeysTmpfs: paysim takes a lock file in its key directory and the root
// file system is read-only, so the directory is a tmpfs the image's user can
// write; the key files are mounted into it.
func (p *composeProject) checkKeysTmpfs(n string, s *composeService, dir string) []string {
	opts, found := "", false
	for _, t := range s.Tmpfs {
		target, o, _ := strings.Cut(t, ":")
		if path.Clean(target) == path.Clean(dir) {
			opts, found = o, true
		}
	}
	if !found {
		return []string{fmt.Sprintf("%s: -keys %s is not a tmpfs: paysim takes a lock file there and the root file system is read-only (mount the key files into a tmpfs)", n, dir)}
	}
	user := s.User
	if user == "" {
		if _, stages, err := p.dockerfile(); err == nil && len(stages) > 0 {
			for _, in := range stages[len(stages)-1].instrs {
				if in[0] == "USER" {
					user = in[1]
				}
			}
		}
	}
	uid, gid, hasGID := strings.Cut(user, ":")
	if !hasGID {
		gid = uid
	}
	mode, owner, group := uint64(0o1777), "0", "0" // a tmpfs's defaults
	for _, o := range strings.Split(opts, ",") {
		k, v, _ := strings.Cut(o, "=")
		switch k {
		case "mode":
			m, err := strconv.ParseUint(v, 8, 32)
			if err != nil {
				return []string{fmt.Sprintf("%s: tmpfs %s: mode %q is not octal", n, dir, v)}
			}
			mode = m
		case "uid":
			owner = v
		case "gid":
			group = v
		}
	}
	if mode&0o002 == 0 && (owner != uid || mode&0o200 == 0) && (group != gid || mode&0o020 == 0) {
		return []string{fmt.Sprintf("%s: tmpfs %s (%q) is not writable by the image's user %s; paysim takes a lock file there", n, dir, opts, user)}
	}
	return nil
}

// checkComposeDemoPaysim: the simulator exists only in the demo profile, runs
// the api's image, is reachable from the host on loopback only, and plays the
// merchant api and worker are configured for (appid, mchid, AppSecret, notify
// URL); production services have no profile and never see the demo keys.
func checkComposeDemoPaysim(p *composeProject) []string {
	simName, sim, problems := p.paysimService()
	if sim == nil {
		return problems
	}
	if !slices.Equal(sim.Profiles, []string{composeDemoProfile}) {
		problems = append(problems, fmt.Sprintf("%s: profiles %v; want [%s]: the simulator runs in the demo only", simName, sim.Profiles, composeDemoProfile))
	}
	demoDir := ""
	if settings, _ := p.paysimSettings(sim, composeVars{dummyRequired: true}); path.IsAbs(settings["keys"]) {
		if host, ok := p.hostFileFor(sim, path.Join(settings["keys"], paysim.FileKeysMeta)); ok && host != "" {
			demoDir = path.Dir(host)
		}
	}
	for _, n := range p.serviceNames() {
		s := p.file.Services[n]
		if n == simName {
			continue
		}
		switch {
		case slices.Contains(composeRequiredServices, n) && len(s.Profiles) > 0:
			problems = append(problems, fmt.Sprintf("%s: profiles %v: production services run without a profile", n, s.Profiles))
		case len(s.Profiles) > 0 && !slices.Equal(s.Profiles, []string{composeDemoProfile}):
			problems = append(problems, fmt.Sprintf("%s: profiles %v; the only profile is %s", n, s.Profiles, composeDemoProfile))
		}
		if len(s.Profiles) > 0 || demoDir == "" {
			continue
		}
		for _, m := range p.mounts(s) {
			if rel := p.clean(m.source); m.bind && (rel == demoDir || strings.HasPrefix(rel, demoDir+"/") || strings.HasPrefix(demoDir, rel+"/")) {
				problems = append(problems, fmt.Sprintf("%s mounts %s: only the demo profile sees the public demo keys of %s", n, m.source, demoDir))
			}
		}
	}
	vars := composeVars{dummyRequired: true}
	if api := p.file.Services["api"]; api != nil {
		want, _ := vars.interpolate(api.Image)
		if got, _ := vars.interpolate(sim.Image); got != want {
			problems = append(problems, fmt.Sprintf("%s: image %q, but api runs %q: the simulator is `ordersaga paysim` of the same image", simName, got, want))
		}
	}
	for _, port := range sim.Ports {
		host := port.HostIP
		if port.Raw != "" {
			raw, _ := vars.interpolate(port.Raw)
			if parts := strings.Split(raw, ":"); len(parts) == 3 {
				host = parts[0]
			} else {
				host = ""
			}
		}
		if ip := net.ParseIP(strings.Trim(host, "[]")); ip == nil || !ip.IsLoopback() {
			problems = append(problems, fmt.Sprintf("%s: publishes %q beyond loopback; its control API pays orders without a login: bind it to 127.0.0.1", simName, port.Raw+port.Published))
		}
	}
	d, demoProblems := p.demo()
	if d == nil {
		return append(problems, demoProblems...)
	}
	settings, flagProblems := p.paysimSettings(sim, d.interp)
	for _, pr := range flagProblems {
		problems = append(problems, simName+": "+pr)
	}
	pairs := []struct{ flag, env, why string }{
		{"appid", "WECHAT_APPID", "prepay and jscode2session would refuse the shop's appid"},
		{"mchid", "WECHATPAY_MCHID", "every WeChat Pay call would fail with MCH_NOT_EXISTS"},
		{"secret", "WECHAT_APP_SECRET", "every login would fail (errcode 40125)"},
		{"notify-url", "WECHATPAY_NOTIFY_URL", "the simulator suggests another notify URL than the worker sends"},
		{"push-token", "WECHAT_PUSH_TOKEN", "the api would refuse every shipping event (msg_signature)"},
		{"push-aes-key", "WECHAT_PUSH_AES_KEY", "the api could not decrypt any shipping event"},
	}
	for _, n := range p.demoServices() {
		env, _ := p.env(p.file.Services[n], d.interp)
		for _, pair := range pairs {
			if want, set := env[pair.env]; set && settings[pair.flag] != want {
				problems = append(problems, fmt.Sprintf("%s: -%s is %q, but %s (demo) has %s=%q: %s", simName, pair.flag, settings[pair.flag], n, pair.env, want, pair.why))
			}
		}
	}
	problems = append(problems, p.checkNotifyURL(simName+" -notify-url", settings["notify-url"])...)
	return append(problems, p.checkAPIURL(simName+" -push-url", settings["push-url"], composeEventsPath)...)
}

// ---------------------------------------------------------------------------
// Tests.

func TestComposeFile(t *testing.T) {
	p := loadComposeProject(t)
	for _, c := range composeChecks {
		t.Run(c.name, func(t *testing.T) {
			for _, problem := range c.run(p) {
				t.Error(problem)
			}
		})
	}
}

// TestComposeEnvironmentPassesConfigLoad fills a config environment from each
// ordersaga service, as Compose would with a complete .env (dummy secrets; key
// files replaced by temp files), and runs config.Load in the service's mode.
func TestComposeEnvironmentPassesConfigLoad(t *testing.T) {
	p := loadComposeProject(t)
	modes := map[Mode]bool{}
	for _, n := range p.appServices() {
		s := p.file.Services[n]
		mode := composeModeOf(s)
		if mode != ModeAPI && mode != ModeWorker && mode != ModeMigrate {
			continue
		}
		modes[mode] = true
		t.Run(n, func(t *testing.T) {
			env, err := p.env(s, composeVars{dummyRequired: true})
			if err != nil {
				t.Fatalf("interpolating the environment: %v", err)
			}
			dir := t.TempDir()
			for k, v := range env {
				if strings.HasPrefix(v, "/run/secrets/") {
					f := filepath.Join(dir, path.Base(v))
					if err := os.WriteFile(f, []byte("-----BEGIN PUBLIC KEY-----\n"), 0o600); err != nil {
						t.Fatal(err)
					}
					env[k] = f
				}
			}
			cfg, err := Load(mode, func(k string) string { return env[k] })
			if err != nil {
				t.Fatalf("config.Load(%s) rejects the compose environment:\n%v", mode, err)
			}
			if mode == ModeMigrate {
				return
			}
			if cfg.TemporalAddress != "temporal:7233" || cfg.HTTPAddr != ":8080" {
				t.Errorf("TEMPORAL_ADDRESS=%q HTTP_ADDR=%q", cfg.TemporalAddress, cfg.HTTPAddr)
			}
			if cfg.TemporalNamespace != "default" || cfg.TemporalTaskQueue != "orders" || cfg.PayBaseURL != DefaultWechatPayBaseURL {
				t.Errorf("an empty .env should leave the defaults: namespace %q, queue %q, pay base %q",
					cfg.TemporalNamespace, cfg.TemporalTaskQueue, cfg.PayBaseURL)
			}
		})
	}
	for _, m := range []Mode{ModeAPI, ModeWorker, ModeMigrate} {
		if !modes[m] {
			t.Errorf("no ordersaga service runs in %s mode", m)
		}
	}
}

// TestComposeMissingSecretIsNamed: leaving any one required variable out of
// .env makes Compose stop with a message that names it.
func TestComposeMissingSecretIsNamed(t *testing.T) {
	p := loadComposeProject(t)
	required := map[string]bool{}
	for _, s := range p.scalars {
		for _, m := range regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*):?\?`).FindAllStringSubmatch(s, -1) {
			required[m[1]] = true
		}
	}
	for _, want := range []string{"WECHAT_APP_SECRET", "WECHATPAY_APIV3_KEY", "JWT_SECRET", "ADMIN_TOKEN", "POSTGRES_PASSWORD"} {
		if !required[want] {
			t.Errorf("%s is not required with ${%s:?message}", want, want)
		}
	}
	for name := range required {
		t.Run(name, func(t *testing.T) {
			vars := composeVars{dummyRequired: true, omit: name}
			var errs []error
			for _, s := range p.scalars {
				if _, err := vars.interpolate(s); err != nil {
					errs = append(errs, err)
				}
			}
			err := errors.Join(errs...)
			if err == nil || !strings.Contains(err.Error(), name) {
				t.Fatalf("without %s, interpolation gives %v", name, err)
			}
		})
	}
}

func TestComposeInterpolation(t *testing.T) {
	vars := composeVars{set: map[string]string{"A": "a", "EMPTY": ""}}
	tests := []struct{ in, want, err string }{
		{"plain", "plain", ""},
		{"$A-${A}", "a-a", ""},
		{"$$A", "$A", ""},
		{"${B:-def}", "def", ""},
		{"${EMPTY:-def}", "def", ""},
		{"${EMPTY-def}", "", ""},
		{"${A:-def}", "a", ""},
		{"${B:-${A}x}", "ax", ""},
		{"${A:?boom}", "a", ""},
		{"${B:?set B please}", "", "B is missing a value: set B please"},
		{"${EMPTY:?no}", "", "EMPTY is missing"},
		{"${EMPTY?no}", "", ""},
		{"${A:+alt}", "alt", ""},
		{"${B:+alt}", "", ""},
		{"x:${B:-8080}:8080", "x:8080:8080", ""},
		{"${A", "", "unterminated"},
	}
	for _, tt := range tests {
		got, err := vars.interpolate(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%q: error %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%q = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

// TestComposeChecksCatchMistakes breaks the real files in one place at a time
// and expects the named check to report it.
func TestComposeChecksCatchMistakes(t *testing.T) {
	svc := func(p *composeProject, n string) *composeService {
		s := p.file.Services[n]
		if s == nil {
			t.Fatalf("service %s missing", n)
		}
		return s
	}
	replaceFile := func(p *composeProject, rel, old, new string) {
		text, err := p.readFile(rel)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(text, old) {
			t.Fatalf("%s does not contain %q", rel, old)
		}
		text = strings.Replace(text, old, new, 1)
		p.overlay[rel] = &text
	}
	// copyOverlay replaces the file dst by the content of src.
	copyOverlay := func(p *composeProject, src, dst string) {
		text, err := p.readFile(src)
		if err != nil {
			t.Fatal(err)
		}
		p.overlay[dst] = &text
	}
	// setPaysimFlag replaces paysim's argument that starts with prefix
	// (removes it when arg is "").
	setPaysimFlag := func(p *composeProject, prefix, arg string) {
		s := svc(p, "paysim")
		i := slices.IndexFunc(s.Command, func(a string) bool { return strings.HasPrefix(a, prefix) })
		if i < 0 {
			t.Fatalf("paysim command %v has no %s", s.Command, prefix)
		}
		if arg == "" {
			s.Command = slices.Delete(slices.Clone(s.Command), i, i+1)
		} else {
			s.Command[i] = arg
		}
	}
	tests := []struct {
		name, check, want string
		mutate            func(p *composeProject)
	}{
		{"missing service", "services", "temporal-ui is missing",
			func(p *composeProject) { delete(p.file.Services, "temporal-ui") }},
		{"unknown dependency", "depends_on", "redis, which does not exist",
			func(p *composeProject) { svc(p, "api").DependsOn["redis"] = "service_started" }},
		{"healthy without health check", "depends_on", "postgres has no health check",
			func(p *composeProject) { svc(p, "postgres").Healthcheck = nil }},
		{"one-shot that restarts", "depends_on", "restarts always",
			func(p *composeProject) { svc(p, "migrate").Restart = "always" }},
		{"worker starts before migrations", "depends_on", "worker must depend on migrate",
			func(p *composeProject) { delete(svc(p, "worker").DependsOn, "migrate") }},
		{"dependency cycle", "depends_on", "cycle",
			func(p *composeProject) { svc(p, "postgres").DependsOn = composeDependsOn{"api": "service_started"} }},
		{"unknown variable", "env-names", "HTTP_PORT is not a variable",
			func(p *composeProject) { svc(p, "api").Environment["HTTP_PORT"] = "8080" }},
		{"env_file", "env-names", "env_file",
			func(p *composeProject) { svc(p, "worker").EnvFile = composeStrings{".env"} }},
		{"required variable missing", "env-required", "JWT_SECRET is required but not provided",
			func(p *composeProject) { delete(svc(p, "api").Environment, "JWT_SECRET") }},
		{"required variable silently empty", "env-required", "JWT_SECRET is required in api mode",
			func(p *composeProject) { svc(p, "api").Environment["JWT_SECRET"] = "${JWT_SECRET:-}" }},
		{"worker without notify URL", "env-required", "WECHATPAY_NOTIFY_URL is required",
			func(p *composeProject) { delete(svc(p, "worker").Environment, "WECHATPAY_NOTIFY_URL") }},
		{"unknown subcommand", "commands", `"serve" is not a subcommand`,
			func(p *composeProject) { svc(p, "api").Command = composeStrings{"serve"} }},
		{"services swapped", "commands", `service worker runs "api"`,
			func(p *composeProject) { svc(p, "worker").Command = composeStrings{"api"} }},
		{"database host", "database-url", `host "db" is not the postgres service`,
			func(p *composeProject) {
				svc(p, "migrate").Environment["DATABASE_URL"] = "postgres://ordersaga:pw@db:5432/ordersaga"
			}},
		{"database not created", "database-url", `database "shop" is not created`,
			func(p *composeProject) {
				svc(p, "api").Environment["DATABASE_URL"] = "postgres://ordersaga:pw@postgres:5432/shop"
			}},
		{"init script drops the shop database", "database-url", `database "ordersaga" is not created`,
			func(p *composeProject) {
				replaceFile(p, "deploy/postgres/initdb/10-databases.sh", "CREATE DATABASE ordersaga", "-- none")
			}},
		{"temporal port", "temporal-address", `TEMPORAL_ADDRESS "temporal:7234"`,
			func(p *composeProject) { svc(p, "worker").Environment["TEMPORAL_ADDRESS"] = "temporal:7234" }},
		{"temporal host", "temporal-address", `TEMPORAL_ADDRESS "localhost:7233"`,
			func(p *composeProject) { svc(p, "api").Environment["TEMPORAL_ADDRESS"] = "localhost:7233" }},
		{"temporal database not created", "temporal-database", `DBNAME "temporal2" is not created`,
			func(p *composeProject) { svc(p, "temporal").Environment["DBNAME"] = "temporal2" }},
		{"schema job on another database", "temporal-database", `VISIBILITY_DBNAME="visibility"`,
			func(p *composeProject) { svc(p, "temporal-schema").Environment["VISIBILITY_DBNAME"] = "visibility" }},
		{"namespace mismatch", "temporal-namespace", `api uses namespace "shop"`,
			func(p *composeProject) { svc(p, "api").Environment["TEMPORAL_NAMESPACE"] = "shop" }},
		{"search attribute missing", "temporal-namespace", "OrderAmountFen registered as \"\"",
			func(p *composeProject) {
				svc(p, "temporal-setup").Environment["SEARCH_ATTRIBUTES"] = "OrderNo=Keyword OrderStatus=Keyword OrderUserID=Keyword"
			}},
		{"api port differs from HTTP_ADDR", "ports", "publishes container port 8081",
			func(p *composeProject) { svc(p, "api").Ports = []composePort{{Raw: "8081:8081"}} }},
		{"HTTP_ADDR moved, port not", "ports", "HTTP_ADDR listens on 9090",
			func(p *composeProject) { svc(p, "api").Environment["HTTP_ADDR"] = ":9090" }},
		{"worker publishes a port", "ports", "publishes host port 8080",
			func(p *composeProject) { svc(p, "worker").Ports = []composePort{{Raw: "8080:8080"}} }},
		{"worker container_name", "ports", "prevents scaling",
			func(p *composeProject) { svc(p, "worker").ContainerName = "worker" }},
		{"temporal image behind go.mod", "temporal-version", "temporal: image temporalio/server:1.30.4, but go.mod pins",
			func(p *composeProject) { svc(p, "temporal").Image = "temporalio/server:1.30.4" }},
		{"admin tools behind go.mod", "temporal-version", "temporal-schema: image temporalio/admin-tools:1.31.0, but go.mod pins",
			func(p *composeProject) { svc(p, "temporal-schema").Image = "temporalio/admin-tools:1.31.0" }},
		{"ui image not the pinned ui-server", "temporal-version", "temporal-ui: image temporalio/ui:2.50.0, but go.mod pins 2.54.1",
			func(p *composeProject) { svc(p, "temporal-ui").Image = "temporalio/ui:2.50.0" }},
		{"embedded deploy file docker-ignored", "docker-context", "does not bring back deploy/temporal/dynamicconfig.yaml",
			func(p *composeProject) {
				replaceFile(p, ".dockerignore", "!deploy/temporal/dynamicconfig.yaml\n", "")
			}},
		{"image latest", "images", `"temporalio/ui:latest" is not pinned`,
			func(p *composeProject) { svc(p, "temporal-ui").Image = "temporalio/ui:latest" }},
		{"image without tag", "images", "no tag",
			func(p *composeProject) { svc(p, "postgres").Image = "postgres" }},
		{"registry port is not a tag", "images", "no tag",
			func(p *composeProject) { svc(p, "temporal").Image = "registry.local:5000/temporalio/server" }},
		{"two app images", "images", "different images",
			func(p *composeProject) { svc(p, "worker").Image = "ordersaga:other" }},
		{"no Dockerfile in context", "images", "has no Dockerfile",
			func(p *composeProject) { p.overlay["Dockerfile"] = nil }},
		{"entrypoint not the binary", "dockerfile", "ENTRYPOINT",
			func(p *composeProject) {
				replaceFile(p, "Dockerfile", `ENTRYPOINT ["/ordersaga"]`, `ENTRYPOINT ["/app"]`)
			}},
		{"runs as root", "dockerfile", "runs as root",
			func(p *composeProject) { replaceFile(p, "Dockerfile", "USER 65532:65532", "USER root") }},
		{"unpinned base", "dockerfile", "not pinned",
			func(p *composeProject) { replaceFile(p, "Dockerfile", "golang:1.26", "golang") }},
		{"cgo on", "dockerfile", "CGO_ENABLED=0",
			func(p *composeProject) { replaceFile(p, "Dockerfile", "CGO_ENABLED=0", "CGO_ENABLED=1") }},
		{"source before modules", "dockerfile", "go mod download",
			func(p *composeProject) {
				replaceFile(p, "Dockerfile", "RUN go mod download", "COPY . .\nRUN go mod download")
			}},
		{"api without health check", "healthchecks", "api: no health check",
			func(p *composeProject) { svc(p, "api").Healthcheck = nil }},
		{"temporal health check disabled", "healthchecks", "temporal: no health check",
			func(p *composeProject) { svc(p, "temporal").Healthcheck.Disable = true }},
		{"missing dynamic config", "files", "not in the repository",
			func(p *composeProject) { p.overlay["deploy/temporal/dynamicconfig.yaml"] = nil }},
		{"dynamic config path not mounted", "files", "/etc/temporal/config/other.yaml is not mounted",
			func(p *composeProject) {
				svc(p, "temporal").Environment["DYNAMIC_CONFIG_FILE_PATH"] = "/etc/temporal/config/other.yaml"
			}},
		{"setup script missing", "files", "setup.sh",
			func(p *composeProject) { p.overlay["deploy/temporal/setup.sh"] = nil }},
		{"undeclared volume", "files", `volume "pgdata" is not declared`,
			func(p *composeProject) {
				svc(p, "postgres").Volumes = append(svc(p, "postgres").Volumes, composeMount{Raw: "pgdata:/x"})
			}},
		{"key file not mounted", "secrets", "no secret is mounted there",
			func(p *composeProject) { svc(p, "worker").Secrets = svc(p, "worker").Secrets[:1] }},
		{"key file outside secrets", "secrets", "not under ./secrets/",
			func(p *composeProject) {
				p.file.Secrets["wechatpay_public_key"] = composeSecret{File: "./deploy/pub_key.pem"}
			}},
		{"secrets not docker-ignored", "secrets", ".dockerignore does not exclude secrets",
			func(p *composeProject) { replaceFile(p, ".dockerignore", "\nsecrets\n", "\n") }},
		{"undocumented variable", "env-example", "JWT_SECRET (read by docker-compose.yml) is not documented",
			func(p *composeProject) { replaceFile(p, composeEnvExample, "\nJWT_SECRET=", "\nJWT=") }},
		{"grace shorter than shutdown", "stop-grace", "is not longer than SHUTDOWN_TIMEOUT",
			func(p *composeProject) { svc(p, "worker").StopGracePeriod = "" }},
		// The demo profile.
		{"demo env names an unknown variable", "demo-env", "ADMIN_PASSWORD is neither a variable of config.Vars() nor read by docker-compose.yml",
			func(p *composeProject) { replaceFile(p, composeDemoEnv, "\nADMIN_TOKEN=", "\nADMIN_PASSWORD=") }},
		{"demo env sets a variable no service gets", "demo-env", "WECHATPAY_MCH_PRIVATE_KEY_FILE is a variable of config.Vars(), but docker-compose.yml passes it to no service",
			func(p *composeProject) {
				replaceFile(p, composeDemoEnv, "\nSECRETS_DIR=", "\nWECHATPAY_MCH_PRIVATE_KEY_FILE=/keys/apiclient_key.pem\nSECRETS_DIR=")
			}},
		{"demo env lacks a required variable", "demo-env", "does not set JWT_SECRET, which docker-compose.yml requires",
			func(p *composeProject) { replaceFile(p, composeDemoEnv, "\nJWT_SECRET=", "\n# JWT_SECRET=") }},
		{"demo env value quoted", "demo-env", "WECHAT_APPID: keep demo values plain",
			func(p *composeProject) {
				replaceFile(p, composeDemoEnv, "\nWECHAT_APPID=wx0000000000demo01", "\nWECHAT_APPID=\"wx0000000000demo01\"")
			}},
		{"demo without its profile", "demo-env", `COMPOSE_PROFILES=""`,
			func(p *composeProject) {
				replaceFile(p, composeDemoEnv, "\nCOMPOSE_PROFILES=demo", "\nCOMPOSE_PROFILES=")
			}},
		{"demo in the production project", "demo-env", `COMPOSE_PROJECT_NAME="ordersaga"`,
			func(p *composeProject) {
				replaceFile(p, composeDemoEnv, "\nCOMPOSE_PROJECT_NAME=ordersaga-demo", "\nCOMPOSE_PROJECT_NAME=ordersaga")
			}},
		{"demo env refused by config.Load", "demo-env", "config.Load(api) rejects the demo environment",
			func(p *composeProject) {
				replaceFile(p, composeDemoEnv, "\nADMIN_TOKEN=demo-admin-token-not-for-production", "\nADMIN_TOKEN=demo")
			}},
		{"demo pays at real WeChat", "demo-env", `WECHATPAY_BASE_URL="https://api.mch.weixin.qq.com" is not the simulator http://paysim:8091`,
			func(p *composeProject) {
				replaceFile(p, composeDemoEnv, "\nWECHATPAY_BASE_URL=http://paysim:8091", "\nWECHATPAY_BASE_URL=https://api.mch.weixin.qq.com")
			}},
		{"demo logs in on the wrong port", "demo-env", `WECHAT_API_BASE_URL="http://paysim:8092" is not the simulator`,
			func(p *composeProject) {
				replaceFile(p, composeDemoEnv, "\nWECHAT_API_BASE_URL=http://paysim:8091", "\nWECHAT_API_BASE_URL=http://paysim:8092")
			}},
		{"simulator moves, demo URLs do not", "demo-env", "is not the simulator http://paysim:9091",
			func(p *composeProject) { setPaysimFlag(p, "-addr=", "-addr=:9091") }},
		{"demo notify URL on the host's loopback", "demo-env", `host "localhost" is not the api service`,
			func(p *composeProject) {
				replaceFile(p, composeDemoEnv, "\nWECHATPAY_NOTIFY_URL=http://api:8080", "\nWECHATPAY_NOTIFY_URL=http://localhost:8080")
			}},
		{"demo notify URL over https", "demo-env", "serves plain http inside the compose network",
			func(p *composeProject) {
				replaceFile(p, composeDemoEnv, "\nWECHATPAY_NOTIFY_URL=http://api:8080", "\nWECHATPAY_NOTIFY_URL=https://api:8080")
			}},
		{"paysim pushes to the wrong route", "demo-paysim", `path "/v1/wechatpay/events" is not the route /v1/wechat/events`,
			func(p *composeProject) {
				setPaysimFlag(p, "-push-url=", "-push-url=http://api:8080/v1/wechatpay/events")
			}},
		{"paysim seals with another push token", "demo-paysim", "-push-token is \"otherToken1\"",
			func(p *composeProject) { svc(p, "paysim").Environment["WECHAT_PUSH_TOKEN"] = "otherToken1" }},
		{"demo notify URL wrong path", "demo-env", `path "/v1/wechat/notify" is not the route /v1/wechatpay/notify`,
			func(p *composeProject) {
				replaceFile(p, composeDemoEnv, "8080/v1/wechatpay/notify", "8080/v1/wechat/notify")
			}},
		{"api moves, demo notify URL does not", "demo-env", "port 8080 is not the api's HTTP_ADDR port 9090",
			func(p *composeProject) { svc(p, "api").Environment["HTTP_ADDR"] = ":9090" }},
		{"demo APIv3 key not the simulator's", "demo-keys", "WECHATPAY_APIV3_KEY differs from deploy/demo/keys/keys.json",
			func(p *composeProject) {
				replaceFile(p, composeDemoEnv, "\nWECHATPAY_APIV3_KEY=", "\nWECHATPAY_APIV3_KEY=0")
			}},
		{"demo public key id not the simulator's", "demo-keys", "WECHATPAY_PUBLIC_KEY_ID differs from deploy/demo/keys/keys.json",
			func(p *composeProject) {
				replaceFile(p, composeDemoEnv, "\nWECHATPAY_PUBLIC_KEY_ID=PUB_KEY_ID_0000", "\nWECHATPAY_PUBLIC_KEY_ID=PUB_KEY_ID_0001")
			}},
		{"demo cert serial not the simulator's", "demo-keys", "worker (demo): WECHATPAY_MCH_CERT_SERIAL differs",
			func(p *composeProject) {
				replaceFile(p, composeDemoEnv, "\nWECHATPAY_MCH_CERT_SERIAL=", "\nWECHATPAY_MCH_CERT_SERIAL=0")
			}},
		{"keys.json APIv3 key too short", "demo-keys", "paysim cannot load the demo keys of deploy/demo/keys: paysim: keys.json is incomplete",
			func(p *composeProject) {
				replaceFile(p, "deploy/demo/keys/keys.json", `"apiv3_key": "`, `"apiv3_key": "x`)
			}},
		{"merchant public key not the private key's", "demo-keys", "apiclient_pub.pem does not match apiclient_key.pem",
			func(p *composeProject) {
				copyOverlay(p, "deploy/demo/keys/pub_key.pem", "deploy/demo/keys/apiclient_pub.pem")
			}},
		{"simulator's public key is the merchant's", "demo-keys", "pub_key.pem does not match paysim_platform_key.pem",
			func(p *composeProject) {
				copyOverlay(p, "deploy/demo/keys/apiclient_pub.pem", "deploy/demo/keys/pub_key.pem")
			}},
		{"private key file holds a public key", "demo-keys", "deploy/demo/keys/apiclient_key.pem: want a PKCS#8 PEM private key",
			func(p *composeProject) {
				copyOverlay(p, "deploy/demo/keys/apiclient_pub.pem", "deploy/demo/keys/apiclient_key.pem")
			}},
		{"demo secrets are the production ones", "demo-keys", "secrets/apiclient_key.pem is not a file of the repository",
			func(p *composeProject) {
				replaceFile(p, composeDemoEnv, "\nSECRETS_DIR=./deploy/demo/keys", "\nSECRETS_DIR=./secrets")
			}},
		{"demo secrets are other keys", "demo-keys", "the merchant private key does not match deploy/demo/keys/apiclient_pub.pem",
			func(p *composeProject) {
				key, err := rsa.GenerateKey(rand.Reader, 2048)
				if err != nil {
					t.Fatal(err)
				}
				der, _ := x509.MarshalPKCS8PrivateKey(key)
				pubDER, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
				priv := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
				pub := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}))
				p.overlay["deploy/other/apiclient_key.pem"], p.overlay["deploy/other/pub_key.pem"] = &priv, &pub
				replaceFile(p, composeDemoEnv, "\nSECRETS_DIR=./deploy/demo/keys", "\nSECRETS_DIR=./deploy/other")
			}},
		{"key file not mounted into paysim", "demo-keys", "/keys/keys.json is not mounted from a file of the repository",
			func(p *composeProject) {
				s := svc(p, "paysim")
				s.Volumes = slices.DeleteFunc(s.Volumes, func(m composeMount) bool { return strings.Contains(m.Raw, "keys.json") })
			}},
		{"paysim key directory read-only", "demo-keys", "-keys /keys is not a tmpfs",
			func(p *composeProject) { svc(p, "paysim").Tmpfs = composeStrings{"/tmp"} }},
		{"paysim key directory root's", "demo-keys", "is not writable by the image's user 65532:65532",
			func(p *composeProject) { svc(p, "paysim").Tmpfs = composeStrings{"/tmp", "/keys:mode=0755"} }},
		{"demo key unlabelled", "demo-keys", `apiclient_key.pem does not start with "PUBLIC DEMO KEY"`,
			func(p *composeProject) {
				replaceFile(p, "deploy/demo/keys/apiclient_key.pem", composeDemoLabel, "DEMO KEY")
			}},
		{"paysim in no profile", "demo-paysim", "paysim: profiles []; want [demo]",
			func(p *composeProject) { svc(p, "paysim").Profiles = nil }},
		{"api only in the demo", "demo-paysim", "api: profiles [demo]: production services run without a profile",
			func(p *composeProject) { svc(p, "api").Profiles = []string{"demo"} }},
		{"production mounts the demo keys", "demo-paysim", "worker mounts ./deploy/demo/keys",
			func(p *composeProject) {
				svc(p, "worker").Volumes = append(svc(p, "worker").Volumes, composeMount{Raw: "./deploy/demo/keys:/keys:ro"})
			}},
		{"paysim another image", "demo-paysim", `paysim: image "ordersaga:demo", but api runs "ordersaga:local"`,
			func(p *composeProject) { svc(p, "paysim").Image = "ordersaga:demo" }},
		{"paysim control API on all interfaces", "demo-paysim", "beyond loopback",
			func(p *composeProject) { svc(p, "paysim").Ports = []composePort{{Raw: "${PAYSIM_PORT:-8091}:8091"}} }},
		{"paysim other appid", "demo-paysim", `-appid is "wx0000000000other"`,
			func(p *composeProject) { setPaysimFlag(p, "-appid=", "-appid=wx0000000000other") }},
		{"paysim default mchid", "demo-paysim", `-mchid is "1900000001", but api (demo) has WECHATPAY_MCHID="1900000109"`,
			func(p *composeProject) { setPaysimFlag(p, "-mchid=", "") }},
		{"paysim other AppSecret", "demo-paysim", "-secret is \"other-secret\"",
			func(p *composeProject) { svc(p, "paysim").Environment["WECHAT_APP_SECRET"] = "other-secret" }},
		{"paysim suggests another notify URL", "demo-paysim", "-notify-url is \"http://127.0.0.1:8080/v1/wechatpay/notify\"",
			func(p *composeProject) { setPaysimFlag(p, "-notify-url=", "") }},
		{"paysim flag misspelt", "demo-paysim", "-notify is not a flag of ordersaga paysim",
			func(p *composeProject) {
				setPaysimFlag(p, "-notify-url=", "-notify=http://api:8080/v1/wechatpay/notify")
			}},
		{"paysim publishes another port", "ports", "paysim: publishes container port 8092, but paysim -addr listens on 8091",
			func(p *composeProject) { svc(p, "paysim").Ports = []composePort{{Raw: "127.0.0.1:8091:8092"}} }},
		{"paysim health check elsewhere", "ports", "does not reach paysim -addr port 8091",
			func(p *composeProject) { svc(p, "paysim").Healthcheck.Test[4] = "http://127.0.0.1:8080/healthz" }},
		{"paysim without health check", "healthchecks", "paysim: no health check",
			func(p *composeProject) { svc(p, "paysim").Healthcheck = nil }},
		{"paysim service missing", "services", "service paysim is missing",
			func(p *composeProject) { delete(p.file.Services, "paysim") }},
		{"paysim service runs the api", "commands", `service paysim runs "api"`,
			func(p *composeProject) { svc(p, "paysim").Command = composeStrings{"api"} }},
		{"production secrets default to the demo keys", "secrets", "is not under ./secrets/",
			func(p *composeProject) {
				p.file.Secrets["wechatpay_public_key"] = composeSecret{File: "${SECRETS_DIR:-./deploy/demo/keys}/pub_key.pem"}
			}},
		{"undocumented demo variable", "env-example", "PAYSIM_PORT (read by docker-compose.yml) is not documented",
			func(p *composeProject) { replaceFile(p, composeEnvExample, "# PAYSIM_PORT=", "# PAYSIM=") }},
	}
	checks := map[string]composeCheck{}
	for _, c := range composeChecks {
		checks[c.name] = c
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, ok := checks[tt.check]
			if !ok {
				t.Fatalf("no check %q", tt.check)
			}
			p := loadComposeProject(t)
			if problems := c.run(p); len(problems) > 0 {
				t.Fatalf("check %s fails before the mutation: %v", c.name, problems)
			}
			tt.mutate(p)
			problems := c.run(p)
			for _, pr := range problems {
				if strings.Contains(pr, tt.want) {
					return
				}
			}
			t.Fatalf("check %s did not report %q; it reported %q", c.name, tt.want, problems)
		})
	}
}

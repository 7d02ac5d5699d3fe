package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"go.temporal.io/server/common/headers"
)

// The official Temporal server and its SQL schema tool, from the module the
// project pins (go.mod's tool directive).
const (
	ServerPackage  = "go.temporal.io/server/cmd/server"
	SQLToolPackage = "go.temporal.io/server/cmd/tools/sql"
	serverModule   = "go.temporal.io/server"
)

// TemporalBinUsage is the help of the -temporal-bin flag of cluster, chaos
// and bench. The backquoted word is what flag.PrintDefaults shows as the
// flag's argument ("-temporal-bin dir").
const TemporalBinUsage = "`dir`ectory holding temporal-server and temporal-sql-tool (default: built by the go command, go tool -n, from go.mod's tool directive)"

// Tools are the paths of the two binaries.
type Tools struct {
	Server  string // temporal-server
	SQLTool string // temporal-sql-tool
}

// FindTools returns the Temporal server and schema tool: from dir when
// given (temporal-server and temporal-sql-tool, built beforehand with
// `go build -o DIR/temporal-server go.temporal.io/server/cmd/server` and
// likewise cmd/tools/sql), else built by the go command from this module's
// tool directive (`go tool -n`, which builds into Go's cache once and then
// answers in seconds). Either way the binaries must be the version this
// program was built against.
func FindTools(ctx context.Context, dir string) (Tools, error) {
	var t Tools
	if dir != "" {
		t = Tools{Server: filepath.Join(dir, "temporal-server"), SQLTool: filepath.Join(dir, "temporal-sql-tool")}
		for _, p := range []string{t.Server, t.SQLTool} {
			if st, err := os.Stat(p); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
				return Tools{}, fmt.Errorf("cluster: %s is not an executable (build it with `go build -o %s %s`)", p, p, pkgOf(p))
			}
		}
	} else {
		var err error
		if t.Server, err = goTool(ctx, ServerPackage); err != nil {
			return Tools{}, err
		}
		if t.SQLTool, err = goTool(ctx, SQLToolPackage); err != nil {
			return Tools{}, err
		}
	}
	want := strings.TrimPrefix(PinnedServerVersion(), "v")
	for _, p := range []string{t.Server, t.SQLTool} {
		out, err := exec.CommandContext(ctx, p, "--version").CombinedOutput()
		if err != nil {
			return Tools{}, fmt.Errorf("cluster: %s --version: %w\n%s", p, err, out)
		}
		// "temporal version 1.32.1", "temporal-sql-tool version 1.32.1"
		if !strings.HasSuffix(strings.TrimSpace(string(out)), " "+want) {
			return Tools{}, fmt.Errorf("cluster: %s is %q, but this program pins %s %s", p, strings.TrimSpace(string(out)), serverModule, PinnedServerVersion())
		}
	}
	return t, nil
}

func pkgOf(path string) string {
	if filepath.Base(path) == "temporal-sql-tool" {
		return SQLToolPackage
	}
	return ServerPackage
}

// goTool builds a tool of go.mod's tool directive (or finds it in the build
// cache) and returns its path.
func goTool(ctx context.Context, pkg string) (string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", errors.New("cluster: the go command is not installed: build the Temporal server and schema tool elsewhere and pass their directory (-temporal-bin)")
	}
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, goBin, "tool", "-n", pkg)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("cluster: `go tool -n %s` failed — run from the ordersaga module (its go.mod names the tool), or pass -temporal-bin: %w\n%s", pkg, err, stderr.Bytes())
	}
	path := strings.TrimSpace(string(out))
	if path == "" {
		return "", fmt.Errorf("cluster: `go tool -n %s` printed no path", pkg)
	}
	return path, nil
}

// PinnedServerVersion is the version of go.temporal.io/server this program
// is built with ("v1.32.1"): the module's own constant, so that it holds in
// test binaries too, which carry no module list.
func PinnedServerVersion() string { return "v" + headers.ServerVersion }

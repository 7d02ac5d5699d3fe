package testenv

import (
	"context"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Walkthrough runs the README's curl walk-through — the shell block between
// "<!-- walkthrough" and "<!-- /walkthrough -->" — with bash, as a reader
// would paste it, after setting the variables in vars (each must be set by
// the block: API=, SIM=, …) to this test's values. It returns the output and
// the order number step 3 printed; a failing command fails the test.
func Walkthrough(t testing.TB, readme string, vars map[string]string) (out, orderNo string) {
	t.Helper()
	if _, err := exec.LookPath("curl"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("curl is not installed: the README walk-through cannot run")
		}
		t.Skip("curl not installed")
	}
	data, err := os.ReadFile(readme)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)<!-- walkthrough[^>]*-->\\s*```sh\\n(.*?)```\\s*<!-- /walkthrough -->").FindSubmatch(data)
	if m == nil {
		t.Fatal("README.md has no walk-through block (<!-- walkthrough --> ```sh … ``` <!-- /walkthrough -->)")
	}
	script := string(m[1])
	for name, value := range vars {
		re := regexp.MustCompile("(?m)^" + regexp.QuoteMeta(name) + "=.*$")
		if !re.MatchString(script) {
			t.Fatalf("the walk-through does not set %s=", name)
		}
		script = re.ReplaceAllLiteralString(script, name+"="+value)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	b, err := exec.CommandContext(ctx, "bash", "-e", "-o", "pipefail", "-c", script).CombinedOutput()
	out = string(b)
	t.Logf("walk-through output:\n%s", out)
	if err != nil {
		t.Fatalf("walk-through failed: %v", err)
	}
	no := regexp.MustCompile(`(?m)^order (\S+)$`).FindStringSubmatch(out)
	if no == nil {
		t.Fatal(`step 3 printed no "order <order_no>"`)
	}
	return out, no[1]
}

// WalkthroughPromises checks that the walk-through's output shows what its
// comments promise, step by step.
func WalkthroughPromises(t testing.TB, out, orderNo string) {
	t.Helper()
	for _, want := range []string{
		`"products":[{"id":`,                    // 2
		`"paySign":"`,                           // 4
		`"trade_state": "SUCCESS"`,              // 5
		`"status":"PAID"`,                       // 6
		`"wechat_synced":true`,                  // 6
		`"status":"REFUND`,                      // 7
		`"payments":[{"transaction_id":"`,       // 8
		`"state":{"order_no":"` + orderNo + `"`, // 8
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the walk-through's output lacks %s", want)
		}
	}
}

package api_test

import (
	"context"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"ordersaga/internal/store"
	"ordersaga/internal/testenv"
	"ordersaga/workflows"
)

// walkthrough is the README's curl walk-through: the shell block between
// "<!-- walkthrough" and "<!-- /walkthrough -->".
func walkthrough(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)<!-- walkthrough[^>]*-->\\s*```sh\\n(.*?)```\\s*<!-- /walkthrough -->").FindSubmatch(data)
	if m == nil {
		t.Fatal("README.md has no walk-through block (<!-- walkthrough --> ```sh … ``` <!-- /walkthrough -->)")
	}
	return string(m[1])
}

// The README's walk-through, run as written by bash and curl against the
// real stack (only the addresses and the admin token are this test's): a new
// user following it gets what its comments promise.
func TestREADMEWalkthroughWorks(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl not installed")
	}
	script := walkthrough(t)
	env := testenv.New(t, temporalServer, testenv.Options{})
	ps := env.Seed(store.Product{Name: "Oolong", PriceFen: 1280, Stock: 5})

	for _, v := range []struct{ name, value string }{
		{"API", env.URL}, {"SIM", env.SimURL}, {"ADMIN", env.Config.AdminToken},
	} {
		re := regexp.MustCompile("(?m)^" + v.name + "=.*$")
		if !re.MatchString(script) {
			t.Fatalf("the walk-through does not set %s=", v.name)
		}
		script = re.ReplaceAllLiteralString(script, v.name+"="+v.value)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-e", "-o", "pipefail", "-c", script)
	out, err := cmd.CombinedOutput()
	t.Logf("walk-through output:\n%s", out)
	if err != nil {
		t.Fatalf("walk-through failed: %v", err)
	}
	text := string(out)

	orderNo := regexp.MustCompile(`(?m)^order (\S+)$`).FindStringSubmatch(text)
	if orderNo == nil {
		t.Fatal(`step 3 printed no "order <order_no>"`)
	}
	no := orderNo[1]
	historyOnFailure(t, env, workflows.WorkflowID(no))
	for _, want := range []string{
		`"products":[{"id":`,               // 2
		`"paySign":"`,                      // 4
		`"trade_state": "SUCCESS"`,         // 5
		`"wechat_synced":true`,             // 6
		`"status":"REFUND`,                 // 7
		`"payments":[{"transaction_id":"`,  // 8
		`"state":{"order_no":"` + no + `"`, // 8
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the walk-through's output lacks %s", want)
		}
	}
	if !strings.Contains(text, `"status":"PAID"`) {
		t.Errorf(`step 6 did not show "status":"PAID"`)
	}
	waitStatus(t, env, no, store.StatusRefunded)
	waitStock(t, env, ps[0].ID, 5)
}

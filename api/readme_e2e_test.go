package api_test

import (
	"testing"

	"ordersaga/internal/status"
	"ordersaga/internal/store"
	"ordersaga/internal/testenv"
	"ordersaga/workflows"
)

// The README's walk-through, run as written by bash and curl against the
// real stack (only the addresses and the admin token are this test's): a new
// user following it gets what its comments promise. (internal/demo runs it
// against `ordersaga dev` itself, with dev's admin token as written.)
func TestREADMEWalkthroughWorks(t *testing.T) {
	env := testenv.New(t, temporalServer, testenv.Options{})
	ps := env.Seed(store.Product{Name: "Oolong", PriceFen: 1280, Stock: 5})
	text, no := testenv.Walkthrough(t, "../README.md", map[string]string{
		"API": env.URL, "SIM": env.SimURL, "ADMIN": env.Config.AdminToken,
	})
	historyOnFailure(t, env, workflows.WorkflowID(no))
	testenv.WalkthroughPromises(t, text, no)
	waitStatus(t, env, no, status.Refunded)
	waitStock(t, env, ps[0].ID, 5)
}

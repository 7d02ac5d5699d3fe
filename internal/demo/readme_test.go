package demo_test

import (
	"testing"

	"ordersaga/internal/testenv"
)

// The README's curl walk-through against `ordersaga dev` itself (app.RunDev
// on free ports): what a new user pastes after `go run . dev` works, with
// dev's admin token and demo products as the README gives them. Only the
// addresses are this test's (the README's are dev's default ports).
func TestREADMEWalkthroughWorksAgainstDev(t *testing.T) {
	dev := startDev(t)
	out, no := testenv.Walkthrough(t, "../../README.md", map[string]string{"API": dev.API, "SIM": dev.Sim})
	testenv.WalkthroughPromises(t, out, no)
}

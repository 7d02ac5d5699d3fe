// Package cluster runs, on one machine and without containers, the
// production shape docker-compose.yml describes: the official Temporal
// server of the pinned module (go.mod's tool directive) as separate
// processes — frontend, history ×N, matching, worker service — on
// PostgreSQL, configured from the environment compose gives the
// temporalio/server image, their schemas set up by the official schema
// tool, membership through the database; and, for `ordersaga cluster`
// (StartStack, RunCommand), the Web UI, the WeChat Pay simulator, migrate,
// and replicas of `ordersaga api` behind a round-robin Balancer and of
// `ordersaga worker`, configured only through the README's variables.
//
// StartTemporal alone is what `ordersaga chaos -temporal cluster` and
// `ordersaga bench -temporal cluster` run their stacks on; Temporal's
// Service handles let the chaos run kill and restart its processes.
package cluster

// Package deploy carries the files of deploy/ that the local cluster
// (internal/cluster, `ordersaga cluster`) uses exactly as docker-compose.yml
// mounts them, so that the two cannot drift apart.
package deploy

import _ "embed"

// TemporalDynamicConfig is temporal/dynamicconfig.yaml: the Temporal
// server's dynamic config (DYNAMIC_CONFIG_FILE_PATH).
//
//go:embed temporal/dynamicconfig.yaml
var TemporalDynamicConfig []byte

#!/bin/sh
# One-shot job (temporalio/admin-tools image), run once the Temporal frontend
# accepts connections: wait until the cluster is healthy, create the namespace
# if it does not exist, and register the custom search attributes the order
# workflows upsert (OrderNo, OrderStatus, OrderUserID, OrderAmountFen,
# OrderRefundedFen).
# Idempotent: an existing namespace or search attribute is left as it is.
#
# Environment:
#   TEMPORAL_ADDRESS     frontend host:port (required)
#   TEMPORAL_NAMESPACE   namespace to create (default "default")
#   NAMESPACE_RETENTION  retention of closed workflow histories (default 720h)
#   SEARCH_ATTRIBUTES    space-separated Name=Type pairs, e.g. "OrderNo=Keyword"
set -eu

: "${TEMPORAL_ADDRESS:?TEMPORAL_ADDRESS is not set}"
: "${TEMPORAL_NAMESPACE:=default}"
: "${NAMESPACE_RETENTION:=720h}"
: "${SEARCH_ATTRIBUTES:=}"

log() { echo "temporal-setup: $*"; }

# retry TRIES COMMAND...: run COMMAND until it succeeds, 2s apart.
retry() {
	tries=$1
	shift
	n=1
	until "$@"; do
		if [ "$n" -ge "$tries" ]; then
			log "gave up after $tries tries: $*" >&2
			return 1
		fi
		n=$((n + 1))
		sleep 2
	done
}

cluster_healthy() {
	temporal operator cluster health --address "$TEMPORAL_ADDRESS" >/dev/null 2>&1
}

namespace_exists() {
	temporal operator namespace describe --address "$TEMPORAL_ADDRESS" \
		--namespace "$TEMPORAL_NAMESPACE" >/dev/null 2>&1
}

ensure_namespace() {
	namespace_exists || temporal operator namespace create --address "$TEMPORAL_ADDRESS" \
		--namespace "$TEMPORAL_NAMESPACE" --retention "$NAMESPACE_RETENTION"
}

# A namespace is visible to the other services only after their namespace
# cache refreshes (about 10s), so the first attempts may fail: retried.
add_search_attributes() {
	set --
	for pair in $SEARCH_ATTRIBUTES; do
		set -- "$@" --name "${pair%%=*}" --type "${pair#*=}"
	done
	[ "$#" -eq 0 ] && return 0
	temporal operator search-attribute create --address "$TEMPORAL_ADDRESS" \
		--namespace "$TEMPORAL_NAMESPACE" "$@"
}

search_attributes_listed() {
	listed=$(temporal operator search-attribute list --address "$TEMPORAL_ADDRESS" \
		--namespace "$TEMPORAL_NAMESPACE") || return 1
	for pair in $SEARCH_ATTRIBUTES; do
		printf '%s\n' "$listed" | grep -qw "${pair%%=*}" || return 1
	done
}

log "waiting for the Temporal cluster at $TEMPORAL_ADDRESS"
retry 90 cluster_healthy
log "ensuring namespace $TEMPORAL_NAMESPACE (retention $NAMESPACE_RETENTION)"
retry 30 ensure_namespace
log "registering search attributes: $SEARCH_ATTRIBUTES"
retry 30 add_search_attributes
retry 30 search_attributes_listed
log "done"

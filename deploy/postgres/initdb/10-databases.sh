#!/bin/sh
# Runs once, when the postgres volume is first initialised
# (/docker-entrypoint-initdb.d). It creates:
#   - role ordersaga and database ordersaga (the shop; DATABASE_URL),
#   - role temporal and databases temporal + temporal_visibility (Temporal's
#     persistence and visibility stores; the temporal-schema job fills them).
# Passwords come from the container environment (see docker-compose.yml). To
# change one later, ALTER ROLE by hand: this script never runs again on an
# existing volume.
#
# No `set -u`: the image's entrypoint sources (rather than runs) a script that
# is not executable, and the option would leak into it.
set -e

: "${ORDERSAGA_DB_PASSWORD:?ORDERSAGA_DB_PASSWORD is not set}"
: "${TEMPORAL_DB_PASSWORD:?TEMPORAL_DB_PASSWORD is not set}"

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "${POSTGRES_DB:-$POSTGRES_USER}" \
	--set=shop_password="$ORDERSAGA_DB_PASSWORD" \
	--set=temporal_password="$TEMPORAL_DB_PASSWORD" <<'SQL'
CREATE ROLE ordersaga LOGIN PASSWORD :'shop_password';
CREATE DATABASE ordersaga OWNER ordersaga;

CREATE ROLE temporal LOGIN PASSWORD :'temporal_password';
CREATE DATABASE temporal OWNER temporal;
CREATE DATABASE temporal_visibility OWNER temporal;

-- Temporal's visibility schema wants btree_gin; create it as the superuser so
-- the temporal role needs no extra privilege.
\connect temporal_visibility
CREATE EXTENSION IF NOT EXISTS btree_gin;
SQL

#!/bin/sh
# One-shot job (temporalio/admin-tools image): bring Temporal's two PostgreSQL
# databases, created by deploy/postgres/initdb, to the schema this server
# version needs. Safe to re-run on every `docker compose up`: setup-schema
# keeps an existing version and update-schema applies only what is missing.
#
# temporal-sql-tool reads SQL_PLUGIN, SQL_HOST, SQL_PORT, SQL_USER and
# SQL_PASSWORD from the environment, so the password is not on a command line.
set -eu

: "${SQL_PLUGIN:?SQL_PLUGIN is not set (postgres12)}"
: "${SQL_HOST:?SQL_HOST is not set}"
: "${SQL_USER:?SQL_USER is not set}"
: "${SQL_PASSWORD:?SQL_PASSWORD is not set}"
: "${DBNAME:=temporal}"
: "${VISIBILITY_DBNAME:=temporal_visibility}"

schema_dir=/etc/temporal/schema/postgresql/v12

migrate() { # migrate DATABASE VERSIONED_DIR
	echo "temporal-schema: $1"
	temporal-sql-tool --db "$1" setup-schema -v 0.0
	temporal-sql-tool --db "$1" update-schema -d "$2"
}

migrate "$DBNAME" "$schema_dir/temporal/versioned"
migrate "$VISIBILITY_DBNAME" "$schema_dir/visibility/versioned"
echo "temporal-schema: done"

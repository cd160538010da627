#!/bin/sh
# Creates grafana_reader, the read-only login of Grafana's PostgreSQL data
# source: SELECT on every table, now and later (the service creates tables and
# daily partitions through its migrations, as POSTGRES_USER).
# The postgres image runs this once, when it initialises an empty volume. For
# a database created before this script existed, run it once by hand:
#   docker-compose exec postgres sh /docker-entrypoint-initdb.d/grafana-reader.sh
set -eu
psql -v ON_ERROR_STOP=1 -v password="$GRAFANA_DB_PASSWORD" -v owner="$POSTGRES_USER" -v db="$POSTGRES_DB" \
  --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<'SQL'
SELECT format('CREATE ROLE grafana_reader LOGIN PASSWORD %L', :'password')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'grafana_reader') \gexec
ALTER ROLE grafana_reader LOGIN PASSWORD :'password';
-- A dashboard query never needs long; a runaway one must not load the database.
ALTER ROLE grafana_reader SET statement_timeout = '30s';
GRANT CONNECT ON DATABASE :"db" TO grafana_reader;
GRANT USAGE ON SCHEMA public TO grafana_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO grafana_reader;
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public GRANT SELECT ON TABLES TO grafana_reader;
SQL

#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the test run (the collector's second engine, docs/operations.md
# "PostgreSQL and replicas"). `scripts/pg.sh start` creates and starts cluster `loa-test` of
# Debian's newest installed PostgreSQL on 127.0.0.1:${LOA_TEST_PG_PORT:-54329}, with a role that may
# create databases, and prints `export LOA_TEST_PG_URL=…` for the tests (each test creates its own
# database through it); `scripts/pg.sh stop` stops the cluster and drops it with its data.
#
# The cluster runs as Debian's `postgres` user (the server refuses to run as root). It is tuned for
# tests, not for data: fsync is off, because it is dropped after the run.
set -euo pipefail
port=${LOA_TEST_PG_PORT:-54329}
cluster=loa-test
sudo_=""; [ "$(id -u)" -eq 0 ] || sudo_="sudo"
version=$(ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -1)
[ -n "$version" ] || { echo "pg: PostgreSQL is not installed (scripts/deps.sh test installs it)" >&2; exit 1; }
as_postgres() { $sudo_ runuser -u postgres -- "$@"; }
case "${1:-}" in
  start)
    if ! pg_lsclusters -h | awk '{print $1" "$2}' | grep -qx "$version $cluster"; then
      $sudo_ pg_createcluster "$version" "$cluster" --port "$port" \
        -o fsync=off \
        -o full_page_writes=off -o max_connections=400 -o shared_buffers=128MB >/dev/null
    fi
    $sudo_ pg_ctlcluster "$version" "$cluster" start >/dev/null 2>&1 || true
    for _ in $(seq 1 50); do
      as_postgres pg_isready -q -h 127.0.0.1 -p "$port" && break
      sleep 0.2
    done
    as_postgres pg_isready -q -h 127.0.0.1 -p "$port" || {
      echo "pg: cluster $version/$cluster did not start; see /var/log/postgresql/postgresql-$version-$cluster.log" >&2
      exit 1
    }
    as_postgres psql -q -h 127.0.0.1 -p "$port" -d postgres -v ON_ERROR_STOP=1 -c "
      DO \$\$ BEGIN
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'loa_test') THEN
          CREATE ROLE loa_test LOGIN CREATEDB PASSWORD 'loa_test';
        END IF;
      END \$\$;" >/dev/null 2>&1 || as_postgres psql -q -p "$port" -d postgres -v ON_ERROR_STOP=1 -c "
      DO \$\$ BEGIN
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'loa_test') THEN
          CREATE ROLE loa_test LOGIN CREATEDB PASSWORD 'loa_test';
        END IF;
      END \$\$;" >/dev/null
    echo "export LOA_TEST_PG_URL=postgres://loa_test:loa_test@127.0.0.1:$port/postgres"
    ;;
  stop)
    $sudo_ pg_dropcluster --stop "$version" "$cluster" 2>/dev/null || true
    ;;
  *)
    echo "usage: scripts/pg.sh start|stop" >&2
    exit 2
    ;;
esac

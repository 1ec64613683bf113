# Start and stop a throwaway PostgreSQL cluster on 127.0.0.1 for tests.
# Usage: source .ci/postgres.sh; start_postgres; ...; stop_postgres
# Exports REVPLAN_TEST_POSTGRES_URL. initdb refuses to run as root, so the
# cluster runs as the `postgres` user that the Debian package creates.

start_postgres() {
  if ! ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
  PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  PGDIR=$(mktemp -d)
  chown postgres "$PGDIR"
  PGPORT=${PGPORT:-55432}
  su postgres -c "$PGBIN/initdb -D $PGDIR/data -A trust -U postgres >/dev/null"
  su postgres -c "$PGBIN/pg_ctl -D $PGDIR/data -o '-c listen_addresses=127.0.0.1 -p $PGPORT -k $PGDIR' -l $PGDIR/log -w start >/dev/null"
  export REVPLAN_TEST_POSTGRES_URL="postgresql://postgres@127.0.0.1:$PGPORT/postgres"
  export PGBIN PGDIR
  echo "PostgreSQL running at $REVPLAN_TEST_POSTGRES_URL"
}

stop_postgres() {
  [ -n "${PGDIR:-}" ] && su postgres -c "$PGBIN/pg_ctl -D $PGDIR/data -m fast stop >/dev/null" || true
}

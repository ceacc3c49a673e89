# Shared by the bench/*.sh load runs that start PostgreSQL (queue.sh, webhooks.sh): small
# helpers and a throwaway PostgreSQL cluster on loopback. Source it after setting
#   py (python3), rep (the script's report helper, for `emit skipped`), work (temp dir),
#   results (the results file).
# It defines: free_port, skip, last_line, commas, have, start_postgres, stop_postgres.

free_port() { "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
skip() {
  echo "   skipped: $1: $2"
  "$py" "$rep" emit skipped "name=$1" "why=$2" >>"$results"
}
last_line() { grep -v '^\s*$' "$1" 2>/dev/null | tail -1 | cut -c1-200 || true; }
commas() { echo "$1" | sed -E ':a; s/([0-9])([0-9]{3})($|,)/\1,\2\3/; ta'; }
have() { command -v "$1" >/dev/null 2>&1; }

pgdata= pgbin= pport= pg_ok=0
as_pg=()
[ "$(id -u)" = 0 ] && as_pg=(runuser -u postgres --)
pgbench_bin=$(command -v pgbench || echo /usr/bin/pgbench)
psql_() { psql -h 127.0.0.1 -p "$pport" -U postgres -X -q -v ON_ERROR_STOP=1 "$@" postgres; }

# start_postgres SCHEMA_SQL: a durable (fsync=on, synchronous_commit=on) cluster under
# $work/pg on a free loopback port, with SCHEMA_SQL applied. Sets pg_ok=1 on success;
# otherwise says why through `skip` and leaves pg_ok=0.
start_postgres() {
  local schema=$1 d
  for d in "$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/x)")" \
    $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -rV); do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then pgbin=$d; break; fi
  done
  if [ -z "$pgbin" ]; then
    skip "PostgreSQL" "no initdb/pg_ctl on PATH or under /usr/lib/postgresql/*/bin"
    return
  fi
  if [ ! -x "$pgbench_bin" ] || ! have psql; then
    skip "PostgreSQL" "no pgbench or psql (apt-get install postgresql-client)"
    return
  fi
  if [ ${#as_pg[@]} -gt 0 ] && ! id postgres >/dev/null 2>&1; then
    skip "PostgreSQL" "running as root and there is no 'postgres' user for initdb"
    return
  fi
  local pgrun="$work/pg"
  pgdata="$pgrun/data"
  mkdir -p "$pgrun"
  [ ${#as_pg[@]} -gt 0 ] && chown postgres "$pgrun"
  pport=$(free_port)
  if ! "${as_pg[@]}" "$pgbin/initdb" -D "$pgdata" -A trust -U postgres -N >"$work/initdb.log" 2>&1; then
    skip "PostgreSQL" "initdb failed: $(last_line "$work/initdb.log")"
    pgdata=
    return
  fi
  if ! "${as_pg[@]}" "$pgbin/pg_ctl" -D "$pgdata" -l "$pgrun/pg.log" -w -t 60 -o \
    "-p $pport -k $pgrun -c listen_addresses=127.0.0.1 -c max_connections=100 -c fsync=on -c synchronous_commit=on" \
    start >"$work/pg_ctl.log" 2>&1; then
    skip "PostgreSQL" "pg_ctl start failed: $(last_line "$pgrun/pg.log")"
    return
  fi
  if ! psql_ -f "$schema" >"$work/schema.log" 2>&1; then
    skip "PostgreSQL" "schema failed: $(last_line "$work/schema.log")"
    return
  fi
  pg_ok=1
  echo "-- PostgreSQL $(psql_ -tAc 'SHOW server_version' | cut -d' ' -f1) on 127.0.0.1:$pport" \
    "(fsync=$(psql_ -tAc 'SHOW fsync'), synchronous_commit=$(psql_ -tAc 'SHOW synchronous_commit'))"
}

# Stops the cluster at once (from the scripts' EXIT traps).
stop_postgres() {
  if [ -n "$pgdata" ] && [ -f "$pgdata/postmaster.pid" ]; then
    "${as_pg[@]}" "$pgbin/pg_ctl" -D "$pgdata" -m immediate stop >/dev/null 2>&1 || true
  fi
}

#!/usr/bin/env bash
# bench/ids.sh BUILD_DIR — the ids service beside its peers, in one run, on loopback:
#   evo   GET /v1/ids (one ID per request) and GET /v1/ids?count=1000, wrk, 64 connections
#   Redis INCR (the ticket-server approach), redis-benchmark, 64 connections
#   PostgreSQL SELECT nextval(...) (a sequence), pgbench, 64 connections
# Prints each rate and the ratios. Absolute numbers drift on a shared 2-core machine; the
# ratios measured in the same run are what to quote. ROUNDS (default 3) interleaved rounds of
# DURATION seconds (default 5) each; the report gives medians.
set -euo pipefail
build_dir=${1:-build}
evo_bin=$(realpath "$build_dir/evo")
duration=${DURATION:-5}
conns=64
work=$(mktemp -d /tmp/evo-bench-ids.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  if [ -n "${pgdata:-}" ] && [ -d "$pgdata" ]; then
    runuser -u postgres -- "$pgbin/pg_ctl" -D "$pgdata" -m immediate stop >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wrk_rps() { awk '/Requests\/sec/ {print $2}'; }
wrk_p99() { awk '/ 99%/ {print $2}'; }

echo "== ids: evo vs Redis INCR vs PostgreSQL nextval (${conns} connections, ${DURATION:-5}s per run)"

# --- start evo, Redis and PostgreSQL once ---------------------------------------------------
port=$(free_port)
"$evo_bin" serve --listen "127.0.0.1:$port" --data-dir "$work/evo" --access-log=false \
  --log-format text >"$work/evo.log" 2>&1 &
evo_pid=$!
pids+=("$evo_pid")
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
sleep 1
rss_kib=$(awk '/VmRSS/ {print $2}' "/proc/$evo_pid/status")
workers=1  # one evo process holds one worker id

rport=$(free_port)
redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
  --dir "$work" >"$work/redis.log" 2>&1 &
pids+=("$!")
for _ in $(seq 50); do redis-cli -p "$rport" ping >/dev/null 2>&1 && break; sleep 0.1; done

pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
have_pg=0
if [ -n "$pgbin" ] && [ -x "$pgbin/initdb" ] && id postgres >/dev/null 2>&1; then
  pgdata="$work/pg"
  mkdir -p "$pgdata" && chown postgres "$work" "$pgdata"
  pport=$(free_port)
  runuser -u postgres -- "$pgbin/initdb" -D "$pgdata" -A trust -U postgres >/dev/null
  runuser -u postgres -- "$pgbin/pg_ctl" -D "$pgdata" -l "$work/pg.log" \
    -o "-p $pport -k $work -c listen_addresses=127.0.0.1 -c max_connections=100" \
    -w start >/dev/null
  psql -h 127.0.0.1 -p "$pport" -U postgres -qc "CREATE SEQUENCE ids" >/dev/null
  echo "SELECT nextval('ids');" >"$work/nextval.sql"
  have_pg=1
fi

# --- interleaved rounds: each round measures every contender once -----------------------------
rounds=${ROUNDS:-3}
: >"$work/results.txt"
for round in $(seq "$rounds"); do
  wrk -t2 -c$conns -d"${duration}s" --latency "http://127.0.0.1:$port/v1/ids" >"$work/wrk1.txt"
  echo "evo_single $(wrk_rps <"$work/wrk1.txt")" >>"$work/results.txt"
  echo "evo_single_p99 $(wrk_p99 <"$work/wrk1.txt")" >>"$work/results.txt"
  wrk -t2 -c$conns -d"${duration}s" "http://127.0.0.1:$port/v1/ids?count=1000" >"$work/wrk1000.txt"
  echo "evo_batch $(wrk_rps <"$work/wrk1000.txt")" >>"$work/results.txt"
  redis_n=$((120000 * duration))
  echo "redis $(redis-benchmark -p "$rport" -t incr -c $conns -n "$redis_n" -q 2>/dev/null |
    tr '\r' '\n' | awk '/INCR:/ {print $2}' | tail -1)" >>"$work/results.txt"
  if [ $have_pg = 1 ]; then
    echo "pg $(pgbench -h 127.0.0.1 -p "$pport" -U postgres -n -c $conns -j 2 -T "$duration" \
      -f "$work/nextval.sql" postgres 2>/dev/null | awk '/^tps/ {print $3}' | head -1)" >>"$work/results.txt"
  fi
  echo "   round $round/$rounds done"
done

# --- report (medians over the rounds) -------------------------------------------------------
limit=$((4096000 * workers))
python3 - "$work/results.txt" "$limit" "$rss_kib" "$rounds" <<'EOF'
import statistics, sys
from collections import defaultdict
path, limit, rss, rounds = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
vals = defaultdict(list)
for line in open(path):
    parts = line.split()
    if len(parts) == 2:
        vals[parts[0]].append(parts[1])
def med(key):
    xs = [float(v) for v in vals.get(key, []) if v.replace(".", "", 1).isdigit()]
    return statistics.median(xs) if xs else 0.0
single, batch_rps, redis, pg = med("evo_single"), med("evo_batch"), med("redis"), med("pg")
p99s = ", ".join(vals.get("evo_single_p99", []))
batch_ids = batch_rps * 1000
print(f"medians of {rounds} interleaved rounds")
print(f"evo GET /v1/ids (1 ID/request)     {single:12,.0f} req/s   (p99 per round: {p99s})")
print(f"evo GET /v1/ids?count=1000        {batch_rps:12,.0f} req/s = {batch_ids:,.0f} IDs/s")
print(f"Redis INCR (redis-benchmark)       {redis:12,.0f} req/s")
print(f"PostgreSQL nextval (pgbench)       {pg:12,.0f} tps")
print(f"ratio evo single / Redis INCR      {single / redis:12.2f}   (target >= 1.2)" if redis else "ratio vs Redis: n/a")
print(f"ratio evo single / PG nextval      {single / pg:12.2f}" if pg else "ratio vs PostgreSQL: n/a")
print(f"ratio evo batch IDs/s / layout     {batch_ids / limit:12.2f}   (limit {limit:,.0f}/s, target >= 0.9)")
print(f"evo idle RSS                       {rss / 1024:12.1f} MiB (target <= 30)")
EOF

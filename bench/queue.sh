#!/usr/bin/env bash
# bench/queue.sh [BUILD_DIR] — evo's durable queue beside a PostgreSQL queue, in one run, on
# loopback:
#   in-process  BUILD_DIR/bench/queue_benchmark BM_EnqueueLeaseAck (enqueue -> lease -> ack,
#               batch 1 and 100, 1 and 8 threads; durable group commits), run inside BUILD_DIR
#               (its SQLite file goes in the working directory); medians of 3 repetitions
#   evo HTTP    enqueue -> lease -> ack per message (bench/queue.lua), wrk -t2 -c64
#   PostgreSQL  the same three steps on a FOR UPDATE SKIP LOCKED table (bench/queue_pg.sql,
#               bench/queue_pgbench.sql), pgbench -c64 -j2, a throwaway cluster with fsync and
#               synchronous_commit on (durable, like evo)
#   backlog     BACKLOG (default 1,000,000) messages of ~100 bytes enqueued over HTTP in batches
#               of 1000 into a fresh evo; its RSS; then kill -9, restart on the same data dir and
#               time exec -> first lease served; the depth before and after
# Targets: evo HTTP msg/s >= 2 x PostgreSQL msg/s in the same run; in-process >= 100,000 msg/s
# with batches of 100; RSS <= 100 MiB with 1,000,000 queued; restart -> serving <= 2 s.
# DURATION (default 15) seconds per HTTP/pgbench run, ROUNDS (default 1) interleaved rounds
# (the report gives medians). Each part prints "skipped: ..." when its tool, binary or route is
# missing. Parsing, the loader, the restart timer and the report: bench/queue_report.py.
set -euo pipefail
build_dir=${1:-build}
here=$(cd "$(dirname "$0")" && pwd)
build_abs=$(realpath -m "$build_dir")
evo_bin="$build_abs/evo"
bench_bin="$build_abs/bench/queue_benchmark"
py=${PYTHON:-/usr/bin/python3}
rep="$here/queue_report.py"
lua="$here/queue.lua"
duration=${DURATION:-15}
rounds=${ROUNDS:-1}
conns=64
backlog=${BACKLOG:-1000000}
work=$(mktemp -d /tmp/evo-bench-queue.XXXXXX)
chmod 711 "$work"  # the postgres user reaches its own directory below
results="$work/results.jsonl"
pids=()
bench_pid=
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  stop_postgres
  # queue_benchmark leaves its data dir (evo-queue-bench-PID) in the working directory
  [ -n "$bench_pid" ] && rm -rf "$build_abs/evo-queue-bench-$bench_pid"
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ -x "$py" ] || py=python3
# shellcheck source=bench/lib.sh
. "$here/lib.sh"
emit() { "$py" "$rep" emit "$@" >>"$results"; }
subcommands() { "$1" --help 2>/dev/null | sed -n '/^Subcommands:/,/^$/p'; }
now() { date +%s.%N; }
# http METHOD URL [BODY] -> the status code; the body in $work/http.txt
http() {
  local args=(-s -o "$work/http.txt" -w '%{http_code}' --max-time 30 -X "$1" "$2")
  [ $# -ge 3 ] && args+=(-H 'content-type: application/json' -d "$3")
  curl "${args[@]}" 2>/dev/null || echo 000
}
body() { head -c "${1:-200}" "$work/http.txt" 2>/dev/null || true; }

echo "== queue: evo (in-process; HTTP enqueue -> lease -> ack, wrk -c$conns) vs PostgreSQL" \
  "FOR UPDATE SKIP LOCKED (pgbench -c$conns); $(commas "$backlog") backlog, RSS, restart"
: >"$results"

# --- 1. in-process -----------------------------------------------------------------------------
echo "-- in-process: queue_benchmark BM_EnqueueLeaseAck (3 repetitions, min time 1 s)"
if [ ! -x "$bench_bin" ]; then
  skip "in-process" "no $build_dir/bench/queue_benchmark (build it: ninja -C $build_dir queue_benchmark)"
else
  rc=0
  (cd "$build_abs" && exec "$bench_bin" --benchmark_filter='BM_EnqueueLeaseAck' \
    --benchmark_min_time=1 --benchmark_repetitions=3 --benchmark_report_aggregates_only=true \
    --benchmark_out="$work/gbench.json" --benchmark_out_format=json) \
    >"$work/gbench.txt" 2>&1 &
  bench_pid=$!
  wait "$bench_pid" || rc=$?
  rm -rf "$build_abs/evo-queue-bench-$bench_pid"
  grep -E '_median' "$work/gbench.txt" | sed 's/^/   /' || true
  if [ $rc != 0 ] || ! "$py" "$rep" gbench --json "$work/gbench.json" >>"$results" 2>"$work/gbench.err"; then
    skip "in-process" "queue_benchmark exit $rc: $(last_line "$work/gbench.txt")$(last_line "$work/gbench.err")"
  fi
fi

# --- 2. PostgreSQL: a throwaway cluster on loopback ---------------------------------------------
pg_ok=0
start_postgres "$here/queue_pg.sql"

# --- 3. evo serve ------------------------------------------------------------------------------
evo_pid=
evo_ok=0
# start_evo DATA_DIR LOG: starts evo on $port, sets evo_pid
start_evo() {
  "$evo_bin" serve --listen "127.0.0.1:$port" --data-dir "$1" --access-log=false \
    --log-format text >>"$2" 2>&1 &
  evo_pid=$!
  pids+=("$evo_pid")
}
wait_ready() {
  for _ in $(seq 150); do
    curl -sf "$base/readyz" >/dev/null 2>&1 && return 0
    kill -0 "$evo_pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}
stop_evo() {  # SIGTERM (drain), then wait
  [ -n "$evo_pid" ] || return 0
  kill "$evo_pid" 2>/dev/null || true
  wait "$evo_pid" 2>/dev/null || true
  evo_pid=
}
alive() { [ -n "$evo_pid" ] && kill -0 "$evo_pid" 2>/dev/null; }
record_rss() {  # PHASE
  local rss hwm
  rss=$(awk '/^VmRSS/ {print $2}' "/proc/$evo_pid/status" 2>/dev/null || true)
  hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$evo_pid/status" 2>/dev/null || true)
  [ -n "$rss" ] && emit rss "phase=$1" "kib=$rss" "hwm_kib=${hwm:-0}"
  echo "   evo RSS ($1): VmRSS $(awk -v k="${rss:-0}" 'BEGIN {printf "%.1f", k / 1024}') MiB," \
    "VmHWM $(awk -v k="${hwm:-0}" 'BEGIN {printf "%.1f", k / 1024}') MiB"
}

if ! have wrk; then
  skip "evo HTTP" "no wrk (apt-get install wrk)"
elif [ ! -x "$evo_bin" ]; then
  skip "evo HTTP" "no $build_dir/evo"
elif ! subcommands "$evo_bin" | grep -qE '^\s+serve\b'; then
  skip "evo HTTP" "evo has no 'serve' subcommand"
else
  port=$(free_port)
  base="http://127.0.0.1:$port"
  q="$base/v1/queues/bench"
  start_evo "$work/evo" "$work/evo.log"
  if ! wait_ready; then
    skip "evo HTTP" "evo serve not ready after 15 s: $(last_line "$work/evo.log")"
  else
    # one message through the three steps, to check the routes before loading them
    c1=$(http PUT "$q" '{}')
    if [ "${c1:0:1}" != 2 ]; then
      skip "evo HTTP" "PUT /v1/queues/bench answered $c1: $(body)"
    else
      c2=$(http POST "$q/messages" '{"payload":{"n":0,"text":"probe"}}')
      b2=$(body 120)
      c3=$(http POST "$q/leases" '{"max":1,"visibilitySeconds":30}')
      b3=$(body 300)
      lease_id=$(sed -nE 's/.*"leaseId"[[:space:]]*:[[:space:]]*"([^"]+)".*/\1/p' "$work/http.txt")
      c4=000
      [ -n "$lease_id" ] && c4=$(http POST "$q/leases/$lease_id:ack")
      echo "   probe: PUT queue $c1; enqueue $c2 $b2; lease $c3 (leaseId ${lease_id:-none}); ack $c4"
      if [ "$c2" != 201 ] || [ "$c3" != 200 ] || [ -z "$lease_id" ] || [ "$c4" != 204 ]; then
        skip "evo HTTP" "enqueue/lease/ack answered $c2/$c3/$c4: $b3"
      else
        evo_ok=1
      fi
    fi
  fi
fi

# --- 4. interleaved rounds: evo over HTTP, then PostgreSQL ---------------------------------------
if [ $evo_ok = 1 ] || [ $pg_ok = 1 ]; then
  echo "-- HTTP enqueue -> lease -> ack: ${rounds} round(s) of ${duration}s, evo (wrk -t2 -c$conns" \
    "--latency, bench/queue.lua) then PostgreSQL (pgbench -c$conns -j2, bench/queue_pgbench.sql)"
fi
for round in $(seq "$rounds"); do
  line=""
  if [ $evo_ok = 1 ]; then
    out="$work/wrk_$round.txt"
    wrk -t2 -c$conns -d"${duration}s" --latency -s "$lua" "$q" >"$out" 2>&1 || true
    "$py" "$rep" wrk --round "$round" "$out" >>"$results"
    line="evo $(awk '/Requests\/sec/ {printf "%.0f", $2}' "$out") req/s, p99 $(awk '/ 99%/ {print $2}' "$out")"
    if ! grep -q '^queue.lua:' "$out"; then
      echo "   WARNING: bench/queue.lua printed no counters: $(last_line "$out")"
    fi
    if ! alive; then
      skip "evo HTTP" "evo exited during the run: $(last_line "$work/evo.log")"
      evo_ok=0
    fi
  fi
  if [ $pg_ok = 1 ]; then
    out="$work/pgbench_$round.txt"
    psql_ -c 'TRUNCATE jobs' >/dev/null
    sleep 0.5
    del0=$(psql_ -tAc "SELECT n_tup_del FROM pg_stat_user_tables WHERE relname = 'jobs'")
    "$pgbench_bin" -h 127.0.0.1 -p "$pport" -U postgres -n -c $conns -j 2 -T "$duration" -r \
      -f "$here/queue_pgbench.sql" postgres >"$out" 2>&1 || true
    # the backends flush their table statistics as they exit
    sleep 1.5
    del1=$(psql_ -tAc "SELECT n_tup_del FROM pg_stat_user_tables WHERE relname = 'jobs'")
    "$py" "$rep" pgbench --round "$round" --deletes $((del1 - del0)) "$out" >>"$results"
    line="${line:+$line; }PostgreSQL $(awk '/^tps/ {printf "%.0f", $3}' "$out") scripts/s, $((del1 - del0)) acked"
    grep -qE '^tps' "$out" || echo "   WARNING: pgbench printed no tps: $(last_line "$out")"
  fi
  [ -n "$line" ] && echo "   round $round/$rounds: $line"
done
if [ $evo_ok = 1 ]; then
  record_rss "after HTTP runs"
  c=$(http GET "$q")
  echo "   GET /v1/queues/bench: $c $(body 300)"
fi
stop_evo
# PostgreSQL is done: free its memory and cores for the backlog
if [ -n "$pgdata" ] && [ -f "$pgdata/postmaster.pid" ]; then
  "${as_pg[@]}" "$pgbin/pg_ctl" -D "$pgdata" -m fast stop >/dev/null 2>&1 || true
fi

# --- 5. backlog: enqueue, RSS, kill -9, restart --------------------------------------------------
if [ $evo_ok = 1 ]; then
  echo "-- backlog: $(commas "$backlog") messages (~100-byte JSON) in batches of 1000 (4 senders)" \
    "into a fresh evo; RSS; kill -9; restart -> first lease"
  bdir="$work/evo-backlog"
  start_evo "$bdir" "$work/evo-backlog.log"
  if ! wait_ready; then
    skip "backlog" "evo serve not ready after 15 s: $(last_line "$work/evo-backlog.log")"
  elif c=$(http PUT "$q" '{}') && [ "${c:0:1}" != 2 ]; then
    skip "backlog" "PUT /v1/queues/bench answered $c: $(body)"
  else
    "$py" "$rep" load "$base" bench "$backlog" --batch 1000 --senders 4 --payload-bytes 100 \
      >"$work/load.json" 2>"$work/load.err" || true
    cat "$work/load.json" >>"$results"
    "$py" - "$work/load.json" <<'EOF' || echo "   load failed: $(last_line "$work/load.err")"
import json, sys
r = json.load(open(sys.argv[1]))
print(f"   loaded {r['sent']:,} of {r['target']:,} in {r['seconds']} s ({r['rate']:,.0f} msg/s;"
      f" a batch of {r['batch']} p50 {r['batch_p50_ms']:.0f} ms, max {r['batch_max_ms']:.0f} ms);"
      f" errors {r['errors']} {r['first_error']}")
EOF
    if ! alive; then
      skip "backlog" "evo exited during the load: $(last_line "$work/evo-backlog.log")"
    else
      loaded=$(grep -oE '"sent": [0-9]+' "$work/load.json" | grep -oE '[0-9]+' || echo 0)
      c=$(http GET "$q")
      cp "$work/http.txt" "$work/stats_loaded.json"
      if read -r depth ready inflight < <("$py" "$rep" stats "$work/stats_loaded.json"); then
        emit depth phase=loaded "depth=$depth" "want=$loaded" leased=0
        echo "   GET /v1/queues/bench: depth $(commas "$depth"), ready $(commas "$ready"), inFlight $inflight"
      else
        echo "   GET /v1/queues/bench answered $c: $(body)"
      fi
      sleep 1
      record_rss loaded
      du_before=$(du -sh "$bdir" 2>/dev/null | cut -f1)
      kill -9 "$evo_pid"
      wait "$evo_pid" 2>/dev/null || true
      echo "   kill -9; data dir $du_before: $(ls "$bdir" | tr '\n' ' ')"
      t0=$(now)
      start_evo "$bdir" "$work/evo-restart.log"
      "$py" "$rep" first-lease "$base" bench "$t0" --timeout 60 >"$work/restart.json" || true
      cat "$work/restart.json" >>"$results"
      "$py" - "$work/restart.json" <<'EOF' || true
import json, sys
r = json.load(open(sys.argv[1]))
f = lambda x: "never" if x is None else f"{x:.3f} s"
print(f"   restart: /readyz 200 after {f(r['ready_s'])}, first lease after {f(r['lease_s'])}"
      f" ({r['attempts']} lease attempts; last answer {r['last'][:120]})")
EOF
      if alive; then
        c=$(http GET "$q")
        cp "$work/http.txt" "$work/stats_restarted.json"
        if read -r depth ready inflight < <("$py" "$rep" stats "$work/stats_restarted.json"); then
          emit depth phase=restarted "depth=$depth" "want=$loaded" leased=1
          echo "   GET /v1/queues/bench after restart: depth $(commas "$depth"), ready" \
            "$(commas "$ready"), inFlight $inflight"
        else
          echo "   GET /v1/queues/bench after restart answered $c: $(body)"
        fi
        record_rss restarted
      else
        skip "restart" "evo exited after the restart: $(last_line "$work/evo-restart.log")"
      fi
    fi
  fi
  stop_evo
fi

# --- evo's warnings and errors, if any ----------------------------------------------------------
for f in "$work"/evo*.log; do
  [ -f "$f" ] || continue
  n=$(grep -ciE '\b(warn|warning|error|critical)\b' "$f" || true)
  if [ "${n:-0}" -gt 0 ]; then
    echo "   $(basename "$f"): $n warning/error lines, e.g.:"
    grep -iE '\b(warn|warning|error|critical)\b' "$f" | sed -E 's/^[0-9T:.-]+Z? +//' | sort |
      uniq -c | sort -rn | head -3 |
      cut -c1-220 | sed 's/^/     /'
  fi
done

# --- report --------------------------------------------------------------------------------------
"$py" "$rep" report "$results"

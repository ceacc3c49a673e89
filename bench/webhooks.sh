#!/usr/bin/env bash
# bench/webhooks.sh [BUILD_DIR] — evo's webhook server (src/webhooks) beside its peers, in one
# run, on loopback. Receivers are `evo webhooks listen --quiet` processes that verify every
# signature (each endpoint is created with one whsec_ secret the script generates, and
# "verify": false); every evo below is a fresh `evo serve --modules webhooks
# --webhooks-allow-cidr 127.0.0.1/32` on a fresh data dir.
#
# The issue's targets first (the headline rows of the summary); bodies are BODY_BYTES (1024)
# bytes as evo delivers them ({"type","timestamp","data"} around a padded payload):
#   T1. R_raw      the listener's own capacity: wrk -t2 -c$RAW_CONNS (100) for DURATION s,
#                  pre-signed 1 KiB deliveries straight at `evo webhooks listen`
#   T2. D          D_EVENTS (200) events x D_ENDPOINTS (1000) endpoints (each on its own path
#                  /ep0.. of one listener, which counts distinct webhook-ids per path),
#                  published over 32 connections at once, so delivering is the bottleneck;
#                  D = deliveries/s between 10 % and 90 % delivered (GET /stats every 0.25 s);
#                  target D >= 0.35 x R_raw
#   T3. latency    open loop: events published at a fixed LAT_RATE deliveries/s (default D/2)
#                  for LAT_SECONDS (20) s to each endpoint count in LAT_ENDPOINTS ("1000 10"),
#                  the receiver is `evo webhooks listen`, which times each delivery's and each
#                  message's first arrival against the body's "timestamp" (when evo accepted
#                  the event; GET /latency); target p99 <= 20 ms
#   T4. isolation  D's load to D_ENDPOINTS healthy endpoints alone, then beside one endpoint
#                  whose listener answers after ISO_SLOW_MS (30000) ms and one answering 500
#                  (each on its own listener process); ISO_ROUNDS (1) pairs; target: the healthy
#                  endpoints' deliveries/s (10 %-90 %) at most 5 % lower
#   T5. RSS        RSS_EVENTS (100,000) events x RSS_ENDPOINTS (10) endpoints whose listener
#                  answers 503 with Retry-After: 3600, so every delivery stays queued; evo's
#                  VmRSS / VmHWM once the fan-out is done; target VmRSS <= 256 MiB
# Then the earlier parts:
#   1. publish     wrk -t2 -c64 POST /v1/messages (bench/webhooks.lua, 203-byte payload) ->
#                  202 once durable, with 1 and with 10 endpoints subscribed (evo fans out and
#                  delivers while it accepts); peer: a PostgreSQL transactional outbox (the
#                  message row + one delivery row per endpoint in one transaction,
#                  bench/webhooks_pg.sql, bench/webhooks_pgbench.sql), pgbench -c64 -j2, a
#                  throwaway cluster with fsync and synchronous_commit on
#   2. delivery    EVENTS (default 8,000) events to 10 endpoints, published over 32
#                  connections; time from the first publish until the listener has a distinct
#                  delivery of every event on every path; duplicates and bad signatures; peer:
#                  the listener's own capacity, wrk -t2 -c100 (10 endpoints x maxConcurrency
#                  10, what evo opens) with pre-signed deliveries straight at it
#   3. isolation   EVENTS events to 8 healthy endpoints alone, then beside one endpoint whose
#                  receiver answers after 2 s (--delay-ms 2000) and one that answers 500;
#                  target: the healthy 8 take at most 20 % longer
#   4. rate limit  RATE_EVENTS (1000) events to one endpoint with rateLimitPerSecond
#                  RATE_LIMIT (50); the receiving rate from /stats sampled every 0.5 s, between
#                  10 % and 90 % delivered; target within ±5 % of the limit
#   5. RSS         evo's VmRSS and VmHWM at the end of each run
# PARTS (default all) picks parts, comma-separated: raw,d,latency,iso30,rss (or "targets" for
# the five), publish,delivery,isolation,rate (or "legacy"). DURATION (default 10) seconds per
# wrk/pgbench run; DELIVER_TIMEOUT (120) s per delivery wait. Each part prints "skipped: ..."
# when its tool or binary is missing. The loaders, the watcher, the parsers and the report:
# bench/webhooks_report.py and bench/webhooks_targets.py.
set -euo pipefail
build_dir=${1:-build}
here=$(cd "$(dirname "$0")" && pwd)
build_abs=$(realpath -m "$build_dir")
evo_bin="$build_abs/evo"
py=${PYTHON:-/usr/bin/python3}
rep="$here/webhooks_report.py"
tgt="$here/webhooks_targets.py"
lua="$here/webhooks.lua"
duration=${DURATION:-10}
events=${EVENTS:-8000}
rate_events=${RATE_EVENTS:-1000}
rate_limit=${RATE_LIMIT:-50}
deliver_timeout=${DELIVER_TIMEOUT:-120}
body_bytes=${BODY_BYTES:-1024}
raw_conns=${RAW_CONNS:-100}
d_events=${D_EVENTS:-200}
d_endpoints=${D_ENDPOINTS:-1000}
lat_rate=${LAT_RATE:-}
lat_seconds=${LAT_SECONDS:-20}
lat_endpoints=${LAT_ENDPOINTS:-1000 10}
iso_slow_ms=${ISO_SLOW_MS:-30000}
iso_rounds=${ISO_ROUNDS:-1}
rss_events=${RSS_EVENTS:-100000}
rss_endpoints=${RSS_ENDPOINTS:-10}
rss_timeout=${RSS_TIMEOUT:-300}
parts=",${PARTS:-all},"
parts=${parts//,targets,/,raw,d,latency,iso30,rss,}
parts=${parts//,legacy,/,publish,delivery,isolation,rate,}
want() { [[ "$parts" == *,all,* || "$parts" == *",$1,"* ]]; }
conns=64
etype=bench.event
work=$(mktemp -d /tmp/evo-bench-webhooks.XXXXXX)
chmod 711 "$work"  # the postgres user reaches its own directory below
results="$work/results.jsonl"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  stop_postgres
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ -x "$py" ] || py=python3
# shellcheck source=bench/lib.sh
. "$here/lib.sh"
emit() { "$py" "$rep" emit "$@" >>"$results"; }
subcommands() { "$1" "${@:2}" --help 2>/dev/null | sed -n '/^Subcommands:/,/^$/p'; }

echo "== webhooks: the issue's targets (R_raw; D = $(commas "$d_events") events x" \
  "$(commas "$d_endpoints") endpoints; publish -> first attempt at D/2; isolation from a" \
  "$((iso_slow_ms / 1000)) s and a 500 endpoint; RSS with $(commas $((rss_events * rss_endpoints)))" \
  "deliveries queued), then evo publish (wrk -c$conns) vs a PostgreSQL outbox (pgbench" \
  "-c$conns); delivery of $(commas "$events") events x 10 endpoints vs the receiver's capacity;" \
  "isolation; rate limit; RSS"
[ "$parts" = ",all," ] || echo "   PARTS=${PARTS:-all}"
: >"$results"

# --- preconditions --------------------------------------------------------------------------
evo_ok=1
if [ ! -x "$evo_bin" ]; then
  skip "evo" "no $build_dir/evo (build it: ninja -C $build_dir evo)"
  evo_ok=0
elif ! subcommands "$evo_bin" | grep -qE '^\s+serve\b'; then
  skip "evo" "evo has no 'serve' subcommand"
  evo_ok=0
elif ! subcommands "$evo_bin" webhooks | grep -qE '^\s+listen\b'; then
  skip "evo" "evo has no 'webhooks listen' subcommand (the receiver every part needs)"
  evo_ok=0
fi
wrk_ok=1
have wrk || { skip "publish and listener capacity" "no wrk (apt-get install wrk)"; wrk_ok=0; }
secret=$("$py" "$rep" secret)

# --- processes --------------------------------------------------------------------------------
# start_listener LOG [ARGS...]: an `evo webhooks listen --quiet --secret $secret` on a free
# port; sets lport and lpid
lport= lpid=
start_listener() {
  local log=$1
  shift
  lport=$(free_port)
  "$evo_bin" webhooks listen --port "$lport" --quiet --secret "$secret" "$@" >>"$log" 2>&1 &
  lpid=$!
  pids+=("$lpid")
  for _ in $(seq 100); do
    curl -sf --max-time 2 "http://127.0.0.1:$lport/stats" >/dev/null 2>&1 && return 0
    kill -0 "$lpid" 2>/dev/null || break
    sleep 0.1
  done
  echo "   listener did not start: $(last_line "$log")"
  return 1
}
stop_pid() {  # PID: SIGTERM, up to 10 s, then SIGKILL
  local p=$1
  [ -n "$p" ] || return 0
  kill "$p" 2>/dev/null || true
  for _ in $(seq 100); do
    kill -0 "$p" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
}
evo_pid= port= base=
# start_evo DATA_DIR LOG: a fresh evo serve on a free port; sets evo_pid, port, base
start_evo() {
  port=$(free_port)
  base="http://127.0.0.1:$port"
  "$evo_bin" serve --listen "127.0.0.1:$port" --data-dir "$1" --modules webhooks \
    --webhooks-allow-cidr 127.0.0.1/32 --access-log=false --log-format text >>"$2" 2>&1 &
  evo_pid=$!
  pids+=("$evo_pid")
  for _ in $(seq 150); do
    curl -sf --max-time 2 "$base/readyz" >/dev/null 2>&1 && return 0
    kill -0 "$evo_pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "   evo serve not ready after 15 s: $(last_line "$2")"
  return 1
}
stop_evo() { stop_pid "$evo_pid"; evo_pid=; }
alive() { [ -n "$evo_pid" ] && kill -0 "$evo_pid" 2>/dev/null; }
record_rss() {  # PHASE
  local rss hwm
  rss=$(awk '/^VmRSS/ {print $2}' "/proc/$evo_pid/status" 2>/dev/null || true)
  hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$evo_pid/status" 2>/dev/null || true)
  [ -n "$rss" ] && emit rss "phase=$1" "kib=$rss" "hwm_kib=${hwm:-0}"
  echo "   evo RSS ($1): VmRSS $(awk -v k="${rss:-0}" 'BEGIN {printf "%.1f", k / 1024}') MiB," \
    "VmHWM $(awk -v k="${hwm:-0}" 'BEGIN {printf "%.1f", k / 1024}') MiB"
}
# endpoint_urls PORT PREFIX N: http://127.0.0.1:PORT/PREFIX0 ... PREFIX(N-1)
endpoint_urls() { for i in $(seq 0 $(($3 - 1))); do echo "http://127.0.0.1:$1/$2$i"; done; }
paths_of() {  # PREFIX N: /PREFIX0,/PREFIX1,...
  local i out=
  for ((i = 0; i < $2; i++)); do out+="${out:+,}/$1$i"; done
  printf '%s' "$out"
}
# setup URL...: the event type and the endpoints on $base; prints their ids
setup() { "$py" "$rep" setup "$base" "$etype" "$secret" "$@" 2>&1; }
# deliver TAG N PATHS [ARGS]: publish N events and wait for them at $lport's PATHS
deliver() {
  local tag=$1 n=$2 paths=$3
  shift 3
  "$py" "$rep" deliver "$base" "http://127.0.0.1:$lport" "$n" --paths "$paths" --tag "$tag" \
    --timeout "$deliver_timeout" "$@" >"$work/$tag.json" 2>"$work/$tag.err" || true
  if grep -q '"kind": "deliver"' "$work/$tag.json"; then
    cat "$work/$tag.json" >>"$results"
    "$py" - "$work/$tag.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
f = lambda x: "never" if x is None else f"{x:.2f} s"
n = r["want_per_path"] * len(r["paths"])
fin = r.get("final") or {}
got = r["samples"][-1][1] if r["samples"] else 0
print(f"   published {r['accepted']:,}/{r['events']:,} in {f(r['publish_s'])}"
      f" ({r['publish_errors']} errors{': ' + r['first_error'] if r['first_error'] else ''});"
      f" {got:,}/{n:,} delivered, all after {f(r['all_done_s'])}"
      f"{' = %s/s' % format(round(n / r['all_done_s']), ',') if r['all_done_s'] else ''};"
      f" duplicates {fin.get('duplicates')}, bad signatures {fin.get('badSignatures')}"
      f"{'; ' + r['watch_error'] if r['all_done_s'] is None and r['watch_error'] else ''}")
EOF
  else
    skip "$tag" "the loader failed: $(last_line "$work/$tag.err")"
  fi
}

# field KIND TAG KEY: a number from this run's records, rounded (nothing when absent)
field() {
  "$py" - "$results" "$@" <<'EOF'
import json, sys
path, kind, tag, key = sys.argv[1:5]
v = None
for line in open(path):
    if line.startswith("{"):
        r = json.loads(line)
        if r.get("kind") == kind and r.get("tag") == tag and isinstance(r.get(key), (int, float)):
            v = r[key]
print(f"{v:.0f}" if v else "", end="")
EOF
}
steady_of() { "$py" "$rep" steady "$work/$1.json" 2>/dev/null || true; }
# --- T1. R_raw: the listener's capacity for 1 KiB signed bodies -------------------------------
raw_rps=
if want raw && [ $evo_ok = 1 ] && [ $wrk_ok = 1 ]; then
  echo "-- T1. R_raw: wrk -t2 -c$raw_conns ${duration}s, pre-signed $body_bytes-byte deliveries" \
    "straight at evo webhooks listen"
  emit info name=raw "conns=$raw_conns" "bytes=$body_bytes"
  if start_listener "$work/listen-raw.log"; then
    "$py" "$rep" presign "$secret" "$work/signed-raw.tsv" 5000 /raw --bytes "$body_bytes"
    out="$work/wrk_raw.txt"
    WH_SIGNED="$work/signed-raw.tsv" wrk -t2 -c"$raw_conns" -d"${duration}s" --latency -s "$lua" \
      "http://127.0.0.1:$lport" >"$out" 2>&1 || true
    "$py" "$rep" wrk --tag raw "$out" >>"$results"
    raw_rps=$(field wrk raw ok_per_s)
    echo "   R_raw: $(commas "${raw_rps:-0}") deliveries/s answered 2xx, p99" \
      "$(awk '/ 99%/ {print $2}' "$out"); $(grep '^webhooks.lua:' "$out" | cut -c15- || true)"
  else
    skip "R_raw" "the listener did not start"
  fi
  stop_pid "$lpid"
fi

# --- T2. D: 1 KiB deliveries to 1,000 endpoints, durable ---------------------------------------
d_rate=
if want d && [ $evo_ok = 1 ]; then
  echo "-- T2. D: $(commas "$d_events") events x $(commas "$d_endpoints") endpoints" \
    "($(commas $((d_events * d_endpoints))) deliveries of $body_bytes bytes), published over 32" \
    "connections at once; deliveries/s between 10 % and 90 % delivered"
  if start_listener "$work/listen-d.log" && start_evo "$work/evo-d" "$work/evo-d.log"; then
    if ids=$(setup $(endpoint_urls "$lport" ep "$d_endpoints")); then
      echo "   $ids"
      deliver d "$d_events" "$(paths_of ep "$d_endpoints")" --bytes "$body_bytes" --interval 0.25
      d_rate=$(steady_of d)
      echo "   D = $(commas "${d_rate:--}") deliveries/s (10 %-90 %)$([ -n "$d_rate" ] &&
        [ -n "$raw_rps" ] && awk -v d="$d_rate" -v r="$raw_rps" \
        'BEGIN {printf "; D / R_raw = %.2f (target >= 0.35)", d / r}')"
      alive && record_rss d
    else
      skip "D" "setup failed: $ids"
    fi
  else
    skip "D" "evo or the listener did not start"
  fi
  stop_evo
  stop_pid "$lpid"
fi

# --- T3. publish -> first attempt at half of D, open loop ---------------------------------------
if want latency && [ $evo_ok = 1 ]; then
  if [ -n "$lat_rate" ]; then
    why="LAT_RATE"
  elif [ -n "$d_rate" ]; then
    lat_rate=$((d_rate / 2)) why="D / 2"
  else
    lat_rate=4000 why="no D measured: a fixed 4,000"
  fi
  echo "-- T3. publish -> first attempt: $(commas "$lat_rate") deliveries/s ($why) for" \
    "${lat_seconds}s, open loop, to $lat_endpoints endpoints; receiver" \
    "evo webhooks listen (GET /latency)"
  emit info name=latency "rate=$lat_rate" "why=$why"
  for k in $lat_endpoints; do
    tag="lat$k"
    if start_listener "$work/timing-$k.log" && start_evo "$work/evo-$tag" "$work/evo-$tag.log"; then
      if ids=$(setup $(endpoint_urls "$lport" ep "$k")); then
        "$py" "$tgt" latency "$base" "http://127.0.0.1:$lport" --endpoints "$k" \
          --rate "$lat_rate" --seconds "$lat_seconds" --bytes "$body_bytes" --tag "$tag" \
          --timeout "$deliver_timeout" >"$work/$tag.json" 2>"$work/$tag.err" || true
        if grep -q '"kind": "latency"' "$work/$tag.json"; then
          cat "$work/$tag.json" >>"$results"
          "$py" - "$work/$tag.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
lat = r.get("latency") or {}
d, m, f = lat.get("deliveries") or {}, lat.get("messages") or {}, r.get("final") or {}
late, pub, bb = r["late_ms"], r["publish_ms"], f.get("bodyBytes") or {}
print(f"   {r['endpoints']:,} endpoint(s): {r['accepted']:,}/{r['events']:,} events at"
    f" {r['events_per_s']:.1f}/s ({r['publish_errors']} errors"
    f"{': ' + r['first_error'] if r['first_error'] else ''}; sent late by p99"
    f" {late.get('p99')} ms; POST p99 {pub.get('p99')} ms); {f.get('distinct', 0):,}/"
    f"{r['want']:,} delivered, duplicates {f.get('duplicates')}, bad signatures"
    f" {f.get('badSignatures')}, bodies {bb.get('min')}-{bb.get('max')} B")
print(f"     publish -> first attempt, per delivery: p50 {d.get('p50')} ms, p99 {d.get('p99')}"
    f" ms, max {d.get('max')} ms; per message (its first endpoint): p50 {m.get('p50')} ms,"
    f" p99 {m.get('p99')} ms")
EOF
        else
          skip "$tag" "the loader failed: $(last_line "$work/$tag.err")"
        fi
        alive && record_rss "$tag"
      else
        skip "$tag" "setup failed: $ids"
      fi
    else
      skip "$tag" "evo or the listener did not start"
    fi
    stop_evo
    stop_pid "$lpid"
  done
fi

# --- T4. isolation: healthy endpoints beside one answering after 30 s and one answering 500 ----
if want iso30 && [ $evo_ok = 1 ]; then
  echo "-- T4. isolation: $(commas "$d_events") events x $(commas "$d_endpoints") healthy" \
    "endpoints alone, then beside one answering after $((iso_slow_ms / 1000)) s and one" \
    "answering 500 (each on its own listener; evo's request timeout is 15 s); $iso_rounds round(s)"
  emit info name=iso30 "slow_ms=$iso_slow_ms" "rounds=$iso_rounds"
  for round in $(seq "$iso_rounds"); do
    if start_listener "$work/listen-iso30-base$round.log" &&
      start_evo "$work/evo-iso30-base$round" "$work/evo-iso30-base$round.log"; then
      if ids=$(setup $(endpoint_urls "$lport" ep "$d_endpoints")); then
        echo "   round $round, alone:"
        deliver "iso30_base$round" "$d_events" "$(paths_of ep "$d_endpoints")" \
          --bytes "$body_bytes" --interval 0.25
        v=$(steady_of "iso30_base$round")
        echo "     healthy deliveries/s (10 %-90 %): $(commas "${v:--}")"
      else
        skip "iso30" "setup failed: $ids"
      fi
    else
      skip "iso30" "evo or the listener did not start"
    fi
    stop_evo
    stop_pid "$lpid"
    slow_port= fail_port= slow_pid= fail_pid=
    if start_listener "$work/listen-iso30-slow$round.log" --delay-ms "$iso_slow_ms"; then
      slow_port=$lport slow_pid=$lpid
    fi
    if start_listener "$work/listen-iso30-fail$round.log" --status 500; then
      fail_port=$lport fail_pid=$lpid
    fi
    if [ -n "$slow_port" ] && [ -n "$fail_port" ] &&
      start_listener "$work/listen-iso30-bad$round.log" &&
      start_evo "$work/evo-iso30-bad$round" "$work/evo-iso30-bad$round.log"; then
      if ids=$(setup "http://127.0.0.1:$slow_port/slow" "http://127.0.0.1:$fail_port/failing" \
        $(endpoint_urls "$lport" ep "$d_endpoints")); then
        echo "   round $round, beside slow + failing:"
        deliver "iso30_bad$round" "$d_events" "$(paths_of ep "$d_endpoints")" \
          --bytes "$body_bytes" --interval 0.25
        v=$(steady_of "iso30_bad$round")
        echo "     healthy deliveries/s (10 %-90 %): $(commas "${v:--}")"
        s=$(curl -s --max-time 5 "http://127.0.0.1:$fail_port/stats" | tr -d ' ' || true)
        echo "     failing endpoint's listener: ${s:-no answer within 5 s}"
        c=$(curl -s --max-time 10 "$base/metrics" | grep -E '^evo_webhooks_attempts_total' |
          tr '\n' ' ' || true)
        emit info "name=iso30_attempts$round" "attempts=${c:-none}"
        echo "     evo attempts: ${c:-none}"
        alive && record_rss "iso30_bad$round"
      else
        skip "iso30" "setup failed: $ids"
      fi
    else
      skip "iso30" "evo or a listener did not start"
    fi
    # the slow listener first, and at once: its handlers sleep for ISO_SLOW_MS, and evo's
    # requests to it end with the connections instead of holding evo's shutdown
    [ -n "$slow_pid" ] && { kill -9 "$slow_pid" 2>/dev/null || true; wait "$slow_pid" 2>/dev/null || true; }
    stop_evo
    stop_pid "$lpid"
    stop_pid "$fail_pid"
  done
fi

# --- T5. RSS with a million deliveries queued --------------------------------------------------
if want rss && [ $evo_ok = 1 ]; then
  echo "-- T5. RSS: $(commas "$rss_events") events x $rss_endpoints endpoints answering 503 +" \
    "Retry-After: 3600 ($(commas $((rss_events * rss_endpoints))) deliveries of $body_bytes bytes" \
    "queued), 64 publishing connections"
  if start_listener "$work/listen-rss.log" --status 503 --retry-after 3600 &&
    start_evo "$work/evo-rss" "$work/evo-rss.log"; then
    if ids=$(setup $(endpoint_urls "$lport" ep "$rss_endpoints")); then
      "$py" "$tgt" fill "$base" "$rss_events" --endpoints "$rss_endpoints" --bytes "$body_bytes" \
        --timeout "$rss_timeout" --tag rss >"$work/rss.json" 2>"$work/rss.err" || true
      if grep -q '"kind": "fill"' "$work/rss.json"; then
        cat "$work/rss.json" >>"$results"
        "$py" - "$work/rss.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
g = r.get("gauges") or {}
q = r.get("queued_s")
print(f"   published {r['accepted']:,}/{r['events']:,} in {r['publish_s']:.1f} s"
      f" ({r['accepted'] / max(r['publish_s'], 1e-9):,.0f}/s, {r['publish_errors']} errors"
      f"{': ' + r['first_error'] if r['first_error'] else ''}); endpoint queues hold"
      f" {g.get('depth', 0):,}/{r['want']:,} (ready {g.get('ready', 0):,}, delayed"
      f" {g.get('delayed', 0):,}, in flight {g.get('in_flight', 0):,}), fan-out left"
      f" {g.get('fanout', 0):,}; "
      + (f"all queued after {q:.1f} s" if q else
         "NOT all queued: " + (r["watch_error"] or "timeout")))
EOF
      else
        skip "rss" "the loader failed: $(last_line "$work/rss.err")"
      fi
      if alive; then
        record_rss queued
      else
        skip "rss" "evo exited: $(last_line "$work/evo-rss.log")"
      fi
    else
      skip "rss" "setup failed: $ids"
    fi
  else
    skip "rss" "evo or the listener did not start"
  fi
  stop_evo
  stop_pid "$lpid"
fi

# --- 1a. PostgreSQL: a throwaway cluster on loopback ------------------------------------------
pg_ok=0
if want publish; then
  start_postgres "$here/webhooks_pg.sql"
fi

# --- 1b. publish: evo with N endpoints, then the outbox with N endpoints -----------------------
if want publish && { [ $evo_ok = 1 ] && [ $wrk_ok = 1 ] || [ $pg_ok = 1 ]; }; then
  echo "-- publish: ${duration}s each, evo (wrk -t2 -c$conns --latency, bench/webhooks.lua) then" \
    "PostgreSQL (pgbench -c$conns -j2, bench/webhooks_pgbench.sql), 1 and 10 endpoints"
fi
for n in 1 10; do
  if want publish && [ $evo_ok = 1 ] && [ $wrk_ok = 1 ]; then
    log="$work/evo-publish$n.log"
    if start_listener "$work/listen-publish$n.log" && start_evo "$work/evo-publish$n" "$log"; then
      if ! ids=$(setup $(endpoint_urls "$lport" ep "$n")); then
        skip "publish$n" "setup failed: $ids"
      else
        # one event through the whole path first: 202, then delivered to every endpoint
        c=$(curl -s -o "$work/http.txt" -w '%{http_code}' --max-time 10 -X POST \
          -H 'content-type: application/json' \
          -d "{\"eventType\":\"$etype\",\"payload\":{\"probe\":true}}" "$base/v1/messages" || echo 000)
        got=0
        for _ in $(seq 100); do
          got=$("$py" "$rep" get "http://127.0.0.1:$lport/stats" 2>/dev/null |
            "$py" -c 'import json,sys; print(json.load(sys.stdin)["distinct"])' 2>/dev/null || echo 0)
          [ "$got" -ge "$n" ] && break
          sleep 0.1
        done
        echo "   evo, $n endpoint(s) ($ids): probe publish $c $(head -c 80 "$work/http.txt"); delivered to $got/$n"
        if [ "$c" != 202 ]; then
          skip "publish$n" "POST /v1/messages answered $c: $(head -c 200 "$work/http.txt")"
        else
          out="$work/wrk_publish$n.txt"
          wrk -t2 -c$conns -d"${duration}s" --latency -s "$lua" "$base" >"$out" 2>&1 || true
          "$py" "$rep" wrk --tag "publish$n" "$out" >>"$results"
          grep -q '^webhooks.lua:' "$out" ||
            echo "   WARNING: bench/webhooks.lua printed no counters: $(last_line "$out")"
          delivered=$("$py" "$rep" get "http://127.0.0.1:$lport/stats" 2>/dev/null |
            "$py" -c 'import json,sys; print(json.load(sys.stdin)["distinct"])' 2>/dev/null || echo 0)
          delivered=$((delivered - got))
          emit info "name=publish$n" "delivered=$delivered"
          echo "   evo, $n endpoint(s): $(awk '/Requests\/sec/ {printf "%.0f", $2}' "$out") req/s," \
            "p99 $(awk '/ 99%/ {print $2}' "$out"); $(grep '^webhooks.lua:' "$out" | cut -c15- || true);" \
            "delivered meanwhile $(commas "$delivered")"
          if alive; then
            [ "$n" = 10 ] && record_rss publish10
          else
            skip "publish$n" "evo exited during the run: $(last_line "$log")"
          fi
        fi
      fi
    else
      skip "publish$n" "evo or the listener did not start"
    fi
    stop_evo
    stop_pid "$lpid"
  fi
  if [ $pg_ok = 1 ]; then
    out="$work/pgbench$n.txt"
    psql_ -c 'TRUNCATE outbox_deliveries, outbox_messages, endpoints RESTART IDENTITY' \
      -c "INSERT INTO endpoints (url, event_types, secret) SELECT 'https://hooks.example/ep' || i, \
          ARRAY['$etype'], '$secret' FROM generate_series(0, $((n - 1))) i" >/dev/null
    sleep 0.5
    "$pgbench_bin" -h 127.0.0.1 -p "$pport" -U postgres -n -c $conns -j 2 -T "$duration" \
      -f "$here/webhooks_pgbench.sql" postgres >"$out" 2>&1 || true
    "$py" "$rep" pgbench --tag "pg$n" "$out" >>"$results"
    msgs=$(psql_ -tAc 'SELECT count(*) FROM outbox_messages')
    dels=$(psql_ -tAc 'SELECT count(*) FROM outbox_deliveries')
    echo "   PostgreSQL outbox, $n endpoint(s): $(awk '/^tps/ {printf "%.0f", $3}' "$out") tx/s;" \
      "$(commas "$msgs") messages, $(commas "$dels") delivery rows"
    grep -qE '^tps' "$out" || echo "   WARNING: pgbench printed no tps: $(last_line "$out")"
  fi
done
# PostgreSQL is done: free its memory and cores for the delivery runs
if [ -n "$pgdata" ] && [ -f "$pgdata/postmaster.pid" ]; then
  "${as_pg[@]}" "$pgbin/pg_ctl" -D "$pgdata" -m fast stop >/dev/null 2>&1 || true
fi

# --- 2. delivery throughput, beside the listener's own capacity --------------------------------
if want delivery && [ $evo_ok = 1 ]; then
  echo "-- delivery: the listener's capacity (wrk -t2 -c100 ${duration}s, pre-signed), then" \
    "$(commas "$events") events x 10 endpoints through evo"
  if [ $wrk_ok = 1 ]; then
    if start_listener "$work/listen-capacity.log"; then
      "$py" "$rep" presign "$secret" "$work/signed.tsv" 5000 /cap
      out="$work/wrk_listener.txt"
      WH_SIGNED="$work/signed.tsv" wrk -t2 -c100 -d"${duration}s" --latency -s "$lua" \
        "http://127.0.0.1:$lport" >"$out" 2>&1 || true
      "$py" "$rep" wrk --tag listener "$out" >>"$results"
      echo "   listener: $(awk '/Requests\/sec/ {printf "%.0f", $2}' "$out") req/s, p99" \
        "$(awk '/ 99%/ {print $2}' "$out"); $(grep '^webhooks.lua:' "$out" | cut -c15- || true)"
      c=$("$py" "$rep" get "http://127.0.0.1:$lport/stats" 2>/dev/null | cut -c1-200 || true)
      echo "   listener /stats: $c"
    else
      skip "listener capacity" "the listener did not start"
    fi
    stop_pid "$lpid"
  fi
  if start_listener "$work/listen-deliver.log" && start_evo "$work/evo-deliver" "$work/evo-deliver.log"; then
    if ids=$(setup $(endpoint_urls "$lport" ep 10)); then
      deliver deliver "$events" "$(paths_of ep 10)"
      alive && record_rss deliver
    else
      skip "delivery" "setup failed: $ids"
    fi
  else
    skip "delivery" "evo or the listener did not start"
  fi
  stop_evo
  stop_pid "$lpid"
fi

# --- 3. isolation: 8 healthy endpoints alone, then beside a slow and a failing one -------------
if want isolation && [ $evo_ok = 1 ]; then
  echo "-- isolation: $(commas "$events") events x 8 healthy endpoints alone, then beside one" \
    "answering after 2 s and one answering 500"
  if start_listener "$work/listen-iso-base.log" && start_evo "$work/evo-iso-base" "$work/evo-iso-base.log"; then
    if ids=$(setup $(endpoint_urls "$lport" ep 8)); then
      echo "   alone:"
      deliver iso_base "$events" "$(paths_of ep 8)"
    else
      skip "isolation" "setup failed: $ids"
    fi
  fi
  stop_evo
  stop_pid "$lpid"
  slow_port= fail_port= slow_pid= fail_pid=
  if start_listener "$work/listen-iso-slow.log" --delay-ms 2000; then
    slow_port=$lport slow_pid=$lpid
  fi
  if start_listener "$work/listen-iso-fail.log" --status 500; then
    fail_port=$lport fail_pid=$lpid
  fi
  if [ -n "$slow_port" ] && [ -n "$fail_port" ] && start_listener "$work/listen-iso-bad.log" &&
    start_evo "$work/evo-iso-bad" "$work/evo-iso-bad.log"; then
    if ids=$(setup "http://127.0.0.1:$slow_port/slow" "http://127.0.0.1:$fail_port/failing" \
      $(endpoint_urls "$lport" ep 8)); then
      echo "   beside slow + failing:"
      deliver iso_bad "$events" "$(paths_of ep 8)"
      for pair in "slow:$slow_port" "failing:$fail_port"; do
        s=$(curl -s --max-time 20 "http://127.0.0.1:${pair#*:}/stats" | tr -d ' ' || true)
        emit info "name=iso_${pair%%:*}" "stats=${s:-no answer}"
        echo "   ${pair%%:*} endpoint's listener: ${s:-no answer within 20 s}"
      done
      c=$(curl -s --max-time 10 "$base/metrics" | grep -E '^evo_webhooks_attempts_total' | tr '\n' ' ' || true)
      echo "   evo attempts: ${c:-none}"
      alive && record_rss iso_bad
    else
      skip "isolation" "setup failed: $ids"
    fi
  else
    skip "isolation" "evo or a listener did not start"
  fi
  stop_evo
  stop_pid "$lpid"
  stop_pid "$slow_pid"
  stop_pid "$fail_pid"
fi

# --- 4. rate limit --------------------------------------------------------------------------------
if want rate && [ $evo_ok = 1 ]; then
  echo "-- rate limit: $(commas "$rate_events") events to one endpoint with rateLimitPerSecond" \
    "$rate_limit; /stats every 0.5 s"
  if start_listener "$work/listen-rate.log" && start_evo "$work/evo-rate" "$work/evo-rate.log"; then
    if ids=$(setup "http://127.0.0.1:$lport/rate@$rate_limit"); then
      emit info name=rate "limit=$rate_limit"
      deliver rate "$rate_events" /rate --interval 0.5 \
        --timeout "$(awk -v n="$rate_events" -v r="$rate_limit" 'BEGIN {printf "%d", n / r + 30}')"
      alive && record_rss rate
    else
      skip "rate limit" "setup failed: $ids"
    fi
  else
    skip "rate limit" "evo or the listener did not start"
  fi
  stop_evo
  stop_pid "$lpid"
fi

# --- evo's warnings and errors, if any ----------------------------------------------------------
for f in "$work"/evo*.log "$work"/listen*.log; do
  [ -f "$f" ] || continue
  n=$(grep -ciE '\b(warn|warning|error|critical)\b' "$f" || true)
  if [ "${n:-0}" -gt 0 ]; then
    echo "   $(basename "$f"): $n warning/error lines, e.g.:"
    grep -iE '\b(warn|warning|error|critical)\b' "$f" | sed -E 's/^\[?[0-9T:. -]+Z?\]? *//' |
      sed -E 's/(msg|ep)_[0-9]+/\1_N/g' | sort | uniq -c | sort -rn | head -3 |
      cut -c1-220 | sed 's/^/     /'
  fi
done

# --- report --------------------------------------------------------------------------------------
"$py" "$rep" report "$results"

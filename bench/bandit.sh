#!/usr/bin/env bash
# bench/bandit.sh BUILD_DIR — the bandit service under load, in one run, on loopback:
#   evo   POST /v1/experiments/bench/pulls (body {}), wrk -t2 -c64 --latency
#         a pull -> reward mix (bench/bandit.lua: every pull's pullId is rewarded once, 1 with
#         probability a=0.04, b=0.05, c=0.06), wrk -t2 -c64, and again at 4 connections with
#         1 wrk thread for latency (a closed loop's latency is connections / rate, so p99 at
#         64 connections on 2 shared cores is mostly queueing)
#   first on a fresh experiment, then again after PULLS pulls (default 10^7, loaded with wrk
#   on the pull route until GET .../stats sums to PULLS), with VmRSS before and after
#   evo bandit simulate (the regret table; RUNS and HORIZON pass --runs / --horizon)
# Targets: pulls >= 100,000 req/s; mix >= 60,000 req/s with p99 <= 2 ms, fresh and after 10^7
# pulls; RSS <= 200 MiB. ROUNDS (default 3) interleaved rounds of DURATION seconds (default 5)
# per phase; the report gives medians. PRELOAD_TIMEOUT (default 300 s) bounds the preload,
# SIM_TIMEOUT (default 300 s) the simulator. Each evo part prints "skipped: ..." when the
# binary, the command or the route is missing. Parsing and the report: bench/bandit_report.py.
set -euo pipefail
build_dir=${1:-build}
here=$(cd "$(dirname "$0")" && pwd)
evo_bin=$(realpath -m "$build_dir/evo")
py=${PYTHON:-/usr/bin/python3}
rep="$here/bandit_report.py"
lua="$here/bandit.lua"
duration=${DURATION:-5}
rounds=${ROUNDS:-3}
target_pulls=${PULLS:-10000000}
preload_timeout=${PRELOAD_TIMEOUT:-300}
sim_timeout=${SIM_TIMEOUT:-300}
work=$(mktemp -d /tmp/evo-bench-bandit.XXXXXX)
results="$work/results.jsonl"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# skip PART WHY: say so now, and again in the final report
skip() {
  echo "   skipped: $1: $2"
  "$py" "$rep" emit skipped "name=$1" "why=$2" >>"$results"
}
emit() { "$py" "$rep" emit "$@" >>"$results"; }
# the last non-empty line of a file, for error messages
last_line() { grep -v '^\s*$' "$1" 2>/dev/null | tail -1 | cut -c1-200 || true; }
subcommands() { "$1" --help 2>/dev/null | sed -n '/^Subcommands:/,/^$/p'; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN {printf "%.1f", b - a}'; }
commas() { echo "$1" | sed -E ':a; s/([0-9])([0-9]{3})($|,)/\1,\2\3/; ta'; }

echo "== bandit: evo pulls and a pull->reward mix over HTTP (wrk), fresh and after" \
  "$(commas "$target_pulls") pulls; evo bandit simulate"
: >"$results"

# --- start evo, create the experiment, check each route once ---------------------------------
http_ok=0 mix_ok=0 have_stats=0
evo_pid=
if [ ! -x "$evo_bin" ]; then
  skip "evo HTTP" "no $build_dir/evo"
elif ! subcommands "$evo_bin" | grep -qE '^\s+serve\b'; then
  skip "evo HTTP" "evo has no 'serve' subcommand"
else
  port=$(free_port)
  base="http://127.0.0.1:$port"
  exp="$base/v1/experiments/bench"
  "$evo_bin" serve --listen "127.0.0.1:$port" --data-dir "$work/evo" --access-log=false \
    --log-format text >"$work/evo.log" 2>&1 &
  evo_pid=$!
  pids+=("$evo_pid")
  for _ in $(seq 100); do curl -sf "$base/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
  if ! curl -sf "$base/readyz" >/dev/null 2>&1; then
    skip "evo HTTP" "evo serve not ready after 10 s: $(last_line "$work/evo.log")"
  else
    code=$(curl -s -o "$work/create.txt" -w '%{http_code}' --max-time 10 -X POST \
      "$base/v1/experiments" -H 'content-type: application/json' \
      -d '{"name":"bench","arms":[{"name":"a"},{"name":"b"},{"name":"c"}],"rewardType":"bernoulli","attributionWindowSeconds":60}' ||
      true)
    pcode=000
    if [ "$code" = 201 ] || [ "$code" = 409 ]; then
      pcode=$(curl -s -o "$work/pull.txt" -w '%{http_code}' --max-time 10 -X POST "$exp/pulls" \
        -H 'content-type: application/json' -d '{}' || true)
    fi
    # the pull id as its JSON token, e.g. "p1a2b" with the quotes
    pull_id=$("$py" -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))["pullId"]))' \
      "$work/pull.txt" 2>/dev/null || true)
    if [ "$code" != 201 ] && [ "$code" != 409 ]; then
      skip "evo HTTP" "POST /v1/experiments answered $code: $(head -c 200 "$work/create.txt" 2>/dev/null)"
    elif [ "${pcode:0:1}" != 2 ] || [ -z "$pull_id" ]; then
      skip "evo HTTP" "POST .../bench/pulls answered $pcode without a pullId: $(head -c 200 "$work/pull.txt" 2>/dev/null)"
    else
      http_ok=1
      echo "   POST /v1/experiments: $code; POST .../pulls: $pcode $(head -c 160 "$work/pull.txt")"
      rbody="{\"pullId\":$pull_id,\"reward\":1}"
      rcode=$(curl -s -o "$work/reward.txt" -w '%{http_code}' --max-time 10 -X POST "$exp/rewards" \
        -H 'content-type: application/json' -d "$rbody" || true)
      if [ "${rcode:0:1}" = 2 ]; then
        mix_ok=1
        dcode=$(curl -s -o "$work/reward2.txt" -w '%{http_code}' --max-time 10 -X POST "$exp/rewards" \
          -H 'content-type: application/json' -d "$rbody" || true)
        echo "   POST .../rewards: $rcode $(head -c 120 "$work/reward.txt"); the same reward again: $dcode"
        emit duplicate "code=$dcode"
      else
        skip "evo mix" "POST .../bench/rewards answered $rcode: $(head -c 200 "$work/reward.txt" 2>/dev/null)"
      fi
      scode=$(curl -s -o "$work/stats.json" -w '%{http_code}' --max-time 10 "$exp/stats" || true)
      if [ "$scode" = 200 ] && "$py" "$rep" sum-pulls "$work/stats.json" >/dev/null 2>&1; then
        have_stats=1
      else
        echo "   GET .../stats answered $scode without arms[].pulls: $(head -c 160 "$work/stats.json" 2>/dev/null)"
        echo "   (the preload counts wrk's 2xx answers instead)"
      fi
    fi
  fi
fi

alive() { [ -n "$evo_pid" ] && kill -0 "$evo_pid" 2>/dev/null; }
record_rss() {  # PHASE: VmRSS and VmHWM of evo, in KiB
  local rss hwm
  rss=$(awk '/^VmRSS/ {print $2}' "/proc/$evo_pid/status" 2>/dev/null || true)
  hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$evo_pid/status" 2>/dev/null || true)
  [ -n "$rss" ] && emit rss "phase=$1" "kib=$rss" "hwm_kib=${hwm:-0}"
  echo "   evo RSS ($1): $(awk -v k="${rss:-0}" 'BEGIN {printf "%.1f", k / 1024}') MiB"
}
stats_pulls() {
  curl -sf --max-time 10 -o "$work/stats.json" "$exp/stats" 2>/dev/null &&
    "$py" "$rep" sum-pulls "$work/stats.json" 2>/dev/null
}
# run_wrk PHASE NAME ROUND THREADS CONNS MODE: one wrk run into $work/wrk_PHASE_NAME_ROUND.txt
run_wrk() {
  local out="$work/wrk_$1_$2_$3.txt"
  wrk -t"$4" -c"$5" -d"${duration}s" --latency -s "$lua" "$exp/pulls" -- "$6" >"$out" 2>&1 || true
  echo "$2 $(awk '/Requests\/sec/ {printf "%.0f", $2}' "$out") req/s p99 $(awk '/ 99%/ {print $2}' "$out")"
}
# measure PHASE: ROUNDS interleaved rounds of pulls (64), mix (64) and mix (4 connections)
measure() {
  local phase=$1 round line names=pulls
  [ $mix_ok = 1 ] && names="pulls mix mix4"
  echo "-- evo HTTP, $2 (rounds: ${rounds} x ${duration}s of pulls -t2 -c64$([ $mix_ok = 1 ] &&
    echo ', mix -t2 -c64, mix -t1 -c4'))"
  for round in $(seq "$rounds"); do
    line=$(run_wrk "$phase" pulls "$round" 2 64 pulls)
    if [ $mix_ok = 1 ]; then
      line="$line, $(run_wrk "$phase" mix "$round" 2 64 mix)"
      line="$line, $(run_wrk "$phase" mix4 "$round" 1 4 mix)"
    fi
    echo "   round $round/$rounds: $line"
    if ! alive; then
      skip "evo HTTP ($phase)" "evo exited during the run: $(last_line "$work/evo.log")"
      http_ok=0
      return
    fi
  done
  for n in $names; do
    local threads=2 conns=64
    [ "$n" = mix4 ] && threads=1 conns=4
    "$py" "$rep" wrk --phase "$phase" --name "$n" --conns $conns --threads $threads \
      "$work"/wrk_"${phase}"_"${n}"_*.txt >>"$results"
  done
  # the mix must parse pull ids, or its numbers are pulls only
  if [ $mix_ok = 1 ] && ! grep -qE 'ids=[1-9]' "$work/wrk_${phase}_mix_1.txt"; then
    echo "   WARNING: bench/bandit.lua parsed no pullId in the mix: $(grep -h 'bandit.lua' \
      "$work/wrk_${phase}_mix_1.txt" || echo 'no counters line')"
  fi
}

# --- fresh -----------------------------------------------------------------------------------
if [ $http_ok = 1 ]; then
  record_rss idle
  measure fresh "fresh experiment"
fi
[ $http_ok = 1 ] && record_rss fresh

# --- preload: wrk on the pull route until stats sum to PULLS ----------------------------------
if [ $http_ok = 1 ]; then
  source=stats
  if [ $have_stats = 1 ] && cur=$(stats_pulls); then :; else source="the preload's wrk 2xx answers" cur=0; fi
  echo "-- preload to $(commas "$target_pulls") pulls (wrk -t2 -c64 on the pull route, counted by" \
    "${source/stats/GET .../stats}; at most ${preload_timeout}s)"
  read -r rate _ < <("$py" "$rep" count "$work/wrk_fresh_pulls_${rounds}.txt")
  [ "${rate:-0}" -gt 0 ] || rate=10000
  cur0=$cur
  t0=$(now)
  start_s=$SECONDS
  chunk=0
  if [ "$cur" -ge "$target_pulls" ]; then
    echo "   already $(commas "$cur") pulls (the fresh runs made them)"
  fi
  while [ "$cur" -lt "$target_pulls" ]; do
    elapsed=$((SECONDS - start_s))
    if [ $elapsed -ge "$preload_timeout" ]; then
      echo "   preload stopped at $(commas "$cur") pulls after ${elapsed}s (PRELOAD_TIMEOUT)"
      break
    fi
    secs=$(((target_pulls - cur) / rate + 1))
    [ $secs -gt 60 ] && secs=60
    [ $secs -gt $((preload_timeout - elapsed)) ] && secs=$((preload_timeout - elapsed))
    [ $secs -lt 1 ] && secs=1
    chunk=$((chunk + 1))
    wrk -t2 -c64 -d"${secs}s" -s "$lua" "$exp/pulls" -- pulls >"$work/preload_$chunk.txt" 2>&1 || true
    read -r r okn < <("$py" "$rep" count "$work/preload_$chunk.txt")
    if [ "$source" = stats ]; then
      new=$(stats_pulls || echo "$cur")
    else
      new=$((cur + okn))
    fi
    echo "   $(commas "$new") pulls after $(since "$t0") s ($(commas "$r") req/s in a ${secs}s chunk)"
    if ! alive; then
      skip "evo HTTP (after)" "evo exited during the preload: $(last_line "$work/evo.log")"
      http_ok=0
      break
    fi
    if [ "$new" -le "$cur" ]; then
      echo "   preload stopped: the pull count did not grow"
      break
    fi
    cur=$new
    [ "$r" -gt 0 ] && rate=$r
  done
  took=$(since "$t0")
  added=$((cur - cur0))
  rate=$(awk -v n="$added" -v s="$took" 'BEGIN {printf "%.0f", (s > 0 ? n / s : 0)}')
  emit preload "target=$target_pulls" "reached=$cur" "added=$added" "seconds=$took" \
    "rate=$rate" "source=$source"
  echo "   preload: $(commas "$cur") pulls; $(commas "$added") added in $took s ($(commas "$rate") pulls/s)"
fi
[ $http_ok = 1 ] && record_rss preload

# --- after the preload -----------------------------------------------------------------------
if [ $http_ok = 1 ]; then
  measure after "after $(commas "$cur") pulls"
fi
if [ $http_ok = 1 ]; then
  record_rss after
  record_rss end >/dev/null
fi
# the server is done: stop it before the simulator, which wants the cores
if [ -n "$evo_pid" ]; then
  kill "$evo_pid" 2>/dev/null || true
  wait "$evo_pid" 2>/dev/null || true
fi

# --- evo bandit simulate ---------------------------------------------------------------------
sim_args=()
[ -n "${RUNS:-}" ] && sim_args+=(--runs "$RUNS")
[ -n "${HORIZON:-}" ] && sim_args+=(--horizon "$HORIZON")
echo "-- evo bandit simulate ${sim_args[*]}"
if [ ! -x "$evo_bin" ]; then
  skip "evo bandit simulate" "no $build_dir/evo"
elif ! subcommands "$evo_bin" | grep -qE '^\s+bandit\b'; then
  skip "evo bandit simulate" "evo has no 'bandit' subcommand"
elif ! "$evo_bin" bandit --help 2>/dev/null | grep -qE '^\s+simulate\b'; then
  skip "evo bandit simulate" "evo bandit has no 'simulate' subcommand"
else
  t0=$(now)
  rc=0
  timeout "$sim_timeout" "$evo_bin" bandit simulate "${sim_args[@]}" >"$work/sim.txt" \
    2>"$work/sim.err" || rc=$?
  if [ $rc = 124 ]; then
    skip "evo bandit simulate" "timed out after ${sim_timeout}s (SIM_TIMEOUT)"
  elif [ $rc != 0 ]; then
    skip "evo bandit simulate" "exit $rc: $(last_line "$work/sim.err")"
  else
    cat "$work/sim.txt"
    emit simulate "seconds=$(since "$t0")"
  fi
fi

# --- report ----------------------------------------------------------------------------------
"$py" "$rep" report "$results"

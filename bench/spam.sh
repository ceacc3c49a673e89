#!/usr/bin/env bash
# bench/spam.sh BUILD_DIR — the spam module beside its peers, in one run, on Enron-Spam Enron1
# (3672 ham + 1500 spam) with a fixed split: a file is TEST when the first 8 hex digits of
# sha256(basename) mod 10 < 3, else TRAIN (3571 train / 1601 test = 1152 ham + 449 spam).
#   evo         evo spam eval DIR --format json (quality, train time, classify rate)
#               bench/spam_benchmark (Google Benchmark), if built
#               POST /v1/spam/classify over HTTP, wrk, 64 connections, ~1 KiB body
#   peers       scikit-learn ComplementNB (counts) and LinearSVC (sublinear TF-IDF),
#               bogofilter (bulk mode, default tristate cutoffs)
# Prints quality, speed and the evo/peer ratios. Each evo part prints "skipped: ..." when the
# binary or the command is missing. ENRON_TGZ overrides the corpus path; ROUNDS (default 3)
# rounds of DURATION seconds (default 5) for wrk, the report gives medians. Peer helpers and
# the report live in bench/spam_peers.py (Debian's /usr/bin/python3 with python3-sklearn).
set -euo pipefail
build_dir=${1:-build}
here=$(cd "$(dirname "$0")" && pwd)
evo_bin=$(realpath -m "$build_dir/evo")
gbench_bin=$(realpath -m "$build_dir/bench/spam_benchmark")
py=${PYTHON:-/usr/bin/python3}
peers="$here/spam_peers.py"
tgz=${ENRON_TGZ:-/work/shared/data/enron1.tar.gz}
duration=${DURATION:-5}
rounds=${ROUNDS:-3}
conns_list=${CONNS:-64 4}
work=$(mktemp -d /tmp/evo-bench-spam.XXXXXX)
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
  "$py" -c 'import json,sys; print(json.dumps({"kind":"skipped","name":sys.argv[1],"why":sys.argv[2]}))' \
    "$1" "$2" >>"$results"
}
# the last non-empty line of a file, for error messages
last_line() { grep -v '^\s*$' "$1" 2>/dev/null | tail -1 | cut -c1-200 || true; }

echo "== spam: evo vs scikit-learn (LinearSVC, ComplementNB) vs bogofilter, Enron1, fixed split"
: >"$results"
if [ ! -f "$tgz" ]; then
  echo "   skipped: corpus $tgz not found (set ENRON_TGZ)"
  exit 0
fi

# --- corpus: extract, split (hard links), bogofilter copies, the wrk body ---------------------
mkdir "$work/data"
tar -xzf "$tgz" -C "$work/data"
corpus=$(find "$work/data" -maxdepth 3 -type d -name ham -printf '%h\n' | sort | head -1)
if [ -z "$corpus" ] || [ ! -d "$corpus/spam" ]; then
  echo "   skipped: no ham/ and spam/ directories in $tgz"
  exit 0
fi
"$py" "$peers" split "$corpus" "$work/split" >"$work/split.json"
"$py" - "$work/split.json" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))
print(f"   train {c['train_ham'] + c['train_spam']} ({c['train_ham']} ham, {c['train_spam']} spam),"
      f" test {c['test_ham'] + c['test_spam']} ({c['test_ham']} ham, {c['test_spam']} spam);"
      f" wrk body {c['body_bytes']} B from test/spam/{c['body_file']}")
EOF

# --- peers ---------------------------------------------------------------------------------------
echo "-- scikit-learn (train x3, classify x3, 10-fold CV on the whole corpus)"
if "$py" -c 'import sklearn' 2>/dev/null; then
  "$py" "$peers" sklearn "$work/split" --cv "$corpus" >>"$results"
else
  skip "scikit-learn" "$py cannot import sklearn (apt-get install python3-sklearn)"
fi
echo "-- bogofilter (bulk mode -b: train x3 on a fresh wordlist, classify x3)"
"$py" "$peers" bogofilter "$work/split" >>"$results"

# --- evo spam eval -------------------------------------------------------------------------------
have_evo=0
if [ -x "$evo_bin" ]; then have_evo=1; fi
echo "-- evo spam eval"
if [ $have_evo = 0 ]; then
  skip "evo spam eval" "no $build_dir/evo"
elif ! "$evo_bin" --help 2>/dev/null | sed -n '/^Subcommands:/,/^$/p' | grep -qE '^\s+spam\b'; then
  skip "evo spam eval" "evo has no 'spam' subcommand"
else
  rc=0
  timeout "${EVAL_TIMEOUT:-120}" "$evo_bin" spam eval "$corpus" --format json \
    >"$work/evo_eval.json" 2>"$work/evo_eval.err" || rc=$?
  if [ $rc != 0 ]; then
    skip "evo spam eval" "exit $rc: $(last_line "$work/evo_eval.err")"
  elif ! "$py" "$peers" evo-eval "$work/evo_eval.json" >>"$results" 2>"$work/evo_eval.perr"; then
    skip "evo spam eval" "output is not the expected JSON: $(last_line "$work/evo_eval.perr")"
  fi
fi

# --- evo micro-benchmarks ------------------------------------------------------------------------
echo "-- evo micro-benchmarks"
if [ ! -x "$gbench_bin" ]; then
  skip "evo micro-benchmarks" "no $build_dir/bench/spam_benchmark"
else
  rc=0
  timeout 120 "$gbench_bin" --benchmark_repetitions=3 --benchmark_report_aggregates_only=true \
    --benchmark_min_time=0.3 --benchmark_format=json >"$work/gbench.json" 2>"$work/gbench.err" || rc=$?
  if [ $rc != 0 ]; then
    skip "evo micro-benchmarks" "exit $rc: $(last_line "$work/gbench.err")"
  else
    "$py" "$peers" gbench "$work/gbench.json" >>"$results"
  fi
fi

# --- evo over HTTP: train on the train split, then wrk on POST /v1/spam/classify -----------------
echo "-- evo HTTP (${conns_list// /, } connections, ${duration}s per round, ${rounds} rounds each)"
http_ok=0
if [ $have_evo = 0 ]; then
  skip "evo HTTP" "no $build_dir/evo"
else
  port=$(free_port)
  base="http://127.0.0.1:$port"
  "$evo_bin" serve --listen "127.0.0.1:$port" --data-dir "$work/evo" --access-log=false \
    --log-format text >"$work/evo.log" 2>&1 &
  pids+=("$!")
  for _ in $(seq 100); do curl -sf "$base/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
  if ! curl -sf "$base/readyz" >/dev/null 2>&1; then
    skip "evo HTTP" "evo serve not ready after 10 s: $(last_line "$work/evo.log")"
  else
    code=$(curl -s -o "$work/train_resp.txt" -w '%{http_code} %{time_total}' --max-time 300 \
      -X POST "$base/v1/spam/models" -H 'content-type: application/json' \
      -d "{\"directory\":\"$work/split/train\"}" || true)
    case "$code" in
      2??\ *)
        echo "   POST /v1/spam/models (train split): HTTP ${code% *} in ${code#* } s"
        # training may be asynchronous (202): wait up to 60 s for classify to answer 200
        ccode=000
        for _ in $(seq 120); do
          ccode=$(curl -s -o "$work/classify_resp.txt" -w '%{http_code}' --max-time 5 \
            -X POST "$base/v1/spam/classify" -H 'content-type: application/json' \
            --data-binary "@$work/split/body.json" || true)
          [ "$ccode" = 200 ] && break
          sleep 0.5
        done
        if [ "$ccode" = 200 ]; then
          http_ok=1
          echo "   POST /v1/spam/classify: 200 $(head -c 160 "$work/classify_resp.txt")"
        else
          skip "evo HTTP" "POST /v1/spam/classify answered $ccode: $(head -c 200 "$work/classify_resp.txt")"
        fi
        ;;
      *)
        skip "evo HTTP" "POST /v1/spam/models answered ${code% *}: $(head -c 200 "$work/train_resp.txt" 2>/dev/null)"
        ;;
    esac
  fi
fi
if [ $http_ok = 1 ]; then
  cat >"$work/classify.lua" <<EOF
local f = assert(io.open("$work/split/body.json", "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
EOF
  # Two loads: 64 connections (2 wrk threads) for the peak rate, 4 connections (1 wrk thread)
  # for latency at a rate still far above the 20,000 req/s target. A closed loop's latency is
  # connections / rate, so p99 at 64 connections on 2 shared cores is mostly queueing, and a
  # second wrk thread takes a core from the server.
  for c in $conns_list; do
    wrk_threads=2
    [ "$c" -lt 8 ] && wrk_threads=1
    for round in $(seq "$rounds"); do
      wrk -t"$wrk_threads" -c"$c" -d"${duration}s" --latency -s "$work/classify.lua" \
        "$base/v1/spam/classify" >"$work/wrk_c${c}_$round.txt"
      echo "   $c connections, round $round/$rounds: $(awk '/Requests\/sec/ {print $2}' "$work/wrk_c${c}_$round.txt") req/s," \
        "p99 $(awk '/ 99%/ {print $2}' "$work/wrk_c${c}_$round.txt")" \
        "$(grep -o 'Non-2xx or 3xx responses: [0-9]*' "$work/wrk_c${c}_$round.txt" || true)"
    done
    "$py" "$peers" wrk --conns "$c" --threads "$wrk_threads" "$work"/wrk_c"${c}"_*.txt \
      >>"$results"
  done
fi

# --- report --------------------------------------------------------------------------------------
"$py" "$peers" report "$results"

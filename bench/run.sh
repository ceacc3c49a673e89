#!/usr/bin/env bash
# make bench: Google Benchmark micro-benchmarks, then every bench/*.sh load run (each puts evo
# beside its peer in the same run and prints ratios). Quote medians and ratios, not absolutes.
set -euo pipefail
build_dir=${1:-build}
cd "$(dirname "$0")/.."

echo "== micro-benchmarks (median of 3 repetitions)"
for b in "$build_dir"/bench/*_benchmark; do
  [ -x "$b" ] || continue
  echo "-- $(basename "$b")"
  "$b" --benchmark_repetitions=3 --benchmark_report_aggregates_only=true \
    --benchmark_min_time=0.3 2>/dev/null | grep -E '_median|^Benchmark|^-' || true
done

for script in bench/*.sh; do
  [ "$(basename "$script")" = run.sh ] && continue
  bash "$script" "$build_dir"
done

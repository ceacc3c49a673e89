#!/usr/bin/env bash
# make lint: clang-format (check only) and clang-tidy on the C++ files changed against the
# merge base with origin/main, or HEAD~1 when there is no remote; ALL=1 checks every file.
set -euo pipefail
build_dir=${1:-build}
cd "$(git rev-parse --show-toplevel)"

if [ "${ALL:-0}" = 1 ]; then
  files=$(git ls-files 'src/*.cpp' 'src/*.hpp')
else
  base=$(git merge-base HEAD origin/main 2>/dev/null || git rev-parse HEAD~1 2>/dev/null || true)
  if [ -n "$base" ]; then
    files=$( (git diff --name-only "$base" -- 'src/*.cpp' 'src/*.hpp'; \
              git diff --name-only -- 'src/*.cpp' 'src/*.hpp') | sort -u)
  else
    files=$(git ls-files 'src/*.cpp' 'src/*.hpp')
  fi
fi
files=$(for f in $files; do [ -f "$f" ] && echo "$f"; done)
if [ -z "$files" ]; then
  echo "lint: no changed C++ files"
  exit 0
fi

status=0
echo "lint: clang-format"
# shellcheck disable=SC2086
clang-format --dry-run --Werror $files || status=1

echo "lint: clang-tidy"
sources=$(echo "$files" | grep '\.cpp$' || true)
for f in $sources; do
  # Per file, bounded: a few files full of nested JSON literals take clang-tidy minutes.
  set +e
  out=$(timeout "${TIDY_TIMEOUT:-180}" clang-tidy -p "$build_dir" --quiet "$f" 2>/dev/null)
  rc=$?
  set -e
  if [ $rc -eq 124 ]; then
    echo "lint: clang-tidy timed out on $f (not checked)"
  fi
  if echo "$out" | grep -E 'warning:|error:'; then
    status=1
  fi
done
[ $status -eq 0 ] && echo "lint: clean"
exit $status

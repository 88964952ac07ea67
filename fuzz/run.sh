#!/usr/bin/env bash
# fuzz/run.sh BUILD_DIR SECONDS -- run every libFuzzer target for SECONDS
# each, starting from its seed corpus in fuzz/corpus/<target>/ (read only:
# new inputs go to a temporary directory). Exits non-zero if any target
# crashes, leaks or times out; the reproducer is kept and its path printed.
# Called by `make test-fuzz` (build with -Dfuzz=true, clang, ASan+UBSan).
set -u
if [ $# -ne 2 ]; then
  echo "usage: bash fuzz/run.sh BUILD_DIR SECONDS" >&2
  exit 2
fi
build=$1
secs=$2
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d /tmp/shmx-fuzz.XXXXXX)
status=0
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
for t in segment control bridge mcap; do
  exe="$build/fuzz/fuzz_$t"
  if [ ! -x "$exe" ]; then
    echo "fuzz: $exe not built (configure with -Dfuzz=true and CC=clang-14)" >&2
    status=1
    continue
  fi
  mkdir -p "$work/$t"
  maxlen=8192
  [ "$t" = mcap ] && maxlen=65536 # seed recordings are a few KiB to 40 KiB
  "$exe" -max_total_time="$secs" -timeout=10 -max_len=$maxlen \
    -print_final_stats=1 -artifact_prefix="$work/$t-" \
    "$work/$t" "$here/corpus/$t" >"$work/$t.log" 2>&1 &
  pid=$!
  wait $pid
  rc=$?
  # each fuzzing process names its channel fz-<pid>; remove what a crash left
  rm -f "/dev/shm/shmx.fz-$pid" "/dev/shm/.shmx.fz-$pid.lock" \
    "/dev/shm/shmx-fuzz-recovered-$pid.mcap" # fuzz_mcap's scratch file
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$t.log")
  speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/$t.log")
  cov=$(grep -o 'cov: [0-9]*' "$work/$t.log" | tail -n1)
  if [ $rc -ne 0 ]; then
    echo "fuzz_$t: FAILED (exit $rc) after ${runs:-?} runs; log $work/$t.log"
    grep -E 'ERROR|SUMMARY|Test unit written' "$work/$t.log" | head -n 5
    status=1
  else
    echo "fuzz_$t: ok, ${runs:-?} runs in ${secs}s (${speed:-?}/s, $cov)"
  fi
done
if [ $status -eq 0 ]; then rm -rf "$work"; fi
exit $status

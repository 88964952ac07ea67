#!/usr/bin/env bash
# tests/win/cli.sh -- shmx.exe under Wine, as a user would run it (issue
# 14). Called by tests/win/run.sh with WINEPREFIX, WINEDEBUG and SHMX_DIR
# set. Every wait is on observable state with a deadline.
#   ls (empty, a live channel, a stale one), inspect --json, top without a
#   terminal, rm refusing a live channel and removing a dead one, rm --stale
#   with a pattern, demo end to end, bench --quick --json, the commands this
#   build lacks, usage errors.
set -euo pipefail
EXE=${1:?path to shmx.exe}
fail() { echo "cli.sh: FAIL: $*" >&2; exit 1; }
shmx() { wine "$EXE" "$@"; }
ok=0
step() { ok=$((ok + 1)); echo "  ok $ok - $*"; }

json_get() { # json_get EXPR  (reads JSON on stdin, prints EXPR of it as d)
  python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"
}

# Wait (up to 20 s) until `ls --json` lists channel $1 with status $2.
wait_status() {
  local end=$((SECONDS + 20)) st
  while :; do
    st=$(shmx ls --json --interval 0 | json_get \
      "next((c.get('status','?') for c in d['channels'] if c['name']=='$1'), 'absent')")
    [ "$st" = "$2" ] && return 0
    [ $SECONDS -ge $end ] && fail "channel $1: status '$st', wanted '$2'"
    sleep 0.1
  done
}

out=$(shmx --version) || fail "--version"
[[ $out =~ ^shmx\ [0-9]+\.[0-9]+\.[0-9]+ ]] || fail "--version printed '$out'"
step "--version: $out"

out=$(shmx ls)
[[ $out == *"no shmx channels"* ]] || fail "ls on nothing: '$out'"
step "ls with no channels"

# A producer in the background (a separate Windows process).
NAME=wincli-$$
# Not through the shmx() function: $! must be wine's own pid (the wine
# script execs the loader, which becomes the Windows process).
wine "$EXE" demo --publish "$NAME" --duration 30 --fps 50 >/dev/null 2>&1 &
PROD=$!
trap 'kill -9 $PROD 2>/dev/null || true' EXIT
wait_status "$NAME" live
step "ls lists the live channel"

end=$((SECONDS + 20))
until [ "$(shmx inspect "$NAME" --json | json_get "d['header']['frame_seq']")" -gt 5 ]; do
  [ $SECONDS -ge $end ] && fail "inspect: frames do not advance"
  sleep 0.1
done
shmx inspect "$NAME" --json | json_get "d['header']['owner_alive'] is True" | grep -qx True ||
  fail "inspect: owner not alive"
step "inspect --json: frames advance, producer alive"

out=$(shmx top "$NAME" --iterations 2 --interval 100) || fail "top exited $?"
[[ $out == *"$NAME"* ]] || fail "top did not show the channel"
step "top without a terminal"

set +e
out=$(shmx rm "$NAME" 2>&1); rc=$?
set -e
[ $rc -eq 1 ] && [[ $out == *"in use"* ]] || fail "rm of a live channel: rc $rc, '$out'"
step "rm refuses a live channel"

# Kill the producer outright (no cleanup runs in it): the channel is stale.
kill -9 $PROD
wait $PROD 2>/dev/null || true
wait_status "$NAME" STALE
step "a killed producer's channel is listed STALE"

out=$(shmx rm --stale --dry-run 'wincli-*')
[[ $out == *"$NAME"* ]] || fail "rm --stale --dry-run: '$out'"
shmx rm --stale 'wincli-*' >/dev/null
wait_status "$NAME" absent
step "rm --stale with a pattern removes it"

out=$(shmx demo --duration 1.5 --fps 60) || fail "demo exited $?: $out"
[[ $out == *"shmx demo: ok"* ]] || fail "demo: '$out'"
step "demo: 1 producer + 3 reader processes, every byte verified"

n=$(shmx bench --quick --json | python3 -c "
import json, sys
rows = [json.loads(l) for l in sys.stdin if l.strip()]
assert all(r['p50_ns'] > 0 and r['samples'] > 0 for r in rows), rows
assert {'latency_64B_wait', 'latency_64B_spin', 'publish_1MiB_copy'} <= {r['case'] for r in rows}
print(len(rows))")
step "bench --quick --json: $n cases"

set +e
out=$(shmx record x -o y.mcap 2>&1); rc=$?
set -e
[ $rc -eq 1 ] && [[ $out == *"not available"* ]] || fail "record: rc $rc, '$out'"
set +e
shmx ls --bogus >/dev/null 2>&1; rc=$?
set -e
[ $rc -eq 2 ] || fail "usage error exit $rc"
step "commands this build lacks say so; usage errors exit 2"
echo "cli.sh: $ok checks passed"

#!/usr/bin/env bash
# tests/win/run.sh -- the Windows build and its tests under Wine (issue 14),
# run by `make test-windows` (and so by `make test`).
#
#   1. installs Debian's mingw-w64 (posix threads) and Wine if missing;
#   2. cross-builds libshmx, its tests and shmx.exe into build-win with
#      cross/mingw64.txt, with every warning an error;
#   3. runs the C suites under Wine (meson's exe_wrapper) in a Wine prefix
#      and a channel directory (SHMX_DIR) of their own;
#   4. compares the segment bytes of a fixed history between the Linux and
#      the Windows build (tests/c/layout_dump.c): they must be identical;
#   5. builds examples/quickstart.c for Windows and runs it, then the CLI
#      smoke tests (tests/win/cli.sh), under Wine;
#   6. checks that nothing was left in the channel directory.
# Usage: tests/win/run.sh MESON LINUX_BUILD_DIR [WIN_BUILD_DIR]
set -euo pipefail
MESON=${1:?meson}
LINUX_BUILD=${2:?linux build dir}
WIN_BUILD=${3:-build-win}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"

need=()
command -v x86_64-w64-mingw32-gcc-posix >/dev/null || need+=(gcc-mingw-w64-x86-64-posix mingw-w64-x86-64-dev)
command -v x86_64-w64-mingw32-g++-posix >/dev/null || need+=(g++-mingw-w64-x86-64-posix) # header_cxx
command -v wine >/dev/null || need+=(wine wine64)
if [ ${#need[@]} -gt 0 ]; then
  echo "test-windows: installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

# A Wine prefix of our own (created once, ~20 s), no debug chatter, no
# display needed.
export WINEPREFIX="$ROOT/$WIN_BUILD-wine"
export WINEDEBUG=-all
export WINEDLLOVERRIDES="mscoree,mshtml="
unset DISPLAY
if [ ! -f "$WINEPREFIX/system.reg" ]; then
  echo "test-windows: creating the Wine prefix $WINEPREFIX"
  timeout 600 wineboot -i </dev/null >/dev/null 2>&1 || true
  timeout 60 wineserver -w || true
fi

# Channels of this run only, removed at the end.
CHANDIR=$(mktemp -d /tmp/shmx-win.XXXXXX)
cleanup() { rm -rf "$CHANDIR"; }
trap cleanup EXIT
export SHMX_DIR
SHMX_DIR=$(winepath -w "$CHANDIR" 2>/dev/null)

if [ ! -f "$WIN_BUILD/build.ninja" ]; then
  "$MESON" setup "$WIN_BUILD" --cross-file cross/mingw64.txt --buildtype=release \
    -Dwerror=true >/dev/null
fi
"$MESON" compile -C "$WIN_BUILD" >/dev/null

echo "test-windows: C suites under $(wine --version)"
"$MESON" test -C "$WIN_BUILD" --print-errorlogs --num-processes 1 --timeout-multiplier 2

echo "test-windows: segment layout, Linux vs Windows"
"$LINUX_BUILD/tests/c/layout_dump" cmp > "$CHANDIR/layout-linux.txt"
wine "$WIN_BUILD/tests/c/layout_dump.exe" cmp > "$CHANDIR/layout-windows.txt"
if ! cmp -s "$CHANDIR/layout-linux.txt" "$CHANDIR/layout-windows.txt"; then
  echo "test-windows: the Windows segment differs from the Linux one:" >&2
  diff "$CHANDIR/layout-linux.txt" "$CHANDIR/layout-windows.txt" >&2 || true
  exit 1
fi
echo "  identical: $(head -1 "$CHANDIR/layout-linux.txt")"
rm -f "$CHANDIR"/layout-*.txt

echo "test-windows: examples/quickstart.c (built with -Werror, two processes)"
x86_64-w64-mingw32-gcc-posix -std=c11 -Wall -Wextra -Werror -static -Iinclude \
  examples/quickstart.c "$WIN_BUILD/src/libshmx.a" -ladvapi32 -lbcrypt \
  -o "$WIN_BUILD/quickstart.exe"
out=$(wine "$WIN_BUILD/quickstart.exe")
echo "  $out"
[[ $out == *"100 frames"*"SHMX_E_CLOSED"* ]] || { echo "quickstart failed" >&2; exit 1; }

echo "test-windows: CLI under Wine"
bash tests/win/cli.sh "$WIN_BUILD/tools/shmx.exe"

left=$(ls -A "$CHANDIR")
if [ -n "$left" ]; then
  echo "test-windows: files left in the channel directory: $left" >&2
  exit 1
fi
echo "test-windows: all passed"

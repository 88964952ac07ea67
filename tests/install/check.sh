#!/usr/bin/env bash
# Install libshmx into a staging prefix and build examples/quickstart.c
# against it through pkg-config, then run it: the README's C quick start
# must compile and work against an installed shmx.
set -euo pipefail
build=${1:?usage: check.sh BUILD_DIR}
meson=${MESON:-meson}
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
"$meson" install -C "$build" --destdir "$stage" >/dev/null
pc=$(dirname "$(find "$stage" -name shmx.pc | head -n1)")
prefix=$(sed -n 's/^prefix=//p' "$pc/shmx.pc")
export PKG_CONFIG_SYSROOT_DIR="$stage" PKG_CONFIG_PATH="$pc"
cflags=$(pkg-config --cflags shmx)
libs=$(pkg-config --libs shmx)
cc -std=c11 -Wall -Wextra -Werror $cflags examples/quickstart.c $libs -o "$stage/quickstart"
LD_LIBRARY_PATH="$stage$prefix/lib:$(dirname "$(find "$stage" -name 'libshmx.so*' | head -n1)")" "$stage/quickstart"
echo "install: 1 passed, 0 failed"

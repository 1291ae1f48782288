#!/usr/bin/env bash
# npm run test:pack — the package as a user gets it.
#
#  1. `npm pack` (its prepack compiles dist/ and the prebuild) in a copy of this
#     checkout, so this checkout's build/ and prebuilds/ are left alone;
#  2. the tarball holds dist/, the linux-x64 and linux-arm64 prebuilds, binding.gyp and src/,
#     and no build/ or test/;
#  3. installed with --ignore-scripts into an empty project, it loads from the
#     prebuild alone: require() and ESM import, and its types compile;
#     arethetypeswrong finds no problem in it; test/types/consumer.ts, which
#     uses every entry point, passes strict tsc under every moduleResolution;
#     every code block of README.md and docs/*.md runs (test/docs/run.js);
#  4. without the prebuild it fails with the clear message, and the commands
#     that message gives build it from source; then it loads from build/Release.
#
# KEEP_TMP=1 keeps the temporary folder for a look afterwards.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/nsem-pack.XXXXXX")
step=setup
started=$SECONDS

finish() {
  local rc=$?
  rm -f /dev/shm/sem.nsem-pack-$$-* 2>/dev/null || true
  if [ "${KEEP_TMP:-0}" = 1 ]; then echo "test:pack: kept $work"; else rm -rf "$work"; fi
  if [ $rc -eq 0 ]; then
    echo "test:pack: PASS ($((SECONDS - started))s)"
  else
    echo "test:pack: FAIL at step '$step' (exit $rc)" >&2
  fi
  exit $rc
}
trap finish EXIT
label=test:pack
# shellcheck source=test/script-lib.sh
. "$here/test/script-lib.sh"

begin "copy the package source"
src="$work/source"
copy_checkout "$here" "$src"

begin "npm pack (prepack: build:ts, build:prebuild)"
mkdir "$work/pack"
quiet bash -c 'cd "$1" && npm pack --pack-destination "$2"' _ "$src" "$work/pack"
tgzs=("$work"/pack/*.tgz)
[ ${#tgzs[@]} -eq 1 ] && [ -f "${tgzs[0]}" ] || fail "expected one tarball, got: ${tgzs[*]}"
tgz=${tgzs[0]}
echo "tarball: $(basename "$tgz") ($(du -k "$tgz" | cut -f1) KiB)"

begin "tarball contents"
tar -tzf "$tgz" | sort >"$work/contents"
for required in \
  package/package.json package/binding.gyp package/dist/index.js package/dist/index.d.ts \
  package/dist/native.js package/prebuilds/linux-x64/named-semaphore.glibc.node \
  package/prebuilds/linux-arm64/named-semaphore.glibc.node; do
  grep -qx "$required" "$work/contents" || fail "the tarball lacks $required"
done
for f in "$src"/src/*; do
  grep -qx "package/src/$(basename "$f")" "$work/contents" || fail "the tarball lacks src/$(basename "$f")"
done
if grep -E '^package/(build|test|node_modules|lib|bench|\.ci)/' "$work/contents"; then
  fail "the tarball holds files it should not (above)"
fi
if grep -E '^package/prebuilds/' "$work/contents" | grep -vxE 'package/prebuilds/linux-(x64|arm64)/named-semaphore.glibc.node'; then
  fail "the tarball holds unexpected prebuilds (above)"
fi
echo "$(wc -l <"$work/contents") files, including dist/, src/, binding.gyp, prebuilds/linux-{x64,arm64}/named-semaphore.glibc.node"

begin "the shipped prebuilds' symbol versions"
mkdir "$work/unpacked"
tar -C "$work/unpacked" -xzf "$tgz"
if ! NAMED_SEMAPHORE_PREBUILDS="$work/unpacked/package/prebuilds" \
  node --test --test-name-pattern='^the prebuild' "$src/test/prebuild.test.js" >"$work/symbols.log" 2>&1 ||
  ! grep -qx '# pass 6' "$work/symbols.log"; then
  cat "$work/symbols.log" >&2
  fail "test/prebuild.test.js failed on the shipped prebuilds"
fi
grep -E '^    ok .*the prebuild' "$work/symbols.log" | grep -v '# SKIP' | sed 's/^ *ok [0-9]* - /ok: /' || true

begin "npm install --ignore-scripts into an empty project"
app="$work/app"
mkdir "$app"
cat >"$app/package.json" <<'EOF'
{ "name": "pack-test-app", "version": "1.0.0", "private": true }
EOF
quiet bash -c 'cd "$1" && npm install --ignore-scripts --no-audit --no-fund --prefer-offline "$2"' _ "$app" "$tgz"
pkg="$app/node_modules/named-semaphore"
[ -d "$pkg" ] || fail "named-semaphore is not in node_modules"
[ ! -e "$pkg/build" ] || fail "the installed package has a build/ folder"
[ -f "$pkg/prebuilds/linux-x64/named-semaphore.glibc.node" ] || fail "the installed package has no prebuild"

# check.cjs / check.mjs <expected .node file>: use the package, then check
# that the one addon this process mapped is the expected file.
cat >"$app/check.cjs" <<'EOF'
'use strict';
const assert = require('node:assert/strict');
const fs = require('node:fs');
const { NamedSemaphore } = require('named-semaphore');
const name = `/nsem-pack-${process.env.PACK_TEST_ID}-cjs`;
const sem = new NamedSemaphore(name, { exclusive: true, initialValue: 1 });
sem.post();
sem.post(2);
assert.equal(sem.value, 4);
assert.equal(sem.tryWait(), true);
assert.equal(sem.value, 3);
sem.close();
assert.equal(NamedSemaphore.unlink(name), true);
assert.equal(fs.existsSync(`/dev/shm/sem${name.replace('/', '.')}`), false);
const mapped = new Set(
  fs.readFileSync('/proc/self/maps', 'utf8').split('\n')
    .map((line) => line.split(/\s+/).slice(5).join(' '))
    .filter((file) => file.endsWith('.node')),
);
assert.deepEqual([...mapped], [process.argv[2]]);
console.log(`require: ok, loaded ${process.argv[2]}`);
EOF
cat >"$app/check.mjs" <<'EOF'
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { NamedSemaphore, SemaphoreError } from 'named-semaphore';
assert.equal(typeof SemaphoreError, 'function');
const name = `/nsem-pack-${process.env.PACK_TEST_ID}-esm`;
const sem = new NamedSemaphore(name, { exclusive: true });
sem.post();
assert.equal(sem.value, 1);
assert.equal(await sem.wait({ timeout: 1000 }), true);
assert.equal(sem.value, 0);
sem.close();
assert.equal(NamedSemaphore.unlink(name), true);
const mapped = new Set(
  fs.readFileSync('/proc/self/maps', 'utf8').split('\n')
    .map((line) => line.split(/\s+/).slice(5).join(' '))
    .filter((file) => file.endsWith('.node')),
);
assert.deepEqual([...mapped], [process.argv[2]]);
console.log(`import: ok, loaded ${process.argv[2]}`);
EOF
cat >"$app/check.ts" <<'EOF'
import { NamedSemaphore, SemaphoreError } from 'named-semaphore';
const sem: NamedSemaphore = new NamedSemaphore('/x', { initialValue: 1, mode: 0o600 });
const value: number = sem.value;
const acquired: Promise<boolean> = sem.wait({ timeout: 10 });
const err: SemaphoreError | undefined = undefined;
void [value, acquired, err];
EOF
export PACK_TEST_ID=$$

check_loads() {
  local expected
  expected=$(readlink -f "$1")
  (cd "$app" && node check.cjs "$expected") || fail "require('named-semaphore') failed"
  (cd "$app" && node check.mjs "$expected") || fail "import { NamedSemaphore } from 'named-semaphore' failed"
}

begin "require and import, from the prebuild alone"
check_loads "$pkg/prebuilds/linux-x64/named-semaphore.glibc.node"

begin "its types compile"
quiet node "$here/node_modules/typescript/bin/tsc" --noEmit --strict --skipLibCheck false \
  --module nodenext --moduleResolution nodenext --target es2022 --lib es2022,esnext.disposable \
  --typeRoots "$here/node_modules/@types" --types node "$app/check.ts"
echo "tsc: ok"

begin "arethetypeswrong: node10, node16 (CJS and ESM), bundler"
quiet node "$here/node_modules/@arethetypeswrong/cli/dist/index.js" --profile strict "$tgz"
echo "attw: no problems"

begin "strict tsc of a consumer of every entry point (node10, node16 CJS and ESM, bundler), without fastify"
types="$work/types"
mkdir "$types"
echo '{ "name": "pack-types-app", "version": "1.0.0", "private": true }' >"$types/package.json"
quiet bash -c 'cd "$1" && npm install --ignore-scripts --no-audit --no-fund --prefer-offline "$2" prom-client@15 @types/node@20' _ "$types" "$tgz"
[ ! -e "$types/node_modules/fastify" ] || fail "fastify got installed into the types check"
cp "$here/test/types/consumer.ts" "$types/consumer.ts"
cp "$here/test/types/consumer.ts" "$types/consumer.mts"
cp "$here/test/types/fastify.mts" "$types/fastify.mts"
tsc_strict() {
  quiet bash -c 'cd "$1" && shift && node "$0" --noEmit --strict --skipLibCheck false --target es2022 --lib es2022,esnext.disposable --types node "$@"' \
    "$here/node_modules/typescript/bin/tsc" "$types" "$@"
}
tsc_strict --module commonjs --moduleResolution node10 --esModuleInterop consumer.ts && echo "tsc node10 (CommonJS): ok"
tsc_strict --module node16 --moduleResolution node16 consumer.ts && echo "tsc node16, CommonJS: ok"
tsc_strict --module node16 --moduleResolution node16 consumer.mts && echo "tsc node16, ESM: ok"
tsc_strict --module esnext --moduleResolution bundler consumer.ts && echo "tsc bundler: ok"
quiet bash -c 'cd "$1" && npm install --ignore-scripts --no-audit --no-fund --prefer-offline fastify@5' _ "$types"
tsc_strict --module node16 --moduleResolution node16 fastify.mts && echo "tsc with fastify, ESM default import and request.busy: ok"

begin "every JavaScript and TypeScript block of README.md and docs/*.md, run as written"
# In the consumer above (the package from the tarball, prom-client, fastify), with what the samples use.
quiet bash -c 'cd "$1" && npm install --ignore-scripts --no-audit --no-fund --prefer-offline express@4 morgan@1' _ "$types"
node "$src/test/docs/run.js" "$types" || fail "a documentation sample failed (above)"

begin "no binary: the message"
rm -rf "$pkg/prebuilds"
if (cd "$app" && node check.cjs none) >"$work/nobinary.log" 2>&1; then
  fail "require() worked with neither prebuild nor build"
fi
grep -q 'no prebuilt binary fits linux-x64' "$work/nobinary.log" || { cat "$work/nobinary.log" >&2; fail "unclear message"; }
grep -q 'npm install-scripts approve named-semaphore && npm rebuild named-semaphore' "$work/nobinary.log" ||
  { cat "$work/nobinary.log" >&2; fail "the message does not give the build commands"; }
echo "message: $(grep -m1 '^Error: .*no prebuilt binary fits' "$work/nobinary.log" | sed 's/^Error: //')"

begin "build from source: npm install-scripts approve named-semaphore && npm rebuild named-semaphore"
quiet bash -c 'cd "$1" && npm install-scripts approve named-semaphore && npm rebuild named-semaphore' _ "$app"
[ -f "$pkg/build/Release/named_semaphore.node" ] || fail "npm rebuild made no build/Release/named_semaphore.node"
[ ! -e "$pkg/prebuilds" ] || fail "prebuilds/ came back"

begin "require and import, from build/Release"
check_loads "$pkg/build/Release/named_semaphore.node"

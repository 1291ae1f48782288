#!/usr/bin/env bash
# npm run test:sanitize — the test suite against an ASan + UBSan build.
#
# In a copy of this checkout (this one's build/ is left alone), builds the
# addon with `node-gyp rebuild --sanitize=true` (see binding.gyp), then runs
# the tests with gcc's ASan and UBSan runtimes preloaded into node and every
# child process. Fails if the tests fail or a sanitizer reports anything.
#
# SANITIZE_TESTS='test/a.test.js test/b.test.js' runs only those files.
# KEEP_TMP=1 keeps the temporary folder.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/nsem-sanitize.XXXXXX")
chmod 755 "$work" # some tests load the package as another user (nobody)
step=setup
started=$SECONDS

finish() {
  local rc=$?
  if [ "${KEEP_TMP:-0}" = 1 ]; then echo "test:sanitize: kept $work"; else rm -rf "$work"; fi
  if [ $rc -eq 0 ]; then
    echo "test:sanitize: PASS ($((SECONDS - started))s)"
  else
    echo "test:sanitize: FAIL at step '$step' (exit $rc)" >&2
  fi
  exit $rc
}
trap finish EXIT
label=test:sanitize
# shellcheck source=test/script-lib.sh
. "$here/test/script-lib.sh"

begin "sanitizer runtimes"
asan=$(gcc -print-file-name=libasan.so)
ubsan=$(gcc -print-file-name=libubsan.so)
[ -e "$asan" ] || fail "gcc has no libasan.so (gcc -print-file-name=libasan.so said '$asan')"
[ -e "$ubsan" ] || fail "gcc has no libubsan.so (gcc -print-file-name=libubsan.so said '$ubsan')"
echo "$asan"
echo "$ubsan"

begin "copy the package"
pkg="$work/package"
copy_checkout "$here" "$pkg"
cd "$pkg"

begin "build:ts"
quiet npm run build:ts

begin "node-gyp rebuild --sanitize=true"
quiet npm run build:native -- --sanitize=true --jobs=max
addon=build/Release/named_semaphore.node
[ -f "$addon" ] || fail "no $addon"
# (Into a variable first: `ldd | grep -q` can fail under pipefail when grep
# exits before ldd has written everything.)
libs=$(ldd "$addon")
grep -q 'libasan\.so' <<<"$libs" || { echo "$libs" >&2; fail "$addon does not link libasan: the sanitize variable had no effect"; }
grep -q 'libubsan\.so' <<<"$libs" || { echo "$libs" >&2; fail "$addon does not link libubsan"; }
echo "$addon links $(grep -oE '^\s*lib(a|ub)san\.so\.[0-9]+' <<<"$libs" | tr -d ' \t' | tr '\n' ' ')"

begin "tests under ASan + UBSan"
reports="$work/reports"
mkdir "$reports"
chmod 1777 "$reports" # children that switch user write here too
# Leak reports would be V8's and Node's own allocations, not ours.
export LD_PRELOAD="$asan $ubsan"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=0:log_path=$reports/asan"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$reports/ubsan"
export NAMED_SEMAPHORE_SANITIZE=1
# shellcheck disable=SC2086 # SANITIZE_TESTS is a list of files
set +e
node --test --test-concurrency=1 ${SANITIZE_TESTS:-test/*.test.js} 2>&1 | tee "$work/tests.log"
tests_rc=${PIPESTATUS[0]}
set -e
unset LD_PRELOAD ASAN_OPTIONS UBSAN_OPTIONS

begin "sanitizer reports"
found=0
for report in "$reports"/*; do
  [ -e "$report" ] || continue
  found=1
  echo "=== $report" >&2
  cat "$report" >&2
done
if grep -nE 'ERROR: AddressSanitizer|runtime error:|SUMMARY: (Address|UndefinedBehavior)Sanitizer|ASan runtime does not come first' "$work/tests.log" >&2; then
  found=1
fi
[ $found -eq 0 ] || fail "ASan/UBSan reported errors (above)"
echo "none"

begin "test results"
grep -E '^# (tests|pass|fail|cancelled|skipped|todo)' "$work/tests.log" || true
[ "$tests_rc" -eq 0 ] || fail "the tests failed under the sanitizers (node --test exit $tests_rc)"

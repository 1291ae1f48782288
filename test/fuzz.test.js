'use strict';
// A seeded, model-checked fuzz of the raw binding: every native entry point,
// at least 100,000 calls each, with arbitrary arguments in every calling
// style, on open, closed and collected handles. The body runs in a child
// process (test/fixtures/fuzz-child.js) so that a crash shows as a signal.
//
// Repeat a run with FUZZ_SEED=<seed>; FUZZ_CALLS changes the calls per entry
// point (default 100000).
const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const { uniqueName, run, fixture } = require('./helpers');

const seed = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) >>> 0 : crypto.randomInt(2 ** 32);
const calls = Number(process.env.FUZZ_CALLS ?? 100000);

// A name of exactly 251 bytes after its '/', the longest glibc takes.
function longestName() {
  for (let pad = 200; ; ) {
    const name = uniqueName('L'.padEnd(pad, 'x'));
    const len = Buffer.byteLength(name);
    if (len === 252) return name;
    pad += 252 - len;
  }
}

test(`fuzz: every native entry point, ${calls} calls each, checked against a model (seed ${seed})`, { timeout: 240000 }, async (t) => {
  t.diagnostic(`seed ${seed}: repeat with FUZZ_SEED=${seed} node --test test/fuzz.test.js`);
  const names = [uniqueName('fz'), uniqueName('fz'), uniqueName('fz'), uniqueName('fz'), longestName(), uniqueName('s\uD800')];
  const before = new Set(fs.readdirSync('/dev/shm'));
  const start = Date.now();
  let r;
  try {
    r = await run(process.execPath, ['--expose-gc', fixture('fuzz-child.js'), seed, JSON.stringify(names), calls, 20000], {
      timeoutMs: 200000,
    });
  } catch (e) {
    assert.fail(`seed ${seed}: ${e.message}`);
  }
  const took = Date.now() - start;
  const tail = (s) => s.split('\n').filter((l) => !/DEP0168|trace-deprecation/.test(l)).join('\n').slice(-6000);
  assert.equal(r.signal, null, `seed ${seed}: the fuzz child died of ${r.signal}\n${tail(r.stderr)}`);
  assert.equal(r.code, 0, `seed ${seed}: the fuzz child exited with ${r.code}\n${tail(r.stderr)}`);
  const line = r.stdout.split('\n').find((l) => l.startsWith('FUZZ-SUMMARY '));
  assert.ok(line, `seed ${seed}: no summary\n${r.stdout}\n${tail(r.stderr)}`);
  const s = JSON.parse(line.slice('FUZZ-SUMMARY '.length));

  // Every entry point was called often enough.
  const entryPoints = ['open', 'unlink', 'setSettle', 'post', 'postCount', 'tryWait', 'value', 'waitSync', 'wait', 'cancel', 'close'];
  for (const e of entryPoints) assert.ok(s.calls[e] >= calls, `${e}: ${s.calls[e]} calls`);
  for (const [e, n] of Object.entries(s.calls)) assert.ok(n >= calls, `${e}: ${n} calls`);
  if (s.unknown.length > 0) t.diagnostic(`entry points this fuzz does not know yet (not fuzzed): ${s.unknown.join(', ')}`);

  // ...and reached the paths that matter, not only the argument checks.
  const o = s.outcomes;
  const saw = (what, result) => assert.ok((o[what]?.[result] ?? 0) > 0, `never saw ${what} -> ${result}: ${JSON.stringify(o[what])}`);
  for (const result of ['handle', '2', '17', '22', '36']) saw('open', result);
  for (const result of ['0', '2', '22']) saw('unlink', result);
  for (const result of ['undefined', '75' /* EOVERFLOW */]) saw('post', result);
  for (const result of ['undefined', '11' /* EAGAIN */, '22' /* EINVAL */]) saw('tryWaitCount', result);
  saw('closed.drain', '-9');
  for (const result of ['undefined', '22', '75']) saw('postCount', result);
  for (const result of ['0', '22']) saw('wait', result);
  for (const result of ['undefined', '11']) saw('tryWait', result);
  for (const result of ['undefined', '-116' /* posted, the sum stale */]) saw('postAndSum', result);
  saw('closed.postAndSum', '9');
  for (const result of ['0', '22', '110']) saw('waitSync', result);
  for (const result of ['true', 'false']) saw('cancel', result);
  for (const m of ['post', 'postCount', 'tryWait', 'waitSync', 'wait']) saw(`closed.${m}`, '9');
  saw('closed.value', '-9');
  saw('closed.cancel', 'false');
  const k = calls / 100000; // the minimums below are for 100,000 calls
  assert.ok(s.styles.every((n) => n > 1000 * k), `calling styles ${s.styles}`);
  const { settledToken, settledTimeout, cancelled, orphaned, owned } = s;
  const reached = { settledToken, settledTimeout, cancelled, orphaned, owned };
  assert.ok(settledToken > 1000 * k && settledTimeout > 100 * k && cancelled > 1000 * k, JSON.stringify(reached));
  assert.ok(orphaned > 100 * k && owned > 10 * k, JSON.stringify(reached));
  assert.ok(s.checked > 20, `only ${s.checked} semaphores had their final value checked`);

  // Nothing but our own names was created.
  const stray = fs.readdirSync('/dev/shm').filter((f) => !before.has(f) && f.includes(`nsem-test-${process.pid}-`) && !names.some((n) => f === `sem.${Buffer.from(n.slice(1)).toString()}`));
  assert.deepEqual(stray, []);

  t.diagnostic(
    `${s.ops} calls in ${s.fuzzMs} ms (+ phase 2 ${s.phase2Ms} ms), child ${took} ms; ` +
      `${s.checked} final values checked exactly, ${s.tainted} range-checked; ` +
      `${s.opened} handles opened (${s.orphaned} left to GC, ${s.owned} gauge shares); ` +
      `waits: ${s.settledToken} took a token, ${s.settledTimeout} timed out, ${s.cancelled} cancelled`,
  );
});

'use strict';
// npm test: the whole suite, twice.
//   phase 1  as this host allows: io_uring waits where the kernel has them
//   phase 2  under test/fixtures/no-io-uring.c, a seccomp filter refusing
//            io_uring as Docker's default profile does, so the waiter-thread
//            path containers get is what runs (not just NAMED_SEMAPHORE_WAITER)
//   phase 3  the wait tests again with futex_waitv refused too, as on a kernel
//            before 5.16 (and under qemu-user): a waiter thread per semaphore
// Each phase is one `node --test` run, its output passed through; the closing
// lines sum up all, and the exit status is non-zero if any failed.
//
//   node test/run-phases.js [--phase=1|2|3] [test files...]   (default: every phase, its files)
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { noIoUringLauncher, probeIoUring } = require('./no-io-uring');

const root = path.join(__dirname, '..');
const args = process.argv.slice(2);
const only = args.find((a) => a.startsWith('--phase='))?.slice('--phase='.length);
let files = args.filter((a) => !a.startsWith('--'));
const explicitFiles = files.length > 0;
if (files.length === 0) {
  files = fs
    .readdirSync(__dirname)
    .filter((f) => f.endsWith('.test.js'))
    .sort()
    .map((f) => path.join('test', f));
}

// Only the kernel's answer may choose the mechanism in either phase.
const env = { ...process.env };
if (env.NAMED_SEMAPHORE_WAITER !== undefined) {
  console.log(`run-phases: ignoring NAMED_SEMAPHORE_WAITER=${env.NAMED_SEMAPHORE_WAITER} (each phase sets its own path)`);
  delete env.NAMED_SEMAPHORE_WAITER;
}

const phases = [
  { n: '1', title: 'the host as it is (io_uring waits where the kernel has them)', prefix: () => [] },
  {
    n: '2',
    title: 'under a seccomp filter refusing io_uring, as in a Docker container (waiter threads)',
    prefix: () => {
      const launcher = noIoUringLauncher();
      // A launcher that lets io_uring through would make this phase a copy of phase 1.
      const probe = probeIoUring([launcher]);
      if (probe.setup !== 'EPERM') throw new Error(`${launcher} did not refuse io_uring_setup: ${JSON.stringify(probe)}`);
      return [launcher];
    },
  },
  {
    n: '3',
    title: 'the wait tests with io_uring and futex_waitv refused, as on a kernel before 5.16 (a waiter thread per semaphore)',
    files: ['hardship', 'wait', 'worker', 'lifecycle', 'hostile', 'interop', 'processes'].map((f) => path.join('test', `${f}.test.js`)),
    prefix: () => [noIoUringLauncher(), '--no-futex-waitv'],
  },
].filter((p) => !only || p.n === only);

// How the package waits under prefix, as the addon itself reports it.
function mechanism(prefix) {
  const argv = [
    ...prefix,
    process.execPath,
    '-p',
    `require(${JSON.stringify(root)}).NamedSemaphore.waitMechanism + (require(${JSON.stringify(path.join(root, 'dist', 'native.js'))}).binding.waitersShareThreads ? '' : ' (one waiter thread per semaphore: no futex_waitv)')`,
  ];
  const r = spawnSync(argv[0], argv.slice(1), { env, encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : `unknown (${(r.stderr || r.error?.message || '').trim().split('\n')[0]})`;
}

let child;
let interrupted = false;
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    interrupted = true;
    if (child) child.kill(signal);
  });
}

// Runs one phase's `node --test`, echoing its output; resolves its results,
// read from the reporter's output (tap when piped, spec on a terminal).
function runPhase(phase) {
  const result = { ...phase, counts: {}, skips: [], failures: new Set(), code: null, signal: null, error: null, seconds: 0 };
  let prefix;
  try {
    prefix = phase.prefix();
  } catch (e) {
    result.error = e.message;
    console.log(`run-phases: phase ${phase.n} cannot start: ${e.message}`);
    return Promise.resolve(result);
  }
  const reporter = process.stdout.isTTY ? ['--test-reporter=spec'] : [];
  // Phase 3 runs its own files, unless files were named.
  const phaseFiles = phase.files && !explicitFiles ? phase.files : files;
  const argv = [...prefix, process.execPath, '--test', '--test-concurrency=1', ...reporter, ...phaseFiles];
  console.log(`\n===== phase ${phase.n}: ${phase.title}`);
  console.log(`===== wait mechanism: ${mechanism(prefix)}; ${phaseFiles.length} files`);
  const started = Date.now();
  return new Promise((resolve) => {
    child = spawn(argv[0], argv.slice(1), { cwd: root, env, stdio: ['ignore', 'pipe', 'inherit'] });
    let pending = '';
    const line = (raw) => {
      // eslint-disable-next-line no-control-regex
      const text = raw.replace(/\x1b\[[0-9;]*m/g, '');
      const count = /^(?:# |ℹ )(tests|suites|pass|fail|cancelled|skipped|todo|duration_ms) ([\d.]+)$/.exec(text);
      if (count) result.counts[count[1]] = Number(count[2]); // the last one is the run's total
      const skip = /^\s*ok \d+ - (.*) # SKIP(?: (.*))?$/.exec(text) || /^\s*﹣ (.*?) \([\d.]+m?s\)(?: # (.*))?$/.exec(text);
      if (skip) result.skips.push(`${skip[1]}: ${skip[2] || '(no reason given)'}`);
      const failure = /^\s*not ok \d+ - (.*?)(?: # TODO.*)?$/.exec(text) || /^\s*✖ (.*?) \([\d.]+m?s\)$/.exec(text);
      if (failure && !/# TODO/.test(text)) result.failures.add(failure[1]);
    };
    child.stdout.on('data', (chunk) => {
      process.stdout.write(chunk);
      const lines = (pending + chunk).split('\n');
      pending = lines.pop();
      lines.forEach(line);
    });
    child.on('error', (e) => (result.error = e.message));
    child.on('close', (code, signal) => {
      if (pending) line(pending);
      child = undefined;
      Object.assign(result, { code, signal, seconds: Math.round((Date.now() - started) / 1000) });
      resolve(result);
    });
  });
}

function ok(r) {
  return r.code === 0 && !r.error;
}

(async () => {
  const results = [];
  for (const phase of phases) {
    if (interrupted) break;
    results.push(await runPhase(phase));
  }
  const c = (r, k) => r.counts[k] ?? 0;
  console.log('\n===== summary of every phase');
  for (const r of results) {
    const status = ok(r) ? 'ok' : `FAILED (${r.error || (r.signal ? `signal ${r.signal}` : `exit ${r.code}`)})`;
    console.log(`phase ${r.n}: ${r.title}`);
    console.log(
      `  tests ${c(r, 'tests')}, pass ${c(r, 'pass')}, fail ${c(r, 'fail')}, cancelled ${c(r, 'cancelled')}, skipped ${c(r, 'skipped')}, todo ${c(r, 'todo')}; ${r.seconds}s: ${status}`,
    );
    for (const s of r.skips) console.log(`  skipped: ${s}`);
    for (const f of r.failures) console.log(`  FAILED: ${f}`);
  }
  const failed = results.filter((r) => !ok(r));
  const all = phases.length === results.length && failed.length === 0;
  const sum = (k) => results.reduce((n, r) => n + c(r, k), 0);
  // The closing lines, in node --test's own form, are over every phase.
  for (const k of ['tests', 'pass', 'fail', 'cancelled', 'skipped', 'todo']) console.log(`# ${k} ${sum(k)}`);
  console.log(
    all
      ? `npm test: PASS (${results.map((r) => `phase ${r.n}`).join(' and ')})`
      : `npm test: FAIL (${[...failed.map((r) => `phase ${r.n}`), ...(interrupted ? ['interrupted'] : [])].join(', ')})`,
  );
  process.exitCode = all ? 0 : 1;
})();

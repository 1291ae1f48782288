'use strict';
// The busy-server demo (npm start), run as a user runs it, in its short form:
// it must end well, print its summary, write a well-formed SVG, and leave no
// process and no semaphore behind, also when interrupted with SIGINT.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const demo = path.join(__dirname, '..', 'examples', 'busy-demo.js');
const { findNginx } = require('../examples/nginx-proxy');
const withNginx = findNginx() !== null;
let runs = 0;

/**
 * Starts the demo with a gauge of its own, in a folder of its own (where its
 * chart goes: `svg`, or under `out`); `until` may signal it when its output matches.
 */
function runDemo(args, { until, signal = 'SIGINT', timeoutMs = 45000, out } = {}) {
  const tag = `nsem-test-${process.pid}-demo-${++runs}`;
  const cwd = fs.mkdtempSync(path.join(os.tmpdir(), `${tag}-`));
  const svg = path.join(cwd, out ?? '', 'busy-demo.svg');
  const outArgs = out === undefined ? [] : ['--out', out];
  const child = spawn(process.execPath, [demo, '--gauge', `/${tag}`, ...outArgs, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    let signalled = false;
    child.stdout.on('data', (d) => {
      stdout += d;
      if (until && !signalled && until.test(stdout)) {
        signalled = true;
        child.kill(signal);
      }
    });
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the demo did not end within ${timeoutMs} ms\n${stdout}\n${stderr}`));
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code, sig) => {
      clearTimeout(timer);
      resolve({ code, signal: sig, stdout, stderr, tag, svg, cwd, pid: child.pid, signalled });
    });
  });
}

/** The worker PIDs the demo printed as it started them. */
function workerPids(stdout) {
  return [...stdout.matchAll(/^ {2}worker (\d+) started$/gm)].map((m) => Number(m[1]));
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return error.code === 'EPERM';
  }
}

/** Everything the demo could leave behind: its semaphores (the gauge's shares too) and its workers. */
function assertNothingLeft({ stdout, tag }) {
  const left = fs.readdirSync('/dev/shm').filter((f) => f.startsWith(`sem.${tag}`));
  assert.deepEqual(left, [], 'semaphores left in /dev/shm');
  for (const pid of workerPids(stdout)) assert.equal(alive(pid), false, `worker ${pid} still exists`);
}

/** Checks that every tag is closed in order; returns the element names seen. */
function checkTags(xml) {
  const stack = [];
  const names = [];
  const body = xml.replace(/<!--[\s\S]*?-->/g, '');
  for (const m of body.matchAll(/<(\/?)([A-Za-z][\w:.-]*)((?:\s+[\w:.-]+="[^"<]*")*)\s*(\/?)>/g)) {
    const [, closing, name, , selfClosing] = m;
    if (closing) assert.equal(stack.pop(), name, `</${name}> closes the wrong element`);
    else if (!selfClosing) stack.push(name);
    names.push(name);
  }
  assert.deepEqual(stack, [], 'unclosed elements');
  // Every '<' must have been part of a tag matched above.
  const tags = body.match(/<[^>]*>/g) ?? [];
  assert.equal(tags.length, (body.match(/</g) ?? []).length, 'a stray < in the text');
  for (const tag of tags) assert.match(tag, /^<\/?[A-Za-z][\w:.-]*((\s+[\w:.-]+="[^"<]*")*)\s*\/?>$/, `malformed tag ${tag}`);
  for (const entity of body.match(/&[^;\s]*;?/g) ?? []) assert.match(entity, /^&(amp|lt|gt|quot|apos|#\d+);$/, `bad entity ${entity}`);
  return names;
}

test('npm start: the short demo ends well, prints its summary and chart, leaves nothing behind', async (t) => {
  const started = Date.now();
  const run = await runDemo(['--short']);
  t.after(() => fs.rmSync(run.cwd, { recursive: true, force: true }));
  try {
    // Its length is reported, not asserted: these machines are shared and noisy.
    t.diagnostic(`the short demo took ${Date.now() - started} ms`);
    checkShortRun(run);
  } catch (error) {
    error.message += `\n--- the demo's output:\n${run.stdout}${run.stderr}`;
    throw error;
  }
});

function checkShortRun(run) {
  const { code, stdout, stderr } = run;
  assert.equal(code, 0, `exit ${code}\n${stdout}\n${stderr}`);

  // The story: access log lines with busy=N, a worker SIGKILLed and replaced, a summary.
  assert.match(stdout, /\[worker \d+\] GET \/sleep 200 \d+ ms busy=\d+/);
  assert.match(stdout, /\[worker \d+\] GET \/cpu 200 \d+ ms busy=\d+/);
  assert.match(stdout, /\[worker \d+\] SIGKILL now, in the middle of [1-9]\d* request/);
  assert.match(stdout, /reapOnWorkerExit removed its share/);
  assert.ok(workerPids(stdout).length >= 3, 'two workers and a replacement');
  assert.match(stdout, /^summary \(/m);
  assert.match(stdout, /requests {5}\d+ answered, \d+ failed/);
  assert.match(stdout, /latency {6}p50 \d+ ms, p99 \d+ ms at the clients/);
  assert.match(stdout, /peak busy {4}\d+/);
  assert.match(stdout, /peak queued {2}\d+/);
  assert.match(stdout, /busy once the load stopped: 0 \(exact/);
  const peakBusy = Number(/peak busy {4}(\d+)/.exec(stdout)[1]);
  assert.ok(peakBusy >= 4 && peakBusy <= 16, `peak busy ${peakBusy}`);
  assert.match(stdout, new RegExp(`chart: ${run.svg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'));
  assert.match(stdout, new RegExp(`gauge /${run.tag} is unlinked`));

  // nginx in front, where it is installed: its access log's lines with busy=, for the /cpu step where the queue builds.
  if (withNginx) {
    const dir = /nginx in front on http:\/\/127\.0\.0\.1:\d+ \(config and logs in (\S+)\)/.exec(stdout)?.[1];
    assert.ok(dir, 'nginx was started');
    assert.match(stdout, /^nginx's access log \(\d+ lines\)/m);
    assert.match(stdout, /step 6, 16 clients on GET \/cpu, where the queue built/);
    const cpuLines = [...stdout.matchAll(/^ {4}"GET \/cpu\?step=6 HTTP\/1\.1" 200 rt=\S+ urt=(\S+) uct=\S+ busy=(\d+)$/gm)];
    assert.ok(cpuLines.length >= 1, "nginx's lines of the /cpu step");
    for (const [, , busy] of cpuLines) assert.ok(Number(busy) >= 1 && Number(busy) <= 2, `busy=${busy} with two blocked workers`);
    assert.equal(fs.existsSync(dir), false, "nginx's folder is removed");
  } else {
    assert.match(stdout, /nginx is not installed \(apt-get install nginx\): with nginx in front/);
  }

  // The chart: one well-formed SVG document with the series and the load steps.
  const svg = fs.readFileSync(run.svg, 'utf8').trim();
  assert.ok(svg.startsWith('<svg '), 'starts with <svg');
  assert.ok(svg.endsWith('</svg>'), 'ends with </svg>');
  assert.match(svg, /^<svg [^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  const names = checkTags(svg);
  assert.equal(names.filter((n) => n === 'svg').length, 2, 'one <svg> element');
  for (const id of ['busy', 'queued', 'clients']) {
    const m = new RegExp(`<polyline id="${id}"[^>]* points="([^"]+)"`).exec(svg);
    assert.ok(m, `a polyline for ${id}`);
    const points = m[1].split(' ');
    assert.ok(points.length > 20, `${id}: ${points.length} points`);
    for (const p of points) assert.match(p, /^\d+(\.\d+)?,\d+(\.\d+)?$/, `${id}: point ${p}`);
  }
  assert.equal((svg.match(/<rect class="step"/g) ?? []).length, 6, 'one band per load step');
  assert.match(svg, /SIGKILL worker \d+/);
  // Bands say how many clients; the lesson is written where it happens.
  for (const n of ['1 client<', '2 clients<', '4 clients<', '8 clients<', '16 clients<']) assert.ok(svg.includes(n), n);
  const cpuQueued = Number(/^step 6\/6:[^]*?-> busy peak \d+, queued peak (\d+)/m.exec(stdout)[1]);
  if (cpuQueued > 0) {
    assert.match(svg, /<circle id="lesson"/);
    assert.match(svg, /busy = 2: every worker is busy,/);
  }
  // The chart is where it said, in the current folder, and nowhere else.
  assert.equal(fs.readdirSync(run.cwd).join(), 'busy-demo.svg');
  assert.equal(fs.existsSync(path.join(os.tmpdir(), `busy-demo-${run.pid}.svg`)), false);

  assertNothingLeft(run);
}

test('Ctrl-C during the demo: exit 130, no worker and no semaphore left; without nginx it says what nginx would add', async () => {
  const run = await runDemo(['--no-nginx'], { until: /^step 2\//m, out: 'charts' });
  assert.match(run.stdout, /no nginx \(--no-nginx\): with nginx in front, the clients would go through it/);
  assert.doesNotMatch(run.stdout, /nginx in front on/);
  assert.ok(run.signalled, `the demo never reached step 2\n${run.stdout}\n${run.stderr}`);
  assert.equal(run.code, 130, `exit ${run.code} (${run.signal})\n${run.stdout}\n${run.stderr}`);
  assert.match(run.stdout, /SIGINT: stopping the workers/);
  assert.ok(workerPids(run.stdout).length >= 2);
  assertNothingLeft(run);
  assert.equal(fs.existsSync(run.svg), false, 'no chart from an interrupted run');
  fs.rmSync(run.cwd, { recursive: true, force: true });
});

test('SIGINT while the workers start, and SIGTERM mid-run, leave nothing behind either', async () => {
  const early = await runDemo([], { until: /worker \d+ started/ });
  assert.ok(early.signalled);
  assert.equal(early.code, 130, `exit ${early.code} (${early.signal})\n${early.stdout}\n${early.stderr}`);
  assertNothingLeft(early);
  fs.rmSync(early.cwd, { recursive: true, force: true });

  const term = await runDemo(['--short'], { until: /^step 4\//m, signal: 'SIGTERM' });
  assert.ok(term.signalled);
  assert.equal(term.code, 143, `exit ${term.code} (${term.signal})\n${term.stdout}\n${term.stderr}`);
  assertNothingLeft(term);
  const dir = /config and logs in (\S+)\)/.exec(term.stdout)?.[1];
  if (withNginx) assert.equal(fs.existsSync(dir), false, "nginx stopped and its folder removed");
  fs.rmSync(term.cwd, { recursive: true, force: true });
});

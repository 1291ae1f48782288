'use strict';
// The named-semaphore command, run as a user runs it: node dist/cli.js ... in
// a child process, checking stdout, stderr and the exit status.
const test = require('node:test');
const { after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn, spawnSync } = require('node:child_process');
const { NamedSemaphore, Gauge } = require('..');
const { uniqueName, run, sleep } = require('./helpers');

const CLI = path.join(__dirname, '..', 'dist', 'cli.js');
const shmFile = (name) => `/dev/shm/sem.${name.slice(1)}`;

const cli = (...args) => run(process.execPath, [CLI, ...args.map(String)], { timeoutMs: 15000 });

// Gauges are several files; remove them all however the tests end.
const gauges = new Set();
const holders = new Set();
function gaugeName() {
  const name = uniqueName('gauge');
  gauges.add(name);
  return name;
}
after(() => {
  for (const child of holders) child.kill('SIGKILL');
  for (const name of gauges) {
    try {
      Gauge.unlink(name);
    } catch (error) {
      console.error(`could not remove the gauge ${name}: ${error.message}`);
    }
  }
});

/** Exit status `status`, nothing on stdout, and one line of stderr matching `pattern`. */
function assertFails(result, status, pattern) {
  assert.equal(result.code, status, `exit status; stderr: ${result.stderr}`);
  assert.equal(result.stdout, '');
  assert.match(result.stderr, /^named-semaphore: [^\n]+\n$/, 'one line on stderr');
  assert.doesNotMatch(result.stderr, /\n\s+at /, 'no stack trace');
  assert.match(result.stderr, pattern);
}

function assertOk(result) {
  assert.equal(result.code, 0, `exit status; stderr: ${result.stderr}`);
  assert.equal(result.stderr, '');
}

/** A process that holds a share of `value` in the gauge `name` until killed. */
async function holdShare(name, value) {
  const code = `const g = new (require(${JSON.stringify(path.join(__dirname, '..'))}).Gauge)(${JSON.stringify(name)});
    g.release(${value}); process.stdout.write('ready\\n'); setInterval(() => {}, 1000);`;
  const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  holders.add(child);
  child.exited = new Promise((resolve) => child.on('exit', resolve));
  await new Promise((resolve, reject) => {
    child.stdout.on('data', (d) => String(d).includes('ready') && resolve());
    child.on('exit', () => reject(new Error('gauge holder exited early')));
  });
  return child;
}

test('--help, -h and help: for the program and for each command, on stdout, exit 0', async () => {
  const commands = ['ls', 'get', 'watch', 'create', 'post', 'wait', 'unlink', 'reap'];
  for (const args of [['--help'], ['-h'], ['help']]) {
    const r = await cli(...args);
    assertOk(r);
    assert.match(r.stdout, /^Usage: named-semaphore <command>/);
    for (const command of commands) assert.match(r.stdout, new RegExp(`^  ${command}\\b`, 'm'));
  }
  const results = await Promise.all(
    commands.flatMap((command) => [cli(command, '--help'), cli(command, 'NAME', '-h'), cli('help', command)]),
  );
  results.forEach((r, i) => {
    assertOk(r);
    assert.match(r.stdout, new RegExp(`^Usage: named-semaphore ${commands[Math.floor(i / 3)]}\\b`));
  });
  const watchHelp = results[commands.indexOf('watch') * 3].stdout;
  assert.match(watchHelp, /--interval MS/);
  assert.match(watchHelp, /--count N/);
});

test('--version and -V print the version; the help documents them', async () => {
  const { version } = require('../package.json');
  for (const flag of ['--version', '-V']) {
    const r = await cli(flag);
    assertOk(r);
    assert.equal(r.stdout, `${version}\n`);
  }
  const help = await cli('--help');
  assert.match(help.stdout, /^ {2}-V, --version +print the version/m);
  assert.match(help.stdout, /^ {2}-h, --help +/m);
});

test('names with control characters are shown escaped, in ls and in errors', async () => {
  const name = `${uniqueName('ctl')}\x1b[31m\n\x07`;
  const shownName = name.replace('\x1b', '\\x1b').replace('\n', '\\x0a').replace('\x07', '\\x07');
  const sem = new NamedSemaphore(name, { exclusive: true, initialValue: 2 });
  try {
    const r = await cli('ls');
    assertOk(r);
    // eslint-disable-next-line no-control-regex
    assert.doesNotMatch(r.stdout, /[\x00-\x09\x0b-\x1f\x7f]/, 'no control character but newlines');
    const line = r.stdout.split('\n').find((l) => l.startsWith(shownName));
    assert.ok(line, `a line for ${shownName} in:\n${r.stdout}`);
    assert.match(line, /^\S+ +semaphore +2 /);
    const json = JSON.parse((await cli('ls', '--json')).stdout);
    assert.equal(json.find((e) => e.name === name)?.value, 2, '--json keeps the exact name');
    assertFails(await cli('reap', name), 1, new RegExp(`EINVAL: '${shownName.replace(/[\\[]/g, '\\$&')}' is a semaphore`));
  } finally {
    sem.close();
    NamedSemaphore.unlink(name);
  }
});

test('usage errors exit 2 with one line on stderr', async () => {
  const name = uniqueName();
  const cases = [
    [[], /missing command/],
    [['bogus'], /unknown command 'bogus'/],
    [['--json', 'ls'], /unknown option '--json'/],
    [['ls', '--bogus'], /unknown option '--bogus'.*ls --help/],
    [['ls', 'extra'], /unexpected argument 'extra'/],
    [['get'], /missing NAME.*get --help/],
    [['get', name, 'extra'], /unexpected argument 'extra'/],
    [['get', 'a/b'], /'\/' after the leading one/],
    [['get', ''], /must not be empty/],
    [['post', name, 'abc'], /N must be an integer from 1 to 2147483647, not 'abc'.*post --help/],
    [['post', name, '0'], /N must be an integer/],
    [['post', name, '2147483648'], /N must be an integer/],
    // A negative count is out of range, not an unknown option.
    [['post', name, '-1'], /N must be an integer from 1 to 2147483647, not '-1'.*post --help/],
    [['post', name, '-2.5'], /N must be an integer from 1 to 2147483647, not '-2.5'/],
    [['create', name, '--value', '-1'], /--value must be an integer from 0 to 2147483647, not '-1'/],
    [['watch', name, '--count=-3'], /--count must be an integer from 1 .*, not '-3'/],
    [['post', name, '-x'], /unknown option '-x'/],
    [['create', name, '--value=1.5'], /--value must be an integer/],
    [['create', name, '--mode', '999'], /--mode must be octal/],
    [['create', name, '--exclusive=yes'], /'--exclusive' takes no value/],
    [['watch', name, '--interval'], /'--interval' needs a value/],
    [['watch', name, '--interval', '0'], /--interval must be an integer/],
    [['watch', name, '--count', 'x'], /--count must be an integer/],
    [['wait', name, '--timeout', '1.5'], /--timeout must be an integer/],
    [['unlink'], /missing NAME/],
    [['reap'], /missing NAME/],
  ];
  const results = await Promise.all(cases.map(([args]) => cli(...args)));
  results.forEach((r, i) => assertFails(r, 2, cases[i][1]));
  assert.equal(fs.existsSync(shmFile(name)), false, 'nothing was created');
});

test('create, get (bare and --json), post and wait', async () => {
  const name = uniqueName();
  assertOk(await cli('create', name, '--value', '2'));
  let r = await cli('get', name);
  assertOk(r);
  assert.equal(r.stdout, '2\n');
  r = await cli('get', name.slice(1), '--json'); // the leading '/' is optional
  assertOk(r);
  assert.deepEqual(JSON.parse(r.stdout), { name, kind: 'semaphore', value: 2 });

  assertOk(await cli('post', name));
  assertOk(await cli('post', name, '3'));
  assert.equal((await cli('get', name)).stdout, '6\n');

  r = await cli('wait', name);
  assertOk(r);
  assert.equal(r.stdout, '');
  assertOk(await cli('wait', name, '--timeout', '0'));
  assertOk(await cli('wait', name, '--timeout', '1000'));
  const sem = new NamedSemaphore(name, { create: false });
  assert.equal(sem.value, 3);
  sem.close();
});

test('create: --mode is exact whatever the umask; an existing one is left alone; --exclusive fails on it', async () => {
  const name = uniqueName();
  const old = process.umask(0o077); // inherited by the child
  try {
    assertOk(await cli('create', name, '--mode', '0666', '--value', '5'));
  } finally {
    process.umask(old);
  }
  assert.equal(fs.statSync(shmFile(name)).mode & 0o7777, 0o666);

  let r = await cli('create', name, '--value', '1');
  assert.equal(r.code, 0);
  assert.match(r.stderr, /^named-semaphore: note: '.*' exists already; --value and --mode apply only when it is created\n$/);
  assert.equal((await cli('get', name)).stdout, '5\n');
  assertOk(await cli('create', name)); // no options given: nothing to note

  r = await cli('create', name, '--exclusive');
  assertFails(r, 1, new RegExp(`^named-semaphore: EEXIST: file already exists, sem_open '${name}'\n$`));

  const fresh = uniqueName();
  assertOk(await cli('create', fresh, '--exclusive'));
  assert.equal(fs.statSync(shmFile(fresh)).mode & 0o7777, 0o600);
  assert.equal((await cli('get', fresh)).stdout, '0\n');
});

test('operations on a missing name exit 1 with the errno code', async () => {
  const name = uniqueName();
  const enoent = new RegExp(`^named-semaphore: ENOENT: no such file or directory, sem_open '${name}'\n$`);
  const [get, post, wait, watch, reap, unlink] = await Promise.all([
    cli('get', name),
    cli('post', name),
    cli('wait', name, '--timeout', '10'),
    cli('watch', name, '--count', '1'),
    cli('reap', name),
    cli('unlink', name),
  ]);
  for (const r of [get, post, wait, watch, reap]) assertFails(r, 1, enoent);
  assertFails(unlink, 1, new RegExp(`^named-semaphore: ENOENT: no such file or directory, sem_unlink '${name}'\n$`));
  assert.equal(fs.existsSync(shmFile(name)), false, 'nothing was created');
});

test('post past SEM_VALUE_MAX fails with EOVERFLOW and changes nothing', async () => {
  const name = uniqueName();
  assertOk(await cli('create', name, '--value', '2147483647'));
  assertFails(await cli('post', name), 1, /^named-semaphore: EOVERFLOW: .*, sem_post '/);
  assert.equal((await cli('get', name)).stdout, '2147483647\n');
});

test('wait: times out with exit 1, or returns once another process posts', async () => {
  const name = uniqueName();
  assertOk(await cli('create', name));
  const started = Date.now();
  const r = await cli('wait', name, '--timeout', '150');
  assertFails(r, 1, new RegExp(`^named-semaphore: ETIMEDOUT: timed out after 150 ms, sem_wait '${name}'\n$`));
  assert.ok(Date.now() - started >= 150);
  assertFails(await cli('wait', name, '--timeout', '0'), 1, /ETIMEDOUT/);

  const waiting = cli('wait', name);
  await sleep(200);
  const sem = new NamedSemaphore(name, { create: false });
  sem.post();
  assertOk(await waiting);
  assert.equal(sem.value, 0, 'the waiter took it');
  sem.close();
});

test('unlink removes a semaphore; a second unlink exits 1', async () => {
  const name = uniqueName();
  assertOk(await cli('create', name));
  assertOk(await cli('unlink', name));
  assert.equal(fs.existsSync(shmFile(name)), false);
  assertFails(await cli('unlink', name), 1, /ENOENT: no such file or directory, sem_unlink/);
});

test('ls: table and --json list semaphores and gauges, not their shares', async () => {
  const sem = uniqueName();
  const gauge = gaugeName();
  assertOk(await cli('create', sem, '--value', '7', '--mode', '640'));
  const g = new Gauge(gauge);
  try {
    g.release(3);
    const holder = await holdShare(gauge, 4);
    holder.kill('SIGKILL');
    await holder.exited;
    holders.delete(holder);

    const r = await cli('ls', '--json');
    assertOk(r);
    const list = JSON.parse(r.stdout);
    assert.ok(Array.isArray(list));
    const user = os.userInfo().username;
    assert.deepEqual(
      list.find((e) => e.name === sem),
      { name: sem, kind: 'semaphore', value: 7, owner: user, uid: process.getuid(), mode: '0640' },
    );
    assert.deepEqual(
      list.find((e) => e.name === gauge),
      { name: gauge, kind: 'gauge', value: 7, owner: user, uid: process.getuid(), mode: '0600', shares: 2, deadShares: 1 },
    );
    assert.deepEqual(
      list.filter((e) => e.name.startsWith(gauge)).map((e) => e.name),
      [gauge],
      'no share or generation entries',
    );
    const names = list.map((e) => e.name);
    assert.deepEqual(names, [...names].sort(), 'sorted by name');

    const t = await cli('ls');
    assertOk(t);
    const lines = t.stdout.trimEnd().split('\n');
    const header = lines[0];
    assert.match(header, /^NAME +KIND +VALUE +OWNER +MODE +SHARES +DEAD$/);
    const row = (name) => lines.find((line) => line.startsWith(name + ' '));
    const semRow = row(sem);
    const gaugeRow = row(gauge);
    assert.ok(semRow && gaugeRow, t.stdout);
    for (const [line, kind, mode] of [
      [semRow, 'semaphore', '0640'],
      [gaugeRow, 'gauge', '0600'],
    ]) {
      // Text columns start under their heading; numbers end under theirs.
      const after = (text) => line.indexOf(text, line.indexOf(' '));
      assert.equal(after(` ${kind} `) + 1, header.indexOf('KIND'));
      assert.equal(after(' 7 ') + 2, header.indexOf('VALUE') + 'VALUE'.length);
      assert.equal(after(` ${user} `) + 1, header.indexOf('OWNER'));
      assert.equal(after(` ${mode} `) + 1, header.indexOf('MODE'));
      assert.equal(line.length, header.length, 'DEAD column ends aligned');
    }
    assert.match(semRow, / - +-$/);
    assert.match(gaugeRow, / 2 +1$/);
  } finally {
    g.close();
  }
});

test('gauges: get sums the shares, reap removes the dead ones, unlink removes every file', async () => {
  const gauge = gaugeName();
  const g = new Gauge(gauge);
  try {
    g.release(3);
    let r = await cli('get', gauge);
    assertOk(r);
    assert.equal(r.stdout, '3\n');
    r = await cli('get', gauge, '--json');
    assertOk(r);
    assert.deepEqual(JSON.parse(r.stdout), { name: gauge, kind: 'gauge', value: 3 });

    // Semaphore operations do not apply to a gauge.
    assertFails(await cli('post', gauge), 1, /^named-semaphore: ERR_GAUGE_READ_ONLY: '.*' is a gauge, which only its processes change$/m);
    assertFails(await cli('wait', gauge, '--timeout', '0'), 1, /^named-semaphore: ERR_GAUGE_READ_ONLY: .*is a gauge/);

    const holder = await holdShare(gauge, 4);
    assert.equal((await cli('get', gauge)).stdout, '7\n');
    assert.equal((await cli('reap', gauge)).stdout, '0\n', 'the holder lives');
    holder.kill('SIGKILL');
    await holder.exited;
    holders.delete(holder);
    assert.equal((await cli('get', gauge)).stdout, '7\n', 'a dead share still counts until reaped');
    r = await cli('reap', gauge);
    assertOk(r);
    assert.equal(r.stdout, '4\n');
    assert.equal((await cli('get', gauge)).stdout, '3\n');
    assert.equal(g.value, 3);
    assert.equal((await cli('reap', gauge)).stdout, '0\n');
    const shareFiles = () => fs.readdirSync('/dev/shm').filter((f) => f.startsWith(`sem.${gauge.slice(1)}~`));
    assert.equal(shareFiles().length, 2, 'the generation and our own share remain');

    const notGauge = uniqueName();
    assertOk(await cli('create', notGauge));
    assertFails(await cli('reap', notGauge), 1, /is a semaphore, not a gauge/);

    assertOk(await cli('unlink', gauge));
    assert.deepEqual(shareFiles(), []);
    assertFails(await cli('get', gauge), 1, /ENOENT/);
    assertFails(await cli('unlink', gauge), 1, /ENOENT: no such file or directory, sem_unlink/);
  } finally {
    g.close();
  }
});

test('watch, piped: one line per sample with an ISO timestamp; --count stops it', async () => {
  const name = uniqueName();
  assertOk(await cli('create', name, '--value', '4'));
  const r = await cli('watch', name, '--interval', '30', '--count', '4');
  assertOk(r);
  const lines = r.stdout.split('\n');
  assert.equal(lines.pop(), '');
  assert.equal(lines.length, 4);
  for (const line of lines) {
    assert.match(line, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z 4$/);
    assert.ok(Math.abs(Date.parse(line.split(' ')[0]) - Date.now()) < 10000);
  }

  const gauge = gaugeName();
  const g = new Gauge(gauge);
  try {
    g.release(2);
    const w = await cli('watch', gauge, '--interval', '30', '--count', '2');
    assertOk(w);
    assert.match(w.stdout, /^\S+Z 2\n\S+Z 2\n$/);
  } finally {
    g.close();
  }
});

test('watch ends cleanly on SIGINT', async () => {
  const name = uniqueName();
  assertOk(await cli('create', name, '--value', '1'));
  const child = spawn(process.execPath, [CLI, 'watch', name, '--interval', '20'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const closed = new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
  await new Promise((resolve) =>
    child.stdout.on('data', (d) => {
      stdout += d;
      if (stdout.split('\n').length > 3) resolve();
    }),
  );
  child.kill('SIGINT');
  const { code, signal } = await closed;
  assert.equal(signal, null);
  assert.equal(code, 0);
  assert.equal(stderr, '');
  assert.match(stdout, /^(\S+Z 1\n)+$/);
});

const CLEAR_LINE = '\x1b[K';
const hasScript = spawnSync('script', ['--version'], { encoding: 'utf8' }).status === 0;

test('watch on a terminal: one line redrawn with \\r, with min, max and a sparkline', { skip: !hasScript && 'no script(1)' }, async () => {
  const name = uniqueName();
  assertOk(await cli('create', name));
  const command = `'${process.execPath}' '${CLI}' watch ${name} --interval 50 --count 5`;
  const child = spawn('script', ['-qfec', command, '/dev/null'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let posted = false;
  const timer = setTimeout(() => child.kill('SIGKILL'), 15000);
  child.stdout.on('data', (d) => {
    out += d;
    if (!posted && out.includes('\x1b[K')) {
      // After the first sample: the value rises from 0 to 5.
      posted = true;
      const sem = new NamedSemaphore(name, { create: false });
      sem.post(5);
      sem.close();
    }
  });
  const code = await new Promise((resolve) => child.on('close', resolve));
  clearTimeout(timer);
  assert.equal(code, 0, JSON.stringify(out));
  const frames = out.split('\r').filter((f) => f.startsWith(name));
  assert.equal(frames.length, 5, JSON.stringify(out));
  assert.doesNotMatch(out.replace(/\r\n$/, ''), /\n/, 'all on one line');
  assert.match(out, /\r\n$/, 'ends the line when done');
  for (const [i, frame] of frames.entries()) {
    assert.ok(frame.endsWith(CLEAR_LINE), 'clears the rest of the line');
    const m = /^(\S+) {2}(\d+) {2}min (\d+) {2}max (\d+) {2}([▁▂▃▄▅▆▇█]+)$/.exec(frame.replace(CLEAR_LINE, ''));
    assert.ok(m, JSON.stringify(frame));
    assert.equal(m[5].length, i + 1, 'one bar per sample so far');
    assert.ok(Number(m[3]) <= Number(m[2]) && Number(m[2]) <= Number(m[4]));
  }
  assert.equal(frames[0], `${name}  0  min 0  max 0  ▁\x1b[K`);
  assert.match(frames[4].replace(CLEAR_LINE, ''), /^\S+ {2}5 {2}min 0 {2}max 5 {2}▁+█+$/, 'low bars for 0, full ones for 5');
});

'use strict';
// Gauges on a real host (issue #14): entries planted in the world-writable
// /dev/shm, other users, hidden /proc, PID namespaces, SIGKILL during
// creation, races with unlink, and servers that must never fall over because
// of the gauge. Everything runs in real processes; nothing here skips as root
// (CI runs as root): users are made with useradd and removed afterwards.
const test = require('node:test');
const { before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { Gauge, NamedSemaphore } = require('..');
const { reapGauge } = require('../dist/gauge');
const { PIDNS, uniqueName, run, sleep, until } = require('./helpers');

const root = path.join(__dirname, '..');
const isRoot = process.getuid() === 0;
const slowdown = process.env.NAMED_SEMAPHORE_SANITIZE === '1' ? 4 : 1;
const shm = (name) => `/dev/shm/sem.${name.slice(1)}`;
const startTime = (pid) => {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
};
/** A share name of gauge `gauge` as process `pid` (alive, so never reaped) would have it. */
const liveShareName = (gauge, nonce, pid = process.pid) => `${gauge}~${PIDNS}.${pid}.${startTime(pid)}.${nonce}`;

// ---- two users, and a copy of the package they can read ---------------------------

const users = [];
let copy; // a world-readable copy of what a child needs: the clone may sit in a 0700 folder

function addUser(tag) {
  const name = `nsem${tag}${process.pid}`.slice(0, 31);
  execFileSync('useradd', ['--no-create-home', '--user-group', '--shell', '/bin/false', name]);
  users.push(name);
  const uid = Number(execFileSync('id', ['-u', name]).toString());
  const gid = Number(execFileSync('id', ['-g', name]).toString());
  return { name, uid, gid };
}

let A;
let B;
before(() => {
  if (!isRoot) return;
  A = addUser('a');
  B = addUser('b');
  copy = fs.mkdtempSync(path.join(os.tmpdir(), 'nsem-trust-'));
  fs.cpSync(path.join(root, 'package.json'), path.join(copy, 'package.json'));
  fs.cpSync(path.join(root, 'dist'), path.join(copy, 'dist'), { recursive: true });
  fs.cpSync(path.join(root, 'build', 'Release', 'named_semaphore.node'), path.join(copy, 'build', 'Release', 'named_semaphore.node'));
  fs.cpSync(path.join(root, 'node_modules', 'node-gyp-build'), path.join(copy, 'node_modules', 'node-gyp-build'), { recursive: true });
  execFileSync('chmod', ['-R', 'a+rX', copy]);
});

after(() => {
  for (const name of users) {
    try {
      execFileSync('userdel', [name], { stdio: 'ignore' });
    } catch {
      // already gone
    }
  }
  if (copy !== undefined) fs.rmSync(copy, { recursive: true, force: true });
});

const requireLib = () => `const lib = require(${JSON.stringify(copy ?? root)});`;

/**
 * A long-lived child: `node -e source`, as `user` (or root), optionally inside
 * `wrap` (a command prefix such as unshare). next() resolves its next line of
 * stdout; send() writes a line to its stdin.
 */
function child(source, { user, wrap = [], env } = {}) {
  let argv = [process.execPath, '-e', requireLib() + source];
  if (user !== undefined) argv = ['setpriv', `--reuid=${user.uid}`, `--regid=${user.gid}`, '--clear-groups', ...argv];
  argv = [...wrap, ...argv];
  const proc = spawn(argv[0], argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'], env: env ?? process.env, cwd: os.tmpdir() });
  let buffer = '';
  let stderr = '';
  const waiting = [];
  const lines = [];
  proc.stdout.setEncoding('utf8');
  proc.stdout.on('data', (d) => {
    buffer += d;
    let i;
    while ((i = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, i);
      buffer = buffer.slice(i + 1);
      if (waiting.length > 0) waiting.shift().resolve(line);
      else lines.push(line);
    }
  });
  proc.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise((resolve) => proc.on('close', (code, signal) => resolve({ code, signal })));
  exited.then(({ code, signal }) => {
    for (const w of waiting.splice(0)) w.reject(new Error(`child ended (${code ?? signal}) before a line:\n${stderr}`));
  });
  return {
    proc,
    exited,
    stderr: () => stderr,
    next(timeoutMs = 30000 * slowdown) {
      if (lines.length > 0) return Promise.resolve(lines.shift());
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no line within ${timeoutMs} ms:\n${stderr}`)), timeoutMs);
        waiting.push({
          resolve: (l) => (clearTimeout(timer), resolve(l)),
          reject: (e) => (clearTimeout(timer), reject(e)),
        });
      });
    },
    send(line) {
      proc.stdin.write(line + '\n');
    },
    async end() {
      proc.stdin.end();
      const r = await Promise.race([exited, sleep(20000 * slowdown).then(() => null)]);
      if (r === null) proc.kill('SIGKILL');
      return r ?? (await exited);
    },
  };
}

/** Runs `source` to its end as `user`: { code, signal, stdout, stderr }. */
function once(source, { user, wrap = [], timeoutMs = 120000 } = {}) {
  let argv = [process.execPath, '-e', requireLib() + source];
  if (user !== undefined) argv = ['setpriv', `--reuid=${user.uid}`, `--regid=${user.gid}`, '--clear-groups', ...argv];
  argv = [...wrap, ...argv];
  return run(argv[0], argv.slice(1), { timeoutMs });
}

// A holder: opens the gauge, releases `hold`, prints "held", then obeys lines:
// "value" (prints g.value), "reap" (prints g.reap()), "release N", "close".
const HOLDER = (name, hold, mode = 0o600) => `
  const g = new lib.Gauge(${JSON.stringify(name)}, { mode: ${mode} });
  if (${hold} > 0) g.release(${hold});
  console.log('held ' + process.pid);
  process.stdin.setEncoding('utf8');
  let input = '';
  process.stdin.on('data', (d) => {
    input += d;
    let i;
    while ((i = input.indexOf('\\n')) >= 0) {
      const [cmd, arg] = input.slice(0, i).split(' ');
      input = input.slice(i + 1);
      try {
        if (cmd === 'value') console.log(g.value);
        else if (cmd === 'reap') console.log(g.reap());
        else if (cmd === 'release') { g.release(Number(arg)); console.log('ok'); }
        else if (cmd === 'close') { g.close(); console.log('closed'); }
      } catch (e) { console.log('error ' + e.code); }
    }
  });
  process.stdin.on('end', () => process.exit(0));
`;

function removeGauge(name) {
  try {
    Gauge.unlink(name);
  } catch {
    // gone
  }
}

/** Plants `kind` at /dev/shm/sem.<name>; `owner` for the foreign kinds. Returns its path. */
function plant(name, kind, owner) {
  const file = shm(name);
  switch (kind) {
    case 'symlink': {
      // To a real semaphore holding 1000: followed, it would count.
      const target = uniqueName('target');
      new NamedSemaphore(target, { initialValue: 1000 }).close();
      fs.symlinkSync(shm(target), file);
      break;
    }
    case 'symlink loop':
      fs.symlinkSync(file, file);
      break;
    case 'directory':
      fs.mkdirSync(file);
      break;
    case 'fifo':
      execFileSync('mkfifo', [file]);
      break;
    case 'short':
      fs.writeFileSync(file, 'short');
      break;
    case 'foreign':
    case 'unreadable': {
      // A whole semaphore holding 1000, owned by another user: 0644, or 0000.
      const tmp = uniqueName('foreign');
      new NamedSemaphore(tmp, { initialValue: 1000, mode: 0o644 }).close();
      fs.renameSync(shm(tmp), file);
      fs.chownSync(file, owner.uid, owner.gid);
      fs.chmodSync(file, kind === 'unreadable' ? 0 : 0o644);
      break;
    }
    default:
      throw new Error(kind);
  }
  return file;
}

const KINDS = ['symlink', 'symlink loop', 'directory', 'fifo', 'short', 'foreign', 'unreadable'];
const rmPlanted = (files) => files.forEach((f) => fs.rmSync(f, { recursive: true, force: true }));

test('planted entries named like shares (7 kinds) are ignored by every reader, reap, unlink, ls and metricsText; nothing throws, the total stays exact', { skip: !isRoot && 'needs root for useradd', timeout: 120000 * slowdown }, async () => {
  const name = uniqueName('plant');
  const holder = child(HOLDER(name, 3));
  const planted = [];
  const g = new Gauge(name);
  try {
    await holder.next();
    g.release(2);
    // Each kind, named as a share of this live process, and of the live holder.
    for (const [i, kind] of KINDS.entries()) {
      planted.push(plant(liveShareName(name, `0000000${i}`), kind, B));
      planted.push(plant(liveShareName(name, `1000000${i}`, holder.proc.pid), kind, B));
    }
    // An entry with a newline and a byte that is no UTF-8 in its name, too.
    const odd = Buffer.concat([Buffer.from(shm(name) + '~x\n'), Buffer.from([0xff])]);
    fs.writeFileSync(odd, 'x');
    planted.push(odd);
    const r = await once(`
      const name = ${JSON.stringify(name)};
      const out = [lib.Gauge.read(name)];
      const g = new lib.Gauge(name); // lists and reaps past every planted entry
      out.push(g.value, g.reap());
      g.release(); out.push(g.releaseAndRead(), lib.Gauge.read(name));
      g.close();
      out.push(require(${JSON.stringify(path.join(copy ?? root, 'dist', 'prometheus.js'))}).metricsText({ names: [name] }).split('\\n')[2]);
      console.log(JSON.stringify(out));`);
    assert.equal(r.signal, null, r.stderr);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), [5, 5, 0, 7, 7, `named_semaphore_value{name="${name}",kind="gauge"} 5`]);
    assert.equal(g.value, 5);
    holder.send('reap');
    assert.equal(await holder.next(), '0');
    holder.send('value');
    assert.equal(await holder.next(), '5');
    for (const f of planted) assert.ok(fs.lstatSync(f), `${f} left alone`);

    // ls: exit 0, every planted kind listed by what it is, names escaped.
    const ls = await run(process.execPath, [path.join(root, 'dist', 'cli.js'), 'ls', '--json']);
    assert.equal(ls.code, 0, ls.stderr);
    const entries = JSON.parse(ls.stdout);
    const gauge = entries.find((e) => e.name === name);
    assert.equal(gauge.kind, 'gauge');
    assert.equal(gauge.value, 5);
    assert.equal(gauge.shares, 2, 'only the two real shares');
    const kindsOf = (pid) =>
      entries
        .filter((e) => e.name.startsWith(`${name}~${PIDNS}.${pid}.`) && e.kind !== 'gauge')
        .map((e) => e.kind)
        .sort();
    const expected = ['directory', 'fifo', 'foreign', 'foreign', 'short', 'symlink', 'symlink'];
    assert.deepEqual(kindsOf(process.pid), expected);
    assert.deepEqual(kindsOf(holder.proc.pid), expected);
    assert.ok(entries.some((e) => e.name === `${name}~x\\x0a\\xff` && e.kind === 'short'), 'escaped, not dropped');
    const table = await run(process.execPath, [path.join(root, 'dist', 'cli.js'), 'ls']);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, new RegExp(`^${name}~x\\\\x0a\\\\xff +short `, 'm'));

    // Gauge.unlink removes the gauge's files, and only those.
    holder.send('close');
    assert.equal(await holder.next(), 'closed');
    g.close();
    assert.equal(Gauge.unlink(name), true);
    for (const f of planted) assert.ok(fs.lstatSync(f), `${f} left alone by unlink`);
    assert.equal(fs.existsSync(shm(name + '~gauge')), false);
  } finally {
    g.close();
    await holder.end();
    rmPlanted(planted);
    removeGauge(name);
  }
});

test('planted entries named like the generation semaphore: a clear ERR_GAUGE_FOREIGN, never ELOOP/EISDIR/ENODEV, no crash; metricsText and ls go on', { skip: !isRoot && 'needs root for useradd', timeout: 120000 * slowdown }, async () => {
  const names = [];
  const planted = [];
  try {
    for (const kind of KINDS) {
      const name = uniqueName('gen');
      names.push(name);
      planted.push(plant(name + '~gauge', kind, B));
    }
    const r = await once(`
      const prom = require(${JSON.stringify(path.join(copy ?? root, 'dist', 'prometheus.js'))});
      for (const name of ${JSON.stringify(names)}) {
        const codes = [];
        for (const f of [() => lib.Gauge.read(name), () => new lib.Gauge(name).close()]) {
          try { f(); codes.push('ok'); } catch (e) { codes.push(e.code); }
        }
        console.log(codes.join(' ') + ' | ' + prom.metricsText({ names: [name] }).split('\\n')[2]);
      }`);
    assert.equal(r.signal, null, r.stderr);
    const lines = r.stdout.trim().split('\n');
    for (const [i, kind] of KINDS.entries()) {
      const [codes, text] = lines[i].split(' | ');
      // A foreign (another user's) regular file may be a gauge of theirs: it is
      // read; joining it is refused, since its owner keeps it to themselves.
      const read = kind === 'foreign' || kind === 'unreadable' ? 'ok' : 'ERR_GAUGE_FOREIGN';
      assert.equal(codes, `${read} ERR_GAUGE_FOREIGN`, `${kind}: ${lines[i]}`);
      assert.match(text, read === 'ok' ? /^named_semaphore_value/ : /^# ".*": cannot read it: ERR_GAUGE_FOREIGN$/, kind);
    }
    const ls = await run(process.execPath, [path.join(root, 'dist', 'cli.js'), 'ls']);
    assert.equal(ls.code, 0, ls.stderr);
  } finally {
    rmPlanted(planted);
    for (const n of names) removeGauge(n);
  }
});

test('two users: a 0o666 gauge is shared exactly; planted foreign and unreadable shares are ignored; a squatted generation is refused (0600) or kept exact (0666 at SEM_VALUE_MAX)', { skip: !isRoot && 'needs root for useradd', timeout: 180000 * slowdown }, async () => {
  const shared = uniqueName('users');
  const squatMax = uniqueName('squat-max');
  const squatPrivate = uniqueName('squat-600');
  const planted = [];
  const holders = [];
  try {
    const a = child(HOLDER(shared, 2, 0o666), { user: A });
    holders.push(a);
    await a.next();
    const b = child(HOLDER(shared, 3, 0o666), { user: B }); // its new Gauge reaps: A's share stays
    holders.push(b);
    await b.next();
    for (const h of [a, b]) {
      h.send('value');
      assert.equal(await h.next(), '5');
    }
    // B plants, under A's live identity: a 0644 file (mode differs from the
    // gauge's: no share of this gauge) and an unreadable one.
    const bPlant = await once(
      `const fs = require('fs');
       for (const [nonce, mode] of [['deadbeef', 0o644], ['deadbee0', 0]]) {
         const f = '/dev/shm/sem.' + ${JSON.stringify(liveShareName(shared, 'NONCE', a.proc.pid).slice(1))}.replace('NONCE', nonce);
         fs.writeFileSync(f, Buffer.alloc(32, 0x7f), { mode });
         fs.chmodSync(f, mode);
         console.log(f);
       }`,
      { user: B },
    );
    assert.equal(bPlant.code, 0, bPlant.stderr);
    planted.push(...bPlant.stdout.trim().split('\n'));
    const c = child(HOLDER(shared, 1, 0o666), { user: A }); // lists the shares again
    holders.push(c);
    await c.next();
    for (const h of [a, b, c]) {
      h.send('value');
      assert.equal(await h.next(), '6');
    }
    assert.equal(Gauge.read(shared), 6);

    // A generation squatted by B at SEM_VALUE_MAX, mode 0666: A joins (the
    // mode shares it), and a long-lived reader still sees every new share.
    const sq = await once(`const s = new lib.NamedSemaphore(${JSON.stringify(squatMax + '~gauge')}, { mode: 0o666, initialValue: 2147483647 }); require('fs').chmodSync(${JSON.stringify(shm(squatMax + '~gauge'))}, 0o666); s.close();`, { user: B });
    assert.equal(sq.code, 0, sq.stderr);
    planted.push(shm(squatMax + '~gauge'));
    const reader = child(HOLDER(squatMax, 0, 0o666), { user: A });
    holders.push(reader);
    await reader.next();
    for (let i = 1; i <= 3; i++) {
      const h = child(HOLDER(squatMax, i, 0o666), { user: A });
      holders.push(h);
      await h.next();
    }
    reader.send('value');
    assert.equal(await reader.next(), '6', 'the reader saw every share despite the generation at SEM_VALUE_MAX');

    // A 0600 generation squatted by B: A gets a clear error, not EACCES.
    const sq2 = await once(`new lib.NamedSemaphore(${JSON.stringify(squatPrivate + '~gauge')}, { mode: 0o600 }).close();`, { user: B });
    assert.equal(sq2.code, 0, sq2.stderr);
    planted.push(shm(squatPrivate + '~gauge'));
    const refused = await once(`try { new lib.Gauge(${JSON.stringify(squatPrivate)}); console.log('joined'); } catch (e) { console.log(e.code, e.message); }`, { user: A });
    assert.match(refused.stdout, /^ERR_GAUGE_FOREIGN .*belongs to uid \d+ with mode 0600/);
    // Root too refuses a private gauge that is not its own.
    assert.throws(() => new Gauge(squatPrivate), { code: 'ERR_GAUGE_FOREIGN' });
  } finally {
    for (const h of holders) await h.end();
    rmPlanted(planted);
    for (const n of [shared, squatMax, squatPrivate]) removeGauge(n);
  }
});

test('shares are created whole: with umask 077, another user reading a 0o666 gauge while shares come and go gets 0 EACCES; every file has mode 0666', { skip: !isRoot && 'needs root for useradd', timeout: 120000 * slowdown }, async () => {
  const name = uniqueName('whole');
  const base = new Gauge(name, { mode: 0o666 });
  try {
    base.release(1);
    const churn = child(
      `process.umask(0o077);
       console.log('ready');
       const modes = new Set();
       const end = Date.now() + 3000;
       let n = 0;
       while (Date.now() < end) {
         const g = new lib.Gauge(${JSON.stringify(name)}, { mode: 0o666 });
         for (const f of require('fs').readdirSync('/dev/shm')) if (f.startsWith(${JSON.stringify(shm(name).slice(9))})) { try { modes.add((require('fs').statSync('/dev/shm/' + f).mode & 0o777).toString(8)); } catch {} }
         g.release(); g.close(); n++;
       }
       console.log(n + ' ' + [...modes].join(','));`,
      { user: A },
    );
    await churn.next();
    const r = await once(
      `let reads = 0, failed = {}, bad = 0;
       const end = Date.now() + 2500;
       while (Date.now() < end) {
         try { const v = lib.Gauge.read(${JSON.stringify(name)}); reads++; if (v < 1 || v > 2) bad++; }
         catch (e) { failed[e.code] = (failed[e.code] || 0) + 1; }
       }
       console.log(JSON.stringify({ reads, failed, bad }));`,
      { user: B },
    );
    const [n, modes] = (await churn.next()).split(' ');
    await churn.end();
    const result = JSON.parse(r.stdout);
    console.log(`# whole: ${n} shares made and closed by A; B's reads: ${r.stdout.trim()}`);
    assert.deepEqual(result.failed, {}, 'no read failed (EACCES: 0)');
    assert.equal(result.bad, 0);
    assert.ok(result.reads > 0 && Number(n) > 0);
    assert.equal(modes, '666');
  } finally {
    base.close();
    removeGauge(name);
  }
});

test('hidepid=invisible: a user who cannot see the owner of a share does not reap it', { skip: !isRoot && 'needs root for mount', timeout: 120000 * slowdown }, async () => {
  const name = uniqueName('hidepid');
  const a = child(HOLDER(name, 2, 0o666), { user: A });
  try {
    const pid = Number((await a.next()).split(' ')[1]);
    const r = await once(
      `const seen = require('fs').existsSync('/proc/${pid}');
       const g = new lib.Gauge(${JSON.stringify(name)}, { mode: 0o666 });
       g.release();
       console.log(JSON.stringify({ seen, value: g.value, reaped: g.reap(), after: g.value }));
       g.close();`,
      { user: B, wrap: ['unshare', '-m', '--', 'sh', '-c', 'mount -t proc -o hidepid=invisible proc /proc && exec "$@"', 'sh'] },
    );
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { seen: false, value: 3, reaped: 0, after: 3 });
    a.send('value');
    assert.equal(await a.next(), '2');
  } finally {
    await a.end();
    removeGauge(name);
  }
});

test('two PID namespaces sharing /dev/shm (unshare --pid --fork --mount-proc): each is pid 1, neither reaps the other, the host reads the exact total; after one crashes, root in the host namespace reaps exactly its share', { skip: !isRoot && 'needs root for unshare', timeout: 120000 * slowdown }, async () => {
  const name = uniqueName('pidns');
  const wrap = ['unshare', '--pid', '--fork', '--mount-proc', '--kill-child=SIGKILL'];
  const one = child(HOLDER(name, 1), { wrap });
  const two = child(HOLDER(name, 2), { wrap });
  try {
    assert.equal(await one.next(), 'held 1');
    assert.equal(await two.next(), 'held 1');
    for (const h of [one, two]) {
      h.send('reap');
      assert.equal(await h.next(), '0');
      h.send('value');
      assert.equal(await h.next(), '3');
    }
    const host = new Gauge(name); // reaps in the host's namespace
    try {
      assert.equal(host.reap(), 0);
      assert.equal(host.value, 3);
    } finally {
      host.close();
    }
    assert.equal(Gauge.read(name), 3);
    // One namespace crashes: its pid 1 is SIGKILLed, the namespace ends. The
    // other cannot judge it; root in the host's namespace, which sees every
    // process, can: it reaps exactly that share.
    one.proc.kill('SIGKILL');
    await one.exited;
    two.send('reap');
    assert.equal(await two.next(), '0');
    assert.equal(reapGauge(name), 1, 'reaps the crashed namespace exactly');
    assert.equal(Gauge.read(name), 2);
    two.send('value');
    assert.equal(await two.next(), '2');
  } finally {
    await one.end();
    await two.end();
    removeGauge(name);
  }
});

test('SIGKILL at random moments of new Gauge, 200 times, in a private /dev/shm: no stray file, the total exact', { skip: !isRoot && 'needs root for unshare', timeout: 600000 * slowdown }, async () => {
  const KILLS = Number(process.env.NSEM_KILLS ?? 200);
  const driver = `
    const { spawn } = require('child_process');
    const fs = require('fs');
    const name = '/killed';
    const victim = ${JSON.stringify(requireLib())} + \`
      process.umask(0o077);
      const kept = [];
      console.log('go');
      for (;;) {
        const g = new lib.Gauge('/killed', { mode: 0o666 });
        g.release(2);
        if (kept.length < 3) kept.push(g); else g.close();
      }\`;
    const kill = () => new Promise((resolve) => {
      const p = spawn(process.execPath, ['-e', victim], { stdio: ['ignore', 'pipe', 'inherit'] });
      p.stdout.once('data', () => setTimeout(() => p.kill('SIGKILL'), Math.random() * 15));
      p.on('close', resolve);
    });
    (async () => {
      for (let i = 0; i < ${KILLS}; i += 10) await Promise.all(Array.from({ length: 10 }, kill));
      const g = new lib.Gauge(name, { mode: 0o666 }); // reaps every dead share
      g.release(4);
      const files = fs.readdirSync('/dev/shm');
      const modes = files.map((f) => (fs.statSync('/dev/shm/' + f).mode & 0o777).toString(8));
      console.log(JSON.stringify({ files, modes: [...new Set(modes)], value: lib.Gauge.read(name) }));
    })();`;
  const r = await once(driver, { timeoutMs: 500000, wrap: ['unshare', '-m', '--', 'sh', '-c', 'mount -t tmpfs -o mode=1777 tmpfs /dev/shm && exec "$@"', 'sh'] });
  assert.equal(r.code, 0, r.stderr);
  const { files, modes, value } = JSON.parse(r.stdout);
  console.log(`# ${KILLS} kills; files left: ${JSON.stringify(files)}`);
  assert.equal(value, 4);
  assert.equal(files.length, 2, `only the generation and the live share: ${JSON.stringify(files)}`);
  assert.ok(files.includes('sem.killed~gauge'));
  assert.ok(files.some((f) => /^sem\.killed~\d+\.\d+\.\d+\.[0-9a-f]{8}$/.test(f)));
  assert.deepEqual(modes, ['666']);
});

test('new Gauge never fails with ENOENT while other processes unlink and create the same gauge', { timeout: 120000 * slowdown }, async () => {
  const name = uniqueName('race');
  const makers = [0, 1].map(() =>
    once(`
      const codes = {};
      let made = 0;
      const end = Date.now() + 2000;
      while (Date.now() < end) {
        try { const g = new lib.Gauge(${JSON.stringify(name)}); g.release(); g.value; g.close(); made++; }
        catch (e) { const k = e.code + ' ' + e.message; codes[k] = (codes[k] || 0) + 1; }
      }
      console.log(JSON.stringify({ made, codes }));`),
  );
  const unlinker = once(`
    let n = 0;
    const end = Date.now() + 2000;
    while (Date.now() < end) { lib.Gauge.unlink(${JSON.stringify(name)}); n++; }
    console.log(n);`);
  const results = await Promise.all([...makers, unlinker]);
  for (const r of results) assert.equal(r.code, 0, r.stderr);
  for (const r of results.slice(0, 2)) {
    const { made, codes } = JSON.parse(r.stdout);
    assert.deepEqual(codes, {}, r.stdout);
    assert.ok(made > 0);
  }
  removeGauge(name);
});

test('metricsText escapes every name in every branch: gauge, semaphore, missing, unreadable', { skip: !isRoot && 'needs root for chown', timeout: 60000 * slowdown }, async () => {
  const evil = (tag) => `${uniqueName(tag)}\n# INJECTED "q" \\ x 1`;
  const gauge = evil('mg');
  const sem = evil('ms');
  const missing = evil('mm');
  const foreign = evil('mf');
  const g = new Gauge(gauge);
  new NamedSemaphore(sem, { initialValue: 4 }).close();
  new NamedSemaphore(foreign + '~gauge').close();
  fs.unlinkSync(shm(foreign + '~gauge'));
  fs.symlinkSync('/nonexistent', shm(foreign + '~gauge'));
  try {
    g.release(2);
    const { metricsText } = require('../dist/prometheus');
    const text = metricsText({ names: [gauge, sem, missing, foreign] });
    const lines = text.trimEnd().split('\n');
    assert.equal(lines.length, 2 + 4, text);
    for (const line of lines) {
      assert.ok(!line.startsWith('INJECTED') && !line.startsWith('# INJECTED'), line);
      assert.match(line, /^(# (HELP|TYPE) named_semaphore_value |# ".*": |named_semaphore_value\{name=".*",kind="(gauge|semaphore)"\} \d+$)/, line);
    }
    const esc = (n) => n.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
    assert.ok(lines.includes(`named_semaphore_value{name="${esc(gauge)}",kind="gauge"} 2`), text);
    assert.ok(lines.includes(`named_semaphore_value{name="${esc(sem)}",kind="semaphore"} 4`), text);
    assert.ok(lines.includes(`# "${esc(missing)}": no such gauge or semaphore (yet)`), text);
    assert.ok(lines.includes(`# "${esc(foreign)}": cannot read it: ERR_GAUGE_FOREIGN`), text);
  } finally {
    g.close();
    removeGauge(gauge);
    NamedSemaphore.unlink(sem);
    fs.rmSync(shm(foreign + '~gauge'), { force: true });
  }
});

test('busyMiddleware and the fastify plugin never throw because of the gauge: a share reaped or removed under its owner, a planted generation; one warning each, requests served, the count never negative and healed', { timeout: 120000 * slowdown }, async () => {
  const name = uniqueName('srv');
  const planted = uniqueName('srv-planted');
  fs.symlinkSync('/nonexistent', shm(planted + '~gauge'));
  const server = child(`
    const http = require('http');
    const { busyMiddleware } = require(${JSON.stringify(path.join(copy ?? root, 'dist', 'http.js'))});
    const { busyPlugin } = require(${JSON.stringify(path.join(copy ?? root, 'dist', 'fastify.js'))});
    const fastify = require(${JSON.stringify(require.resolve('fastify'))})();
    process.on('warning', (w) => console.log('warning ' + w.code));
    const holds = [];
    const handle = (req, res) => {
      if (req.url === '/hold') holds.push(() => res.end('held ' + req.busy));
      else if (req.url === '/release') { holds.splice(0).forEach((f) => f()); res.end('released'); }
      else res.end('busy ' + req.busy);
    };
    const counted = busyMiddleware(new lib.Gauge(${JSON.stringify(name)}));
    const plantedMw = busyMiddleware(${JSON.stringify(planted)});
    const plain = http.createServer((req, res) => {
      if (req.url.startsWith('/planted')) { plantedMw(req, res); return res.end('served ' + req.busy); }
      counted(req, res, () => handle(req, res));
    });
    fastify.register(busyPlugin, { gauge: new lib.Gauge(${JSON.stringify(name)}) });
    fastify.get('/*', (request, reply) => {
      if (request.url === '/hold') return new Promise((resolve) => holds.push(() => resolve('held ' + request.busy)));
      return 'busy ' + request.busy;
    });
    plain.listen(0, '127.0.0.1', async () => {
      await fastify.listen({ port: 0, host: '127.0.0.1' });
      console.log(plain.address().port + ' ' + fastify.server.address().port);
    });`);
  const get = async (port, p) => {
    const res = await fetch(`http://127.0.0.1:${port}${p}`);
    return { status: res.status, body: await res.text() };
  };
  const sharesOfServer = () => fs.readdirSync('/dev/shm').filter((f) => f.startsWith(shm(name).slice(9) + '~') && f.includes(`.${server.proc.pid}.`) && !f.endsWith('~gauge'));
  try {
    const [plainPort, fastifyPort] = (await server.next()).split(' ').map(Number);
    for (const port of [plainPort, fastifyPort]) {
      // A foreign reap (say, from a namespace that judged the server dead) empties and removes its shares mid-request.
      const held = get(port, '/hold');
      await until(() => Gauge.read(name) === 1);
      const { binding } = require('../dist/native');
      for (const f of sharesOfServer()) binding.reapShare(name + '~gauge', '/' + f.slice(4));
      assert.equal(Gauge.read(name), 0);
      assert.deepEqual(await get(plainPort, '/release'), { status: 200, body: 'released' });
      assert.match((await held).body, /^held 1$/);
      assert.equal(Gauge.read(name), 0, 'never negative');
      const [a, b] = [get(port, '/hold'), get(port, '/hold')];
      await until(() => Gauge.read(name) === 2);
      assert.equal(Gauge.read(name), 2, 'healed: new requests are counted again');
      await get(plainPort, '/release');
      await Promise.all([a, b]);
      await until(() => Gauge.read(name) === 0);
      assert.equal(Gauge.read(name), 0);
    }
    // An admin's rm of the shares: the count reads low, never negative; requests served.
    const held = get(plainPort, '/hold');
    await until(() => Gauge.read(name) === 1);
    for (const f of sharesOfServer()) fs.unlinkSync('/dev/shm/' + f);
    assert.equal(Gauge.read(name) >= 0, true);
    await get(plainPort, '/release');
    assert.equal((await held).status, 200);
    assert.deepEqual(await get(plainPort, '/x'), { status: 200, body: 'busy 1' });
    // A gauge that cannot be opened at all (its generation planted): served, not counted.
    for (let i = 0; i < 3; i++) assert.deepEqual(await get(plainPort, '/planted'), { status: 200, body: 'served undefined' });
    assert.equal(server.proc.exitCode, null, 'the server lives');
    const warnings = [];
    server.send('');
    await sleep(100);
    for (;;) {
      const line = await Promise.race([server.next(1000).catch(() => null)]);
      if (line === null) break;
      warnings.push(line);
    }
    assert.deepEqual(warnings.sort(), ['warning NAMED_SEMAPHORE_COUNT_FAILED', 'warning NAMED_SEMAPHORE_SHARE_LOST'], server.stderr());
  } finally {
    server.proc.kill('SIGKILL');
    await server.exited;
    fs.rmSync(shm(planted + '~gauge'), { force: true });
    removeGauge(name);
  }
});

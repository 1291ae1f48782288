'use strict';
// The binaries a user gets: the prebuilds made exactly as `npm run build:prebuild`
// makes them (built fresh here, in a copy of the package): linux-x64, and
// linux-arm64 cross-built with Debian's g++-aarch64-linux-gnu; and build/Release.
//  - they need nothing newer than glibc 2.28 / GLIBCXX_3.4.25 / CXXABI_1.3.11
//    (the oldest runtimes Node 20 supports), so a prebuild made on a new
//    distribution still loads on old ones;
//  - a package with no binary at all fails with one clear message;
//  - a package holding only dist/ and prebuilds/ loads the prebuild.
//
// (test/arm64/ runs the arm64 one under qemu.)
//
// NAMED_SEMAPHORE_PREBUILDS=<folder> checks the prebuilds in that folder
// (<folder>/linux-x64/..., <folder>/linux-arm64/...) instead of building them.
// NAMED_SEMAPHORE_SANITIZE=1 (set by test/sanitize.sh): build/ holds an
// ASan build, whose symbol versions are not checked.
const { test, describe, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.join(__dirname, '..');
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
const platform = `${process.platform}-${process.arch}`;
// prebuildify --napi --tag-libc names the file after the package.
const prebuildRelOf = (arch) => path.join('prebuilds', `linux-${arch}`, `${pkg.name}.glibc.node`);
const prebuildRel = prebuildRelOf(process.arch);
// The prebuilt architectures, with the objdump that reads each one's symbol
// versions and the machine readelf -h names.
const ARCHES = {
  x64: { objdump: 'objdump', machine: 'Advanced Micro Devices X86-64' },
  arm64: { objdump: 'aarch64-linux-gnu-objdump', machine: 'AArch64' },
};
const buildRel = path.join('build', 'Release', 'named_semaphore.node');
const sanitize = process.env.NAMED_SEMAPHORE_SANITIZE === '1';

// The newest symbol versions a binary may need: glibc 2.28 and GCC 8's
// libstdc++ (Debian 10, RHEL 8), the oldest systems Node 20 runs on.
const LIMITS = { GLIBC: [2, 28], GLIBCXX: [3, 4, 25], CXXABI: [1, 3, 11] };
// Libraries a prebuild may link: the C and C++ runtimes, nothing else.
const ALLOWED_NEEDED = new Set([
  'libc.so.6',
  'libm.so.6',
  'libpthread.so.0',
  'libdl.so.2',
  'libstdc++.so.6',
  'libgcc_s.so.1',
  'ld-linux-x86-64.so.2',
  'ld-linux-aarch64.so.1',
]);

const supported = process.platform === 'linux' && process.arch === 'x64';
const hasTool = (tool) => spawnSync(tool, ['--version'], { stdio: 'ignore' }).status === 0;
const hasBinutils = hasTool('readelf') && hasTool('objdump');

// Child processes that compile get no sanitizer runtime preloaded.
function plainEnv() {
  const env = { ...process.env };
  delete env.LD_PRELOAD;
  delete env.ASAN_OPTIONS;
  delete env.UBSAN_OPTIONS;
  return env;
}

function tool(cmd, args) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20, env: plainEnv() });
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')} failed:\n${r.stderr}`);
  return r.stdout;
}

/** "GLIBC_2.2.5" -> { prefix: 'GLIBC', parts: [2, 2, 5] }; null when not numbered. */
function parseVersion(name) {
  const m = /^([A-Z]+)_(\d+(?:\.\d+)*)$/.exec(name);
  return m ? { prefix: m[1], parts: m[2].split('.').map(Number) } : null;
}

function compareParts(a, b) {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return Math.sign(d);
  }
  return 0;
}

/** The versions a binary needs (readelf's .gnu.version_r), e.g. ['GLIBC_2.2.5', ...]. */
function versionNeeds(file) {
  const out = tool('readelf', ['-V', '--wide', file]);
  const section = out.split(/^Version needs section/m)[1] ?? '';
  const needs = [];
  for (const line of section.split('\n').slice(1)) {
    if (/^\S/.test(line)) break; // the next section
    const m = /\bName:\s+(\S+)/.exec(line);
    if (m) needs.push(m[1]);
  }
  return needs;
}

/** Undefined dynamic symbols by version (objdump -T), for clear failures. */
function symbolsByVersion(file, arch) {
  const bySymbol = new Map();
  for (const line of tool(ARCHES[arch].objdump, ['-T', file]).split('\n')) {
    const m = /\*UND\*\s+\S+\s+\(?([A-Za-z]+_[\w.]+)\)?\s+(\S+)\s*$/.exec(line);
    if (!m) continue;
    if (!bySymbol.has(m[1])) bySymbol.set(m[1], []);
    bySymbol.get(m[1]).push(m[2]);
  }
  return bySymbol;
}

function neededLibraries(file) {
  return [...tool('readelf', ['-d', '--wide', file]).matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map(
    (m) => m[1],
  );
}

/** Each needed version above its limit, with the symbols that need it. */
function tooNew(file, arch) {
  const needs = versionNeeds(file);
  assert.ok(needs.length > 0, `readelf found no version needs in ${file}`);
  assert.ok(
    needs.some((n) => n.startsWith('GLIBC_')),
    `readelf found no GLIBC_ version needs in ${file}: ${needs.join(' ')}`,
  );
  // objdump must agree: every version a symbol uses is listed in the needs.
  const symbols = symbolsByVersion(file, arch);
  assert.ok(symbols.size > 0, `objdump -T found no versioned undefined symbols in ${file}`);
  for (const version of symbols.keys()) {
    if (/^(GLIBC|GLIBCXX|CXXABI)_/.test(version)) {
      assert.ok(needs.includes(version), `objdump -T shows ${version}, readelf -V does not list it`);
    }
  }
  const bad = [];
  for (const name of new Set(needs)) {
    const prefix = name.split('_')[0];
    if (!(prefix in LIMITS)) continue; // GCC_x.y (libgcc_s) and the like
    const v = parseVersion(name);
    if (!v || v.prefix !== prefix || compareParts(v.parts, LIMITS[prefix]) > 0) {
      bad.push(`${name} (limit ${prefix}_${LIMITS[prefix].join('.')}), for: ${(symbols.get(name) ?? ['?']).join(', ')}`);
    }
  }
  return bad;
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nsem-prebuild-test-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

let prebuilds; // the prebuilds folder under test, or the reason there is none

/** Makes the prebuilds as `npm run build:prebuild` does, in a copy of the package; returns their folder. */
function makePrebuilds() {
  if (process.env.NAMED_SEMAPHORE_PREBUILDS) return path.resolve(process.env.NAMED_SEMAPHORE_PREBUILDS);
  const dir = path.join(tmp, 'prebuildify');
  fs.mkdirSync(dir);
  for (const entry of ['src', 'binding.gyp', 'package.json']) {
    fs.cpSync(path.join(root, entry), path.join(dir, entry), { recursive: true });
  }
  fs.symlinkSync(fs.realpathSync(path.join(root, 'node_modules')), path.join(dir, 'node_modules'));
  const r = spawnSync('npm', ['run', '--silent', 'build:prebuild'], {
    cwd: dir,
    env: plainEnv(),
    encoding: 'utf8',
    maxBuffer: 64 << 20,
    timeout: 10 * 60 * 1000,
  });
  if (r.status !== 0) {
    throw new Error(`npm run build:prebuild failed (${r.error?.message ?? `status ${r.status}`}):\n${r.stdout}\n${r.stderr}`);
  }
  for (const arch of Object.keys(ARCHES)) {
    const rel = prebuildRelOf(arch);
    assert.ok(fs.existsSync(path.join(dir, rel)), `npm run build:prebuild made no ${rel}; it made: ${listPrebuilds(dir)}`);
  }
  return path.join(dir, 'prebuilds');
}

function listPrebuilds(dir) {
  const out = [];
  const walk = (d) => {
    for (const e of fs.existsSync(d) ? fs.readdirSync(d, { withFileTypes: true }) : []) {
      if (e.isDirectory()) walk(path.join(d, e.name));
      else out.push(path.relative(dir, path.join(d, e.name)));
    }
  };
  walk(path.join(dir, 'prebuilds'));
  return out.join(', ') || 'nothing';
}

/**
 * A package folder as a user gets it, without build/: dist/, package.json,
 * node_modules/node-gyp-build (a link), and the given prebuild if any.
 */
function packageFolder(name, prebuildFile) {
  const dir = path.join(tmp, name);
  fs.mkdirSync(path.join(dir, 'node_modules'), { recursive: true });
  fs.cpSync(path.join(root, 'dist'), path.join(dir, 'dist'), { recursive: true });
  fs.copyFileSync(path.join(root, 'package.json'), path.join(dir, 'package.json'));
  const ngb = path.dirname(require.resolve('node-gyp-build/package.json', { paths: [root] }));
  fs.symlinkSync(ngb, path.join(dir, 'node_modules', 'node-gyp-build'), 'dir');
  if (prebuildFile) {
    fs.mkdirSync(path.join(dir, path.dirname(prebuildRel)), { recursive: true });
    fs.copyFileSync(prebuildFile, path.join(dir, prebuildRel));
  }
  assert.ok(!fs.existsSync(path.join(dir, 'build')));
  return fs.realpathSync(dir);
}

function runNode(args) {
  return spawnSync(process.execPath, args, { encoding: 'utf8', timeout: 60000, env: process.env });
}

describe('prebuild', { skip: !supported && `prebuilds are made on linux-x64 (arm64 cross-built there), this is ${platform}` }, () => {
  before(() => {
    try {
      prebuilds = makePrebuilds();
    } catch (err) {
      prebuilds = err;
    }
  });

  const needPrebuild = (arch) => {
    if (prebuilds instanceof Error) throw prebuilds;
    return path.join(prebuilds, path.relative('prebuilds', prebuildRelOf(arch)));
  };

  for (const [arch, { objdump, machine }] of Object.entries(ARCHES)) {
    const noTools = (!hasBinutils && 'readelf/objdump (binutils) not installed') ||
      (!hasTool(objdump) && `${objdump} not installed (apt-get install binutils-aarch64-linux-gnu)`);

    test(`the prebuild for linux-${arch} is ${prebuildRelOf(arch)}, for ${machine}, stripped`, () => {
      const file = needPrebuild(arch);
      assert.ok(fs.statSync(file).size > 0);
      if (!hasBinutils) return;
      assert.match(tool('readelf', ['-h', file]), new RegExp(`Machine:\\s+${machine}\\n`));
      const sections = tool('readelf', ['-S', '--wide', file]);
      assert.doesNotMatch(sections, /\s\.symtab\s/, 'the prebuild still has a .symtab: --strip did not run');
      assert.match(sections, /\s\.dynsym\s/);
    });

    test(
      `the prebuild for linux-${arch} needs no GLIBC above 2.28, GLIBCXX above 3.4.25, CXXABI above 1.3.11`,
      { skip: noTools },
      () => {
        const file = needPrebuild(arch);
        assert.deepEqual(tooNew(file, arch), [], `${file} needs symbol versions that are too new`);
      },
    );

    test(`the prebuild for linux-${arch} links only the C and C++ runtimes`, { skip: noTools }, () => {
      const needed = neededLibraries(needPrebuild(arch));
      assert.deepEqual(
        needed.filter((lib) => !ALLOWED_NEEDED.has(lib)),
        [],
        `unexpected NEEDED libraries: ${needed.join(', ')}`,
      );
    });
  }

  test(
    `${buildRel} needs no symbol versions above the same limits`,
    {
      skip:
        (!hasBinutils && 'binutils not installed') ||
        (sanitize && 'NAMED_SEMAPHORE_SANITIZE=1: build/ holds an ASan build') ||
        (!fs.existsSync(path.join(root, buildRel)) && `no ${buildRel} (npm run build:native makes it)`),
    },
    () => {
      const file = path.join(root, buildRel);
      assert.deepEqual(tooNew(file, process.arch), [], `${file} needs symbol versions that are too new`);
    },
  );

  test('a fresh process loads the prebuild through node-gyp-build when there is no build/', () => {
    const dir = packageFolder('with-prebuild', needPrebuild(process.arch));
    const expected = path.join(dir, prebuildRel);
    const script = `
      const fs = require('node:fs');
      const dir = process.argv[1];
      const resolved = require(require.resolve('node-gyp-build', { paths: [dir] })).resolve(dir);
      const { NamedSemaphore } = require(dir);
      const name = '/nsem-test-prebuild-' + process.pid;
      const sem = new NamedSemaphore(name, { exclusive: true, initialValue: 1 });
      sem.post(2);
      const value = sem.value;
      sem.close();
      const unlinked = NamedSemaphore.unlink(name);
      const loaded = fs.readFileSync('/proc/self/maps', 'utf8').split('\\n')
        .map((line) => line.split(/\\s+/).slice(5).join(' '))
        .filter((file) => file.endsWith('.node'));
      console.log(JSON.stringify({ resolved, value, unlinked, loaded: [...new Set(loaded)] }));
    `;
    const r = runNode(['-e', script, dir]);
    assert.equal(r.status, 0, `child failed:\n${r.stderr}`);
    const out = JSON.parse(r.stdout.trim().split('\n').pop());
    assert.equal(out.resolved, expected);
    assert.deepEqual(out.loaded, [expected], 'the process mapped some other .node file');
    assert.equal(out.value, 3);
    assert.equal(out.unlinked, true);
  });
});

describe('no binary', { skip: !supported && `this checks the linux-x64 message, this is ${platform}` }, () => {
  test('an addon that glibc cannot load for want of static TLS gets advice that fits, not a rebuild', () => {
    const { loadFailureMessage } = require('../dist/native');
    // What dlopen says (glibc's own wording) when its static TLS reserve is used up.
    const tls = loadFailureMessage('/x/named_semaphore.node: cannot allocate memory in static TLS block');
    assert.match(tls, /no static TLS space left/);
    assert.match(tls, /GLIBC_TUNABLES=glibc\.rtld\.optional_static_tls=/);
    assert.doesNotMatch(tls, /rebuild|no prebuilt binary/);
    assert.ok(!tls.includes('\n'), 'one line');
    // Anything else: no binary fits.
    assert.match(loadFailureMessage('No native build was found'), /^named-semaphore: no prebuilt binary fits/);
  });

  test('requiring a package with neither prebuild nor build fails with one clear message', () => {
    const dir = packageFolder('no-binary', null);
    const r = runNode(['-e', `require(${JSON.stringify(dir)})`]);
    const stderr = r.stderr;
    assert.equal(r.signal, null, stderr);
    assert.notEqual(r.status, 0, 'require() succeeded without any binary');
    assert.equal(r.stdout, '');

    // It names the platform and says how to build from source.
    assert.match(stderr, /no prebuilt binary fits linux-x64/);
    assert.ok(stderr.includes('npm install-scripts approve named-semaphore && npm rebuild named-semaphore'), stderr);
    assert.ok(stderr.includes(`cd ${dir} && npx --yes node-gyp rebuild`), stderr);
    assert.equal(stderr.split('no prebuilt binary fits').length - 1, 1, `the message is repeated:\n${stderr}`);

    // One Error and its own stack: no chained causes, no loader internals.
    const headers = stderr.split('\n').filter((line) => /^\s*(\[cause\]:\s*)?[A-Za-z]*Error\b[^:\n]*:/.test(line));
    assert.equal(headers.length, 1, `expected a single Error, got:\n${stderr}`);
    assert.doesNotMatch(stderr, /\[cause\]/, `the error prints a chained cause:\n${stderr}`);
    assert.doesNotMatch(stderr, /node-gyp-build\.js/, `the output shows node-gyp-build internals:\n${stderr}`);
    const frames = stderr.split('\n').filter((line) => /^\s+at /.test(line));
    assert.ok(frames.length <= 10, `${frames.length} stack frames:\n${stderr}`);
  });
});

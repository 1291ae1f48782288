'use strict';
// Runs every JavaScript and TypeScript code block of README.md and docs/*.md,
// as written, from a consumer folder that installed the package (test/pack.sh
// makes one from the packed tarball):
//
//   node test/docs/run.js APP_DIR [FILE.md...]
//
// A block runs if its info string starts with js, javascript, mjs, cjs, ts or
// typescript; one that is not meant to run on its own says so with a second
// word, `fragment` (```js fragment). A block with `import`/`export` or
// top-level await is an ES module, else CommonJS. TypeScript blocks are
// type-checked (strict, no skipLibCheck), then run. Each block runs with its
// own empty /dev/shm (a private mount namespace, where unshare is allowed) so
// that names like '/busy' meet no one else's, and must leave it empty: a
// sample cleans up after itself. A block that starts a server gets one
// request, then the server is closed (./preload.js); ports are replaced by 0.
const fs = require('node:fs');
const path = require('node:path');
const vm = require('node:vm');
const { spawnSync } = require('node:child_process');

const root = path.join(__dirname, '..', '..');
const [app, ...files] = process.argv.slice(2);
if (!app) {
  console.error('usage: node test/docs/run.js APP_DIR [FILE.md...]');
  process.exit(2);
}
const docs = files.length > 0 ? files.map((f) => path.resolve(f)) : defaultFiles();
const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc');
const TIMEOUT_MS = 60000;

function defaultFiles() {
  const dir = path.join(root, 'docs');
  const inDocs = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.md')).map((f) => path.join(dir, f)) : [];
  return [path.join(root, 'README.md'), ...inDocs.sort()];
}

/** The fenced blocks of a Markdown file: { lang, words, code, line }. */
function blocks(text) {
  const found = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)(`{3,}|~{3,})\s*([^`\s]*)\s*(.*)$/.exec(lines[i]);
    if (!open) continue;
    const [, indent, fence, lang, rest] = open;
    const body = [];
    let j = i + 1;
    for (; j < lines.length && !lines[j].trimStart().startsWith(fence); j++) body.push(lines[j].slice(indent.length));
    found.push({ lang: lang.toLowerCase(), words: rest.split(/\s+/).filter(Boolean), code: `${body.join('\n')}\n`, line: i + 1 });
    i = j;
  }
  return found;
}

const KINDS = { js: 'js', javascript: 'js', mjs: 'mjs', cjs: 'cjs', ts: 'ts', typescript: 'ts' };
// An ES module if it imports or exports, or if it does not compile as
// CommonJS for its top-level await.
function isModule(code) {
  if (/^(import|export)\s/m.test(code)) return true;
  try {
    vm.compileFunction(code);
    return false;
  } catch (error) {
    return error instanceof SyntaxError && /await/.test(error.message);
  }
}

const canUnshare = spawnSync('unshare', ['--mount', 'true']).status === 0;

/** Runs a command in APP_DIR, with a private /dev/shm where possible; returns the result and what it left there. */
function runIsolated(argv) {
  const leftovers = path.join(app, '.docs-leftovers');
  fs.rmSync(leftovers, { force: true });
  const script = canUnshare
    ? 'mount -t tmpfs -o mode=1777 docs-shm /dev/shm || exit 99; "$@"; rc=$?; ls -A /dev/shm > "$LEFTOVERS"; exit $rc'
    : '"$@"';
  const command = canUnshare ? ['unshare', '--mount', '--propagation', 'private', 'sh', '-c', script, 'sh', ...argv] : ['sh', '-c', script, 'sh', ...argv];
  const result = spawnSync(command[0], command.slice(1), {
    cwd: app,
    encoding: 'utf8',
    timeout: TIMEOUT_MS,
    env: { ...process.env, LEFTOVERS: leftovers, NODE_OPTIONS: `--require ${path.join(__dirname, 'preload.js')}` },
  });
  const left = fs.existsSync(leftovers) ? fs.readFileSync(leftovers, 'utf8').trim() : '';
  return { result, left };
}

let failed = 0;
let ran = 0;
let skipped = 0;
for (const file of docs) {
  const rel = path.relative(root, file);
  for (const block of blocks(fs.readFileSync(file, 'utf8'))) {
    const kind = KINDS[block.lang];
    if (kind === undefined) continue;
    const where = `${rel}:${block.line}`;
    if (block.words.includes('fragment')) {
      skipped++;
      console.log(`skip ${where} (fragment)`);
      continue;
    }
    const base = `docs-block-${rel.replace(/[^\w]+/g, '-')}-${block.line}`;
    const esm = kind === 'mjs' || (kind !== 'cjs' && isModule(block.code));
    const ext = kind === 'ts' ? (esm ? '.mts' : '.cts') : esm ? '.mjs' : '.cjs';
    const source = path.join(app, base + ext);
    fs.writeFileSync(source, block.code);
    let entry = source;
    const problems = [];
    if (kind === 'ts') {
      const out = path.join(app, 'docs-ts-out');
      const check = spawnSync(process.execPath, [tsc, '--strict', '--skipLibCheck', 'false', '--target', 'es2022', '--lib', 'es2022,esnext.disposable',
        '--module', 'nodenext', '--moduleResolution', 'nodenext', '--types', 'node', '--outDir', out, source], { cwd: app, encoding: 'utf8' });
      if (check.status !== 0) problems.push(`tsc:\n${check.stdout}${check.stderr}`);
      entry = path.join(out, base + (esm ? '.mjs' : '.cjs'));
    }
    if (problems.length === 0) {
      const { result, left } = runIsolated([process.execPath, entry]);
      if (result.error) problems.push(`${result.error.message}`);
      else if (result.status !== 0) problems.push(`exit ${result.status ?? result.signal}`);
      if (left !== '') problems.push(`left in /dev/shm: ${left.split('\n').join(' ')}`);
      if (problems.length > 0) problems.push(`output:\n${result.stdout}${result.stderr}`);
    }
    ran++;
    if (problems.length === 0) {
      console.log(`ok   ${where} (${ext.slice(1)})`);
    } else {
      failed++;
      console.log(`FAIL ${where} (${ext.slice(1)}): ${problems.join('\n')}`);
    }
  }
}
console.log(`docs: ${ran} blocks run, ${failed} failed, ${skipped} fragments skipped${canUnshare ? '' : ' (no unshare: /dev/shm shared)'}`);
process.exit(failed === 0 && ran > 0 ? 0 : 1);

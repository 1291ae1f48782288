#!/usr/bin/env node
// The named-semaphore command: look at and change the named semaphores and
// gauges of this host from a shell.
//
// Exit status: 0 success, 1 the operation failed (not found, timed out,
// permission), 2 a usage error. Every error is one line on stderr.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { hasCode } from './errors';
import * as shares from './shares';
import * as validate from './validate';

// The API is loaded on first use, so `--help` and usage errors work even when
// the native binary does not load, and a load failure is reported like any error.
type Api = typeof import('./index') & { reapGauge: typeof import('./gauge').reapGauge };
let loaded: Api | undefined;
function api(): Api {
  if (loaded === undefined) {
    /* eslint-disable @typescript-eslint/no-require-imports */
    const index = require('./index') as typeof import('./index');
    const gauge = require('./gauge') as typeof import('./gauge');
    /* eslint-enable @typescript-eslint/no-require-imports */
    loaded = { ...index, reapGauge: gauge.reapGauge };
  }
  return loaded;
}

const PROG = 'named-semaphore';

/** Exit 2: the command line is wrong. */
class UsageError extends Error {
  constructor(
    message: string,
    readonly command?: string,
  ) {
    super(message);
  }
}

/** Exit 1 with this message: the operation failed. `code` leads the message, like a system error. */
class Failure extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(`${code}: ${message}`);
  }
}

type Values = Record<string, string | boolean | string[] | undefined>;

interface Command {
  /** After the command name, e.g. 'NAME [--json]'. */
  synopsis: string;
  summary: string;
  /** Lines after the synopsis in `CMD --help`. */
  details: string;
  options: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }>;
  /** Names of the positionals; those in [] are optional, a last one ending in '...' takes the rest. */
  positionals: string[];
  run(values: Values, args: string[]): number | Promise<number>;
}

// ---- arguments ------------------------------------------------------------

// The names given, so that report() can escape them in messages whole, before
// it keeps a message's first line (a name may hold a newline).
const namesGiven = new Set<string>();

function semaphoreName(text: string): string {
  try {
    const name = validate.semaphoreName(text, 'NAME');
    namesGiven.add(name);
    return name;
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

function integer(text: string, what: string, min: number, max: number): number {
  const n = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!(n >= min && n <= max)) throw new UsageError(`${what} must be an integer from ${min} to ${max}, not '${text}'`);
  return n;
}

function octalMode(text: string): number {
  const m = /^(?:0o)?0*([0-7]{1,4})$/i.exec(text);
  if (m === null) throw new UsageError(`--mode must be octal permission bits such as 600 or 0640, not '${text}'`);
  return parseInt(m[1], 8);
}

/**
 * Text as it may be shown on a terminal: control characters escaped (any user
 * can put them in a name in /dev/shm, e.g. an escape sequence or a newline).
 */
function shown(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\x00-\x1f\x7f-\x9f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

// ---- what is in /dev/shm --------------------------------------------------

function exists(name: string): boolean {
  return fs.existsSync(shares.semaphorePath(name));
}

let passwd: Map<number, string> | undefined;
function userName(uid: number): string {
  if (passwd === undefined) {
    passwd = new Map();
    try {
      for (const line of fs.readFileSync('/etc/passwd', 'utf8').split('\n')) {
        const [user, , id] = line.split(':');
        if (user && id && /^\d+$/.test(id) && !passwd.has(Number(id))) passwd.set(Number(id), user);
      }
    } catch {
      // no /etc/passwd: uids it is
    }
  }
  return passwd.get(uid) ?? String(uid);
}

/** The value of one semaphore, opened without creating it. */
function semaphoreValue(name: string): number {
  const sem = new (api().NamedSemaphore)(name, { create: false });
  try {
    return sem.value;
  } finally {
    sem.close();
  }
}

/** The value of one share, which NamedSemaphore refuses to open (only its Gauge writes it): read only. */
function shareValue(name: string): number {
  const { binding } = require('./native') as typeof import('./native'); // eslint-disable-line @typescript-eslint/no-require-imports
  const { SemaphoreError } = api();
  const handle = binding.open(name, false, false, 0, 0);
  if (typeof handle === 'number') throw new SemaphoreError(handle, 'sem_open', name);
  try {
    const value = binding.value(handle.id);
    if (value < 0) throw new SemaphoreError(-value, 'sem_getvalue', name);
    return value;
  } finally {
    binding.close(handle.id);
  }
}

/** An error's code, for a listing that goes on. */
function errorCode(error: unknown): string {
  const code = (error as { code?: unknown })?.code;
  return typeof code === 'string' ? code : String((error as Error)?.message ?? error);
}

/** Entries in /dev/shm named like semaphores that are none a process could have made or we may read. */
type OddKind = 'symlink' | 'directory' | 'fifo' | 'special' | 'short' | 'foreign' | 'unreadable';

interface Entry {
  /** The semaphore name; escaped (see displayName) where it is no UTF-8. */
  name: string;
  kind: 'semaphore' | 'gauge' | OddKind;
  /** null when it could not be read (see error). */
  value: number | null;
  owner: string;
  uid: number;
  /** Permission bits in octal, e.g. '0600'. */
  mode: string;
  /** Gauges: shares, and shares whose process is gone. */
  shares?: number;
  deadShares?: number;
  /** Why value is null, e.g. 'EACCES'. */
  error?: string;
}

/**
 * A file name's bytes as text that is one line and says what they are:
 * printable UTF-8 as is, a backslash doubled, anything else (control
 * characters, newlines, bytes that are no UTF-8) as \xNN.
 */
export function displayName(bytes: Buffer): string {
  let out = '';
  const text = bytes.toString('utf8');
  if (Buffer.from(text, 'utf8').equals(bytes)) {
    for (const ch of text) {
      const c = ch.codePointAt(0)!;
      if (ch === '\\') out += '\\\\';
      else if (c < 0x20 || c === 0x7f || (c >= 0x80 && c < 0xa0)) out += `\\x${c.toString(16).padStart(2, '0')}`;
      else out += ch;
    }
    return out;
  }
  for (const b of bytes) {
    out += b >= 0x20 && b < 0x7f && b !== 0x5c ? String.fromCharCode(b) : b === 0x5c ? '\\\\' : `\\x${b.toString(16).padStart(2, '0')}`;
  }
  return out;
}

/**
 * A file name's bytes as an entry's name: the name itself where it is UTF-8
 * (--json keeps it exact; the table shows it escaped), else displayName's
 * escaped form, the only text that can stand for it.
 */
function entryName(bytes: Buffer): string {
  const text = bytes.toString('utf8');
  return Buffer.from(text, 'utf8').equals(bytes) ? text : displayName(bytes);
}

/** What a file is, if it is no file a semaphore could be; null for a regular file long enough. */
function oddKind(st: fs.Stats): OddKind | null {
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isDirectory()) return 'directory';
  if (st.isFIFO()) return 'fifo';
  if (!st.isFile()) return 'special';
  return st.size < 32 ? 'short' : null;
}

/**
 * Every entry of /dev/shm named like a semaphore. Never fails because of one
 * entry: what is no semaphore or gauge of ours, or cannot be read, is listed
 * with a kind (or an error) that says why.
 */
function listAll(): Entry[] {
  const { binding, SHARE_KINDS } = require('./native') as typeof import('./native'); // eslint-disable-line @typescript-eslint/no-require-imports
  const entries: Entry[] = [];
  const semaphores: string[] = [];
  const gauges = new Map<string, shares.ShareInfo[]>();
  const files: string[] = [];
  const entry = (name: string, kind: Entry['kind'], st: fs.Stats, value: number | null = null, error?: string): Entry => ({
    name,
    kind,
    value,
    owner: userName(st.uid),
    uid: st.uid,
    mode: (st.mode & 0o7777).toString(8).padStart(4, '0'),
    ...(error === undefined ? {} : { error }),
  });
  const lstat = (file: Buffer | string): fs.Stats | null => {
    try {
      return fs.lstatSync(Buffer.concat([Buffer.from(shares.SHM_DIR + '/'), Buffer.from(file)]));
    } catch {
      return null; // removed meanwhile
    }
  };

  for (const bytes of fs.readdirSync(shares.SHM_DIR, { encoding: 'buffer' })) {
    if (bytes.length <= 4 || bytes.subarray(0, 4).toString('latin1') !== 'sem.') continue;
    const st = lstat(bytes);
    if (st === null) continue;
    const file = bytes.toString('utf8');
    const name = '/' + entryName(bytes.subarray(4));
    const odd = oddKind(st);
    if (odd !== null) {
      entries.push(entry(name, odd, st));
    } else if (!Buffer.from(file, 'utf8').equals(bytes)) {
      entries.push(entry(name, 'unreadable', st, null, 'EILSEQ')); // no UTF-8: no API can name it
    } else {
      files.push(file);
    }
  }
  for (const file of files) {
    const generationOf = shares.gaugeOfGenerationFile(file);
    const shareOf = shares.parseShareFile(file);
    if (generationOf !== null) {
      if (!gauges.has(generationOf)) gauges.set(generationOf, []);
    } else if (shareOf !== null) {
      const kind = SHARE_KINDS[binding.shareKind(shares.generationName(shareOf.gauge), shareOf.share.name)];
      if (kind === 'gone') continue;
      if (kind !== 'share') {
        const st = lstat(file);
        if (st !== null) entries.push(entry('/' + entryName(Buffer.from(file.slice(4))), kind, st));
        continue;
      }
      // A share whose generation is gone still shows, under its gauge.
      const list = gauges.get(shareOf.gauge) ?? [];
      list.push(shareOf.share);
      gauges.set(shareOf.gauge, list);
    } else {
      semaphores.push(shares.semaphoreOfFile(file)!);
    }
  }

  const read = (name: string, kind: 'semaphore' | 'gauge', file: string, value: () => number): Entry | null => {
    const st = lstat(`sem.${file.slice(1)}`);
    if (st === null) return null;
    try {
      return entry(entryName(Buffer.from(name)), kind, st, value());
    } catch (error) {
      const code = errorCode(error);
      if (code === 'ENOENT') return null;
      // A semaphore we may not open is listed as such; a gauge is known by its generation's name.
      const unreadable = kind === 'semaphore' && (code === 'EACCES' || code === 'EPERM');
      return entry(entryName(Buffer.from(name)), unreadable ? 'unreadable' : kind, st, null, code);
    }
  };
  for (const name of semaphores) {
    const e = read(name, 'semaphore', name, () => semaphoreValue(name));
    if (e !== null) entries.push(e);
  }
  for (const [gauge, list] of gauges) {
    const hasGeneration = files.includes(`sem.${shares.generationName(gauge).slice(1)}`);
    const file = hasGeneration ? shares.generationName(gauge) : list[0].name;
    // Without its generation (a race with unlink), the shares are summed one by one.
    const e = read(gauge, 'gauge', file, hasGeneration
      ? (): number => api().Gauge.read(gauge)
      : (): number => list.reduce((sum, share) => sum + shareValue(share.name), 0));
    if (e === null) continue;
    e.shares = list.length;
    const isOwnerAlive = shares.ownerJudge();
    e.deadShares = list.filter((share) => !isOwnerAlive(share)).length;
    entries.push(e);
  }
  return entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

function table(entries: Entry[]): string {
  const header = ['NAME', 'KIND', 'VALUE', 'OWNER', 'MODE', 'SHARES', 'DEAD'];
  const right = [false, false, true, false, false, true, true];
  const rows = entries.map((e) => [
    shown(e.name),
    e.kind,
    e.value === null ? (e.error ?? '-') : String(e.value),
    e.owner,
    e.mode,
    e.shares === undefined ? '-' : String(e.shares),
    e.deadShares === undefined ? '-' : String(e.deadShares),
  ]);
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((row) => row[i].length)));
  return all
    .map((row) =>
      row
        .map((cell, i) => (right[i] ? cell.padStart(widths[i]) : cell.padEnd(widths[i])))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** Reads a semaphore's value or a gauge's total, again and again. */
interface Reader {
  kind: Entry['kind'];
  read(): number;
  close(): void;
}

function openReader(name: string): Reader {
  const { Gauge, NamedSemaphore } = api();
  if (shares.isGauge(name)) {
    Gauge.read(name); // fails now, not later, if it cannot be read
    return { kind: 'gauge', read: () => Gauge.read(name), close: () => {} };
  }
  const sem = new NamedSemaphore(name, { create: false });
  return { kind: 'semaphore', read: () => sem.value, close: () => sem.close() };
}

// ---- watch ----------------------------------------------------------------

const SPARKS = '▁▂▃▄▅▆▇█';
const HISTORY = 120;

/** Bar heights proportional to the values, the highest full. */
function sparkline(values: number[]): string {
  const top = Math.max(...values);
  return values.map((v) => SPARKS[top <= 0 ? 0 : Math.round((v / top) * (SPARKS.length - 1))]).join('');
}

function watch(name: string, intervalMs: number, count: number | undefined): Promise<number> {
  const reader = openReader(name);
  const tty = process.stdout.isTTY === true;
  const recent: number[] = [];
  let samples = 0;
  let min = Infinity;
  let max = -Infinity;
  const start = Date.now();
  return new Promise<number>((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    let done = false;
    const finish = (error?: unknown): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      process.removeListener('SIGINT', onSignal);
      process.removeListener('SIGTERM', onSignal);
      reader.close();
      if (tty && samples > 0) process.stdout.write('\n');
      if (error === undefined) resolve(0);
      else reject(error);
    };
    const onSignal = (): void => finish();
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);

    const sample = (): void => {
      let value: number;
      try {
        value = reader.read();
      } catch (error) {
        finish(error);
        return;
      }
      samples++;
      min = Math.min(min, value);
      max = Math.max(max, value);
      if (tty) {
        recent.push(value);
        if (recent.length > HISTORY) recent.shift();
        const text = `${shown(name)}  ${value}  min ${min}  max ${max}  `;
        const room = Math.max(1, (process.stdout.columns || 80) - text.length - 1);
        process.stdout.write(`\r${text}${sparkline(recent.slice(-room))}\x1b[K`);
      } else {
        process.stdout.write(`${new Date().toISOString()} ${value}\n`);
      }
      if (count !== undefined && samples >= count) {
        finish();
        return;
      }
      // On a fixed schedule, so slow reads do not make it drift.
      timer = setTimeout(sample, Math.max(0, start + samples * intervalMs - Date.now()));
    };
    sample();
  });
}

// ---- serve-metrics --------------------------------------------------------

function serveMetrics(host: string, port: number, names: string[], ports: number[]): Promise<number> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { createMetricsServer } = require('./prometheus') as typeof import('./prometheus');
  const server = createMetricsServer({ names, ports });
  return new Promise<number>((resolve, reject) => {
    const stop = (): void => {
      process.removeListener('SIGINT', stop);
      process.removeListener('SIGTERM', stop);
      server.close(() => resolve(0));
      server.closeAllConnections(); // Prometheus keeps its connection alive
    };
    server.once('error', (error: NodeJS.ErrnoException) => {
      // 'listen EADDRINUSE: address already in use 127.0.0.1:9100' -> 'address already in use'
      const reason = error.message.replace(/^listen \w+: /, '').replace(/ \S*:\d+$/, '');
      reject(error.code === undefined ? error : new Failure(error.code, `${reason}, listen ${host}:${port}`));
    });
    server.listen(port, host, () => {
      const address = server.address() as import('node:net').AddressInfo;
      const shown = address.family === 'IPv6' ? `[${address.address}]` : address.address;
      console.log(`Serving http://${shown}:${address.port}/metrics`);
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    });
  });
}

// ---- the commands ---------------------------------------------------------

const commands: Record<string, Command> = {
  ls: {
    synopsis: '[--json]',
    summary: 'list every named semaphore and gauge on this host',
    details: `Lists /dev/shm/sem.*: each semaphore, and each gauge once (its share and
generation semaphores are not listed apart). VALUE is a gauge's total; SHARES
counts a gauge's shares and DEAD those whose process is gone (see 'reap').
A value this user may not read shows as its error code, e.g. EACCES. Entries
that are no semaphore a process made, or that this user may not read, are
listed too, with a KIND that says why: symlink, directory, fifo, special,
short (too short to be a semaphore), foreign (named like a gauge's share, but
owned by a user the gauge's mode does not let write it), unreadable. Names
that are not printable UTF-8 show escaped (\\xNN).

Options:
  --json      an array of objects: name, kind, value, owner, uid, mode,
              and for gauges shares and deadShares`,
    options: { json: { type: 'boolean' } },
    positionals: [],
    run(values) {
      const entries = listAll();
      if (values.json) console.log(JSON.stringify(entries, null, 2));
      else console.log(table(entries));
      return 0;
    },
  },

  get: {
    synopsis: 'NAME [--json]',
    summary: "print a semaphore's value, or a gauge's total",
    details: `Prints the value as a bare integer. NAME is a gauge if it has a gauge
generation semaphore (NAME~gauge); its value is the sum of its shares.

Options:
  --json      {"name", "kind", "value"}`,
    options: { json: { type: 'boolean' } },
    positionals: ['NAME'],
    run(values, [text]) {
      const name = semaphoreName(text);
      const reader = openReader(name);
      try {
        const value = reader.read();
        console.log(values.json ? JSON.stringify({ name, kind: reader.kind, value }) : String(value));
      } finally {
        reader.close();
      }
      return 0;
    },
  },

  watch: {
    synopsis: 'NAME [--interval MS] [--count N]',
    summary: 'follow the value of a semaphore or gauge',
    details: `On a terminal, one line redrawn in place: the value, its minimum and maximum
so far, and a sparkline of recent values. Otherwise one line per sample: an
ISO 8601 timestamp and the value. Ctrl-C ends it (exit status 0).

Options:
  --interval MS   milliseconds between samples (default 1000)
  --count N       stop after N samples`,
    options: { interval: { type: 'string' }, count: { type: 'string' } },
    positionals: ['NAME'],
    run(values, [text]) {
      const name = semaphoreName(text);
      const interval = values.interval === undefined ? 1000 : integer(values.interval as string, '--interval', 1, 2 ** 31 - 1);
      const count = values.count === undefined ? undefined : integer(values.count as string, '--count', 1, Number.MAX_SAFE_INTEGER);
      return watch(name, interval, count);
    },
  },

  'serve-metrics': {
    synopsis: '--port P [--host ADDR] [--listen-port N]... [NAME...]',
    summary: 'serve /metrics for Prometheus: gauges, semaphores, listen queues',
    details: `An HTTP server whose /metrics (Prometheus text format) reads, at each scrape:
  named_semaphore_value{name="/busy",kind="gauge"}   a gauge's total, or a
      semaphore's value (kind="semaphore"), for each NAME; a NAME that does not
      exist yet has no series until it does
  listen_queue_connections{address,port}      connections waiting to be accepted
  listen_queue_max_connections{address,port}  the accept queue's limit (backlog)
      for each TCP listening socket on each --listen-port
Prints the URL it serves and runs until SIGINT or SIGTERM (exit status 0).
Run one per host; Prometheus sums over hosts.

Options:
  --port P          the HTTP port to listen on (0: any free port)
  --host ADDR       the address to listen on (default 127.0.0.1)
  --listen-port N   report the listen queue of TCP port N (repeatable)`,
    options: { port: { type: 'string' }, host: { type: 'string' }, 'listen-port': { type: 'string', multiple: true } },
    positionals: ['[NAME...]'],
    run(values, texts) {
      if (values.port === undefined) throw new UsageError('missing --port');
      const port = integer(values.port as string, '--port', 0, 65535);
      const host = (values.host as string | undefined) ?? '127.0.0.1';
      const ports = ((values['listen-port'] as string[] | undefined) ?? []).map((p) => integer(p, '--listen-port', 1, 65535));
      const names = texts.map(semaphoreName);
      if (names.length === 0 && ports.length === 0) throw new UsageError('nothing to serve: give a NAME or --listen-port');
      return serveMetrics(host, port, names, ports);
    },
  },

  create: {
    synopsis: 'NAME [--value N] [--mode OCTAL] [--exclusive]',
    summary: 'create a semaphore',
    details: `Creates the semaphore NAME, or leaves it as it is if it exists (then --value
and --mode have no effect, and a note says so).

Options:
  --value N       its value when created (default 0)
  --mode OCTAL    its exact permission bits, whatever the umask (default 600)
  --exclusive     fail (EEXIST) if it exists`,
    options: { value: { type: 'string' }, mode: { type: 'string' }, exclusive: { type: 'boolean' } },
    positionals: ['NAME'],
    run(values, [text]) {
      const name = semaphoreName(text);
      const initialValue = values.value === undefined ? 0 : integer(values.value as string, '--value', 0, validate.SEM_VALUE_MAX);
      const mode = values.mode === undefined ? undefined : octalMode(values.mode as string);
      const { NamedSemaphore } = api();
      for (;;) {
        try {
          new NamedSemaphore(name, { exclusive: true, mode, initialValue }).close();
          if (mode !== undefined) shares.chmodSemaphore(name, mode); // sem_open applied the umask
          return 0;
        } catch (error) {
          if (values.exclusive || !hasCode(error, 'EEXIST')) throw error;
        }
        try {
          new NamedSemaphore(name, { create: false }).close();
        } catch (error) {
          if (hasCode(error, 'ENOENT')) continue; // removed meanwhile: create it after all
          throw error;
        }
        if (values.value !== undefined || values.mode !== undefined) {
          console.error(`${PROG}: note: '${name}' exists already; --value and --mode apply only when it is created`);
        }
        return 0;
      }
    },
  },

  post: {
    synopsis: 'NAME [N]',
    summary: 'add N (default 1) to a semaphore',
    details: `Adds N to the semaphore NAME, which must exist. Fails with EOVERFLOW, leaving
it unchanged, past ${validate.SEM_VALUE_MAX}.`,
    options: {},
    positionals: ['NAME', '[N]'],
    run(_values, [text, n]) {
      const name = semaphoreName(text);
      const count = n === undefined ? 1 : integer(n, 'N', 1, validate.SEM_VALUE_MAX);
      const sem = openSemaphore(name);
      try {
        sem.post(count);
      } finally {
        sem.close();
      }
      return 0;
    },
  },

  wait: {
    synopsis: 'NAME [--timeout MS]',
    summary: 'take one from a semaphore, waiting while it is 0',
    details: `Takes one from the semaphore NAME, which must exist, blocking while its value
is 0. Exit status 1 (ETIMEDOUT) if the timeout passes first.

Options:
  --timeout MS    give up after MS milliseconds (0: try once; default: wait forever)`,
    options: { timeout: { type: 'string' } },
    positionals: ['NAME'],
    run(values, [text]) {
      const name = semaphoreName(text);
      const timeout = values.timeout === undefined ? undefined : integer(values.timeout as string, '--timeout', 0, Number.MAX_SAFE_INTEGER);
      const sem = openSemaphore(name);
      try {
        // Blocking is right here: the process has nothing else to do, and
        // Ctrl-C ends it before or after the wait took, never halfway.
        if (!sem.waitSync({ timeout })) throw new Failure('ETIMEDOUT', `timed out after ${timeout} ms, sem_wait '${name}'`);
      } finally {
        sem.close();
      }
      return 0;
    },
  },

  unlink: {
    synopsis: 'NAME',
    summary: 'remove a semaphore, or a gauge and all its shares',
    details: `Removes the name; processes that have it open keep using it. If NAME is a
gauge, its generation semaphore and every share are removed.`,
    options: {},
    positionals: ['NAME'],
    run(_values, [text]) {
      const name = semaphoreName(text);
      const { Gauge, NamedSemaphore } = api();
      const gauge = shares.isGauge(name) || shares.listShares(name).length > 0;
      if (gauge ? !Gauge.unlink(name) : !NamedSemaphore.unlink(name)) {
        throw new Failure('ENOENT', `no such file or directory, sem_unlink '${name}'`);
      }
      return 0;
    },
  },

  reap: {
    synopsis: 'NAME',
    summary: 'remove the shares of dead processes from a gauge',
    details: `Removes the shares of the gauge NAME whose process no longer exists, and
prints how much left the total (0 if none were dead).`,
    options: {},
    positionals: ['NAME'],
    run(_values, [text]) {
      const name = semaphoreName(text);
      if (!shares.isGauge(name) && exists(name)) throw new Failure('EINVAL', `'${name}' is a semaphore, not a gauge`);
      console.log(String(api().reapGauge(name)));
      return 0;
    },
  },

  queue: {
    synopsis: 'PORT [--json]',
    summary: 'show the accept queue of the TCP listeners on a port',
    details: `For each TCP socket listening on PORT on this host (IPv4 and IPv6), one line:
its address, port, QUEUED (connections waiting to be accepted) and BACKLOG
(the accept queue's limit). Read from the kernel (sock_diag), as 'ss -ltn'
does. Exit status 1 (ENOENT) if nothing listens on PORT.

Options:
  --json      an array of objects: address, family, port, queued, backlog`,
    options: { json: { type: 'boolean' } },
    positionals: ['PORT'],
    run(values, [text]) {
      const port = integer(text, 'PORT', 1, 65535);
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const listeners = (require('./http') as typeof import('./http')).listenQueue(port);
      if (listeners.length === 0) throw new Failure('ENOENT', `nothing listens on TCP port ${port}`);
      if (values.json) {
        console.log(JSON.stringify(listeners, null, 2));
        return 0;
      }
      const rows = [['ADDRESS', 'PORT', 'QUEUED', 'BACKLOG'], ...listeners.map((l) => [l.address, l.port, l.queued, l.backlog].map(String))];
      const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
      console.log(rows.map((row) => row.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  ')).join('\n'));
      return 0;
    },
  },
};

/** Opens an existing semaphore; says so when NAME is a gauge instead. */
function openSemaphore(name: string): InstanceType<Api['NamedSemaphore']> {
  try {
    return new (api().NamedSemaphore)(name, { create: false });
  } catch (error) {
    if (hasCode(error, 'ENOENT') && shares.isGauge(name)) {
      throw new Failure('ERR_GAUGE_READ_ONLY', `'${name}' is a gauge, which only its processes change`);
    }
    throw error;
  }
}

// ---- help and dispatch ------------------------------------------------------

function usageLine(name: string): string {
  return `${PROG} ${name} ${commands[name].synopsis}`.trimEnd();
}

function globalHelp(): string {
  const lines = Object.keys(commands).map((name) => `  ${usageLine(name).slice(PROG.length + 1)}\n      ${commands[name].summary}`);
  return `Usage: ${PROG} <command> [options]

POSIX named semaphores and gauges on this host (/dev/shm). NAME may be given
with or without its leading '/'.

Commands:
${lines.join('\n')}

Options:
  -h, --help      this help; '${PROG} <command> --help' for a command's options
  -V, --version   print the version of named-semaphore

Exit status: 0 success, 1 the operation failed, 2 a usage error.`;
}

function commandHelp(name: string): string {
  return `Usage: ${usageLine(name)}

${commands[name].summary[0].toUpperCase() + commands[name].summary.slice(1)}.

${commands[name].details}`;
}

function version(): string {
  const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8')) as { version: string };
  return pkg.version;
}

/** Whether -h or --help comes before any '--'. */
function wantsHelp(args: string[]): boolean {
  for (const arg of args) {
    if (arg === '--') return false;
    if (arg === '-h' || arg === '--help') return true;
  }
  return false;
}

function parseError(error: unknown, command: string): UsageError {
  const e = error as { code?: string; message: string };
  const option = /'(-[^' ]*)/.exec(e.message)?.[1];
  switch (e.code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return new UsageError(`unknown option '${option}'`, command);
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      return new UsageError(
        /argument missing|ambiguous/.test(e.message) ? `option '${option}' needs a value` : `option '${option}' takes no value`,
        command,
      );
    default:
      return new UsageError(e.message.split('\n')[0], command);
  }
}

async function main(argv: string[]): Promise<number> {
  const [first, ...rest] = argv;
  if (first === undefined) throw new UsageError('missing command');
  if (first === '-h' || first === '--help' || first === 'help') {
    const topic = first === 'help' ? rest[0] : undefined;
    if (topic !== undefined && !Object.hasOwn(commands, topic)) throw new UsageError(`unknown command '${topic}'`);
    console.log(topic === undefined ? globalHelp() : commandHelp(topic));
    return 0;
  }
  if (first === '-V' || first === '--version') {
    console.log(version());
    return 0;
  }
  if (first.startsWith('-')) throw new UsageError(`unknown option '${first}'; options come after the command`);
  if (!Object.hasOwn(commands, first)) throw new UsageError(`unknown command '${first}'`);
  const command = commands[first];
  if (wantsHelp(rest)) {
    console.log(commandHelp(first));
    return 0;
  }

  let parsed: { values: Values; positionals: string[] };
  try {
    // A negative number ('post NAME -1', '--value -1') is an argument, so that
    // it gets the range error, not "unknown option": hidden from parseArgs
    // behind a NUL, which no argument can hold.
    const args = rest.map((arg) => (/^-\d/.test(arg) ? `\0${arg}` : arg));
    parsed = parseArgs({ args, options: command.options, allowPositionals: true, strict: true }) as typeof parsed;
  } catch (error) {
    throw parseError(error, first);
  }
  const unhide = (value: string): string => (value.startsWith('\0') ? value.slice(1) : value);
  parsed.positionals = parsed.positionals.map(unhide);
  for (const [key, value] of Object.entries(parsed.values)) {
    if (typeof value === 'string') parsed.values[key] = unhide(value);
    else if (Array.isArray(value)) parsed.values[key] = value.map(unhide);
  }
  const required = command.positionals.filter((p) => !p.startsWith('[')).length;
  if (parsed.positionals.length < required) {
    throw new UsageError(`missing ${command.positionals[parsed.positionals.length]}`, first);
  }
  if (parsed.positionals.length > command.positionals.length && !/\.\.\.\]?$/.test(command.positionals.at(-1) ?? '')) {
    throw new UsageError(`unexpected argument '${parsed.positionals[command.positionals.length]}'`, first);
  }
  try {
    return await command.run(parsed.values, parsed.positionals);
  } catch (error) {
    if (error instanceof UsageError && error.command === undefined) throw new UsageError(error.message, first);
    throw error;
  }
}

/** Lines for stderr, each shown() (a message may name anything in /dev/shm). */
function shownLines(text: string): string {
  return text.split('\n').map(shown).join('\n');
}

/** One line for stderr, and the exit status. */
function report(error: unknown): [string, number] {
  if (error instanceof UsageError) {
    const hint = error.command === undefined ? `${PROG} --help` : `${PROG} ${error.command} --help`;
    return [`${error.message} (see '${hint}')`, 2];
  }
  const e = error as { code?: unknown; message?: unknown } | null;
  let message = typeof e?.message === 'string' ? e.message : String(error);
  for (const name of namesGiven) message = message.split(name).join(shown(name));
  const code = typeof e?.code === 'string' ? e.code : undefined;
  // Arguments the API refused are usage errors; our own checks catch most first.
  if (code !== undefined && /^ERR_(INVALID_ARG|OUT_OF_RANGE)/.test(code)) return [message.split('\n')[0], 2];
  // System errors already begin with their code; others get it in front.
  const line = code === undefined || message.startsWith(`${code}:`) ? message : `${code}: ${message}`;
  // The addon's load failure explains how to build it on the lines after the first: keep them.
  if (line.startsWith(`${PROG}: no prebuilt binary`)) return [line.slice(PROG.length + 2), 1];
  return [line.split('\n')[0], 1];
}

process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  // The reader went away (`| head`): nothing left to do.
  if (error.code === 'EPIPE') process.exit(0);
  process.stderr.write(`${PROG}: ${shownLines(report(error)[0])}\n`);
  process.exit(1);
});

main(process.argv.slice(2)).then(
  (status) => {
    process.exitCode = status;
  },
  (error: unknown) => {
    const [line, status] = report(error);
    process.stderr.write(`${PROG}: ${shownLines(line)}\n`);
    process.exitCode = status;
  },
);

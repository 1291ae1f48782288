// How a gauge lives in /dev/shm: its semaphore names, and which process owns
// each share. One place for the naming scheme, shared by Gauge and the CLI.
//
// A gauge '/busy' is:
//   /busy~gauge                     generation: its value changes whenever a
//                                   share is added or removed
//   /busy~<pid>.<starttime>.<nonce> one share per Gauge object, written only
//                                   by that object; the gauge's value is their sum
import * as fs from 'node:fs';
import { randomBytes } from 'node:crypto';

/** glibc keeps named semaphores here, as files named sem.NAME. */
export const SHM_DIR = '/dev/shm';
const GENERATION_SUFFIX = '~gauge';
const SHARE_PATTERN = /^~(\d+)\.(\d+)\.([0-9a-f]{8})$/;
/** Bytes a gauge name must leave free for its share names. */
export const SHARE_SUFFIX_BYTES = '~'.length + 7 + '.'.length + 20 + '.'.length + 8;

export interface ProcessIdentity {
  pid: number;
  /** Start time in clock ticks since boot: tells a reused PID apart. */
  startTime: string;
}

export interface ShareInfo extends ProcessIdentity {
  /** The share's semaphore name, with its leading '/'. */
  name: string;
}

/** The generation semaphore of the gauge `name` ('/busy' -> '/busy~gauge'). */
export function generationName(gauge: string): string {
  return gauge + GENERATION_SUFFIX;
}

/** Whether `name` is a gauge: it has a generation semaphore. */
export function isGauge(name: string): boolean {
  return fs.existsSync(semaphorePath(generationName(name)));
}

/** A fresh share name for this process. */
export function newShareName(gauge: string, self: ProcessIdentity): string {
  return `${gauge}~${self.pid}.${self.startTime}.${randomBytes(4).toString('hex')}`;
}

/** The gauge whose generation semaphore this file is, or null. */
export function gaugeOfGenerationFile(file: string): string | null {
  if (!file.startsWith('sem.') || !file.endsWith(GENERATION_SUFFIX)) return null;
  return '/' + file.slice(4, -GENERATION_SUFFIX.length);
}

/** The gauge and owner of this share file, or null if it is not one. */
export function parseShareFile(file: string): { gauge: string; share: ShareInfo } | null {
  if (!file.startsWith('sem.')) return null;
  const tilde = file.lastIndexOf('~');
  if (tilde <= 4) return null;
  const m = SHARE_PATTERN.exec(file.slice(tilde));
  if (m === null) return null;
  const gauge = '/' + file.slice(4, tilde);
  return { gauge, share: { name: '/' + file.slice(4), pid: Number(m[1]), startTime: m[2] } };
}

/** The shares of one gauge, as found in /dev/shm now. */
export function listShares(gauge: string, files: string[] = fs.readdirSync(SHM_DIR)): ShareInfo[] {
  const shares: ShareInfo[] = [];
  for (const file of files) {
    const parsed = parseShareFile(file);
    if (parsed !== null && parsed.gauge === gauge) shares.push(parsed.share);
  }
  return shares;
}

/**
 * The stat file of a process's main thread: the process's start time and
 * state, as /proc/<pid>/stat has them, which qemu-user fakes for its own
 * process (a start time a few ticks off the kernel's), not this one.
 */
const statFile = (pid: number): string => `/proc/${pid}/task/${pid}/stat`;

/** pid and start time of a live process, or null if it is gone or a zombie. */
export function processIdentity(pid: number): ProcessIdentity | null {
  let stat: string;
  try {
    stat = fs.readFileSync(statFile(pid), 'latin1');
  } catch {
    return null;
  }
  // Fields after the command name, which may itself hold spaces and ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const state = fields[0];
  if (state === 'Z' || state === 'X') return null; // dead, not yet waited for
  return { pid, startTime: fields[19] };
}

let self: ProcessIdentity | undefined;

export function selfIdentity(): ProcessIdentity {
  if (self === undefined) {
    // Read without processIdentity's catch: where there is no /proc, the
    // error (ENOENT, with its code) says why gauges cannot work here.
    fs.readFileSync(statFile(process.pid), 'latin1');
    self = processIdentity(process.pid)!;
  }
  return self;
}

/** Whether the process that made this share still runs. */
export function isOwnerAlive(share: ProcessIdentity): boolean {
  const now = processIdentity(share.pid);
  return now !== null && now.startTime === share.startTime;
}

/** Sets the exact permission bits of a semaphore this process created (sem_open applies the umask). */
export function chmodSemaphore(name: string, mode: number): void {
  fs.chmodSync(semaphorePath(name), mode);
}

/** The file that holds the semaphore `name` ('/x' -> '/dev/shm/sem.x'). */
export function semaphorePath(name: string): string {
  return `${SHM_DIR}/sem.${name.slice(1)}`;
}

/** The semaphore name a file in SHM_DIR holds ('sem.x' -> '/x'), or null if it holds none. */
export function semaphoreOfFile(file: string): string | null {
  return file.startsWith('sem.') && file.length > 4 ? '/' + file.slice(4) : null;
}

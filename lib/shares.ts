// How a gauge lives in /dev/shm: its semaphore names, and which process owns
// each share. One place for the naming scheme, shared by Gauge and the CLI.
//
// A gauge '/busy' is:
//   /busy~gauge                     generation: its value changes whenever a
//                                   share is added or removed
//   /busy~<pidns>.<pid>.<starttime>.<nonce>
//                                   one share per Gauge object, written only
//                                   by that object; the gauge's value is their sum.
//                                   pidns: the inode of the owner's PID namespace,
//                                   the only one where its pid means anything
//
// /dev/shm is world-writable: an entry with such a name may be anything, made
// by anyone. Whether it is a share is judged natively, on what is opened
// (binding.shareKind, src/share_sum.h), never by its name alone.
import * as fs from 'node:fs';
import { randomBytes } from 'node:crypto';

/** glibc keeps named semaphores here, as files named sem.NAME. */
export const SHM_DIR = '/dev/shm';
const GENERATION_SUFFIX = '~gauge';
const SHARE_PATTERN = /^~(\d+)\.(\d+)\.(\d+)\.([0-9a-f]{8})$/;
/** Bytes a gauge name must leave free for its share names. */
export const SHARE_SUFFIX_BYTES = '~'.length + 10 + '.'.length + 7 + '.'.length + 20 + '.'.length + 8;

export interface ProcessIdentity {
  /** Inode of the PID namespace the pid belongs to. */
  pidns: string;
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

/** Whether `name` is a gauge: something is where its generation semaphore goes (a gauge's, or one planted). */
export function isGauge(name: string): boolean {
  try {
    fs.lstatSync(semaphorePath(generationName(name)));
    return true;
  } catch {
    return false;
  }
}

/** A fresh share name for this process. */
export function newShareName(gauge: string, self: ProcessIdentity): string {
  return `${gauge}~${self.pidns}.${self.pid}.${self.startTime}.${randomBytes(4).toString('hex')}`;
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
  return { gauge, share: { name: '/' + file.slice(4), pidns: m[1], pid: Number(m[2]), startTime: m[3] } };
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

/**
 * pid and start time of a live process as /proc shows it: null if /proc
 * has no such process (gone, or hidden from us) or it is a zombie.
 */
function procIdentity(pid: number, pidns: string): ProcessIdentity | null | 'zombie' {
  let stat: string;
  try {
    stat = fs.readFileSync(statFile(pid), 'latin1');
  } catch {
    return null;
  }
  // Fields after the command name, which may itself hold spaces and ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const state = fields[0];
  if (state === 'Z' || state === 'X') return 'zombie'; // dead, not yet waited for
  return { pidns, pid, startTime: fields[19] };
}

let self: ProcessIdentity | undefined;

/**
 * This process's identity, read from /proc/<pid>/..., as other processes read
 * it (not /proc/self, which qemu-user fakes). Where there is no /proc, the
 * error (ENOENT, with its code) says why gauges cannot work here.
 */
export function selfIdentity(): ProcessIdentity {
  if (self === undefined) {
    const pidns = String(fs.statSync(`/proc/${process.pid}/ns/pid`).ino);
    const me = procIdentity(process.pid, pidns);
    if (me === null || me === 'zombie') {
      // /proc belongs to another PID namespace than ours (unshare --pid without --mount-proc).
      throw Object.assign(new Error(`named-semaphore: /proc/${process.pid} is not this process: mount a /proc of this PID namespace`), {
        code: 'ENOENT',
      });
    }
    self = me;
  }
  return self;
}

/** PROC_PID_INIT_INO: the host's PID namespace, whose /proc shows every process of every namespace. */
const INIT_PIDNS = '4026531836';

/**
 * Processes of other PID namespaces that /proc shows us (namespaces nested
 * in ours): the namespaces seen, and "<pidns>.<pid there>" -> start time.
 */
function nestedProcesses(own: string): { namespaces: Set<string>; starts: Map<string, string> } {
  const namespaces = new Set<string>();
  const starts = new Map<string, string>();
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const ns = String(fs.statSync(`/proc/${entry}/ns/pid`).ino);
      if (ns === own) continue;
      // NSpid: its pid in each namespace from ours inward; the last is its own namespace's.
      const nspid = /^NSpid:\s+(.*)$/m.exec(fs.readFileSync(`/proc/${entry}/status`, 'latin1'))![1].trim().split(/\s+/);
      const me = procIdentity(Number(entry), ns);
      namespaces.add(ns);
      if (me !== null && me !== 'zombie') starts.set(`${ns}.${nspid[nspid.length - 1]}`, me.startTime);
    } catch {
      // gone meanwhile, or not ours to look at
    }
  }
  return { namespaces, starts };
}

/**
 * A judge of whether the process that made a share may still run; made once
 * per reap (it may read all of /proc once). Judges only what it can prove:
 *  - in our own PID namespace, by pid and start time; a process that /proc
 *    hides from us is not a dead one: kill(pid, 0) answering EPERM means it exists;
 *  - in a namespace nested in ours whose processes /proc shows us, the same,
 *    through each process's NSpid;
 *  - a namespace with no process left is dead only where we see every
 *    process: root in the host's PID namespace. Anywhere else another
 *    namespace (a sibling container) may simply be invisible: alive.
 */
export function ownerJudge(): (share: ProcessIdentity) => boolean {
  const self = selfIdentity();
  let nested: ReturnType<typeof nestedProcesses> | undefined;
  return (share) => {
    if (share.pidns !== self.pidns) {
      nested ??= nestedProcesses(self.pidns);
      if (nested.namespaces.has(share.pidns)) return nested.starts.get(`${share.pidns}.${share.pid}`) === share.startTime;
      return !(self.pidns === INIT_PIDNS && process.geteuid!() === 0);
    }
    const now = procIdentity(share.pid, share.pidns);
    if (now === 'zombie') return false;
    if (now !== null) return now.startTime === share.startTime;
    try {
      process.kill(share.pid, 0);
      return true; // exists, yet /proc will not show it: cannot prove it dead
    } catch (error) {
      return (error as { code?: string }).code === 'EPERM';
    }
  };
}

/** Whether the process that made this share may still run (see ownerJudge). */
export function isOwnerAlive(share: ProcessIdentity): boolean {
  return ownerJudge()(share);
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

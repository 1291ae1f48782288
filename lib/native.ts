// Loads the addon (a prebuild, or a build from source) and declares the raw
// binding's exact shape: nothing typed `any` crosses this line.
import * as path from 'node:path';

/**
 * An open semaphore or share sum. Its id is what the binding's functions take;
 * the object itself only ties the native handle's life to JavaScript's: when
 * it is collected, the handle closes. Ids are checked natively, so a closed
 * or made-up one gets EBADF.
 */
export interface NativeHandle {
  readonly id: number;
  /**
   * A semaphore's value word (4 bytes; see nsem::ValueWord in
   * src/semaphore.h): reading the value without a call, and for a gauge's
   * own share, writing it (see lib/gauge.ts). Absent where the libc's layout
   * was not confirmed. Detached (length 0) once the handle is closed.
   */
  readonly word?: ArrayBuffer;
}

/** One TCP listening socket (see src/listen_queue.h). */
export interface NativeListener {
  address: string;
  family: 'IPv4' | 'IPv6';
  port: number;
  /** Connections waiting to be accepted. */
  queued: number;
  /** The accept queue's limit. */
  backlog: number;
}

/**
 * The raw binding. Functions return errno-style numbers, except that the hot
 * paths post, tryWait and sum return undefined for success: creating a 0 would
 * cost them a tenth of their time. The hot paths also take no arguments: they
 * act on the id in the call slots (use the functions below, not these).
 */
export interface Binding {
  /**
   * A handle, or an errno. An owned share (a gauge's own) is drained and
   * unlinked when it closes, however that happens.
   */
  open(name: string, create: boolean, exclusive: boolean, mode: number, value: number, ownedShare?: boolean): NativeHandle | number;
  /**
   * Two numbers shared with the addon (see CallSlots in src/addon.cc): the
   * hot paths read their handle's id from slot 0, and sum leaves its total
   * in slot 1.
   */
  readonly callSlots: ArrayBuffer;
  /** Posts 1 to the semaphore in the call slots: undefined or an errno. */
  post(): number | undefined;
  /** Takes 1 from the semaphore in the call slots: undefined when taken, EAGAIN when the value is 0, or an errno. */
  tryWait(): number | undefined;
  /** Posts count (1 to SEM_VALUE_MAX), at once where the layout is known: undefined or an errno. */
  postCount(id: number, count: number): number | undefined;
  /** Takes count (1 to SEM_VALUE_MAX) if the value is at least that: undefined, EAGAIN (nothing taken), or an errno. */
  tryWaitCount(id: number, count: number): number | undefined;
  /** Takes the whole value: how much was taken, or -errno. */
  drain(id: number): number;
  /** The value (>= 0), or -errno. */
  value(id: number): number;
  /** Blocks this thread. 0, ETIMEDOUT, or an errno; timeout -1 = forever. */
  waitSync(id: number, timeoutMs: number): number;
  /** Queues an async wait; settle(waitId, err) follows. 0 or an errno. */
  wait(id: number, waitId: number, timeoutMs: number): number;
  /** Forgets a queued wait, posting back a token taken for it. Whether it was outstanding. */
  cancel(id: number, waitId: number): boolean;
  /** Closes a semaphore or a sum; idempotent. Outstanding waits are forgotten, their tokens posted back. */
  close(id: number): number;

  /** A sum over shares whose generation semaphore is `generationName` (see src/share_sum.h), or an errno. */
  openSum(generationName: string): NativeHandle | number;
  /** The generation semaphore's value, or -errno. */
  sumGeneration(id: number): number;
  /** Maps these shares, listed after `generation` was read: what JavaScript needs to sum them, or an errno. */
  sumReset(id: number, generation: number, names: string[]): SumSlots | number;
  /** For the sum in the call slots: undefined (the total is in slot 1), or an errno; ESTALE when the shares must be listed again. */
  sum(): number | undefined;
  /**
   * Posts 1 to the semaphore in slot 0, then sums the sum in slot 1: undefined
   * (the total is in slot 1), an errno (nothing posted), or -errno (posted,
   * but the sum failed; -ESTALE when the shares must be listed again).
   */
  postAndSum(): number | undefined;

  /** 0 or an errno. */
  unlink(name: string): number;
  /**
   * Creates semaphore `name` whole (see nsem::CreateWhole in src/share_sum.h):
   * exact mode, group `gid` (-1: ours), never seen half made. 0 or an errno (EEXIST).
   */
  createWhole(name: string, mode: number, value: number, gid: number): number;
  /** What the entry of `name` is, judged against the gauge's generation semaphore: an index into SHARE_KINDS. */
  shareKind(generationName: string, name: string): number;
  /** Drains and removes the share `name`: what it held, or -1 if it is no share of the gauge (or gone). */
  reapShare(generationName: string, name: string): number;
  /** TCP listeners on `port` (0: all) with their accept queues (sock_diag), or an errno. */
  listenQueue(port: number): NativeListener[] | number;
  /** Sets the function that settles async waits, once per thread: settle(waitId, err) -> whether it took the wait (else its token is posted back). */
  setSettle(settle: (id: number, err: number) => boolean): number;
  /** How wait() waits in this thread (see src/futex_ring.h); decided on first use. */
  waitMechanism(): WaitMechanism;
  readonly SEM_VALUE_MAX: number;
  /** glibc has sem_clockwait: timed waits measure on CLOCK_MONOTONIC. */
  readonly hasClockWait: boolean;
  /** Whether a waiter thread sleeps on many semaphores at once (futex_waitv), or on one. */
  readonly waitersShareThreads: boolean;
  /** Bytes from one slot of SumSlots.words to the next (the page size). */
  readonly sumSlotBytes: number;
}

/**
 * A sum's shares as sumReset mapped them (see nsem::SumWords in
 * src/share_sum.h): `count` shares, and where glibc's layout was confirmed,
 * `words`: slot 0 holds the generation semaphore, slots 1 to count the
 * shares, each slot's first 4 bytes its value word. The same buffer as the
 * last reset's unless the slots moved (then the old one is detached).
 */
export interface SumSlots {
  readonly count: number;
  readonly words?: ArrayBuffer;
}

/**
 * What an entry named like a share is, by the number shareKind() returns
 * (nsem::ShareKind in src/share_sum.h): only 'share' (0) is counted or reaped.
 */
export const SHARE_KINDS = ['share', 'gone', 'symlink', 'directory', 'fifo', 'special', 'short', 'foreign', 'unreadable'] as const;
export type ShareKindName = (typeof SHARE_KINDS)[number];

/** 'io_uring': the event loop itself waits (Linux 6.7+); 'thread': a thread per semaphore with waits. */
export type WaitMechanism = 'io_uring' | 'thread';

const root = path.join(__dirname, '..');

function load(): Binding {
  if (process.platform !== 'linux') {
    throw new Error(
      `named-semaphore supports Linux (glibc) only; this is ${process.platform}-${process.arch}. ` +
        'POSIX named semaphores elsewhere lack what it promises (macOS has no sem_getvalue and no timed wait).',
    );
  }
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const nodeGypBuild = require('node-gyp-build') as (dir: string) => unknown;
    return nodeGypBuild(root) as Binding;
  } catch (error) {
    // One clear message, not node-gyp-build's stack (Node prints the throwing
    // line too, hence the message is built elsewhere).
    throw new Error(loadFailureMessage(String((error as Error)?.message ?? error).split('\n')[0]));
  }
}

/**
 * What a failure to load the addon means, and what to do about it.
 * @internal (exported for tests)
 */
export function loadFailureMessage(detail: string): string {
  // The addon keeps its per-thread state in glibc's static TLS (see
  // first_env_here in src/addon.cc): a build from source would fail alike.
  if (detail.includes('static TLS')) {
    return (
      `named-semaphore: the addon could not be loaded: glibc has no static TLS space left for it (${detail}); ` +
      'on glibc 2.32 or later, start Node with GLIBC_TUNABLES=glibc.rtld.optional_static_tls=4096 to reserve more.'
    );
  }
  return noBinaryMessage(detail);
}

function noBinaryMessage(detail: string): string {
  const libc = isMusl() ? 'musl' : 'glibc';
  return (
    `named-semaphore: no prebuilt binary fits linux-${process.arch} (${libc}), and none was built from source (${detail}).\n` +
    'Build it from source (needs python3, make and a C++ compiler):\n' +
    '  npm install-scripts approve named-semaphore && npm rebuild named-semaphore\n' +
    'or, in its folder:\n' +
    `  cd ${root} && npx --yes node-gyp rebuild`
  );
}

function isMusl(): boolean {
  const report = process.report.getReport() as { header?: { glibcVersionRuntime?: string } };
  return !report.header?.glibcVersionRuntime;
}

// A copy: the addon's exports object, its 23 properties set through
// N-API, is in V8's dictionary mode, where each `binding.post` is a slow
// lookup (about 6 ns, a fifth of a hot call); an object literal's are fast.
export const binding: Binding = { ...load() };

// The hot paths, called as the addon expects: the id goes into the call
// slots rather than being passed, which would cost as much as the work.
const callSlots = new Float64Array(binding.callSlots);
// Local, as a use of the exported `binding` compiles to a load from `exports`.
const { post, tryWait, sum, postAndSum } = binding;

/** Posts 1 to semaphore `id`: undefined or an errno. */
export function postHot(id: number): number | undefined {
  callSlots[0] = id;
  return post();
}

/** Takes 1 from semaphore `id`: undefined when taken, EAGAIN when the value is 0, or an errno. */
export function tryWaitHot(id: number): number | undefined {
  callSlots[0] = id;
  return tryWait();
}

/** The total of sum `id`, or -errno; -ESTALE when the shares must be listed again. */
export function sumHot(id: number): number {
  callSlots[0] = id;
  const err = sum();
  return err === undefined ? callSlots[1] : -err;
}

/**
 * Posts 1 to semaphore `id`, then reads sum `sumId`: the total; -errno if
 * nothing was posted; undefined if posted, but the total must be read again
 * (the shares changed, or the sum failed: reading again says how).
 */
export function postAndSumHot(id: number, sumId: number): number | undefined {
  callSlots[0] = id;
  callSlots[1] = sumId;
  const err = postAndSum();
  if (err === undefined) return callSlots[1];
  return err > 0 ? -err : undefined;
}

// Gauge: a count that many processes raise and lower, exact after crashes.
//
// Each Gauge object owns a share: a named semaphore that only it writes. The
// gauge's value is the sum of the shares, so removing the share of a process
// that died is exact. See lib/shares.ts for the names in /dev/shm.
import { binding, postAndSumHot, postHot, tryWaitHot, sumHot, type NativeHandle } from './native';
import * as fs from 'node:fs';
import { SemaphoreError, errno, gaugeForeign, gaugeUnderflow, invalidArgType, objectClosed, warnOnce } from './errors';
import * as shares from './shares';
import * as validate from './validate';

/** A Gauge, or a gauge's name (opened, or read, by whoever takes it). */
export type GaugeOrName = Gauge | string;

export interface GaugeOptions {
  /** Permission bits of the gauge's semaphores, as a number or octal string (default 0o600). */
  mode?: number | string;
}

// Gauges of this thread still open: closed when it exits (end of script,
// process.exit(), an uncaught exception). A terminated worker thread's shares
// are given back by the addon's teardown.
const openGauges = new Set<Gauge>();
let exitHookInstalled = false;

function closeAllOnExit(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', closeOpenGauges);
}

/**
 * Closes every Gauge of this thread still open: at exit, and before
 * closeOnSignals lets a signal end the process (which runs no 'exit' event).
 * @internal
 */
export function closeOpenGauges(): void {
  for (const gauge of openGauges) gauge.close();
}

function gaugeName(name: unknown): string {
  return validate.semaphoreName(name, 'name', shares.SHARE_SUFFIX_BYTES);
}

function check(err: number | undefined, syscall: string, name: string): void {
  if (err !== undefined && err !== 0) throw new SemaphoreError(err, syscall, name);
}

const { SEM_VALUE_MAX } = validate;
const EEXIST = 17;
const ENOENT = 2;
const EOVERFLOW = 75;
// What opening a file that is no semaphore fails with (symlink, directory, FIFO, short file).
const NOT_A_SEMAPHORE = new Set([40 /* ELOOP */, 21 /* EISDIR */, 19 /* ENODEV */, 22 /* EINVAL */, 6 /* ENXIO */]);

/** Why the file of semaphore `name` is no semaphore a gauge made, in words. */
function describeFile(name: string): string {
  const file = shares.semaphorePath(name);
  try {
    const st = fs.lstatSync(file);
    const mode = (st.mode & 0o7777).toString(8).padStart(4, '0');
    if (st.isSymbolicLink()) return `${file} is a symlink`;
    if (st.isDirectory()) return `${file} is a directory`;
    if (!st.isFile()) return `${file} is not a regular file`;
    if (st.size < 32) return `${file} is too short to hold a semaphore`;
    return `${file} belongs to uid ${st.uid} with mode ${mode}`;
  } catch (error) {
    return `${file}: ${(error as Error).message}`;
  }
}

/** Opens the existing semaphore `name`: a handle, ENOENT, or a throw. */
function openExisting(gauge: string, name: string, ownedShare = false): NativeHandle | typeof ENOENT {
  const handle = binding.open(name, false, false, 0, 0, ownedShare);
  if (typeof handle !== 'number' || handle === ENOENT) return handle;
  if (NOT_A_SEMAPHORE.has(handle)) throw gaugeForeign(gauge, describeFile(name));
  throw new SemaphoreError(handle, 'sem_open', name);
}

/**
 * Whether a process asking for `mode` may join the gauge whose generation
 * file this is: its own, or one whose owner shares it with others (group or
 * anyone may write) under this very mode. Anything else was planted, or is
 * another user's private gauge: joining would count into it, or be refused
 * every update.
 */
function joinable(st: fs.Stats, mode: number): boolean {
  return st.uid === process.geteuid!() || ((st.mode & 0o7777) === mode && (mode & 0o022) !== 0);
}

/** Opens the gauge's generation semaphore, creating it whole with exact `mode` if needed. */
function openGeneration(gauge: string, mode: number): NativeHandle {
  const name = shares.generationName(gauge);
  for (;;) {
    const created = binding.createWhole(name, mode, 0, -1);
    if (created !== 0 && created !== EEXIST) throw new SemaphoreError(created, 'open', name);
    let st: fs.Stats;
    try {
      st = fs.lstatSync(shares.semaphorePath(name));
    } catch (error) {
      if ((error as { code?: string }).code === 'ENOENT') continue; // unlinked meanwhile: make it again
      throw error;
    }
    if (!st.isFile() || st.size < 32) throw gaugeForeign(gauge, describeFile(name));
    if (!joinable(st, mode)) {
      throw gaugeForeign(gauge, `${describeFile(name)}, and this process (uid ${process.geteuid!()}) asks for mode ${mode.toString(8).padStart(4, '0')}`);
    }
    const handle = openExisting(gauge, name);
    if (handle !== ENOENT) return handle;
  }
}

/**
 * Creates and opens a new share of this process, whole and with exact
 * `mode`; in the generation's group where the mode lets the group write, so
 * a member whose primary group differs still counts.
 */
function createShare(gauge: string, mode: number): { handle: NativeHandle; name: string } {
  let gid = -1;
  if ((mode & 0o020) !== 0) {
    try {
      gid = fs.statSync(shares.semaphorePath(shares.generationName(gauge))).gid;
    } catch {
      // gone meanwhile: our own group
    }
  }
  for (;;) {
    const name = shares.newShareName(gauge, shares.selfIdentity());
    const err = binding.createWhole(name, mode, 0, gid);
    if (err === EEXIST) continue; // the same random nonce: another
    if (err !== 0) throw new SemaphoreError(err, 'open', name);
    const handle = openExisting(gauge, name, true);
    if (handle !== ENOENT) return { handle, name }; // else unlinked meanwhile (Gauge.unlink): again
  }
}

// Int32 elements from one slot of a sum's words to the next (see SumSlots).
const SLOT = binding.sumSlotBytes / 4;

/**
 * The total of a gauge's shares. Where the addon maps them for JavaScript
 * (see SumSlots), it is summed here with plain loads: each share's owner
 * stores to its word, and no call is needed until the share set changes.
 * Elsewhere, one call to the native sum.
 */
class ShareTotal {
  readonly #gauge: string;
  readonly #sumId: number;
  #buffer: ArrayBuffer | undefined;
  #words: Int32Array | null = null; // null: the native sum
  #end = 0; // index past the last share's word
  #seen = -1; // the generation the shares were listed at

  constructor(gauge: string, sumId: number) {
    this.#gauge = gauge;
    this.#sumId = sumId;
  }

  /**
   * The total, with no call into the addon; -1 if it must be read the slow
   * way: the shares changed, or there are no words to read.
   */
  fast(): number {
    const words = this.#words;
    // A detached buffer (the sum closed) reads undefined: never the generation.
    if (words === null || words[0] !== this.#seen) return -1;
    let total = 0;
    for (let i = SLOT, end = this.#end; i < end; i += SLOT) total += words[i];
    return total;
  }

  /** The total; `listed`, if given, sees the share names whenever they are listed again. */
  read(listed?: (names: string[]) => void): number {
    for (;;) {
      const total = this.#words !== null ? this.fast() : sumHot(this.#sumId);
      if (total >= 0) return total;
      if (this.#words === null && total !== -errno.ESTALE) throw new SemaphoreError(-total, 'sem_getvalue', this.#gauge);
      const names = this.#relist();
      listed?.(names);
    }
  }

  /** Lists the shares again and maps them; returns their names. */
  #relist(): string[] {
    const generation = binding.sumGeneration(this.#sumId); // read before listing, so no change is missed
    if (generation < 0) throw new SemaphoreError(-generation, 'sem_getvalue', this.#gauge);
    const names = shares.listShares(this.#gauge).map((s) => s.name);
    const slots = binding.sumReset(this.#sumId, generation, names);
    if (typeof slots === 'number') throw new SemaphoreError(slots, 'sem_open', this.#gauge);
    if (slots.words === undefined) {
      this.#words = null;
    } else {
      if (slots.words !== this.#buffer) {
        this.#buffer = slots.words;
        this.#words = new Int32Array(slots.words);
      }
      this.#end = SLOT * (slots.count + 1);
      this.#seen = generation;
    }
    return names;
  }
}

/** A view of a share's value word, for its owner to store to; null where there is none. */
function ownWord(share: NativeHandle): Int32Array | null {
  return share.word === undefined ? null : new Int32Array(share.word);
}

function openSum(gauge: string): NativeHandle {
  const name = shares.generationName(gauge);
  const sum = binding.openSum(name);
  if (typeof sum === 'number' && NOT_A_SEMAPHORE.has(sum)) throw gaugeForeign(gauge, describeFile(name));
  if (typeof sum === 'number') throw new SemaphoreError(sum, 'sem_open', gauge);
  return sum;
}

/** Marks a change of the share set, so readers list the shares again. */
function bump(generation: NativeHandle): void {
  // A generation at SEM_VALUE_MAX (2^31 changes, or planted so by someone
  // who may write it) starts again from 0: what readers notice is a change.
  if (postHot(generation.id) === EOVERFLOW) {
    binding.drain(generation.id);
    postHot(generation.id);
  }
}

/**
 * Removes the shares of processes that no longer exist (checked by PID and
 * start time, in our PID namespace only; see shares.isOwnerAlive). Entries
 * that are no shares of this gauge are left alone. Returns how much left the total.
 */
function reapShares(gauge: string, generation: NativeHandle): number {
  const generationName = shares.generationName(gauge);
  let removed = 0;
  const isOwnerAlive = shares.ownerJudge();
  for (const share of shares.listShares(gauge)) {
    if (isOwnerAlive(share)) continue;
    const taken = binding.reapShare(generationName, share.name);
    if (taken < 0) continue; // no share, or another reaper was first
    removed += taken;
    bump(generation);
  }
  return removed;
}

/**
 * Removes the shares of processes that no longer exist from the gauge `name`,
 * without taking a share. Returns how much left the total; ENOENT if there is
 * no such gauge.
 */
export function reapGauge(name: string): number {
  const gauge = gaugeName(name);
  const generation = openExisting(gauge, shares.generationName(gauge));
  if (generation === ENOENT) throw new SemaphoreError(ENOENT, 'sem_open', gauge);
  try {
    return reapShares(gauge, generation);
  } finally {
    binding.close(generation.id);
  }
}

/** A count shared by every process on the host, exact after crashes. */
export class Gauge {
  /** The gauge's name, with its leading '/'. */
  readonly name: string;
  // Native handles (each closes when collected) and the ids the binding takes.
  #share: NativeHandle | null; // null once closed
  #shareId: number;
  #shareName: string;
  readonly #mode: number;
  readonly #generation: NativeHandle;
  readonly #sum: NativeHandle;
  readonly #sumId: number;
  readonly #total: ShareTotal;
  // The share's value word, where glibc's layout was confirmed: only this
  // object writes the share, so it publishes #local with a plain store, no
  // call (see "The gauge at memory speed" in docs/how-it-works.md). null:
  // closed, or the native calls.
  #own: Int32Array | null = null;
  #local = 0;

  constructor(name: string, options?: GaugeOptions) {
    this.name = gaugeName(name);
    const mode = validate.mode(validate.options<GaugeOptions>(options).mode);
    this.#mode = mode;
    // Another process may unlink the gauge (Gauge.unlink) at any moment of
    // this: then the sum finds no generation, and all starts again.
    for (;;) {
      const generation = openGeneration(this.name, mode);
      reapShares(this.name, generation);
      const { handle: share, name: shareName } = createShare(this.name, mode);
      bump(generation);
      const sum = binding.openSum(shares.generationName(this.name));
      if (sum === ENOENT) {
        binding.close(share.id); // drains and unlinks it
        binding.close(generation.id);
        continue;
      }
      if (typeof sum === 'number') {
        binding.close(share.id);
        binding.close(generation.id);
        openSum(this.name); // throws the error it meets
        continue;
      }
      this.#generation = generation;
      this.#shareName = shareName;
      this.#share = share;
      this.#shareId = share.id;
      this.#sum = sum;
      this.#sumId = this.#sum.id;
      this.#own = ownWord(share);
      this.#total = new ShareTotal(this.name, this.#sumId);
      break;
    }
    openGauges.add(this);
    closeAllOnExit();
  }

  /** The total over every process on the host, without taking a share. ENOENT if there is no such gauge. */
  static read(name: string): number {
    const gauge = gaugeName(name);
    const sum = openSum(gauge);
    try {
      return new ShareTotal(gauge, sum.id).read();
    } finally {
      binding.close(sum.id);
    }
  }

  /** Removes the gauge and all its shares. False if it did not exist. */
  static unlink(name: string): boolean {
    const gauge = gaugeName(name);
    let existed = false;
    const generation = shares.generationName(gauge);
    for (const share of shares.listShares(gauge)) {
      // Only shares: an entry someone else planted under such a name stays.
      if (binding.shareKind(generation, share.name) === 0) existed = binding.unlink(share.name) === 0 || existed;
    }
    const err = binding.unlink(shares.generationName(gauge));
    if (err !== 0 && err !== 2 /* ENOENT */) throw new SemaphoreError(err, 'sem_unlink', gauge);
    return err === 0 || existed;
  }

  /** What this object has released and not acquired. */
  get local(): number {
    return this.#local;
  }

  get closed(): boolean {
    return this.#share === null;
  }

  /** The total over every process on the host. */
  get value(): number {
    const total = this.#share !== null ? this.#total.fast() : -1;
    if (total >= 0) return total;
    this.#open();
    return this.#total.read(this.#checkOwn);
  }

  /** Adds `count` (default 1) for this object. Never blocks. */
  release(count?: number): void {
    const own = this.#own;
    const local = this.#local;
    // The share holds what we last stored, unless another process wrote it.
    if (count === undefined && own !== null && own[0] === local && local < SEM_VALUE_MAX) {
      own[0] = this.#local = local + 1;
      return;
    }
    this.#releaseSlowly(count === undefined ? 1 : validate.count(count));
  }

  #releaseSlowly(n: number): void {
    const id = this.#open();
    if (this.#own === null) {
      check(n === 1 ? postHot(id) : binding.postCount(id, n), 'sem_post', this.name);
      this.#local += n;
      return;
    }
    if (this.#own[0] !== this.#local) this.#shareLost();
    if (this.#local + n > SEM_VALUE_MAX) throw new SemaphoreError(EOVERFLOW, 'sem_post', this.name);
    this.#own[0] = this.#local += n;
  }

  /**
   * Adds 1 for this object and returns the total over every process, this 1
   * included: release() then value (what busyMiddleware does for each
   * request): no native call unless the shares changed (then they are
   * listed again). If it throws, nothing changed.
   */
  releaseAndRead(): number {
    if (this.#own !== null) {
      this.release();
      const total = this.#total.fast();
      if (total >= 0) return total;
    } else {
      const total = postAndSumHot(this.#open(), this.#sumId);
      if (total !== undefined && total < 0) throw new SemaphoreError(-total, 'sem_post', this.name);
      this.#local++;
      if (total !== undefined) return total;
    }
    try {
      return this.#total.read(this.#checkOwn); // the shares changed: list them again
    } catch (error) {
      this.acquire();
      throw error;
    }
  }

  /** Takes back `count` (default 1). Never blocks; ERR_GAUGE_UNDERFLOW if this object holds less. */
  acquire(count?: number): void {
    const own = this.#own;
    const local = this.#local;
    if (count === undefined && own !== null && own[0] === local && local > 0) {
      own[0] = this.#local = local - 1;
      return;
    }
    this.#acquireSlowly(count === undefined ? 1 : validate.count(count));
  }

  #acquireSlowly(n: number): void {
    const id = this.#open();
    if (n > this.#local) throw gaugeUnderflow(this.name, n, this.#local);
    if (this.#own !== null) {
      if (this.#own[0] !== this.#local) this.#shareLost();
      this.#own[0] = this.#local -= n;
      return;
    }
    // Only this object writes its share, so the tokens are there, unless
    // someone took them: a reap that judged us dead (another PID namespace of
    // an older version, a mistaken admin), or a hand that drained the file.
    const err = n === 1 ? tryWaitHot(id) : binding.tryWaitCount(id, n);
    if (err === errno.EAGAIN) {
      this.#local -= n;
      this.#shareLost();
      return;
    }
    check(err, 'sem_trywait', this.name);
    this.#local -= n;
  }

  /** After a listing: our share missing from it was removed under us (a reap, an rm). */
  readonly #checkOwn = (names: string[]): void => {
    if (this.#share !== null && !names.includes(this.#shareName)) this.#shareLost();
  };

  /**
   * Our share was emptied, written or removed by another process: the total
   * lacks what we hold (or counts what we do not). Never
   * negative and never a throw into the caller (a request must be served):
   * warn once, and heal by moving what we still hold into a new share.
   */
  #shareLost(): void {
    warnOnce(
      'NAMED_SEMAPHORE_SHARE_LOST',
      `the share ${this.#shareName} of gauge '${this.name}' was emptied or removed by another process; ` +
        'its total was too low until now, and this process counts into a new share from here on',
    );
    try {
      const { handle, name } = createShare(this.name, this.#mode);
      if (this.#local > 0) check(binding.postCount(handle.id, this.#local), 'sem_post', this.name);
      binding.close(this.#shareId); // the old one: drained (empty) and its name removed
      this.#share = handle;
      this.#shareId = handle.id;
      this.#own = ownWord(handle);
      this.#shareName = name;
      bump(this.#generation);
    } catch {
      // No new share now: this object's count stays out of the total, never below it.
    }
  }

  /** Releases one, runs fn, and acquires it back however fn ends. Returns fn's result. */
  async track<T>(fn: () => T | PromiseLike<T>): Promise<T> {
    if (typeof fn !== 'function') throw invalidArgType('fn', 'of type function', fn);
    this.release();
    try {
      return await fn();
    } finally {
      if (!this.closed) this.acquire();
    }
  }

  /** Removes the shares of processes that no longer exist; returns how much left the total. */
  reap(): number {
    this.#open();
    return reapShares(this.name, this.#generation);
  }

  /** Gives this object's share back (the value drops by `local`). Idempotent. */
  close(): void {
    if (this.#share === null) return;
    this.#share = null;
    this.#own = null;
    binding.close(this.#shareId); // drains and unlinks the share (see src/addon.cc)
    this.#local = 0;
    bump(this.#generation);
    binding.close(this.#generation.id);
    binding.close(this.#sumId);
    openGauges.delete(this);
  }

  [Symbol.dispose](): void {
    this.close();
  }

  /** The share's id; throws once closed. */
  #open(): number {
    if (this.#share === null) throw objectClosed('gauge', this.name);
    return this.#shareId;
  }
}

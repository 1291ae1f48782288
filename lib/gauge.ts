// Gauge: a count that many processes raise and lower, exact after crashes.
//
// Each Gauge object owns a share: a named semaphore that only it writes. The
// gauge's value is the sum of the shares, so removing the share of a process
// that died is exact. See lib/shares.ts for the names in /dev/shm.
import { binding, postAndSumHot, postHot, tryWaitHot, sumHot, type NativeHandle } from './native';
import { SemaphoreError, errno, gaugeUnderflow, invalidArgType, objectClosed } from './errors';
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

function openOrThrow(name: string, create: boolean, exclusive: boolean, mode: number, ownedShare = false): NativeHandle | number {
  const handle = binding.open(name, create, exclusive, mode, 0, ownedShare);
  if (typeof handle === 'number' && !(exclusive && handle === 17 /* EEXIST */)) {
    throw new SemaphoreError(handle, 'sem_open', name);
  }
  return handle;
}

/** Opens the gauge's generation semaphore, creating it with exact `mode` if needed. */
function openGeneration(gauge: string, mode: number): NativeHandle {
  const name = shares.generationName(gauge);
  const created = openOrThrow(name, true, true, mode);
  if (typeof created !== 'number') {
    shares.chmodSemaphore(name, mode);
    return created;
  }
  return openOrThrow(name, false, false, 0) as NativeHandle;
}

/** Lists the shares again and points the sum at them. */
function refresh(sumId: number, gauge: string): void {
  const generation = binding.sumGeneration(sumId); // read before listing, so no change is missed
  if (generation < 0) throw new SemaphoreError(-generation, 'sem_getvalue', gauge);
  const names = shares.listShares(gauge).map((s) => s.name);
  check(binding.sumReset(sumId, generation, names), 'sem_open', gauge);
}

function readSum(sumId: number, gauge: string): number {
  for (;;) {
    const total = sumHot(sumId);
    if (total >= 0) return total;
    if (total !== -errno.ESTALE) throw new SemaphoreError(-total, 'sem_getvalue', gauge);
    refresh(sumId, gauge);
  }
}

function openSum(gauge: string): NativeHandle {
  const sum = binding.openSum(shares.generationName(gauge));
  if (typeof sum === 'number') throw new SemaphoreError(sum, 'sem_open', gauge);
  return sum;
}

/** Marks a change of the share set, so readers list the shares again. */
function bump(generation: NativeHandle): void {
  // At SEM_VALUE_MAX (2^31 share changes) this fails with EOVERFLOW and
  // readers no longer notice new shares: far past any realistic lifetime.
  postHot(generation.id);
}

/**
 * Removes the shares of processes that no longer exist (checked by PID and
 * start time). Returns how much left the total.
 */
function reapShares(gauge: string, generation: NativeHandle): number {
  let removed = 0;
  for (const share of shares.listShares(gauge)) {
    if (shares.isOwnerAlive(share)) continue;
    const handle = binding.open(share.name, false, false, 0, 0);
    if (typeof handle === 'number') continue; // another reaper was first
    // Several reapers may drain one share at once: each token goes to one.
    removed += Math.max(0, binding.drain(handle.id));
    binding.unlink(share.name);
    binding.close(handle.id);
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
  const generation = binding.open(shares.generationName(gauge), false, false, 0, 0);
  if (typeof generation === 'number') throw new SemaphoreError(generation, 'sem_open', gauge);
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
  readonly #shareId: number;
  readonly #generation: NativeHandle;
  readonly #sum: NativeHandle;
  readonly #sumId: number;
  #local = 0;

  constructor(name: string, options?: GaugeOptions) {
    this.name = gaugeName(name);
    const mode = validate.mode(validate.options<GaugeOptions>(options).mode);
    this.#generation = openGeneration(this.name, mode);
    reapShares(this.name, this.#generation);
    let share: NativeHandle | number;
    let shareName: string;
    do {
      shareName = shares.newShareName(this.name, shares.selfIdentity());
      share = openOrThrow(shareName, true, true, mode, true);
    } while (typeof share === 'number');
    shares.chmodSemaphore(shareName, mode); // readers open every share read-write
    this.#share = share;
    this.#shareId = share.id;
    bump(this.#generation);
    this.#sum = openSum(this.name);
    this.#sumId = this.#sum.id;
    openGauges.add(this);
    closeAllOnExit();
  }

  /** The total over every process on the host, without taking a share. ENOENT if there is no such gauge. */
  static read(name: string): number {
    const gauge = gaugeName(name);
    const sum = openSum(gauge);
    try {
      return readSum(sum.id, gauge);
    } finally {
      binding.close(sum.id);
    }
  }

  /** Removes the gauge and all its shares. False if it did not exist. */
  static unlink(name: string): boolean {
    const gauge = gaugeName(name);
    let existed = false;
    for (const share of shares.listShares(gauge)) existed = binding.unlink(share.name) === 0 || existed;
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
    this.#open();
    return readSum(this.#sumId, this.name);
  }

  /** Adds `count` (default 1) for this object. Never blocks. */
  release(count?: number): void {
    const id = this.#open();
    if (count === undefined) {
      check(postHot(id), 'sem_post', this.name);
      this.#local++;
      return;
    }
    const n = validate.count(count);
    check(binding.postCount(id, n), 'sem_post', this.name);
    this.#local += n;
  }

  /**
   * Adds 1 for this object and returns the total over every process, this 1
   * included: release() then value, in one native call (what busyMiddleware
   * does for each request). If it throws, nothing changed.
   */
  releaseAndRead(): number {
    const total = postAndSumHot(this.#open(), this.#sumId);
    if (total !== undefined && total < 0) throw new SemaphoreError(-total, 'sem_post', this.name);
    this.#local++;
    if (total !== undefined) return total;
    try {
      return readSum(this.#sumId, this.name); // the shares changed: list them again
    } catch (error) {
      this.acquire();
      throw error;
    }
  }

  /** Takes back `count` (default 1). Never blocks; ERR_GAUGE_UNDERFLOW if this object holds less. */
  acquire(count?: number): void {
    const n = count === undefined ? 1 : validate.count(count);
    const id = this.#open();
    if (n > this.#local) throw gaugeUnderflow(this.name, n, this.#local);
    // Only this object writes its share, so the tokens are there.
    check(n === 1 ? tryWaitHot(id) : binding.tryWaitCount(id, n), 'sem_trywait', this.name);
    this.#local -= n;
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

// NamedSemaphore: validation, names, errors and lifetimes over the binding.
import { binding, postHot, tryWaitHot, type NativeHandle, type WaitMechanism } from './native';
import { SemaphoreError, errno, gaugeShare, invalidArgValue, objectClosed } from './errors';
import * as shares from './shares';
import * as validate from './validate';

/** A semaphore name that is not a gauge's share: one writer per share (see lib/gauge.ts). */
function ownName(name: unknown): string {
  const checked = validate.semaphoreName(name);
  const share = shares.parseShareFile('sem.' + checked.slice(1));
  if (share !== null) throw gaugeShare(checked, share.gauge);
  return checked;
}

export interface SemaphoreOptions {
  /** Create the semaphore if it does not exist (default true). */
  create?: boolean;
  /** With create: fail with EEXIST if it exists (default false). */
  exclusive?: boolean;
  /** Permission bits when created, as a number or octal string (default 0o600). */
  mode?: number | string;
  /** The value when created (default 0). */
  initialValue?: number;
}

export interface WaitOptions {
  /** Milliseconds; 0 tries once; Infinity or absent waits without limit. */
  timeout?: number;
  /** Aborting rejects the wait with `signal.reason`. */
  signal?: AbortSignal;
}

export interface SyncWaitOptions {
  timeout?: number;
}

interface PendingWait {
  sem: NamedSemaphore;
  resolve(acquired: boolean): void;
  reject(error: unknown): void;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

// Async waits of this thread, by id; holding the semaphore keeps it (and its
// native handle) alive while a wait is pending.
const pendingWaits = new Map<number, PendingWait>();
let nextWaitId = 1;

/** Takes a wait out of the table; undefined if it has ended already. */
function forget(id: number): PendingWait | undefined {
  const wait = pendingWaits.get(id);
  if (wait !== undefined) pendingWaits.delete(id);
  return wait;
}

/**
 * Stops listening for an ended wait's abort. Last, once the wait is settled:
 * the signal is the caller's object, and its removeEventListener may throw.
 */
function unlisten(wait: PendingWait): void {
  wait.signal?.removeEventListener('abort', wait.onAbort!);
}

/**
 * Called by the addon as each async wait ends. Returns whether it took the
 * wait: false for one that has already ended (aborted, or its handle closed,
 * perhaps by an earlier settle() of the same batch), whose token the addon
 * then posts back.
 */
function settle(id: number, err: number): boolean {
  const wait = forget(id);
  if (wait === undefined) return false;
  wait.sem[kForgetWait](id);
  if (err === 0) wait.resolve(true);
  else if (err === errno.ETIMEDOUT) wait.resolve(false);
  else wait.reject(new SemaphoreError(err, 'sem_wait', wait.sem.name));
  unlisten(wait);
  return true;
}

binding.setSettle(settle);

// process.exit() runs no native teardown: close the semaphores that still
// have waits, so tokens their waiter threads took are posted back.
let exitHookInstalled = false;
function closeWaitingOnExit(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const sem of new Set([...pendingWaits.values()].map((w) => w.sem))) sem.close();
  });
}

const kForgetWait = Symbol('forgetWait');

/** A POSIX named semaphore (sem_open and friends). */
export class NamedSemaphore {
  /** The name, with its leading '/'. */
  readonly name: string;
  // Closes the native handle when collected; null once closed.
  #handle: NativeHandle | null;
  readonly #id: number; // what the binding's functions take
  readonly #word: Int32Array | null; // the value, for Atomics.load (see NativeHandle)
  readonly #waits = new Set<number>();

  constructor(name: string, options?: SemaphoreOptions) {
    this.name = ownName(name);
    const o = validate.options<SemaphoreOptions>(options);
    const create = validate.boolean(o.create, 'options.create', true);
    const exclusive = validate.boolean(o.exclusive, 'options.exclusive', false);
    if (exclusive && !create) throw invalidArgValue('options.exclusive', exclusive, 'requires create: true');
    const mode = validate.mode(o.mode);
    const initialValue =
      o.initialValue === undefined ? 0 : validate.wholeNumber(o.initialValue, 'options.initialValue', 0, validate.SEM_VALUE_MAX);
    const handle = binding.open(this.name, create, exclusive, mode, initialValue);
    if (typeof handle === 'number') throw new SemaphoreError(handle, 'sem_open', this.name);
    this.#handle = handle;
    this.#id = handle.id;
    this.#word = handle.word === undefined ? null : new Int32Array(handle.word);
  }

  /** Removes a name; open handles keep working. False if it did not exist. */
  static unlink(name: string): boolean {
    const normalized = ownName(name);
    const err = binding.unlink(normalized);
    if (err === 0) return true;
    if (err === 2 /* ENOENT */) return false;
    throw new SemaphoreError(err, 'sem_unlink', normalized);
  }

  /**
   * How wait() waits in this thread: 'io_uring' where the kernel allows it
   * (Linux 6.7+, io_uring not blocked): the event loop itself waits, and a
   * post wakes it directly (each thread, main or worker, has its own ring);
   * otherwise 'thread': waiter threads sleeping on the semaphores' futex words.
   * NAMED_SEMAPHORE_WAITER=thread in the environment forces the thread.
   */
  static get waitMechanism(): WaitMechanism {
    return binding.waitMechanism();
  }

  get closed(): boolean {
    return this.#handle === null;
  }

  /** The current value (sem_getvalue). */
  get value(): number {
    const id = this.#open();
    if (this.#word !== null) return Atomics.load(this.#word, 0); // what sem_getvalue reads
    const value = binding.value(id);
    if (value < 0) throw new SemaphoreError(-value, 'sem_getvalue', this.name);
    return value;
  }

  /** Adds `count` (default 1). EOVERFLOW, with nothing changed, past SEM_VALUE_MAX. */
  post(count?: number): void {
    const id = this.#open();
    const err = count === undefined ? postHot(id) : binding.postCount(id, validate.count(count));
    if (err !== undefined) throw new SemaphoreError(err, 'sem_post', this.name);
  }

  /** Takes one if the value is above 0; false otherwise. Never blocks. */
  tryWait(): boolean {
    const err = tryWaitHot(this.#open());
    if (err === undefined) return true;
    if (err === errno.EAGAIN) return false;
    throw new SemaphoreError(err, 'sem_trywait', this.name);
  }

  /** Takes one, blocking this thread; false if the timeout passes first. */
  waitSync(options?: SyncWaitOptions): boolean {
    const id = this.#open();
    const timeout = validate.timeout(validate.options<SyncWaitOptions>(options).timeout);
    if (timeout === 0) return this.tryWait();
    const err = binding.waitSync(id, timeout);
    if (err === 0) return true;
    if (err === errno.ETIMEDOUT) return false;
    throw new SemaphoreError(err, 'sem_wait', this.name);
  }

  /**
   * Takes one without blocking the event loop or the libuv thread pool.
   * Resolves true when taken, false when the timeout passes; rejects with
   * `signal.reason` on abort, and with ERR_SEMAPHORE_CLOSED on close.
   */
  wait(options?: WaitOptions): Promise<boolean> {
    let id: number, timeout: number, signal: AbortSignal | undefined;
    try {
      id = this.#open();
      const o = validate.options<WaitOptions>(options);
      timeout = validate.timeout(o.timeout);
      signal = validate.abortSignal(o.signal);
    } catch (error) {
      return Promise.reject(error);
    }
    if (signal?.aborted) return Promise.reject(signal.reason);
    // Waits of this handle are served in order: only try to jump the queue
    // when there is none.
    if (this.#waits.size === 0 || timeout === 0) {
      const err = tryWaitHot(id);
      if (err === undefined) return Promise.resolve(true);
      if (err !== errno.EAGAIN) return Promise.reject(new SemaphoreError(err, 'sem_trywait', this.name));
      if (timeout === 0) return Promise.resolve(false);
    }
    const waitId = nextWaitId++;
    closeWaitingOnExit();
    const err = binding.wait(id, waitId, timeout);
    if (err !== 0) return Promise.reject(new SemaphoreError(err, 'sem_wait', this.name));
    return new Promise<boolean>((resolve, reject) => {
      const onAbort =
        signal &&
        ((): void => {
          if (forget(waitId) === undefined) return;
          this.#waits.delete(waitId);
          binding.cancel(id, waitId);
          reject(signal.reason);
        });
      signal?.addEventListener('abort', onAbort!, { once: true });
      pendingWaits.set(waitId, { sem: this, resolve, reject, signal, onAbort });
      this.#waits.add(waitId);
    });
  }

  /** Closes this handle (not the name). Idempotent; pending waits reject. */
  close(): void {
    if (this.#handle === null) return;
    this.#handle = null;
    binding.close(this.#id);
    const ended = [...this.#waits].map(forget);
    this.#waits.clear();
    for (const wait of ended) wait?.reject(objectClosed('semaphore', this.name));
    for (const wait of ended) if (wait !== undefined) unlisten(wait);
  }

  /** Removes this semaphore's name; false if it was already gone. */
  unlink(): boolean {
    return NamedSemaphore.unlink(this.name);
  }

  [Symbol.dispose](): void {
    this.close();
  }

  /** @internal */
  [kForgetWait](id: number): void {
    this.#waits.delete(id);
  }

  /** The handle's id; throws once closed. */
  #open(): number {
    if (this.#handle === null) throw objectClosed('semaphore', this.name);
    return this.#id;
  }

  // Aliases, for those who think in acquire/release.
  /** Alias of post(). */
  release(count?: number): void {
    this.post(count);
  }
  /** Alias of tryWait(). */
  tryAcquire(): boolean {
    return this.tryWait();
  }
  /** Alias of wait(). */
  acquire(options?: WaitOptions): Promise<boolean> {
    return this.wait(options);
  }
}

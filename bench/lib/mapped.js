'use strict';
// A prototype, for diagnosis only (not part of the package): post, tryWait
// and value done in JavaScript with Atomics on a named semaphore's counter
// word, mapped by the bench's no-op addon; the same steps as glibc's
// sem_post / sem_trywait / sem_getvalue (nptl/sem_post.c, sem_waitcommon.c),
// so it interoperates with them. A native call is made only to wake a
// waiter, when the waiter count is not zero. It shows what the hot paths
// would cost without a JavaScript -> native call.
const SEM_VALUE_MAX = 0x7fffffff;
const EAGAIN = 11;
const EOVERFLOW = 75;

class MappedSemaphore {
  constructor(addon, name) {
    const m = addon.map(name);
    if (typeof m === 'number') throw new Error(`map ${name}: errno ${m}`);
    this.map = m; // keeps the mapping alive
    this.w = new Int32Array(m.word); // [value, waiters]
  }
  post() {
    const w = this.w;
    for (;;) {
      const v = Atomics.load(w, 0);
      if (v === SEM_VALUE_MAX) return EOVERFLOW;
      if (Atomics.compareExchange(w, 0, v, v + 1) === v) break;
    }
    if (Atomics.load(w, 1) !== 0) this.map.wake();
    return 0;
  }
  tryWait() {
    const w = this.w;
    for (;;) {
      const v = Atomics.load(w, 0);
      if (v === 0) return EAGAIN;
      if (Atomics.compareExchange(w, 0, v, v - 1) === v) return 0;
    }
  }
  get value() {
    return Atomics.load(this.w, 0);
  }
}

/** A gauge's total the same way: its generation word, then every share's. */
class MappedGaugeReader {
  constructor(addon, gaugeName) {
    const fs = require('node:fs');
    const base = gaugeName.slice(1);
    this.generation = new MappedSemaphore(addon, `/${base}~gauge`);
    this.shares = fs
      .readdirSync('/dev/shm')
      .filter((f) => f.startsWith(`sem.${base}~`) && f !== `sem.${base}~gauge`)
      .map((f) => new MappedSemaphore(addon, `/${f.slice(4)}`).w);
    this.seen = this.generation.value;
  }
  get value() {
    if (this.generation.value !== this.seen) throw new Error('shares changed: list again');
    let total = 0;
    for (const w of this.shares) total += Atomics.load(w, 0);
    return total;
  }
}

module.exports = { MappedSemaphore, MappedGaugeReader };

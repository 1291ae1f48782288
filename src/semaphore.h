// The core: thin, errno-returning wrappers over POSIX named semaphores.
// Knows nothing of Node. Nothing here throws or allocates on the hot path.
#ifndef NAMED_SEMAPHORE_SEMAPHORE_H
#define NAMED_SEMAPHORE_SEMAPHORE_H

#include "glibc_compat.h"  // the inline calls below need the pinned versions too

#include <errno.h>
#include <semaphore.h>
#include <stdint.h>

namespace nsem {

// How an async wait ended.
struct Settled {
  double id;
  int err;  // 0: a token was taken for this wait; ETIMEDOUT; or a failure
};

// A deadline on CLOCK_MONOTONIC, in nanoseconds; kForever means no limit.
constexpr int64_t kForever = INT64_MAX;

int64_t MonotonicNowNs();

// Deadline `timeout_ms` from now; negative or huge timeouts mean kForever.
int64_t DeadlineAfterMs(double timeout_ms);

// Each returns 0 or an errno value. Open refuses with EINVAL a file too
// short to hold a semaphore (see TooShort).
int Open(const char* name, bool create, bool exclusive, unsigned mode, unsigned value, sem_t** out);
// Whether the file of semaphore `name` exists but is too short to hold one
// (made by hand, or truncated). glibc maps a semaphore's file without
// looking at its size, and touching a mapping past the end of its file
// raises SIGBUS. Checked by name at open: a file swapped in meanwhile, or
// truncated while open, still can.
bool TooShort(const char* name);
int Unlink(const char* name);
int Close(sem_t* sem);

// Adds `count`: at once where HasValueWord() (glibc has no sem_post for
// more than one), else by `count` posts. Fails with EOVERFLOW, the value
// unchanged, if that would pass SEM_VALUE_MAX; by posts, only when another
// process posts at the same moment can a failed post leave part behind.
int Post(sem_t* sem, uint32_t count);
// Takes `count` if the value is at least that (at once where
// HasValueWord(), else by tries that give back on failure); EAGAIN if not.
int TryWaitCount(sem_t* sem, uint32_t count);
// Takes every token; returns how many.
uint32_t Drain(sem_t* sem);

// The hot paths are inline: a call into another object file costs a visible
// share of a JavaScript call here.
inline int PostOne(sem_t* sem) { return sem_post(sem) == 0 ? 0 : errno; }

inline int TryWait(sem_t* sem) {  // EAGAIN when the value is 0
  while (sem_trywait(sem) != 0) {
    if (errno != EINTR) return errno;
  }
  return 0;
}

inline int GetValue(sem_t* sem, int* out) { return sem_getvalue(sem, out) == 0 ? 0 : errno; }

// Waits until a token is taken (0), the deadline passes (ETIMEDOUT), or a
// failure. EINTR is retried against the same absolute deadline.
int WaitUntil(sem_t* sem, int64_t deadline_ns);

// True when glibc has sem_clockwait (2.30+): waits then measure on
// CLOCK_MONOTONIC. Otherwise they use sem_timedwait in short slices.
bool HasClockWait();

// The 32-bit word that sem_getvalue reads, or nullptr. glibc (2.21+) on a
// 64-bit little-endian machine keeps a semaphore's value in the low half of
// its first 64-bit word and counts the threads blocked in sem_wait in the
// high half, so the value can be read with one load of that word, here or
// from JavaScript. Checked once per process, both halves: against
// sem_getvalue, and with a thread blocked in sem_wait; nullptr on any other
// libc or layout.
const int32_t* ValueWord(sem_t* sem);
bool HasValueWord();  // whether ValueWord works in this process
// ValueWord without the check, for loops that made it once.
inline const int32_t* ValueWordUnchecked(sem_t* sem) {
  return reinterpret_cast<const int32_t*>(sem);
}

// glibc counts the threads blocked in sem_wait in the high half of that
// same 64-bit word, and sem_post wakes one futex waiter on the value word
// whenever the count is not 0. These two take part in that protocol for a
// waiter outside glibc (see FutexRing); only where ValueWord is not nullptr.
void AddWaiter(sem_t* sem);
// If a wake meant for this waiter may have gone unused while the value is
// above 0 and others still wait, passes it on to one of them.
void RemoveWaiter(sem_t* sem);

}  // namespace nsem

#endif

#include "glibc_compat.h"

#include "semaphore.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

namespace nsem {

namespace {

constexpr int64_t kNsPerSec = 1000000000;
// Without sem_clockwait, a wall-clock wait never spans more than this, so a
// step of the wall clock can distort a wait by one slice at most.
constexpr int64_t kRealtimeSliceNs = 50 * 1000000;

using ClockWaitFn = int (*)(sem_t*, clockid_t, const struct timespec*);

// Looked up at run time: linking it would require glibc 2.30.
ClockWaitFn LookupClockWait() {
  return reinterpret_cast<ClockWaitFn>(dlsym(RTLD_DEFAULT, "sem_clockwait"));
}

ClockWaitFn ClockWait() {
  // A function-local constant: initialized once, thread-safely, never mutated.
  static const ClockWaitFn fn = LookupClockWait();
  return fn;
}

struct timespec ToTimespec(int64_t ns) {
  struct timespec ts;
  ts.tv_sec = static_cast<time_t>(ns / kNsPerSec);
  ts.tv_nsec = static_cast<long>(ns % kNsPerSec);
  return ts;
}

int64_t NowNs(clockid_t clock) {
  struct timespec ts;
  clock_gettime(clock, &ts);
  return static_cast<int64_t>(ts.tv_sec) * kNsPerSec + ts.tv_nsec;
}

// One bounded wait: returns 0, ETIMEDOUT, EINTR or another errno.
int WaitOnce(sem_t* sem, int64_t deadline_ns) {
  if (ClockWaitFn clock_wait = ClockWait()) {
    struct timespec ts = ToTimespec(deadline_ns);
    return clock_wait(sem, CLOCK_MONOTONIC, &ts) == 0 ? 0 : errno;
  }
  int64_t left = deadline_ns - MonotonicNowNs();
  if (left <= 0) return ETIMEDOUT;
  if (left > kRealtimeSliceNs) left = kRealtimeSliceNs;
  struct timespec ts = ToTimespec(NowNs(CLOCK_REALTIME) + left);
  return sem_timedwait(sem, &ts) == 0 ? 0 : errno;
}

}  // namespace

int64_t MonotonicNowNs() { return NowNs(CLOCK_MONOTONIC); }

int64_t DeadlineAfterMs(double timeout_ms) {
  // About 292 years fit in int64 nanoseconds; anything near that is forever.
  if (!(timeout_ms >= 0) || timeout_ms > 9.0e12) return kForever;
  return MonotonicNowNs() + static_cast<int64_t>(timeout_ms * 1e6);
}

bool TooShort(const char* name) {
  while (*name == '/') name++;  // as glibc's sem_open finds the file
  char path[sizeof "/dev/shm/sem." + NAME_MAX];
  snprintf(path, sizeof path, "/dev/shm/sem.%s", name);
  // statx, not stat: glibc 2.28 has it, where stat's own symbol is 2.33.
  struct statx st;
  return statx(AT_FDCWD, path, 0, STATX_TYPE | STATX_SIZE, &st) == 0 && S_ISREG(st.stx_mode) &&
         st.stx_size < sizeof(sem_t);
}

int Open(const char* name, bool create, bool exclusive, unsigned mode, unsigned value,
         sem_t** out) {
  int flags = 0;
  if (create) flags |= O_CREAT;
  if (create && exclusive) flags |= O_EXCL;
  sem_t* sem =
      create ? sem_open(name, flags, static_cast<mode_t>(mode), value) : sem_open(name, flags);
  if (sem == SEM_FAILED) return errno;
  if (TooShort(name)) {
    sem_close(sem);
    return EINVAL;
  }
  *out = sem;
  return 0;
}

int Unlink(const char* name) { return sem_unlink(name) == 0 ? 0 : errno; }

int Close(sem_t* sem) { return sem_close(sem) == 0 ? 0 : errno; }

namespace {

// glibc's semaphore word, where HasValueWord(): the value in the low half,
// the count of threads blocked in sem_wait in the high half.
constexpr uint64_t kValueMask = 0xffffffff;
constexpr uint64_t kOneWaiter = uint64_t{1} << 32;
uint64_t* Data(sem_t* sem) { return reinterpret_cast<uint64_t*>(sem); }

// A shared (not private) futex wake, as glibc's for a named semaphore.
void WakeWaiters(sem_t* sem, uint32_t n) {
  syscall(SYS_futex, sem, FUTEX_WAKE, static_cast<int>(n), nullptr, nullptr, 0);
}

// What sem_post does for one token, for `count` at once: the same
// compare-and-swap on the same word, then one wake-up per token added.
int AddTokens(sem_t* sem, uint32_t count) {
  uint64_t d = __atomic_load_n(Data(sem), __ATOMIC_RELAXED);
  do {
    if ((d & kValueMask) + count > SEM_VALUE_MAX) return EOVERFLOW;
  } while (!__atomic_compare_exchange_n(Data(sem), &d, d + count, true, __ATOMIC_RELEASE,
                                        __ATOMIC_RELAXED));
  if ((d >> 32) != 0) WakeWaiters(sem, count);
  return 0;
}

// Takes up to `max` tokens at once, as sem_trywait takes one; how many.
uint32_t TakeTokens(sem_t* sem, uint32_t max, bool all_or_none) {
  uint64_t d = __atomic_load_n(Data(sem), __ATOMIC_RELAXED);
  uint32_t taken;
  do {
    uint32_t value = static_cast<uint32_t>(d & kValueMask);
    taken = value < max ? value : max;
    if (taken == 0 || (all_or_none && taken < max)) return 0;
  } while (!__atomic_compare_exchange_n(Data(sem), &d, d - taken, true, __ATOMIC_ACQUIRE,
                                        __ATOMIC_RELAXED));
  return taken;
}

}  // namespace

int Post(sem_t* sem, uint32_t count) {
  if (count == 1) return PostOne(sem);
  if (HasValueWord()) return AddTokens(sem, count);
  int value = 0;
  if (sem_getvalue(sem, &value) != 0) return errno;
  if (static_cast<int64_t>(value) + count > SEM_VALUE_MAX) return EOVERFLOW;
  for (uint32_t i = 0; i < count; i++) {
    if (sem_post(sem) == 0) continue;
    int err = errno;
    // Another process raised the value meanwhile: take back what we added,
    // as far as it is still there (a waiter may already have taken some).
    for (uint32_t j = 0; j < i && sem_trywait(sem) == 0; j++) {
    }
    return err;
  }
  return 0;
}

int TryWaitCount(sem_t* sem, uint32_t count) {
  if (count == 1) return TryWait(sem);
  if (HasValueWord()) return TakeTokens(sem, count, true) == count ? 0 : EAGAIN;
  int value = 0;
  if (sem_getvalue(sem, &value) != 0) return errno;
  if (static_cast<uint32_t>(value) < count) return EAGAIN;
  for (uint32_t i = 0; i < count; i++) {
    int err = TryWait(sem);
    if (err == 0) continue;
    // Another process took some meanwhile: give back what we took.
    if (i > 0) Post(sem, i);
    return err;
  }
  return 0;
}

uint32_t Drain(sem_t* sem) {
  if (HasValueWord()) return TakeTokens(sem, SEM_VALUE_MAX, false);
  uint32_t taken = 0;
  while (TryWait(sem) == 0) taken++;
  return taken;
}

int WaitUntil(sem_t* sem, int64_t deadline_ns) {
  if (deadline_ns == kForever) {
    while (sem_wait(sem) != 0) {
      if (errno != EINTR) return errno;
    }
    return 0;
  }
  for (;;) {
    int err = WaitOnce(sem, deadline_ns);
    if (err == 0) return 0;
    if (err == ETIMEDOUT && MonotonicNowNs() >= deadline_ns) return ETIMEDOUT;
    if (err != EINTR && err != ETIMEDOUT) return err;
  }
}

bool HasClockWait() { return ClockWait() != nullptr; }

namespace {

// Whether a semaphore's first 32 bits are its value, for every value tried.
bool ValueHalfMatches() {
  sem_t sem;
  if (sem_init(&sem, 0, 0) != 0) return false;
  const volatile int32_t* word = reinterpret_cast<const volatile int32_t*>(&sem);
  bool matches = true;
  const int targets[] = {0, 1, 2, 3, 5, 1000, 65536};
  for (int target : targets) {
    int value = -1;
    // (Stops at the first failure, so a broken semaphore cannot loop forever.)
    while (sem_getvalue(&sem, &value) == 0 && value < target && sem_post(&sem) == 0) {
    }
    matches = matches && value == target && *word == target;
  }
  sem_destroy(&sem);
  return matches;
}

void* WaitOnce(void* sem) {
  while (sem_wait(static_cast<sem_t*>(sem)) != 0 && errno == EINTR) {
  }
  return nullptr;
}

// Whether the next 32 bits count the threads blocked in sem_wait: 1 while a
// thread waits, 0 once a post let it go. glibc before 2.21 kept that count
// elsewhere, where a value-only check passes, and sem_post would not wake a
// waiter that AddWaiter counted, nor would a gauge's plain store leave the
// count alone.
bool WaiterHalfMatches() {
  sem_t sem;
  if (sem_init(&sem, 0, 0) != 0) return false;
  const volatile uint32_t* waiters = reinterpret_cast<const volatile uint32_t*>(&sem) + 1;
  pthread_t waiter;
  if (pthread_create(&waiter, nullptr, WaitOnce, &sem) != 0) {
    sem_destroy(&sem);
    return false;  // no thread to try with: not confirmed
  }
  bool counted = false;
  const struct timespec pause = {0, 50000};
  for (int i = 0; i < 40000 && !counted; i++) {  // up to 2 s for the thread to block
    counted = *waiters == 1;
    if (!counted) nanosleep(&pause, nullptr);
  }
  sem_post(&sem);
  pthread_join(waiter, nullptr);
  int value = -1;
  bool matches = counted && *waiters == 0 && sem_getvalue(&sem, &value) == 0 && value == 0;
  sem_destroy(&sem);
  return matches;
}

// The whole 64-bit word as glibc 2.21+ lays it out on a 64-bit
// little-endian machine: the value, then the waiter count.
bool ValueWordMatches() {
#if defined(__GLIBC__) && (defined(__x86_64__) || defined(__aarch64__)) && \
    __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  return ValueHalfMatches() && WaiterHalfMatches();
#else
  return false;
#endif
}

}  // namespace

bool HasValueWord() {
  static const bool matches = ValueWordMatches();  // once, thread-safely
  return matches;
}

const int32_t* ValueWord(sem_t* sem) { return HasValueWord() ? ValueWordUnchecked(sem) : nullptr; }

void AddWaiter(sem_t* sem) { __atomic_fetch_add(Data(sem), kOneWaiter, __ATOMIC_SEQ_CST); }

void RemoveWaiter(sem_t* sem) {
  uint64_t d = __atomic_sub_fetch(Data(sem), kOneWaiter, __ATOMIC_SEQ_CST);
  if ((d & kValueMask) != 0 && (d >> 32) != 0) WakeWaiters(sem, 1);
}

}  // namespace nsem

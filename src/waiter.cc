#include "glibc_compat.h"

#include "waiter.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>

#include "semaphore.h"

namespace nsem {

namespace {

// futex_waitv takes at most 128 words; one is the thread's control word.
constexpr size_t kSleepsPerThread = 127;
constexpr size_t kMaxThreads = 16;
// How often a thread looks at the semaphores it has no room to sleep on
// (past kMaxThreads * kSleepsPerThread semaphores with waits at once).
constexpr int64_t kPollNs = 10 * 1000000;
// Without a futex word: how long a thread blocks in sem_clockwait at most.
constexpr int64_t kSliceNs = 20 * 1000000;
// How long an idle thread stays for the next wait before it ends.
constexpr int64_t kLingerNs = 1000 * 1000000;
// Where there is no futex_waitv, a kick wakes the thread through the futex
// word it sleeps on, with a bitset of its own. glibc's waiters on that word
// wait for any bitset, so they may wake too, find nothing, and sleep again.
constexpr uint32_t kKickBitset = 1u << 30;

// Linux 5.16's uapi, which older headers lack.
constexpr long kSysFutexWaitv = 449;  // the same number on x86-64 and arm64
constexpr uint32_t kFutex2SizeU32 = 2;
constexpr uint32_t kFutex2Private = 128;
struct FutexWaitv {
  uint64_t val;
  uint64_t uaddr;
  uint32_t flags;
  uint32_t reserved;
};

struct timespec ToTimespec(int64_t ns) {
  struct timespec ts;
  ts.tv_sec = static_cast<time_t>(ns / 1000000000);
  ts.tv_nsec = static_cast<long>(ns % 1000000000);
  return ts;
}

// Sleeps while *word == expected, until a wake or the deadline (monotonic).
void FutexWait(const void* word, uint32_t expected, int64_t deadline_ns, bool shared,
               uint32_t bitset) {
  struct timespec ts = ToTimespec(deadline_ns);
  int op = FUTEX_WAIT_BITSET | (shared ? 0 : FUTEX_PRIVATE_FLAG);
  syscall(SYS_futex, word, op, expected, deadline_ns == kForever ? nullptr : &ts, nullptr, bitset);
}

void FutexWake(const void* word, bool shared, uint32_t bitset) {
  int op = FUTEX_WAKE_BITSET | (shared ? 0 : FUTEX_PRIVATE_FLAG);
  syscall(SYS_futex, word, op, INT_MAX, nullptr, nullptr, bitset);
}

long WaitOnAny(FutexWaitv* waiters, size_t n, int64_t deadline_ns) {
  struct timespec ts = ToTimespec(deadline_ns);
  return syscall(kSysFutexWaitv, waiters, n, 0, deadline_ns == kForever ? nullptr : &ts,
                 CLOCK_MONOTONIC);
}

bool ProbeFutexWaitv() {
  uint32_t word = 1;
  FutexWaitv w = {0, reinterpret_cast<uintptr_t>(&word), kFutex2SizeU32 | kFutex2Private, 0};
  // The word is not 0, so a working futex_waitv returns EAGAIN at once.
  return WaitOnAny(&w, 1, kForever) < 0 && errno == EAGAIN;
}

}  // namespace

void SharedSemaphore::Unref() {
  if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
}

struct WaiterPool::Thread {
  WaiterPool* pool;
  pthread_t tid;
  std::vector<Queue*> queues;  // with waits, in the order they came
  uint32_t control = 0;        // futex word: bumped by each kick
  // Without futex_waitv: the semaphore word the thread sleeps on, if any.
  const int32_t* sleeping_on = nullptr;
  int64_t wake_at = kForever;  // when it wakes by itself
  uint64_t rounds = 0;         // rounds served; a kick waits for the next
  bool finished = false;       // ended when idle; to be joined
};

class WaiterPool::Queue {
 public:
  explicit Queue(SharedSemaphore* s) : sem(s) { sem->Ref(); }
  ~Queue() { sem->Unref(); }
  struct Pending {
    double id;
    int64_t deadline_ns;
  };
  SharedSemaphore* const sem;
  std::deque<Pending> pending;
  Thread* thread = nullptr;  // set while it has waits, or until its thread lets go
  bool registered = false;   // counted among glibc's waiters (by its thread)
  bool deleting = false;
};

bool WaiterPool::Multiplexed() {
  static const bool works = ProbeFutexWaitv();  // once, thread-safely
  return works;
}

WaiterPool::WaiterPool(Notify notify, void* context) : notify_(notify), context_(context) {
  pthread_mutex_init(&mu_, nullptr);
  pthread_condattr_t attr;
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  pthread_cond_init(&progress_, &attr);
  pthread_condattr_destroy(&attr);
}

WaiterPool::~WaiterPool() {
  pthread_cond_destroy(&progress_);
  pthread_mutex_destroy(&mu_);
}

WaiterPool::Queue* WaiterPool::NewQueue(SharedSemaphore* sem) { return new Queue(sem); }

int WaiterPool::Enqueue(Queue* q, double id, int64_t deadline_ns) {
  pthread_mutex_lock(&mu_);
  int err = 0;
  if (q->thread == nullptr) {
    JoinFinishedLocked();
    Thread* t = ThreadForLocked();
    if (t == nullptr) {
      err = EAGAIN;
    } else {
      q->thread = t;
      t->queues.push_back(q);
    }
  }
  if (err == 0) {
    q->pending.push_back(Queue::Pending{id, deadline_ns});
    pending_++;
    // A new queue must be slept on; an earlier deadline must be kept.
    if (q->pending.size() == 1 || deadline_ns < q->thread->wake_at) KickLocked(q->thread);
  }
  pthread_mutex_unlock(&mu_);
  return err;
}

bool WaiterPool::Cancel(Queue* q, double id) {
  pthread_mutex_lock(&mu_);
  bool found = false;
  for (auto it = q->pending.begin(); it != q->pending.end(); ++it) {
    if (it->id == id) {
      q->pending.erase(it);
      pending_--;
      found = true;
      // Its thread stops counting as a waiter when it next looks.
      if (q->pending.empty() && q->thread != nullptr) KickLocked(q->thread);
      break;
    }
  }
  for (auto it = settled_.begin(); !found && it != settled_.end(); ++it) {
    if (it->sem == q->sem && it->wait.id == id) {
      if (it->wait.err == 0) Post(it->sem->sem(), 1);  // the token must not be lost
      it->sem->Unref();
      settled_.erase(it);
      found = true;
      break;
    }
  }
  pthread_mutex_unlock(&mu_);
  return found;
}

size_t WaiterPool::DeleteQueue(Queue* q) {
  pthread_mutex_lock(&mu_);
  size_t outstanding = q->pending.size();
  pending_ -= q->pending.size();
  q->pending.clear();
  for (auto it = settled_.begin(); it != settled_.end();) {
    if (it->sem == q->sem) {
      if (it->wait.err == 0) Post(it->sem->sem(), 1);
      it->sem->Unref();
      it = settled_.erase(it);
      outstanding++;
    } else {
      ++it;
    }
  }
  // Its thread lets go of it (and of glibc's count of waiters) itself, once
  // out of its futex wait: leaving the count while still queued on the
  // futex could take a post's wake-up from another waiter.
  q->deleting = true;
  while (q->thread != nullptr) {
    KickLocked(q->thread);  // without futex_waitv, this waits for a round itself
    if (q->thread != nullptr) pthread_cond_wait(&progress_, &mu_);
  }
  pthread_mutex_unlock(&mu_);
  delete q;
  return outstanding;
}

void WaiterPool::Drain(std::vector<SettledWait>* out) {
  pthread_mutex_lock(&mu_);
  out->swap(settled_);
  settled_.clear();
  notified_ = false;
  pthread_mutex_unlock(&mu_);
}

bool WaiterPool::Idle() {
  pthread_mutex_lock(&mu_);
  bool idle = pending_ == 0 && settled_.empty();
  pthread_mutex_unlock(&mu_);
  return idle;
}

void WaiterPool::Shutdown() {
  pthread_mutex_lock(&mu_);
  shutting_down_ = true;
  for (Thread* t : threads_) {
    if (!t->finished) KickLocked(t);
  }
  std::vector<Thread*> threads;
  threads.swap(threads_);
  pthread_mutex_unlock(&mu_);
  for (Thread* t : threads) {
    pthread_join(t->tid, nullptr);
    delete t;
  }
  std::vector<SettledWait> left;
  Drain(&left);
  for (const SettledWait& s : left) {
    if (s.wait.err == 0) Post(s.sem->sem(), 1);
    s.sem->Unref();
  }
}

// A thread to serve one more queue: the least busy with room, else a new
// one while there may be more, else the busiest, so that one thread polls
// what no thread has room to sleep on.
WaiterPool::Thread* WaiterPool::ThreadForLocked() {
  if (shutting_down_) return nullptr;
  const bool multiplexed = Multiplexed() && HasValueWord();
  const size_t room = multiplexed ? kSleepsPerThread : 1;  // queues a thread sleeps on
  Thread* least = nullptr;
  Thread* most = nullptr;
  for (Thread* t : threads_) {
    if (t->finished) continue;
    if (least == nullptr || t->queues.size() < least->queues.size()) least = t;
    if (most == nullptr || t->queues.size() > most->queues.size()) most = t;
  }
  if (least != nullptr && least->queues.size() < room) return least;
  if (!multiplexed || threads_.size() < kMaxThreads) {
    Thread* t = new Thread();
    t->pool = this;
    if (pthread_create(&t->tid, nullptr, ThreadMain, t) == 0) {
      threads_.push_back(t);
      return t;
    }
    delete t;
  }
  return most;  // nullptr if no thread could start
}

void* WaiterPool::ThreadMain(void* thread) {
  Thread* t = static_cast<Thread*>(thread);
  t->pool->Run(t);
  return nullptr;
}

void WaiterPool::JoinFinishedLocked() {
  for (auto it = threads_.begin(); it != threads_.end();) {
    Thread* t = *it;
    if (!t->finished) {
      ++it;
      continue;
    }
    pthread_join(t->tid, nullptr);  // it holds the lock no more, and is returning
    delete t;
    it = threads_.erase(it);
  }
}

// Makes the thread run a round soon. Race-free with futex_waitv (the thread
// sleeps only while its control word holds what it read). Without it, the
// thread may be about to sleep on a semaphore word: wake it until it has
// run a round.
void WaiterPool::KickLocked(Thread* t) {
  t->control++;
  if (t->sleeping_on == nullptr) {
    FutexWake(&t->control, false, FUTEX_BITSET_MATCH_ANY);
    return;
  }
  const uint64_t round = t->rounds;
  while (t->rounds == round && t->sleeping_on != nullptr) {
    FutexWake(t->sleeping_on, true, kKickBitset);
    struct timespec soon = ToTimespec(MonotonicNowNs() + 1000000);
    pthread_cond_timedwait(&progress_, &mu_, &soon);
  }
}

void WaiterPool::SettleLocked(Queue* q, double id, int err) {
  q->sem->Ref();
  settled_.push_back(SettledWait{Settled{id, err}, q->sem});
  pending_--;
  if (!notified_) {
    notified_ = true;
    notify_(context_);
  }
}

// One round over the thread's queues: takes tokens for waits in order while
// the values allow, ends overdue ones, lets go of queues with none left.
// Whether it keeps any; *wake_at: the earliest deadline.
bool WaiterPool::ServeLocked(Thread* t, int64_t now, int64_t* wake_at) {
  *wake_at = kForever;
  for (auto qit = t->queues.begin(); qit != t->queues.end();) {
    Queue* q = *qit;
    if (!q->deleting) {
      for (auto it = q->pending.begin(); it != q->pending.end();) {
        if (it->deadline_ns <= now) {
          SettleLocked(q, it->id, ETIMEDOUT);
          it = q->pending.erase(it);
        } else {
          ++it;
        }
      }
      while (!q->pending.empty()) {
        int err = TryWait(q->sem->sem());
        if (err == EAGAIN) break;
        SettleLocked(q, q->pending.front().id, err);  // 0: the token is this wait's
        q->pending.pop_front();
        if (err == 0) continue;
        // A failure ends every remaining wait alike.
        while (!q->pending.empty()) {
          SettleLocked(q, q->pending.front().id, err);
          q->pending.pop_front();
        }
      }
    }
    if (q->deleting || q->pending.empty()) {
      if (q->registered) RemoveWaiter(q->sem->sem());  // passes on a wake it did not use
      q->registered = false;
      q->thread = nullptr;
      qit = t->queues.erase(qit);
      continue;
    }
    for (const Queue::Pending& p : q->pending) *wake_at = std::min(*wake_at, p.deadline_ns);
    ++qit;
  }
  return !t->queues.empty();
}

// Where glibc's layout is not confirmed there is no futex word to sleep on:
// the thread blocks in sem_clockwait until wake_at, at most one slice away
// (see Run), so that kicks are seen within one. (Never on x86-64 or arm64
// glibc.)
void WaiterPool::SleepInSemWaitLocked(Queue* q, int64_t wake_at) {
  pthread_mutex_unlock(&mu_);
  int err = WaitUntil(q->sem->sem(), wake_at);
  pthread_mutex_lock(&mu_);
  if (err == 0 && !q->deleting && !q->pending.empty()) {
    SettleLocked(q, q->pending.front().id, 0);
    q->pending.pop_front();
  } else if (err == 0) {
    Post(q->sem->sem(), 1);  // nobody wants it any more: give it back
  }
}

void WaiterPool::Run(Thread* t) {
  // Where glibc's layout is confirmed: many words per thread with
  // futex_waitv, else one; otherwise sem_clockwait on one semaphore.
  const bool words = HasValueWord();
  const bool multiplexed = words && Multiplexed();
  const size_t room = multiplexed ? kSleepsPerThread : 1;
  std::vector<FutexWaitv> waiters;
  int64_t idle_until = kForever;
  pthread_mutex_lock(&mu_);
  while (!shutting_down_) {
    const int64_t now = MonotonicNowNs();
    int64_t wake_at;
    const bool busy = ServeLocked(t, now, &wake_at);
    t->rounds++;
    pthread_cond_broadcast(&progress_);
    if (!busy) {
      if (idle_until == kForever) idle_until = now + kLingerNs;
      if (now >= idle_until) break;  // idle: the next wait starts a thread
      wake_at = idle_until;
    } else {
      idle_until = kForever;
    }
    if (busy && !words) {
      t->wake_at = std::min(wake_at, now + kSliceNs);
      SleepInSemWaitLocked(t->queues[0], t->wake_at);
      continue;
    }
    // Sleep on the semaphores there is room for, counted as their waiter
    // first: a post from then on wakes this thread, and a post before it
    // left the value above 0, so the futex wait returns at once.
    waiters.clear();
    const uint32_t control = t->control;
    for (size_t i = 0; i < t->queues.size() && i < room; i++) {
      Queue* q = t->queues[i];
      if (!q->registered) AddWaiter(q->sem->sem());
      q->registered = true;
      waiters.push_back(
          FutexWaitv{0, reinterpret_cast<uintptr_t>(ValueWord(q->sem->sem())), kFutex2SizeU32, 0});
    }
    if (t->queues.size() > room) wake_at = std::min(wake_at, now + kPollNs);
    t->wake_at = wake_at;
    if (multiplexed) {
      waiters.push_back(FutexWaitv{control, reinterpret_cast<uintptr_t>(&t->control),
                                   kFutex2SizeU32 | kFutex2Private, 0});
    } else if (!waiters.empty()) {
      t->sleeping_on = reinterpret_cast<const int32_t*>(waiters[0].uaddr);
    }
    pthread_mutex_unlock(&mu_);
    if (multiplexed) {
      WaitOnAny(waiters.data(), waiters.size(), wake_at);
    } else if (!waiters.empty()) {
      FutexWait(t->sleeping_on, 0, wake_at, true, kKickBitset);
    } else {
      FutexWait(&t->control, control, wake_at, false, FUTEX_BITSET_MATCH_ANY);
    }
    pthread_mutex_lock(&mu_);
    t->sleeping_on = nullptr;
  }
  // Shutting down or idle: no queue is left (see DeleteQueue, Shutdown).
  for (Queue* q : t->queues) {
    if (q->registered) RemoveWaiter(q->sem->sem());
    q->registered = false;
    q->thread = nullptr;
  }
  t->queues.clear();
  t->finished = true;
  t->rounds++;
  pthread_cond_broadcast(&progress_);
  pthread_mutex_unlock(&mu_);
}

}  // namespace nsem

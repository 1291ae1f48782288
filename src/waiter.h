// Async waits without the libuv thread pool, where there is no FutexRing
// (futex_ring.h): a few threads per environment that sleep in the kernel on
// the semaphores' futex words, as sem_wait does, and wake for a post, the
// earliest deadline, or a kick from the JavaScript thread. An idle wait costs
// no CPU, and cancellation, deadlines and close are seen at once.
//
// Each thread sleeps in futex_waitv (Linux 5.16+) on up to kSleepsPerThread
// semaphores plus a private control word that kicks it; at most kMaxThreads
// threads per environment, and a thread that has more semaphores than it can
// sleep on polls the rest every few milliseconds. Where futex_waitv is
// refused (older kernels, qemu-user, older seccomp profiles), each semaphore
// with waits gets a thread of its own that sleeps on its futex word alone.
//
// A thread joins glibc's count of the semaphore's waiters while it sleeps on
// it, as FutexRing does (see nsem::AddWaiter), so sem_post wakes it.
#ifndef NAMED_SEMAPHORE_WAITER_H
#define NAMED_SEMAPHORE_WAITER_H

#include <pthread.h>
#include <semaphore.h>
#include <stdint.h>

#include <atomic>
#include <deque>
#include <vector>

#include "semaphore.h"

namespace nsem {

// An open semaphore, shared by its handle, the waits in flight, and the value
// word's buffer: sem_close runs when the last of them lets go.
class SharedSemaphore {
 public:
  explicit SharedSemaphore(sem_t* sem) : sem_(sem) {}
  SharedSemaphore(const SharedSemaphore&) = delete;
  SharedSemaphore& operator=(const SharedSemaphore&) = delete;

  sem_t* sem() const { return sem_; }
  void Ref() { refs_.fetch_add(1, std::memory_order_relaxed); }
  void Unref();  // the last Unref closes the semaphore and deletes this

 private:
  ~SharedSemaphore() { Close(sem_); }
  sem_t* const sem_;
  std::atomic<int> refs_{1};
};

// A settled wait, with a reference on its semaphore (for the token to go
// back to, should JavaScript not take it). The receiver drops the reference.
struct SettledWait {
  Settled wait;
  SharedSemaphore* sem;
};

class WaiterPool {
 public:
  // Called on a waiter thread, holding the pool's lock, when settled waits
  // are ready to drain; at most once between two Drain() calls.
  using Notify = void (*)(void* context);
  // The waits of one handle, served first in, first out.
  class Queue;

  WaiterPool(Notify notify, void* context);
  ~WaiterPool();  // Shutdown() first
  WaiterPool(const WaiterPool&) = delete;
  WaiterPool& operator=(const WaiterPool&) = delete;

  // The rest is for the JavaScript thread.
  Queue* NewQueue(SharedSemaphore* sem);  // takes a reference on sem
  // Queues a wait; 0, or the errno of a failed thread start.
  int Enqueue(Queue* q, double id, int64_t deadline_ns);
  // Forgets a wait that JavaScript no longer wants. A token already taken for
  // it is posted back. Whether the wait was still outstanding.
  bool Cancel(Queue* q, double id);
  // Ends the queue's waits, posting back tokens taken for them, and deletes
  // it. Returns how many were outstanding. Once it returns, no thread
  // touches the semaphore or counts among its waiters.
  size_t DeleteQueue(Queue* q);
  // Moves the settled waits into `out`.
  void Drain(std::vector<SettledWait>* out);
  // Whether no wait is queued or settled and undrained.
  bool Idle();
  // Joins every thread; tokens settled and not drained are posted back.
  // Every queue must have been deleted.
  void Shutdown();
  // Whether threads sleep on many semaphores each (futex_waitv), or one.
  static bool Multiplexed();

 private:
  struct Thread;
  static void* ThreadMain(void* thread);
  void Run(Thread* t);
  bool ServeLocked(Thread* t, int64_t now, int64_t* wake_at);
  void SettleLocked(Queue* q, double id, int err);
  void SleepInSemWaitLocked(Queue* q, int64_t wake_at);
  void KickLocked(Thread* t);
  Thread* ThreadForLocked();
  void JoinFinishedLocked();

  const Notify notify_;
  void* const context_;
  pthread_mutex_t mu_;
  pthread_cond_t progress_;  // a thread finished a round (see KickLocked)
  std::vector<Thread*> threads_;
  std::vector<SettledWait> settled_;
  size_t pending_ = 0;  // waits queued, not yet settled
  bool notified_ = false;
  bool shutting_down_ = false;
};

}  // namespace nsem

#endif

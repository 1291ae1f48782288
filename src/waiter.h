// Async waits without the libuv thread pool, where there is no FutexRing
// (futex_ring.h): one thread per open semaphore that has waits pending (it
// lingers 1 s when idle), serving them first in, first out. It blocks in
// short slices so that deadlines, cancellation and close are seen promptly.
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

// An open semaphore, shared by its JavaScript handle and its waiter thread.
// sem_close runs when the last of them lets go, never while a thread waits.
class SharedSemaphore {
 public:
  // Called by the waiter thread, holding the lock, when settled waits are
  // ready to drain. It runs at most once between two Drain() calls.
  using Notify = void (*)(void* context, SharedSemaphore* sem);

  SharedSemaphore(sem_t* sem, Notify notify, void* context);
  SharedSemaphore(const SharedSemaphore&) = delete;
  SharedSemaphore& operator=(const SharedSemaphore&) = delete;

  sem_t* sem() const { return sem_; }
  void Ref();
  void Unref();  // the last Unref closes the semaphore and deletes this

  // The rest is for the JavaScript thread.
  // Queues a wait; returns 0 or the errno of a failed thread start.
  int Enqueue(double id, int64_t deadline_ns);
  // Forgets a wait that JavaScript no longer wants. A token already taken for
  // it is posted back. Returns whether the wait was still outstanding.
  bool Cancel(double id);
  // Moves the settled waits into `out`.
  void Drain(std::vector<Settled>* out);
  // Ends every outstanding wait, posting back tokens taken for them, and
  // stops the thread. Returns how many waits were outstanding.
  size_t Stop();

 private:
  struct Pending {
    double id;
    int64_t deadline_ns;
  };

  ~SharedSemaphore();
  static void* ThreadMain(void* self);
  void Run();
  void SettleLocked(double id, int err);
  void ExpireLocked(int64_t now_ns);

  sem_t* const sem_;
  const Notify notify_;
  void* const context_;
  std::atomic<int> refs_{1};
  pthread_mutex_t mu_;
  pthread_cond_t wake_;
  std::deque<Pending> pending_;
  std::vector<Settled> settled_;
  bool notified_ = false;
  bool stopping_ = false;
  bool thread_started_ = false;
};

}  // namespace nsem

#endif

// An io_uring that waits on semaphores' futex words for one thread, so that
// an async wait wakes the event loop directly: the poster's futex wake
// completes the request and the ring's fd turns readable in the loop's epoll.
// The alternative, a thread blocked in sem_wait that then wakes the loop,
// makes every wake-up cross two threads. Knows nothing of Node.
//
// Needs Linux 6.7+ (IORING_OP_FUTEX_WAIT), io_uring not blocked (seccomp,
// kernel.io_uring_disabled), and glibc's semaphore layout; Create() checks
// all three once per process and returns nullptr when any is missing.
#ifndef NAMED_SEMAPHORE_FUTEX_RING_H
#define NAMED_SEMAPHORE_FUTEX_RING_H

#include <semaphore.h>
#include <stdint.h>

#include <deque>
#include <vector>

#include "semaphore.h"

struct io_uring_sqe;

namespace nsem {

class FutexRing {
 public:
  // A ring, or nullptr where futex waits through io_uring cannot serve
  // glibc semaphores; *transient tells a failure that may pass (out of
  // descriptors or memory), after which a later call may succeed.
  static FutexRing* Create(bool* transient);
  ~FutexRing();
  FutexRing(const FutexRing&) = delete;
  FutexRing& operator=(const FutexRing&) = delete;

  int fd() const { return fd_; }

  // Starts a wait that completes when `word` is woken, or at once (-EAGAIN)
  // if it is not 0. `key` (never 0) comes back with the completion. 0 or an
  // errno.
  int Arm(uint64_t key, const int32_t* word);
  // Takes the wait with `key` off the futex queue before returning; its
  // completion (-ECANCELED, or 0 if a wake beat the cancel) still comes.
  int Disarm(uint64_t key);

  struct Completion {
    uint64_t key;
    int32_t res;  // 0 woken, -EAGAIN the word was not 0, -ECANCELED, -errno
  };
  // Moves the completions that are ready into `out`.
  void Reap(std::vector<Completion>* out);

 private:
  enum Verdict { kUnknown, kWorks, kRefused };
  FutexRing() = default;
  static FutexRing* Open(int* err);
  static Verdict PostWakesRing();
  int Init(unsigned entries);                    // 0 or an errno
  int Submit(const struct io_uring_sqe& entry);  // 0 or an errno

  int fd_ = -1;
  void* rings_ = nullptr;
  size_t rings_size_ = 0;
  void* sqes_ = nullptr;
  size_t sqes_size_ = 0;
  unsigned* sq_head_ = nullptr;
  unsigned* sq_tail_ = nullptr;
  unsigned* sq_flags_ = nullptr;
  unsigned sq_mask_ = 0;
  unsigned* sq_array_ = nullptr;
  unsigned* cq_head_ = nullptr;
  unsigned* cq_tail_ = nullptr;
  unsigned cq_mask_ = 0;
  void* cqes_ = nullptr;
};

// The async waits on one semaphore served through a FutexRing, first in,
// first out. All of it runs on the ring's thread. While any wait is pending,
// the waits count as one waiter in glibc's semaphore (so sem_post wakes
// them) and one futex wait is armed.
class RingWaits {
 public:
  explicit RingWaits(sem_t* sem) : sem_(sem) {}
  // The id of the semaphore's handle (below 2^53): its completions carry it.
  void set_key(uint64_t key) { key_ = key; }

  // 0, or the errno of a failure to arm (then the wait was not queued).
  int Enqueue(double id, int64_t deadline_ns, FutexRing* ring);
  // Forgets a pending wait; whether it was pending.
  bool Cancel(double id, FutexRing* ring);
  // A completion of this semaphore's futex wait, by its ring key: false if it
  // belongs to an earlier arming (then there is nothing to do).
  bool Completed(uint64_t ring_key);
  // Takes tokens for waits in order while the value allows, ends overdue
  // waits with ETIMEDOUT, and arms or disarms the futex wait to match.
  void Service(FutexRing* ring, int64_t now_ns, std::vector<Settled>* out);
  // Ends every pending wait and stops waiting (ring may be nullptr once
  // closed, which ended its waits). Returns how many there were.
  size_t Stop(FutexRing* ring);

  bool idle() const { return pending_.empty(); }
  int64_t NextDeadline() const;
  // The semaphore's handle id, from a ring key.
  static uint64_t HandleId(uint64_t ring_key) { return ring_key & kIdMask; }

 private:
  struct Pending {
    double id;
    int64_t deadline_ns;
  };
  static constexpr int kIdBits = 53;  // a handle id; the arming goes above it
  static constexpr uint64_t kIdMask = (uint64_t{1} << kIdBits) - 1;
  static constexpr uint64_t kArmingMask = (uint64_t{1} << (64 - kIdBits)) - 1;
  uint64_t RingKey() const;
  int Arm(FutexRing* ring);
  void StopWaiting(FutexRing* ring);

  sem_t* const sem_;
  uint64_t key_ = 0;
  std::deque<Pending> pending_;
  bool registered_ = false;  // counted in the semaphore's waiters
  bool armed_ = false;       // a futex wait is in the ring
  uint64_t arming_ = 0;      // numbers each arming, in the ring key's top bits
};

}  // namespace nsem

#endif

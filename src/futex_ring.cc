#include "glibc_compat.h"

#include "futex_ring.h"

#include <errno.h>
#include <linux/io_uring.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>

namespace nsem {

namespace {

// Linux 6.7's uapi, which older headers lack.
constexpr uint8_t kOpFutexWait = 51;      // IORING_OP_FUTEX_WAIT
constexpr uint32_t kFutex2SizeU32 = 2;    // FUTEX2_SIZE_U32; shared: not FUTEX2_PRIVATE
constexpr uint64_t kFutexMatchAny = ~0u;  // FUTEX_BITSET_MATCH_ANY
constexpr unsigned kEntries = 256;
// How long the one-time check waits for glibc's sem_post to wake the ring.
constexpr int kCheckTimeoutMs = 200;

template <typename T>
T* At(void* base, uint32_t offset) {
  return reinterpret_cast<T*>(static_cast<char*>(base) + offset);
}

// Whether a failure to set up a ring may pass: out of descriptors or memory.
bool Transient(int err) { return err == EMFILE || err == ENFILE || err == ENOMEM || err == EAGAIN; }

}  // namespace

// A ring, without the check; nullptr and *err on failure.
FutexRing* FutexRing::Open(int* err) {
  FutexRing* ring = new FutexRing();
  *err = ring->Init(kEntries);
  if (*err == 0) return ring;
  delete ring;
  return nullptr;
}

// Whether sem_post on a process-shared semaphore wakes a futex wait that a
// ring armed as one of glibc's waiters: proves the opcode, the permission
// and the protocol together. kUnknown when a transient failure kept it from
// telling.
FutexRing::Verdict FutexRing::PostWakesRing() {
  if (!HasValueWord()) return kRefused;  // not glibc's layout
  void* page =
      mmap(nullptr, sizeof(sem_t), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (page == MAP_FAILED) return kUnknown;
  sem_t* sem = static_cast<sem_t*>(page);
  bool wakes = false;
  int err = 0;
  FutexRing* ring = sem_init(sem, 1, 0) == 0 ? FutexRing::Open(&err) : nullptr;
  if (ring != nullptr) {
    AddWaiter(sem);
    if (ring->Arm(1, ValueWord(sem)) == 0) {
      sem_post(sem);
      struct pollfd pfd = {ring->fd(), POLLIN, 0};
      std::vector<FutexRing::Completion> done;
      if (poll(&pfd, 1, kCheckTimeoutMs) == 1) ring->Reap(&done);
      wakes = done.size() == 1 && done[0].key == 1 && done[0].res == 0;
      if (done.empty()) ring->Disarm(1);
    }
    RemoveWaiter(sem);
    delete ring;
    sem_destroy(sem);
  }
  munmap(page, sizeof(sem_t));
  if (ring == nullptr && Transient(err)) return kUnknown;
  return wakes ? kWorks : kRefused;
}

FutexRing* FutexRing::Create(bool* transient) {
  // Checked once per process, unless a transient failure kept it from
  // telling: then the next call checks again.
  static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
  static Verdict verdict = kUnknown;
  pthread_mutex_lock(&mu);
  if (verdict == kUnknown) verdict = PostWakesRing();
  Verdict now = verdict;
  pthread_mutex_unlock(&mu);
  *transient = now == kUnknown;
  if (now != kWorks) return nullptr;
  int err = 0;
  FutexRing* ring = Open(&err);
  *transient = ring == nullptr && Transient(err);
  return ring;
}

int FutexRing::Init(unsigned entries) {
  struct io_uring_params p;
  memset(&p, 0, sizeof p);
  fd_ = static_cast<int>(syscall(__NR_io_uring_setup, entries, &p));  // O_CLOEXEC
  if (fd_ < 0) return errno;
  if (!(p.features & IORING_FEAT_SINGLE_MMAP) || !(p.features & IORING_FEAT_NODROP)) {
    return ENOSYS;
  }
  rings_size_ = std::max(p.sq_off.array + p.sq_entries * sizeof(unsigned),
                         p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe));
  void* rings = mmap(nullptr, rings_size_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd_,
                     IORING_OFF_SQ_RING);
  if (rings == MAP_FAILED) return errno;
  rings_ = rings;
  sqes_size_ = p.sq_entries * sizeof(struct io_uring_sqe);
  void* sqes = mmap(nullptr, sqes_size_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd_,
                    IORING_OFF_SQES);
  if (sqes == MAP_FAILED) return errno;
  sqes_ = sqes;
  sq_head_ = At<unsigned>(rings_, p.sq_off.head);
  sq_tail_ = At<unsigned>(rings_, p.sq_off.tail);
  sq_flags_ = At<unsigned>(rings_, p.sq_off.flags);
  sq_mask_ = *At<unsigned>(rings_, p.sq_off.ring_mask);
  sq_array_ = At<unsigned>(rings_, p.sq_off.array);
  cq_head_ = At<unsigned>(rings_, p.cq_off.head);
  cq_tail_ = At<unsigned>(rings_, p.cq_off.tail);
  cq_mask_ = *At<unsigned>(rings_, p.cq_off.ring_mask);
  cqes_ = At<void>(rings_, p.cq_off.cqes);
  return 0;
}

FutexRing::~FutexRing() {
  if (sqes_ != nullptr) munmap(sqes_, sqes_size_);
  if (rings_ != nullptr) munmap(rings_, rings_size_);
  if (fd_ >= 0) close(fd_);  // ends whatever is still in the ring
}

int FutexRing::Submit(const struct io_uring_sqe& entry) {
  unsigned tail = *sq_tail_;  // only this thread writes it
  unsigned index = tail & sq_mask_;
  static_cast<struct io_uring_sqe*>(sqes_)[index] = entry;
  sq_array_[index] = index;
  __atomic_store_n(sq_tail_, tail + 1, __ATOMIC_RELEASE);
  long n;
  do {
    n = syscall(__NR_io_uring_enter, fd_, 1, 0, 0, nullptr, 0);
  } while (n < 0 && errno == EINTR);
  if (n == 1) return 0;
  int err = n < 0 ? errno : EAGAIN;
  // Not taken: withdraw it, or a later Submit would send it instead.
  if (__atomic_load_n(sq_head_, __ATOMIC_ACQUIRE) == tail)
    __atomic_store_n(sq_tail_, tail, __ATOMIC_RELEASE);
  return err;
}

int FutexRing::Arm(uint64_t key, const int32_t* word) {
  struct io_uring_sqe e;
  memset(&e, 0, sizeof e);
  e.opcode = kOpFutexWait;
  e.fd = kFutex2SizeU32;
  e.addr = reinterpret_cast<uintptr_t>(word);
  e.off = 0;  // the value the word must still hold for the wait to sleep
  e.addr3 = kFutexMatchAny;
  e.user_data = key;
  return Submit(e);
}

int FutexRing::Disarm(uint64_t key) {
  struct io_uring_sqe e;
  memset(&e, 0, sizeof e);
  e.opcode = IORING_OP_ASYNC_CANCEL;
  e.addr = key;
  e.user_data = 0;  // its own completion is ignored
  return Submit(e);
}

void FutexRing::Reap(std::vector<Completion>* out) {
  const struct io_uring_cqe* cqes = static_cast<const struct io_uring_cqe*>(cqes_);
  for (;;) {
    unsigned head = *cq_head_;
    unsigned tail = __atomic_load_n(cq_tail_, __ATOMIC_ACQUIRE);
    for (; head != tail; head++) {
      const struct io_uring_cqe& c = cqes[head & cq_mask_];
      if (c.user_data != 0) out->push_back(Completion{c.user_data, c.res});
    }
    __atomic_store_n(cq_head_, head, __ATOMIC_RELEASE);
    // Completions that did not fit wait in the kernel until asked for.
    if (!(__atomic_load_n(sq_flags_, __ATOMIC_ACQUIRE) & IORING_SQ_CQ_OVERFLOW)) return;
    syscall(__NR_io_uring_enter, fd_, 0, 0, IORING_ENTER_GETEVENTS, nullptr, 0);
  }
}

// ---- RingWaits ------------------------------------------------------------

uint64_t RingWaits::RingKey() const { return key_ | (arming_ << kIdBits); }

int RingWaits::Arm(FutexRing* ring) {
  if (!registered_) {
    AddWaiter(sem_);  // before arming: a post from now on wakes the futex
    registered_ = true;
  }
  if (armed_) return 0;
  arming_ = (arming_ + 1) & kArmingMask;
  int err = ring->Arm(RingKey(), ValueWord(sem_));
  armed_ = err == 0;
  return err;
}

void RingWaits::StopWaiting(FutexRing* ring) {
  if (armed_ && ring != nullptr) ring->Disarm(RingKey());
  armed_ = false;
  if (registered_) RemoveWaiter(sem_);
  registered_ = false;
}

int RingWaits::Enqueue(double id, int64_t deadline_ns, FutexRing* ring) {
  int err = Arm(ring);
  if (err != 0) {
    if (pending_.empty()) StopWaiting(ring);
    return err;
  }
  pending_.push_back(Pending{id, deadline_ns});
  return 0;
}

bool RingWaits::Cancel(double id, FutexRing* ring) {
  for (auto it = pending_.begin(); it != pending_.end(); ++it) {
    if (it->id == id) {
      pending_.erase(it);
      if (pending_.empty()) StopWaiting(ring);
      return true;
    }
  }
  return false;
}

bool RingWaits::Completed(uint64_t ring_key) {
  if (!armed_ || ring_key != RingKey()) return false;
  armed_ = false;
  return true;
}

void RingWaits::Service(FutexRing* ring, int64_t now_ns, std::vector<Settled>* out) {
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (it->deadline_ns <= now_ns) {
      out->push_back(Settled{it->id, ETIMEDOUT});
      it = pending_.erase(it);
    } else {
      ++it;
    }
  }
  int err = 0;
  while (!pending_.empty()) {
    err = TryWait(sem_);
    if (err == EAGAIN) break;
    out->push_back(Settled{pending_.front().id, err});  // 0: the token is this wait's
    pending_.pop_front();
    if (err != 0) break;
  }
  if (!pending_.empty() && err == EAGAIN) err = Arm(ring);  // wait for the next post
  if (pending_.empty() || err != 0) {
    // Done, or a failure that ends every remaining wait alike.
    for (const Pending& p : pending_) out->push_back(Settled{p.id, err});
    pending_.clear();
    StopWaiting(ring);
  }
}

size_t RingWaits::Stop(FutexRing* ring) {
  size_t outstanding = pending_.size();
  pending_.clear();
  StopWaiting(ring);
  return outstanding;
}

int64_t RingWaits::NextDeadline() const {
  int64_t next = kForever;
  for (const Pending& p : pending_) next = std::min(next, p.deadline_ns);
  return next;
}

}  // namespace nsem

#include "glibc_compat.h"

#include "waiter.h"

#include <errno.h>
#include <time.h>

#include <algorithm>

#include "semaphore.h"

namespace nsem {

namespace {
// How long the thread blocks before it looks at its queue again: the bound on
// how late it notices a new earlier deadline, a cancellation or a close.
constexpr int64_t kSliceNs = 20 * 1000000;
// How long an idle thread stays for the next wait before it ends.
constexpr int64_t kLingerNs = 1000 * 1000000;

struct timespec MonotonicTimespec(int64_t ns) {
  struct timespec ts;
  ts.tv_sec = static_cast<time_t>(ns / 1000000000);
  ts.tv_nsec = static_cast<long>(ns % 1000000000);
  return ts;
}
}  // namespace

SharedSemaphore::SharedSemaphore(sem_t* sem, Notify notify, void* context)
    : sem_(sem), notify_(notify), context_(context) {
  pthread_mutex_init(&mu_, nullptr);
  pthread_condattr_t attr;
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  pthread_cond_init(&wake_, &attr);
  pthread_condattr_destroy(&attr);
}

SharedSemaphore::~SharedSemaphore() {
  Close(sem_);
  pthread_cond_destroy(&wake_);
  pthread_mutex_destroy(&mu_);
}

void SharedSemaphore::Ref() { refs_.fetch_add(1, std::memory_order_relaxed); }

void SharedSemaphore::Unref() {
  if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
}

int SharedSemaphore::Enqueue(double id, int64_t deadline_ns) {
  pthread_mutex_lock(&mu_);
  int err = 0;
  if (!thread_started_) {
    pthread_t thread;
    refs_++;  // the thread's own reference
    err = pthread_create(&thread, nullptr, ThreadMain, this);
    if (err == 0) {
      pthread_detach(thread);
      thread_started_ = true;
    } else {
      refs_--;
    }
  }
  if (err == 0) {
    pending_.push_back(Pending{id, deadline_ns});
    pthread_cond_signal(&wake_);
  }
  pthread_mutex_unlock(&mu_);
  return err;
}

bool SharedSemaphore::Cancel(double id) {
  pthread_mutex_lock(&mu_);
  bool found = false;
  for (auto it = pending_.begin(); it != pending_.end(); ++it) {
    if (it->id == id) {
      pending_.erase(it);
      found = true;
      break;
    }
  }
  for (auto it = settled_.begin(); !found && it != settled_.end(); ++it) {
    if (it->id == id) {
      if (it->err == 0) sem_post(sem_);  // the token must not be lost
      settled_.erase(it);
      found = true;
      break;
    }
  }
  pthread_mutex_unlock(&mu_);
  return found;
}

void SharedSemaphore::Drain(std::vector<Settled>* out) {
  pthread_mutex_lock(&mu_);
  out->swap(settled_);
  settled_.clear();
  notified_ = false;
  pthread_mutex_unlock(&mu_);
}

size_t SharedSemaphore::Stop() {
  pthread_mutex_lock(&mu_);
  size_t outstanding = pending_.size() + settled_.size();
  for (const Settled& s : settled_) {
    if (s.err == 0) sem_post(sem_);
  }
  settled_.clear();
  pending_.clear();
  stopping_ = true;
  pthread_cond_signal(&wake_);
  pthread_mutex_unlock(&mu_);
  return outstanding;
}

void* SharedSemaphore::ThreadMain(void* self) {
  static_cast<SharedSemaphore*>(self)->Run();
  return nullptr;
}

void SharedSemaphore::SettleLocked(double id, int err) {
  settled_.push_back(Settled{id, err});
  if (!notified_) {
    notified_ = true;
    notify_(context_, this);
  }
}

void SharedSemaphore::ExpireLocked(int64_t now_ns) {
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (it->deadline_ns <= now_ns) {
      SettleLocked(it->id, ETIMEDOUT);
      it = pending_.erase(it);
    } else {
      ++it;
    }
  }
}

void SharedSemaphore::Run() {
  pthread_mutex_lock(&mu_);
  while (!stopping_) {
    if (pending_.empty()) {
      struct timespec linger = MonotonicTimespec(MonotonicNowNs() + kLingerNs);
      if (pthread_cond_timedwait(&wake_, &mu_, &linger) == ETIMEDOUT && pending_.empty()) {
        break;  // idle: the next wait starts a new thread
      }
      continue;
    }
    int64_t now = MonotonicNowNs();
    ExpireLocked(now);
    if (pending_.empty()) continue;
    int64_t wake_at = now + kSliceNs;
    for (const Pending& p : pending_) wake_at = std::min(wake_at, p.deadline_ns);

    pthread_mutex_unlock(&mu_);
    int err = WaitUntil(sem_, wake_at);
    pthread_mutex_lock(&mu_);

    if (err == 0) {
      if (stopping_ || pending_.empty()) {
        sem_post(sem_);  // nobody wants it any more: give it back
      } else {
        SettleLocked(pending_.front().id, 0);
        pending_.pop_front();
      }
    } else if (err != ETIMEDOUT) {
      while (!pending_.empty()) {
        SettleLocked(pending_.front().id, err);
        pending_.pop_front();
      }
    }
  }
  thread_started_ = false;
  pthread_mutex_unlock(&mu_);
  Unref();
}

}  // namespace nsem

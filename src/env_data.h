// What the binding keeps per environment (the addon may be loaded by the
// main thread and by worker threads, each its own environment), and what an
// id stands for: an open semaphore (Handle) or a gauge's share sum.
#ifndef NAMED_SEMAPHORE_ENV_DATA_H
#define NAMED_SEMAPHORE_ENV_DATA_H

#include <node_api.h>
#include <semaphore.h>
#include <stddef.h>
#include <stdint.h>

#include <atomic>
#include <string>

#include "futex_ring.h"
#include "handle_table.h"
#include "mapped_buffer.h"
#include "share_sum.h"
#include "waiter.h"

namespace addon {

using nsem::SharedSemaphore;
using nsem::WaiterPool;

struct LoopWaits;  // async_waits.h

// The call slots: a Float64Array shared with JavaScript, through which the
// hot paths (post, tryWait, sum, postAndSum) take their arguments and give
// their result.
// JavaScript writes the handle's id into slot 0 and calls the function with
// no arguments; sum leaves its total in slot 1. Unpacking an id argument
// costs about 6 ns and creating a number result about 10, where the whole of
// a post() is 25. Nothing can run between the write and the call, or the
// call and the read.
struct CallSlots {
  static constexpr size_t kCount = 2;
  double values[kCount] = {};
  // The EnvData's and the ArrayBuffer's finalizer's, which may run first at
  // teardown. A buffer that JavaScript detached (transfer()) may live on,
  // with this memory, in another buffer no finalizer of ours follows: then
  // the EnvData keeps its reference for good (see TearDown).
  std::atomic<int> refs{2};
  void Unref() {
    if (refs.fetch_sub(1) == 1) delete this;
  }
};

// Per-environment state (the addon may be loaded by several worker threads),
// bound as the data of every module function.
struct EnvData {
  napi_env env = nullptr;
  // The call slots, in an external ArrayBuffer held until teardown. Where
  // the runtime allows none, they live in an ordinary one, whose memory V8
  // owns (slots is nullptr): then each call first checks it is attached.
  CallSlots* slots = nullptr;
  napi_ref slots_buffer = nullptr;
  LoopWaits* loop = nullptr;
  WaiterPool* pool = nullptr;  // waiter threads, where there is no ring
  // Carries settled waits from waiter threads to JavaScript.
  napi_threadsafe_function tsfn = nullptr;
  napi_ref settle_fn = nullptr;  // JavaScript settle(id, err) -> whether it took the wait
  // Waits not yet settled in JavaScript; while any are, the process stays up
  // (through the threadsafe function's reference, for waits of either kind).
  size_t waits_in_flight = 0;
  HandleTable handles;
  size_t tokens_alive = 0;  // { id } objects not yet finalized; each points here
  bool torn_down = false;
  ~EnvData() {
    if (slots != nullptr) slots->Unref();
  }
};

// An open semaphore.
struct Handle : Bound {
  static constexpr Kind kKind = Kind::kSemaphore;
  Handle(EnvData* d, sem_t* sem, const char* name, bool owned_share)
      : Bound(kKind),
        data(d),
        shared(new SharedSemaphore(sem)),
        ring_waits(sem),
        share_name(owned_share ? name : "") {}
  size_t Release() override;
  EnvData* const data;
  SharedSemaphore* const shared;
  nsem::RingWaits ring_waits;          // waits served by the ring
  WaiterPool::Queue* queue = nullptr;  // waits served by threads, once there is one
  MappedBuffer<SharedSemaphore> word;  // the value word's, detached at close
  const std::string share_name;        // set for a gauge's own share
};

// The sum over a gauge's shares.
struct SumHandle : Bound {
  static constexpr Kind kKind = Kind::kSum;
  explicit SumHandle(EnvData* d) : Bound(kKind), data(d) {}
  size_t Release() override;  // ~ShareSum unmaps (when no buffer holds the words)
  EnvData* const data;
  nsem::ShareSum sum;
  MappedBuffer<nsem::SumWords> words;  // over sum.words(), detached at close
};

constexpr int kBadHandle = EBADF;  // an id that is not open: closed, stale, forged
constexpr double kMaxSafeInteger = 9007199254740991.0;  // the largest id or wait id

// The open handle of kind T with this id, or nullptr.
template <typename T>
T* FindById(EnvData* data, uint64_t id) {
  Bound* b = data->handles.Find(id);
  return b != nullptr && b->kind == T::kKind ? static_cast<T*>(b) : nullptr;
}

// Counts waits queued and not yet settled in JavaScript: while there are
// any, they keep the event loop alive.
void ChangeWaitsInFlight(EnvData* data, ptrdiff_t delta);
// Closes an id if it is open; idempotent.
void CloseId(EnvData* data, uint64_t id);
// Frees the EnvData once the environment is torn down and no { id } object
// points to it any more.
void MaybeFreeEnvData(EnvData* data);

}  // namespace addon

#endif

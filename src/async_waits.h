// Async waits, from queueing to the settle() call in JavaScript, by either
// mechanism: the event loop's own FutexRing, or the environment's
// WaiterPool. Each settled wait's token is delivered to JavaScript or posted
// back (see Deliver in async_waits.cc).
#ifndef NAMED_SEMAPHORE_ASYNC_WAITS_H
#define NAMED_SEMAPHORE_ASYNC_WAITS_H

#include <node_api.h>
#include <stdint.h>
#include <uv.h>

#include <vector>

#include "env_data.h"

namespace addon {

// The ring's side: async waits served on the event loop's own thread
// through a FutexRing, where the kernel allows it (elsewhere the EnvData's
// WaiterPool serves them). Outlives EnvData: its libuv handles close after
// the environment's teardown.
struct LoopWaits {
  explicit LoopWaits(EnvData* d) : data(d) {}
  EnvData* data;                    // nullptr once torn down
  nsem::FutexRing* ring = nullptr;  // nullptr: not started, or not available
  bool refused = false;             // waits use threads for good
  int64_t retry_at = 0;             // after a transient failure to start
  uv_poll_t poll;                   // the ring's fd, in the loop's epoll
  uv_timer_t timer;                 // the earliest deadline of a pending wait
  int64_t timer_due = nsem::kForever;
  napi_async_context async_context = nullptr;
  std::vector<uint64_t> waiting;  // ids of handles with ring waits pending
  napi_ref resource = nullptr;    // the async resource of its callbacks
  napi_async_cleanup_hook_handle cleanup = nullptr;
  int open_uv_handles = 0;
};

// The environment's ring, started on first use; nullptr where waits use
// threads.
nsem::FutexRing* Ring(EnvData* data);
// Queues an async wait on handle h (id `id`): 0, or an errno.
int QueueWait(EnvData* data, Handle* h, uint64_t id, double wait_id, int64_t deadline_ns);
// Forgets a queued wait, posting back a token taken for it; whether it was
// outstanding.
bool CancelWait(EnvData* data, Handle* h, double wait_id);
// Ends handle h's waits, posting back tokens taken for them; how many.
size_t EndWaits(EnvData* data, Handle* h);

// The WaiterPool's notification, and the threadsafe function's call that
// follows it on the JavaScript thread.
void NotifySettled(void* context);
void CallSettle(napi_env env, napi_value, void* context, void*);

// At teardown: stops the ring's callbacks (after every handle closed), then,
// as the async cleanup hook, closes its libuv handles and frees it.
void StopLoopWaits(EnvData* data);
void CloseLoopWaits(napi_async_cleanup_hook_handle hook, void* arg);

}  // namespace addon

#endif

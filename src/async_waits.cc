#include "async_waits.h"

#include <stdlib.h>
#include <string.h>

#include <algorithm>

#include "semaphore.h"

namespace addon {

namespace {
constexpr int64_t kRingRetryNs = 1000 * 1000000;
void ServiceAndSettle(LoopWaits* loop, const std::vector<Handle*>& handles);
void ScheduleDeadlines(LoopWaits* loop);
}  // namespace

// ---- delivery to JavaScript ------------------------------------------------------

// Called on a waiter thread with the pool's lock held: CallSettle follows.
// (If the call fails, the environment is going away: WaiterPool::Shutdown
// posts the tokens back.)
void NotifySettled(void* context) {
  EnvData* data = static_cast<EnvData*>(context);
  napi_call_threadsafe_function(data->tsfn, nullptr, napi_tsfn_nonblocking);
}

namespace {

// Whether JavaScript can run in this environment: not while a worker is
// being terminated. (napi_coerce_to_bool, like every call that may run
// JavaScript, refuses then.)
bool CanRunJs(napi_env env) {
  napi_value undefined, ignored;
  return napi_get_undefined(env, &undefined) == napi_ok &&
         napi_coerce_to_bool(env, undefined, &ignored) == napi_ok;
}

// Posts back the tokens of waits that JavaScript will never see.
void GiveBack(const std::vector<nsem::Settled>& settled,
              const std::vector<SharedSemaphore*>& sems) {
  for (size_t i = 0; i < settled.size(); i++) {
    if (settled[i].err == 0) nsem::Post(sems[i]->sem(), 1);
  }
}

// Hands settled waits to JavaScript's settle(id, err), in order, and posts
// back every token it did not take: settle() returns false for a wait it
// no longer knows (aborted, or its handle closed, perhaps by an earlier
// settle() of this very batch). If the environment is being torn down
// meanwhile (a terminated worker), no promise of the batch can reach user
// code any more: all of its tokens go back. An exception from settle() (ours
// throws only what the caller's AbortSignal throws) is uncaught, as from any
// callback, and raised once every token is where it belongs: with no
// 'uncaughtException' handler, the process ends there.
// `sems` holds a reference on each wait's semaphore: settle() may close its
// handle while later tokens still have to go back to it.
void Deliver(napi_env env, EnvData* data, const std::vector<nsem::Settled>& settled,
             const std::vector<SharedSemaphore*>& sems) {
  std::vector<bool> taken(settled.size(), false);
  std::vector<napi_value> thrown;
  bool dying = false;
  napi_value fn, undefined, argv[2];
  if (data->settle_fn == nullptr ||
      napi_get_reference_value(env, data->settle_fn, &fn) != napi_ok || fn == nullptr ||
      napi_get_undefined(env, &undefined) != napi_ok) {
    dying = true;
  }
  for (size_t i = 0; i < settled.size() && !dying; i++) {
    napi_create_double(env, settled[i].id, &argv[0]);
    napi_create_int32(env, settled[i].err, &argv[1]);
    napi_value result;
    if (napi_call_function(env, undefined, fn, 2, argv, &result) == napi_ok) {
      // Only false gives the token back: a settle() that resolved the
      // promise and returned anything else must not have it posted twice.
      bool took = true;
      napi_get_value_bool(env, result, &took);
      taken[i] = took;
      continue;
    }
    bool threw = false;
    napi_value exception = nullptr;
    if (napi_is_exception_pending(env, &threw) == napi_ok && threw) {
      napi_get_and_clear_last_exception(env, &exception);
    }
    if (!threw || !CanRunJs(env)) {
      dying = true;  // JavaScript could not run, or stopped for good mid-call
      break;
    }
    taken[i] = true;  // settle() took it, then the caller's signal threw
    thrown.push_back(exception);
  }
  if (dying) {
    GiveBack(settled, sems);
    return;
  }
  for (size_t i = 0; i < settled.size(); i++) {
    if (settled[i].err == 0 && !taken[i]) nsem::Post(sems[i]->sem(), 1);
  }
  {
    for (napi_value exception : thrown) napi_fatal_exception(env, exception);
  }
}

}  // namespace

// The tsfn's call, on the JavaScript thread: waits settled by waiter
// threads. env is nullptr when the environment is going away, after
// WaiterPool::Shutdown has posted back whatever was left.
void CallSettle(napi_env env, napi_value, void* context, void*) {
  if (env == nullptr) return;
  EnvData* data = static_cast<EnvData*>(context);
  std::vector<nsem::SettledWait> drained;
  data->pool->Drain(&drained);
  if (drained.empty()) return;
  std::vector<nsem::Settled> settled;
  std::vector<SharedSemaphore*> sems;
  for (const nsem::SettledWait& s : drained) {
    settled.push_back(s.wait);
    sems.push_back(s.sem);
  }
  ChangeWaitsInFlight(data, -static_cast<ptrdiff_t>(settled.size()));
  Deliver(env, data, settled, sems);
  for (SharedSemaphore* s : sems) s->Unref();
}

// ---- waits served by the event loop (LoopWaits) -----------------------------

namespace {

void OnDeadline(uv_timer_t* timer) {
  LoopWaits* loop = static_cast<LoopWaits*>(timer->data);
  loop->timer_due = nsem::kForever;
  std::vector<Handle*> handles;
  for (uint64_t id : loop->waiting) handles.push_back(FindById<Handle>(loop->data, id));
  ServiceAndSettle(loop, handles);
}

// Drops handles that no longer wait from loop->waiting and sets the timer
// for the earliest deadline of those that do.
void ScheduleDeadlines(LoopWaits* loop) {
  int64_t due = nsem::kForever;
  auto& ids = loop->waiting;
  for (size_t i = 0; i < ids.size();) {
    Handle* h = FindById<Handle>(loop->data, ids[i]);
    if (h == nullptr || h->ring_waits.idle()) {
      ids[i] = ids.back();
      ids.pop_back();
      continue;
    }
    due = std::min(due, h->ring_waits.NextDeadline());
    i++;
  }
  if (due == loop->timer_due) return;
  loop->timer_due = due;
  if (due == nsem::kForever) {
    uv_timer_stop(&loop->timer);
    return;
  }
  int64_t left_ns = std::max<int64_t>(0, due - nsem::MonotonicNowNs());
  uv_timer_start(&loop->timer, OnDeadline, static_cast<uint64_t>((left_ns + 999999) / 1000000), 0);
}

// Serves the ring waits of `handles` (nullptr entries are skipped) and hands
// what settled to JavaScript, whose promise reactions then run.
void ServiceAndSettle(LoopWaits* loop, const std::vector<Handle*>& handles) {
  EnvData* data = loop->data;
  std::vector<nsem::Settled> settled;
  // Each wait's semaphore, referenced: settle() may close its handle while
  // later tokens still have to go back to it.
  std::vector<SharedSemaphore*> sems;
  int64_t now = nsem::MonotonicNowNs();
  for (Handle* h : handles) {
    if (h == nullptr) continue;
    h->ring_waits.Service(loop->ring, now, &settled);
    while (sems.size() < settled.size()) {
      h->shared->Ref();
      sems.push_back(h->shared);
    }
  }
  ScheduleDeadlines(loop);
  if (settled.empty()) return;
  struct DropRefs {
    std::vector<SharedSemaphore*>& sems;
    ~DropRefs() {
      for (SharedSemaphore* s : sems) s->Unref();
    }
  } drop_refs{sems};
  ChangeWaitsInFlight(data, -static_cast<ptrdiff_t>(settled.size()));
  napi_env env = data->env;
  napi_handle_scope handle_scope;
  napi_callback_scope callback_scope;
  napi_value resource;
  if (napi_open_handle_scope(env, &handle_scope) != napi_ok) {
    GiveBack(settled, sems);
    return;
  }
  if (napi_get_reference_value(env, loop->resource, &resource) == napi_ok &&
      napi_open_callback_scope(env, resource, loop->async_context, &callback_scope) == napi_ok) {
    Deliver(env, data, settled, sems);
    napi_close_callback_scope(env, callback_scope);  // runs the promise reactions
  } else {
    GiveBack(settled, sems);
  }
  napi_close_handle_scope(env, handle_scope);
}

void OnRingReadable(uv_poll_t* poll, int, int) {
  LoopWaits* loop = static_cast<LoopWaits*>(poll->data);
  std::vector<nsem::FutexRing::Completion> done;
  loop->ring->Reap(&done);
  std::vector<Handle*> handles;
  for (const nsem::FutexRing::Completion& c : done) {
    Handle* h = FindById<Handle>(loop->data, nsem::RingWaits::HandleId(c.key));
    if (h != nullptr && h->ring_waits.Completed(c.key)) handles.push_back(h);
  }
  ServiceAndSettle(loop, handles);
}

}  // namespace

// The environment's ring, started on first use; nullptr where waits use
// threads: no ring is possible here, or NAMED_SEMAPHORE_WAITER=thread. Each
// thread (main or worker) has its own, on its own event loop.
nsem::FutexRing* Ring(EnvData* data) {
  LoopWaits* loop = data->loop;
  if (loop->ring != nullptr || loop->refused) return loop->ring;
  // After a transient failure: threads serve until their waits are done, so
  // one handle's waits are never split between the two, and the next try
  // comes a second later at the soonest.
  if (!data->pool->Idle() || nsem::MonotonicNowNs() < loop->retry_at) return nullptr;
  loop->refused = true;
  const char* choice = getenv("NAMED_SEMAPHORE_WAITER");
  if (choice != nullptr && strcmp(choice, "thread") == 0) return nullptr;
  napi_env env = data->env;
  uv_loop_t* uv = nullptr;
  if (napi_get_uv_event_loop(env, &uv) != napi_ok) return nullptr;
  bool transient = false;
  nsem::FutexRing* ring = nsem::FutexRing::Create(&transient);
  if (ring == nullptr) {
    loop->refused = !transient;  // out of descriptors, say: try again later
    loop->retry_at = nsem::MonotonicNowNs() + kRingRetryNs;
    return nullptr;
  }
  napi_value resource, name;
  if (napi_create_object(env, &resource) != napi_ok ||
      napi_create_string_utf8(env, "named-semaphore:wait", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_async_init(env, resource, name, &loop->async_context) != napi_ok) {
    delete ring;
    return nullptr;
  }
  napi_create_reference(env, resource, 1, &loop->resource);
  if (uv_poll_init(uv, &loop->poll, ring->fd()) != 0) {
    napi_async_destroy(env, loop->async_context);
    napi_delete_reference(env, loop->resource);
    delete ring;
    return nullptr;
  }
  uv_timer_init(uv, &loop->timer);
  loop->poll.data = loop;
  loop->timer.data = loop;
  loop->open_uv_handles = 2;
  uv_poll_start(&loop->poll, UV_READABLE, OnRingReadable);
  // Neither keeps the process up: pending waits do that (ChangeWaitsInFlight).
  uv_unref(reinterpret_cast<uv_handle_t*>(&loop->poll));
  uv_unref(reinterpret_cast<uv_handle_t*>(&loop->timer));
  loop->ring = ring;
  return ring;
}

// Stops the loop's callbacks; runs in the environment's teardown, after every
// handle has closed (which ended its ring waits).
void StopLoopWaits(EnvData* data) {
  LoopWaits* loop = data->loop;
  if (loop->ring != nullptr) {
    uv_poll_stop(&loop->poll);
    uv_timer_stop(&loop->timer);
    napi_async_destroy(data->env, loop->async_context);
    napi_delete_reference(data->env, loop->resource);
  }
  loop->data = nullptr;
}

// The async cleanup hook, after TearDown: closes the libuv handles, then
// the ring, then frees the LoopWaits.
void CloseLoopWaits(napi_async_cleanup_hook_handle hook, void* arg) {
  LoopWaits* loop = static_cast<LoopWaits*>(arg);
  if (loop->open_uv_handles == 0) {
    napi_remove_async_cleanup_hook(hook);
    delete loop->ring;
    delete loop;
    return;
  }
  auto on_closed = [](uv_handle_t* h) {
    LoopWaits* loop = static_cast<LoopWaits*>(h->data);
    if (--loop->open_uv_handles > 0) return;
    napi_remove_async_cleanup_hook(loop->cleanup);
    delete loop->ring;  // after the poll handle: its fd stays valid until then
    delete loop;
  };
  uv_close(reinterpret_cast<uv_handle_t*>(&loop->poll), on_closed);
  uv_close(reinterpret_cast<uv_handle_t*>(&loop->timer), on_closed);
}

// ---- queueing and cancelling, by either mechanism ------------------------------

int QueueWait(EnvData* data, Handle* h, uint64_t id, double wait_id, int64_t deadline) {
  int err;
  if (nsem::FutexRing* ring = Ring(data)) {
    err = h->ring_waits.Enqueue(wait_id, deadline, ring);
    auto& waiting = data->loop->waiting;
    if (err == 0 && std::find(waiting.begin(), waiting.end(), id) == waiting.end()) {
      waiting.push_back(id);
    }
    if (err == 0 && deadline < data->loop->timer_due) ScheduleDeadlines(data->loop);
  } else {
    if (h->queue == nullptr) h->queue = data->pool->NewQueue(h->shared);
    err = data->pool->Enqueue(h->queue, wait_id, deadline);
  }
  if (err == 0) ChangeWaitsInFlight(data, 1);
  return err;
}

bool CancelWait(EnvData* data, Handle* h, double wait_id) {
  bool found = h->ring_waits.Cancel(wait_id, data->loop->ring) ||
               (h->queue != nullptr && data->pool->Cancel(h->queue, wait_id));
  if (found) ChangeWaitsInFlight(data, -1);
  return found;
}

size_t EndWaits(EnvData* data, Handle* h) {
  size_t outstanding = h->ring_waits.Stop(data->loop->ring);
  if (h->queue != nullptr) outstanding += data->pool->DeleteQueue(h->queue);
  h->queue = nullptr;
  return outstanding;
}

}  // namespace addon

// The only file that speaks N-API: unpacks arguments, calls the core, and
// ties native lifetimes to JavaScript ones.
//
// The binding returns errno values rather than throwing: lib/errors.ts turns
// them into errors, so there is one place for error shapes. Arguments are
// checked again here (cheaply), so that no call from JavaScript, however
// wrong, can crash the process.
//
// A handle is a number passed to module functions: close(id), wait(id, ...)
// One set of functions for every handle keeps each JavaScript call site
// monomorphic, which V8 needs to call native code directly; with functions
// bound to each handle, a call site that has seen two handles costs twice as
// much. The table below checks every id, so a forged or stale one is EBADF.
// open() returns { id, word? }, an object whose collection closes the handle
// (word: see nsem::ValueWord). The hot paths take their id through the call
// slots instead of an argument (see CallSlots).
#include <arpa/inet.h>
#include <errno.h>
#include <semaphore.h>
#include <stdint.h>
#include <string.h>

#include <limits.h>
#include <math.h>

#include <algorithm>
#include <atomic>
#include <string>
#include <vector>

#include <napi.h>
#include <uv.h>

#include "futex_ring.h"
#include "listen_queue.h"
#include "semaphore.h"
#include "share_sum.h"
#include "waiter.h"

namespace {

using nsem::SharedSemaphore;

// What an id stands for: an open semaphore or a gauge's share sum.
struct Bound {
  enum class Kind { kSemaphore, kSum };
  explicit Bound(Kind k) : kind(k) {}
  virtual ~Bound() = default;
  // Releases the native resources. Returns the number of async waits that
  // ended with it.
  virtual size_t Release() = 0;
  const Kind kind;
};

// Open handles by id. An id is serial * 2^20 + slot: the slot finds the
// entry, and the serial, new for every open, tells a stale id from the
// slot's current one. Ids stay below 2^53, exact in a JavaScript number.
// A semaphore's slot also holds its sem_t*, so the hot paths find it in one
// step rather than through a chain of pointers.
class HandleTable {
 public:
  static constexpr int kSlotBits = 20;
  static constexpr uint64_t kSlotMask = (uint64_t{1} << kSlotBits) - 1;
  static constexpr uint64_t kMaxSerial = (uint64_t{1} << (53 - kSlotBits)) - 1;

  // The new id, or 0 (never an id) when every slot is taken. `sem` is set
  // for a semaphore.
  uint64_t Add(Bound* b, sem_t* sem) {
    uint64_t slot;
    if (!free_.empty()) {
      slot = free_.back();
      free_.pop_back();
    } else if (slots_.size() <= kSlotMask) {
      slot = slots_.size();
      slots_.push_back(Slot());
    } else {
      return 0;
    }
    serial_ = serial_ % kMaxSerial + 1;
    uint64_t id = (serial_ << kSlotBits) | slot;
    slots_[slot] = Slot{id, sem, b};
    return id;
  }

  Bound* Find(uint64_t id) const {
    const Slot* s = SlotOf(id);
    return s != nullptr ? s->bound : nullptr;
  }

  // The semaphore of an open semaphore handle, or nullptr.
  sem_t* FindSemaphore(uint64_t id) const {
    const Slot* s = SlotOf(id);
    return s != nullptr ? s->sem : nullptr;
  }

  // Takes the entry out; nullptr if the id is not open.
  Bound* Remove(uint64_t id) {
    Bound* b = Find(id);
    if (b != nullptr) {
      slots_[id & kSlotMask] = Slot();
      free_.push_back(static_cast<uint32_t>(id & kSlotMask));
    }
    return b;
  }

  std::vector<uint64_t> Ids() const {
    std::vector<uint64_t> ids;
    for (const Slot& s : slots_) {
      if (s.bound != nullptr) ids.push_back(s.id);
    }
    return ids;
  }

 private:
  struct Slot {
    uint64_t id = 0;
    sem_t* sem = nullptr;
    Bound* bound = nullptr;
  };
  // The slot that holds `id`, if the id is open.
  const Slot* SlotOf(uint64_t id) const {
    uint64_t slot = id & kSlotMask;
    return slot < slots_.size() && slots_[slot].id == id ? &slots_[slot] : nullptr;
  }

  std::vector<Slot> slots_;
  std::vector<uint32_t> free_;
  uint64_t serial_ = 0;
};

struct EnvData;

// Async waits served on the event loop's own thread through a FutexRing,
// where the kernel allows it; elsewhere each semaphore has a waiter thread.
// Outlives EnvData: its libuv handles close after the environment's teardown.
struct LoopWaits {
  explicit LoopWaits(EnvData* d) : data(d) {}
  EnvData* data;                    // nullptr once torn down
  nsem::FutexRing* ring = nullptr;  // nullptr: not started, or not available
  bool started = false;
  uv_poll_t poll;    // the ring's fd, in the loop's epoll
  uv_timer_t timer;  // the earliest deadline of a pending wait
  int64_t timer_due = nsem::kForever;
  napi_async_context async_context = nullptr;
  std::vector<uint64_t> waiting;  // ids of handles with ring waits pending
  napi_ref resource = nullptr;    // the async resource of its callbacks
  napi_async_cleanup_hook_handle cleanup = nullptr;
  int open_uv_handles = 0;
};

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
  // Carries settled waits from waiter threads to JavaScript.
  napi_threadsafe_function tsfn = nullptr;
  napi_ref settle_fn = nullptr;  // JavaScript settle(id, err)
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

// The EnvData of the first load of the addon on this thread (Node runs one
// environment per thread; a second load has its own napi_env, and finds its
// EnvData through napi_get_cb_info): the hot paths then find it without
// napi_get_cb_info, which costs them about 4 ns of their 25.
// Initial-exec: read with one instruction rather than a call to
// __tls_get_addr, another 2-3 ns. It takes 8 bytes of the static TLS that
// glibc reserves for libraries loaded later; were that used up, loading the
// addon fails with "cannot allocate memory in static TLS block" (lib/native.ts
// says what to do). musl refuses initial-exec TLS in a library it loads later.
#if defined(__GLIBC__)
#define NSEM_INITIAL_EXEC __attribute__((tls_model("initial-exec")))
#else
#define NSEM_INITIAL_EXEC
#endif
thread_local EnvData* first_env_here NSEM_INITIAL_EXEC = nullptr;

// An open semaphore.
struct Handle : Bound {
  static constexpr Kind kKind = Kind::kSemaphore;
  Handle(EnvData* d, sem_t* sem, const char* name, bool owned_share)
      : Bound(kKind),
        data(d),
        shared(new SharedSemaphore(sem, NotifySettled, d)),
        ring_waits(sem),
        share_name(owned_share ? name : "") {}
  size_t Release() override;
  static void NotifySettled(void* context, SharedSemaphore* shared);
  EnvData* const data;
  SharedSemaphore* const shared;  // and its waiter thread, where there is no ring
  nsem::RingWaits ring_waits;     // waits served by the ring
  const std::string share_name;   // set for a gauge's own share
};

size_t Handle::Release() {
  if (!share_name.empty()) {
    // A gauge share dies with its owner: give its count back, drop its name.
    nsem::Drain(shared->sem());
    nsem::Unlink(share_name.c_str());
  }
  size_t outstanding = ring_waits.Stop(data->loop->ring) + shared->Stop();
  shared->Unref();
  return outstanding;
}

// The sum over a gauge's shares.
struct SumHandle : Bound {
  static constexpr Kind kKind = Kind::kSum;
  SumHandle(sem_t* generation, const nsem::Trust& trust) : Bound(kKind), sum(generation, trust) {}
  size_t Release() override { return 0; }  // ~ShareSum closes the semaphores
  nsem::ShareSum sum;
};

constexpr int kBadHandle = EBADF;  // an id that is not open: closed, stale, forged
constexpr double kMaxSafeInteger = 9007199254740991.0;  // the largest id or wait id

void ChangeWaitsInFlight(EnvData* data, ptrdiff_t delta) {
  size_t before = data->waits_in_flight;
  data->waits_in_flight += delta;
  if (data->torn_down) return;
  if (before == 0 && data->waits_in_flight > 0) {
    napi_ref_threadsafe_function(data->env, data->tsfn);
  } else if (before > 0 && data->waits_in_flight == 0) {
    napi_unref_threadsafe_function(data->env, data->tsfn);
  }
}

// Closes an id if it is open; idempotent.
void CloseId(EnvData* data, uint64_t id) {
  Bound* b = data->handles.Remove(id);
  if (b == nullptr) return;
  size_t outstanding = b->Release();
  delete b;
  ChangeWaitsInFlight(data, -static_cast<ptrdiff_t>(outstanding));
}

void MaybeFreeEnvData(EnvData* data) {
  if (data->torn_down && data->tokens_alive == 0) delete data;
}

// Called on a waiter thread with the SharedSemaphore's lock held.
void Handle::NotifySettled(void* context, SharedSemaphore* shared) {
  EnvData* data = static_cast<EnvData*>(context);
  shared->Ref();  // released by CallSettle
  if (napi_call_threadsafe_function(data->tsfn, shared, napi_tsfn_nonblocking) != napi_ok) {
    shared->Unref();
  }
}

// Calls JavaScript's settle(id, err) for each wait, in order, collecting
// what it throws (ours never does) into `thrown`, so that one throw keeps no
// other wait from settling. Returns how many reached it: fewer when
// JavaScript cannot run (a terminating worker).
size_t SettleInJs(napi_env env, EnvData* data, const std::vector<nsem::Settled>& settled,
                  std::vector<napi_value>* thrown) {
  napi_value fn, undefined, argv[2];
  if (data->settle_fn == nullptr ||
      napi_get_reference_value(env, data->settle_fn, &fn) != napi_ok || fn == nullptr) {
    return 0;
  }
  napi_get_undefined(env, &undefined);
  size_t delivered = 0;
  for (const nsem::Settled& s : settled) {
    napi_create_double(env, s.id, &argv[0]);
    napi_create_int32(env, s.err, &argv[1]);
    napi_value ignored;
    if (napi_call_function(env, undefined, fn, 2, argv, &ignored) != napi_ok) {
      bool threw = false;
      napi_value exception = nullptr;
      // No exception: JavaScript could not run at all.
      if (napi_is_exception_pending(env, &threw) != napi_ok || !threw ||
          napi_get_and_clear_last_exception(env, &exception) != napi_ok) {
        break;
      }
      thrown->push_back(exception);  // settle() ran and threw (even undefined): delivered
    }
    delivered++;
  }
  return delivered;
}

// An exception from settle() is uncaught, as from any callback, whichever
// way the wait was served. Raised after undelivered tokens went back: with
// no 'uncaughtException' handler, the process ends here.
void RaiseUncaught(napi_env env, const std::vector<napi_value>& thrown) {
  for (napi_value exception : thrown) napi_fatal_exception(env, exception);
}

// Tokens taken for waits that JavaScript never received go back. The
// caller holds a reference on each wait's semaphore: settle() may have
// closed its handle.
void PostBackUndelivered(const std::vector<nsem::Settled>& settled, size_t delivered,
                         const std::vector<SharedSemaphore*>& sems) {
  for (size_t i = delivered; i < settled.size(); i++) {
    if (settled[i].err == 0) nsem::Post(sems[i]->sem(), 1);
  }
}

// The tsfn's call: on the JavaScript thread (or with env == nullptr while
// tearing down).
void CallSettle(napi_env env, napi_value, void* context, void* payload) {
  SharedSemaphore* shared = static_cast<SharedSemaphore*>(payload);
  std::vector<nsem::Settled> settled;
  shared->Drain(&settled);
  size_t delivered = 0;
  std::vector<napi_value> thrown;
  // env is nullptr when the environment is going away: nothing reaches JS.
  if (env != nullptr && !settled.empty()) {
    EnvData* data = static_cast<EnvData*>(context);
    ChangeWaitsInFlight(data, -static_cast<ptrdiff_t>(settled.size()));
    delivered = SettleInJs(env, data, settled, &thrown);
  }
  PostBackUndelivered(settled, delivered, std::vector<SharedSemaphore*>(settled.size(), shared));
  RaiseUncaught(env, thrown);
  shared->Unref();
}

// ---- waits served by the event loop (LoopWaits) -----------------------------

// The open handle of kind T with this id, or nullptr.
template <typename T>
T* FindById(EnvData* data, uint64_t id) {
  Bound* b = data->handles.Find(id);
  return b != nullptr && b->kind == T::kKind ? static_cast<T*>(b) : nullptr;
}

void ServiceAndSettle(LoopWaits* loop, const std::vector<Handle*>& handles);

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
  size_t delivered = 0;
  if (napi_open_handle_scope(env, &handle_scope) != napi_ok) {
    PostBackUndelivered(settled, 0, sems);
    return;
  }
  if (napi_get_reference_value(env, loop->resource, &resource) == napi_ok &&
      napi_open_callback_scope(env, resource, loop->async_context, &callback_scope) == napi_ok) {
    std::vector<napi_value> thrown;
    delivered = SettleInJs(env, data, settled, &thrown);
    // Before closing the scope, which runs user code that may close handles.
    PostBackUndelivered(settled, delivered, sems);
    RaiseUncaught(env, thrown);
    napi_close_callback_scope(env, callback_scope);
  } else {
    PostBackUndelivered(settled, 0, sems);
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

// The environment's ring, started on first use; nullptr where waits use
// threads: no ring is possible here, or NAMED_SEMAPHORE_WAITER=thread. Each
// thread (main or worker) has its own, on its own event loop.
nsem::FutexRing* Ring(EnvData* data) {
  LoopWaits* loop = data->loop;
  if (loop->started) return loop->ring;
  loop->started = true;
  const char* choice = getenv("NAMED_SEMAPHORE_WAITER");
  if (choice != nullptr && strcmp(choice, "thread") == 0) return nullptr;
  napi_env env = data->env;
  uv_loop_t* uv = nullptr;
  if (napi_get_uv_event_loop(env, &uv) != napi_ok) return nullptr;
  nsem::FutexRing* ring = nsem::FutexRing::Create();
  if (ring == nullptr) return nullptr;
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

// Whether JavaScript detached the call slots' buffer (transfer()).
bool SlotsDetached(EnvData* data) {
  napi_env env = data->env;
  napi_handle_scope scope;                                          // a cleanup hook has none
  if (napi_open_handle_scope(env, &scope) != napi_ok) return true;  // unknown: keep the memory
  napi_value buffer;
  bool detached = true;
  if (napi_get_reference_value(env, data->slots_buffer, &buffer) != napi_ok || buffer == nullptr ||
      napi_is_detached_arraybuffer(env, buffer, &detached) != napi_ok) {
    detached = true;
  }
  napi_close_handle_scope(env, scope);
  return detached;
}

void TearDown(void* arg) {
  EnvData* data = static_cast<EnvData*>(arg);
  // Stop every waiter thread before the threadsafe function goes away.
  for (uint64_t id : data->handles.Ids()) CloseId(data, id);
  StopLoopWaits(data);
  data->torn_down = true;
  if (data->settle_fn != nullptr) napi_delete_reference(data->env, data->settle_fn);
  data->settle_fn = nullptr;
  if (data->slots_buffer != nullptr) {
    // Detached by JavaScript: its memory may be in use elsewhere; never free it.
    if (data->slots != nullptr && SlotsDetached(data)) data->slots = nullptr;
    napi_delete_reference(data->env, data->slots_buffer);
    data->slots_buffer = nullptr;
  }
  if (first_env_here == data) first_env_here = nullptr;
  napi_release_threadsafe_function(data->tsfn, napi_tsfn_abort);
  MaybeFreeEnvData(data);
}

// ---- small helpers -------------------------------------------------------

napi_value Int(napi_env env, int32_t v) {
  napi_value out;
  napi_create_int32(env, v, &out);
  return out;
}

napi_value Bool(napi_env env, bool v) {
  napi_value out;
  napi_get_boolean(env, v, &out);
  return out;
}

// undefined for success, so the hot paths create no value at all.
napi_value Result(napi_env env, int err) { return err == 0 ? nullptr : Int(env, err); }

// Reads a whole number in [min, max]; false for anything else.
bool GetWhole(napi_env env, napi_value v, double min, double max, double* out) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok) return false;
  if (!(d >= min && d <= max) || d != floor(d)) return false;
  *out = d;
  return true;
}

// A timeout in ms: a non-negative number, or Infinity; -1 also means forever.
bool GetTimeout(napi_env env, napi_value v, double* out) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok) return false;
  if (!(d >= 0) && d != -1) return false;
  *out = d;
  return true;
}

// Copies a semaphore name into buf; false if not a string or too long.
bool GetName(napi_env env, napi_value v, char* buf, size_t size) {
  size_t len;
  if (napi_get_value_string_utf8(env, v, nullptr, 0, &len) != napi_ok) return false;
  if (len + 1 > size) return false;
  napi_get_value_string_utf8(env, v, buf, size, &len);
  return strlen(buf) == len;  // no NUL inside
}

// Fetches up to N arguments (missing ones are undefined) and the EnvData, in
// one napi_get_cb_info.
template <size_t N>
EnvData* Args(napi_env env, napi_callback_info info, napi_value (&argv)[N], size_t* argc) {
  *argc = N;
  void* data = nullptr;
  if (napi_get_cb_info(env, info, argc, argv, nullptr, &data) != napi_ok) return nullptr;
  return static_cast<EnvData*>(data);
}

// Reads an id; 0 (never an id) for anything that is not a number. A number
// is read as napi_get_value_int64 reads it (a fraction is dropped): checking
// that it is whole would cost the hot paths a tenth more, and the table
// rejects any number that is not an open handle's id anyway.
uint64_t GetId(napi_env env, napi_value v) {
  int64_t id;
  if (napi_get_value_int64(env, v, &id) != napi_ok || id < 1) return 0;
  return static_cast<uint64_t>(id);
}

// The open handle of kind T that `id` names, or nullptr.
template <typename T>
T* Find(napi_env env, EnvData* data, napi_value id) {
  return data == nullptr ? nullptr : FindById<T>(data, GetId(env, id));
}

// The open handle of kind T that a call's only argument names, or nullptr.
template <typename T>
T* FindOnlyArg(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  size_t argc;
  EnvData* data = Args(env, info, argv, &argc);
  return Find<T>(env, data, argv[0]);
}

// The calling environment's EnvData, or nullptr.
EnvData* CallerData(napi_env env, napi_callback_info info) {
  if (first_env_here != nullptr && first_env_here->env == env) return first_env_here;
  void* data = nullptr;
  if (napi_get_cb_info(env, info, nullptr, nullptr, nullptr, &data) != napi_ok) return nullptr;
  return static_cast<EnvData*>(data);
}

// The values of data's call slots, or nullptr (no data, or a detached
// buffer that V8 owned).
double* SlotValues(napi_env env, EnvData* data) {
  if (data == nullptr) return nullptr;
  if (data->slots != nullptr) return data->slots->values;
  napi_value buffer;
  void* values = nullptr;
  size_t length = 0;
  if (data->slots_buffer == nullptr ||
      napi_get_reference_value(env, data->slots_buffer, &buffer) != napi_ok || buffer == nullptr ||
      napi_get_arraybuffer_info(env, buffer, &values, &length) != napi_ok ||
      length < sizeof(double) * CallSlots::kCount) {
    return nullptr;
  }
  return static_cast<double*>(values);
}

// Takes the id JavaScript left in slot i (0 unless a call takes two); 0
// (never an id) for anything that is not one. The slot is cleared, so a call
// that did not set it fails rather than acting on the previous caller's handle.
uint64_t TakeSlotId(double* slots, size_t i = 0) {
  double d = slots[i];
  slots[i] = 0;
  return d >= 1 && d <= kMaxSafeInteger ? static_cast<uint64_t>(d) : 0;
}

// For the hot paths: the sem_t* of the open semaphore whose id is in the
// call slots, or nullptr.
sem_t* SlotSemaphore(napi_env env, napi_callback_info info) {
  EnvData* data = CallerData(env, info);
  double* slots = SlotValues(env, data);
  return slots == nullptr ? nullptr : data->handles.FindSemaphore(TakeSlotId(slots));
}

// ---- semaphore functions (hot paths first) --------------------------------

// post() -> undefined | errno: posts 1 to the semaphore in the call slots.
napi_value Post(napi_env env, napi_callback_info info) {
  sem_t* sem = SlotSemaphore(env, info);
  if (sem == nullptr) return Int(env, kBadHandle);
  return Result(env, nsem::PostOne(sem));
}

// tryWait() -> undefined | EAGAIN | errno, on the semaphore in the call slots.
napi_value TryWait(napi_env env, napi_callback_info info) {
  sem_t* sem = SlotSemaphore(env, info);
  if (sem == nullptr) return Int(env, kBadHandle);
  return Result(env, nsem::TryWait(sem));
}

// (id, count) -> undefined | errno: `op` with a count of 1 to SEM_VALUE_MAX.
napi_value WithCount(napi_env env, napi_callback_info info, int (*op)(sem_t*, uint32_t)) {
  napi_value argv[2];
  size_t argc;
  EnvData* data = Args(env, info, argv, &argc);
  Handle* h = Find<Handle>(env, data, argv[0]);
  if (h == nullptr) return Int(env, kBadHandle);
  double count;
  if (!GetWhole(env, argv[1], 1, SEM_VALUE_MAX, &count)) return Int(env, EINVAL);
  return Result(env, op(h->shared->sem(), static_cast<uint32_t>(count)));
}

// postCount(id, count) -> undefined | errno
napi_value PostCount(napi_env env, napi_callback_info info) {
  return WithCount(env, info, nsem::Post);
}

// tryWaitCount(id, count) -> undefined | EAGAIN | errno: takes count, or
// nothing if the value is below it.
napi_value TryWaitCount(napi_env env, napi_callback_info info) {
  return WithCount(env, info, nsem::TryWaitCount);
}

// drain(id) -> how many were taken (the whole value) | -errno
napi_value Drain(napi_env env, napi_callback_info info) {
  Handle* h = FindOnlyArg<Handle>(env, info);
  if (h == nullptr) return Int(env, -kBadHandle);
  return Int(env, static_cast<int32_t>(nsem::Drain(h->shared->sem())));
}

// value(id) -> value >= 0 | -errno; JavaScript reads the value word instead
// where there is one.
napi_value Value(napi_env env, napi_callback_info info) {
  Handle* h = FindOnlyArg<Handle>(env, info);
  if (h == nullptr) return Int(env, -kBadHandle);
  sem_t* sem = h->shared->sem();
  int value = 0;
  int err = nsem::GetValue(sem, &value);
  return Int(env, err == 0 ? value : -err);
}

// waitSync(id, timeoutMs) -> 0 | ETIMEDOUT | errno; blocks this thread.
napi_value WaitSync(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  size_t argc;
  EnvData* data = Args(env, info, argv, &argc);
  Handle* h = Find<Handle>(env, data, argv[0]);
  if (h == nullptr) return Int(env, kBadHandle);
  double timeout;
  if (!GetTimeout(env, argv[1], &timeout)) return Int(env, EINVAL);
  return Int(env, nsem::WaitUntil(h->shared->sem(), nsem::DeadlineAfterMs(timeout)));
}

// wait(id, waitId, timeoutMs) -> 0 (queued; settle(waitId, err) follows) | errno
napi_value Wait(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  size_t argc;
  EnvData* data = Args(env, info, argv, &argc);
  uint64_t id = GetId(env, argv[0]);
  Handle* h = data == nullptr ? nullptr : FindById<Handle>(data, id);
  if (h == nullptr) return Int(env, kBadHandle);
  double wait_id, timeout;
  if (!GetWhole(env, argv[1], 0, kMaxSafeInteger, &wait_id) ||
      !GetTimeout(env, argv[2], &timeout)) {
    return Int(env, EINVAL);
  }
  int64_t deadline = nsem::DeadlineAfterMs(timeout);
  int err;
  if (nsem::FutexRing* ring = Ring(data)) {
    err = h->ring_waits.Enqueue(wait_id, deadline, ring);
    auto& waiting = data->loop->waiting;
    if (err == 0 && std::find(waiting.begin(), waiting.end(), id) == waiting.end()) {
      waiting.push_back(id);
    }
    if (err == 0 && deadline < data->loop->timer_due) ScheduleDeadlines(data->loop);
  } else {
    err = h->shared->Enqueue(wait_id, deadline);
  }
  if (err == 0) ChangeWaitsInFlight(data, 1);
  return Int(env, err);
}

// cancel(id, waitId) -> whether the wait was outstanding (its token, if any,
// is posted back)
napi_value Cancel(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  size_t argc;
  EnvData* data = Args(env, info, argv, &argc);
  Handle* h = Find<Handle>(env, data, argv[0]);
  double wait_id;
  if (h == nullptr || !GetWhole(env, argv[1], 0, kMaxSafeInteger, &wait_id)) {
    return Bool(env, false);
  }
  bool found = h->ring_waits.Cancel(wait_id, data->loop->ring) || h->shared->Cancel(wait_id);
  if (found) ChangeWaitsInFlight(data, -1);
  return Bool(env, found);
}

// close(id) -> 0, for a semaphore or a sum; idempotent. Outstanding waits are
// forgotten (JavaScript rejects them) and their tokens posted back.
napi_value Close(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  size_t argc;
  EnvData* data = Args(env, info, argv, &argc);
  if (data != nullptr) CloseId(data, GetId(env, argv[0]));
  return Int(env, 0);
}

// ---- share sum functions ------------------------------------------------------

// sumGeneration(id) -> value >= 0 | -errno
napi_value SumGeneration(napi_env env, napi_callback_info info) {
  SumHandle* h = FindOnlyArg<SumHandle>(env, info);
  return Int(env, h == nullptr ? -kBadHandle : h->sum.Generation());
}

// sumReset(id, generation, names[]) -> 0 | errno
napi_value SumReset(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  size_t argc;
  EnvData* data = Args(env, info, argv, &argc);
  if (Find<SumHandle>(env, data, argv[0]) == nullptr) return Int(env, kBadHandle);
  double generation;
  bool is_array = false;
  uint32_t length = 0;
  if (!GetWhole(env, argv[1], 0, SEM_VALUE_MAX, &generation) ||
      napi_is_array(env, argv[2], &is_array) != napi_ok || !is_array ||
      napi_get_array_length(env, argv[2], &length) != napi_ok || length > 100000) {
    return Int(env, EINVAL);
  }
  std::vector<std::string> names(length);
  std::vector<const char*> pointers(length);
  for (uint32_t i = 0; i < length; i++) {
    char name[256];
    napi_value item;
    if (napi_get_element(env, argv[2], i, &item) != napi_ok ||
        !GetName(env, item, name, sizeof name)) {
      return Int(env, EINVAL);
    }
    names[i] = name;
    pointers[i] = names[i].c_str();
  }
  // Found again: an element's getter is JavaScript, which may have closed it.
  SumHandle* h = Find<SumHandle>(env, data, argv[0]);
  if (h == nullptr) return Int(env, kBadHandle);
  return Int(env, h->sum.Reset(static_cast<int>(generation), pointers));
}

// sum() -> undefined (the total is in slot 1) | errno (ESTALE: list the
// shares again and reset), for the sum in the call slots.
napi_value SumSum(napi_env env, napi_callback_info info) {
  EnvData* data = CallerData(env, info);
  double* slots = SlotValues(env, data);
  if (slots == nullptr) return Int(env, kBadHandle);
  SumHandle* h = FindById<SumHandle>(data, TakeSlotId(slots));
  int64_t total = 0;
  int err = h == nullptr ? kBadHandle : h->sum.Sum(&total);
  if (err != 0) return Int(env, err);
  slots[1] = static_cast<double>(total);  // exact: at most 2^31 per share
  return nullptr;
}

// postAndSum() -> undefined (posted; the total is in slot 1) | errno (nothing
// posted) | -errno (posted, but the sum failed: -ESTALE, list the shares
// again). Posts 1 to the semaphore in slot 0, then sums the sum in slot 1:
// a gauge's release and read in one call.
napi_value PostAndSum(napi_env env, napi_callback_info info) {
  EnvData* data = CallerData(env, info);
  double* slots = SlotValues(env, data);
  if (slots == nullptr) return Int(env, kBadHandle);
  sem_t* sem = data->handles.FindSemaphore(TakeSlotId(slots, 0));
  SumHandle* h = FindById<SumHandle>(data, TakeSlotId(slots, 1));
  if (sem == nullptr || h == nullptr) return Int(env, kBadHandle);
  int err = nsem::PostOne(sem);
  if (err != 0) return Int(env, err);
  int64_t total = 0;
  err = h->sum.Sum(&total);
  if (err != 0) return Int(env, -err);
  slots[1] = static_cast<double>(total);
  return nullptr;
}

// ---- opening --------------------------------------------------------------------

// When a { id } object is collected, its handle closes (sem_close, never
// unlink; a gauge share gives its count back).
void FinalizeToken(napi_env, void* id, void* hint) {
  EnvData* data = static_cast<EnvData*>(hint);
  CloseId(data, reinterpret_cast<uintptr_t>(id));
  data->tokens_alive--;
  MaybeFreeEnvData(data);
}

void UnrefSemaphore(napi_env, void*, void* shared) {
  static_cast<SharedSemaphore*>(shared)->Unref();
}

// The semaphore's value word (see nsem::ValueWord) as a 4-byte ArrayBuffer,
// so that JavaScript reads the value with Atomics.load instead of a call;
// nullptr where there is none (or the runtime allows no external buffers:
// value() stays a call). The buffer holds a reference on the semaphore: the
// mapping outlives every view of it, whatever happens to the handle.
napi_value ValueWordBuffer(napi_env env, SharedSemaphore* shared) {
  const int32_t* word = nsem::ValueWord(shared->sem());
  if (word == nullptr) return nullptr;
  shared->Ref();
  napi_value buffer;
  if (napi_create_external_arraybuffer(env, const_cast<int32_t*>(word), sizeof *word,
                                       UnrefSemaphore, shared, &buffer) != napi_ok) {
    shared->Unref();
    return nullptr;
  }
  return buffer;
}

// Registers b (taking ownership; `sem` for a semaphore) and returns its { id }
// object, or an errno.
napi_value NewToken(napi_env env, EnvData* data, Bound* b, sem_t* sem) {
  uint64_t id = data->handles.Add(b, sem);
  if (id == 0) {
    ChangeWaitsInFlight(data, -static_cast<ptrdiff_t>(b->Release()));
    delete b;
    return Int(env, EMFILE);
  }
  napi_value word = nullptr;
  if (sem != nullptr) {
    static_cast<Handle*>(b)->ring_waits.set_key(id);
    word = ValueWordBuffer(env, static_cast<Handle*>(b)->shared);
  }
  // Defined, not assigned: an assignment would run any setter JavaScript put
  // on Object.prototype, which could close this very handle under us.
  napi_value token;
  napi_property_descriptor props[2] = {
      {"id", nullptr, nullptr, nullptr, nullptr, nullptr, napi_default_jsproperty, nullptr},
      {"word", nullptr, nullptr, nullptr, nullptr, word, napi_default_jsproperty, nullptr},
  };
  if (napi_create_object(env, &token) == napi_ok &&
      napi_create_double(env, static_cast<double>(id), &props[0].value) == napi_ok &&
      napi_define_properties(env, token, word != nullptr ? 2 : 1, props) == napi_ok &&
      napi_add_finalizer(env, token, reinterpret_cast<void*>(static_cast<uintptr_t>(id)),
                         FinalizeToken, data, nullptr) == napi_ok) {
    data->tokens_alive++;
    return token;
  }
  // Out of memory or a pending exception: nothing will close it later.
  CloseId(data, id);
  return Int(env, ENOMEM);
}

// open(name, create, exclusive, mode, value, ownedShare = false)
//   -> { id, word? } | errno
// An owned share (a gauge's own) is drained and unlinked when it closes,
// however that happens: close(), garbage collection, or thread teardown.
napi_value Open(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  size_t argc;
  EnvData* data = Args(env, info, argv, &argc);
  char name[256];
  double mode = 0, value = 0;
  bool create, exclusive, owned_share = false;
  if (data == nullptr || argc < 5 || !GetName(env, argv[0], name, sizeof name) ||
      napi_get_value_bool(env, argv[1], &create) != napi_ok ||
      napi_get_value_bool(env, argv[2], &exclusive) != napi_ok ||
      !GetWhole(env, argv[3], 0, 07777, &mode) ||
      !GetWhole(env, argv[4], 0, SEM_VALUE_MAX, &value)) {
    return Int(env, EINVAL);
  }
  napi_get_value_bool(env, argv[5], &owned_share);  // anything but true is false
  sem_t* sem = nullptr;
  int err = nsem::Open(name, create, exclusive, static_cast<unsigned>(mode),
                       static_cast<unsigned>(value), &sem);
  if (err != 0) return Int(env, err);
  return NewToken(env, data, new Handle(data, sem, name, owned_share), sem);
}

// openSum(generationName) -> { id } | errno
napi_value OpenSum(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  size_t argc;
  EnvData* data = Args(env, info, argv, &argc);
  char name[256];
  if (data == nullptr || !GetName(env, argv[0], name, sizeof name)) return Int(env, EINVAL);
  sem_t* sem = nullptr;
  int err = nsem::Open(name, false, false, 0, 0, &sem);
  if (err != 0) return Int(env, err);
  nsem::Trust trust;  // unknown if the file went meanwhile: shares are then only checked as files
  nsem::TrustOf(name, &trust);
  return NewToken(env, data, new SumHandle(sem, trust), nullptr);
}

// ---- module functions without a handle -----------------------------------------

// unlink(name) -> 0 | errno
Napi::Value Unlink(const Napi::CallbackInfo& info) {
  char name[256];
  if (info.Length() < 1 || !GetName(info.Env(), info[0], name, sizeof name)) {
    return Napi::Number::New(info.Env(), EINVAL);
  }
  return Napi::Number::New(info.Env(), nsem::Unlink(name));
}

// ---- a gauge's files (see src/share_sum.h) ----------------------------------------

// createWhole(name, mode, value, gid) -> 0 | errno (EEXIST if it exists);
// gid -1 keeps the process's group.
Napi::Value CreateWhole(const Napi::CallbackInfo& info) {
  napi_env env = info.Env();
  char name[256];
  double mode = 0, value = 0, gid = -1;
  if (info.Length() < 4 || !GetName(env, info[0], name, sizeof name) ||
      !GetWhole(env, info[1], 0, 07777, &mode) ||
      !GetWhole(env, info[2], 0, SEM_VALUE_MAX, &value) ||
      !GetWhole(env, info[3], -1, INT32_MAX, &gid)) {
    return Napi::Number::New(env, EINVAL);
  }
  return Napi::Number::New(
      env, nsem::CreateWhole(name, static_cast<unsigned>(mode), static_cast<unsigned>(value),
                             static_cast<int>(gid)));
}

// The trust of generation semaphore `v`; unknown (file checks only) if it cannot be judged.
nsem::Trust TrustArg(napi_env env, napi_value v) {
  nsem::Trust trust;
  char name[256];
  if (GetName(env, v, name, sizeof name)) nsem::TrustOf(name, &trust);
  return trust;
}

// shareKind(generationName, name) -> an nsem::ShareKind (0: a share)
Napi::Value ShareKindOf(const Napi::CallbackInfo& info) {
  char name[256];
  if (info.Length() < 2 || !GetName(info.Env(), info[1], name, sizeof name)) {
    return Napi::Number::New(info.Env(), nsem::kGone);
  }
  return Napi::Number::New(info.Env(), nsem::KindOf(name, TrustArg(info.Env(), info[0])));
}

// reapShare(generationName, name) -> what it held | -1 (no share, or gone)
Napi::Value ReapShare(const Napi::CallbackInfo& info) {
  char name[256];
  if (info.Length() < 2 || !GetName(info.Env(), info[1], name, sizeof name)) {
    return Napi::Number::New(info.Env(), -1);
  }
  double taken = static_cast<double>(nsem::ReapShare(name, TrustArg(info.Env(), info[0])));
  return Napi::Number::New(info.Env(), taken);
}

// listenQueue(port) -> [{ address, port, queued, backlog }] | errno
// port 0 lists every TCP listener.
Napi::Value ListenQueue(const Napi::CallbackInfo& info) {
  napi_env env = info.Env();
  double port;
  if (info.Length() < 1 || !GetWhole(env, info[0], 0, 65535, &port)) {
    return Napi::Number::New(env, EINVAL);
  }
  std::vector<nsem::Listener> listeners;
  int err = nsem::ListenQueues(static_cast<uint16_t>(port), &listeners);
  if (err != 0) return Napi::Number::New(env, err);
  Napi::Array out = Napi::Array::New(env, listeners.size());
  for (size_t i = 0; i < listeners.size(); i++) {
    const nsem::Listener& l = listeners[i];
    char address[INET6_ADDRSTRLEN] = "";
    inet_ntop(l.family, l.address, address, sizeof address);
    Napi::Object item = Napi::Object::New(env);
    item.Set("address", Napi::String::New(env, address));
    item.Set("family", Napi::String::New(env, l.family == AF_INET ? "IPv4" : "IPv6"));
    item.Set("port", Napi::Number::New(env, l.port));
    item.Set("queued", Napi::Number::New(env, l.queued));
    item.Set("backlog", Napi::Number::New(env, l.backlog));
    out.Set(static_cast<uint32_t>(i), item);
  }
  return out;
}

// setSettle(fn): the JavaScript function that settles async waits.
napi_value SetSettle(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  size_t argc;
  EnvData* data = Args(env, info, argv, &argc);
  napi_valuetype type;
  if (data == nullptr || napi_typeof(env, argv[0], &type) != napi_ok || type != napi_function) {
    return Int(env, EINVAL);
  }
  if (data->settle_fn != nullptr) napi_delete_reference(env, data->settle_fn);
  napi_create_reference(env, argv[0], 1, &data->settle_fn);
  return Int(env, 0);
}

// waitMechanism() -> 'io_uring' | 'thread': how wait() waits in this thread.
napi_value WaitMechanism(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  void* data = nullptr;
  napi_value out;
  napi_get_cb_info(env, info, &argc, nullptr, nullptr, &data);
  bool ring = data != nullptr && Ring(static_cast<EnvData*>(data)) != nullptr;
  napi_create_string_utf8(env, ring ? "io_uring" : "thread", NAPI_AUTO_LENGTH, &out);
  return out;
}

void UnrefCallSlots(napi_env, void*, void* slots) { static_cast<CallSlots*>(slots)->Unref(); }

// The call slots' buffer, or nullptr (out of memory).
napi_value NewCallSlots(napi_env env, EnvData* data) {
  constexpr size_t kBytes = sizeof(double) * CallSlots::kCount;
  napi_value buffer;
  CallSlots* slots = new CallSlots();
  napi_status status =
      napi_create_external_arraybuffer(env, slots->values, kBytes, UnrefCallSlots, slots, &buffer);
  if (status == napi_ok) {
    data->slots = slots;
  } else if (status == napi_no_external_buffers_allowed) {
    delete slots;  // V8 owns the memory (see EnvData::slots)
    void* values;
    if (napi_create_arraybuffer(env, kBytes, &values, &buffer) != napi_ok) return nullptr;
  } else {
    return nullptr;  // not freed: a finalizer may know it
  }
  if (napi_create_reference(env, buffer, 1, &data->slots_buffer) != napi_ok) return nullptr;
  return buffer;
}

struct Function {
  const char* name;
  napi_callback cb;
};

// Each is bound to the environment's EnvData.
constexpr Function kFunctions[] = {
    {"post", Post},
    {"tryWait", TryWait},
    {"postCount", PostCount},
    {"tryWaitCount", TryWaitCount},
    {"drain", Drain},
    {"value", Value},
    {"waitSync", WaitSync},
    {"wait", Wait},
    {"cancel", Cancel},
    {"close", Close},
    {"sumGeneration", SumGeneration},
    {"sumReset", SumReset},
    {"sum", SumSum},
    {"postAndSum", PostAndSum},
    {"open", Open},
    {"openSum", OpenSum},
    {"setSettle", SetSettle},
    {"waitMechanism", WaitMechanism},
};

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  EnvData* data = new EnvData();
  data->env = env;
  napi_value resource_name;
  napi_create_string_utf8(env, "named-semaphore:wait", NAPI_AUTO_LENGTH, &resource_name);
  if (napi_create_threadsafe_function(env, nullptr, nullptr, resource_name, 0, 1, nullptr, nullptr,
                                      data, CallSettle, &data->tsfn) != napi_ok) {
    delete data;
    Napi::Error::New(env, "named-semaphore: cannot create a threadsafe function")
        .ThrowAsJavaScriptException();
    return exports;
  }
  napi_unref_threadsafe_function(env, data->tsfn);
  napi_set_instance_data(env, data, nullptr, nullptr);
  data->loop = new LoopWaits(data);
  // Added before TearDown's hook, so that it runs after it (last in, first out).
  if (napi_add_async_cleanup_hook(env, CloseLoopWaits, data->loop, &data->loop->cleanup) !=
      napi_ok) {
    data->loop->started = true;  // no ring without a way to close it: waits use threads
  }
  // Registered after the threadsafe function, so it runs before the
  // function's own teardown (cleanup hooks run last-in, first-out).
  napi_add_env_cleanup_hook(env, TearDown, data);

  napi_value slots = NewCallSlots(env, data);
  if (slots == nullptr) {
    Napi::Error::New(env, "named-semaphore: cannot create the call slots")
        .ThrowAsJavaScriptException();
    return exports;
  }
  exports.Set("callSlots", Napi::Value(env, slots));
  if (first_env_here == nullptr) first_env_here = data;

  for (const Function& f : kFunctions) {
    napi_value fn;
    NAPI_THROW_IF_FAILED(env, napi_create_function(env, f.name, NAPI_AUTO_LENGTH, f.cb, data, &fn),
                         exports);
    exports.Set(f.name, Napi::Value(env, fn));
  }
  exports.Set("unlink", Napi::Function::New(env, Unlink, "unlink"));
  exports.Set("createWhole", Napi::Function::New(env, CreateWhole, "createWhole"));
  exports.Set("shareKind", Napi::Function::New(env, ShareKindOf, "shareKind"));
  exports.Set("reapShare", Napi::Function::New(env, ReapShare, "reapShare"));
  exports.Set("listenQueue", Napi::Function::New(env, ListenQueue, "listenQueue"));
  exports.Set("SEM_VALUE_MAX", Napi::Number::New(env, SEM_VALUE_MAX));
  exports.Set("hasClockWait", Napi::Boolean::New(env, nsem::HasClockWait()));
  return exports;
}

}  // namespace

NODE_API_MODULE(named_semaphore, Init)

// The binding layer: the module's functions, which unpack arguments, call the
// core, and tie native lifetimes to JavaScript ones. What it keeps per
// environment is in env_data.h, the handle table in handle_table.h, and the
// async waits, from queueing to settle(), in async_waits.*.
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
// much. The handle table checks every id, so a forged or stale one is EBADF.
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

#include <string>
#include <vector>

#include <napi.h>

#include "async_waits.h"
#include "env_data.h"
#include "listen_queue.h"
#include "semaphore.h"
#include "share_sum.h"

namespace addon {
namespace {

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
  // Joined here: a thread that outlived this hook could run code of an addon
  // that the worker's exit unloads.
  data->pool->Shutdown();
  delete data->pool;
  data->pool = nullptr;
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
  return Int(env, QueueWait(data, h, id, wait_id, nsem::DeadlineAfterMs(timeout)));
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
  return Bool(env, CancelWait(data, h, wait_id));
}

// close(id) -> 0, for a semaphore or a sum; idempotent. Outstanding waits are
// forgotten (JavaScript rejects them) and their tokens posted back.
napi_value Close(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  size_t argc;
  EnvData* data = Args(env, info, argv, &argc);
  if (data == nullptr) return Int(env, 0);
  uint64_t id = GetId(env, argv[0]);
  // Unmapped now, not whenever the collector finds the buffers.
  if (Handle* h = FindById<Handle>(data, id)) h->word.Detach(env);
  if (SumHandle* h = FindById<SumHandle>(data, id)) h->words.Detach(env);
  CloseId(data, id);
  return Int(env, 0);
}

// ---- share sum functions ------------------------------------------------------

// sumGeneration(id) -> value >= 0 | -errno
napi_value SumGeneration(napi_env env, napi_callback_info info) {
  SumHandle* h = FindOnlyArg<SumHandle>(env, info);
  return Int(env, h == nullptr ? -kBadHandle : h->sum.Generation());
}

// sumReset(id, generation, names[]) -> { count, words? } | errno
// count: how many shares were mapped (names that are gone or no shares are
// skipped). words: where the layout is glibc's (see nsem::ValueWord), an
// ArrayBuffer over the sum's slots (see nsem::SumWords) for JavaScript to
// sum: slot 0's first word the generation, slots 1 to count the shares'.
// The same buffer as the last reset's unless the slots moved; then the old
// one is detached.
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
  int err = h->sum.Reset(static_cast<int>(generation), pointers);
  if (err != 0) return Int(env, err);
  nsem::SumWords* words = h->sum.words();
  napi_value buffer = nullptr;
  if (nsem::HasValueWord()) {
    buffer = h->words.Get(env);
    if (buffer != nullptr) {
      void* at = nullptr;
      size_t bytes = 0;
      napi_get_arraybuffer_info(env, buffer, &at, &bytes);
      if (at != words->base()) buffer = nullptr;  // the old slots: a new buffer
    }
    if (buffer == nullptr) buffer = h->words.Create(env, words, words->base(), words->bytes());
  }
  napi_value result;
  napi_property_descriptor props[2] = {
      {"count", nullptr, nullptr, nullptr, nullptr, nullptr, napi_default_jsproperty, nullptr},
      {"words", nullptr, nullptr, nullptr, nullptr, buffer, napi_default_jsproperty, nullptr},
  };
  if (napi_create_object(env, &result) != napi_ok ||
      napi_create_double(env, static_cast<double>(h->sum.size()), &props[0].value) != napi_ok ||
      napi_define_properties(env, result, buffer != nullptr ? 2 : 1, props) != napi_ok) {
    return Int(env, ENOMEM);
  }
  return result;
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

// The semaphore's value word (see nsem::ValueWord) as a 4-byte ArrayBuffer:
// JavaScript reads the value with Atomics.load instead of a call, and a
// gauge writes its own share (see lib/gauge.ts). nullptr where there is
// none: value() stays a call.
napi_value ValueWordBuffer(napi_env env, Handle* h) {
  const int32_t* word = nsem::ValueWord(h->shared->sem());
  if (word == nullptr) return nullptr;
  return h->word.Create(env, h->shared, const_cast<int32_t*>(word), sizeof *word);
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
    word = ValueWordBuffer(env, static_cast<Handle*>(b));
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
  SumHandle* h = new SumHandle(data);
  if (int err = h->sum.Open(name)) {
    delete h;
    return Int(env, err);
  }
  return NewToken(env, data, h, nullptr);
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
  data->pool = new WaiterPool(NotifySettled, data);
  // Added before TearDown's hook, so that it runs after it (last in, first out).
  if (napi_add_async_cleanup_hook(env, CloseLoopWaits, data->loop, &data->loop->cleanup) !=
      napi_ok) {
    data->loop->refused = true;  // no ring without a way to close it: waits use threads
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
  // Whether a waiter thread sleeps on many semaphores (futex_waitv) or one.
  exports.Set("waitersShareThreads", Napi::Boolean::New(env, WaiterPool::Multiplexed()));
  // Bytes from one slot of a sum's words to the next (see sumReset).
  exports.Set("sumSlotBytes",
              Napi::Number::New(env, static_cast<double>(nsem::SumWords::SlotBytes())));
  return exports;
}

}  // namespace
}  // namespace addon

using addon::Init;
NODE_API_MODULE(named_semaphore, Init)

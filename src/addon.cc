// The only file that speaks N-API: unpacks arguments, calls the core, and
// ties native lifetimes to JavaScript ones.
//
// The binding returns errno values rather than throwing: lib/errors.ts turns
// them into errors, so there is one place for error shapes. Argument types are
// checked again here (cheaply), so that no call from JavaScript, however
// wrong, can crash the process.
//
// Handle methods are plain N-API functions with the handle bound as their
// data: node-addon-api's wrappers and an unwrapped `this` cost as much again
// as the system call on the hot path (post, tryWait, value).
#include <arpa/inet.h>
#include <errno.h>
#include <semaphore.h>
#include <string.h>

#include <limits.h>
#include <math.h>

#include <string>
#include <unordered_set>
#include <vector>

#include <napi.h>

#include "listen_queue.h"
#include "semaphore.h"
#include "share_sum.h"
#include "waiter.h"

namespace {

using nsem::SharedSemaphore;

struct Bound;

// Per-environment state: the addon may be loaded by several worker threads.
struct EnvData {
  napi_env env = nullptr;
  // Carries settled waits from waiter threads to JavaScript.
  napi_threadsafe_function tsfn = nullptr;
  napi_ref settle_fn = nullptr;  // JavaScript settle(id, err)
  // Waits not yet settled in JavaScript; while any are, the process stays up.
  size_t waits_in_flight = 0;
  std::unordered_set<Bound*> open_handles;
  size_t live_handles = 0;  // Bound structs not yet finalized
  bool torn_down = false;
};

// What a JavaScript handle's method functions are bound to. The struct lives
// until the last of those functions is collected; Close() may come earlier.
struct Bound {
  explicit Bound(EnvData* d) : data(d) {}
  virtual ~Bound() = default;
  virtual bool IsOpen() const = 0;
  // Releases the native resources; idempotent. Returns the number of async
  // waits that ended with it.
  virtual size_t Release() = 0;
  EnvData* data;
  int functions_alive = 0;
};

// An open semaphore.
struct Handle : Bound {
  Handle(EnvData* d, sem_t* sem, const char* name, bool owned_share)
      : Bound(d),
        shared(new SharedSemaphore(sem, NotifySettled, d)),
        share_name(owned_share ? name : "") {}
  bool IsOpen() const override { return shared != nullptr; }
  size_t Release() override {
    if (shared == nullptr) return 0;
    if (!share_name.empty()) {
      // A gauge share dies with its owner: give its count back, drop its name.
      while (nsem::TryWait(shared->sem()) == 0) {
      }
      nsem::Unlink(share_name.c_str());
    }
    size_t outstanding = shared->Stop();
    shared->Unref();
    shared = nullptr;
    return outstanding;
  }
  static void NotifySettled(void* context, SharedSemaphore* shared);
  SharedSemaphore* shared;       // nullptr once closed
  const std::string share_name;  // set for a gauge's own share
};

// The sum over a gauge's shares.
struct SumHandle : Bound {
  SumHandle(EnvData* d, sem_t* generation) : Bound(d), sum(new nsem::ShareSum(generation)) {}
  bool IsOpen() const override { return sum != nullptr; }
  size_t Release() override {
    delete sum;
    sum = nullptr;
    return 0;
  }
  nsem::ShareSum* sum;  // nullptr once closed
};

constexpr int kBadHandle = EBADF;  // any call on a closed handle

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

void CloseBound(Bound* b) {
  if (!b->IsOpen()) return;
  size_t outstanding = b->Release();
  b->data->open_handles.erase(b);
  ChangeWaitsInFlight(b->data, -static_cast<ptrdiff_t>(outstanding));
}

void MaybeFreeEnvData(EnvData* data) {
  if (data->torn_down && data->live_handles == 0) delete data;
}

// Called on a waiter thread with the SharedSemaphore's lock held.
void Handle::NotifySettled(void* context, SharedSemaphore* shared) {
  EnvData* data = static_cast<EnvData*>(context);
  shared->Ref();  // released by CallSettle
  if (napi_call_threadsafe_function(data->tsfn, shared, napi_tsfn_nonblocking) != napi_ok) {
    shared->Unref();
  }
}

// On the JavaScript thread (or with env == nullptr while tearing down).
void CallSettle(napi_env env, napi_value, void* context, void* payload) {
  SharedSemaphore* shared = static_cast<SharedSemaphore*>(payload);
  std::vector<nsem::Settled> settled;
  shared->Drain(&settled);
  size_t delivered = 0;
  // env is nullptr when the environment is going away: nothing reaches JS.
  if (env != nullptr && !settled.empty()) {
    EnvData* data = static_cast<EnvData*>(context);
    ChangeWaitsInFlight(data, -static_cast<ptrdiff_t>(settled.size()));
    napi_value fn, undefined, argv[2];
    if (data->settle_fn != nullptr &&
        napi_get_reference_value(env, data->settle_fn, &fn) == napi_ok && fn != nullptr) {
      napi_get_undefined(env, &undefined);
      for (const nsem::Settled& s : settled) {
        napi_create_double(env, s.id, &argv[0]);
        napi_create_int32(env, s.err, &argv[1]);
        napi_value ignored;
        if (napi_call_function(env, undefined, fn, 2, argv, &ignored) != napi_ok) {
          // settle() ran and threw (ours never does): that one was delivered,
          // and the exception surfaces. Otherwise JS could not run at all
          // (a terminating worker): nothing was.
          bool threw = false;
          napi_is_exception_pending(env, &threw);
          if (threw) delivered++;
          break;
        }
        delivered++;
      }
    }
  }
  // Tokens taken for waits that JavaScript never received go back.
  for (size_t i = delivered; i < settled.size(); i++) {
    if (settled[i].err == 0) nsem::Post(shared->sem(), 1);
  }
  shared->Unref();
}

void TearDown(void* arg) {
  EnvData* data = static_cast<EnvData*>(arg);
  // Stop every waiter thread before the threadsafe function goes away.
  std::vector<Bound*> open(data->open_handles.begin(), data->open_handles.end());
  for (Bound* b : open) CloseBound(b);
  data->torn_down = true;
  if (data->settle_fn != nullptr) napi_delete_reference(data->env, data->settle_fn);
  data->settle_fn = nullptr;
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

// Fetches up to N arguments and the bound handle.
template <size_t N>
Handle* Args(napi_env env, napi_callback_info info, napi_value (&argv)[N], size_t* argc) {
  *argc = N;
  void* data = nullptr;
  if (napi_get_cb_info(env, info, argc, argv, nullptr, &data) != napi_ok) return nullptr;
  for (size_t i = *argc; i < N; i++) napi_get_undefined(env, &argv[i]);
  return static_cast<Handle*>(data);
}

// The method's bound struct: napi_get_cb_info asked for nothing else, its
// cheapest form.
template <typename T>
T* BoundOf(napi_env env, napi_callback_info info) {
  void* data = nullptr;
  napi_get_cb_info(env, info, nullptr, nullptr, nullptr, &data);
  return static_cast<T*>(data);
}

// undefined for success, so the hot paths create no value at all.
napi_value Result(napi_env env, int err) { return err == 0 ? nullptr : Int(env, err); }

// ---- handle methods (hot paths first) -------------------------------------

// post(count = 1) -> undefined | errno
napi_value Post(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  void* data = nullptr;
  napi_get_cb_info(env, info, &argc, nullptr, nullptr, &data);
  Handle* h = static_cast<Handle*>(data);
  if (h == nullptr || h->shared == nullptr) return Int(env, kBadHandle);
  if (argc == 0) return Result(env, nsem::PostOne(h->shared->sem()));  // nothing to unpack
  napi_value argv[1];
  argc = 1;
  double count;
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok ||
      !GetWhole(env, argv[0], 1, SEM_VALUE_MAX, &count)) {
    return Int(env, EINVAL);
  }
  return Result(env, nsem::Post(h->shared->sem(), static_cast<uint32_t>(count)));
}

// tryWait() -> undefined | EAGAIN | errno
napi_value TryWait(napi_env env, napi_callback_info info) {
  Handle* h = BoundOf<Handle>(env, info);
  if (h == nullptr || h->shared == nullptr) return Int(env, kBadHandle);
  return Result(env, nsem::TryWait(h->shared->sem()));
}

// value() -> value >= 0 | -errno
napi_value Value(napi_env env, napi_callback_info info) {
  Handle* h = BoundOf<Handle>(env, info);
  if (h == nullptr || h->shared == nullptr) return Int(env, -kBadHandle);
  int value = 0;
  int err = nsem::GetValue(h->shared->sem(), &value);
  return Int(env, err == 0 ? value : -err);
}

// waitSync(timeoutMs) -> 0 | ETIMEDOUT | errno; blocks this thread.
napi_value WaitSync(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  size_t argc;
  Handle* h = Args(env, info, argv, &argc);
  if (h == nullptr || h->shared == nullptr) return Int(env, kBadHandle);
  double timeout;
  if (!GetTimeout(env, argv[0], &timeout)) return Int(env, EINVAL);
  return Int(env, nsem::WaitUntil(h->shared->sem(), nsem::DeadlineAfterMs(timeout)));
}

// wait(id, timeoutMs) -> 0 (queued; settle(id, err) follows) | errno
napi_value Wait(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  size_t argc;
  Handle* h = Args(env, info, argv, &argc);
  if (h == nullptr || h->shared == nullptr) return Int(env, kBadHandle);
  double id, timeout;
  if (!GetWhole(env, argv[0], 0, 9007199254740991.0, &id) || !GetTimeout(env, argv[1], &timeout)) {
    return Int(env, EINVAL);
  }
  int err = h->shared->Enqueue(id, nsem::DeadlineAfterMs(timeout));
  if (err == 0) ChangeWaitsInFlight(h->data, 1);
  return Int(env, err);
}

// cancel(id) -> whether the wait was outstanding (its token, if any, is
// posted back)
napi_value Cancel(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  size_t argc;
  Handle* h = Args(env, info, argv, &argc);
  double id;
  if (h == nullptr || h->shared == nullptr || !GetWhole(env, argv[0], 0, 9007199254740991.0, &id)) {
    return Bool(env, false);
  }
  bool found = h->shared->Cancel(id);
  if (found) ChangeWaitsInFlight(h->data, -1);
  return Bool(env, found);
}

// close() -> 0; idempotent. Outstanding waits are forgotten (JavaScript
// rejects them) and their tokens posted back.
napi_value CloseMethod(napi_env env, napi_callback_info info) {
  Handle* h = BoundOf<Handle>(env, info);
  if (h != nullptr) CloseBound(h);
  return Int(env, 0);
}

// Each method function holds its Bound; the last one collected frees it.
// A handle never closed is closed here (sem_close, never unlink; a gauge
// share gives its count back).
void FinalizeFunction(napi_env, void* finalize_data, void*) {
  Bound* b = static_cast<Bound*>(finalize_data);
  if (--b->functions_alive > 0) return;
  CloseBound(b);
  EnvData* data = b->data;
  data->live_handles--;
  delete b;
  MaybeFreeEnvData(data);
}

struct Method {
  const char* name;
  napi_callback cb;
};

constexpr Method kHandleMethods[] = {
    {"post", Post}, {"tryWait", TryWait}, {"value", Value},       {"waitSync", WaitSync},
    {"wait", Wait}, {"cancel", Cancel},   {"close", CloseMethod},
};

// An object whose methods are bound to b; takes ownership of b.
template <size_t N>
napi_value MakeObject(napi_env env, Bound* b, const Method (&methods)[N]) {
  EnvData* data = b->data;
  data->open_handles.insert(b);
  data->live_handles++;
  napi_value obj;
  bool ok = napi_create_object(env, &obj) == napi_ok;
  for (size_t i = 0; ok && i < N; i++) {
    napi_value fn;
    ok = napi_create_function(env, methods[i].name, NAPI_AUTO_LENGTH, methods[i].cb, b, &fn) ==
             napi_ok &&
         napi_add_finalizer(env, fn, b, FinalizeFunction, nullptr, nullptr) == napi_ok;
    if (ok) {
      b->functions_alive++;
      napi_set_named_property(env, obj, methods[i].name, fn);
    }
  }
  if (ok) return obj;
  // Out of memory or a pending exception: close now; finalizers free b.
  CloseBound(b);
  if (b->functions_alive == 0) {
    data->live_handles--;
    delete b;
  }
  return nullptr;
}

// ---- share sum methods -------------------------------------------------------

SumHandle* SumArgs(napi_env env, napi_callback_info info, napi_value* argv, size_t* argc) {
  void* data = nullptr;
  if (napi_get_cb_info(env, info, argc, argv, nullptr, &data) != napi_ok) return nullptr;
  SumHandle* h = static_cast<SumHandle*>(data);
  return h != nullptr && h->sum != nullptr ? h : nullptr;
}

// generation() -> value >= 0 | -errno
napi_value SumGeneration(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  SumHandle* h = SumArgs(env, info, nullptr, &argc);
  return Int(env, h == nullptr ? -kBadHandle : h->sum->Generation());
}

// reset(generation, names[]) -> 0 | errno
napi_value SumReset(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  size_t argc = 2;
  SumHandle* h = SumArgs(env, info, argv, &argc);
  if (h == nullptr) return Int(env, kBadHandle);
  double generation;
  bool is_array = false;
  uint32_t length = 0;
  if (argc < 2 || !GetWhole(env, argv[0], 0, SEM_VALUE_MAX, &generation) ||
      napi_is_array(env, argv[1], &is_array) != napi_ok || !is_array ||
      napi_get_array_length(env, argv[1], &length) != napi_ok || length > 100000) {
    return Int(env, EINVAL);
  }
  std::vector<std::string> names(length);
  std::vector<const char*> pointers(length);
  for (uint32_t i = 0; i < length; i++) {
    char name[256];
    napi_value item;
    if (napi_get_element(env, argv[1], i, &item) != napi_ok ||
        !GetName(env, item, name, sizeof name)) {
      return Int(env, EINVAL);
    }
    names[i] = name;
    pointers[i] = names[i].c_str();
  }
  return Int(env, h->sum->Reset(static_cast<int>(generation), pointers));
}

// sum() -> total >= 0 | -errno (-ESTALE: list the shares again and reset)
napi_value SumSum(napi_env env, napi_callback_info info) {
  SumHandle* h = BoundOf<SumHandle>(env, info);
  int64_t total = 0;
  int err = h == nullptr || h->sum == nullptr ? kBadHandle : h->sum->Sum(&total);
  napi_value out;
  napi_create_int64(env, err == 0 ? total : -err, &out);
  return out;
}

napi_value SumClose(napi_env env, napi_callback_info info) {
  SumHandle* h = BoundOf<SumHandle>(env, info);
  if (h != nullptr) CloseBound(h);
  return Int(env, 0);
}

constexpr Method kSumMethods[] = {
    {"generation", SumGeneration},
    {"reset", SumReset},
    {"sum", SumSum},
    {"close", SumClose},
};

// ---- module functions ------------------------------------------------------

EnvData* GetData(napi_env env) {
  void* data = nullptr;
  napi_get_instance_data(env, &data);
  return static_cast<EnvData*>(data);
}

// open(name, create, exclusive, mode, value, ownedShare = false) -> handle | errno
// An owned share (a gauge's own) is drained and unlinked when it closes,
// however that happens: close(), garbage collection, or thread teardown.
Napi::Value Open(const Napi::CallbackInfo& info) {
  napi_env env = info.Env();
  char name[256];
  double mode = 0, value = 0;
  bool owned_share = info.Length() >= 6 && info[5].IsBoolean() && info[5].As<Napi::Boolean>();
  if (info.Length() < 5 || !GetName(env, info[0], name, sizeof name) || !info[1].IsBoolean() ||
      !info[2].IsBoolean() || !GetWhole(env, info[3], 0, 07777, &mode) ||
      !GetWhole(env, info[4], 0, SEM_VALUE_MAX, &value)) {
    return Napi::Number::New(env, EINVAL);
  }
  sem_t* sem = nullptr;
  int err = nsem::Open(name, info[1].As<Napi::Boolean>(), info[2].As<Napi::Boolean>(),
                       static_cast<unsigned>(mode), static_cast<unsigned>(value), &sem);
  if (err != 0) return Napi::Number::New(env, err);
  napi_value handle =
      MakeObject(env, new Handle(GetData(env), sem, name, owned_share), kHandleMethods);
  if (handle == nullptr) return Napi::Number::New(env, ENOMEM);
  return Napi::Value(env, handle);
}

// openSum(generationName) -> sum handle | errno
Napi::Value OpenSum(const Napi::CallbackInfo& info) {
  napi_env env = info.Env();
  char name[256];
  if (info.Length() < 1 || !GetName(env, info[0], name, sizeof name)) {
    return Napi::Number::New(env, EINVAL);
  }
  sem_t* sem = nullptr;
  int err = nsem::Open(name, false, false, 0, 0, &sem);
  if (err != 0) return Napi::Number::New(env, err);
  napi_value handle = MakeObject(env, new SumHandle(GetData(env), sem), kSumMethods);
  if (handle == nullptr) return Napi::Number::New(env, ENOMEM);
  return Napi::Value(env, handle);
}

// unlink(name) -> 0 | errno
Napi::Value Unlink(const Napi::CallbackInfo& info) {
  char name[256];
  if (info.Length() < 1 || !GetName(info.Env(), info[0], name, sizeof name)) {
    return Napi::Number::New(info.Env(), EINVAL);
  }
  return Napi::Number::New(info.Env(), nsem::Unlink(name));
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
Napi::Value SetSettle(const Napi::CallbackInfo& info) {
  EnvData* data = GetData(info.Env());
  if (info.Length() < 1 || !info[0].IsFunction()) {
    return Napi::Number::New(info.Env(), EINVAL);
  }
  if (data->settle_fn != nullptr) napi_delete_reference(info.Env(), data->settle_fn);
  napi_create_reference(info.Env(), info[0], 1, &data->settle_fn);
  return Napi::Number::New(info.Env(), 0);
}

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
  // Registered after the threadsafe function, so it runs before the
  // function's own teardown (cleanup hooks run last-in, first-out).
  napi_add_env_cleanup_hook(env, TearDown, data);

  exports.Set("open", Napi::Function::New(env, Open, "open"));
  exports.Set("openSum", Napi::Function::New(env, OpenSum, "openSum"));
  exports.Set("unlink", Napi::Function::New(env, Unlink, "unlink"));
  exports.Set("listenQueue", Napi::Function::New(env, ListenQueue, "listenQueue"));
  exports.Set("setSettle", Napi::Function::New(env, SetSettle, "setSettle"));
  exports.Set("SEM_VALUE_MAX", Napi::Number::New(env, SEM_VALUE_MAX));
  exports.Set("hasClockWait", Napi::Boolean::New(env, nsem::HasClockWait()));
  return exports;
}

}  // namespace

NODE_API_MODULE(named_semaphore, Init)

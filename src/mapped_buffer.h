// An ArrayBuffer over memory that a reference-counted owner keeps mapped (a
// semaphore's value word, a sum's slots), so that JavaScript reads it, or a
// gauge writes its own share, without a call into the addon.
//
// The buffer holds a reference on its owner, so the mapping outlives every
// view of it. Detach() empties the buffer and lets go of that reference (at
// close(), so the memory is unmapped now rather than whenever the collector
// finds the buffer): a view read afterwards has length 0 and reads undefined.
#ifndef NAMED_SEMAPHORE_MAPPED_BUFFER_H
#define NAMED_SEMAPHORE_MAPPED_BUFFER_H

#include <stddef.h>

#include <atomic>

#include <node_api.h>

namespace addon {

template <typename Owner>  // with Ref() and Unref()
class MappedBuffer {
 public:
  MappedBuffer() = default;
  MappedBuffer(const MappedBuffer&) = delete;
  MappedBuffer& operator=(const MappedBuffer&) = delete;

  // A new buffer over `bytes` at `at`, which `owner` keeps mapped; the one
  // made before, if any, is detached. nullptr if none could be made (the
  // runtime may allow no external buffers): the caller does without.
  napi_value Create(napi_env env, Owner* owner, void* at, size_t bytes) {
    Detach(env);
    Forget(env);
    Lease* lease = new Lease(owner);
    owner->Ref();
    napi_value buffer;
    if (napi_create_external_arraybuffer(env, at, bytes, End, lease, &buffer) != napi_ok) {
      End(env, nullptr, lease);  // the buffer's share
      Lease::Release(lease);     // ours
      return nullptr;
    }
    if (napi_create_reference(env, buffer, 0, &ref_) == napi_ok) {
      lease_ = lease;
    } else {
      Lease::Release(lease);  // not followed: the buffer keeps the mapping till it is collected
    }
    return buffer;
  }

  // The buffer, if it still lives and holds the mapping; else nullptr.
  napi_value Get(napi_env env) const {
    napi_value buffer = nullptr;
    bool detached = true;
    if (ref_ == nullptr || napi_get_reference_value(env, ref_, &buffer) != napi_ok ||
        buffer == nullptr || napi_is_detached_arraybuffer(env, buffer, &detached) != napi_ok ||
        detached) {
      return nullptr;
    }
    return buffer;
  }

  void Detach(napi_env env) {
    napi_value buffer = Get(env);
    // Collected, or detached already: whoever holds its memory (another
    // thread it was transferred to) keeps the mapping until it lets go.
    if (buffer == nullptr) return;
    Owner* owner = lease_->owner.exchange(nullptr);
    if (owner == nullptr) return;
    if (napi_detach_arraybuffer(env, buffer) == napi_ok) {
      owner->Unref();
    } else {
      lease_->owner.store(owner);  // still readable: keep the mapping
    }
  }

  // Drops the weak reference (when the handle goes; the buffer, if it still
  // lives, keeps the mapping until it is collected).
  void Forget(napi_env env) {
    if (ref_ != nullptr) napi_delete_reference(env, ref_);
    if (lease_ != nullptr) Lease::Release(lease_);
    ref_ = nullptr;
    lease_ = nullptr;
  }

 private:
  // Shared by the buffer and this object, so that neither outlives the
  // other's use of it; the buffer's memory may be let go on another thread.
  struct Lease {
    explicit Lease(Owner* o) : owner(o) {}
    std::atomic<Owner*> owner;  // nullptr once let go
    std::atomic<int> refs{2};
    static void Release(Lease* lease) {
      if (lease->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete lease;
    }
  };
  static void End(napi_env, void*, void* hint) {
    Lease* lease = static_cast<Lease*>(hint);
    if (Owner* owner = lease->owner.exchange(nullptr)) owner->Unref();
    Lease::Release(lease);
  }
  napi_ref ref_ = nullptr;  // weak
  Lease* lease_ = nullptr;  // our share, while ref_ is set
};

}  // namespace addon

#endif

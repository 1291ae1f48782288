// The open handles of one environment, by id: what the numbers JavaScript
// passes to the binding's functions stand for. Knows nothing of Node.
#ifndef NAMED_SEMAPHORE_HANDLE_TABLE_H
#define NAMED_SEMAPHORE_HANDLE_TABLE_H

#include <semaphore.h>
#include <stddef.h>
#include <stdint.h>

#include <vector>

namespace addon {

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

}  // namespace addon

#endif

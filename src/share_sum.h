// The sum over a gauge's shares, read in one call: a set of open share
// semaphores plus the gauge's generation semaphore, whose value changes
// whenever a share is added or removed, so the set knows when it is stale.
//
// And the trust model: /dev/shm is world-writable, so an entry named like a
// share may be anything. A share counts only if a process of this gauge could
// have made it (see ShareKind); anything else is skipped, never an error.
#ifndef NAMED_SEMAPHORE_SHARE_SUM_H
#define NAMED_SEMAPHORE_SHARE_SUM_H

#include <semaphore.h>
#include <stdint.h>
#include <sys/types.h>

#include <atomic>
#include <vector>

#include "semaphore.h"

namespace nsem {

// Who may write a gauge's shares: the owner, group and permission bits of
// its generation semaphore's file.
struct Trust {
  bool known = false;  // false: no generation file to judge by (file checks only)
  uid_t uid = 0;
  gid_t gid = 0;
  unsigned mode = 0;
};

// What an entry named like a share is. Only kShare is counted or reaped.
enum ShareKind {
  kShare = 0,
  kGone = 1,     // removed meanwhile
  kSymlink = 2,  // never followed
  kDirectory = 3,
  kFifo = 4,
  kSpecial = 5,     // socket or device
  kShort = 6,       // too short to hold a semaphore
  kForeign = 7,     // its owner or mode is not one a process of this gauge gives its shares
  kUnreadable = 8,  // we may not open it
};

// The trust of the generation semaphore `name` (a file, never a symlink).
// 0, or an errno (ENOENT: no such gauge).
int TrustOf(const char* generation_name, Trust* out);

// What the entry of semaphore `name` is, judged without opening it.
ShareKind KindOf(const char* name, const Trust& trust);

// Opens the share `name`, checking what was opened (no symlink followed, a
// regular file, long enough, made as the gauge makes shares). Returns 0 and
// *fd (kShare; close it), 0 and *kind another kind (skip it), or an errno
// for a failure of our own (EMFILE).
int OpenShare(const char* name, const Trust& trust, bool writable, int* fd, ShareKind* kind);

// Creates the semaphore file `name` whole: an unnamed file (O_TMPFILE) given
// its exact mode (no umask), group `gid` (if >= 0, as far as allowed) and an
// initialized semaphore, then linked into place. No reader ever sees it half
// made, and a process killed meanwhile leaves nothing. EEXIST if it exists.
int CreateWhole(const char* name, unsigned mode, unsigned value, int gid);

// Takes a dead process's share out of the gauge: drains it and removes its
// name. Returns how much it held, or -1 if `name` is no share (or gone).
int64_t ReapShare(const char* name, const Trust& trust);

// Where a sum maps what it reads: one stretch of address space, a page
// (SlotBytes()) per semaphore: slot 0 the generation semaphore, slots 1 to n
// the shares, every other slot a read-only page of zeros. JavaScript reads it
// through one ArrayBuffer, every byte of which stays mapped as long as that
// buffer holds its reference, so it sums without a call into the addon.
class SumWords {
 public:
  static size_t SlotBytes();  // the page size
  // `slots` empty slots (each a page of zeros), or nullptr if there is no room.
  static SumWords* Create(size_t slots);
  SumWords(const SumWords&) = delete;
  SumWords& operator=(const SumWords&) = delete;
  void Ref() { refs_.fetch_add(1, std::memory_order_relaxed); }
  void Unref();  // the last one unmaps the whole stretch and deletes this
  char* base() const { return base_; }
  size_t slots() const { return slots_; }
  size_t bytes() const { return slots_ * SlotBytes(); }
  sem_t* Slot(size_t i) const { return reinterpret_cast<sem_t*>(base_ + i * SlotBytes()); }
  // Maps the semaphore file `fd` into slot i, read-only. 0 or an errno.
  int Map(size_t i, int fd);
  // Makes slot i a page of zeros again (the file mapped there is let go).
  void Clear(size_t i);

 private:
  SumWords(char* base, size_t slots) : base_(base), slots_(slots) {}
  ~SumWords();
  char* const base_;
  const size_t slots_;
  std::atomic<int> refs_{1};
};

class ShareSum {
 public:
  ShareSum() = default;
  ~ShareSum();
  ShareSum(const ShareSum&) = delete;
  ShareSum& operator=(const ShareSum&) = delete;

  // Opens the generation semaphore `name` (never through a symlink) and
  // takes its file's owner and mode as the trust its shares are judged by.
  // 0, or an errno: ENOENT (no such gauge); ELOOP, EISDIR or EINVAL (the
  // file is no semaphore: a symlink, a directory, something else or too short).
  int Open(const char* generation_name);
  // The generation semaphore's value, or -errno.
  int Generation() const;
  // Replaces the set with these names, read after `generation` was: names
  // that are gone or no shares (see ShareKind) are skipped. Returns 0 or an errno.
  int Reset(int generation, const std::vector<const char*>& names);
  // Sums the shares into *out. ESTALE when the generation moved since Reset
  // (the caller lists the shares again); another errno on failure.
  int Sum(int64_t* out) const;
  // How many shares Reset mapped: slots 1 to size() of words().
  size_t size() const { return shares_; }
  // Where the generation and the shares are mapped; replaced by a Reset
  // that needs more slots.
  SumWords* words() const { return words_; }

 private:
  sem_t* generation() const { return words_->Slot(0); }
  void ClearShares();

  int generation_fd_ = -1;  // kept to map the generation into a bigger SumWords
  Trust trust_;
  const bool read_words_ = HasValueWord();  // read value words inline (see nsem::ValueWord)
  SumWords* words_ = nullptr;
  int generation_seen_ = -1;
  size_t shares_ = 0;
};

}  // namespace nsem

#endif

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

// Opens and maps the share `name`, checking what was opened (no symlink
// followed, a regular file, long enough, made as the gauge makes shares).
// Returns 0 and *out (kShare), 0 and *kind another kind (skip it), or an
// errno for a failure of our own (EMFILE, ENOMEM). Close with CloseShare.
int OpenShare(const char* name, const Trust& trust, bool writable, sem_t** out, ShareKind* kind);
void CloseShare(sem_t* share);

// Creates the semaphore file `name` whole: an unnamed file (O_TMPFILE) given
// its exact mode (no umask), group `gid` (if >= 0, as far as allowed) and an
// initialized semaphore, then linked into place. No reader ever sees it half
// made, and a process killed meanwhile leaves nothing. EEXIST if it exists.
int CreateWhole(const char* name, unsigned mode, unsigned value, int gid);

// Takes a dead process's share out of the gauge: drains it and removes its
// name. Returns how much it held, or -1 if `name` is no share (or gone).
int64_t ReapShare(const char* name, const Trust& trust);

class ShareSum {
 public:
  ShareSum(sem_t* generation, const Trust& trust)
      : generation_(generation), trust_(trust), read_words_(HasValueWord()) {}
  ~ShareSum();
  ShareSum(const ShareSum&) = delete;
  ShareSum& operator=(const ShareSum&) = delete;

  // The generation semaphore's value, or -errno.
  int Generation() const;
  // Replaces the set with these names, read after `generation` was: names
  // that are gone or no shares (see ShareKind) are skipped. Returns 0 or an errno.
  int Reset(int generation, const std::vector<const char*>& names);
  // Sums the shares into *out. ESTALE when the generation moved since Reset
  // (the caller lists the shares again); another errno on failure.
  int Sum(int64_t* out) const;
  size_t size() const { return shares_.size(); }

 private:
  void CloseShares();

  sem_t* const generation_;
  const Trust trust_;
  const bool read_words_;  // read value words inline (see nsem::ValueWord)
  int generation_seen_ = -1;
  std::vector<sem_t*> shares_;  // mapped by OpenShare
};

}  // namespace nsem

#endif

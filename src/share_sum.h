// The sum over a gauge's shares, read in one call: a set of open share
// semaphores plus the gauge's generation semaphore, whose value changes
// whenever a share is added or removed, so the set knows when it is stale.
#ifndef NAMED_SEMAPHORE_SHARE_SUM_H
#define NAMED_SEMAPHORE_SHARE_SUM_H

#include <semaphore.h>
#include <stdint.h>

#include <vector>

#include "semaphore.h"

namespace nsem {

class ShareSum {
 public:
  explicit ShareSum(sem_t* generation) : generation_(generation), read_words_(HasValueWord()) {}
  ~ShareSum();
  ShareSum(const ShareSum&) = delete;
  ShareSum& operator=(const ShareSum&) = delete;

  // The generation semaphore's value, or -errno.
  int Generation() const;
  // Replaces the set with these names, read after `generation` was: names
  // that are gone (ENOENT) are skipped. Returns 0 or an errno.
  int Reset(int generation, const std::vector<const char*>& names);
  // Sums the shares into *out. ESTALE when the generation moved since Reset
  // (the caller lists the shares again); another errno on failure.
  int Sum(int64_t* out) const;
  size_t size() const { return shares_.size(); }

 private:
  void CloseShares();

  sem_t* const generation_;
  const bool read_words_;  // read value words inline (see nsem::ValueWord)
  int generation_seen_ = -1;
  std::vector<sem_t*> shares_;
};

}  // namespace nsem

#endif

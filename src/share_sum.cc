#include "glibc_compat.h"

#include "share_sum.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "semaphore.h"

namespace nsem {

namespace {

// The file of semaphore `name`, found as glibc's sem_open finds it: 0, or
// the errno sem_open gives such a name (EINVAL: empty or an inner '/').
int PathOf(const char* name, char (*path)[sizeof "/dev/shm/sem." + NAME_MAX]) {
  while (*name == '/') name++;
  if (*name == '\0' || strchr(name, '/') != nullptr) return EINVAL;
  if (strlen(name) + sizeof "sem." - 1 > NAME_MAX) return ENAMETOOLONG;
  snprintf(*path, sizeof *path, "/dev/shm/sem.%s", name);
  return 0;
}

// statx, not stat or fstat: glibc 2.28 has it, where those symbols are 2.33.
int StatOf(int dirfd, const char* path, int flags, struct statx* st) {
  return statx(dirfd, path, flags | AT_SYMLINK_NOFOLLOW,
               STATX_TYPE | STATX_MODE | STATX_UID | STATX_GID | STATX_SIZE, st) == 0
             ? 0
             : errno;
}

// Whether a file with this owner and mode can be a share of the gauge: the
// generation's owner may give its shares any mode; anyone else's must have
// the gauge's mode, which must let them write (as its group, or as anyone).
bool MadeByTheGauge(const struct statx& st, const Trust& t) {
  if (!t.known || st.stx_uid == t.uid) return true;
  if ((st.stx_mode & 07777) != (t.mode & 07777)) return false;
  return (t.mode & 002) != 0 || ((t.mode & 020) != 0 && st.stx_gid == t.gid);
}

ShareKind Judge(const struct statx& st, const Trust& t) {
  if (S_ISLNK(st.stx_mode)) return kSymlink;
  if (S_ISDIR(st.stx_mode)) return kDirectory;
  if (S_ISFIFO(st.stx_mode)) return kFifo;
  if (!S_ISREG(st.stx_mode)) return kSpecial;
  if (st.stx_size < sizeof(sem_t)) return kShort;
  return MadeByTheGauge(st, t) ? kShare : kForeign;
}

}  // namespace

int TrustOf(const char* generation_name, Trust* out) {
  char path[sizeof "/dev/shm/sem." + NAME_MAX];
  int err = PathOf(generation_name, &path);
  struct statx st;
  if (err == 0) err = StatOf(AT_FDCWD, path, 0, &st);
  if (err != 0) return err;
  if (!S_ISREG(st.stx_mode)) return EINVAL;
  out->known = true;
  out->uid = st.stx_uid;
  out->gid = st.stx_gid;
  out->mode = st.stx_mode & 07777;
  return 0;
}

ShareKind KindOf(const char* name, const Trust& trust) {
  char path[sizeof "/dev/shm/sem." + NAME_MAX];
  struct statx st;
  if (PathOf(name, &path) != 0 || StatOf(AT_FDCWD, path, 0, &st) != 0) return kGone;
  return Judge(st, trust);
}

int OpenShare(const char* name, const Trust& trust, bool writable, sem_t** out, ShareKind* kind) {
  char path[sizeof "/dev/shm/sem." + NAME_MAX];
  *out = nullptr;
  if (int err = PathOf(name, &path)) return err;  // as sem_open refuses such a name
  // O_NONBLOCK: a FIFO opens at once (and is then refused), O_NOFOLLOW: a
  // symlink fails with ELOOP; what was opened is judged, not the name.
  int fd =
      open(path, (writable ? O_RDWR : O_RDONLY) | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    if (err == EMFILE || err == ENFILE || err == ENOMEM) return err;
    *kind = err == ENOENT                   ? kGone
            : err == EACCES || err == EPERM ? kUnreadable
                                            : KindOf(name, trust);
    if (*kind == kShare) *kind = kUnreadable;  // opens with neither: not ours to count
    return 0;
  }
  struct statx st;
  int err = StatOf(fd, "", AT_EMPTY_PATH, &st);
  *kind = err != 0 ? kGone : Judge(st, trust);
  if (*kind == kShare) {
    void* map = mmap(nullptr, sizeof(sem_t), writable ? PROT_READ | PROT_WRITE : PROT_READ,
                     MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) {
      err = errno;
      close(fd);
      return err;
    }
    *out = static_cast<sem_t*>(map);
  }
  close(fd);
  return 0;
}

void CloseShare(sem_t* share) { munmap(share, sizeof(sem_t)); }

int CreateWhole(const char* name, unsigned mode, unsigned value, int gid) {
  char path[sizeof "/dev/shm/sem." + NAME_MAX];
  if (int err = PathOf(name, &path)) return err;
  int fd = open("/dev/shm", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0) return errno;
  sem_t sem;
  int err = 0;
  // The group first: chown clears the set-id bits that fchmod then sets.
  if (gid >= 0 && fchown(fd, static_cast<uid_t>(-1), static_cast<gid_t>(gid)) != 0) {
    // Not a member of that group: the share keeps ours (and may be skipped).
  }
  if (fchmod(fd, static_cast<mode_t>(mode)) != 0 || sem_init(&sem, 1, value) != 0) {
    err = errno;
  } else if (write(fd, &sem, sizeof sem) != static_cast<ssize_t>(sizeof sem)) {
    err = errno != 0 ? errno : EIO;
  } else if (linkat(fd, "", AT_FDCWD, path, AT_EMPTY_PATH) != 0) {
    // AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH before Linux 6.10; the
    // /proc/self/fd link is the documented way for everyone else.
    err = errno;
    if (err != EEXIST) {
      char self[64];
      snprintf(self, sizeof self, "/proc/self/fd/%d", fd);
      err = linkat(AT_FDCWD, self, AT_FDCWD, path, AT_SYMLINK_FOLLOW) == 0 ? 0 : errno;
    }
  }
  close(fd);
  return err;
}

int64_t ReapShare(const char* name, const Trust& trust) {
  sem_t* share = nullptr;
  ShareKind kind = kGone;
  if (OpenShare(name, trust, true, &share, &kind) != 0 || share == nullptr) return -1;
  // Several reapers may drain one share at once: each token goes to one.
  int64_t taken = Drain(share);
  Unlink(name);
  CloseShare(share);
  return taken;
}

ShareSum::~ShareSum() {
  CloseShares();
  Close(generation_);
}

void ShareSum::CloseShares() {
  for (sem_t* s : shares_) CloseShare(s);
  shares_.clear();
}

int ShareSum::Generation() const {
  int value = 0;
  int err = GetValue(generation_, &value);
  return err == 0 ? value : -err;
}

int ShareSum::Reset(int generation, const std::vector<const char*>& names) {
  CloseShares();
  generation_seen_ = -1;
  for (const char* name : names) {
    sem_t* s = nullptr;
    ShareKind kind = kGone;
    int err = OpenShare(name, trust_, false, &s, &kind);
    if (err != 0) {
      CloseShares();
      return err;
    }
    if (s != nullptr) shares_.push_back(s);  // else removed since listed, or no share
  }
  generation_seen_ = generation;
  return 0;
}

int ShareSum::Sum(int64_t* out) const {
  if (generation_seen_ < 0) return ESTALE;
  // An integer total: a floating-point one would chain an addition's latency
  // per share, a third of the whole read at 16 shares.
  int64_t total = 0;
  if (read_words_) {
    // What sem_getvalue reads, without a call per semaphore (at 16 shares, a
    // read went from 82 ns to 60).
    auto value = [](sem_t* s) { return __atomic_load_n(ValueWordUnchecked(s), __ATOMIC_RELAXED); };
    if (value(generation_) != generation_seen_) return ESTALE;
    for (sem_t* s : shares_) total += value(s);
  } else {
    if (Generation() != generation_seen_) return ESTALE;
    for (sem_t* s : shares_) {
      int value = 0;
      int err = GetValue(s, &value);
      if (err != 0) return err;
      total += value;
    }
  }
  *out = total;
  return 0;
}

}  // namespace nsem

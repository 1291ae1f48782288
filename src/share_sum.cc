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

int OpenShare(const char* name, const Trust& trust, bool writable, int* fd, ShareKind* kind) {
  char path[sizeof "/dev/shm/sem." + NAME_MAX];
  *fd = -1;
  if (int err = PathOf(name, &path)) return err;  // as sem_open refuses such a name
  // O_NONBLOCK: a FIFO opens at once (and is then refused), O_NOFOLLOW: a
  // symlink fails with ELOOP; what was opened is judged, not the name.
  int f =
      open(path, (writable ? O_RDWR : O_RDONLY) | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (f < 0) {
    int err = errno;
    if (err == EMFILE || err == ENFILE || err == ENOMEM) return err;
    *kind = err == ENOENT                   ? kGone
            : err == EACCES || err == EPERM ? kUnreadable
                                            : KindOf(name, trust);
    if (*kind == kShare) *kind = kUnreadable;  // opens with neither: not ours to count
    return 0;
  }
  struct statx st;
  *kind = StatOf(f, "", AT_EMPTY_PATH, &st) != 0 ? kGone : Judge(st, trust);
  if (*kind == kShare) {
    *fd = f;
  } else {
    close(f);
  }
  return 0;
}

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
  int fd = -1;
  ShareKind kind = kGone;
  if (OpenShare(name, trust, true, &fd, &kind) != 0 || fd < 0) return -1;
  void* map = mmap(nullptr, sizeof(sem_t), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (map == MAP_FAILED) return -1;
  // Several reapers may drain one share at once: each token goes to one.
  int64_t taken = Drain(static_cast<sem_t*>(map));
  Unlink(name);
  munmap(map, sizeof(sem_t));
  return taken;
}

size_t SumWords::SlotBytes() {
  static const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return page;
}

SumWords* SumWords::Create(size_t slots) {
  void* base = mmap(nullptr, slots * SlotBytes(), PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (base == MAP_FAILED) return nullptr;
  return new SumWords(static_cast<char*>(base), slots);
}

SumWords::~SumWords() { munmap(base_, bytes()); }

void SumWords::Unref() {
  if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
}

int SumWords::Map(size_t i, int fd) {
  void* at = mmap(Slot(i), sizeof(sem_t), PROT_READ, MAP_SHARED | MAP_FIXED, fd, 0);
  return at == MAP_FAILED ? errno : 0;
}

void SumWords::Clear(size_t i) {
  // If this fails (no memory to split the mapping), the file stays mapped:
  // still readable, never a hole.
  mmap(Slot(i), SlotBytes(), PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
}

int ShareSum::Open(const char* generation_name) {
  char path[sizeof "/dev/shm/sem." + NAME_MAX];
  if (int err = PathOf(generation_name, &path)) return err;
  // Read-write, as sem_open opens it: who may not write the gauge may not read it either.
  int fd = open(path, O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) return errno;
  struct statx st;
  int err = StatOf(fd, "", AT_EMPTY_PATH, &st);
  if (err == 0 && !S_ISREG(st.stx_mode)) err = S_ISDIR(st.stx_mode) ? EISDIR : EINVAL;
  if (err == 0 && st.stx_size < sizeof(sem_t)) err = EINVAL;  // would raise SIGBUS when read
  SumWords* words = err == 0 ? SumWords::Create(1) : nullptr;
  if (err == 0 && words == nullptr) err = ENOMEM;
  if (err == 0) err = words->Map(0, fd);
  if (err != 0) {
    if (words != nullptr) words->Unref();
    close(fd);
    return err;
  }
  generation_fd_ = fd;
  words_ = words;
  trust_.known = true;
  trust_.uid = st.stx_uid;
  trust_.gid = st.stx_gid;
  trust_.mode = st.stx_mode & 07777;
  return 0;
}

ShareSum::~ShareSum() {
  if (words_ != nullptr) words_->Unref();
  if (generation_fd_ >= 0) close(generation_fd_);
}

void ShareSum::ClearShares() {
  for (size_t i = 1; i <= shares_; i++) words_->Clear(i);
  shares_ = 0;
}

int ShareSum::Generation() const {
  int value = 0;
  int err = GetValue(generation(), &value);
  return err == 0 ? value : -err;
}

int ShareSum::Reset(int generation, const std::vector<const char*>& names) {
  ClearShares();
  generation_seen_ = -1;
  if (words_->slots() < names.size() + 1) {
    // Room for twice as many, so a gauge that grows share by share is
    // mapped again only now and then.
    SumWords* bigger = SumWords::Create(2 * names.size() + 2);
    int err = bigger == nullptr ? ENOMEM : bigger->Map(0, generation_fd_);
    if (err != 0) {
      if (bigger != nullptr) bigger->Unref();
      return err;
    }
    words_->Unref();  // a buffer over it may still hold it
    words_ = bigger;
  }
  for (const char* name : names) {
    int fd = -1;
    ShareKind kind = kGone;
    int err = OpenShare(name, trust_, false, &fd, &kind);
    if (err == 0 && fd >= 0) {
      err = words_->Map(shares_ + 1, fd);
      close(fd);
      if (err == 0) shares_++;
    }
    if (err != 0) {
      ClearShares();
      return err;
    }
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
    if (value(generation()) != generation_seen_) return ESTALE;
    for (size_t i = 1; i <= shares_; i++) total += value(words_->Slot(i));
  } else {
    if (Generation() != generation_seen_) return ESTALE;
    for (size_t i = 1; i <= shares_; i++) {
      int value = 0;
      int err = GetValue(words_->Slot(i), &value);
      if (err != 0) return err;
      total += value;
    }
  }
  *out = total;
  return 0;
}

}  // namespace nsem

// Pin the glibc symbol versions this addon links against, so that a prebuild
// made on a new glibc still loads on every glibc that Node 20 supports (2.28+).
//
// glibc 2.34 moved the sem_*, pthread_* and dl* functions from libpthread and
// libdl into libc and gave them a new default version (GLIBC_2.34). The old
// versions are still exported, so we ask for them by name. On glibc < 2.34 the
// same versioned symbols are found in libpthread.so.0, which binding.gyp adds
// as a needed library.
#ifndef NAMED_SEMAPHORE_GLIBC_COMPAT_H
#define NAMED_SEMAPHORE_GLIBC_COMPAT_H

#include <limits.h>  // defines __GLIBC__ on glibc

#if defined(__linux__) && defined(__GLIBC__) && (defined(__x86_64__) || defined(__aarch64__))
// The oldest version of each symbol: x86-64's first glibc had most of them at
// 2.2.5; aarch64's first glibc (2.17) has them all at 2.17.
#if defined(__x86_64__)
#define NSEM_OLDEST "GLIBC_2.2.5"
#define NSEM_OLDEST_SETCLOCK "GLIBC_2.3.3"
#else
#define NSEM_OLDEST "GLIBC_2.17"
#define NSEM_OLDEST_SETCLOCK "GLIBC_2.17"
#endif
#define NSEM_PIN(sym, ver) __asm__(".symver " #sym "," #sym "@" ver)
NSEM_PIN(sem_open, NSEM_OLDEST);
NSEM_PIN(sem_close, NSEM_OLDEST);
NSEM_PIN(sem_unlink, NSEM_OLDEST);
NSEM_PIN(sem_post, NSEM_OLDEST);
NSEM_PIN(sem_wait, NSEM_OLDEST);
NSEM_PIN(sem_trywait, NSEM_OLDEST);
NSEM_PIN(sem_timedwait, NSEM_OLDEST);
NSEM_PIN(sem_getvalue, NSEM_OLDEST);
NSEM_PIN(sem_init, NSEM_OLDEST);
NSEM_PIN(sem_destroy, NSEM_OLDEST);
NSEM_PIN(pthread_create, NSEM_OLDEST);
NSEM_PIN(pthread_join, NSEM_OLDEST);
NSEM_PIN(pthread_condattr_setclock, NSEM_OLDEST_SETCLOCK);
NSEM_PIN(dlsym, NSEM_OLDEST);
#undef NSEM_PIN
#undef NSEM_OLDEST
#undef NSEM_OLDEST_SETCLOCK
#endif

#endif

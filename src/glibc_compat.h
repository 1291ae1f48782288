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

#if defined(__linux__) && defined(__GLIBC__) && defined(__x86_64__)
#define NSEM_PIN(sym, ver) __asm__(".symver " #sym "," #sym "@" ver)
NSEM_PIN(sem_open, "GLIBC_2.2.5");
NSEM_PIN(sem_close, "GLIBC_2.2.5");
NSEM_PIN(sem_unlink, "GLIBC_2.2.5");
NSEM_PIN(sem_post, "GLIBC_2.2.5");
NSEM_PIN(sem_wait, "GLIBC_2.2.5");
NSEM_PIN(sem_trywait, "GLIBC_2.2.5");
NSEM_PIN(sem_timedwait, "GLIBC_2.2.5");
NSEM_PIN(sem_getvalue, "GLIBC_2.2.5");
NSEM_PIN(sem_init, "GLIBC_2.2.5");
NSEM_PIN(sem_destroy, "GLIBC_2.2.5");
NSEM_PIN(pthread_create, "GLIBC_2.2.5");
NSEM_PIN(pthread_detach, "GLIBC_2.2.5");
NSEM_PIN(pthread_join, "GLIBC_2.2.5");
NSEM_PIN(pthread_condattr_setclock, "GLIBC_2.3.3");
NSEM_PIN(dlsym, "GLIBC_2.2.5");
#undef NSEM_PIN
#endif

#endif

// The floor, in plain C: sem_post + sem_trywait, sem_getvalue, sem_open +
// sem_close in a loop; the cross-process ping-pong (two processes, two
// semaphores, one round trip = post theirs, wait ours); and throughput.
//
// Each prints one line of JSON; the semaphores are left for the caller to
// unlink (the bench removes every name it made).
//
//   semloop posttry NAME N    {ns}: N x (sem_post + sem_trywait)
//   semloop getvalue NAME N   {ns}: N x sem_getvalue
//   semloop open NAME N       {ns}: N x (sem_open + sem_close)
//   semloop pingpong NAME N   {ns}: N round trips between two processes
//                             (semaphores NAME-ping and NAME-pong)
//   semloop hammer NAME MS    {pairs}: sem_post + sem_trywait pairs in MS ms
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static sem_t *open_or_die(const char *name, unsigned value) {
  sem_t *s = sem_open(name, O_CREAT, 0600, value);
  if (s == SEM_FAILED) {
    fprintf(stderr, "sem_open %s: %s\n", name, strerror(errno));
    exit(1);
  }
  return s;
}

// n x (sem_post + sem_trywait), after a warm-up; prints the elapsed ns.
static int post_try(const char *name, long iters) {
  sem_t *s = open_or_die(name, 0);
  for (long i = 0; i < iters / 10; i++) {
    sem_post(s);
    sem_trywait(s);
  }
  double t0 = now_ns();
  for (long i = 0; i < iters; i++) {
    if (sem_post(s) != 0 || sem_trywait(s) != 0) return 1;
  }
  printf("{\"ns\":%.0f}\n", now_ns() - t0);
  sem_close(s);
  return 0;
}

// n x sem_getvalue, after a warm-up; prints the elapsed ns.
static int get_value(const char *name, long iters) {
  sem_t *s = open_or_die(name, 0);
  volatile int sink = 0;
  for (long i = 0; i < iters / 10; i++) {
    int v;
    sem_getvalue(s, &v);
    sink += v;
  }
  double t0 = now_ns();
  for (long i = 0; i < iters; i++) {
    int v;
    sem_getvalue(s, &v);
    sink += v;
  }
  printf("{\"ns\":%.0f}\n", now_ns() - t0);
  sem_close(s);
  return 0;
}

static int open_close(const char *name, long iters) {
  sem_t *keep = open_or_die(name, 0);
  sem_close(keep);
  double t0 = now_ns();
  for (long i = 0; i < iters; i++) sem_close(open_or_die(name, 0));
  double t1 = now_ns();
  printf("{\"ns\":%.0f}\n", t1 - t0);
  return 0;
}

static int pingpong(const char *name, long iters) {
  char ping_name[256], pong_name[256];
  snprintf(ping_name, sizeof ping_name, "%s-ping", name);
  snprintf(pong_name, sizeof pong_name, "%s-pong", name);
  sem_unlink(ping_name);
  sem_unlink(pong_name);
  sem_t *ping = open_or_die(ping_name, 0);
  sem_t *pong = open_or_die(pong_name, 0);
  long warm = iters / 10 + 1;
  pid_t pid = fork();
  if (pid < 0) return 1;
  if (pid == 0) {  // the ponger: answers every ping
    for (long i = 0; i < warm + iters; i++) {
      while (sem_wait(ping) != 0 && errno == EINTR) {
      }
      sem_post(pong);
    }
    _exit(0);
  }
  double t0 = 0;
  for (long i = 0; i < warm + iters; i++) {
    if (i == warm) t0 = now_ns();
    sem_post(ping);
    while (sem_wait(pong) != 0 && errno == EINTR) {
    }
  }
  double t1 = now_ns();
  waitpid(pid, NULL, 0);
  printf("{\"ns\":%.0f}\n", t1 - t0);
  return 0;
}

static int hammer(const char *name, long ms) {
  sem_t *s = open_or_die(name, 0);
  double end = now_ns() + (double)ms * 1e6;
  long pairs = 0;
  while (now_ns() < end) {
    for (int i = 0; i < 1000; i++) {
      sem_post(s);
      sem_trywait(s);
    }
    pairs += 1000;
  }
  printf("{\"pairs\":%ld}\n", pairs);
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s posttry|getvalue|open|pingpong|hammer NAME N\n", argv[0]);
    return 2;
  }
  long n = atol(argv[3]);
  if (strcmp(argv[1], "posttry") == 0) return post_try(argv[2], n);
  if (strcmp(argv[1], "getvalue") == 0) return get_value(argv[2], n);
  if (strcmp(argv[1], "open") == 0) return open_close(argv[2], n);
  if (strcmp(argv[1], "pingpong") == 0) return pingpong(argv[2], n);
  if (strcmp(argv[1], "hammer") == 0) return hammer(argv[2], n);
  fprintf(stderr, "unknown mode %s\n", argv[1]);
  return 2;
}

// Bench-only addon: the floor of a JavaScript -> native call through plain
// N-API, and the leanest possible bindings of sem_post, sem_trywait and
// sem_getvalue (the semaphore bound as each function's data), for reference.
//
// Also a prototype, for diagnosis only: map(name) maps a named semaphore's
// file a second time and hands its 8-byte counter word to JavaScript as an
// ArrayBuffer, so that post/tryWait/value can be done with Atomics and no
// native call at all (see bench/lib/mapped.js; glibc >= 2.21, 64-bit atomics,
// little-endian: value in the low 32 bits, waiters in the high 32 bits).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <node_api.h>
#include <semaphore.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

// noop() -> undefined: does nothing at all.
static napi_value Noop(napi_env env, napi_callback_info info) {
  (void)env;
  (void)info;
  return NULL;
}

// napi_get_cb_info asked for the data alone: its cheapest form.
static sem_t* BoundSem(napi_env env, napi_callback_info info) {
  void* data = NULL;
  napi_get_cb_info(env, info, NULL, NULL, NULL, &data);
  return (sem_t*)data;
}

static napi_value Int(napi_env env, int v) {
  napi_value out;
  napi_create_int32(env, v, &out);
  return out;
}

// post() -> undefined | errno (returning NULL creates no value)
static napi_value Post(napi_env env, napi_callback_info info) {
  return sem_post(BoundSem(env, info)) == 0 ? NULL : Int(env, errno);
}

// tryWait() -> undefined | errno
static napi_value TryWait(napi_env env, napi_callback_info info) {
  return sem_trywait(BoundSem(env, info)) == 0 ? NULL : Int(env, errno);
}

// value() -> value | -errno
static napi_value Value(napi_env env, napi_callback_info info) {
  int v = 0;
  if (sem_getvalue(BoundSem(env, info), &v) != 0) v = -errno;
  return Int(env, v);
}

static void CloseSem(napi_env env, void* data, void* hint) {
  (void)env;
  (void)hint;
  sem_close((sem_t*)data);
}

// open(name) -> { post, tryWait, value } | errno. The semaphore is closed
// when the `value` function is collected (the bench keeps them all alive).
static napi_value Open(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  char name[256];
  size_t len = 0;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || napi_get_value_string_utf8(env, argv[0], name, sizeof name, &len) != napi_ok) {
    return Int(env, EINVAL);
  }
  sem_t* sem = sem_open(name, O_CREAT, 0600, 0);
  if (sem == SEM_FAILED) return Int(env, errno);
  napi_value obj, fn;
  napi_create_object(env, &obj);
  napi_create_function(env, "post", NAPI_AUTO_LENGTH, Post, sem, &fn);
  napi_set_named_property(env, obj, "post", fn);
  napi_create_function(env, "tryWait", NAPI_AUTO_LENGTH, TryWait, sem, &fn);
  napi_set_named_property(env, obj, "tryWait", fn);
  napi_create_function(env, "value", NAPI_AUTO_LENGTH, Value, sem, &fn);
  napi_add_finalizer(env, fn, sem, CloseSem, NULL, NULL);
  napi_set_named_property(env, obj, "value", fn);
  return obj;
}

static void Unmap(napi_env env, void* data, void* hint) {
  (void)env;
  (void)hint;
  munmap(data, sizeof(sem_t));
}

// wake() -> woken: FUTEX_WAKE one waiter on the bound counter word, as
// sem_post does when the waiter count is not zero (shared futex).
static napi_value Wake(napi_env env, napi_callback_info info) {
  void* data = NULL;
  size_t argc = 0;
  napi_get_cb_info(env, info, &argc, NULL, NULL, &data);
  return Int(env, (int)syscall(SYS_futex, data, FUTEX_WAKE, 1, NULL, NULL, 0));
}

// map(name) -> { word: ArrayBuffer(8), wake() } | errno
static napi_value Map(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  char name[256], file[300];
  size_t len = 0;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || napi_get_value_string_utf8(env, argv[0], name, sizeof name, &len) != napi_ok ||
      name[0] != '/') {
    return Int(env, EINVAL);
  }
  snprintf(file, sizeof file, "/dev/shm/sem.%s", name + 1);
  int fd = open(file, O_RDWR | O_CLOEXEC);
  if (fd < 0) return Int(env, errno);
  void* p = mmap(NULL, sizeof(sem_t), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  int err = errno;
  close(fd);
  if (p == MAP_FAILED) return Int(env, err);
  napi_value obj, buf, fn;
  napi_create_object(env, &obj);
  // The mapping lives as long as the ArrayBuffer (and the wake function,
  // which the object keeps reachable alongside it).
  napi_create_external_arraybuffer(env, p, 8, Unmap, NULL, &buf);
  napi_set_named_property(env, obj, "word", buf);
  napi_create_function(env, "wake", NAPI_AUTO_LENGTH, Wake, p, &fn);
  napi_set_named_property(env, obj, "wake", fn);
  return obj;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "noop", NAPI_AUTO_LENGTH, Noop, NULL, &fn);
  napi_set_named_property(env, exports, "noop", fn);
  napi_create_function(env, "open", NAPI_AUTO_LENGTH, Open, NULL, &fn);
  napi_set_named_property(env, exports, "open", fn);
  napi_create_function(env, "map", NAPI_AUTO_LENGTH, Map, NULL, &fn);
  napi_set_named_property(env, exports, "map", fn);
  return exports;
}

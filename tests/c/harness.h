/*
 * harness.h -- tiny test harness for shmx's C tests.
 *
 * Each test program is its own process (meson runs one per test, with a
 * timeout). CHECK macros print both values and the location and work with
 * NDEBUG. Helpers fork companion processes and wait for them with a deadline.
 *
 *   TEST(name) { CHECK_EQ(1 + 1, 2); }
 *   int main(void) { RUN(name); return harness_done(); }
 */
#ifndef SHMX_HARNESS_H
#define SHMX_HARNESS_H

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>
#ifdef _WIN32
#define WIN32_LEAN_AND_MEAN
#include <windows.h>
#else
#include <sys/wait.h>
#endif

#include "shmx.h"

static int harness_failed, harness_passed, harness_skipped, harness_cur_failed,
    harness_cur_skipped;
static const char *harness_cur = "";

/* A test that needs something this system lacks says so and is counted as
 * skipped (never silently passed): SKIP("needs fork()"). */
#define SKIP(why)                                                              \
  do {                                                                         \
    printf("skip - %s: %s\n", harness_cur, why);                               \
    harness_cur_skipped = 1;                                                   \
    return;                                                                    \
  } while (0)
#ifdef _WIN32
#define SKIP_WITHOUT_FORK() SKIP("forks child processes (POSIX only); "        \
                                 "tests/win covers processes on Windows")
#else
#define SKIP_WITHOUT_FORK() ((void)0)
#endif

#define TEST(name) static void test_##name(void)
#define RUN(name)                                                              \
  do {                                                                         \
    harness_cur = #name;                                                       \
    harness_cur_failed = 0;                                                    \
    harness_cur_skipped = 0;                                                   \
    test_##name();                                                             \
    if (harness_cur_skipped) {                                                 \
      harness_skipped++;                                                       \
    } else if (harness_cur_failed) {                                           \
      harness_failed++;                                                        \
      printf("not ok - %s\n", #name);                                          \
    } else {                                                                   \
      harness_passed++;                                                        \
      printf("ok - %s\n", #name);                                              \
    }                                                                          \
    fflush(stdout);                                                            \
  } while (0)

static inline void harness_cleanup(void);
static inline int harness_done(void) {
  harness_cleanup();
  printf("%d passed, %d failed, %d skipped\n", harness_passed, harness_failed,
         harness_skipped);
  return harness_failed ? 1 : 0;
}

#define HARNESS_FAIL(...)                                                      \
  do {                                                                         \
    fprintf(stderr, "%s:%d: [%s] ", __FILE__, __LINE__, harness_cur);          \
    fprintf(stderr, __VA_ARGS__);                                              \
    fputc('\n', stderr);                                                       \
    harness_cur_failed = 1;                                                    \
  } while (0)

/* Integer comparisons: evaluate once, print both sides. */
#define CHECK_OP(a, op, b)                                                     \
  do {                                                                         \
    long long _a = (long long)(a), _b = (long long)(b);                        \
    if (!(_a op _b)) {                                                         \
      HARNESS_FAIL("CHECK %s %s %s: %lld vs %lld", #a, #op, #b, _a, _b);       \
      return;                                                                  \
    }                                                                          \
  } while (0)
#define CHECK_EQ(a, b) CHECK_OP(a, ==, b)
#define CHECK_NE(a, b) CHECK_OP(a, !=, b)
#define CHECK_LT(a, b) CHECK_OP(a, <, b)
#define CHECK_LE(a, b) CHECK_OP(a, <=, b)
#define CHECK_GT(a, b) CHECK_OP(a, >, b)
#define CHECK_GE(a, b) CHECK_OP(a, >=, b)
#define CHECK(c)                                                               \
  do {                                                                         \
    if (!(c)) {                                                                \
      HARNESS_FAIL("CHECK %s", #c);                                            \
      return;                                                                  \
    }                                                                          \
  } while (0)
/* A shmx call that must return SHMX_OK (prints name and errmsg otherwise). */
#define CHECK_OK(call)                                                         \
  do {                                                                         \
    int _rc = (call);                                                          \
    if (_rc != 0) {                                                            \
      HARNESS_FAIL("%s -> %s (%s)", #call, shmx_err_name(_rc), shmx_errmsg()); \
      return;                                                                  \
    }                                                                          \
  } while (0)
/* A shmx call that must fail with a given code. */
#define CHECK_ERR(call, code)                                                  \
  do {                                                                         \
    int _rc = (call);                                                          \
    if (_rc != (code)) {                                                       \
      HARNESS_FAIL("%s -> %s, want %s (%s)", #call, shmx_err_name(_rc),        \
                   shmx_err_name(code), shmx_errmsg());                        \
      return;                                                                  \
    }                                                                          \
  } while (0)
#define CHECK_MEM(a, b, n)                                                     \
  do {                                                                         \
    if (memcmp((a), (b), (n)) != 0) {                                          \
      HARNESS_FAIL("CHECK_MEM %s == %s (%zu bytes)", #a, #b, (size_t)(n));     \
      return;                                                                  \
    }                                                                          \
  } while (0)

/* Every channel name handed out, so that whatever a failing test left
 * behind is unlinked when the program ends. */
static char harness_names[256][96];
static int harness_n_names;
static pid_t harness_owner_pid;

/* The directory holding channel files: /dev/shm, or on Windows %SHMX_DIR%
 * (else %LOCALAPPDATA%\shmx), as the library computes it. */
static inline const char *harness_shm_dir(void) {
#ifdef _WIN32
  static char d[512];
  const char *e = getenv("SHMX_DIR");
  if (e && *e) snprintf(d, sizeof d, "%s", e);
  else snprintf(d, sizeof d, "%s\\shmx", getenv("LOCALAPPDATA") ? getenv("LOCALAPPDATA") : ".");
  return d;
#else
  return "/dev/shm";
#endif
}
/* Path of channel name's segment file (lock=0) or lock file (lock=1). */
static inline const char *harness_chan_path(const char *name, int lock, char *buf,
                                            size_t cap) {
  snprintf(buf, cap, "%s/%s%s%.96s%s", harness_shm_dir(), lock ? "." : "",
           SHMX_SEGMENT_PREFIX, name, lock ? ".lock" : "");
  return buf;
}

static inline void harness_cleanup(void) {
  if (getpid() != harness_owner_pid) return; /* forked children: not theirs */
  for (int i = 0; i < harness_n_names; i++) {
    char p[700];
    unlink(harness_chan_path(harness_names[i], 0, p, sizeof p));
    unlink(harness_chan_path(harness_names[i], 1, p, sizeof p));
  }
  harness_n_names = 0;
}

/* A channel name unique to this process and call, so tests can run in
 * parallel and never collide with a user's channels. Removed at exit. */
static inline const char *harness_name(const char *tag) {
  static int seq;
  if (harness_owner_pid == 0) {
    harness_owner_pid = getpid();
    atexit(harness_cleanup);
  }
  char *b = harness_names[harness_n_names < 256 ? harness_n_names++ : 255];
  snprintf(b, 96, "t-%s-%d-%d", tag, (int)getpid(), ++seq);
  return b;
}

static inline uint64_t harness_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Poll cond (an expression) every 1 ms until true or ms elapse. */
#define WAIT_UNTIL(cond, ms)                                                   \
  ({                                                                           \
    uint64_t _end = harness_now_ms() + (ms);                                   \
    int _ok = 0;                                                               \
    while (!(_ok = !!(cond)) && harness_now_ms() < _end) usleep(1000);         \
    _ok;                                                                       \
  })

#ifndef _WIN32
/* Fork a child that runs fn(arg) and _exit()s with its return value. */
static inline pid_t harness_spawn(int (*fn)(void *), void *arg) {
  fflush(stdout);
  fflush(stderr);
  pid_t p = fork();
  if (p == 0) {
    alarm(60); /* a hung child dies instead of hanging the suite */
    _exit(fn(arg) & 0xff);
  }
  return p;
}

/* Wait for pid up to ms; kills it on timeout. Returns exit status (0..255),
 * 128+signal if killed by a signal, or -1 on timeout. */
static inline int harness_wait(pid_t pid, unsigned ms) {
  uint64_t end = harness_now_ms() + ms;
  for (;;) {
    int st;
    pid_t r = waitpid(pid, &st, WNOHANG);
    if (r == pid) {
      if (WIFEXITED(st)) return WEXITSTATUS(st);
      if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
      return -1;
    }
    if (harness_now_ms() >= end) {
      kill(pid, SIGKILL);
      waitpid(pid, &st, 0);
      return -1;
    }
    usleep(1000);
  }
}

#else /* _WIN32: no fork(). Tests that spawn start with SKIP_WITHOUT_FORK();
          these stand-ins only let their bodies compile. */
#include <fcntl.h>
#include <io.h>
#ifndef SIGKILL
#define SIGKILL 9
#endif
#ifndef O_CLOEXEC
#define O_CLOEXEC _O_BINARY /* binary: no CRLF translation; handles are not
                               inherited by shmx's own opens anyway */
#endif
static inline int pipe(int fd[2]) { return _pipe(fd, 4096, _O_BINARY); }
static inline pid_t harness_spawn(int (*fn)(void *), void *arg) {
  (void)fn, (void)arg;
  return -1;
}
static inline int harness_wait(pid_t pid, unsigned ms) {
  (void)pid, (void)ms;
  return -1;
}
static inline int pause(void) { return -1; }
static inline int kill(pid_t pid, int sig) {
  (void)pid, (void)sig;
  return -1;
}
#endif /* !_WIN32 */

#endif /* SHMX_HARNESS_H */

/*
 * posix/sync.c -- cross-process futex, process liveness, clocks, randomness.
 * Linux futexes here; other POSIX systems would get a fallback file.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "../internal.h"

int shmx__wake_open(uint64_t session_id, int create, unsigned mode, void **obj) {
  (void)session_id, (void)create, (void)mode;
  *obj = NULL; /* the futex is the wake word itself */
  return 0;
}

void shmx__wake_close(void *obj) { (void)obj; }

int shmx__futex_wait(void *obj, _Atomic uint32_t *addr, uint32_t val,
                     int64_t timeout_ns) {
  (void)obj;
  struct timespec ts, *tp = NULL;
  if (timeout_ns >= 0) {
    ts.tv_sec = (time_t)(timeout_ns / 1000000000);
    ts.tv_nsec = (long)(timeout_ns % 1000000000);
    tp = &ts;
  }
  /* Not FUTEX_PRIVATE: the word lives in memory shared between processes. */
  long r = syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAIT, val, tp, NULL, 0);
  if (r == 0) return 0;
  if (errno == EAGAIN) return 0; /* value already changed */
  if (errno == ETIMEDOUT) return SHMX_E_TIMEOUT;
  if (errno == EINTR) return -EINTR;
  return -errno;
}

void shmx__futex_wake(void *obj, _Atomic uint32_t *addr, uint32_t count) {
  (void)obj, (void)count; /* wake all: a count read earlier may be stale */
  syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAKE, INT32_MAX, NULL, NULL, 0);
}

int shmx__pid_alive(int32_t pid) {
  if (pid <= 0) return -1;
  if (kill((pid_t)pid, 0) == 0) return 1;
  if (errno == ESRCH) return 0;
  return errno == EPERM ? 1 : -1;
}

int32_t shmx__getpid(void) { return (int32_t)getpid(); }

uint64_t shmx__mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t shmx__mono_coarse_ns(void) {
#ifdef CLOCK_MONOTONIC_COARSE
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
#else
  return shmx__mono_ns();
#endif
}

uint64_t shmx__real_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t shmx__random64(void) {
  uint64_t v = 0;
  ssize_t n;
  do n = getrandom(&v, sizeof v, 0);
  while (n < 0 && errno == EINTR);
  if (n != (ssize_t)sizeof v) /* no entropy source: mix time and pid */
    v = shmx__real_ns() ^ ((uint64_t)getpid() << 32) ^ shmx__mono_ns();
  return v ? v : 1;
}

void shmx__sleep_ns(uint64_t ns) {
  struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
  }
}

uint64_t shmx__pid_start(int32_t pid) {
  /* Field 22 of /proc/PID/stat: start time in clock ticks since boot. The
   * command (field 2) may hold spaces and parentheses: skip to its last ')'. */
  char path[64], buf[1024];
  if (pid <= 0) return 0;
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  int fd;
  do fd = open(path, O_RDONLY | O_CLOEXEC);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) return 0;
  ssize_t n;
  do n = read(fd, buf, sizeof buf - 1);
  while (n < 0 && errno == EINTR);
  close(fd);
  if (n <= 0) return 0;
  buf[n] = 0;
  char *p = strrchr(buf, ')');
  if (!p) return 0;
  p++;
  for (int field = 3; field < 22 && p; field++) {
    p = strchr(p + 1, ' ');
  }
  if (!p) return 0;
  unsigned long long v = strtoull(p + 1, NULL, 10);
  return (uint64_t)v;
}

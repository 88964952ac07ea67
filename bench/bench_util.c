/*
 * bench_util.c -- benchmark harness (POSIX): shared memory, CPU placement,
 * child processes with deadlines, channel names. Samples: bench_stats.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_internal.h"
#include "shmx.h"

/* ---- memory ------------------------------------------------------------- */

void *bench_shared_alloc(size_t bytes) {
  void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED)
    return NULL;
  memset(p, 0, bytes); /* fault every page in now, not while timing */
  return p;
}

void bench_shared_free(void *p, size_t bytes) {
  if (p)
    munmap(p, bytes);
}

/* ---- CPUs --------------------------------------------------------------- */

static cpu_set_t saved_mask;
static int saved_ok;
static int role_cpu[2] = {-1, -1};
static char cpu_desc[64] = "unpinned";

void bench_cpu_setup(void) {
  role_cpu[0] = role_cpu[1] = -1;
  saved_ok = sched_getaffinity(0, sizeof saved_mask, &saved_mask) == 0;
  if (!saved_ok)
    return;
  int found = 0;
  for (int c = 0; c < CPU_SETSIZE && found < 2; c++)
    if (CPU_ISSET(c, &saved_mask))
      role_cpu[found++] = c;
  if (found < 2) {
    role_cpu[0] = role_cpu[1] = -1; /* one CPU: leave placement alone */
    snprintf(cpu_desc, sizeof cpu_desc, "one CPU, unpinned");
    return;
  }
  snprintf(cpu_desc, sizeof cpu_desc, "producer cpu%d, readers cpu%d",
           role_cpu[0], role_cpu[1]);
  bench_pin(0);
}

void bench_cpu_restore(void) {
  if (saved_ok)
    sched_setaffinity(0, sizeof saved_mask, &saved_mask);
}

void bench_pin(int role) {
  if (role < 0 || role > 1 || role_cpu[role] < 0)
    return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(role_cpu[role], &set);
  sched_setaffinity(0, sizeof set, &set); /* best effort */
}

const char *bench_cpu_desc(void) { return cpu_desc; }

/* ---- processes ---------------------------------------------------------- */

pid_t bench_spawn(int role, int (*fn)(void *), void *arg) {
  pid_t parent = getpid();
  fflush(NULL);
  pid_t pid = fork();
  if (pid != 0)
    return pid; /* parent, or -1 */
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent)
    _exit(111); /* the parent died before prctl took effect */
  bench_pin(role);
  int rc = fn(arg);
  _exit(rc < 0 || rc > 100 ? 100 : rc);
}

int bench_reap(pid_t pid, uint64_t timeout_ns) {
  if (pid <= 0)
    return -1;
  uint64_t deadline = bench_now() + timeout_ns;
  int status = 0;
  for (;;) {
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid)
      break;
    if (r < 0 && errno != EINTR)
      return -1;
    if (bench_now() > deadline) {
      kill(pid, SIGKILL);
      while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      return -1;
    }
    struct timespec ts = {0, 1000000}; /* 1 ms */
    nanosleep(&ts, NULL);
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int bench_proc_sleeping(pid_t pid) {
  char path[64], buf[512];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0)
    return -1;
  buf[n] = '\0';
  /* "pid (comm) S ...": comm may contain ')' so use the last one. */
  char *p = strrchr(buf, ')');
  if (!p || p[1] != ' ' || p[2] == '\0')
    return -1;
  return p[2] == 'S' || p[2] == 'D';
}

int bench_wait_sleeping(pid_t pid) {
  uint64_t deadline = bench_now() + BENCH_STEP_TIMEOUT_NS;
  for (;;) {
    int s = bench_proc_sleeping(pid);
    if (s > 0)
      return 0;
    if (s < 0) {
      /* No /proc: give the reader 1 ms to block (it needs microseconds). */
      struct timespec ts = {0, 1000000};
      nanosleep(&ts, NULL);
      return 0;
    }
    if (bench_now() > deadline)
      return -1;
    sched_yield();
  }
}

/* ---- channels ----------------------------------------------------------- */

#define BENCH_CHAN_PREFIX "shmxbench-"

void bench_channel_name(char *buf, size_t cap, const char *tag) {
  snprintf(buf, cap, BENCH_CHAN_PREFIX "%d-%s", (int)getpid(), tag);
}

static int stale_cb(const char *name, void *arg) {
  int *removed = arg;
  if (strncmp(name, BENCH_CHAN_PREFIX, strlen(BENCH_CHAN_PREFIX)) != 0)
    return 0;
  if (shmx_channel_owner_alive(name) == 0 &&
      shmx_channel_remove(name, 0) == 0)
    (*removed)++;
  return 0;
}

int bench_remove_stale_channels(void) {
  int removed = 0;
  shmx_channel_list(stale_cb, &removed);
  return removed;
}

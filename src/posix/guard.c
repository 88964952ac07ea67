/*
 * posix/guard.c -- survive another process truncating a file we have mapped.
 *
 * Touching a page of a MAP_SHARED mapping that lies past the end of its file
 * raises SIGBUS (si_code BUS_ADRERR). Any process that may write a segment
 * (every reader) or a file shmx maps read-only can ftruncate it. The guard
 * keeps a lock-free table of the ranges the library mapped; a fault inside
 * one is answered by mapping private zero pages (same protection) over the
 * rest of the range and setting the range's flag, and the faulting access
 * then resumes and reads zeros (writes go to private memory). The library
 * checks the flag and reports SHMX_E_CORRUPT ("truncated by another
 * process") or, for the window manager, re-reads the file's size. A fault
 * anywhere else is passed to the handler that was installed before ours
 * (or the default action: the process dies as it would have).
 *
 * The handler does only async-signal-safe things: atomic loads and stores
 * and one raw mmap system call. It costs nothing until a fault happens.
 * SHMX_SIGBUS_GUARD=0 in the environment turns it off.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../internal.h"

#define GUARD_MAX 16384

enum { FREE = 0, BUSY = 1, ACTIVE = 2 };

static struct guard_range {
  _Atomic uint32_t state;
  _Atomic int prot;
  _Atomic uintptr_t lo, hi;
  _Atomic uintptr_t flag; /* _Atomic uint32_t * */
} ranges[GUARD_MAX];
static _Atomic uint32_t hiwater;
static uintptr_t page = 4096;
static struct sigaction previous;
static int enabled;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void pass_on(int sig, siginfo_t *si, void *ctx) {
  if (previous.sa_flags & SA_SIGINFO) {
    if (previous.sa_sigaction) previous.sa_sigaction(sig, si, ctx);
    return;
  }
  if (previous.sa_handler == SIG_DFL || previous.sa_handler == SIG_IGN) {
    /* Default action: returning re-runs the access, which faults again and
     * kills the process with SIGBUS as if we had never been here. */
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigaction(sig, &dfl, NULL);
    return;
  }
  previous.sa_handler(sig);
}

static void on_sigbus(int sig, siginfo_t *si, void *ctx) {
  int saved = errno;
  if (si && si->si_code == BUS_ADRERR) {
    uintptr_t a = (uintptr_t)si->si_addr;
    uint32_t n = atomic_load_explicit(&hiwater, memory_order_acquire);
    for (uint32_t i = 0; i < n; i++) {
      struct guard_range *g = &ranges[i];
      if (atomic_load_explicit(&g->state, memory_order_acquire) != ACTIVE) continue;
      uintptr_t lo = atomic_load_explicit(&g->lo, memory_order_relaxed);
      uintptr_t hi = atomic_load_explicit(&g->hi, memory_order_relaxed);
      if (a < lo || a >= hi) continue;
      uintptr_t from = a & ~(page - 1);
      long r = syscall(SYS_mmap, (void *)from, (size_t)(hi - from),
                       atomic_load_explicit(&g->prot, memory_order_relaxed),
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0L);
      if (r == -1) break; /* cannot repair: let it die as it would have */
      _Atomic uint32_t *flag =
          (_Atomic uint32_t *)atomic_load_explicit(&g->flag, memory_order_relaxed);
      if (flag) atomic_store_explicit(flag, 1, memory_order_release);
      errno = saved;
      return;
    }
  }
  errno = saved;
  pass_on(sig, si, ctx);
}

static void install(void) {
  const char *e = getenv("SHMX_SIGBUS_GUARD");
  if (e && strcmp(e, "0") == 0) return;
  long p = sysconf(_SC_PAGESIZE);
  if (p > 0) page = (uintptr_t)p;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_sigbus;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGBUS, &sa, &previous) == 0) enabled = 1;
}

int shmx__guard_add(void *base, uint64_t len, int prot, _Atomic uint32_t *flag) {
  pthread_once(&once, install);
  if (!enabled || !base || !len) return -1;
  int p = ((prot & 1) ? PROT_READ : 0) | ((prot & 2) ? PROT_WRITE : 0);
  uintptr_t lo = (uintptr_t)base, hi = lo + (uintptr_t)len;
  hi = (hi + page - 1) & ~(page - 1);
  for (uint32_t i = 0; i < GUARD_MAX; i++) {
    uint32_t free_ = FREE;
    struct guard_range *g = &ranges[i];
    if (!atomic_compare_exchange_strong(&g->state, &free_, BUSY)) continue;
    atomic_store_explicit(&g->lo, lo, memory_order_relaxed);
    atomic_store_explicit(&g->hi, hi, memory_order_relaxed);
    atomic_store_explicit(&g->prot, p, memory_order_relaxed);
    atomic_store_explicit(&g->flag, (uintptr_t)flag, memory_order_relaxed);
    atomic_store_explicit(&g->state, ACTIVE, memory_order_release);
    uint32_t h = atomic_load(&hiwater);
    while (h < i + 1 && !atomic_compare_exchange_weak(&hiwater, &h, i + 1)) {
    }
    return (int)i;
  }
  return -1; /* table full: this range is unguarded */
}

void shmx__guard_del(int handle) {
  if (handle < 0 || handle >= GUARD_MAX) return;
  struct guard_range *g = &ranges[handle];
  atomic_store_explicit(&g->state, BUSY, memory_order_release);
  atomic_store_explicit(&g->flag, 0, memory_order_relaxed);
  atomic_store_explicit(&g->state, FREE, memory_order_release);
}

int shmx__guard_on(void) {
  pthread_once(&once, install);
  return enabled;
}

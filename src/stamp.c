/*
 * stamp.c -- publish stamps: CLOCK_MONOTONIC, read cheaply.
 *
 * publish() stamps every frame with CLOCK_MONOTONIC, and the stamp sits on
 * the path from "producer calls publish" to "reader sees the frame": a
 * clock_gettime() there costs 20-25 ns on a KVM guest, about a third of a
 * cache-line transfer. Where the time stamp counter is a sound time base
 * (x86-64, invariant TSC, and the kernel itself keeps time with it), a
 * stamp is one RDTSC mapped to CLOCK_MONOTONIC by a line fitted to real
 * clock_gettime() readings:
 *
 *   ns = ns0 + ((tsc - tsc0) * mult) >> 32
 *
 * Calibration (under a mutex, published through a seqlock):
 *   - an anchor (tsc0, ns0) is a clock_gettime() bracketed by two RDTSCs
 *     (the narrowest of three tries), tsc0 the midpoint;
 *   - mult is the slope from a base anchor 4-8 s old (from the first anchor
 *     while the process is younger), so reading error of the anchors (tens
 *     of ns) is a tiny error in the slope;
 *   - an anchor is good for `span` / 256 of extrapolation, at most 10 ms:
 *     past that, the next stamp re-anchors (one clock_gettime()). The error
 *     at the end of an interval is about 2 x anchor error / 256 plus the
 *     change of the kernel's clock rate (NTP) within the interval;
 *   - every re-anchor measures how far the line had drifted; beyond 1 us
 *     (an NTP slew) the base restarts from the last anchor, which shortens
 *     the interval until the slope is sure again.
 * A stamp that meets a calibration in progress, a process younger than
 * 1 ms of stamps, or a machine without a sound TSC reads clock_gettime().
 * SHMX_CLOCK=system in the environment turns the TSC path off.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && \
    defined(__linux__)
#define HAVE_TSC 1
#include <cpuid.h>
#include <pthread.h>
#include <stdio.h>
#include <x86intrin.h>
#endif

#define MIN_SPAN_NS 1000000u     /* calibrate at least this long first */
#define MAX_INTERVAL_NS 10000000u /* re-anchor at least this often */
#define REBASE_NS 4000000000u     /* base anchor kept 4-8 s old */
#define DRIFT_MAX_NS 1000u        /* re-anchor error that restarts the base */

#ifdef HAVE_TSC

/* The calibration readers use; seq odd while it changes, 0 until ready. */
static struct {
  _Atomic uint32_t seq;
  _Atomic uint64_t tsc0, ns0, mult, ticks; /* ticks: validity from tsc0 */
} cal;

/* Set once the TSC is found unsound: stamps then skip the lock. */
static _Atomic int off;

/* Calibration state, only under `lock`. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int usable;                      /* 0 unknown, 1 yes, -1 no */
static uint64_t base_tsc, base_ns;      /* slope from here ... */
static uint64_t cand_tsc, cand_ns;      /* ... until this becomes the base */
static uint64_t last_tsc, last_ns, last_mult; /* the published anchor */

/* 1 if RDTSC can stand in for CLOCK_MONOTONIC on this machine. */
static int tsc_sound(void) {
  const char *env = getenv("SHMX_CLOCK");
  if (env && strcmp(env, "system") == 0) return 0;
  unsigned a, b, c, d;
  /* Invariant TSC: CPUID 0x80000007, EDX bit 8 (constant rate, runs in
   * every C-state). */
  if (!__get_cpuid(0x80000000u, &a, &b, &c, &d) || a < 0x80000007u) return 0;
  if (!__get_cpuid(0x80000007u, &a, &b, &c, &d) || !(d & (1u << 8))) return 0;
  /* ... and the kernel keeps time with it (so it judged the TSCs of all
   * CPUs synchronised and stable; it switches away if they drift). */
  FILE *f = fopen("/sys/devices/system/clocksource/clocksource0/current_clocksource", "re");
  if (!f) return 0;
  char src[32] = {0};
  int ok = fgets(src, sizeof src, f) != NULL && strncmp(src, "tsc", 3) == 0 &&
           (src[3] == '\n' || src[3] == 0);
  fclose(f);
  return ok;
}

/* One clock_gettime() and the TSC at that moment (the narrowest bracket of
 * three tries). */
static void anchor(uint64_t *tsc, uint64_t *ns) {
  uint64_t best = UINT64_MAX;
  for (int i = 0; i < 3; i++) {
    uint64_t a = __rdtsc();
    uint64_t n = shmx__mono_ns();
    uint64_t b = __rdtsc();
    if (b >= a && b - a < best) {
      best = b - a;
      *tsc = a + (b - a) / 2;
      *ns = n;
    }
  }
  if (best == UINT64_MAX) { /* the TSC went backwards: not sound */
    *tsc = 0;
    *ns = shmx__mono_ns();
  }
}

static void publish_cal(uint64_t tsc0, uint64_t ns0, uint64_t mult, uint64_t ticks) {
  uint32_t q = atomic_load_explicit(&cal.seq, memory_order_relaxed);
  atomic_store_explicit(&cal.seq, q + 1, memory_order_relaxed); /* odd */
  atomic_thread_fence(memory_order_release);
  atomic_store_explicit(&cal.tsc0, tsc0, memory_order_relaxed);
  atomic_store_explicit(&cal.ns0, ns0, memory_order_relaxed);
  atomic_store_explicit(&cal.mult, mult, memory_order_relaxed);
  atomic_store_explicit(&cal.ticks, ticks, memory_order_relaxed);
  atomic_store_explicit(&cal.seq, q + 2, memory_order_release);
}

/* Re-anchor (or start, or give up on the TSC); returns clock_gettime(). */
static uint64_t recalibrate(void) {
  if (pthread_mutex_trylock(&lock) != 0) return shmx__mono_ns();
  if (usable == 0) usable = tsc_sound() ? 1 : -1;
  uint64_t tsc = 0, ns;
  if (usable > 0) anchor(&tsc, &ns);
  if (tsc == 0) { /* not sound, or the TSC went backwards: for good */
    usable = -1;
    atomic_store_explicit(&off, 1, memory_order_relaxed);
    pthread_mutex_unlock(&lock);
    return shmx__mono_ns();
  }
  if (base_ns == 0 || tsc <= base_tsc || ns <= base_ns) { /* first anchor */
    base_tsc = cand_tsc = tsc;
    base_ns = cand_ns = ns;
  } else if (last_mult) {
    /* How far had the published line drifted from the clock? */
    uint64_t pred = last_ns + (uint64_t)(((unsigned __int128)(tsc - last_tsc) * last_mult) >> 32);
    uint64_t err = pred > ns ? pred - ns : ns - pred;
    if (err > DRIFT_MAX_NS) { /* the clock's rate moved (NTP): start over */
      base_tsc = cand_tsc = last_tsc;
      base_ns = cand_ns = last_ns;
    }
  }
  if (ns - cand_ns >= REBASE_NS) {
    base_tsc = cand_tsc;
    base_ns = cand_ns;
    cand_tsc = tsc;
    cand_ns = ns;
  }
  uint64_t span = ns - base_ns;
  if (span >= MIN_SPAN_NS && tsc > base_tsc) {
    uint64_t mult = (uint64_t)(((unsigned __int128)span << 32) / (tsc - base_tsc));
    uint64_t interval = span / 256 < MAX_INTERVAL_NS ? span / 256 : MAX_INTERVAL_NS;
    uint64_t ticks = mult ? (uint64_t)(((unsigned __int128)interval << 32) / mult) : 0;
    last_tsc = tsc;
    last_ns = ns;
    last_mult = mult;
    publish_cal(tsc, ns, mult, ticks);
  }
  pthread_mutex_unlock(&lock);
  return ns;
}

uint64_t shmx__stamp_ns(void) {
  uint32_t q = atomic_load_explicit(&cal.seq, memory_order_acquire);
  if (q == 0 || (q & 1))
    return atomic_load_explicit(&off, memory_order_relaxed) ? shmx__mono_ns() : recalibrate();
  uint64_t tsc0 = atomic_load_explicit(&cal.tsc0, memory_order_relaxed);
  uint64_t ns0 = atomic_load_explicit(&cal.ns0, memory_order_relaxed);
  uint64_t mult = atomic_load_explicit(&cal.mult, memory_order_relaxed);
  uint64_t ticks = atomic_load_explicit(&cal.ticks, memory_order_relaxed);
  atomic_thread_fence(memory_order_acquire);
  if (atomic_load_explicit(&cal.seq, memory_order_relaxed) != q) return shmx__mono_ns();
  uint64_t d = __rdtsc() - tsc0; /* before tsc0 (another CPU's anchor a
                                    hair ahead) wraps to huge: re-anchor */
  if (d >= ticks) return recalibrate();
  return ns0 + (uint64_t)(((unsigned __int128)d * mult) >> 32);
}

int shmx__stamp_tsc(void) {
  return atomic_load_explicit(&cal.seq, memory_order_acquire) != 0;
}

#else /* no TSC path */

uint64_t shmx__stamp_ns(void) { return shmx__mono_ns(); }
int shmx__stamp_tsc(void) { return 0; }

#endif

/*
 * bench_internal.h -- harness shared by the benchmark files: clock, samples
 * and percentiles, bounded spinning, shared memory, pinned child processes.
 */
#ifndef SHMX_BENCH_INTERNAL_H
#define SHMX_BENCH_INTERNAL_H

#include <sched.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

/* CLOCK_MONOTONIC in ns (vDSO; the clock of shmx_now_ns and publish_ns). */
static inline uint64_t bench_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline void bench_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield" ::: "memory");
#endif
}

/* Keep the compiler from dropping or moving stores around a timed region. */
#define BENCH_BARRIER() __asm__ __volatile__("" ::: "memory")

/*
 * Bounded spin: call bench_spin_wait() after every failed poll. It pauses;
 * after BENCH_SPIN_YIELD polls (about a millisecond: the partner is not
 * running) it yields the CPU on every call, and it returns -1 once the
 * deadline has passed so that no benchmark can hang.
 */
#define BENCH_SPIN_YIELD (1u << 16)
typedef struct bench_spin {
  uint64_t timeout, deadline;
  uint32_t n;
} bench_spin;

/* Reads no clock: a poll that succeeds at once costs nothing extra. */
static inline void bench_spin_init(bench_spin *s, uint64_t timeout_ns) {
  s->timeout = timeout_ns;
  s->deadline = 0;
  s->n = 0;
}

static inline int bench_spin_wait(bench_spin *s) {
  if (s->n++ == 0)
    s->deadline = bench_now() + s->timeout;
  if (s->n < BENCH_SPIN_YIELD) {
    bench_relax();
    if ((s->n & 1023u) != 0)
      return 0;
  } else {
    sched_yield();
  }
  return bench_now() > s->deadline ? -1 : 0;
}

/* Time allowed for any single hand-off between processes. */
#define BENCH_STEP_TIMEOUT_NS (10ull * 1000000000ull)

/* ---- samples ------------------------------------------------------------ */

typedef struct bench_samples {
  uint64_t *v;
  size_t n, cap;
} bench_samples;

typedef struct bench_stats {
  size_t n;
  uint64_t min, p50, p99, p999, max;
  double mean;
} bench_stats;

int bench_samples_reserve(bench_samples *s, size_t extra);
void bench_samples_push(bench_samples *s, uint64_t v); /* after reserve */
void bench_samples_free(bench_samples *s);
/* Sorts s->v and fills st (nearest-rank percentiles). */
void bench_stats_compute(bench_samples *s, bench_stats *st);

/* ---- memory ------------------------------------------------------------- */

/* MAP_SHARED | MAP_ANONYMOUS, zeroed and faulted in; NULL on failure. */
void *bench_shared_alloc(size_t bytes);
void bench_shared_free(void *p, size_t bytes);

/* ---- CPUs and processes ------------------------------------------------- */

/* Record the allowed CPUs; pick one for the producer (index 0) and another
 * for readers (index 1) when there are two. Pins the caller to index 0. */
void bench_cpu_setup(void);
/* Restore the caller's original affinity. */
void bench_cpu_restore(void);
/* Pin the calling process to role 0 (producer) or 1 (reader); no-op if the
 * machine offers a single CPU. */
void bench_pin(int role);
/* "cpu0/cpu1" style description of the placement, for the report. */
const char *bench_cpu_desc(void);

/* fork(); the child pins itself to `role`, dies with its parent, runs
 * fn(arg) and _exit()s with its return value. -1 on fork failure. */
pid_t bench_spawn(int role, int (*fn)(void *), void *arg);
/* Wait for pid up to timeout_ns, then SIGKILL it. Returns its exit code,
 * or -1 if it was killed or died of a signal. */
int bench_reap(pid_t pid, uint64_t timeout_ns);
/* 1 if pid is asleep (state S or D in /proc/pid/stat), 0 if not, -1 error. */
int bench_proc_sleeping(pid_t pid);
/* Wait until pid sleeps in the kernel (deadline BENCH_STEP_TIMEOUT_NS);
 * without a readable /proc, wait 1 ms instead. */
int bench_wait_sleeping(pid_t pid);

/* Channel name unique to this process: "shmxbench-<pid>-<tag>". */
void bench_channel_name(char *buf, size_t cap, const char *tag);
/* Remove channels "shmxbench-*" whose producer is dead (left by a killed
 * run). Returns how many were removed. */
int bench_remove_stale_channels(void);

/* ---- measurements ------------------------------------------------------- */

/* Each appends `iters` samples (ns) to out after its own warm-up and returns
 * 0, or returns -1 after printing the reason to stderr. */
int bench_base_pingpong(size_t iters, bench_samples *out);
int bench_base_seqlock(size_t iters, bench_samples *out);
int bench_base_futex(size_t iters, bench_samples *out);
int bench_base_pipe(size_t iters, bench_samples *out);
int bench_base_memcpy(size_t bytes, size_t batch, size_t iters,
                      bench_samples *out);

int bench_core_latency_spin(size_t bytes, size_t iters, bench_samples *out);
int bench_core_latency_notify(size_t iters, bench_samples *out);
int bench_core_latency_copy(size_t iters, bench_samples *out);
int bench_core_latency_wait(size_t iters, bench_samples *out);
int bench_core_latency_fd(size_t iters, bench_samples *out);
int bench_core_publish_copy(size_t bytes, size_t batch, int readers, int armed,
                            size_t iters, bench_samples *out);

/* Shape shared by the copy cases and their memcpy baselines: destinations
 * rotate over this many buffers, like the channel's frame slots. */
#define BENCH_SLOTS 3

#endif /* SHMX_BENCH_INTERNAL_H */

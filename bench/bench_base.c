/*
 * bench_base.c -- baselines measured in the same run as the shmx cases:
 *
 *   pingpong_cacheline  one-way latency of a cache line between two
 *                       processes: the producer stamps t0 = CLOCK_MONOTONIC
 *                       into a shared line and release-stores a sequence
 *                       number; the reader spins on it, reads t0, takes t1.
 *                       The reader acknowledges on a second line before the
 *                       next round (exactly the shape of latency_*_spin).
 *   seqlock_64B_spin    the least an index-line -> slot protocol costs: see
 *                       bench_base_seqlock().
 *   futex_pingpong      the same with the reader asleep in FUTEX_WAIT and
 *                       the producer calling FUTEX_WAKE after the store; the
 *                       producer only stores once /proc shows the reader
 *                       asleep (the shape of latency_64B_wait).
 *   pipe_pingpong       the same with the reader asleep in epoll_wait on the
 *                       read end of a pipe and the producer writing one
 *                       byte: the floor for any fd-based wake-up (the shape
 *                       of latency_64B_fd).
 *   memcpy_<size>       memcpy from a private buffer into shared memory,
 *                       rotating over BENCH_SLOTS destinations like frame
 *                       slots (the shape of publish_*).
 */
#include <linux/futex.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "bench_internal.h"

/* Shared between producer and reader: each field group on its own line. */
struct pp_side {
  alignas(64) _Atomic uint64_t seq; /* producer-written line */
  uint64_t t0;
  _Atomic uint32_t word;            /* futex word (futex variant) */
  alignas(64) _Atomic uint64_t ack; /* reader-written line */
  alignas(64) _Atomic uint32_t ready;
  _Atomic int32_t err;
  uint64_t total, warm;
  uint64_t samples[];
};

static struct pp_side *side_new(size_t iters, size_t warm, size_t *bytes) {
  *bytes = sizeof(struct pp_side) + iters * sizeof(uint64_t);
  struct pp_side *s = bench_shared_alloc(*bytes);
  if (!s)
    return NULL;
  s->total = iters + warm;
  s->warm = warm;
  return s;
}

static void record(struct pp_side *s, uint64_t i, uint64_t t0, uint64_t t1) {
  if (i > s->warm)
    s->samples[i - 1 - s->warm] = t1 > t0 ? t1 - t0 : 0;
}

/* Parent side: wait until the reader is ready (or gave up). */
static int wait_ready(struct pp_side *s, uint32_t want) {
  bench_spin sp;
  bench_spin_init(&sp, BENCH_STEP_TIMEOUT_NS);
  while (atomic_load_explicit(&s->ready, memory_order_acquire) < want)
    if (atomic_load(&s->err) != 0 || bench_spin_wait(&sp))
      return -1;
  return atomic_load(&s->err) != 0 ? -1 : 0;
}

static int wait_ack(struct pp_side *s, uint64_t i) {
  bench_spin sp;
  bench_spin_init(&sp, BENCH_STEP_TIMEOUT_NS);
  while (atomic_load_explicit(&s->ack, memory_order_acquire) != i)
    if (bench_spin_wait(&sp))
      return -1;
  return 0;
}

static int finish(const char *what, struct pp_side *s, size_t bytes,
                  pid_t pid, int ok, size_t iters, bench_samples *out) {
  int rc = bench_reap(pid, BENCH_STEP_TIMEOUT_NS);
  if (ok && rc == 0 && bench_samples_reserve(out, iters) == 0) {
    for (size_t k = 0; k < iters; k++)
      bench_samples_push(out, s->samples[k]);
  } else {
    fprintf(stderr, "shmx-bench: %s: %s (reader exit %d)\n", what,
            ok ? "reader failed" : "timed out waiting for the reader", rc);
    ok = 0;
  }
  bench_shared_free(s, bytes);
  return ok ? 0 : -1;
}

/* ---- cache-line ping-pong ---------------------------------------------- */

static int pp_reader(void *arg) {
  struct pp_side *s = arg;
  atomic_store_explicit(&s->ready, 1, memory_order_release);
  for (uint64_t i = 1; i <= s->total; i++) {
    bench_spin sp;
    bench_spin_init(&sp, BENCH_STEP_TIMEOUT_NS);
    while (atomic_load_explicit(&s->seq, memory_order_acquire) != i)
      if (bench_spin_wait(&sp))
        return 3;
    uint64_t t0 = s->t0;
    uint64_t t1 = bench_now();
    record(s, i, t0, t1);
    atomic_store_explicit(&s->ack, i, memory_order_release);
  }
  return 0;
}

int bench_base_pingpong(size_t iters, bench_samples *out) {
  size_t bytes, warm = iters / 20 + 100;
  struct pp_side *s = side_new(iters, warm, &bytes);
  if (!s)
    return -1;
  pid_t pid = bench_spawn(1, pp_reader, s);
  int ok = pid > 0 && wait_ready(s, 1) == 0;
  for (uint64_t i = 1; ok && i <= s->total; i++) {
    uint64_t t0 = bench_now();
    s->t0 = t0;
    atomic_store_explicit(&s->seq, i, memory_order_release);
    ok = wait_ack(s, i) == 0;
  }
  return finish("pingpong_cacheline", s, bytes, pid, ok, iters, out);
}

/* ---- minimal two-line seqlock ------------------------------------------- */

/*
 * The least an "index line -> slot" protocol can do: the producer fills a
 * slot line under a seqlock (odd, t0, even), then stores the slot number and
 * a sequence number in the index line. The reader spins on the index line,
 * reads the slot line and checks its sequence: two dependent line transfers,
 * no pins, no metadata. A reference for latency_64B_spin (not shmx).
 */
struct ix_slot {
  alignas(64) _Atomic uint64_t seq;
  _Atomic uint64_t t0;
  uint8_t pad[4096 - 16]; /* one slot per page, like frame slots */
};

struct ix_args {
  struct pp_side *s;      /* seq = index sequence, word = slot number */
  struct ix_slot *slots;  /* BENCH_SLOTS, in a shared mapping */
};

static int ix_reader(void *arg) {
  struct ix_args *a = arg;
  struct pp_side *s = a->s;
  atomic_store_explicit(&s->ready, 1, memory_order_release);
  for (uint64_t i = 1; i <= s->total; i++) {
    bench_spin sp;
    bench_spin_init(&sp, BENCH_STEP_TIMEOUT_NS);
    while (atomic_load_explicit(&s->seq, memory_order_acquire) != i)
      if (bench_spin_wait(&sp))
        return 3;
    uint32_t k = atomic_load_explicit(&s->word, memory_order_relaxed);
    if (k >= BENCH_SLOTS)
      return 4;
    struct ix_slot *sl = &a->slots[k];
    uint64_t q1 = atomic_load_explicit(&sl->seq, memory_order_acquire);
    uint64_t t0 = atomic_load_explicit(&sl->t0, memory_order_relaxed);
    atomic_thread_fence(memory_order_acquire);
    uint64_t q2 = atomic_load_explicit(&sl->seq, memory_order_relaxed);
    uint64_t t1 = bench_now();
    if (q1 != 2 * i || q2 != q1)
      return 5;
    record(s, i, t0, t1);
    atomic_store_explicit(&s->ack, i, memory_order_release);
  }
  return 0;
}

int bench_base_seqlock(size_t iters, bench_samples *out) {
  size_t bytes, warm = iters / 20 + 100;
  size_t slot_bytes = BENCH_SLOTS * sizeof(struct ix_slot);
  struct ix_args a = {side_new(iters, warm, &bytes), NULL};
  a.slots = bench_shared_alloc(slot_bytes);
  if (!a.s || !a.slots) {
    if (a.s)
      bench_shared_free(a.s, bytes);
    bench_shared_free(a.slots, slot_bytes);
    return -1;
  }
  struct pp_side *s = a.s;
  pid_t pid = bench_spawn(1, ix_reader, &a);
  int ok = pid > 0 && wait_ready(s, 1) == 0;
  for (uint64_t i = 1; ok && i <= s->total; i++) {
    uint32_t k = (uint32_t)(i % BENCH_SLOTS);
    struct ix_slot *sl = &a.slots[k];
    atomic_store_explicit(&sl->seq, 2 * i - 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    uint64_t t0 = bench_now();
    atomic_store_explicit(&sl->t0, t0, memory_order_relaxed);
    atomic_store_explicit(&sl->seq, 2 * i, memory_order_release);
    atomic_store_explicit(&s->word, k, memory_order_relaxed);
    atomic_store_explicit(&s->seq, i, memory_order_release);
    ok = wait_ack(s, i) == 0;
  }
  int rc = finish("seqlock_64B_spin", s, bytes, pid, ok, iters, out);
  bench_shared_free(a.slots, slot_bytes);
  return rc;
}

/* ---- futex ping-pong ---------------------------------------------------- */

static long futex_op(_Atomic uint32_t *w, int op, uint32_t val,
                     const struct timespec *ts) {
  return syscall(SYS_futex, (uint32_t *)w, op, val, ts, NULL, 0);
}

static int fx_reader(void *arg) {
  struct pp_side *s = arg;
  atomic_store_explicit(&s->ready, 1, memory_order_release);
  for (uint64_t i = 1; i <= s->total; i++) {
    uint64_t deadline = 0;
    for (;;) {
      uint32_t cur = atomic_load_explicit(&s->word, memory_order_acquire);
      if (cur == (uint32_t)i)
        break;
      uint64_t now = bench_now();
      if (deadline == 0)
        deadline = now + BENCH_STEP_TIMEOUT_NS;
      else if (now > deadline)
        return 3;
      struct timespec ts = {1, 0};
      futex_op(&s->word, FUTEX_WAIT, cur, &ts); /* shared, not PRIVATE */
    }
    uint64_t t0 = s->t0;
    uint64_t t1 = bench_now();
    record(s, i, t0, t1);
    atomic_store_explicit(&s->ack, i, memory_order_release);
  }
  return 0;
}

int bench_base_futex(size_t iters, bench_samples *out) {
  size_t bytes, warm = iters / 20 + 10;
  struct pp_side *s = side_new(iters, warm, &bytes);
  if (!s)
    return -1;
  pid_t pid = bench_spawn(1, fx_reader, s);
  int ok = pid > 0 && wait_ready(s, 1) == 0;
  for (uint64_t i = 1; ok && i <= s->total; i++) {
    if (bench_wait_sleeping(pid) != 0) {
      ok = 0;
      break;
    }
    uint64_t t0 = bench_now();
    s->t0 = t0;
    atomic_store_explicit(&s->word, (uint32_t)i, memory_order_release);
    futex_op(&s->word, FUTEX_WAKE, 1, NULL);
    ok = wait_ack(s, i) == 0;
  }
  return finish("futex_pingpong", s, bytes, pid, ok, iters, out);
}

/* ---- pipe ping-pong (epoll) --------------------------------------------- */

static int pipe_fds[2] = {-1, -1};

static int pipe_reader(void *arg) {
  struct pp_side *s = arg;
  close(pipe_fds[1]);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN};
  if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, pipe_fds[0], &ev) != 0)
    return 2;
  atomic_store_explicit(&s->ready, 1, memory_order_release);
  for (uint64_t i = 1; i <= s->total; i++) {
    struct epoll_event out;
    int n = epoll_wait(ep, &out, 1, 10000);
    if (n <= 0)
      return 3;
    char c;
    if (read(pipe_fds[0], &c, 1) != 1)
      return 4;
    uint64_t t1 = bench_now();
    record(s, i, s->t0, t1);
    atomic_store_explicit(&s->ack, i, memory_order_release);
  }
  close(ep);
  return 0;
}

int bench_base_pipe(size_t iters, bench_samples *out) {
  size_t bytes, warm = iters / 20 + 10;
  struct pp_side *s = side_new(iters, warm, &bytes);
  if (!s)
    return -1;
  if (pipe(pipe_fds) != 0) {
    bench_shared_free(s, bytes);
    return -1;
  }
  pid_t pid = bench_spawn(1, pipe_reader, s);
  close(pipe_fds[0]);
  int ok = pid > 0 && wait_ready(s, 1) == 0;
  for (uint64_t i = 1; ok && i <= s->total; i++) {
    if (bench_wait_sleeping(pid) != 0) {
      ok = 0;
      break;
    }
    uint64_t t0 = bench_now();
    s->t0 = t0;
    if (write(pipe_fds[1], "x", 1) != 1) {
      ok = 0;
      break;
    }
    ok = wait_ack(s, i) == 0;
  }
  close(pipe_fds[1]);
  return finish("pipe_pingpong", s, bytes, pid, ok, iters, out);
}

/* ---- memcpy ------------------------------------------------------------- */

int bench_base_memcpy(size_t bytes, size_t batch, size_t iters,
                      bench_samples *out) {
  if (bytes == 0 || batch == 0 || bytes > ((size_t)1 << 40))
    return -1;
  size_t stride = (bytes + 64 + 4095) & ~(size_t)4095;
  size_t src_cap = (bytes + 63) & ~(size_t)63;
  uint8_t *src = aligned_alloc(64, src_cap);
  uint8_t *dst = bench_shared_alloc(stride * BENCH_SLOTS);
  if (!src || !dst || bench_samples_reserve(out, iters) != 0) {
    free(src);
    bench_shared_free(dst, stride * BENCH_SLOTS);
    return -1;
  }
  for (size_t k = 0; k < src_cap; k++)
    src[k] = (uint8_t)(k * 131u + 7u);
  size_t warm = iters / 10 + 10, slot = 0;
  for (size_t k = 0; k < warm + iters; k++) {
    uint64_t t0 = bench_now();
    for (size_t b = 0; b < batch; b++) {
      /* data sits 64 B into a slot, after its record header, as in a frame */
      memcpy(dst + slot * stride + 64, src, bytes);
      BENCH_BARRIER();
      slot = slot + 1 == BENCH_SLOTS ? 0 : slot + 1;
    }
    uint64_t t1 = bench_now();
    if (k >= warm)
      bench_samples_push(out, (t1 - t0 + batch / 2) / batch);
  }
  free(src);
  bench_shared_free(dst, stride * BENCH_SLOTS);
  return 0;
}

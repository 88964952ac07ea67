/*
 * bench_core.c -- the shmx cases, through the public API only.
 *
 * latency_<size>_spin  The producer begins a frame, reserves one stream of
 *                      <size> bytes in place (write-side zero copy), writes
 *                      the iteration number into its last 8 bytes, takes
 *                      t0 = CLOCK_MONOTONIC, stores t0 into its first 8
 *                      bytes and calls shmx_server_publish(). The reader (a
 *                      forked process on the other CPU) spins on
 *                      shmx_client_frame_seq(), then shmx_client_latest()
 *                      (zero-copy view), reads t0 from the first cache line
 *                      and the iteration number from the last, takes t1 and
 *                      releases the frame. Sample = t1 - t0: publish call +
 *                      visibility + latest + touching the frame. The
 *                      producer writes only those two lines, so the figure
 *                      shows whether publish/latest cost grows with size.
 * notify_64B_spin      The same up to the reader seeing shmx_client_frame_seq()
 *                      move; it reads no frame. Splits latency_64B_spin into
 *                      notification and shmx_client_latest() + touch.
 * latency_64B_copy_spin  As latency_64B_spin, but the reader copies the
 *                      frame out with shmx_client_copy_latest() (a seqlock
 *                      read into its own buffer, no pin) and reads t0 and
 *                      the iteration number from the copy.
 * latency_64B_wait     The same, the reader blocked in shmx_client_wait();
 *                      the producer publishes once /proc shows it asleep.
 * latency_64B_fd       The same, the reader asleep in epoll_wait on
 *                      shmx_client_fd() after shmx_client_arm() said 0; on
 *                      wake-up it arms again (drains) and takes the frame.
 * publish_<size>_...   Producer-side cost of begin + append (copy) +
 *                      publish, with N readers attached (forked, idle);
 *                      "evloop": each reader is an event loop (arm, epoll
 *                      on its fd, latest when woken), so a publish rings
 *                      whenever one of them went back to sleep.
 */
#include <errno.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "bench_internal.h"
#include "shmx.h"

#define STREAM_ID 1u

struct lat_side {
  alignas(64) _Atomic uint64_t ack; /* reader-written line */
  /* seq-only mode: t0, ordered by publish. On its own line: the producer
   * writes it inside the timed window, and a reader that shared the line
   * (for the fields below) would wait for one more transfer every frame. */
  alignas(64) _Atomic uint64_t t0_copy;
  alignas(64) _Atomic uint32_t ready;
  _Atomic int32_t err;
  uint64_t total, warm, bytes;
  int wait_mode; /* 1: shmx_client_wait, 2: epoll on shmx_client_fd */
  int ep;        /* wait_mode 2: the reader's epoll instance */
  int seq_only; /* stop the clock when frame_seq moves; read no frame */
  int copy_mode; /* read with shmx_client_copy_latest (no pin) */
  char name[96];
  uint64_t samples[];
};

static void fail(const char *what, int rc) {
  fprintf(stderr, "shmx-bench: %s: %s (%s)\n", what, shmx_strerror(rc),
          shmx_errmsg());
}

static int create_channel(const char *name, uint64_t frame_cap,
                          shmx_server **srv) {
  shmx_stream_spec spec = {0};
  spec.id = STREAM_ID;
  spec.name = "data";
  spec.dtype = SHMX_DT_U8;
  spec.components = 1;
  spec.layout = SHMX_LAYOUT_SOA_SCALAR;
  spec.bytes_per_elem = 1;
  shmx_server_config cfg;
  shmx_server_config_init(&cfg);
  cfg.frame_bytes_cap = frame_cap < 65536 ? 65536 : frame_cap;
  cfg.streams = &spec;
  cfg.n_streams = 1;
  int rc = shmx_server_create(name, &cfg, srv);
  if (rc != 0)
    fail("shmx_server_create", rc);
  return rc;
}

/* ---- latency: reader process -------------------------------------------- */

/* Where the copy-mode reader copies frames (its own, after fork). */
static alignas(64) uint8_t copy_buf[4096];

/* Get frame i: spin on the sequence number, or block in shmx_client_wait. */
static int lat_get(struct lat_side *s, shmx_client *cl, uint64_t i,
                   shmx_frame *f) {
  if (s->wait_mode == 2) {
    for (int tries = 0;; tries++) {
      int rc = shmx_client_arm(cl);
      if (rc < 0) {
        fail("shmx_client_arm", rc);
        return rc;
      }
      if (rc == 1) break;
      if (tries > 5) return SHMX_E_TIMEOUT;
      struct epoll_event ev;
      (void)epoll_wait(s->ep, &ev, 1, 2000);
    }
    int rc = shmx_client_latest(cl, f);
    if (rc != 0)
      fail("shmx_client_latest", rc);
    return rc;
  }
  if (s->wait_mode) {
    for (int tries = 0;; tries++) {
      int rc = shmx_client_wait(cl, f, 2000000000ll, 0);
      if (rc == 0)
        return 0;
      if ((rc != SHMX_E_TIMEOUT && rc != -EINTR) || tries > 5) {
        fail("shmx_client_wait", rc);
        return rc;
      }
    }
  }
  bench_spin sp;
  bench_spin_init(&sp, BENCH_STEP_TIMEOUT_NS);
  while (shmx_client_frame_seq(cl) < i)
    if (bench_spin_wait(&sp))
      return SHMX_E_TIMEOUT;
  int rc;
  if (s->copy_mode) {
    rc = shmx_client_copy_latest(cl, copy_buf, sizeof copy_buf, f);
    if (rc != 0)
      fail("shmx_client_copy_latest", rc);
    return rc;
  }
  rc = shmx_client_latest(cl, f);
  if (rc != 0)
    fail("shmx_client_latest", rc);
  return rc;
}

static int lat_reader(void *arg) {
  struct lat_side *s = arg;
  shmx_client *cl = NULL;
  int rc = shmx_client_open(s->name, &cl);
  if (rc != 0) {
    fail("shmx_client_open", rc);
    atomic_store(&s->err, rc);
    return 2;
  }
  if (s->wait_mode == 2) {
    struct epoll_event ev = {.events = EPOLLIN};
    s->ep = epoll_create1(EPOLL_CLOEXEC);
    int fd = shmx_client_fd(cl);
    if (fd < 0 || s->ep < 0 || epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
      fail("shmx_client_fd/epoll", fd < 0 ? fd : -errno);
      atomic_store(&s->err, -1);
      shmx_client_close(cl);
      return 2;
    }
  }
  atomic_store_explicit(&s->ready, 1, memory_order_release);
  int exit_code = 0;
  for (uint64_t i = 1; s->seq_only && i <= s->total; i++) {
    bench_spin sp;
    bench_spin_init(&sp, BENCH_STEP_TIMEOUT_NS);
    while (shmx_client_frame_seq(cl) < i)
      if (bench_spin_wait(&sp)) {
        exit_code = 3;
        goto out;
      }
    uint64_t t1 = bench_now();
    atomic_thread_fence(memory_order_acquire); /* pairs with publish */
    uint64_t t0 = atomic_load_explicit(&s->t0_copy, memory_order_relaxed);
    if (i > s->warm)
      s->samples[i - 1 - s->warm] = t1 > t0 ? t1 - t0 : 0;
    atomic_store_explicit(&s->ack, i, memory_order_release);
  }
  for (uint64_t i = 1; !s->seq_only && i <= s->total; i++) {
    shmx_frame f;
    if (lat_get(s, cl, i, &f) != 0) {
      exit_code = 3;
      break;
    }
    uint64_t t0 = 0, tag = 0;
    int shape_ok = f.tlv_count >= 1 && f.streams[0].bytes == s->bytes &&
                   s->bytes >= 16;
    if (shape_ok) {
      const uint8_t *d = f.streams[0].data;
      memcpy(&t0, d, 8);                  /* first cache line */
      memcpy(&tag, d + s->bytes - 8, 8);  /* last cache line */
    }
    uint64_t t1 = bench_now();
    uint64_t id = f.frame_id;
    shmx_frame_release(cl, &f);
    if (!shape_ok || id != i || tag != i) {
      fprintf(stderr,
              "shmx-bench: reader: expected frame %llu, got id %llu tag %llu\n",
              (unsigned long long)i, (unsigned long long)id,
              (unsigned long long)tag);
      exit_code = 4;
      break;
    }
    if (i > s->warm)
      s->samples[i - 1 - s->warm] = t1 > t0 ? t1 - t0 : 0;
    atomic_store_explicit(&s->ack, i, memory_order_release);
  }
out:
  shmx_client_close(cl);
  return exit_code;
}

/* ---- latency: producer -------------------------------------------------- */

static int lat_run(const char *tag, size_t bytes, int wait_mode, int seq_only,
                   int copy_mode, size_t iters, bench_samples *out) {
  if (bytes < 16)
    return -1;
  size_t warm = wait_mode ? iters / 20 + 10 : iters / 20 + 100;
  size_t side_bytes = sizeof(struct lat_side) + iters * sizeof(uint64_t);
  struct lat_side *s = bench_shared_alloc(side_bytes);
  if (!s)
    return -1;
  s->total = iters + warm;
  s->warm = warm;
  s->bytes = bytes;
  s->wait_mode = wait_mode;
  s->seq_only = seq_only;
  s->copy_mode = copy_mode;
  bench_channel_name(s->name, sizeof s->name, tag);

  shmx_server *srv = NULL;
  if (create_channel(s->name, bytes, &srv) != 0) {
    bench_shared_free(s, side_bytes);
    return -1;
  }
  pid_t pid = bench_spawn(1, lat_reader, s);
  int ok = pid > 0;
  bench_spin sp;
  bench_spin_init(&sp, BENCH_STEP_TIMEOUT_NS);
  while (ok && atomic_load_explicit(&s->ready, memory_order_acquire) == 0)
    if (atomic_load(&s->err) != 0 || bench_spin_wait(&sp))
      ok = 0;

  const char *why = "reader did not attach";
  for (uint64_t i = 1; ok && i <= s->total; i++) {
    void *p = NULL;
    int rc = shmx_server_begin(srv);
    if (rc == 0)
      rc = shmx_server_reserve(srv, STREAM_ID, bytes, &p);
    if (rc != 0) {
      fail("begin/reserve", rc);
      why = "producer failed";
      ok = 0;
      break;
    }
    uint8_t *d = p;
    memcpy(d + bytes - 8, &i, 8);
    if (wait_mode && bench_wait_sleeping(pid) != 0) {
      why = "reader never went to sleep";
      ok = 0;
      break;
    }
    uint64_t t0 = bench_now();
    memcpy(d, &t0, 8);
    atomic_store_explicit(&s->t0_copy, t0, memory_order_relaxed);
    rc = shmx_server_publish(srv, 0.0, NULL);
    if (rc != 0) {
      fail("shmx_server_publish", rc);
      why = "producer failed";
      ok = 0;
      break;
    }
    bench_spin_init(&sp, BENCH_STEP_TIMEOUT_NS);
    while (atomic_load_explicit(&s->ack, memory_order_acquire) != i)
      if (bench_spin_wait(&sp)) {
        why = "timed out waiting for the reader";
        ok = 0;
        break;
      }
  }
  if (!ok) { /* close the channel now: wakes a reader blocked in wait */
    shmx_server_destroy(srv);
    srv = NULL;
  }
  int rc = bench_reap(pid, BENCH_STEP_TIMEOUT_NS);
  shmx_server_destroy(srv);
  if (ok && rc != 0) {
    why = "reader failed";
    ok = 0;
  }
  if (ok && bench_samples_reserve(out, iters) == 0) {
    for (size_t k = 0; k < iters; k++)
      bench_samples_push(out, s->samples[k]);
  } else {
    fprintf(stderr, "shmx-bench: latency %s: %s (reader exit %d)\n", tag,
            ok ? "out of memory" : why, rc);
    ok = 0;
  }
  bench_shared_free(s, side_bytes);
  return ok ? 0 : -1;
}

int bench_core_latency_spin(size_t bytes, size_t iters, bench_samples *out) {
  char tag[32];
  snprintf(tag, sizeof tag, "spin%zu", bytes);
  return lat_run(tag, bytes, 0, 0, 0, iters, out);
}

int bench_core_latency_notify(size_t iters, bench_samples *out) {
  return lat_run("seq64", 64, 0, 1, 0, iters, out);
}

int bench_core_latency_copy(size_t iters, bench_samples *out) {
  return lat_run("copy64", 64, 0, 0, 1, iters, out);
}

int bench_core_latency_wait(size_t iters, bench_samples *out) {
  return lat_run("wait64", 64, 1, 0, 0, iters, out);
}

int bench_core_latency_fd(size_t iters, bench_samples *out) {
  return lat_run("fd64", 64, 2, 0, 0, iters, out);
}

/* ---- publish cost ------------------------------------------------------- */

struct idle_side {
  alignas(64) _Atomic uint32_t ready;
  _Atomic uint32_t failed;
  char name[96];
  int rfd, wfd;
  int armed; /* readers are event loops on their event fd */
};

/* An attached reader that does nothing until the pipe closes. */
static int idle_reader(void *arg) {
  struct idle_side *s = arg;
  close(s->wfd);
  shmx_client *cl = NULL;
  int rc = shmx_client_open(s->name, &cl);
  if (rc != 0) {
    fail("shmx_client_open", rc);
    atomic_fetch_add(&s->failed, 1);
    return 2;
  }
  if (s->armed) {
    /* An event-loop reader: arm, sleep on the fd (and on the pipe that
     * ends the run), take the latest frame when woken. */
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = 1};
    int fd = shmx_client_fd(cl);
    struct epoll_event evp = {.events = EPOLLIN, .data.u32 = 2};
    if (ep < 0 || fd < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0 ||
        epoll_ctl(ep, EPOLL_CTL_ADD, s->rfd, &evp) != 0) {
      fail("shmx_client_fd/epoll", fd < 0 ? fd : -1);
      atomic_fetch_add(&s->failed, 1);
      shmx_client_close(cl);
      return 2;
    }
    atomic_fetch_add_explicit(&s->ready, 1, memory_order_release);
    for (;;) {
      int ar = shmx_client_arm(cl);
      if (ar < 0)
        break;
      if (ar == 1) {
        shmx_frame f;
        if (shmx_client_latest(cl, &f) == 0)
          shmx_frame_release(cl, &f);
        continue;
      }
      struct epoll_event out;
      if (epoll_wait(ep, &out, 1, -1) == 1 && out.data.u32 == 2)
        break; /* the run is over */
    }
    close(ep);
    shmx_client_close(cl);
    return 0;
  }
  atomic_fetch_add_explicit(&s->ready, 1, memory_order_release);
  char c;
  for (;;) {
    ssize_t n = read(s->rfd, &c, 1);
    if (n == 0 || (n < 0 && errno != EINTR))
      break;
  }
  shmx_client_close(cl);
  return 0;
}

int bench_core_publish_copy(size_t bytes, size_t batch, int readers, int armed,
                            size_t iters, bench_samples *out) {
  if (bytes == 0 || batch == 0 || readers < 0 || readers > 1024)
    return -1;
  struct idle_side *s = bench_shared_alloc(sizeof *s);
  size_t src_cap = (bytes + 63) & ~(size_t)63;
  uint8_t *src = aligned_alloc(64, src_cap);
  pid_t *pids = calloc((size_t)readers + 1, sizeof(pid_t));
  int fds[2] = {-1, -1};
  if (!s || !src || !pids || pipe(fds) != 0 ||
      bench_samples_reserve(out, iters) != 0) {
    bench_shared_free(s, sizeof *s);
    free(src);
    free(pids);
    return -1;
  }
  for (size_t k = 0; k < src_cap; k++)
    src[k] = (uint8_t)(k * 131u + 7u);
  s->rfd = fds[0];
  s->wfd = fds[1];
  s->armed = armed;
  char tag[48];
  snprintf(tag, sizeof tag, "pub%zu-%dr%s", bytes, readers, armed ? "e" : "");
  bench_channel_name(s->name, sizeof s->name, tag);

  shmx_server *srv = NULL;
  int ok = create_channel(s->name, bytes, &srv) == 0;
  int spawned = 0;
  for (; ok && spawned < readers; spawned++) {
    pids[spawned] = bench_spawn(1, idle_reader, s);
    if (pids[spawned] < 0)
      ok = 0;
  }
  close(fds[0]);
  bench_spin sp;
  bench_spin_init(&sp, BENCH_STEP_TIMEOUT_NS);
  while (ok && atomic_load_explicit(&s->ready, memory_order_acquire) <
                   (uint32_t)readers)
    if (atomic_load(&s->failed) != 0 || bench_spin_wait(&sp))
      ok = 0;
  if (!ok)
    fprintf(stderr, "shmx-bench: publish %s: readers did not attach\n", tag);

  size_t warm = iters / 10 + 10;
  for (size_t k = 0; ok && k < warm + iters; k++) {
    int rc = 0;
    uint64_t t0 = bench_now();
    for (size_t b = 0; rc == 0 && b < batch; b++) {
      rc = shmx_server_begin(srv);
      if (rc == 0)
        rc = shmx_server_append(srv, STREAM_ID, src, bytes, bytes);
      if (rc == 0)
        rc = shmx_server_publish(srv, 0.0, NULL);
    }
    uint64_t t1 = bench_now();
    if (rc != 0) {
      fail("begin/append/publish", rc);
      ok = 0;
    } else if (k >= warm) {
      bench_samples_push(out, (t1 - t0 + batch / 2) / batch);
    }
  }
  close(fds[1]); /* idle readers see EOF and detach */
  for (int r = 0; r < spawned; r++)
    if (pids[r] > 0 && bench_reap(pids[r], BENCH_STEP_TIMEOUT_NS) != 0 && ok) {
      fprintf(stderr, "shmx-bench: publish %s: a reader failed\n", tag);
      ok = 0;
    }
  shmx_server_destroy(srv);
  bench_shared_free(s, sizeof *s);
  free(src);
  free(pids);
  return ok ? 0 : -1;
}

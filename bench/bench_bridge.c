/*
 * bench_bridge.c -- shmx bridge against bare libzmq, in the same run.
 *
 *   shmx-bench-bridge [--quick] [--rounds N] [--json] [--spin-us US]
 *                     [--no-reader] [--tput64-only]
 *
 * Cases, interleaved in rounds (ratios are taken per round, then the
 * median over rounds):
 *   zmq_lat_64B      bare libzmq PUSH -> PULL over tcp://127.0.0.1, one
 *                    64 B message every 200 us; one-way latency from a
 *                    stamp in the message (the baseline)
 *   bridge_lat_64B   producer -> channel -> bridge sender -> TCP ->
 *                    bridge receiver -> channel -> blocked reader, the same
 *                    pacing; one-way latency; "added" = its p50 minus the
 *                    baseline's p50 of the same round
 *   zmq_tput_SIZE    PUSH sends flat out for the window, PULL counts
 *   bridge_tput_SIZE the producer publishes as fast as the bridge sender
 *                    reads (at most slots - 2 frames ahead of it: 254 of
 *                    256 for 64 B, 6 of 8 for 1 MiB, as a PUSH is held back
 *                    by its high-water mark); the reader at the far
 *                    end counts frames received (in-order bridge; frames
 *                    lost anywhere are counted as dropped)
 * --no-reader measures throughput with nobody reading the far channel (what
 * the receiver republishes is then the bridge's capacity alone); --spin-us
 * makes sender and receiver busy-poll; --tput64-only runs one 64 B
 * throughput case (for profiling).
 * Every thread runs in this process: the producer, the bridge's sender and
 * receiver (each with its libzmq I/O thread) and the reader; on a 2-CPU
 * machine they share the CPUs, like the bare libzmq pair's 4 threads.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "bench_internal.h"
#include "bridge.h"

static int g_quick, g_json, g_rounds = 3, g_tput64_only;
static unsigned g_spin_us;
static int g_no_reader; /* throughput without a reader of the far channel */
static double g_last_batch; /* frames per message in the last throughput run */
static double g_last_republished; /* frames/s the receiver republished */

/* Slots of the bench channels: many for small frames, so the producer can
 * run ahead of the sender by a batch, as a PUSH queue lets it. */
#define SLOTS(bytes) ((bytes) <= 4096 ? 32u : 8u)
#define BRIDGE_AHEAD(bytes) (SLOTS(bytes) - 2)

static void sleep_until(uint64_t t) {
  for (;;) {
    uint64_t now = bench_now();
    if (now >= t) return;
    if (t - now > 60000) {
      struct timespec ts = {0, (long)(t - now - 50000)};
      nanosleep(&ts, NULL);
    }
  }
}

/* ---- bare libzmq -------------------------------------------------------- */

typedef struct zpair {
  void *ctx_a, *ctx_b, *push, *pull;
} zpair;

static int zpair_open(zpair *z) {
  z->ctx_a = zmq_ctx_new();
  z->ctx_b = zmq_ctx_new();
  z->push = zmq_socket(z->ctx_a, ZMQ_PUSH);
  z->pull = zmq_socket(z->ctx_b, ZMQ_PULL);
  int zero = 0;
  zmq_setsockopt(z->push, ZMQ_LINGER, &zero, sizeof zero);
  zmq_setsockopt(z->pull, ZMQ_LINGER, &zero, sizeof zero);
  if (zmq_bind(z->pull, "tcp://127.0.0.1:*")) return -1;
  char ep[256];
  size_t n = sizeof ep;
  zmq_getsockopt(z->pull, ZMQ_LAST_ENDPOINT, ep, &n);
  return zmq_connect(z->push, ep);
}

static void zpair_close(zpair *z) {
  zmq_close(z->push);
  zmq_close(z->pull);
  zmq_ctx_term(z->ctx_a);
  zmq_ctx_term(z->ctx_b);
}

typedef struct zlat_arg {
  zpair *z;
  bench_samples *out;
  size_t n;
  size_t bytes;
  double secs;
  uint64_t got, got_bytes;
} zlat_arg;

static void *zlat_rx(void *p) {
  zlat_arg *a = p;
  uint8_t buf[64];
  for (size_t i = 0; i < a->n; i++) {
    if (zmq_recv(a->z->pull, buf, sizeof buf, 0) < 8) break;
    uint64_t t0, t1 = bench_now();
    memcpy(&t0, buf, 8);
    if (i >= a->n / 10) bench_samples_push(a->out, t1 - t0);
  }
  return NULL;
}

static int zmq_latency(size_t n, bench_samples *out) {
  zpair z;
  if (zpair_open(&z)) return -1;
  zlat_arg a = {&z, out, n, 64, 0, 0, 0};
  bench_samples_reserve(out, n);
  pthread_t t;
  pthread_create(&t, NULL, zlat_rx, &a);
  uint8_t msg[64] = {0};
  uint64_t next = bench_now() + 50000000; /* connect first */
  for (size_t i = 0; i < n; i++) {
    sleep_until(next);
    next += 200000;
    uint64_t t0 = bench_now();
    memcpy(msg, &t0, 8);
    zmq_send(z.push, msg, sizeof msg, 0);
  }
  pthread_join(t, NULL);
  zpair_close(&z);
  return 0;
}

static void *ztput_rx(void *p) {
  zlat_arg *a = p;
  zmq_msg_t m;
  zmq_msg_init(&m);
  for (;;) {
    if (zmq_msg_recv(&m, a->z->pull, 0) < 0) break;
    if (zmq_msg_size(&m) == 1) break; /* end marker */
    a->got++;
    a->got_bytes += zmq_msg_size(&m);
  }
  zmq_msg_close(&m);
  return NULL;
}

/* Messages per second received over the window. */
static double zmq_tput(size_t bytes, double secs) {
  zpair z;
  if (zpair_open(&z)) return -1;
  zlat_arg a = {&z, NULL, 0, bytes, secs, 0, 0};
  pthread_t t;
  pthread_create(&t, NULL, ztput_rx, &a);
  uint8_t *msg = calloc(1, bytes);
  struct timespec ts = {0, 50000000};
  nanosleep(&ts, NULL);
  uint64_t t0 = bench_now(), end = t0 + (uint64_t)(secs * 1e9);
  while (bench_now() < end)
    for (int k = 0; k < 16; k++) zmq_send(z.push, msg, bytes, 0);
  zmq_send(z.push, "x", 1, 0);
  pthread_join(t, NULL);
  double el = (double)(bench_now() - t0) / 1e9;
  free(msg);
  zpair_close(&z);
  return (double)a.got / el;
}

/* ---- the bridge --------------------------------------------------------- */

typedef struct side {
  const char *name;
  shmx_bridge *b;
  volatile sig_atomic_t stop;
  pthread_t t;
} side;

static void *side_run(void *p) {
  side *s = p;
  pthread_setname_np(pthread_self(), s->name);
  shmx_bridge_run(s->b, -1, &s->stop);
  return NULL;
}

typedef struct rig {
  char src[96], dst[96];
  shmx_server *srv;
  side tx, rx;
  shmx_client *c;
} rig;

static int rig_open(rig *r, size_t bytes) {
  memset(r, 0, sizeof *r);
  bench_channel_name(r->src, sizeof r->src, "brsrc");
  bench_channel_name(r->dst, sizeof r->dst, "brdst");
  shmx_stream_spec sp = {1, "data", SHMX_DT_U8, 1, SHMX_LAYOUT_SOA_SCALAR, 1, NULL, 0};
  shmx_server_config cfg;
  shmx_server_config_init(&cfg);
  cfg.slots = SLOTS(bytes);
  cfg.frame_bytes_cap = bytes < 64 ? 64 : bytes;
  cfg.streams = &sp;
  cfg.n_streams = 1;
  if (shmx_server_create(r->src, &cfg, &r->srv)) return -1;
  shmx_bridge_opts so = {0}, ro = {0};
  so.channel = r->src;
  so.endpoint = "tcp://127.0.0.1:*";
  so.in_order = 1;
  so.spin_us = ro.spin_us = g_spin_us;
  if (shmx_bridge_open(1, &so, &r->tx.b)) return -1;
  ro.endpoint = shmx_bridge_endpoint(r->tx.b);
  ro.channel = r->dst;
  if (shmx_bridge_open(0, &ro, &r->rx.b)) return -1;
  r->tx.name = "br-sender";
  r->rx.name = "br-receiver";
  pthread_create(&r->tx.t, NULL, side_run, &r->tx);
  pthread_create(&r->rx.t, NULL, side_run, &r->rx);
  /* the receiver creates it when the sender's schema arrives */
  return shmx_client_open_wait(r->dst, 10000000000ll, &r->c) ? -1 : 0;
}

static void rig_close(rig *r) {
  r->tx.stop = r->rx.stop = 1;
  pthread_join(r->tx.t, NULL);
  pthread_join(r->rx.t, NULL);
  shmx_client_close(r->c);
  shmx_bridge_close(r->rx.b);
  shmx_bridge_close(r->tx.b);
  shmx_server_destroy(r->srv);
}

static int publish(shmx_server *s, const void *data, size_t bytes) {
  if (shmx_server_begin(s)) return -1;
  if (shmx_server_append(s, 1, data, bytes, bytes)) return -1;
  return shmx_server_publish(s, 0, NULL);
}

typedef struct blat_arg {
  rig *r;
  bench_samples *out;
  size_t n;
  _Atomic int done;
  uint64_t got, dropped;
  double secs;
} blat_arg;

static void *blat_rx(void *p) {
  blat_arg *a = p;
  shmx_frame f;
  size_t i = 0;
  while (i < a->n) {
    int rc = shmx_client_wait(a->r->c, &f, 2000000000, 1);
    if (rc) break;
    uint64_t t1 = bench_now(), t0;
    memcpy(&t0, f.streams[0].data, 8);
    shmx_frame_release(a->r->c, &f);
    if (i >= a->n / 10) bench_samples_push(a->out, t1 - t0);
    i++;
  }
  return NULL;
}

static int bridge_latency(size_t n, bench_samples *out) {
  rig r;
  if (rig_open(&r, 64)) return -1;
  blat_arg a = {&r, out, n, 0, 0, 0, 0};
  bench_samples_reserve(out, n);
  pthread_t t;
  pthread_create(&t, NULL, blat_rx, &a);
  uint8_t msg[64] = {0};
  uint64_t next = bench_now() + 50000000;
  for (size_t i = 0; i < n; i++) {
    sleep_until(next);
    next += 200000;
    uint64_t t0 = bench_now();
    memcpy(msg, &t0, 8);
    publish(r.srv, msg, sizeof msg);
  }
  pthread_join(t, NULL);
  rig_close(&r);
  return 0;
}

static void *btput_rx(void *p) {
  blat_arg *a = p;
  pthread_setname_np(pthread_self(), "consumer");
  shmx_frame f;
  while (!atomic_load(&a->done)) {
    int rc = shmx_client_wait(a->r->c, &f, 100000000, 1);
    if (rc == SHMX_E_TIMEOUT) continue;
    if (rc) break;
    a->got++;
    a->dropped += f.dropped;
    shmx_frame_release(a->r->c, &f);
  }
  return NULL;
}

static double bridge_tput(size_t bytes, double secs, double *drop_frac) {
  rig r;
  if (rig_open(&r, bytes)) return -1;
  blat_arg a = {&r, NULL, 0, 0, 0, 0, secs};
  pthread_t t;
  if (!g_no_reader) pthread_create(&t, NULL, btput_rx, &a);
  uint8_t *msg = calloc(1, bytes);
  uint64_t t0 = bench_now(), end = t0 + (uint64_t)(secs * 1e9), pubs = 0, seen = 0;
  /* Offer frames as fast as the bridge's sender takes them: at most
   * BRIDGE_AHEAD frames ahead of what it has read, as a blocking PUSH is
   * held back by its high-water mark (a producer that never waits would
   * only measure how many frames the slots lose). */
  while (bench_now() < end) {
    if (pubs - seen >= BRIDGE_AHEAD(bytes)) {
      shmx_reader_info ri[4];
      int n = shmx_server_readers(r.srv, ri, 4);
      for (int k = 0; k < n; k++)
        if (ri[k].in_use && ri[k].last_frame_seen > seen) seen = ri[k].last_frame_seen;
      if (pubs - seen >= BRIDGE_AHEAD(bytes)) {
        sched_yield();
        continue;
      }
    }
    publish(r.srv, msg, bytes);
    pubs++;
  }
  /* let what is in flight arrive, then stop */
  struct timespec ts = {0, 200000000};
  nanosleep(&ts, NULL);
  double el = (double)(bench_now() - t0) / 1e9 - 0.2;
  atomic_store(&a.done, 1);
  if (!g_no_reader) pthread_join(t, NULL);
  *drop_frac = pubs ? 1.0 - (double)a.got / (double)pubs : 0;
  r.tx.stop = r.rx.stop = 1; /* stats are read by the handle's thread only */
  pthread_join(r.tx.t, NULL);
  pthread_join(r.rx.t, NULL);
  shmx_bridge_stats txs, rxs;
  shmx_bridge_stats_get(r.tx.b, &txs);
  shmx_bridge_stats_get(r.rx.b, &rxs);
  g_last_batch = txs.messages ? (double)txs.frames / (double)txs.messages : 0;
  g_last_republished = (double)rxs.frames / el;
  r.tx.stop = r.rx.stop = 0;
  pthread_create(&r.tx.t, NULL, side_run, &r.tx);
  pthread_create(&r.rx.t, NULL, side_run, &r.rx);
  free(msg);
  rig_close(&r);
  return (double)a.got / el;
}

/* ---- report ------------------------------------------------------------- */

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}
static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_d);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--quick")) g_quick = 1;
    else if (!strcmp(argv[i], "--json")) g_json = 1;
    else if (!strcmp(argv[i], "--rounds") && i + 1 < argc) g_rounds = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--tput64-only")) g_tput64_only = 1; /* for profiling */
    else if (!strcmp(argv[i], "--no-reader")) g_no_reader = 1;
    else if (!strcmp(argv[i], "--spin-us") && i + 1 < argc) g_spin_us = (unsigned)atoi(argv[++i]);
    else {
      fprintf(stderr, "usage: %s [--quick] [--rounds N] [--json] [--spin-us US] "
              "[--no-reader] [--tput64-only]\n", argv[0]);
      return 2;
    }
  }
  if (g_rounds < 1 || g_rounds > 50) g_rounds = 3;
  if (g_quick) g_rounds = 1;
  bench_remove_stale_channels();
  size_t n_lat = g_quick ? 500 : 10000;
  double secs = g_quick ? 0.3 : 2.0;
  const size_t sizes[2] = {64, 1u << 20};
  double lat_ratio[50], added[50], tput_ratio[2][50];
  bench_stats zs[50], bs[50];
  double zt[2][50], bt[2][50], drops[2][50], rp[2][50], rp_ratio[2][50], bat[2][50];
  if (g_tput64_only) {
    double d;
    double r = bridge_tput(64, secs, &d);
    printf("bridge 64 B: read %.0f frames/s, republished %.0f/s, %.1f frames per message\n", r, g_last_republished, g_last_batch);
    return 0;
  }
  for (int r = 0; r < g_rounds; r++) {
    bench_samples s1 = {0}, s2 = {0};
    if (zmq_latency(n_lat, &s1) || bridge_latency(n_lat, &s2)) {
      fprintf(stderr, "latency case failed\n");
      return 1;
    }
    bench_stats_compute(&s1, &zs[r]);
    bench_stats_compute(&s2, &bs[r]);
    bench_samples_free(&s1);
    bench_samples_free(&s2);
    lat_ratio[r] = (double)bs[r].p50 / (double)zs[r].p50;
    added[r] = ((double)bs[r].p50 - (double)zs[r].p50) / 1e3;
    for (int k = 0; k < 2; k++) {
      zt[k][r] = zmq_tput(sizes[k], secs);
      bt[k][r] = bridge_tput(sizes[k], secs, &drops[k][r]);
      rp[k][r] = g_last_republished;
      bat[k][r] = g_last_batch;
      tput_ratio[k][r] = bt[k][r] / zt[k][r];
      rp_ratio[k][r] = rp[k][r] / zt[k][r];
    }
    if (g_json) {
      printf("{\"round\":%d,\"zmq_lat_64B\":{\"p50_ns\":%llu,\"p99_ns\":%llu,\"p999_ns\":%llu},"
             "\"bridge_lat_64B\":{\"p50_ns\":%llu,\"p99_ns\":%llu,\"p999_ns\":%llu},"
             "\"added_p50_us\":%.2f",
             r, (unsigned long long)zs[r].p50, (unsigned long long)zs[r].p99,
             (unsigned long long)zs[r].p999, (unsigned long long)bs[r].p50,
             (unsigned long long)bs[r].p99, (unsigned long long)bs[r].p999, added[r]);
      for (int k = 0; k < 2; k++)
        printf(",\"tput_%zuB\":{\"zmq_msgs_s\":%.0f,\"bridge_frames_s\":%.0f,\"ratio\":%.3f,"
               "\"republished_s\":%.0f,\"republished_ratio\":%.3f,\"frames_per_msg\":%.1f,"
               "\"bridge_dropped\":%.4f}",
               sizes[k], zt[k][r], bt[k][r], tput_ratio[k][r], rp[k][r], rp_ratio[k][r],
               bat[k][r], drops[k][r]);
      printf("}\n");
      fflush(stdout);
    } else {
      printf("round %d: 64 B one-way p50/p99/p99.9 us: zmq %.1f/%.1f/%.1f  bridge "
             "%.1f/%.1f/%.1f (added %.1f)\n",
             r, zs[r].p50 / 1e3, zs[r].p99 / 1e3, zs[r].p999 / 1e3, bs[r].p50 / 1e3,
             bs[r].p99 / 1e3, bs[r].p999 / 1e3, added[r]);
      for (int k = 0; k < 2; k++)
        printf("         %7zu B throughput: zmq %.0f msgs/s  bridge: republished %.0f/s "
               "(%.2fx; %.1f frames/message), read by the far reader %.0f/s (%.2fx, "
               "%.1f%% of published lost)\n",
               sizes[k], zt[k][r], rp[k][r], rp_ratio[k][r], bat[k][r], bt[k][r],
               tput_ratio[k][r], 100 * drops[k][r]);
      fflush(stdout);
    }
  }
  double lr = median(lat_ratio, g_rounds), ad = median(added, g_rounds);
  double t0r = median(tput_ratio[0], g_rounds), t1r = median(tput_ratio[1], g_rounds);
  double p0r = median(rp_ratio[0], g_rounds), p1r = median(rp_ratio[1], g_rounds);
  if (g_json)
    printf("{\"summary\":true,\"rounds\":%d,\"lat_ratio_p50\":%.3f,\"added_p50_us\":%.2f,"
           "\"tput_ratio_64B\":%.3f,\"tput_ratio_1MiB\":%.3f,\"republished_ratio_64B\":%.3f,"
           "\"republished_ratio_1MiB\":%.3f}\n",
           g_rounds, lr, ad, t0r, t1r, p0r, p1r);
  else
    printf("\nmedian of %d rounds: 64 B latency %.2fx bare libzmq (added %.1f us; target "
           "<= 20); throughput republished 64 B %.2fx (target >= 0.5), 1 MiB %.2fx (target "
           ">= 0.7); read at the far end 64 B %.2fx, 1 MiB %.2fx\n",
           g_rounds, lr, ad, p0r, p1r, t0r, t1r);
  return 0;
}

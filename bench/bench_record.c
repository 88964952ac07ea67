/*
 * bench_record.c -- recordings measured against baselines of the same run
 * (issue 12). Not a test: it prints figures.
 *
 *   shmx-bench-record [--quick] [--dir DIR] [--gib N] [--cli PATH] [--json]
 *                     [--only record|replay|seek]
 *
 * 1. Recording 1 MiB frames, stored chunks, to a file in DIR (default
 *    /dev/shm: tmpfs) as fast as the recorder takes them (the producer
 *    stays 8 frames ahead of it, never overrunning): GB/s, against write(2)
 *    of the same bytes in 1 MiB writes to a file in DIR from 16 buffers in
 *    turn (as many as the channel's slots; also from one hot buffer). With
 *    and without chunk CRCs. Rounds interleave all four.
 *    Also lock-step: the recorder alone, no producer writing beside it.
 * 2. The same offered at 1 GB/s (1000 frames/s on absolute deadlines, 2 s):
 *    frames the recorder missed.
 * 3. 64 B frames flat out (frames/s), and offered at 200 k frames/s (2 s):
 *    missed.
 * 4. A recording of N GiB in 100 k frames (--gib, default 10; 1 with
 *    --quick): open time (summary only), then find_id + read_at of random
 *    frames: p50/p99/p99.9, first the page-cache-warm file, each seek a new
 *    random id.
 * 5. Replay timing: `shmx play --json` (--cli) of a 2 s, 1 kHz recording at
 *    rate 1: lateness against the recorded schedule, p50/p99/max.
 * The producer and recorder are threads of this process; the recorder is
 * the library's (shmx_recorder_run), as `shmx record` uses it.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench_internal.h"
#include "shmx.h"
#include "shmx_record.h"

static const char *g_dir = "/dev/shm";
static int g_json, g_quick;

typedef struct run {
  const char *name;
  shmx_recorder *rec;
  volatile sig_atomic_t stop;
  int rc;
} run;

static void *rec_thread(void *arg) {
  run *r = arg;
  r->rc = shmx_recorder_run(r->rec, -1, 0, &r->stop);
  return NULL;
}

static uint64_t reader_seen(shmx_server *s) {
  shmx_reader_info ri[4];
  int n = shmx_server_readers(s, ri, 4);
  for (int i = 0; i < n; i++)
    if (ri[i].in_use) return ri[i].last_frame_seen;
  return 0;
}

static int readers(shmx_server *s) {
  shmx_reader_info ri[4];
  int n = shmx_server_readers(s, ri, 4), u = 0;
  for (int i = 0; i < n; i++) u += ri[i].in_use;
  return u;
}

static void path_of(char *buf, size_t cap, const char *leaf) {
  snprintf(buf, cap, "%s/shmx-bench-%d-%s", g_dir, (int)getpid(), leaf);
}

static void sleep_until(uint64_t t) {
  struct timespec ts = {(time_t)(t / 1000000000u), (long)(t % 1000000000u)};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
  }
}

typedef struct result {
  uint64_t frames, dropped, bytes, ns, file_bytes;
} result;

/* A channel `name` of one u8 stream (slots, frame cap) and a recorder of
 * it writing path (replaced). 0, or -1 with the reason printed. */
static int setup(const char *name, const char *path, uint32_t slots, uint64_t cap, int no_crc,
                 shmx_server **srv, shmx_recorder **rec) {
  shmx_stream_spec sp = {.id = 1, .name = "data", .dtype = SHMX_DT_U8, .components = 1,
                         .bytes_per_elem = 1};
  shmx_server_config c;
  shmx_server_config_init(&c);
  c.streams = &sp;
  c.n_streams = 1;
  c.slots = slots;
  c.frame_bytes_cap = cap < 4096 ? 4096 : cap;
  shmx_rec_config rc;
  shmx_rec_config_init(&rc);
  rc.no_crc = no_crc;
  unlink(path);
  *rec = NULL;
  if (shmx_server_create(name, &c, srv) == 0) {
    if (shmx_recorder_open(path, &rc, rec) == 0 && shmx_recorder_add(*rec, name) == 0) return 0;
    fprintf(stderr, "bench_record: %s\n", shmx_errmsg());
    shmx_recorder_close(*rec);
    shmx_server_destroy(*srv);
    unlink(path);
    return -1;
  }
  fprintf(stderr, "bench_record: %s\n", shmx_errmsg());
  return -1;
}

/* Record `frames` frames of `size` bytes. rate 0: flat out, the producer
 * at most `ahead` frames past the recorder; else offered at `rate` frames/s
 * on absolute deadlines (never waiting for the recorder). */
static int record_run(const char *leaf, uint64_t size, uint64_t frames, double rate,
                      uint32_t slots, uint32_t ahead, int no_crc, result *res) {
  char path[512], name[64];
  path_of(path, sizeof path, leaf);
  snprintf(name, sizeof name, "bench-rec-%d", (int)getpid());
  shmx_server *srv;
  run r = {name, NULL, 0, 0};
  if (setup(name, path, slots, size, no_crc, &srv, &r.rec)) return -1;
  pthread_t t;
  pthread_create(&t, NULL, rec_thread, &r);
  while (readers(srv) < 1) sched_yield();
  uint8_t *buf = malloc(size);
  for (uint64_t i = 0; i < size; i++) buf[i] = (uint8_t)(i * 7);
  uint64_t t0 = bench_now(), seen = 0;
  for (uint64_t k = 1; k <= frames; k++) {
    if (rate > 0) {
      sleep_until(t0 + (uint64_t)((double)(k - 1) * 1e9 / rate));
    } else {
      while (k - seen > ahead) {
        seen = reader_seen(srv);
        if (k - seen > ahead) sched_yield();
      }
    }
    void *p;
    shmx_server_begin(srv);
    shmx_server_reserve(srv, 1, size, &p);
    memcpy(p, buf, size); /* the producer's own copy into its slot */
    shmx_server_publish(srv, 0.0, NULL);
  }
  while (reader_seen(srv) < frames && !r.rc) sched_yield();
  uint64_t t1 = bench_now();
  r.stop = 1;
  pthread_join(t, NULL);
  shmx_rec_stats st;
  shmx_recorder_stats(r.rec, &st);
  shmx_recorder_close(r.rec);
  shmx_server_destroy(srv);
  free(buf);
  res->frames = st.frames;
  res->dropped = st.dropped;
  res->bytes = st.bytes;
  res->ns = t1 - t0;
  res->file_bytes = st.file_bytes;
  unlink(path);
  return r.rc;
}

/* write(2) of `frames` x `size` bytes to a file in g_dir, from `nbuf`
 * buffers in turn (nbuf = the channel's slots: the bytes come from as
 * much memory as the recorder's do; 1: one buffer, hot in the cache). */
static double write_gbps(uint64_t size, uint64_t frames, uint32_t nbuf) {
  char path[512];
  path_of(path, sizeof path, "write.bin");
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return 0;
  uint8_t *buf = malloc(size * nbuf);
  for (uint64_t i = 0; i < size * nbuf; i++) buf[i] = (uint8_t)(i * 7);
  uint64_t t0 = bench_now();
  for (uint64_t k = 0; k < frames; k++)
    for (uint64_t done = 0; done < size;) {
      ssize_t n = write(fd, buf + (k % nbuf) * size + done, size - done);
      if (n <= 0) break;
      done += (uint64_t)n;
    }
  uint64_t ns = bench_now() - t0;
  close(fd);
  unlink(path);
  free(buf);
  return (double)(size * frames) / (double)ns;
}

static void line(const char *what, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void line(const char *what, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  if (g_json) {
    printf("{\"bench\":\"%s\",", what);
    vprintf(fmt, ap);
    printf("}\n");
  } else {
    printf("%-28s ", what);
    char tmp[512];
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    for (char *q = tmp; *q; q++) /* "k":v -> k=v */
      if (*q != '"') putchar(*q == ':' ? '=' : *q == ',' ? ' ' : *q);
    putchar('\n');
  }
  va_end(ap);
  fflush(stdout);
}

/* The recorder alone: 8 frames published, then one recorder pass in the
 * same thread, timed; no producer writes beside it. GB/s. */
static double record_lockstep(uint64_t size, uint64_t frames, int no_crc) {
  char path[512], name[64];
  path_of(path, sizeof path, "lock.mcap");
  snprintf(name, sizeof name, "bench-lock-%d", (int)getpid());
  shmx_server *srv;
  shmx_recorder *rec;
  if (setup(name, path, 16, size, no_crc, &srv, &rec)) return 0;
  uint8_t *buf = malloc(size);
  memset(buf, 3, size);
  uint64_t ns = 0, done = 0;
  shmx_recorder_run(rec, 0, 0, NULL); /* attach */
  while (done < frames) {
    for (int i = 0; i < 8; i++) {
      shmx_server_begin(srv);
      shmx_server_append(srv, 1, buf, size, size);
      shmx_server_publish(srv, 0.0, NULL);
    }
    uint64_t t = bench_now();
    shmx_recorder_run(rec, 0, 0, NULL);
    ns += bench_now() - t;
    done += 8;
  }
  shmx_recorder_close(rec);
  shmx_server_destroy(srv);
  free(buf);
  unlink(path);
  return (double)(size * frames) / (double)ns;
}

static void bench_throughput(void) {
  int rounds = g_quick ? 1 : 7; /* tmpfs write speed swings 3x here: medians */
  uint64_t n = g_quick ? 300 : 2000;
  for (int round = 0; round < rounds; round++) {
    /* interleaved: each figure of a round is taken next to the others */
    double w = write_gbps(1 << 20, n, 16), w1 = write_gbps(1 << 20, n, 1);
    result r, q;
    record_run("t.mcap", 1 << 20, n, 0, 16, 8, 0, &r);
    record_run("t.mcap", 1 << 20, n, 0, 16, 8, 1, &q);
    double g = (double)r.bytes / (double)r.ns, gq = (double)q.bytes / (double)q.ns;
    line("record_1MiB", "\"round\":%d,\"write_GBps\":%.3f,\"write_1buf_GBps\":%.3f,"
         "\"record_GBps\":%.3f,\"ratio\":%.2f,\"record_nocrc_GBps\":%.3f,"
         "\"ratio_nocrc\":%.2f,\"missed\":%" PRIu64,
         round, w, w1, g, g / w, gq, gq / w, r.dropped + q.dropped);
    double lw = write_gbps(1 << 20, n / 2, 16), lc = record_lockstep(1 << 20, n / 2, 0),
           ln = record_lockstep(1 << 20, n / 2, 1);
    line("record_1MiB_lockstep", "\"round\":%d,\"write_GBps\":%.3f,\"record_GBps\":%.3f,"
         "\"ratio\":%.2f,\"record_nocrc_GBps\":%.3f,\"ratio_nocrc\":%.2f", round, lw, lc,
         lc / lw, ln, ln / lw);
    w = write_gbps(64, g_quick ? 200000 : 1000000, 1);
    record_run("s.mcap", 64, g_quick ? 200000 : 2000000, 0, 1024, 512, 0, &r);
    line("record_64B", "\"round\":%d,\"frames_per_s\":%.0f,\"missed\":%" PRIu64
         ",\"write64_per_s\":%.0f", round, (double)r.frames * 1e9 / (double)r.ns, r.dropped,
         w * 1e9 / 64);
  }
  result r;
  for (int nocrc = 0; nocrc < 2; nocrc++) {
    record_run("o.mcap", 1 << 20, g_quick ? 500 : 2000, 1000.0, 64, 0, nocrc, &r);
    line("record_1MiB_at_1GBps", "\"crc\":%s,\"offered_fps\":1000,\"frames\":%" PRIu64
         ",\"missed\":%" PRIu64, nocrc ? "false" : "true", r.frames, r.dropped);
  }
  record_run("o.mcap", 64, g_quick ? 100000 : 400000, 200000.0, 1024, 0, 0, &r);
  line("record_64B_at_200k", "\"offered_fps\":200000,\"frames\":%" PRIu64 ",\"missed\":%" PRIu64,
       r.frames, r.dropped);
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return (x > y) - (x < y);
}

static void bench_seek(double gib) {
  char path[512];
  path_of(path, sizeof path, "big.mcap");
  uint64_t frames = 100000;
  uint64_t size = (uint64_t)(gib * (double)(1ull << 30)) / frames;
  uint64_t t0 = bench_now();
  char name[64];
  snprintf(name, sizeof name, "bench-seek-%d", (int)getpid());
  shmx_server *srv;
  run rr = {name, NULL, 0, 0};
  if (setup(name, path, 16, size, 1, &srv, &rr.rec)) return;
  pthread_t t;
  pthread_create(&t, NULL, rec_thread, &rr);
  while (readers(srv) < 1) sched_yield();
  uint64_t seen = 0;
  for (uint64_t k = 1; k <= frames; k++) {
    while (k - seen > 8) {
      seen = reader_seen(srv);
      if (k - seen > 8) sched_yield();
    }
    void *p;
    shmx_server_begin(srv);
    shmx_server_reserve(srv, 1, size, &p);
    memset(p, (int)(k & 0xff), 64);
    shmx_server_publish(srv, (double)k, NULL);
  }
  while (reader_seen(srv) < frames) sched_yield();
  rr.stop = 1;
  pthread_join(t, NULL);
  shmx_recorder_close(rr.rec);
  shmx_server_destroy(srv);
  struct stat sb;
  stat(path, &sb);
  double make_s = (double)(bench_now() - t0) / 1e9;
  /* open: best of 5 */
  uint64_t open_ns = UINT64_MAX;
  shmx_recording *rec = NULL;
  for (int i = 0; i < 5; i++) {
    uint64_t a = bench_now();
    if (shmx_recording_open(path, &rec)) {
      fprintf(stderr, "bench_record: %s\n", shmx_errmsg());
      unlink(path);
      return;
    }
    uint64_t b = bench_now() - a;
    if (b < open_ns) open_ns = b;
    if (i < 4) shmx_recording_close(rec);
  }
  int n = g_quick ? 2000 : 20000;
  uint64_t *lat = malloc(sizeof(uint64_t) * (size_t)n);
  uint64_t seed = 88172645463325252ull, bad = 0;
  for (int i = 0; i < n; i++) {
    seed ^= seed << 13;
    seed ^= seed >> 7;
    seed ^= seed << 17;
    uint64_t id = seed % frames + 1, pos;
    uint64_t a = bench_now();
    shmx_rec_frame f;
    if (shmx_recording_find_id(rec, NULL, id, &pos) || shmx_recording_read_at(rec, pos, &f)) {
      bad++;
      continue;
    }
    if (f.frame_id != id || f.streams[0].data[0] != (uint8_t)(id & 0xff)) bad++;
    shmx_rec_frame_release(&f);
    lat[i] = bench_now() - a;
  }
  qsort(lat, (size_t)n, sizeof *lat, cmp_u64);
  shmx_rec_info in;
  shmx_recording_info(rec, &in);
  line("seek_random_frame", "\"file_GiB\":%.2f,\"frames\":%" PRIu64 ",\"chunks\":%" PRIu64
       ",\"make_s\":%.1f,\"open_us\":%.1f,\"seek_p50_us\":%.2f,\"seek_p99_us\":%.2f,"
       "\"seek_p999_us\":%.2f,\"errors\":%" PRIu64,
       (double)sb.st_size / (double)(1ull << 30), in.frames, in.chunks, make_s,
       (double)open_ns / 1e3, (double)lat[n / 2] / 1e3, (double)lat[n * 99 / 100] / 1e3,
       (double)lat[n * 999 / 1000] / 1e3, bad);
  free(lat);
  shmx_recording_close(rec);
  unlink(path);
}

static void bench_replay(const char *cli) {
  char path[512];
  path_of(path, sizeof path, "replay.mcap");
  char name[64];
  snprintf(name, sizeof name, "bench-replay-%d", (int)getpid());
  /* 2 s of 1 kHz frames, recorded as they are published */
  shmx_server *srv;
  run rr = {name, NULL, 0, 0};
  if (setup(name, path, 64, 65536, 0, &srv, &rr.rec)) return;
  pthread_t t;
  pthread_create(&t, NULL, rec_thread, &rr);
  while (readers(srv) < 1) sched_yield();
  uint64_t t0 = bench_now(), n = g_quick ? 500 : 2000;
  uint8_t b[256] = {0};
  for (uint64_t k = 1; k <= n; k++) {
    sleep_until(t0 + (k - 1) * 1000000);
    shmx_server_begin(srv);
    shmx_server_append(srv, 1, b, sizeof b, sizeof b);
    shmx_server_publish(srv, (double)k, NULL);
  }
  while (reader_seen(srv) < n) sched_yield();
  rr.stop = 1;
  pthread_join(t, NULL);
  shmx_recorder_close(rr.rec);
  shmx_server_destroy(srv);
  char cmd[1200];
  snprintf(cmd, sizeof cmd, "%s play '%s' --as %s-out --json 2>/dev/null | tail -n 1", cli,
           path, name);
  FILE *p = popen(cmd, "r");
  char out[512] = {0};
  if (p) {
    if (!fgets(out, sizeof out, p)) out[0] = 0;
    pclose(p);
  }
  double p50 = -1, p99 = -1, mx = -1;
  const char *q;
  if ((q = strstr(out, "\"late_p50_us\":"))) p50 = atof(q + 14);
  if ((q = strstr(out, "\"late_p99_us\":"))) p99 = atof(q + 14);
  if ((q = strstr(out, "\"late_max_us\":"))) mx = atof(q + 14);
  line("replay_timing_1kHz", "\"frames\":%" PRIu64 ",\"late_p50_us\":%.1f,\"late_p99_us\":%.1f,"
       "\"late_max_us\":%.1f", n, p50, p99, mx);
  unlink(path);
}

int main(int argc, char **argv) {
  double gib = 10;
  const char *only = "";
  const char *cli = "build/tools/shmx";
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--quick")) g_quick = 1, gib = 1;
    else if (!strcmp(argv[i], "--json")) g_json = 1;
    else if (!strcmp(argv[i], "--dir") && i + 1 < argc) g_dir = argv[++i];
    else if (!strcmp(argv[i], "--gib") && i + 1 < argc) gib = atof(argv[++i]);
    else if (!strcmp(argv[i], "--cli") && i + 1 < argc) cli = argv[++i];
    else if (!strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
    else {
      fprintf(stderr, "usage: shmx-bench-record [--quick] [--json] [--dir DIR] [--gib N] "
                      "[--cli PATH] [--only record|replay|seek]\n");
      return 2;
    }
  }
  if (!*only || !strcmp(only, "record")) bench_throughput();
  if (!*only || !strcmp(only, "replay")) bench_replay(cli);
  if ((!*only || !strcmp(only, "seek")) && gib > 0) bench_seek(gib);
  return 0;
}

/*
 * rel.h -- helpers shared by the reliability tests (fault matrix, scribbler,
 * permissions, threads): a seeded RNG that prints its seed, the frame
 * pattern every reader checks byte by byte, shared result pages for child
 * processes, and /dev/shm cleanup that runs even when a check fails.
 *
 * Seeds: SHMX_SEED=<n> in the environment replays a run; otherwise the seed
 * comes from the clock and is printed as "# seed N".
 */
#ifndef SHMX_REL_H
#define SHMX_REL_H

#include <fcntl.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/stat.h>
#ifndef _WIN32
#include <sys/mman.h>
#endif

#include "harness.h"

#define REL_GOLD 0x9E3779B97F4A7C15ull

static inline uint64_t rel_mix(uint64_t x) {
  x ^= x >> 30;
  x *= 0xBF58476D1CE4E5B9ull;
  x ^= x >> 27;
  x *= 0x94D049BB133111EBull;
  x ^= x >> 31;
  return x;
}

/* ---- seeded RNG ------------------------------------------------------------ */

static uint64_t rel_seed_value;

static inline uint64_t rel_seed(void) {
  if (!rel_seed_value) {
    const char *e = getenv("SHMX_SEED");
    rel_seed_value = e && *e ? strtoull(e, NULL, 0) : 0;
    if (!rel_seed_value) {
      struct timespec ts;
      clock_gettime(CLOCK_REALTIME, &ts);
      rel_seed_value = rel_mix((uint64_t)ts.tv_nsec ^
                               ((uint64_t)ts.tv_sec << 20) ^
                               (uint64_t)getpid());
      if (!rel_seed_value) rel_seed_value = 1;
    }
    printf("# seed %llu (replay with SHMX_SEED=%llu)\n",
           (unsigned long long)rel_seed_value,
           (unsigned long long)rel_seed_value);
    fflush(stdout);
  }
  return rel_seed_value;
}

typedef struct rel_rng { uint64_t s; } rel_rng;
static inline rel_rng rel_rng_make(uint64_t stream) {
  rel_rng r = {rel_seed() ^ rel_mix(stream + 0x1234)};
  return r;
}
static inline uint64_t rel_next(rel_rng *r) {
  r->s += REL_GOLD;
  return rel_mix(r->s);
}
/* Uniform in [0, n) (n > 0). */
static inline uint64_t rel_below(rel_rng *r, uint64_t n) {
  return n ? rel_next(r) % n : 0;
}

/* ---- frame pattern ------------------------------------------------------------ */

/* Every test channel has two streams: id 1 "small" (u8, 1..512 bytes per
 * frame, varying) and id 2 "big" (u8, `big` bytes, constant per channel;
 * absent when big == 0). The bytes derive from (frame_id, stream id). */
static inline uint64_t rel_small_len(uint64_t frame_id) {
  return 1 + rel_mix(frame_id * 3 + 7) % 512;
}

static inline void rel_fill(uint8_t *p, uint64_t n, uint64_t f, uint32_t sid) {
  uint64_t w = rel_mix(f ^ ((uint64_t)sid << 56));
  uint64_t i = 0;
  for (; n - i >= 8; i += 8, w += REL_GOLD) memcpy(p + i, &w, 8);
  for (; i < n; i++) p[i] = (uint8_t)(w >> (8 * (i & 7)));
}

/* 1 if p holds the pattern of (f, sid). */
static inline int rel_match(const uint8_t *p, uint64_t n, uint64_t f,
                            uint32_t sid) {
  uint64_t w = rel_mix(f ^ ((uint64_t)sid << 56));
  uint64_t i = 0;
  for (; n - i >= 8; i += 8, w += REL_GOLD) {
    uint64_t v;
    memcpy(&v, p + i, 8);
    if (v != w) return 0;
  }
  for (; i < n; i++)
    if (p[i] != (uint8_t)(w >> (8 * (i & 7)))) return 0;
  return 1;
}

static const shmx_stream_spec rel_specs[2] = {
    {.id = 1, .name = "small", .dtype = SHMX_DT_U8, .components = 1,
     .layout = SHMX_LAYOUT_SOA_SCALAR, .bytes_per_elem = 1},
    {.id = 2, .name = "big", .dtype = SHMX_DT_U8, .components = 1,
     .layout = SHMX_LAYOUT_SOA_SCALAR, .bytes_per_elem = 1},
};

static inline void rel_config(shmx_server_config *cfg, uint64_t big,
                              uint32_t readers) {
  shmx_server_config_init(cfg);
  cfg->streams = rel_specs;
  cfg->n_streams = 2;
  cfg->frame_bytes_cap = big + 4096;
  if (readers) cfg->reader_slots = readers;
}

/* Begin, fill (stream 1 by copy, stream 2 in place) and publish frame f
 * (the next id). Returns 0 or the first error. */
static inline int rel_publish(shmx_server *srv, uint64_t big, uint64_t f) {
  uint8_t small[512];
  int rc = shmx_server_begin(srv);
  if (rc) return rc;
  uint64_t n = rel_small_len(f);
  rel_fill(small, n, f, 1);
  rc = shmx_server_append(srv, 1, small, n, n);
  if (rc == 0 && big) {
    void *p = NULL;
    rc = shmx_server_reserve(srv, 2, big, &p);
    if (rc == 0) rel_fill(p, big, f, 2);
  }
  if (rc == 0) rc = shmx_server_publish(srv, (double)f, NULL);
  else (void)shmx_server_abort(srv);
  return rc;
}

/* 0 if frame fr is exactly what rel_publish wrote for its id, else a
 * description of the first difference (static buffer). */
static inline const char *rel_frame_bad(const shmx_frame *fr, uint64_t big) {
  static __thread char why[160];
  uint64_t f = fr->frame_id;
  uint32_t want = big ? 2 : 1;
  if (fr->sim_time != (double)f) {
    snprintf(why, sizeof why, "frame %llu: sim_time %g", (unsigned long long)f,
             fr->sim_time);
    return why;
  }
  if (fr->tlv_count != want) {
    snprintf(why, sizeof why, "frame %llu: %u streams", (unsigned long long)f,
             fr->tlv_count);
    return why;
  }
  for (uint32_t i = 0; i < fr->tlv_count; i++) {
    const shmx_frame_stream *s = &fr->streams[i];
    uint64_t n = s->stream_id == 1 ? rel_small_len(f)
                 : s->stream_id == 2 ? big : UINT64_MAX;
    if (s->bytes != n || s->elem_count != n) {
      snprintf(why, sizeof why, "frame %llu stream %u: %llu bytes",
               (unsigned long long)f, s->stream_id,
               (unsigned long long)s->bytes);
      return why;
    }
    if (!rel_match(s->data, n, f, s->stream_id)) {
      snprintf(why, sizeof why, "frame %llu stream %u: bytes differ",
               (unsigned long long)f, s->stream_id);
      return why;
    }
  }
  return NULL;
}

/* ---- shared pages for child results --------------------------------------------- */

#ifndef _WIN32 /* (no child processes on Windows: see tests/win) */
static inline void *rel_shared(size_t n) {
  void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                 -1, 0);
  if (p == MAP_FAILED) {
    perror("mmap");
    exit(1);
  }
  memset(p, 0, n);
  return p;
}
#endif

/* ---- /dev/shm cleanup -------------------------------------------------------------- */

static char rel_names[64][96];
static int rel_n_names;
static pid_t rel_main_pid;

static inline void rel_cleanup_all(void) {
  if (getpid() != rel_main_pid) return;
  for (int i = 0; i < rel_n_names; i++) {
    (void)shmx_channel_remove(rel_names[i], 1);
    char path[700];
    (void)unlink(harness_chan_path(rel_names[i], 0, path, sizeof path));
    (void)unlink(harness_chan_path(rel_names[i], 1, path, sizeof path));
  }
  rel_n_names = 0;
}

/* A unique channel name removed at exit (pass or fail). */
static inline const char *rel_name(const char *tag) {
  if (!rel_main_pid) {
    rel_main_pid = getpid();
    atexit(rel_cleanup_all);
  }
  const char *n = harness_name(tag);
  if (rel_n_names < 64) snprintf(rel_names[rel_n_names++], 96, "%s", n);
  return n;
}

static inline int rel_seg_exists(const char *name) {
  char path[700];
  return access(harness_chan_path(name, 0, path, sizeof path), F_OK) == 0;
}

#ifndef _WIN32
/* Kill and reap a child that may still run (no-op for pid <= 0). */
static inline void rel_kill_reap(pid_t pid) {
  if (pid <= 0) return;
  kill(pid, SIGKILL);
  int st;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
}
#endif

static inline void rel_sleep_us(uint64_t us) {
  struct timespec ts = {(time_t)(us / 1000000), (long)(us % 1000000) * 1000};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

#endif /* SHMX_REL_H */

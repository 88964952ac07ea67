/*
 * soak.c -- shmx-soak: one producer and N reader processes, every byte checked.
 *
 * The producer publishes frames whose streams (several, of varying sizes)
 * are filled with a pattern derived from (frame_id, stream_id). Readers of
 * four kinds run in their own processes and check every byte of every frame
 * the library hands them:
 *
 *   latest  shmx_client_latest() in a loop (drops what it misses)
 *   next    shmx_client_next(): in order, counts the frames it missed
 *   wait    shmx_client_wait() (blocking; alternates latest/in-order)
 *   hold    holds up to two frames for a random time, then checks
 *           shmx_frame_valid() and, if still valid, every byte again
 *
 * A frame whose bytes differ from the pattern while shmx_frame_valid() still
 * says 1 is a TORN frame: the one thing shmx promises never happens. A
 * mismatch on a frame that is no longer valid is an expired view (legal: the
 * producer had to reuse a pinned slot) and is counted as such.
 *
 *   shmx-soak [--duration S] [--frames N] [--readers N] [--seed N]
 *             [--max-bytes N] [--slots N] [--crc] [--json] [--name NAME]
 *
 * Exit status: 0 if no torn frame was accepted and every process finished
 * cleanly, 1 otherwise, 2 on a usage error.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shmx.h"

#define MAX_READERS 16
#define N_STREAMS 4
#define GOLD 0x9E3779B97F4A7C15ull

enum { K_LATEST = 0, K_NEXT = 1, K_WAIT = 2, K_HOLD = 3 };
static const char *const kind_names[] = {"latest", "next", "wait", "hold"};

/* Per-reader results, in an anonymous shared mapping written by the child. */
typedef struct rstats {
  _Atomic int attached;     /* 1 once the reader holds a slot */
  _Atomic int finished;     /* 1 when the reader loop ended normally */
  int kind;
  int32_t pid;
  int last_err;             /* the error that ended the loop (0, CLOSED, ...) */
  int open_err;
  uint64_t frames_read;
  uint64_t dropped;
  uint64_t torn;            /* bytes/metadata wrong while the frame was valid */
  uint64_t expired;         /* held views found invalid (legal) */
  uint64_t expired_in_check;/* changed during a check, frame then invalid */
  uint64_t order_errors;    /* in-order reader saw ids go backwards/skip */
  uint64_t busy;            /* SHMX_E_BUSY retries */
  uint64_t max_lag_frames;  /* frame_seq - frame_id at acquisition */
  uint64_t max_lag_ns;      /* now - publish_ns at acquisition */
  uint64_t bytes_checked;
  uint64_t msgs_sent;
  uint64_t last_frame_id;
  char detail[160];         /* first torn frame, for the report */
} rstats;

typedef struct shared {
  _Atomic int producer_done;  /* producer finished publishing */
  _Atomic int producer_ready; /* channel created */
  _Atomic int stop;           /* coordinator asks everyone to stop */
  int producer_err;
  uint64_t published;
  uint64_t publish_ns_total;
  uint64_t max_publish_ns;    /* longest begin..publish */
  uint64_t ctrl_msgs;
  uint64_t ctrl_bad;
  uint64_t ctrl_corrupt_rings;
  uint64_t wall_ns;
  rstats r[MAX_READERS];
} shared;

static struct {
  double duration;  /* seconds, 0 = no limit */
  uint64_t frames;  /* 0 = no limit */
  int readers;
  uint64_t seed;
  uint64_t max_bytes;
  uint32_t slots;
  int crc;
  int json;
  char name[128];
} opt;

static shared *S;

/* ---- the pattern ---------------------------------------------------------- */

static inline uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xBF58476D1CE4E5B9ull;
  x ^= x >> 27;
  x *= 0x94D049BB133111EBull;
  x ^= x >> 31;
  return x;
}

static const uint32_t stream_bpe[N_STREAMS] = {1, 12, 8, 1};
static const uint32_t stream_dtype[N_STREAMS] = {SHMX_DT_U8, SHMX_DT_F32,
                                                 SHMX_DT_U64, SHMX_DT_U8};
static const uint32_t stream_comp[N_STREAMS] = {1, 3, 1, 1};
static const char *const stream_name[N_STREAMS] = {"bytes", "points", "ids",
                                                   "blob"};

/* Elements of stream index s in frame f; 0 means "not in this frame".
 * Stream 0 is always present; the blob is large and rare. */
static uint64_t stream_elems(uint64_t f, int s) {
  uint64_t h = mix64(f * 8 + (uint64_t)s + 0x5151);
  uint64_t maxb = opt.max_bytes;
  switch (s) {
  case 0: return 1 + h % 256;
  case 1: return (h & 1) ? 0 : 1 + (h >> 1) % (maxb / 4 / 12 + 1);
  case 2: return (h & 3) == 3 ? 0 : 1 + (h >> 2) % 64;
  default: return (h % 16) ? 0 : 1 + (h >> 4) % maxb;
  }
}

static void fill(uint8_t *p, uint64_t n, uint64_t f, int s) {
  uint64_t w = mix64(f ^ ((uint64_t)(s + 1) << 56));
  uint64_t i = 0;
  for (; n - i >= 8; i += 8, w += GOLD) memcpy(p + i, &w, 8);
  for (; i < n; i++) p[i] = (uint8_t)(w >> (8 * (i & 7)));
}

/* 0 if p holds the pattern of (f, s), else the offset of the first bad
 * byte plus one. */
static uint64_t check(const uint8_t *p, uint64_t n, uint64_t f, int s) {
  uint64_t w = mix64(f ^ ((uint64_t)(s + 1) << 56));
  uint64_t i = 0;
  for (; n - i >= 8; i += 8, w += GOLD) {
    uint64_t v;
    memcpy(&v, p + i, 8);
    if (v != w) return i + 1;
  }
  for (; i < n; i++)
    if (p[i] != (uint8_t)(w >> (8 * (i & 7)))) return i + 1;
  return 0;
}

/* Check a whole frame: metadata and every byte. Returns 0 if it matches,
 * else a short reason in why. */
static int check_frame(const shmx_frame *f, char *why, size_t whylen,
                       uint64_t *bytes_checked) {
  uint64_t id = f->frame_id;
  if (f->sim_time != (double)id) {
    snprintf(why, whylen, "frame %" PRIu64 ": sim_time %.17g", id, f->sim_time);
    return 1;
  }
  uint32_t want_n = 0;
  uint64_t want_payload = 0;
  for (int s = 0; s < N_STREAMS; s++) {
    uint64_t e = stream_elems(id, s);
    if (e) {
      want_n++;
      want_payload += e * stream_bpe[s];
    }
  }
  if (f->tlv_count != want_n || f->payload_bytes != want_payload) {
    snprintf(why, whylen, "frame %" PRIu64 ": %u streams/%" PRIu64
             " B, want %u/%" PRIu64, id, f->tlv_count, f->payload_bytes,
             want_n, want_payload);
    return 1;
  }
  uint32_t seen = 0;
  for (uint32_t i = 0; i < f->tlv_count; i++) {
    const shmx_frame_stream *st = &f->streams[i];
    int s = (int)st->stream_id - 1;
    if (s < 0 || s >= N_STREAMS || (seen & (1u << s))) {
      snprintf(why, whylen, "frame %" PRIu64 ": stream id %u", id,
               st->stream_id);
      return 1;
    }
    seen |= 1u << s;
    uint64_t e = stream_elems(id, s);
    if (st->elem_count != e || st->bytes != e * stream_bpe[s]) {
      snprintf(why, whylen, "frame %" PRIu64 " stream %u: %" PRIu64
               " elems, want %" PRIu64, id, st->stream_id, st->elem_count, e);
      return 1;
    }
    if (((uintptr_t)st->data & 63) != 0) {
      snprintf(why, whylen, "frame %" PRIu64 " stream %u: data not 64-aligned",
               id, st->stream_id);
      return 1;
    }
    uint64_t bad = check(st->data, st->bytes, id, s);
    if (bad) {
      snprintf(why, whylen, "frame %" PRIu64 " stream %u: byte %" PRIu64
               " of %" PRIu64 " differs", id, st->stream_id, bad - 1,
               st->bytes);
      return 1;
    }
    *bytes_checked += st->bytes;
  }
  return 0;
}

/* ---- small helpers ---------------------------------------------------------- */

static uint64_t now_ns(void) { return shmx_now_ns(); }

static uint64_t rng_next(uint64_t *st) {
  *st += GOLD;
  return mix64(*st);
}

static void spin_ns(uint64_t ns) {
  uint64_t end = now_ns() + ns;
  while (now_ns() < end) sched_yield();
}

/* ---- producer ------------------------------------------------------------- */

static int producer_main(void) {
  shmx_stream_spec specs[N_STREAMS];
  for (int s = 0; s < N_STREAMS; s++) {
    specs[s] = (shmx_stream_spec){.id = (uint32_t)s + 1,
                                  .name = stream_name[s],
                                  .dtype = stream_dtype[s],
                                  .components = stream_comp[s],
                                  .layout = stream_comp[s] > 1
                                                ? SHMX_LAYOUT_AOS_VECTOR
                                                : SHMX_LAYOUT_SOA_SCALAR,
                                  .bytes_per_elem = stream_bpe[s]};
  }
  shmx_server_config cfg;
  shmx_server_config_init(&cfg);
  cfg.slots = opt.slots;
  cfg.reader_slots = (uint32_t)(opt.readers > 0 ? opt.readers : 1);
  /* room for every stream at its largest, plus TLV headers and alignment */
  cfg.frame_bytes_cap = opt.max_bytes * 2 + 256 * 2 + 64 * 12 + 4096;
  cfg.flags = opt.crc ? SHMX_CREATE_CRC32C : 0;
  cfg.streams = specs;
  cfg.n_streams = N_STREAMS;
  shmx_server *srv = NULL;
  int rc = shmx_server_create(opt.name, &cfg, &srv);
  if (rc != 0) {
    fprintf(stderr, "soak: create '%s': %s (%s)\n", opt.name,
            shmx_err_name(rc), shmx_errmsg());
    S->producer_err = rc;
    atomic_store(&S->producer_done, 1);
    return 1;
  }
  atomic_store(&S->producer_ready, 1);

  /* Start when every reader is attached (or gave up), so runs compare. */
  uint64_t t_wait = now_ns() + 10000000000ull;
  for (;;) {
    int n = 0;
    for (int i = 0; i < opt.readers; i++)
      n += atomic_load(&S->r[i].attached) != 0 || S->r[i].open_err != 0;
    if (n >= opt.readers || now_ns() > t_wait || atomic_load(&S->stop)) break;
    usleep(1000);
  }

  uint8_t *buf = malloc(opt.max_bytes + 4096);
  if (!buf) return 1;
  shmx_control_msg msgs[64];
  uint64_t t0 = now_ns();
  uint64_t deadline = opt.duration > 0 ? t0 + (uint64_t)(opt.duration * 1e9) : 0;
  uint64_t f = 0;
  int ret = 0;
  for (;;) {
    if (opt.frames && f >= opt.frames) break;
    if ((f & 255) == 0) {
      if (atomic_load(&S->stop)) break;
      if (deadline && now_ns() >= deadline) break;
      int corrupt = 0;
      int n = shmx_server_poll_control(srv, msgs, 64, &corrupt);
      if (n < 0) {
        fprintf(stderr, "soak: poll_control: %s\n", shmx_err_name(n));
        ret = 1;
        break;
      }
      S->ctrl_corrupt_rings += (uint64_t)corrupt;
      for (int i = 0; i < n; i++) {
        S->ctrl_msgs++;
        uint64_t v[2];
        if (msgs[i].type != SHMX_TLV_CONTROL_USER || msgs[i].len != 16) {
          S->ctrl_bad++;
          continue;
        }
        memcpy(v, msgs[i].data, 16);
        if (v[1] != mix64(v[0])) S->ctrl_bad++;
      }
    }
    uint64_t id = f + 1;
    uint64_t tb = now_ns();
    rc = shmx_server_begin(srv);
    for (int s = 0; rc == 0 && s < N_STREAMS; s++) {
      uint64_t e = stream_elems(id, s);
      if (!e) continue;
      uint64_t nb = e * stream_bpe[s];
      if (((id + (uint64_t)s) & 1) == 0) { /* zero-copy reserve */
        void *p = NULL;
        rc = shmx_server_reserve(srv, (uint32_t)s + 1, e, &p);
        if (rc == 0) fill(p, nb, id, s);
      } else { /* copy */
        fill(buf, nb, id, s);
        rc = shmx_server_append(srv, (uint32_t)s + 1, buf, nb, e);
      }
    }
    uint64_t got = 0;
    if (rc == 0) rc = shmx_server_publish(srv, (double)id, &got);
    if (rc != 0) {
      fprintf(stderr, "soak: frame %" PRIu64 ": %s (%s)\n", id,
              shmx_err_name(rc), shmx_errmsg());
      S->producer_err = rc;
      ret = 1;
      break;
    }
    uint64_t dt = now_ns() - tb;
    S->publish_ns_total += dt;
    if (dt > S->max_publish_ns) S->max_publish_ns = dt;
    if (got != id) {
      fprintf(stderr, "soak: published id %" PRIu64 ", want %" PRIu64 "\n",
              got, id);
      ret = 1;
      break;
    }
    f = id;
    S->published = f;
  }
  S->wall_ns = now_ns() - t0;
  free(buf);
  atomic_store(&S->producer_done, 1);
  /* Let readers catch up with the tail before closing (bounded). */
  uint64_t t_end = now_ns() + 2000000000ull;
  for (;;) {
    int all = 1;
    for (int i = 0; i < opt.readers; i++)
      if (S->r[i].attached && !S->r[i].finished &&
          S->r[i].last_frame_id < f)
        all = 0;
    if (all || now_ns() > t_end) break;
    usleep(1000);
  }
  shmx_server_destroy(srv);
  return ret;
}

/* ---- readers -------------------------------------------------------------- */

static void account(rstats *st, shmx_client *cl, const shmx_frame *fr) {
  uint64_t seq = shmx_client_frame_seq(cl);
  if (seq > fr->frame_id && seq - fr->frame_id > st->max_lag_frames)
    st->max_lag_frames = seq - fr->frame_id;
  uint64_t t = now_ns();
  if (t > fr->publish_ns && t - fr->publish_ns > st->max_lag_ns)
    st->max_lag_ns = t - fr->publish_ns;
}

/* Verify a frame just acquired; classify a mismatch. */
static void verify(rstats *st, shmx_client *cl, const shmx_frame *fr) {
  char why[160];
  if (check_frame(fr, why, sizeof why, &st->bytes_checked) == 0) return;
  if (!shmx_frame_valid(cl, fr)) {
    st->expired_in_check++;
    return;
  }
  if (st->torn++ == 0) snprintf(st->detail, sizeof st->detail, "%.150s", why);
}

static int reader_main(int idx) {
  rstats *st = &S->r[idx];
  st->kind = idx % 4;
  st->pid = (int32_t)getpid();
  uint64_t rng = opt.seed ^ mix64((uint64_t)idx + 1);
  shmx_client *cl = NULL;
  uint64_t t_open = now_ns() + 10000000000ull;
  int rc;
  for (;;) {
    rc = shmx_client_open(opt.name, &cl);
    if (rc == 0) break;
    if ((rc != SHMX_E_NOCHANNEL && rc != SHMX_E_CORRUPT) ||
        now_ns() > t_open || atomic_load(&S->producer_done)) {
      st->open_err = rc ? rc : -1;
      fprintf(stderr, "soak: reader %d: open: %s (%s)\n", idx,
              shmx_err_name(rc), shmx_errmsg());
      return 1;
    }
    usleep(1000);
  }
  atomic_store(&st->attached, 1);

  shmx_frame held[2];
  memset(held, 0, sizeof held);
  uint64_t last = 0;
  int ret = 0;
  int idle = 0;
  uint64_t iter = 0;
  for (;; iter++) {
    if (atomic_load(&S->stop)) break;
    shmx_frame fr;
    memset(&fr, 0, sizeof fr);
    switch (st->kind) {
    case K_LATEST:
    case K_HOLD: rc = shmx_client_latest(cl, &fr); break;
    case K_NEXT: rc = shmx_client_next(cl, &fr); break;
    default: rc = shmx_client_wait(cl, &fr, 200000000, (int)(iter & 1)); break;
    }
    if (rc == SHMX_E_BUSY) {
      st->busy++;
      continue;
    }
    if (rc == SHMX_E_NOFRAME || rc == SHMX_E_TIMEOUT || rc == -EINTR) {
      if (atomic_load(&S->producer_done) && last >= S->published) break;
      if (++idle > 4) sched_yield();
      continue;
    }
    if (rc != 0) {
      st->last_err = rc;
      if (rc != SHMX_E_CLOSED) {
        fprintf(stderr, "soak: reader %d (%s): %s (%s)\n", idx,
                kind_names[st->kind], shmx_err_name(rc), shmx_errmsg());
        ret = 1;
      }
      break;
    }
    idle = 0;
    if (fr.frame_id <= last) { /* nothing new (latest repeats) */
      if (fr.frame_id < last && st->kind != K_LATEST && st->kind != K_HOLD)
        st->order_errors++;
      shmx_frame_release(cl, &fr);
      if (atomic_load(&S->producer_done) && last >= S->published) break;
      sched_yield();
      continue;
    }
    account(st, cl, &fr);
    if (st->kind == K_NEXT || (st->kind == K_WAIT && (iter & 1))) {
      /* the first frame of a reader reports no drops (nothing was missed
       * from its point of view); after that, ids and drops must add up */
      if (last && fr.frame_id != last + 1 + fr.dropped) st->order_errors++;
      st->dropped += fr.dropped;
    } else if (last) {
      st->dropped += fr.frame_id - last - 1;
    }
    last = fr.frame_id;
    st->last_frame_id = last;
    st->frames_read++;
    verify(st, cl, &fr);
    if (st->kind == K_HOLD) {
      /* keep this frame and the previous one; check the old one first */
      if (held[1].frame_id) {
        if (shmx_frame_valid(cl, &held[1])) {
          char why[160];
          uint64_t dummy = 0;
          if (check_frame(&held[1], why, sizeof why, &dummy) != 0) {
            if (shmx_frame_valid(cl, &held[1])) {
              if (st->torn++ == 0)
                snprintf(st->detail, sizeof st->detail, "held %.150s", why);
            } else {
              st->expired++;
            }
          }
        } else {
          st->expired++;
        }
        shmx_frame_release(cl, &held[1]);
      }
      held[1] = held[0];
      held[0] = fr;
      spin_ns(rng_next(&rng) % 2000000); /* hold for 0..2 ms */
    } else {
      shmx_frame_release(cl, &fr);
    }
    if ((st->frames_read & 1023) == 0) {
      uint64_t v[2] = {rng_next(&rng), 0};
      v[1] = mix64(v[0]);
      if (shmx_client_send(cl, SHMX_TLV_CONTROL_USER, v, 16) == 0)
        st->msgs_sent++;
    }
  }
  for (int i = 0; i < 2; i++)
    if (held[i].frame_id) shmx_frame_release(cl, &held[i]);
  shmx_client_close(cl);
  atomic_store(&st->finished, 1);
  return ret;
}

/* ---- coordinator ------------------------------------------------------------ */

static void usage(void) {
  fprintf(stderr,
          "usage: shmx-soak [--duration S] [--frames N] [--readers 1-16]\n"
          "                 [--seed N] [--max-bytes N] [--slots N] [--crc]\n"
          "                 [--json] [--name NAME]\n");
}

static int parse(int argc, char **argv) {
  opt.readers = 4;
  opt.max_bytes = 65536;
  opt.slots = 3;
  opt.seed = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEEDV                                                                  \
  do {                                                                         \
    if (!v) { usage(); return -1; }                                            \
    i++;                                                                       \
  } while (0)
    if (!strcmp(a, "--duration")) { NEEDV; opt.duration = atof(v); }
    else if (!strcmp(a, "--frames")) { NEEDV; opt.frames = strtoull(v, NULL, 0); }
    else if (!strcmp(a, "--readers")) { NEEDV; opt.readers = atoi(v); }
    else if (!strcmp(a, "--seed")) { NEEDV; opt.seed = strtoull(v, NULL, 0); }
    else if (!strcmp(a, "--max-bytes")) { NEEDV; opt.max_bytes = strtoull(v, NULL, 0); }
    else if (!strcmp(a, "--slots")) { NEEDV; opt.slots = (uint32_t)atoi(v); }
    else if (!strcmp(a, "--name")) { NEEDV; snprintf(opt.name, sizeof opt.name, "%s", v); }
    else if (!strcmp(a, "--crc")) opt.crc = 1;
    else if (!strcmp(a, "--json")) opt.json = 1;
    else if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(); return 1; }
    else { usage(); return -1; }
#undef NEEDV
  }
  if (opt.readers < 1 || opt.readers > MAX_READERS || opt.max_bytes < 64 ||
      opt.max_bytes > (64u << 20) || opt.slots < 2 || opt.slots > 1024 ||
      opt.duration < 0) {
    usage();
    return -1;
  }
  if (opt.duration == 0 && opt.frames == 0) opt.duration = 5;
  if (!opt.seed) opt.seed = shmx_now_ns() ^ ((uint64_t)getpid() << 32);
  if (!opt.name[0])
    snprintf(opt.name, sizeof opt.name, "soak-%d", (int)getpid());
  return 0;
}

static int wait_child(pid_t pid, uint64_t deadline_ns, const char *what) {
  for (;;) {
    int stt;
    pid_t r = waitpid(pid, &stt, WNOHANG);
    if (r == pid) {
      if (WIFEXITED(stt)) return WEXITSTATUS(stt);
      fprintf(stderr, "soak: %s killed by signal %d\n", what, WTERMSIG(stt));
      return 128 + WTERMSIG(stt);
    }
    if (r < 0 && errno != EINTR) return -1;
    if (deadline_ns && now_ns() > deadline_ns) {
      fprintf(stderr, "soak: %s did not finish in time; killing it\n", what);
      kill(pid, SIGKILL);
      waitpid(pid, &stt, 0);
      return -1;
    }
    usleep(2000);
  }
}

int main(int argc, char **argv) {
  int prc = parse(argc, argv);
  if (prc) return prc < 0 ? 2 : 0;
  S = mmap(NULL, sizeof *S, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
           -1, 0);
  if (S == MAP_FAILED) {
    perror("mmap");
    return 1;
  }
  memset(S, 0, sizeof *S);
  for (int i = 0; i < opt.readers; i++) S->r[i].kind = i % 4;
  fflush(stdout);
  /* Fork everyone before any shmx handle exists (see shmx.h on fork()). */
  pid_t readers[MAX_READERS];
  for (int i = 0; i < opt.readers; i++) {
    readers[i] = fork();
    if (readers[i] == 0) _exit(reader_main(i));
    if (readers[i] < 0) {
      perror("fork");
      atomic_store(&S->stop, 1);
      return 1;
    }
  }
  pid_t prod = fork();
  if (prod == 0) _exit(producer_main());
  if (prod < 0) {
    perror("fork");
    atomic_store(&S->stop, 1);
    return 1;
  }
  /* Deadline: a run bounded by time gets generous slack; a frame-count run
   * gets none (it ends when the producer does). */
  uint64_t deadline =
      opt.duration > 0 ? now_ns() + (uint64_t)((opt.duration + 30) * 1e9) : 0;
  int bad = 0;
  int prod_rc = wait_child(prod, deadline, "producer");
  if (prod_rc != 0) bad = 1;
  /* Readers end when the channel closes; give them a bounded time. */
  uint64_t rdl = now_ns() + 15000000000ull;
  int rd_rc[MAX_READERS];
  for (int i = 0; i < opt.readers; i++) {
    char what[32];
    snprintf(what, sizeof what, "reader %d", i);
    if (i == 0) {
      /* if the producer failed, tell readers to stop */
      if (prod_rc != 0) atomic_store(&S->stop, 1);
    }
    rd_rc[i] = wait_child(readers[i], rdl, what);
    if (rd_rc[i] != 0) bad = 1;
  }
  /* A producer that died leaves a segment behind: remove it. */
  (void)shmx_channel_remove(opt.name, 1);

  uint64_t torn = 0, expired = 0, read = 0, maxlag = 0, maxlag_ns = 0;
  uint64_t order = 0;
  for (int i = 0; i < opt.readers; i++) {
    rstats *r = &S->r[i];
    torn += r->torn;
    expired += r->expired + r->expired_in_check;
    read += r->frames_read;
    order += r->order_errors;
    if (r->max_lag_frames > maxlag) maxlag = r->max_lag_frames;
    if (r->max_lag_ns > maxlag_ns) maxlag_ns = r->max_lag_ns;
  }
  if (torn || order || S->ctrl_bad) bad = 1;
  double secs = (double)S->wall_ns / 1e9;
  double rate = secs > 0 ? (double)S->published / secs : 0;
  double mean_pub = S->published ? (double)S->publish_ns_total / (double)S->published : 0;
  if (opt.json) {
    printf("{\"name\":\"soak\",\"seed\":%" PRIu64 ",\"readers\":%d,"
           "\"max_bytes\":%" PRIu64 ",\"slots\":%u,\"crc\":%d,"
           "\"frames_published\":%" PRIu64 ",\"seconds\":%.3f,"
           "\"frames_per_s\":%.0f,\"publish_mean_ns\":%.0f,"
           "\"publish_max_ns\":%" PRIu64 ",\"frames_read\":%" PRIu64 ","
           "\"torn_accepted\":%" PRIu64 ",\"expired_detected\":%" PRIu64 ","
           "\"order_errors\":%" PRIu64 ",\"max_lag_frames\":%" PRIu64 ","
           "\"max_lag_ns\":%" PRIu64 ",\"control_msgs\":%" PRIu64 ","
           "\"control_bad\":%" PRIu64 ",\"ok\":%s,\"per_reader\":[",
           opt.seed, opt.readers, opt.max_bytes, opt.slots, opt.crc,
           S->published, secs, rate, mean_pub, S->max_publish_ns, read, torn,
           expired, order, maxlag, maxlag_ns, S->ctrl_msgs, S->ctrl_bad,
           bad ? "false" : "true");
    for (int i = 0; i < opt.readers; i++) {
      rstats *r = &S->r[i];
      printf("%s{\"reader\":%d,\"kind\":\"%s\",\"frames_read\":%" PRIu64
             ",\"dropped\":%" PRIu64 ",\"torn\":%" PRIu64
             ",\"expired\":%" PRIu64 ",\"busy\":%" PRIu64
             ",\"max_lag_frames\":%" PRIu64 ",\"max_lag_ns\":%" PRIu64
             ",\"order_errors\":%" PRIu64 ",\"bytes_checked\":%" PRIu64
             ",\"exit\":%d,\"end\":\"%s\"}",
             i ? "," : "", i, kind_names[r->kind], r->frames_read, r->dropped,
             r->torn, r->expired + r->expired_in_check, r->busy,
             r->max_lag_frames, r->max_lag_ns, r->order_errors,
             r->bytes_checked, rd_rc[i],
             r->last_err ? shmx_err_name(r->last_err) : "done");
    }
    printf("]}\n");
  } else {
    printf("shmx-soak: channel %s, seed %" PRIu64 ", %d readers, blob up to %"
           PRIu64 " B, %u slots%s\n", opt.name, opt.seed, opt.readers,
           opt.max_bytes, opt.slots, opt.crc ? ", crc32c" : "");
    printf("published %" PRIu64 " frames in %.2f s (%.0f frames/s; publish "
           "mean %.0f ns, max %.1f us)\n", S->published, secs, rate, mean_pub,
           (double)S->max_publish_ns / 1e3);
    printf("control messages received %" PRIu64 " (bad %" PRIu64 ")\n",
           S->ctrl_msgs, S->ctrl_bad);
    printf("%-3s %-7s %12s %12s %6s %9s %8s %9s %10s %14s  %s\n", "#", "kind",
           "read", "dropped", "torn", "expired", "busy", "lag(frm)",
           "lag(us)", "bytes checked", "end");
    for (int i = 0; i < opt.readers; i++) {
      rstats *r = &S->r[i];
      printf("%-3d %-7s %12" PRIu64 " %12" PRIu64 " %6" PRIu64 " %9" PRIu64
             " %8" PRIu64 " %9" PRIu64 " %10.1f %14" PRIu64 "  %s%s\n", i,
             kind_names[r->kind], r->frames_read, r->dropped, r->torn,
             r->expired + r->expired_in_check, r->busy, r->max_lag_frames,
             (double)r->max_lag_ns / 1e3, r->bytes_checked,
             r->last_err ? shmx_err_name(r->last_err) : "done",
             rd_rc[i] ? " (FAILED)" : "");
      if (r->torn) printf("    first torn frame: %s\n", r->detail);
    }
    printf("torn frames accepted: %" PRIu64 "; expired views detected: %"
           PRIu64 "; order errors: %" PRIu64 "; max lag %" PRIu64
           " frames / %.1f us\n", torn, expired, order, maxlag,
           (double)maxlag_ns / 1e3);
    printf("%s\n", bad ? "FAIL" : "OK");
  }
  return bad ? 1 : 0;
}

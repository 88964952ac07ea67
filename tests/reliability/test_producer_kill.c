/*
 * test_producer_kill.c -- SIGKILL the producer at random points.
 *
 * Each round forks a producer and readers (a latest-polling reader and a
 * blocking in-order reader waiting forever). The producer publishes the
 * pattern of rel.h and tells, through a shared page, which call it is in:
 * appending a 1 MiB stream by copy, publishing small frames, or appending
 * schema records. The parent waits for the chosen phase, adds a random delay
 * and SIGKILLs it. Then, for every round:
 *   - no reader ever accepted a frame whose bytes differ from the pattern
 *     while shmx_frame_valid() said it was intact (a torn frame);
 *   - every reader learns SHMX_E_DEAD (the blocking one wakes up);
 *   - the schema records readers see after refresh are complete;
 *   - the inspector still opens the dead channel and reports owner dead;
 *   - a new producer takes the name, publishes, and a new reader reads it;
 *     destroy leaves nothing in /dev/shm.
 * SHMX_SEED replays a run; SHMX_REL_ROUNDS scales the number of rounds.
 */
#include "rel.h"

enum { PH_IDLE, PH_BEGIN, PH_APPEND, PH_PUBLISH, PH_SCHEMA, PH_N };
static const char *const ph_names[PH_N] = {"idle", "begin", "append",
                                           "publish", "schema"};
enum { MODE_APPEND, MODE_PUBLISH, MODE_SCHEMA, MODE_N };
#define NREADERS 2
#define BIG (1u << 20)
#define REC_MAX 1500

typedef struct rd_result {
  _Atomic int attached;
  uint64_t frames, torn, expired, records_checked, schema_bad;
  int end_err;       /* the error that ended the loop */
  int after_latest;  /* latest() after death: 0 or an error */
  int after_bad;     /* frame returned after death was wrong */
  char why[160];
} rd_result;

typedef struct pk_shared {
  _Atomic int phase;
  _Atomic uint64_t published;
  _Atomic uint64_t records;
  _Atomic int stop;
  rd_result r[NREADERS];
} pk_shared;

static pk_shared *SH;
static int g_mode;
static const char *g_name;

static uint32_t rec_len(uint64_t i) { return 1 + (uint32_t)(rel_mix(i + 99) % REC_MAX); }

/* ---- producer child -------------------------------------------------------- */

static int producer(void *arg) {
  (void)arg;
  shmx_server_config cfg;
  uint64_t big = g_mode == MODE_APPEND ? BIG : 0;
  rel_config(&cfg, big ? big : 0, 4);
  if (g_mode == MODE_SCHEMA) cfg.static_bytes_cap = 1u << 20;
  shmx_server *srv = NULL;
  int rc = shmx_server_create(g_name, &cfg, &srv);
  if (rc) {
    fprintf(stderr, "producer: create: %s (%s)\n", shmx_err_name(rc),
            shmx_errmsg());
    return 10;
  }
  uint64_t end = harness_now_ms() + 5000;
  while (atomic_load(&SH->r[0].attached) + atomic_load(&SH->r[1].attached) <
             NREADERS &&
         harness_now_ms() < end)
    usleep(200);
  uint8_t *buf = malloc(BIG);
  uint8_t rec[REC_MAX];
  uint8_t small[512];
  if (!buf) return 11;
  for (uint64_t f = 1;; f++) {
    if (g_mode == MODE_SCHEMA) {
      /* four records per frame, a new stream every 16 records */
      for (int k = 0; k < 4; k++) {
        uint64_t i = atomic_load(&SH->records);
        uint32_t n = rec_len(i);
        rel_fill(rec, n, i, 77);
        atomic_store(&SH->phase, PH_SCHEMA);
        if (i % 16 == 15) {
          char nm[32];
          snprintf(nm, sizeof nm, "x%llu", (unsigned long long)i);
          shmx_stream_spec sp = {.id = (uint32_t)(1000 + i), .name = nm,
                                 .dtype = SHMX_DT_F32, .components = 1,
                                 .bytes_per_elem = 4, .extra = rec,
                                 .extra_len = n};
          rc = shmx_server_add_stream(srv, &sp);
        } else {
          rc = shmx_server_static_append(srv, rec, n);
        }
        atomic_store(&SH->phase, PH_IDLE);
        if (rc == SHMX_E_CAPACITY) break;
        if (rc) return 12;
        atomic_store(&SH->records, i + 1);
      }
    }
    atomic_store(&SH->phase, PH_BEGIN);
    rc = shmx_server_begin(srv);
    if (rc) return 13;
    uint64_t n = rel_small_len(f);
    rel_fill(small, n, f, 1);
    if (big) rel_fill(buf, big, f, 2);
    atomic_store(&SH->phase, PH_APPEND);
    rc = shmx_server_append(srv, 1, small, n, n);
    if (rc == 0 && big) rc = shmx_server_append(srv, 2, buf, big, big);
    if (rc) return 14;
    atomic_store(&SH->phase, PH_PUBLISH);
    rc = shmx_server_publish(srv, (double)f, NULL);
    atomic_store(&SH->phase, PH_IDLE);
    if (rc) return 15;
    atomic_store(&SH->published, f);
    if (harness_now_ms() > end + 10000) return 16; /* never killed? */
  }
}

/* ---- reader children ---------------------------------------------------------- */

static void check_records(shmx_client *cl, rd_result *r) {
  for (int i = 0;; i++) {
    const uint8_t *d = NULL;
    uint32_t len = 0;
    if (shmx_client_static_user(cl, i, &d, &len) != 0) break;
    /* user records are every index except each 16th (a stream) */
    uint64_t rec = (uint64_t)i + (uint64_t)i / 15;
    if (len != rec_len(rec) || !rel_match(d, len, rec, 77)) {
      if (!r->schema_bad++)
        snprintf(r->why, sizeof r->why, "user record %d (%u B) wrong", i, len);
    }
    r->records_checked++;
  }
  const shmx_stream_info *st = NULL;
  int n = 0;
  if (shmx_client_streams(cl, &st, &n) == 0) {
    for (int i = 0; i < n; i++) {
      if (st[i].id < 1000) continue;
      uint64_t rec = st[i].id - 1000;
      char nm[32];
      snprintf(nm, sizeof nm, "x%llu", (unsigned long long)rec);
      if (strcmp(st[i].name, nm) != 0 || st[i].extra_len != rec_len(rec) ||
          !rel_match(st[i].extra, st[i].extra_len, rec, 77)) {
        if (!r->schema_bad++)
          snprintf(r->why, sizeof r->why, "stream %u spec wrong", st[i].id);
      }
    }
  }
}

static int reader(void *arg) {
  int idx = (int)(intptr_t)arg;
  rd_result *r = &SH->r[idx];
  uint64_t big = g_mode == MODE_APPEND ? BIG : 0;
  shmx_client *cl = NULL;
  uint64_t end = harness_now_ms() + 5000;
  int rc;
  while ((rc = shmx_client_open(g_name, &cl)) != 0) {
    if (harness_now_ms() > end) return 20;
    usleep(200);
  }
  atomic_store(&r->attached, 1);
  uint64_t last = 0, iter = 0, last_status = 0;
  end = harness_now_ms() + 20000;
  for (;; iter++) {
    if (harness_now_ms() > end) return 21;
    shmx_frame fr;
    if (idx == 0) {
      rc = shmx_client_latest(cl, &fr);
    } else {
      rc = shmx_client_wait(cl, &fr, -1, 1); /* must wake when the owner dies */
    }
    if (rc == 0) {
      if (fr.frame_id > last) {
        const char *why = rel_frame_bad(&fr, big);
        if (why) {
          if (shmx_frame_valid(cl, &fr)) {
            if (!r->torn++) snprintf(r->why, sizeof r->why, "%s", why);
          } else {
            r->expired++;
          }
        }
        r->frames++;
        last = fr.frame_id;
      }
      shmx_frame_release(cl, &fr);
      if (g_mode == MODE_SCHEMA && (iter % 8) == 0 &&
          shmx_client_refresh(cl) >= 0)
        check_records(cl, r);
    }
    if (rc == SHMX_E_DEAD) break;
    if (rc != 0 && rc != SHMX_E_NOFRAME && rc != SHMX_E_BUSY && rc != -EINTR) {
      r->end_err = rc;
      fprintf(stderr, "reader %d: %s (%s)\n", idx, shmx_err_name(rc),
              shmx_errmsg());
      shmx_client_close(cl);
      return 22;
    }
    /* latest() never blocks: ask for the producer's status now and then */
    if (idx == 0 && harness_now_ms() - last_status >= 2) {
      last_status = harness_now_ms();
      rc = shmx_client_status(cl);
      if (rc == SHMX_E_DEAD) break;
      if (rc != 0) {
        r->end_err = rc;
        shmx_client_close(cl);
        return 23;
      }
    }
  }
  r->end_err = SHMX_E_DEAD;
  /* After death: the newest complete frame may still be read, intact. */
  shmx_frame fr;
  r->after_latest = shmx_client_latest(cl, &fr);
  if (r->after_latest == 0) {
    const char *why = rel_frame_bad(&fr, big);
    if (why && shmx_frame_valid(cl, &fr)) {
      r->after_bad = 1;
      snprintf(r->why, sizeof r->why, "after death: %.100s", why);
    }
    shmx_frame_release(cl, &fr);
  }
  if (g_mode == MODE_SCHEMA) {
    int ref = shmx_client_refresh(cl);
    if (ref >= 0) check_records(cl, r);
  }
  shmx_client_close(cl);
  return 0;
}

/* ---- the test ---------------------------------------------------------------- */

static int phase_hits[MODE_N][PH_N];

static void one_round(int round, rel_rng *rng, int *failed) {
  int mode = round % MODE_N;
  g_mode = mode;
  g_name = rel_name("pk");
  memset(SH, 0, sizeof *SH);
  *failed = 1;
  pid_t rd[NREADERS] = {0, 0}, pp = 0;
  for (int i = 0; i < NREADERS; i++)
    rd[i] = harness_spawn(reader, (void *)(intptr_t)i);
  pp = harness_spawn(producer, NULL);
  /* wait for some progress, then for the chosen phase */
  int want = mode == MODE_APPEND ? PH_APPEND
             : mode == MODE_PUBLISH ? PH_PUBLISH : PH_SCHEMA;
  uint64_t min_frames = 2 + rel_below(rng, 40);
  int ok = WAIT_UNTIL(atomic_load(&SH->published) >= min_frames, 8000);
  if (!ok) {
    HARNESS_FAIL("round %d: producer made no progress", round);
    goto out;
  }
  if (mode == MODE_SCHEMA && atomic_load(&SH->records) > 2000) {
    /* schema already full: still a valid kill, just not mid-append */
  }
  uint64_t spin_end = harness_now_ms() + 2000;
  while (atomic_load(&SH->phase) != want && harness_now_ms() < spin_end) {
  }
  /* random delay inside the phase: up to ~100 us for the 1 MiB copy */
  uint64_t d = mode == MODE_APPEND ? rel_below(rng, 20000)
                                   : rel_below(rng, 50);
  for (volatile uint64_t i = 0; i < d; i++) {
  }
  kill(pp, SIGKILL);
  int st = harness_wait(pp, 5000);
  pp = 0;
  if (st != 128 + SIGKILL) {
    HARNESS_FAIL("round %d: producer exit %d (not killed)", round, st);
    goto out;
  }
  int ph = atomic_load(&SH->phase);
  if (ph >= 0 && ph < PH_N) phase_hits[mode][ph]++;
  for (int i = 0; i < NREADERS; i++) {
    int rs = harness_wait(rd[i], 10000);
    rd[i] = 0;
    rd_result *r = &SH->r[i];
    if (rs != 0) {
      HARNESS_FAIL("round %d (%s): reader %d exit %d (end %s) %s", round,
                   ph_names[ph], i, rs, shmx_err_name(r->end_err), r->why);
      goto out;
    }
    if (r->torn || r->after_bad || r->schema_bad) {
      HARNESS_FAIL("round %d (%s, mode %d): reader %d torn %llu: %s", round,
                   ph_names[ph], mode, i, (unsigned long long)r->torn, r->why);
      goto out;
    }
    if (r->end_err != SHMX_E_DEAD) {
      HARNESS_FAIL("round %d: reader %d ended with %s", round, i,
                   shmx_err_name(r->end_err));
      goto out;
    }
    if (r->after_latest != 0 && r->after_latest != SHMX_E_DEAD) {
      HARNESS_FAIL("round %d: latest after death -> %s", round,
                   shmx_err_name(r->after_latest));
      goto out;
    }
  }
  if (mode == MODE_SCHEMA && SH->r[0].records_checked + SH->r[1].records_checked == 0) {
    HARNESS_FAIL("round %d: no schema record was checked", round);
    goto out;
  }
  /* the inspector still reads the dead channel */
  {
    shmx_inspector *in = NULL;
    int rc = shmx_inspector_open(g_name, &in);
    if (rc != 0) {
      HARNESS_FAIL("round %d: inspector_open dead channel: %s (%s)", round,
                   shmx_err_name(rc), shmx_errmsg());
      goto out;
    }
    shmx_header_info h;
    rc = shmx_inspector_header(in, &h);
    shmx_slot_info slots[8];
    int ns = shmx_inspector_slots(in, slots, 8);
    shmx_inspector_close(in);
    if (rc != 0 || h.owner_alive != 0 || ns < 2) {
      HARNESS_FAIL("round %d: inspector header rc %s alive %d slots %d", round,
                   shmx_err_name(rc), h.owner_alive, ns);
      goto out;
    }
    if (h.frame_seq != atomic_load(&SH->published) &&
        h.frame_seq != atomic_load(&SH->published) + 1) {
      HARNESS_FAIL("round %d: frame_seq %llu, published %llu", round,
                   (unsigned long long)h.frame_seq,
                   (unsigned long long)atomic_load(&SH->published));
      goto out;
    }
  }
  /* a reader opening now is told the producer is dead */
  {
    shmx_client *cl = NULL;
    int rc = shmx_client_open(g_name, &cl);
    if (rc != SHMX_E_DEAD) {
      HARNESS_FAIL("round %d: open after death -> %s, want SHMX_E_DEAD", round,
                   shmx_err_name(rc));
      shmx_client_close(cl);
      goto out;
    }
  }
  /* a new producer takes the name */
  {
    shmx_server_config cfg;
    rel_config(&cfg, 4096, 4);
    shmx_server *srv = NULL;
    int rc = shmx_server_create(g_name, &cfg, &srv);
    if (rc != 0) {
      HARNESS_FAIL("round %d: re-create after death: %s (%s)", round,
                   shmx_err_name(rc), shmx_errmsg());
      goto out;
    }
    shmx_client *cl = NULL;
    rc = shmx_client_open(g_name, &cl);
    if (rc == 0) rc = rel_publish(srv, 4096, 1);
    shmx_frame fr;
    if (rc == 0) rc = shmx_client_latest(cl, &fr);
    if (rc == 0) {
      const char *why = rel_frame_bad(&fr, 4096);
      if (why || fr.frame_id != 1) {
        HARNESS_FAIL("round %d: new producer's frame: %s", round,
                     why ? why : "id != 1");
        rc = -1;
      }
      shmx_frame_release(cl, &fr);
    } else {
      HARNESS_FAIL("round %d: new producer: %s (%s)", round, shmx_err_name(rc),
                   shmx_errmsg());
    }
    shmx_client_close(cl);
    shmx_server_destroy(srv);
    if (rc != 0) goto out;
    if (rel_seg_exists(g_name)) {
      HARNESS_FAIL("round %d: segment left after destroy", round);
      goto out;
    }
  }
  *failed = 0;
out:
  atomic_store(&SH->stop, 1);
  rel_kill_reap(pp);
  for (int i = 0; i < NREADERS; i++) rel_kill_reap(rd[i]);
  rel_cleanup_all();
}

TEST(producer_sigkill_matrix) {
  rel_rng rng = rel_rng_make(1);
  const char *e = getenv("SHMX_REL_ROUNDS");
  int rounds = e ? atoi(e) : 12;
  if (rounds < MODE_N) rounds = MODE_N;
  for (int round = 0; round < rounds; round++) {
    int failed = 0;
    one_round(round, &rng, &failed);
    if (failed) return;
  }
  printf("# kill landed in phase (append/publish/schema mode):\n");
  for (int m = 0; m < MODE_N; m++) {
    printf("#   mode %d:", m);
    for (int p = 0; p < PH_N; p++) printf(" %s=%d", ph_names[p], phase_hits[m][p]);
    printf("\n");
  }
  /* the kills must really have hit the targeted calls */
  CHECK_GT(phase_hits[MODE_APPEND][PH_APPEND], 0);
  CHECK_GT(phase_hits[MODE_SCHEMA][PH_SCHEMA], 0);
}

int main(void) {
  SH = rel_shared(sizeof *SH);
  (void)rel_seed();
  RUN(producer_sigkill_matrix);
  rel_cleanup_all();
  return harness_done();
}

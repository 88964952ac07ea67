/*
 * test_reader_kill.c -- SIGKILL readers at random points.
 *
 * The test process is the producer; it publishes the whole time. Each round
 * forks readers that (a) hold frames pinned, (b) send control messages as
 * fast as they can, (c) attach and detach in a loop, (d) block in
 * shmx_client_wait(), and SIGKILLs them at random moments, interleaved with
 * publishing. Afterwards:
 *   - no publish ever blocked (each begin..publish is timed);
 *   - shmx_server_readers() reclaims every dead reader's slot and pins: the
 *     inspector shows no pins and no connected readers, and all reader
 *     slots can be attached again (then SHMX_E_FULL);
 *   - every control message polled is intact (a reader killed mid-send
 *     leaves no half message); no ring is reported corrupt.
 */
#include "format.h"
#include "rel.h"

#define NRD 6
#define RSLOTS 8
#define BIGB 8192

enum { B_HOLD, B_SEND, B_ATTACH, B_WAIT };
static const char *const b_names[] = {"hold", "send", "attach", "wait"};

typedef struct rk_shared {
  _Atomic int ready[NRD];
  _Atomic uint64_t progress[NRD];
} rk_shared;

static rk_shared *SH;
static const char *g_name;

static void ctl_payload(uint8_t *p, uint32_t len, uint64_t k) {
  rel_fill(p, len, k, 5);
}

static int child(void *arg) {
  int idx = (int)(intptr_t)arg;
  int beh = idx % 4;
  shmx_client *cl = NULL;
  int rc;
  if (beh == B_ATTACH) {
    atomic_store(&SH->ready[idx], 1);
    for (;;) {
      rc = shmx_client_open(g_name, &cl);
      if (rc == 0) {
        shmx_frame fr;
        if (shmx_client_latest(cl, &fr) == 0) shmx_frame_release(cl, &fr);
        shmx_client_close(cl);
        cl = NULL;
      }
      atomic_fetch_add(&SH->progress[idx], 1);
    }
  }
  uint64_t end = harness_now_ms() + 5000;
  while ((rc = shmx_client_open(g_name, &cl)) != 0) {
    if (harness_now_ms() > end) return 30;
    usleep(200);
  }
  if (beh == B_HOLD) {
    /* pin two frames (the newest, then a newer one), then wait to die */
    shmx_frame a, b;
    while (shmx_client_latest(cl, &a) != 0) usleep(100);
    for (;;) {
      if (shmx_client_latest(cl, &b) == 0) {
        if (b.frame_id != a.frame_id) break;
        shmx_frame_release(cl, &b);
      }
      usleep(100);
    }
    atomic_store(&SH->ready[idx], 1);
    for (;;) pause();
  }
  atomic_store(&SH->ready[idx], 1);
  if (beh == B_SEND) {
    uint8_t buf[256];
    for (uint64_t k = 1;; k++) {
      uint32_t len = 8 + (uint32_t)(rel_mix(k + (uint64_t)idx * 1000003) % 200);
      memcpy(buf, &k, 8);
      ctl_payload(buf + 8, len - 8, k);
      while (shmx_client_send(cl, 0x3000u + (uint32_t)idx, buf, len) ==
             SHMX_E_RINGFULL) {
      }
      atomic_fetch_add(&SH->progress[idx], 1);
    }
  }
  for (;;) { /* B_WAIT */
    shmx_frame fr;
    rc = shmx_client_wait(cl, &fr, -1, 1);
    if (rc == 0) shmx_frame_release(cl, &fr);
    atomic_fetch_add(&SH->progress[idx], 1);
  }
}

static uint64_t g_f, g_max_pub_ns;

static int publish_one(shmx_server *srv) {
  uint64_t t = shmx_now_ns();
  int rc = rel_publish(srv, BIGB, ++g_f);
  t = shmx_now_ns() - t;
  if (t > g_max_pub_ns) g_max_pub_ns = t;
  return rc;
}

/* Drain control rings; every message must be intact. */
static int drain(shmx_server *srv, int *corrupt_total, uint64_t *msgs) {
  shmx_control_msg m[64];
  for (;;) {
    int corrupt = 0;
    int n = shmx_server_poll_control(srv, m, 64, &corrupt);
    if (n < 0) return n;
    *corrupt_total += corrupt;
    for (int i = 0; i < n; i++) {
      uint64_t k;
      if (m[i].len < 8 || m[i].len > 208 || m[i].type < 0x3000 ||
          m[i].type >= 0x3000 + NRD)
        return -1;
      memcpy(&k, m[i].data, 8);
      uint32_t want = 8 + (uint32_t)(rel_mix(k + (uint64_t)(m[i].type - 0x3000) * 1000003) % 200);
      if (m[i].len != want || !rel_match(m[i].data + 8, m[i].len - 8, k, 5))
        return -2;
    }
    (*msgs) += (uint64_t)n;
    if (n < 64) return 0;
  }
}

TEST(reader_sigkill_matrix) {
  rel_rng rng = rel_rng_make(2);
  g_name = rel_name("rk");
  shmx_server_config cfg;
  rel_config(&cfg, BIGB, RSLOTS);
  cfg.control_per_reader = 1024; /* small: senders hit the full ring too */
  shmx_server *srv = NULL;
  CHECK_OK(shmx_server_create(g_name, &cfg, &srv));
  int corrupt = 0;
  uint64_t msgs = 0;
  int kills_by_beh[4] = {0};
  pid_t kids[NRD] = {0};
  int fail = 0;
  for (int round = 0; round < 6 && !fail; round++) {
    memset(SH, 0, sizeof *SH);
    for (int i = 0; i < NRD; i++) kids[i] = harness_spawn(child, (void *)(intptr_t)i);
    /* publish until every child is in position */
    uint64_t end = harness_now_ms() + 8000;
    for (;;) {
      int r = 0;
      for (int i = 0; i < NRD; i++) r += atomic_load(&SH->ready[i]);
      if (r == NRD) break;
      if (harness_now_ms() > end) {
        HARNESS_FAIL("round %d: children not ready", round);
        fail = 1;
        break;
      }
      if (publish_one(srv) != 0) {
        HARNESS_FAIL("publish: %s", shmx_errmsg());
        fail = 1;
        break;
      }
      if (drain(srv, &corrupt, &msgs) != 0) {
        HARNESS_FAIL("bad control message");
        fail = 1;
        break;
      }
      usleep(50);
    }
    /* kill them in random order at random moments, publishing throughout */
    int order[NRD];
    for (int i = 0; i < NRD; i++) order[i] = i;
    for (int i = NRD - 1; i > 0; i--) {
      int j = (int)rel_below(&rng, (uint64_t)i + 1), t = order[i];
      order[i] = order[j];
      order[j] = t;
    }
    for (int k = 0; k < NRD && !fail; k++) {
      int victim = order[k];
      uint64_t npub = rel_below(&rng, 200);
      for (uint64_t p = 0; p < npub && !fail; p++) {
        if (publish_one(srv) != 0) fail = 1;
        if (drain(srv, &corrupt, &msgs) != 0) {
          HARNESS_FAIL("bad control message");
          fail = 1;
        }
      }
      /* senders and attachers: wait for fresh progress, kill mid-loop */
      uint64_t p0 = atomic_load(&SH->progress[victim]);
      WAIT_UNTIL(atomic_load(&SH->progress[victim]) != p0, 200);
      kill(kids[victim], SIGKILL);
      harness_wait(kids[victim], 5000);
      kids[victim] = 0;
      kills_by_beh[victim % 4]++;
    }
    if (fail) break;
    /* the producer reaps the dead and keeps going */
    shmx_reader_info ri[RSLOTS];
    int n = shmx_server_readers(srv, ri, RSLOTS);
    (void)shmx_server_reap(srv, 0, 60ull * 1000000000ull);
    n = shmx_server_readers(srv, ri, RSLOTS);
    if (n != RSLOTS) {
      HARNESS_FAIL("readers() -> %d", n);
      fail = 1;
      break;
    }
    for (int i = 0; i < n; i++)
      if (ri[i].in_use || ri[i].reader_id != 0) {
        HARNESS_FAIL("round %d: reader slot %d not reclaimed (pid %d, alive %d, "
                     "reader id %llu)", round, i, ri[i].pid, ri[i].alive,
                     (unsigned long long)ri[i].reader_id);
        fail = 1;
      }
    if (drain(srv, &corrupt, &msgs) != 0) {
      HARNESS_FAIL("bad control message after kills");
      fail = 1;
    }
    for (int p = 0; p < 5 && !fail; p++)
      if (publish_one(srv) != 0) fail = 1;
    shmx_inspector *in = NULL;
    if (!fail && shmx_inspector_open(g_name, &in) == 0) {
      shmx_slot_info si[8];
      shmx_header_info h;
      int ns = shmx_inspector_slots(in, si, 8);
      int hr = shmx_inspector_header(in, &h);
      for (int i = 0; i < ns; i++)
        if (si[i].pins) {
          HARNESS_FAIL("round %d: frame slot %d still pinned (%u)", round, i,
                       si[i].pins);
          fail = 1;
        }
      if (hr != 0 || h.readers_connected != 0) {
        HARNESS_FAIL("round %d: readers_connected %u", round,
                     h.readers_connected);
        fail = 1;
      }
      shmx_inspector_close(in);
    } else if (!fail) {
      HARNESS_FAIL("inspector_open: %s", shmx_errmsg());
      fail = 1;
    }
  }
  for (int i = 0; i < NRD; i++) rel_kill_reap(kids[i]);
  printf("# published %llu frames, max begin..publish %.1f us, %llu control "
         "messages, kills: hold %d send %d attach %d wait %d\n",
         (unsigned long long)g_f, (double)g_max_pub_ns / 1e3,
         (unsigned long long)msgs, kills_by_beh[0], kills_by_beh[1],
         kills_by_beh[2], kills_by_beh[3]);
  if (fail) {
    shmx_server_destroy(srv);
    return;
  }
  /* every slot can be attached again; one more is refused */
  shmx_client *cls[RSLOTS + 1] = {0};
  int rc = 0, i;
  for (i = 0; i < RSLOTS; i++) {
    rc = shmx_client_open(g_name, &cls[i]);
    if (rc) break;
  }
  int extra = rc == 0 ? shmx_client_open(g_name, &cls[RSLOTS]) : 0;
  for (int k = 0; k <= RSLOTS; k++) shmx_client_close(cls[k]);
  shmx_server_destroy(srv);
  CHECK_EQ(corrupt, 0);
  CHECK_OK(rc);
  CHECK_EQ(i, RSLOTS);
  CHECK_ERR(extra, SHMX_E_FULL);
  /* "never blocks": a producer waiting on a dead reader would wait forever;
   * the bound only allows for preemption on a loaded machine */
  CHECK_LT(g_max_pub_ns, 3000000000ull);
  CHECK(!rel_seg_exists(g_name));
  (void)b_names;
}

/*
 * Regression test for the mid-close kill (fixed in the core). The old
 * shmx__reg_release() took CAS(owner: id -> SHMX__REAPING) first, so a
 * reader dying inside shmx_client_close() left the slot marked REAPING,
 * which sweep/reap skipped forever (SHMX_E_FULL), and variant 1 left
 * readers_connected one too high. Release no longer uses the marker, but a
 * stray REAPING (old protocol, a hostile writer) must still be reclaimed:
 * we put the slot in exactly that state through a raw mapping, kill the
 * reader, and expect the producer to reap it and the count to be right.
 */
static int idle_reader(void *arg) {
  (void)arg;
  shmx_client *cl = NULL;
  if (shmx_client_open(g_name, &cl) != 0) return 1;
  atomic_store(&SH->ready[0], 1);
  for (;;) pause();
}

/* Reader slot 0 of channel `name`, mapped read-write as another process
 * would see it (NULL on failure); *h gets the header, *len the mapping's
 * length: munmap((uint8_t *)r - h->readers_off, *len) undoes it. */
static struct shmx__reader *map_reader0(const char *name, struct shmx__hdr *h, size_t *len) {
  char path[160];
  snprintf(path, sizeof path, "/dev/shm/%s%s", SHMX_SEGMENT_PREFIX, name);
  int fd = open(path, O_RDWR);
  if (fd < 0) return NULL;
  uint8_t *seg = MAP_FAILED;
  if (pread(fd, h, sizeof *h, 0) == (ssize_t)sizeof *h) {
    *len = (size_t)h->readers_off + SHMX__READER_STRIDE;
    seg = mmap(NULL, *len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  }
  close(fd);
  return seg == MAP_FAILED ? NULL : (struct shmx__reader *)(void *)(seg + h->readers_off);
}

TEST(reader_dies_mid_release) {
  for (int variant = 0; variant < 2; variant++) {
    memset(SH, 0, sizeof *SH);
    g_name = rel_name("midrel");
    shmx_server_config cfg;
    rel_config(&cfg, 0, 1);
    shmx_server *srv = NULL;
    CHECK_OK(shmx_server_create(g_name, &cfg, &srv));
    pid_t kid = harness_spawn(idle_reader, NULL);
    if (!WAIT_UNTIL(atomic_load(&SH->ready[0]), 5000)) {
      rel_kill_reap(kid);
      shmx_server_destroy(srv);
      HARNESS_FAIL("reader did not attach");
      return;
    }
    struct shmx__hdr h;
    size_t len = 0;
    struct shmx__reader *r = map_reader0(g_name, &h, &len);
    CHECK(r != NULL);
    atomic_store(&r->owner, UINT64_MAX); /* SHMX__REAPING: release began */
    if (variant == 1) atomic_store(&r->state, SHMX__RD_FREE);
    munmap((uint8_t *)r - h.readers_off, len);
    rel_kill_reap(kid);
    shmx_reader_info ri[1];
    (void)shmx_server_readers(srv, ri, 1);
    usleep(20000);
    int reaped = shmx_server_reap(srv, 0, 10000000ull); /* 10 ms */
    shmx_client *cl = NULL;
    int rc = shmx_client_open(g_name, &cl);
    shmx_header_info hi;
    memset(&hi, 0, sizeof hi);
    (void)shmx_server_header(srv, &hi);
    shmx_client_close(cl);
    shmx_server_destroy(srv);
    printf("# variant %d: reap -> %d, open -> %s, readers_connected %u\n",
           variant, reaped, shmx_err_name(rc), hi.readers_connected);
    CHECK_OK(rc);
    CHECK_EQ(hi.readers_connected, 1);
  }
}

/* A claimer killed between its CAS on owner and its state store leaves
 * owner set, state FREE and the previous occupant's lock_byte: the reaper
 * takes it for dead when no lock byte of the slot is held (variant 0), and
 * for unknown while one is (variant 1: a live claimer holds its byte). The
 * round above lands a SIGKILL in that window now and then; this makes the
 * window by hand. */
TEST(reader_dies_mid_claim) {
  for (int variant = 0; variant < 2; variant++) {
    g_name = rel_name("midclaim");
    shmx_server_config cfg;
    rel_config(&cfg, 0, 1);
    shmx_server *srv = NULL;
    CHECK_OK(shmx_server_create(g_name, &cfg, &srv));
    struct shmx__hdr h;
    size_t len = 0;
    struct shmx__reader *r = map_reader0(g_name, &h, &len);
    CHECK(r != NULL);
    int lfd = -1;
    if (variant == 1) { /* the claimer lives: it holds lock identity 3 */
      char path[160];
      snprintf(path, sizeof path, "/dev/shm/.%s%s.lock", SHMX_SEGMENT_PREFIX, g_name);
      lfd = open(path, O_RDWR);
      CHECK(lfd >= 0);
      struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_len = 1};
      fl.l_start = (off_t)(SHMX__RLOCK_BASE +
                           (h.session_id & 0x3FFFFFFFu) * SHMX__RLOCK_SPAN + 3);
      CHECK_EQ(fcntl(lfd, F_OFD_SETLK, &fl), 0);
    }
    CHECK_EQ(atomic_load(&r->state), (uint32_t)SHMX__RD_FREE);
    atomic_store(&r->owner, 777); /* the CAS happened, nothing after it */
    int reaped = shmx_server_reap(srv, 0, 0);
    shmx_client *cl = NULL;
    int rc = shmx_client_open(g_name, &cl);
    printf("# variant %d: reap -> %d, open -> %s\n", variant, reaped, shmx_err_name(rc));
    if (variant == 0) {
      CHECK_EQ(reaped, 1);
      CHECK_OK(rc); /* the one reader slot is free again */
    } else {
      CHECK_EQ(reaped, 0);
      CHECK_EQ(rc, SHMX_E_FULL);
      CHECK_EQ(atomic_load(&r->owner), 777u);
      close(lfd); /* the claimer dies after all: now it is reaped */
      CHECK_EQ(shmx_server_reap(srv, 0, 0), 1);
      CHECK_OK(shmx_client_open(g_name, &cl));
    }
    shmx_client_close(cl);
    munmap((uint8_t *)r - h.readers_off, len);
    shmx_server_destroy(srv);
  }
}

int main(void) {
  SH = rel_shared(sizeof *SH);
  (void)rel_seed();
  RUN(reader_sigkill_matrix);
  RUN(reader_dies_mid_release);
  RUN(reader_dies_mid_claim);
  rel_cleanup_all();
  return harness_done();
}

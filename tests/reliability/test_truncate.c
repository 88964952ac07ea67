/*
 * test_truncate.c -- another process that may write a segment (every reader
 * may) truncates it while the producer copies 256 KiB frames into it, a
 * reader polls latest and copies frames out, another waits in
 * shmx_client_wait (in order) and sends control messages, and an inspector
 * refreshes: nobody dies of SIGBUS, nobody hangs, no torn frame passes for
 * valid (a held frame's pages read zeros after the cut, and
 * shmx_frame_valid() then says 0), and each of them gets
 * SHMX_E_CORRUPT ("segment truncated by another process") from the library
 * instead (issue 11, item 5). Rounds cut the file at different sizes: 0,
 * inside the header, at the frame area, in the middle of the frames.
 * SHMX_REL_ROUNDS scales the rounds (default 12).
 */
#include <sched.h>
#include <sys/stat.h>

#include "rel.h"

#define BIG (256u * 1024)

typedef struct tr_page {
  _Atomic int up, stop;
  _Atomic uint64_t calls[4]; /* producer, poller, waiter, inspector */
  int corrupt[4];            /* 1 once that role saw SHMX_E_CORRUPT */
  int other[4];              /* an unexpected error code, if any */
} tr_page;
static tr_page *TP;
static const char *g_name;

static void note(int who, int rc) {
  if (rc == SHMX_E_CORRUPT) TP->corrupt[who] = 1;
  else if (!TP->other[who]) TP->other[who] = rc;
}

static int producer(void *arg) {
  (void)arg;
  shmx_server_config cfg;
  rel_config(&cfg, BIG, 4);
  cfg.slots = 4;
  shmx_server *srv = NULL;
  if (shmx_server_create(g_name, &cfg, &srv) != 0) return 1;
  atomic_fetch_add(&TP->up, 1);
  shmx_control_msg msgs[8];
  for (uint64_t f = 1; !atomic_load(&TP->stop); f++) {
    int rc = rel_publish(srv, BIG, f);
    if (rc == 0) rc = shmx_server_poll_control(srv, msgs, 8, NULL) < 0 ? -1 : 0;
    atomic_fetch_add(&TP->calls[0], 1);
    sched_yield(); /* four spinning roles: let a loaded machine breathe */
    if (rc == SHMX_E_CORRUPT) {
      note(0, rc);
      break;
    }
    if (rc == -1) {
      note(0, SHMX_E_CORRUPT == shmx_server_poll_control(srv, msgs, 8, NULL)
                  ? SHMX_E_CORRUPT : -1);
      break;
    }
  }
  while (!atomic_load(&TP->stop)) rel_sleep_us(1000);
  shmx_server_destroy(srv);
  return 0;
}

static int poller(void *arg) {
  (void)arg;
  shmx_client *cl = NULL;
  if (shmx_client_open(g_name, &cl) != 0) return 1;
  atomic_fetch_add(&TP->up, 1);
  static uint8_t copy[BIG + 8192];
  while (!atomic_load(&TP->stop)) {
    shmx_frame f;
    int rc = shmx_client_latest(cl, &f);
    if (rc == 0) {
      /* a held frame is intact while shmx_frame_valid() says so (G2): after
       * a cut its pages read zeros, and valid says 0 */
      if (rel_frame_bad(&f, BIG) && shmx_frame_valid(cl, &f)) return 2;
      shmx_frame_release(cl, &f);
      rc = shmx_client_copy_latest(cl, copy, sizeof copy, &f);
    }
    atomic_fetch_add(&TP->calls[1], 1);
    sched_yield(); /* four spinning roles: let a loaded machine breathe */
    if (rc == SHMX_E_CORRUPT) {
      note(1, rc);
      break;
    }
    if (rc && rc != SHMX_E_NOFRAME && rc != SHMX_E_BUSY) note(1, rc);
  }
  shmx_client_close(cl);
  return 0;
}

static int waiter(void *arg) {
  (void)arg;
  shmx_client *cl = NULL;
  if (shmx_client_open(g_name, &cl) != 0) return 1;
  atomic_fetch_add(&TP->up, 1);
  while (!atomic_load(&TP->stop)) {
    shmx_frame f;
    int rc = shmx_client_wait(cl, &f, 50 * 1000 * 1000, 1);
    if (rc == 0) {
      shmx_frame_release(cl, &f);
      rc = shmx_client_send(cl, SHMX_TLV_CONTROL_USER, "ping", 4);
      if (rc == SHMX_E_RINGFULL) rc = 0;
    }
    atomic_fetch_add(&TP->calls[2], 1);
    if (rc == SHMX_E_CORRUPT) {
      note(2, rc);
      break;
    }
    if (rc && rc != SHMX_E_TIMEOUT && rc != SHMX_E_BUSY) note(2, rc);
  }
  shmx_client_close(cl);
  return 0;
}

static int inspector(void *arg) {
  (void)arg;
  shmx_inspector *in = NULL;
  if (shmx_inspector_open(g_name, &in) != 0) return 1;
  atomic_fetch_add(&TP->up, 1);
  while (!atomic_load(&TP->stop)) {
    shmx_header_info h;
    shmx_reader_info ri[4];
    shmx_slot_info si[4];
    int rc = shmx_inspector_refresh(in);
    if (rc >= 0) rc = shmx_inspector_header(in, &h);
    if (rc >= 0) rc = shmx_inspector_readers(in, ri, 4);
    if (rc >= 0) rc = shmx_inspector_slots(in, si, 4);
    atomic_fetch_add(&TP->calls[3], 1);
    sched_yield(); /* four spinning roles: let a loaded machine breathe */
    if (rc == SHMX_E_CORRUPT) {
      note(3, rc);
      break;
    }
    if (rc < 0) note(3, rc);
  }
  shmx_inspector_close(in);
  return 0;
}

static const char *ROLE[4] = {"producer", "poller", "waiter", "inspector"};

TEST(truncate_under_everyone) {
  int rounds = 12;
  const char *r = getenv("SHMX_REL_ROUNDS");
  if (r && atoi(r) > 0) rounds = atoi(r);
  TP = rel_shared(sizeof *TP);
  int (*fn[4])(void *) = {producer, poller, waiter, inspector};
  for (int round = 0; round < rounds; round++) {
    g_name = rel_name("trunc");
    memset(TP, 0, sizeof *TP);
    pid_t kids[4];
    kids[0] = harness_spawn(fn[0], NULL);
    CHECK(WAIT_UNTIL(atomic_load(&TP->up) == 1, 40000));
    for (int k = 1; k < 4; k++) kids[k] = harness_spawn(fn[k], NULL);
    CHECK(WAIT_UNTIL(atomic_load(&TP->up) == 4, 40000));
    /* let everyone run, then cut (state-synchronised: each role has made calls) */
    CHECK(WAIT_UNTIL(atomic_load(&TP->calls[0]) > 20 && atomic_load(&TP->calls[1]) > 20 &&
                     atomic_load(&TP->calls[2]) > 2 && atomic_load(&TP->calls[3]) > 20,
                     40000)); /* generous: only a hang should trip these (loaded CI) */
    char path[160];
    snprintf(path, sizeof path, "/dev/shm/%s%s", SHMX_SEGMENT_PREFIX, g_name);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    CHECK_GE(fd, 0);
    struct stat st;
    CHECK_EQ(fstat(fd, &st), 0);
    off_t cuts[4] = {0, 1000, 65536, st.st_size / 2};
    CHECK_EQ(ftruncate(fd, cuts[round % 4]), 0);
    close(fd);
    /* everyone notices (the waiter within its 50 ms slices) */
    int noticed = WAIT_UNTIL(TP->corrupt[0] && TP->corrupt[1] && TP->corrupt[2] &&
                             TP->corrupt[3], 40000);
    atomic_store(&TP->stop, 1);
    int ok = 1;
    for (int k = 0; k < 4; k++) {
      int ex = harness_wait(kids[k], 20000);
      if (ex != 0 || !TP->corrupt[k] || TP->other[k]) {
        fprintf(stderr, "round %d cut %lld: %s exit %d, saw CORRUPT %d, other error %s\n",
                round, (long long)cuts[round % 4], ROLE[k], ex, TP->corrupt[k],
                TP->other[k] ? shmx_err_name(TP->other[k]) : "none");
        ok = 0;
      }
    }
    CHECK(noticed);
    CHECK(ok);
    rel_cleanup_all();
  }
  printf("# truncate: %d rounds, cuts at 0, 1000, 65536 and half the file; every "
         "role got SHMX_E_CORRUPT, none died\n", rounds);
}

int main(void) {
  printf("# seed %llu\n", (unsigned long long)rel_seed());
  RUN(truncate_under_everyone);
  return harness_done();
}

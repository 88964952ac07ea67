/*
 * test_threads.c -- producer and readers as threads of one process (for
 * ThreadSanitizer: suite 'threads', run by `make test-tsan`).
 *
 * One producer thread publishes pattern frames (copy and in-place streams)
 * and polls control rings; four reader threads, each with its own client
 * handle, read with latest/next/wait/hold and check every byte; an
 * inspector thread reads header, readers and slots throughout. Also checks
 * that the thread-local error detail of one thread is not clobbered by
 * another. No torn frame; every thread ends on the channel close.
 */
#include <pthread.h>

#include <stdalign.h>

#include "rel.h"

#define NREAD 5 /* latest, next, wait, latest holding one, copy */
#define BIGB 4096
#define FRAMES 20000

static const char *g_name;
static _Atomic int g_ready, g_done;

typedef struct rres {
  int kind;
  uint64_t frames, torn, expired, dropped;
  int end_err;
  char why[160];
  alignas(64) uint8_t copy[BIGB + 8192]; /* kind 4 copies frames here */
} rres;

static void *reader(void *arg) {
  rres *r = arg;
  shmx_client *cl = NULL;
  int rc = shmx_client_open(g_name, &cl);
  if (rc) {
    r->end_err = rc;
    atomic_fetch_add(&g_ready, 1);
    return NULL;
  }
  atomic_fetch_add(&g_ready, 1);
  shmx_frame held;
  memset(&held, 0, sizeof held);
  uint64_t last = 0;
  uint64_t end = harness_now_ms() + 30000;
  for (uint64_t it = 0;; it++) {
    if (harness_now_ms() > end) {
      r->end_err = SHMX_E_TIMEOUT;
      break;
    }
    shmx_frame fr;
    switch (r->kind) {
    case 0: case 3: rc = shmx_client_latest(cl, &fr); break;
    case 1: rc = shmx_client_next(cl, &fr); break;
    case 4: rc = shmx_client_copy_latest(cl, r->copy, sizeof r->copy, &fr); break;
    default: rc = shmx_client_wait(cl, &fr, 50000000, (int)(it & 1)); break;
    }
    if (rc == SHMX_E_NOFRAME || rc == SHMX_E_TIMEOUT || rc == SHMX_E_BUSY) {
      if (atomic_load(&g_done) && rc != SHMX_E_BUSY &&
          last >= (uint64_t)FRAMES)
        break;
      sched_yield();
      continue;
    }
    if (rc != 0) {
      r->end_err = rc;
      break;
    }
    if (fr.frame_id <= last) {
      shmx_frame_release(cl, &fr);
      if (atomic_load(&g_done) && last >= (uint64_t)FRAMES) break;
      sched_yield();
      continue;
    }
    if (r->kind == 1) r->dropped += fr.dropped;
    last = fr.frame_id;
    r->frames++;
    const char *why = rel_frame_bad(&fr, BIGB);
    if (why) {
      if (shmx_frame_valid(cl, &fr)) {
        if (!r->torn++) snprintf(r->why, sizeof r->why, "%s", why);
      } else {
        r->expired++;
      }
    }
    if (r->kind == 3) {
      if (held.frame_id) {
        if (!shmx_frame_valid(cl, &held)) r->expired++;
        else if ((why = rel_frame_bad(&held, BIGB)) != NULL &&
                 shmx_frame_valid(cl, &held) && !r->torn++)
          snprintf(r->why, sizeof r->why, "held %.100s", why);
        shmx_frame_release(cl, &held);
      }
      held = fr;
    } else {
      shmx_frame_release(cl, &fr);
    }
    if ((it & 255) == 0) {
      uint64_t v = it;
      (void)shmx_client_send(cl, SHMX_TLV_CONTROL_USER, &v, 8);
    }
  }
  if (held.frame_id) shmx_frame_release(cl, &held);
  shmx_client_close(cl);
  return NULL;
}

static void *inspect(void *arg) {
  uint64_t *calls = arg;
  while (!atomic_load(&g_done)) {
    shmx_inspector *in = NULL;
    if (shmx_inspector_open(g_name, &in) != 0) continue;
    shmx_header_info h;
    shmx_reader_info ri[NREAD];
    shmx_slot_info si[4];
    (void)shmx_inspector_header(in, &h);
    (void)shmx_inspector_readers(in, ri, NREAD);
    (void)shmx_inspector_slots(in, si, 4);
    shmx_inspector_close(in);
    (*calls)++;
  }
  return NULL;
}

typedef struct pres {
  shmx_server *srv;
  int err;
  uint64_t msgs;
} pres;

static void *produce(void *arg) {
  pres *p = arg;
  while (atomic_load(&g_ready) < NREAD) sched_yield();
  shmx_control_msg m[16];
  for (uint64_t f = 1; f <= FRAMES; f++) {
    int rc = rel_publish(p->srv, BIGB, f);
    if (rc) {
      p->err = rc;
      break;
    }
    if ((f & 3) == 0) sched_yield(); /* let readers in (2 cores) */
    if ((f & 63) == 0) {
      int n = shmx_server_poll_control(p->srv, m, 16, NULL);
      if (n > 0) p->msgs += (uint64_t)n;
    }
  }
  atomic_store(&g_done, 1);
  return NULL;
}

TEST(threads_producer_readers_inspector) {
  g_name = rel_name("thr");
  shmx_server_config cfg;
  rel_config(&cfg, BIGB, NREAD + 1);
  /* Enough slots that the five frames readers may hold at once never force
   * an overwrite: a forced overwrite is a deliberate race with the holder
   * (shmx_frame_valid() tells it), which TSan would rightly report. */
  cfg.slots = 8;
  pres p = {0};
  CHECK_OK(shmx_server_create(g_name, &cfg, &p.srv));
  pthread_t tr[NREAD], tp, ti;
  rres rr[NREAD];
  memset(rr, 0, sizeof rr);
  uint64_t icalls = 0;
  for (int i = 0; i < NREAD; i++) {
    rr[i].kind = i;
    pthread_create(&tr[i], NULL, reader, &rr[i]);
  }
  pthread_create(&ti, NULL, inspect, &icalls);
  pthread_create(&tp, NULL, produce, &p);
  pthread_join(tp, NULL);
  /* let readers see the tail, then close: they end on CLOSED or when done */
  for (int i = 0; i < NREAD; i++) pthread_join(tr[i], NULL);
  pthread_join(ti, NULL);
  shmx_server_destroy(p.srv);
  CHECK_OK(p.err);
  for (int i = 0; i < NREAD; i++) {
    printf("# reader %d: %llu frames, %llu dropped, %llu expired, end %s\n", i,
           (unsigned long long)rr[i].frames, (unsigned long long)rr[i].dropped,
           (unsigned long long)rr[i].expired, shmx_err_name(rr[i].end_err));
    if (rr[i].torn) HARNESS_FAIL("reader %d: torn frame: %s", i, rr[i].why);
    CHECK_EQ(rr[i].torn, 0);
    CHECK_OK(rr[i].end_err);
    CHECK_GT(rr[i].frames, 0);
  }
  CHECK_GT(icalls, 0);
}

/* shmx_errmsg() is per thread: a failure on one thread does not change the
 * detail another thread is about to print. */
static void *fail_other(void *arg) {
  shmx_client *cl = NULL;
  int *rc = arg;
  for (int i = 0; i < 1000; i++) *rc = shmx_client_open("../bad/name", &cl);
  return NULL;
}

TEST(errmsg_is_thread_local) {
  shmx_client *cl = NULL;
  CHECK_ERR(shmx_client_open(rel_name("absent"), &cl), SHMX_E_NOCHANNEL);
  char mine[256];
  snprintf(mine, sizeof mine, "%s", shmx_errmsg());
  pthread_t t;
  int rc = 0;
  pthread_create(&t, NULL, fail_other, &rc);
  pthread_join(t, NULL);
  CHECK_ERR(rc, SHMX_E_NAME);
  CHECK(strcmp(mine, shmx_errmsg()) == 0);
}

int main(void) {
  (void)rel_seed();
  RUN(threads_producer_readers_inspector);
  RUN(errmsg_is_thread_local);
  rel_cleanup_all();
  return harness_done();
}

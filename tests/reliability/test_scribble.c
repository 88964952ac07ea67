/*
 * test_scribble.c -- a hostile process scribbles over a live segment.
 *
 * A producer, two readers (latest and blocking in-order) and an inspector
 * run in their own processes while a scribbler maps /dev/shm/shmx.NAME
 * read-write and writes random bytes at random offsets.
 * Most scribbles hit the live (mutable) fields; one in twenty hits the
 * immutable geometry, which only matters to processes that open afterwards.
 * Errors are expected and fine (SHMX_E_CORRUPT, SHMX_E_BUSY, ...); what may
 * not happen is a crash (signal), a hang (every process must finish its
 * loop by the deadline), or the producer blocking. Several rounds with
 * different intensities and seeds.
 */
#include "rel.h"

#define BIGB 16384
#define RUN_MS 1500

enum { C_PROD, C_LATEST, C_WAIT, C_INSPECT, C_SCRIBBLE, C_N };
static const char *const c_names[C_N] = {"producer", "latest-reader",
                                         "wait-reader", "inspector",
                                         "scribbler"};

typedef struct sc_shared {
  _Atomic int stop;
  _Atomic int created;
  _Atomic uint64_t ops[C_N];
  _Atomic uint64_t errors[C_N];
  _Atomic uint64_t writes;
  int last_err[C_N];
  char first_msg[C_N][160];
} sc_shared;

static sc_shared *SH;
static const char *g_name;
static int g_intensity;

static void note(int who, int rc) {
  atomic_fetch_add(&SH->ops[who], 1);
  if (rc < 0) {
    if (atomic_fetch_add(&SH->errors[who], 1) == 0)
      snprintf(SH->first_msg[who], sizeof SH->first_msg[who], "%s: %.120s",
               shmx_err_name(rc), shmx_errmsg());
    SH->last_err[who] = rc;
  }
}

static int producer(void *arg) {
  (void)arg;
  shmx_server_config cfg;
  rel_config(&cfg, BIGB, 4);
  cfg.static_bytes_cap = 8192;
  shmx_server *srv = NULL;
  int rc = shmx_server_create(g_name, &cfg, &srv);
  if (rc) return 40;
  atomic_store(&SH->created, 1);
  uint64_t f = 0;
  shmx_control_msg m[16];
  shmx_reader_info ri[4];
  uint8_t rec[64];
  memset(rec, 7, sizeof rec);
  while (!atomic_load(&SH->stop)) {
    rc = rel_publish(srv, BIGB, ++f);
    note(C_PROD, rc);
    if ((f & 15) == 0) {
      int corrupt = 0;
      note(C_PROD, shmx_server_poll_control(srv, m, 16, &corrupt));
      note(C_PROD, shmx_server_readers(srv, ri, 4));
      note(C_PROD, shmx_server_reap(srv, 0, 5000000000ull));
      shmx_header_info h;
      note(C_PROD, shmx_server_header(srv, &h));
    }
    if ((f & 255) == 0) note(C_PROD, shmx_server_static_append(srv, rec, 1 + (uint32_t)(f % 60)));
  }
  shmx_server_destroy(srv);
  return 0;
}

static int reader(void *arg) {
  int who = (int)(intptr_t)arg;
  shmx_client *cl = NULL;
  uint64_t iter = 0;
  while (!atomic_load(&SH->stop)) {
    iter++;
    if (!cl) {
      int rc = shmx_client_open(g_name, &cl);
      note(who, rc);
      if (rc) {
        cl = NULL;
        usleep(200);
        continue;
      }
    }
    shmx_frame fr;
    int rc = who == C_LATEST ? shmx_client_latest(cl, &fr)
                             : shmx_client_wait(cl, &fr, 20000000, 1);
    note(who, rc);
    if (rc == 0) {
      /* touch every byte it was given (must be mapped and in bounds) */
      volatile uint8_t sink = 0;
      for (uint32_t i = 0; i < fr.tlv_count; i++)
        for (uint64_t b = 0; b < fr.streams[i].bytes; b += 64)
          sink ^= fr.streams[i].data[b];
      (void)sink;
      (void)shmx_frame_valid(cl, &fr);
      shmx_frame_release(cl, &fr);
    }
    if ((iter & 31) == 0) {
      note(who, shmx_client_refresh(cl));
      const shmx_stream_info *st;
      int n;
      note(who, shmx_client_streams(cl, &st, &n));
      const uint8_t *d;
      uint32_t len;
      (void)shmx_client_static_user(cl, 0, &d, &len);
      shmx_header_info h;
      note(who, shmx_client_header(cl, &h));
      (void)shmx_client_send(cl, SHMX_TLV_CONTROL_USER, "hello", 5);
      (void)shmx_client_heartbeat(cl);
    }
    if (rc == SHMX_E_CLOSED || rc == SHMX_E_DEAD || rc == SHMX_E_REAPED ||
        rc == SHMX_E_RESTARTED || ((iter & 16383) == 0)) {
      shmx_client_close(cl); /* reopen: exercises open on a dirty segment */
      cl = NULL;
    }
  }
  shmx_client_close(cl);
  return 0;
}

static int inspector(void *arg) {
  (void)arg;
  while (!atomic_load(&SH->stop)) {
    shmx_inspector *in = NULL;
    int rc = shmx_inspector_open(g_name, &in);
    note(C_INSPECT, rc);
    if (rc) {
      usleep(200);
      continue;
    }
    for (int k = 0; k < 20; k++) {
      shmx_header_info h;
      shmx_reader_info ri[8];
      shmx_slot_info si[8];
      const shmx_stream_info *st;
      int n;
      note(C_INSPECT, shmx_inspector_header(in, &h));
      note(C_INSPECT, shmx_inspector_refresh(in));
      note(C_INSPECT, shmx_inspector_streams(in, &st, &n));
      note(C_INSPECT, shmx_inspector_readers(in, ri, 8));
      note(C_INSPECT, shmx_inspector_slots(in, si, 8));
    }
    shmx_inspector_close(in);
  }
  return 0;
}

static int scribbler(void *arg) {
  (void)arg;
  rel_rng rng = rel_rng_make(100 + (uint64_t)g_intensity);
  char path[160];
  snprintf(path, sizeof path, "/dev/shm/%s%s", SHMX_SEGMENT_PREFIX, g_name);
  int fd = open(path, O_RDWR);
  if (fd < 0) return 50;
  struct stat sb;
  if (fstat(fd, &sb) != 0 || sb.st_size < 4096) return 51;
  size_t size = (size_t)sb.st_size;
  uint8_t *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (p == MAP_FAILED) return 52;
  uint64_t frames_off;
  memcpy(&frames_off, p + 112, 8); /* shmx__hdr.frames_off */
  if (frames_off > size || frames_off < 4096) frames_off = size;
  while (!atomic_load(&SH->stop)) {
    uint64_t r = rel_next(&rng);
    size_t off;
    switch (r % 20) {
    case 0: off = rel_below(&rng, 128); break; /* immutable geometry */
    case 1: case 2: case 3: case 4: case 5: case 6:
      off = 128 + rel_below(&rng, 192); break; /* live header fields */
    case 16: case 17: case 18: case 19: off = rel_below(&rng, size); break;
    default: /* schema, slot descriptors, reader slots, control rings */
      off = 4096 + rel_below(&rng, frames_off - 4096); break;
    }
    size_t len = 1 + rel_below(&rng, (r >> 8) % 4 == 0 ? 64 : 8);
    if (len > size - off) len = size - off;
    for (size_t i = 0; i < len; i++) {
      uint64_t v = rel_next(&rng);
      /* small values and all-ones are nastier than uniform bytes */
      p[off + i] = (v & 3) == 0 ? 0xFF : (v & 3) == 1 ? (uint8_t)(v >> 8 & 3)
                                                       : (uint8_t)(v >> 16);
    }
    atomic_fetch_add(&SH->writes, 1);
    if (g_intensity == 0) usleep(200);
    else if (g_intensity == 1) usleep(20);
  }
  munmap(p, size);
  return 0;
}

TEST(scribbler_vs_everyone) {
  for (g_intensity = 0; g_intensity < 3; g_intensity++) {
    memset(SH, 0, sizeof *SH);
    g_name = rel_name("scrib");
    pid_t kid[C_N] = {0};
    kid[C_PROD] = harness_spawn(producer, NULL);
    if (!WAIT_UNTIL(atomic_load(&SH->created), 5000)) {
      rel_kill_reap(kid[C_PROD]);
      HARNESS_FAIL("producer did not start");
      return;
    }
    kid[C_LATEST] = harness_spawn(reader, (void *)(intptr_t)C_LATEST);
    kid[C_WAIT] = harness_spawn(reader, (void *)(intptr_t)C_WAIT);
    kid[C_INSPECT] = harness_spawn(inspector, NULL);
    usleep(100000);
    kid[C_SCRIBBLE] = harness_spawn(scribbler, NULL);
    usleep(RUN_MS * 1000);
    atomic_store(&SH->stop, 1);
    int bad = 0;
    printf("# intensity %d: %llu scribbles\n", g_intensity,
           (unsigned long long)atomic_load(&SH->writes));
    /* scribbler first (it may hold a producer call in a retry loop) */
    int order[C_N] = {C_SCRIBBLE, C_PROD, C_LATEST, C_WAIT, C_INSPECT};
    for (int k = 0; k < C_N; k++) {
      int c = order[k];
      int st = harness_wait(kid[c], 10000);
      kid[c] = 0;
      printf("#   %-13s exit %3d, %8llu calls, %8llu errors (last %s)\n",
             c_names[c], st, (unsigned long long)atomic_load(&SH->ops[c]),
             (unsigned long long)atomic_load(&SH->errors[c]),
             shmx_err_name(SH->last_err[c]));
      if (SH->first_msg[c][0]) printf("#     first error %s\n", SH->first_msg[c]);
      if (st != 0) {
        HARNESS_FAIL("intensity %d: %s %s", g_intensity, c_names[c],
                     st < 0 ? "hung (killed after the deadline)"
                     : st > 128 ? "crashed (killed by a signal)"
                                : "failed");
        bad = 1;
      }
    }
    for (int c = 0; c < C_N; c++) rel_kill_reap(kid[c]);
    rel_cleanup_all();
    if (bad) return;
    CHECK_GT(atomic_load(&SH->ops[C_PROD]), 0);
    CHECK_GT(atomic_load(&SH->writes), 0);
  }
}

/*
 * Opening a segment whose header is corrupt says which field is bad.
 * Regression test: errors.c used to format into the thread-local errmsg
 * buffer while callers passed shmx_errmsg() -- that same buffer -- as a %s
 * argument (overlapping vsnprintf); the field name was lost. Fixed in the
 * core by formatting through a scratch buffer.
 */
TEST(corrupt_header_detail_names_field) {
  const char *name = rel_name("badhdr");
  shmx_server_config cfg;
  rel_config(&cfg, 0, 1);
  shmx_server *srv = NULL;
  CHECK_OK(shmx_server_create(name, &cfg, &srv));
  char path[160];
  snprintf(path, sizeof path, "/dev/shm/%s%s", SHMX_SEGMENT_PREFIX, name);
  int fd = open(path, O_RDWR);
  uint64_t bad = 0x1122334455667788ull;
  int wrote = fd >= 0 && pwrite(fd, &bad, 8, 0) == 8; /* shmx__hdr.magic */
  if (fd >= 0) close(fd);
  shmx_client *cl = NULL;
  int rc = shmx_client_open(name, &cl);
  char msg[512];
  snprintf(msg, sizeof msg, "%s", shmx_errmsg());
  shmx_client_close(cl);
  shmx_server_destroy(srv);
  CHECK(wrote);
  CHECK_ERR(rc, SHMX_E_CORRUPT);
  printf("# detail: %s\n", msg);
  if (!strstr(msg, "magic")) HARNESS_FAIL("detail lost the field: \"%s\"", msg);
}

int main(void) {
  SH = rel_shared(sizeof *SH);
  (void)rel_seed();
  RUN(scribbler_vs_everyone);
  RUN(corrupt_header_detail_names_field);
  rel_cleanup_all();
  return harness_done();
}

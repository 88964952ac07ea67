/* Producer and readers in separate processes: data integrity, wait/wake,
 * producer killed mid-frame, readers killed, restart, pins and expiry,
 * control rings, reaping, full reader slots, corrupted segments, checksum. */
#include <fcntl.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <stdalign.h>

#include "harness.h"
#include "format.h"
#include "internal.h"

#define PAT_BYTES 4096

static shmx_stream_spec specs[2] = {
    {1, "id", SHMX_DT_U64, 1, SHMX_LAYOUT_SOA_SCALAR, 8, NULL, 0},
    {2, "pat", SHMX_DT_U8, 1, SHMX_LAYOUT_SOA_SCALAR, 1, NULL, 0},
};

static shmx_server *mk(const char *name, uint32_t slots, uint32_t readers,
                       uint64_t ring, uint32_t flags) {
  shmx_server_config c;
  shmx_server_config_init(&c);
  c.slots = slots;
  c.reader_slots = readers;
  c.control_per_reader = ring;
  c.flags = flags;
  c.streams = specs;
  c.n_streams = 2;
  shmx_server *s = NULL;
  if (shmx_server_create(name, &c, &s)) fprintf(stderr, "%s\n", shmx_errmsg());
  return s;
}

static void fill(uint8_t *p, uint64_t id, size_t n) {
  for (size_t i = 0; i < n; i++) p[i] = (uint8_t)(id * 31 + i);
}

static int pub(shmx_server *s, uint64_t id) {
  void *p;
  int rc;
  if ((rc = shmx_server_begin(s))) return rc;
  if ((rc = shmx_server_append(s, 1, &id, 8, 1))) return rc;
  if ((rc = shmx_server_reserve(s, 2, PAT_BYTES, &p))) return rc;
  fill(p, id, PAT_BYTES);
  return shmx_server_publish(s, (double)id, NULL);
}

/* Verify a frame's bytes; 0 if consistent. */
static int verify(const shmx_frame *f) {
  uint64_t id;
  if (f->tlv_count != 2 || f->streams[0].bytes != 8) return 1;
  memcpy(&id, f->streams[0].data, 8);
  if (id != f->frame_id) return 2;
  uint8_t want[PAT_BYTES];
  fill(want, id, PAT_BYTES);
  return memcmp(want, f->streams[1].data, PAT_BYTES) ? 3 : 0;
}

static const char *g_name;

/* Map a channel's segment read-write, as a hostile or curious process would. */
static void *map_seg(const char *name, size_t *len) {
  char p[300];
  snprintf(p, sizeof p, "/shmx.%s", name);
  int fd = shm_open(p, O_RDWR, 0);
  if (fd < 0) return NULL;
  struct stat st;
  if (fstat(fd, &st) < 0) return NULL;
  void *m = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  *len = (size_t)st.st_size;
  return m == MAP_FAILED ? NULL : m;
}
static int g_pipe[2];

/* Reader child: in-order + latest + wait reads (modes 0-2), or copies of
 * the latest frame (mode 3), until the channel closes; exit 0 only if every
 * accepted frame verified and ids increased. */
static int reader_child(void *arg) {
  static alignas(64) uint8_t copy[8192];
  int mode = *(int *)arg;
  shmx_client *c;
  if (shmx_client_open(g_name, &c)) return 10;
  char b = 'r';
  if (write(g_pipe[1], &b, 1) != 1) return 11;
  uint64_t last = 0, got = 0;
  for (;;) {
    shmx_frame f;
    int rc = mode == 0   ? shmx_client_wait(c, &f, 2000000000, 1)
             : mode == 1 ? shmx_client_wait(c, &f, 2000000000, 0)
             : mode == 2 ? shmx_client_latest(c, &f)
                         : shmx_client_copy_latest(c, copy, sizeof copy, &f);
    if (rc == SHMX_E_CLOSED) break;
    if (rc == SHMX_E_NOFRAME) continue;
    /* BUSY is the contract's "try again": with 3 slots and 3 readers every
     * slot can be pinned, the producer must overwrite pinned slots, and on
     * an overloaded machine a reader can lose the race many times running. */
    if (rc == SHMX_E_BUSY) continue;
    if (rc) {
      fprintf(stderr, "reader mode %d: %s (%s)\n", mode, shmx_err_name(rc),
              shmx_errmsg());
      return 12;
    }
    /* With 3 slots and 3 readers every slot may be pinned, so the producer
     * may be forced to overwrite a held frame: then shmx_frame_valid() must
     * say so. A mismatch on a still-valid frame is a torn frame. */
    if (verify(&f) && shmx_frame_valid(c, &f)) return 13;
    if (mode == 3 && (verify(&f) || !shmx_frame_valid(c, &f))) return 16; /* a copy never tears */
    if (f.frame_id <= last && mode < 2) return 14;
    if (f.frame_id < last) return 17;
    last = f.frame_id;
    got++;
    shmx_frame_release(c, &f);
  }
  shmx_client_close(c);
  return got > 0 ? 0 : 15;
}

TEST(cross_process_integrity) {
  g_name = harness_name("xp");
  shmx_server *s = mk(g_name, 3, 8, 4096, 0);
  CHECK(s);
  CHECK_EQ(pipe(g_pipe), 0);
  int modes[4] = {0, 1, 2, 3};
  pid_t kids[4];
  for (int i = 0; i < 4; i++) kids[i] = harness_spawn(reader_child, &modes[i]);
  char b;
  for (int i = 0; i < 4; i++) CHECK_EQ(read(g_pipe[0], &b, 1), 1);
  for (uint64_t id = 1; id <= 20000; id++) CHECK_OK(pub(s, id));
  shmx_server_destroy(s);
  for (int i = 0; i < 4; i++) CHECK_EQ(harness_wait(kids[i], 20000), 0);
  close(g_pipe[0]);
  close(g_pipe[1]);
}

/* Wait wakes on publish and on close; a poll (timeout 0) times out. */
static int waiter_child(void *arg) {
  (void)arg;
  shmx_client *c;
  if (shmx_client_open(g_name, &c)) return 10;
  char b = 'r';
  if (write(g_pipe[1], &b, 1) != 1) return 11;
  shmx_frame f;
  if (shmx_client_wait(c, &f, 0, 0) != SHMX_E_TIMEOUT) return 12;
  if (shmx_client_wait(c, &f, 10000000000ll, 0) != 0) return 13;
  if (f.frame_id != 1) return 14;
  shmx_frame_release(c, &f);
  int rc = shmx_client_wait(c, &f, 10000000000ll, 0);
  shmx_client_close(c);
  return rc == SHMX_E_CLOSED ? 0 : 15;
}

TEST(wait_wakes_on_publish_and_close) {
  g_name = harness_name("wake");
  shmx_server *s = mk(g_name, 3, 4, 4096, 0);
  CHECK(s);
  CHECK_EQ(pipe(g_pipe), 0);
  pid_t k = harness_spawn(waiter_child, NULL);
  char b;
  CHECK_EQ(read(g_pipe[0], &b, 1), 1);
  /* Publish once the reader is blocked in the futex (counted, and it
   * asked for a wake-up: format 2.2). */
  size_t len;
  struct shmx__hdr *h = map_seg(g_name, &len);
  CHECK(h);
  CHECK(WAIT_UNTIL(atomic_load(&h->sleepers) > 0, 5000));
  CHECK_EQ(atomic_load(&h->wake_armed), 1);
  CHECK_EQ(atomic_load(&h->waiters), 0);
  CHECK_OK(pub(s, 1));
  shmx_reader_info ri[4];
  CHECK(WAIT_UNTIL((shmx_server_readers(s, ri, 4), ri[0].last_frame_seen == 1), 5000));
  CHECK(WAIT_UNTIL(atomic_load(&h->sleepers) > 0, 5000));
  munmap(h, len);
  shmx_server_destroy(s);
  CHECK_EQ(harness_wait(k, 10000), 0);
  close(g_pipe[0]);
  close(g_pipe[1]);
}

/* A reader killed while blocked in wait stays counted in `sleepers` until
 * it is reaped; it had asked for one wake-up, so it costs later publishes
 * at most one system call (not one each, as format 2.1's count did). */
static int sleeper_child(void *arg) {
  (void)arg;
  shmx_client *c;
  if (shmx_client_open(g_name, &c)) return 10;
  shmx_frame f;
  shmx_client_wait(c, &f, 60000000000ll, 0);
  return 11; /* killed before */
}

TEST(reader_killed_in_wait_is_reaped) {
  g_name = harness_name("kwait");
  shmx_server *s = mk(g_name, 3, 4, 4096, 0);
  CHECK(s);
  size_t len;
  struct shmx__hdr *h = map_seg(g_name, &len);
  CHECK(h);
  pid_t k = harness_spawn(sleeper_child, NULL);
  CHECK(WAIT_UNTIL(atomic_load(&h->sleepers) == 1, 5000));
  kill(k, SIGKILL);
  CHECK_EQ(harness_wait(k, 5000), 128 + SIGKILL);
  CHECK_EQ(atomic_load(&h->sleepers), 1); /* still counted */
  CHECK_OK(pub(s, 100));
  CHECK_EQ(atomic_load(&h->wake_armed), 0); /* its one wake-up was spent */
  for (uint64_t id = 101; id < 200; id++) CHECK_OK(pub(s, id));
  CHECK_EQ(atomic_load(&h->wake_armed), 0);
  CHECK_EQ(shmx_server_reap(s, 0, UINT64_MAX / 2), 1); /* its process is gone */
  CHECK_EQ(atomic_load(&h->sleepers), 0);
  shmx_header_info hi;
  CHECK_OK(shmx_server_header(s, &hi));
  CHECK_EQ(hi.readers_connected, 0);
  CHECK_EQ(hi.waiters, 0);
  munmap(h, len);
  shmx_server_destroy(s);
}

/* A reader of a format 2.0/2.1 library waits the old way: counted in
 * `waiters` (its slot's waiting = 1), futex on wake_word, no wake request.
 * A 2.2 producer must still wake it at once, and when it is killed in the
 * wait, publishing alone reaps it (the old count costs a system call per
 * publish until then). The old protocol is replayed here on a real slot. */
static struct shmx__reader *my_slot(shmx_client *c, struct shmx__hdr *h) {
  uint8_t *base = (uint8_t *)h;
  for (uint32_t i = 0; i < h->reader_slots; i++) {
    struct shmx__reader *r = (struct shmx__reader *)(base + h->readers_off) + i;
    if (atomic_load(&r->owner) == shmx_client_reader_id(c)) return r;
  }
  return NULL;
}

/* A reader of this library on a segment whose header says format 2.1 (a
 * 2.1 producer) waits the 2.1 way: counted in `waiters`, no wake request. */
TEST(reader_of_2_1_segment_waits_the_old_way) {
  g_name = harness_name("w21");
  shmx_server *s = mk(g_name, 3, 4, 4096, 0);
  CHECK(s);
  size_t len;
  struct shmx__hdr *h = map_seg(g_name, &len);
  CHECK(h);
  h->version_minor = 1; /* before the reader attaches: it reads it once */
  CHECK_EQ(pipe(g_pipe), 0);
  pid_t k = harness_spawn(waiter_child, NULL);
  char b;
  CHECK_EQ(read(g_pipe[0], &b, 1), 1);
  CHECK(WAIT_UNTIL(atomic_load(&h->waiters) == 1, 5000));
  CHECK_EQ(atomic_load(&h->sleepers), 0);
  CHECK_EQ(atomic_load(&h->wake_armed), 0);
  CHECK_OK(pub(s, 1));
  shmx_reader_info ri[4];
  CHECK(WAIT_UNTIL((shmx_server_readers(s, ri, 4), ri[0].last_frame_seen == 1), 5000));
  h->version_minor = SHMX_FORMAT_MINOR;
  munmap(h, len);
  shmx_server_destroy(s);
  CHECK_EQ(harness_wait(k, 10000), 0);
  close(g_pipe[0]);
  close(g_pipe[1]);
}

/* 0 once pid sleeps in the kernel (state S in /proc/pid/stat), -1 after 5 s. */
static int wait_asleep(pid_t pid) {
  uint64_t end = harness_now_ms() + 5000;
  while (harness_now_ms() < end) {
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f) fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (p && p[1] == ' ' && p[2] == 'S') return 0;
    usleep(1000);
  }
  return -1;
}

static int legacy_waiter_child(void *arg) {
  int die = arg != NULL;
  shmx_client *c;
  if (shmx_client_open(g_name, &c)) return 10;
  size_t len;
  struct shmx__hdr *h = map_seg(g_name, &len);
  struct shmx__reader *r = h ? my_slot(c, h) : NULL;
  if (!r) return 11;
  atomic_fetch_add(&h->waiters, 1);
  atomic_store(&r->waiting, 1);
  uint32_t w = atomic_load(&h->wake_word);
  uint64_t t0 = shmx_now_ns();
  if (atomic_load(&h->frame_seq) == 0) shmx__futex_wait(NULL, &h->wake_word, w, 20000000000ll);
  if (die) pause();
  if (atomic_exchange(&r->waiting, 0)) atomic_fetch_sub(&h->waiters, 1);
  int slow = shmx_now_ns() - t0 > 15000000000ull; /* woken by the timeout */
  shmx_client_close(c);
  return slow ? 12 : 0;
}

TEST(legacy_waiter_woken_and_reaped) {
  g_name = harness_name("lwait");
  shmx_server *s = mk(g_name, 3, 4, 4096, 0);
  CHECK(s);
  size_t len;
  struct shmx__hdr *h = map_seg(g_name, &len);
  CHECK(h);
  pid_t k = harness_spawn(legacy_waiter_child, NULL);
  CHECK(WAIT_UNTIL(atomic_load(&h->waiters) == 1, 5000));
  CHECK_OK(wait_asleep(k));
  CHECK_OK(pub(s, 1));
  CHECK_EQ(harness_wait(k, 10000), 0);
  CHECK_EQ(atomic_load(&h->waiters), 0);
  /* killed while counted the old way: publishing reaps it */
  uint64_t id = 2;
  k = harness_spawn(legacy_waiter_child, (void *)1);
  CHECK(WAIT_UNTIL(atomic_load(&h->waiters) == 1, 5000));
  kill(k, SIGKILL);
  CHECK_EQ(harness_wait(k, 5000), 128 + SIGKILL);
  CHECK(WAIT_UNTIL((pub(s, id++), atomic_load(&h->waiters) == 0), 5000));
  munmap(h, len);
  shmx_server_destroy(s);
}

/* Producer killed mid-frame: no reader sees the partial frame, readers
 * detect the dead owner, a new producer takes the name, status says
 * RESTARTED. */
static int producer_dies_midframe(void *arg) {
  (void)arg;
  shmx_server *s = mk(g_name, 3, 4, 4096, 0);
  if (!s) return 10;
  if (pub(s, 1)) return 11;
  uint64_t id = 2;
  void *p;
  shmx_server_begin(s);
  shmx_server_append(s, 1, &id, 8, 1);
  shmx_server_reserve(s, 2, PAT_BYTES, &p);
  memset(p, 0xEE, PAT_BYTES / 2); /* half written */
  char b = 'w';
  if (write(g_pipe[1], &b, 1) != 1) return 12;
  pause();
  return 0;
}

TEST(producer_killed_mid_frame) {
  g_name = harness_name("kill");
  CHECK_EQ(pipe(g_pipe), 0);
  pid_t p = harness_spawn(producer_dies_midframe, NULL);
  char b;
  CHECK_EQ(read(g_pipe[0], &b, 1), 1);
  shmx_client *c;
  CHECK_OK(shmx_client_open(g_name, &c));
  kill(p, SIGKILL);
  CHECK_EQ(harness_wait(p, 5000), 128 + SIGKILL);
  shmx_frame f;
  /* The complete frame 1 is still readable; frame 2 never appears. */
  CHECK_OK(shmx_client_latest(c, &f));
  CHECK_EQ(f.frame_id, 1);
  CHECK_EQ(verify(&f), 0);
  shmx_frame_release(c, &f);
  CHECK_ERR(shmx_client_wait(c, &f, 5000000000ll, 1), SHMX_E_DEAD);
  CHECK_ERR(shmx_client_status(c), SHMX_E_DEAD);
  shmx_inspector *in;
  CHECK_OK(shmx_inspector_open(g_name, &in));
  shmx_slot_info si[3];
  CHECK_EQ(shmx_inspector_slots(in, si, 3), 3);
  int writing = 0;
  for (int i = 0; i < 3; i++) writing += si[i].state == SHMX_SLOT_WRITING;
  CHECK_EQ(writing, 1);
  shmx_header_info hi;
  CHECK_OK(shmx_inspector_header(in, &hi));
  CHECK_EQ(hi.owner_alive, 0);
  shmx_inspector_close(in);
  /* A new producer takes the name; the old reader learns it restarted. */
  shmx_server *s2 = mk(g_name, 3, 4, 4096, 0);
  CHECK(s2);
  CHECK_ERR(shmx_client_status(c), SHMX_E_RESTARTED);
  shmx_client_close(c);
  CHECK_OK(shmx_client_open(g_name, &c));
  CHECK_OK(pub(s2, 1));
  CHECK_OK(shmx_client_latest(c, &f));
  CHECK_EQ(verify(&f), 0);
  shmx_frame_release(c, &f);
  shmx_client_close(c);
  shmx_server_destroy(s2);
  close(g_pipe[0]);
  close(g_pipe[1]);
}

/* Readers killed while holding pins and mid-life: the producer reclaims
 * their slots and pins, and keeps using every frame slot. */
static int reader_pins_then_waits(void *arg) {
  (void)arg;
  shmx_client *c;
  if (shmx_client_open(g_name, &c)) return 10;
  shmx_frame f;
  if (shmx_client_latest(c, &f)) return 11;
  char b = 'p';
  if (write(g_pipe[1], &b, 1) != 1) return 12;
  pause();
  return 0;
}

TEST(dead_readers_reclaimed) {
  g_name = harness_name("dr");
  shmx_server *s = mk(g_name, 3, 2, 4096, 0);
  CHECK(s);
  CHECK_OK(pub(s, 1));
  CHECK_EQ(pipe(g_pipe), 0);
  pid_t k[2];
  char b;
  for (int i = 0; i < 2; i++) {
    k[i] = harness_spawn(reader_pins_then_waits, NULL);
    CHECK_EQ(read(g_pipe[0], &b, 1), 1);
  }
  shmx_client *c;
  CHECK_ERR(shmx_client_open(g_name, &c), SHMX_E_FULL);
  shmx_header_info hi;
  CHECK_OK(shmx_server_header(s, &hi));
  CHECK_EQ(hi.readers_connected, 2);
  for (int i = 0; i < 2; i++) {
    kill(k[i], SIGKILL);
    CHECK_EQ(harness_wait(k[i], 5000), 128 + SIGKILL);
  }
  CHECK_EQ(shmx_server_reap(s, 0, 0), 2);
  CHECK_OK(shmx_server_header(s, &hi));
  CHECK_EQ(hi.readers_connected, 0);
  shmx_inspector *in;
  CHECK_OK(shmx_inspector_open(g_name, &in));
  shmx_slot_info si[3];
  CHECK_EQ(shmx_inspector_slots(in, si, 3), 3);
  for (int i = 0; i < 3; i++) CHECK_EQ(si[i].pins, 0);
  shmx_inspector_close(in);
  CHECK_OK(shmx_client_open(g_name, &c));
  CHECK_GT(shmx_client_reader_id(c), 2); /* ids are never reused */
  shmx_client_close(c);
  shmx_server_destroy(s);
  close(g_pipe[0]);
  close(g_pipe[1]);
}

/* Pinning: held frames are never overwritten while a free slot exists; when
 * every slot is pinned the producer still publishes and holders see their
 * frame expire. */
TEST(pins_and_expiry) {
  const char *n = harness_name("pin");
  shmx_server *s = mk(n, 3, 4, 4096, 0);
  CHECK(s);
  shmx_client *c;
  CHECK_OK(shmx_client_open(n, &c));
  shmx_frame a, b2;
  CHECK_OK(pub(s, 1));
  CHECK_OK(shmx_client_latest(c, &a));
  for (uint64_t i = 2; i <= 50; i++) CHECK_OK(pub(s, i));
  CHECK(shmx_frame_valid(c, &a));
  CHECK_EQ(verify(&a), 0);
  CHECK_OK(shmx_client_latest(c, &b2));
  CHECK_EQ(b2.frame_id, 50);
  /* Now two of three slots are pinned (1 and 50); 51 goes to the third,
   * 52 must overwrite the pinned oldest (frame 1) since 51 is latest. */
  CHECK_OK(pub(s, 51));
  CHECK(shmx_frame_valid(c, &a));
  CHECK_OK(pub(s, 52));
  CHECK(!shmx_frame_valid(c, &a));
  CHECK(shmx_frame_valid(c, &b2));
  CHECK_EQ(verify(&b2), 0);
  shmx_frame_release(c, &a);
  shmx_frame_release(c, &b2);
  shmx_client_close(c);
  shmx_server_destroy(s);
}

TEST(control_rings) {
  const char *n = harness_name("ctl");
  shmx_server *s = mk(n, 3, 4, 64, 0);
  CHECK(s);
  shmx_client *c1, *c2;
  CHECK_OK(shmx_client_open(n, &c1));
  CHECK_OK(shmx_client_open(n, &c2));
  CHECK_OK(shmx_client_send(c1, 7, "hello", 5));
  CHECK_OK(shmx_client_send(c1, 8, NULL, 0));
  CHECK_OK(shmx_client_send(c2, 9, "x", 1));
  uint8_t big[100] = {0};
  CHECK_ERR(shmx_client_send(c1, 1, big, 100), SHMX_E_ARG);
  /* 64-byte ring: 16 + 8 used; 40 bytes fit one 32-byte payload message. */
  CHECK_OK(shmx_client_send(c1, 10, big, 32));
  CHECK_ERR(shmx_client_send(c1, 11, big, 8), SHMX_E_RINGFULL);
  shmx_control_msg m[8];
  int bad = -1;
  int n_ = shmx_server_poll_control(s, m, 8, &bad);
  CHECK_EQ(n_, 4);
  CHECK_EQ(bad, 0);
  int seen7 = -1, seen8 = -1, seen10 = -1;
  for (int i = 0; i < n_; i++) {
    if (m[i].type == 7) {
      seen7 = i;
      CHECK_EQ(m[i].len, 5);
      CHECK_MEM(m[i].data, "hello", 5);
      CHECK_EQ(m[i].reader_id, shmx_client_reader_id(c1));
    }
    if (m[i].type == 8) seen8 = i;
    if (m[i].type == 10) seen10 = i;
    if (m[i].type == 9) CHECK_EQ(m[i].reader_id, shmx_client_reader_id(c2));
  }
  CHECK(seen7 >= 0 && seen7 < seen8 && seen8 < seen10);
  /* Wrap-around: many messages through the small ring. */
  for (int k = 0; k < 100; k++) {
    uint32_t v = (uint32_t)k;
    CHECK_OK(shmx_client_send(c1, 100, &v, 4));
    CHECK_EQ(shmx_server_poll_control(s, m, 8, NULL), 1);
    CHECK_EQ(m[0].len, 4);
    CHECK_MEM(m[0].data, &v, 4);
  }
  shmx_client_close(c1);
  shmx_client_close(c2);
  shmx_server_destroy(s);
}

/* A hostile reader writes garbage into its ring: the producer survives,
 * resets that ring, reports it, and keeps serving the others. */
TEST(hostile_ring) {
  const char *n = harness_name("hring");
  shmx_server *s = mk(n, 3, 4, 256, 0);
  CHECK(s);
  shmx_client *c1, *c2;
  CHECK_OK(shmx_client_open(n, &c1));
  CHECK_OK(shmx_client_open(n, &c2));
  size_t mlen;
  uint8_t *m = map_seg(n, &mlen);
  CHECK(m != NULL);
  struct shmx__hdr *h = (struct shmx__hdr *)m;
  struct shmx__reader *r0 = (struct shmx__reader *)(m + h->readers_off);
  uint8_t *ring0 = m + h->control_off;
  uint64_t cases[][2] = {{16, 0}, {1ull << 40, 0}, {8, 0}, {3, 0}};
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    struct shmx__cmsg bogus = {0xFFFFFFF0u, 1};
    memcpy(ring0, &bogus, sizeof bogus);
    atomic_store(&r0->ring_tail, cases[k][1]);
    atomic_store(&r0->ring_head, cases[k][0]);
    CHECK_OK(shmx_client_send(c2, 5, "ok", 2));
    shmx_control_msg msgs[4];
    int bad = 0;
    int got = shmx_server_poll_control(s, msgs, 4, &bad);
    CHECK_EQ(bad, 1);
    CHECK_EQ(got, 1);
    CHECK_EQ(msgs[0].type, 5);
    CHECK_EQ(atomic_load(&r0->ring_tail), atomic_load(&r0->ring_head));
  }
  munmap(m, mlen);
  shmx_client_close(c1);
  shmx_client_close(c2);
  shmx_server_destroy(s);
}

/* Reaping stale readers; a reaped reader that is alive finds out and never
 * shares its slot with the newcomer. */
TEST(reap_stale_and_reaped_reader) {
  const char *n = harness_name("reap");
  shmx_server *s = mk(n, 3, 1, 4096, 0);
  CHECK(s);
  shmx_client *old;
  CHECK_OK(shmx_client_open(n, &old));
  shmx_reader_info ri[1];
  CHECK_EQ(shmx_server_readers(s, ri, 1), 1);
  uint32_t gen0 = ri[0].generation;
  CHECK(ri[0].in_use);
  CHECK_EQ(ri[0].pid, getpid());
  CHECK_EQ(ri[0].alive, 1);
  /* Liveness is the reader's lock, not its pid: a pid that means nothing
   * here (another pid namespace, or reused) changes nothing. */
  size_t len;
  struct shmx__hdr *h = map_seg(n, &len);
  CHECK(h);
  struct shmx__reader *r0 = (struct shmx__reader *)((uint8_t *)h + h->readers_off);
  int32_t real_pid = r0->pid;
  r0->pid = 0x7ffffff0;
  CHECK_EQ(shmx_server_reap(s, 0, 0), 0);
  CHECK_EQ(shmx_server_readers(s, ri, 1), 1);
  CHECK_EQ(ri[0].alive, 1);
  r0->pid = real_pid;
  munmap(h, len);
  /* Not stale yet with a long timeout; stale with now far in the future. */
  CHECK_EQ(shmx_server_reap(s, 0, 60ull * 1000000000u), 0);
  CHECK_EQ(shmx_server_reap(s, shmx_now_ns() + 10ull * 1000000000u, 1000000000u), 1);
  CHECK_EQ(shmx_server_reap(s, shmx_now_ns() + 10ull * 1000000000u, 1000000000u), 0);
  shmx_client *nw;
  /* The newcomer takes the slot at once, though the reaped reader has not
   * noticed yet (it still holds its own lock identity). */
  CHECK_OK(shmx_client_open(n, &nw));
  shmx_frame f;
  CHECK_OK(pub(s, 1));
  CHECK_ERR(shmx_client_latest(old, &f), SHMX_E_REAPED);
  CHECK_ERR(shmx_client_send(old, 1, "x", 1), SHMX_E_REAPED);
  CHECK_ERR(shmx_client_status(old), SHMX_E_REAPED);
  CHECK_NE(shmx_client_reader_id(nw), shmx_client_reader_id(old));
  CHECK_EQ(shmx_server_readers(s, ri, 1), 1);
  CHECK_GT(ri[0].generation, gen0);
  CHECK_EQ(ri[0].alive, 1);
  CHECK_OK(shmx_client_latest(nw, &f));
  shmx_frame_release(nw, &f);
  shmx_client_close(old); /* must not free the newcomer's slot */
  CHECK_EQ(shmx_server_readers(s, ri, 1), 1);
  CHECK(ri[0].in_use);
  CHECK_EQ(ri[0].reader_id, shmx_client_reader_id(nw));
  shmx_client_close(nw);
  shmx_server_destroy(s);
}

/* Corrupted segments: open and read fail cleanly, never crash. */
TEST(corrupted_segment) {
  const char *n = harness_name("corr");
  shmx_server *s = mk(n, 3, 4, 4096, 0);
  CHECK(s);
  CHECK_OK(pub(s, 1));
  size_t mlen;
  uint8_t *m = map_seg(n, &mlen);
  CHECK(m != NULL);
  struct shmx__hdr *h = (struct shmx__hdr *)m;
  shmx_client *c;
  shmx_inspector *in;
  /* Header geometry lies: open refuses. */
  uint64_t saved = h->frames_off;
  h->frames_off = 1ull << 50;
  CHECK_ERR(shmx_client_open(n, &c), SHMX_E_CORRUPT);
  CHECK_ERR(shmx_inspector_open(n, &in), SHMX_E_CORRUPT);
  h->frames_off = saved;
  uint32_t sv = h->slots;
  h->slots = 100000;
  CHECK_ERR(shmx_client_open(n, &c), SHMX_E_CORRUPT);
  h->slots = sv;
  /* After open: record table lies about sizes. */
  CHECK_OK(shmx_client_open(n, &c));
  uint32_t ls = atomic_load(&h->latest_slot);
  struct shmx__slotdesc *d =
      (struct shmx__slotdesc *)(m + h->slotdesc_off + (uint64_t)ls * h->slotdesc_stride);
  struct shmx__tlv *t = (struct shmx__tlv *)(m + h->frames_off + ls * h->slot_bytes);
  uint64_t ob = t->bytes;
  t->bytes = UINT64_MAX - 10;
  shmx_frame f;
  CHECK_ERR(shmx_client_latest(c, &f), SHMX_E_CORRUPT);
  t->bytes = ob;
  uint64_t ou = d->used_bytes;
  d->used_bytes = UINT64_MAX;
  CHECK_ERR(shmx_client_latest(c, &f), SHMX_E_CORRUPT);
  d->used_bytes = ou;
  uint32_t ot = d->tlv_count;
  d->tlv_count = 1u << 30;
  CHECK_ERR(shmx_client_latest(c, &f), SHMX_E_CORRUPT);
  d->tlv_count = ot;
  atomic_store(&h->latest_slot, 77777);
  CHECK_ERR(shmx_client_latest(c, &f), SHMX_E_CORRUPT);
  atomic_store(&h->latest_slot, ls);
  /* Schema garbage: refresh fails cleanly, old schema kept. */
  uint64_t su = atomic_load(&h->static_used);
  atomic_store(&h->static_used, 1ull << 40);
  atomic_fetch_add(&h->static_gen, 1);
  CHECK_ERR(shmx_client_refresh(c), SHMX_E_CORRUPT);
  const shmx_stream_info *si;
  int ns;
  CHECK_OK(shmx_client_streams(c, &si, &ns));
  CHECK_EQ(ns, 2);
  atomic_store(&h->static_used, su);
  CHECK_EQ(shmx_client_refresh(c), 1);
  CHECK_OK(shmx_client_latest(c, &f));
  CHECK_EQ(verify(&f), 0);
  shmx_frame_release(c, &f);
  shmx_client_close(c);
  munmap(m, mlen);
  shmx_server_destroy(s);
}

TEST(checksum) {
  CHECK_EQ(shmx_version() > 0, 1);
  const char *n = harness_name("crc");
  shmx_server *s = mk(n, 3, 4, 4096, SHMX_CREATE_CRC32C);
  CHECK(s);
  shmx_client *c;
  CHECK_OK(shmx_client_open(n, &c));
  CHECK_OK(pub(s, 1));
  shmx_frame f;
  CHECK_OK(shmx_client_latest(c, &f));
  shmx_frame_release(c, &f);
  size_t mlen;
  uint8_t *m = map_seg(n, &mlen);
  CHECK(m != NULL);
  struct shmx__hdr *h = (struct shmx__hdr *)m;
  uint32_t ls = atomic_load(&h->latest_slot);
  m[h->frames_off + ls * h->slot_bytes + 64 + 64 + 100] ^= 1; /* flip a bit */
  CHECK_ERR(shmx_client_latest(c, &f), SHMX_E_CHECKSUM);
  static alignas(64) uint8_t copy[8192];
  CHECK_ERR(shmx_client_copy_latest(c, copy, sizeof copy, &f), SHMX_E_CHECKSUM);
  m[h->frames_off + ls * h->slot_bytes + 64 + 64 + 100] ^= 1; /* and back */
  CHECK_OK(shmx_client_copy_latest(c, copy, sizeof copy, &f));
  CHECK_EQ(verify(&f), 0);
  munmap(m, mlen);
  shmx_client_close(c);
  shmx_server_destroy(s);
}

TEST(schema_growth) {
  const char *n = harness_name("sch");
  shmx_server *s = mk(n, 3, 4, 4096, 0);
  CHECK(s);
  shmx_client *c;
  CHECK_OK(shmx_client_open(n, &c));
  CHECK_EQ(shmx_client_refresh(c), 0);
  shmx_stream_spec sp = {3, "temp", SHMX_DT_F32, 1, 0, 4, "C", 1};
  CHECK_OK(shmx_server_add_stream(s, &sp));
  CHECK_ERR(shmx_server_add_stream(s, &sp), SHMX_E_DUPLICATE);
  CHECK_OK(shmx_server_static_append(s, "meta", 4));
  CHECK_EQ(shmx_client_refresh(c), 1);
  const shmx_stream_info *si;
  int ns;
  CHECK_OK(shmx_client_streams(c, &si, &ns));
  CHECK_EQ(ns, 3);
  CHECK(strcmp(si[2].name, "temp") == 0);
  CHECK_EQ(si[2].extra_len, 1);
  CHECK_EQ(si[2].extra[0], 'C');
  const uint8_t *ud;
  uint32_t ul;
  CHECK_OK(shmx_client_static_user(c, 0, &ud, &ul));
  CHECK_EQ(ul, 4);
  CHECK_MEM(ud, "meta", 4);
  /* A frame with the new stream maps to its schema index. */
  float t = 21.5f;
  CHECK_OK(shmx_server_begin(s));
  CHECK_OK(shmx_server_append(s, 3, &t, 4, 1));
  CHECK_OK(shmx_server_publish(s, 0, NULL));
  shmx_frame f;
  CHECK_OK(shmx_client_latest(c, &f));
  CHECK_EQ(f.streams[0].index, 2);
  shmx_frame_release(c, &f);
  /* Fill the schema area: a clear capacity error. */
  int rc = 0;
  for (int k = 0; k < 1000 && rc == 0; k++) rc = shmx_server_static_append(s, "xxxxxxxxxxxxxxxx", 16);
  CHECK_EQ(rc, SHMX_E_CAPACITY);
  shmx_client_close(c);
  shmx_server_destroy(s);
}

/* A producer killed between publish's store of latest_slot (for its next
 * frame) and its store of frame_seq leaves latest_slot naming a slot that
 * does not hold frame_seq's frame. Made here by hand: latest readers must
 * still find frame_seq's frame (it is complete in its own slot), not give
 * SHMX_E_BUSY forever (seen once in the SIGKILL matrix under ASan). */
TEST(latest_slot_ahead_of_frame_seq) {
  const char *name = harness_name("ahead");
  shmx_server *srv = mk(name, 4, 4, 0, 0);
  CHECK(srv);
  CHECK_OK(pub(srv, 1));
  CHECK_OK(pub(srv, 2));
  char path[160];
  snprintf(path, sizeof path, "/dev/shm/%s%s", SHMX_SEGMENT_PREFIX, name);
  int fd = open(path, O_RDWR | O_CLOEXEC);
  CHECK_GE(fd, 0);
  struct shmx__hdr *h = mmap(NULL, SHMX__HDR_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  CHECK(h != MAP_FAILED);
  uint32_t s2 = atomic_load(&h->latest_slot);
  CHECK_EQ(atomic_load(&h->frame_seq), 2u);
  shmx_client *cl = NULL;
  CHECK_OK(shmx_client_open(name, &cl));
  /* point latest_slot at frame 1's slot (any slot but frame 2's) */
  uint32_t other = (s2 + 3) % 4;
  atomic_store(&h->latest_slot, other);
  shmx_frame f;
  CHECK_OK(shmx_client_latest(cl, &f));
  CHECK_EQ(f.frame_id, 2u);
  CHECK_EQ(verify(&f), 0);
  shmx_frame_release(cl, &f);
  static uint8_t buf[2 * PAT_BYTES];
  CHECK_OK(shmx_client_copy_latest(cl, buf, sizeof buf, &f));
  CHECK_EQ(f.frame_id, 2u);
  atomic_store(&h->latest_slot, s2);
  shmx_client_close(cl);
  munmap(h, SHMX__HDR_BYTES);
  shmx_server_destroy(srv);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  RUN(cross_process_integrity);
  RUN(wait_wakes_on_publish_and_close);
  RUN(reader_killed_in_wait_is_reaped);
  RUN(legacy_waiter_woken_and_reaped);
  RUN(reader_of_2_1_segment_waits_the_old_way);
  RUN(producer_killed_mid_frame);
  RUN(dead_readers_reclaimed);
  RUN(pins_and_expiry);
  RUN(control_rings);
  RUN(hostile_ring);
  RUN(reap_stale_and_reaped_reader);
  RUN(corrupted_segment);
  RUN(checksum);
  RUN(schema_growth);
  RUN(latest_slot_ahead_of_frame_seq);
  return harness_done();
}

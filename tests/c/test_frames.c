/* Frames: publish/read round trip, ids, errors, alignment, reserve, next,
 * pins, expiry, checksum, schema growth. Single process. */
#include <stdalign.h>
#ifndef _WIN32
#include <sys/resource.h>
#endif

#include "harness.h"
#include "internal.h"

static shmx_stream_spec specs[3] = {
    {1, "frame_id", SHMX_DT_U64, 1, SHMX_LAYOUT_SOA_SCALAR, 8, NULL, 0},
    {2, "pos", SHMX_DT_F32, 3, SHMX_LAYOUT_AOS_VECTOR, 12, "xyz", 3},
    {3, "img", SHMX_DT_U8, 1, SHMX_LAYOUT_SOA_SCALAR, 1, NULL, 0},
};

static shmx_server *mk(const char *name, uint32_t slots, uint32_t flags) {
  shmx_server_config c;
  shmx_server_config_init(&c);
  c.slots = slots;
  c.flags = flags;
  c.streams = specs;
  c.n_streams = 3;
  shmx_server *s = NULL;
  if (shmx_server_create(name, &c, &s) != 0)
    fprintf(stderr, "create: %s\n", shmx_errmsg());
  return s;
}

static int pub(shmx_server *s, uint64_t v, size_t img_bytes) {
  static uint8_t img[1 << 16];
  float pos[6] = {1, 2, 3, 4, 5, 6};
  memset(img, (int)(v & 0xff), img_bytes);
  int rc;
  if ((rc = shmx_server_begin(s))) return rc;
  if ((rc = shmx_server_append(s, 1, &v, 8, 1))) return rc;
  if ((rc = shmx_server_append(s, 2, pos, sizeof pos, 2))) return rc;
  if ((rc = shmx_server_append(s, 3, img, img_bytes, img_bytes))) return rc;
  return shmx_server_publish(s, (double)v * 0.5, NULL);
}

TEST(roundtrip) {
  const char *n = harness_name("rt");
  shmx_server *s = mk(n, 3, 0);
  CHECK(s);
  shmx_client *c;
  CHECK_OK(shmx_client_open(n, &c));
  shmx_frame f;
  CHECK_ERR(shmx_client_latest(c, &f), SHMX_E_NOFRAME);
  CHECK_OK(pub(s, 7, 1000));
  CHECK_OK(shmx_client_latest(c, &f));
  CHECK_EQ(f.frame_id, 1);
  CHECK_EQ(f.tlv_count, 3);
  CHECK_EQ(f.payload_bytes, 8 + 24 + 1000);
  CHECK(f.sim_time == 3.5);
  uint64_t v;
  memcpy(&v, f.streams[0].data, 8);
  CHECK_EQ(v, 7);
  CHECK_EQ(f.streams[1].elem_count, 2);
  CHECK_EQ(f.streams[2].bytes, 1000);
  for (int k = 0; k < 3; k++) CHECK_EQ((uintptr_t)f.streams[k].data % 64, 0);
  CHECK_EQ(f.streams[2].data[999], 7);
  CHECK(shmx_frame_valid(c, &f));
  shmx_frame_release(c, &f);
  CHECK_OK(pub(s, 8, 10));
  CHECK_OK(shmx_client_latest(c, &f));
  CHECK_EQ(f.frame_id, 2);
  shmx_frame_release(c, &f);
  shmx_client_close(c);
  shmx_server_destroy(s);
}

TEST(append_errors) {
  const char *n = harness_name("ae");
  shmx_server *s = mk(n, 3, 0);
  CHECK(s);
  uint64_t v = 1;
  CHECK_ERR(shmx_server_append(s, 1, &v, 8, 1), SHMX_E_STATE);
  CHECK_ERR(shmx_server_publish(s, 0, NULL), SHMX_E_STATE);
  CHECK_OK(shmx_server_begin(s));
  CHECK_ERR(shmx_server_begin(s), SHMX_E_STATE);
  CHECK_ERR(shmx_server_append(s, 99, &v, 8, 1), SHMX_E_STREAM);
  CHECK_ERR(shmx_server_append(s, 1, &v, 8, 2), SHMX_E_SIZE);
  static uint8_t big[70000];
  CHECK_ERR(shmx_server_append(s, 3, big, sizeof big, sizeof big), SHMX_E_CAPACITY);
  CHECK_OK(shmx_server_append(s, 1, &v, 8, 1));
  CHECK_ERR(shmx_server_append(s, 1, &v, 8, 1), SHMX_E_DUPLICATE);
  CHECK_OK(shmx_server_abort(s));
  shmx_header_info hi;
  CHECK_OK(shmx_server_header(s, &hi));
  CHECK_EQ(hi.frame_seq, 0);
  shmx_server_destroy(s);
}

TEST(next_in_order_and_drops) {
  const char *n = harness_name("nx");
  shmx_server *s = mk(n, 4, 0);
  CHECK(s);
  shmx_client *c;
  CHECK_OK(shmx_client_open(n, &c));
  shmx_frame f;
  for (uint64_t i = 1; i <= 2; i++) CHECK_OK(pub(s, i, 64));
  CHECK_OK(shmx_client_next(c, &f));
  CHECK_EQ(f.frame_id, 1);
  shmx_frame_release(c, &f);
  CHECK_OK(shmx_client_next(c, &f));
  CHECK_EQ(f.frame_id, 2);
  shmx_frame_release(c, &f);
  CHECK_ERR(shmx_client_next(c, &f), SHMX_E_NOFRAME);
  for (uint64_t i = 3; i <= 10; i++) CHECK_OK(pub(s, i, 64));
  CHECK_OK(shmx_client_next(c, &f));
  /* 4 slots hold the newest four frames, 7..10: 3..6 were dropped. */
  CHECK_EQ(f.frame_id, 7);
  CHECK_EQ(f.dropped, 4);
  shmx_frame_release(c, &f);
  shmx_client_close(c);
  shmx_server_destroy(s);
}

static long minflt(void) {
#ifdef _WIN32
  return 0;
#else
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_minflt;
#endif
}

/* The segment is pre-faulted at create: publishing touches no new page. */
TEST(prefaulted_publish) {
#ifdef _WIN32
  SKIP("counts minor faults with getrusage and MAP_POPULATE (Linux); Windows "
       "maps without pre-faulting");
#endif
  const char *n = harness_name("pf");
  shmx_stream_spec sp = {1, "blob", SHMX_DT_U8, 1, 0, 1, NULL, 0};
  shmx_server_config c;
  shmx_server_config_init(&c);
  c.frame_bytes_cap = 4u << 20;
  c.slots = 4;
  c.streams = &sp;
  c.n_streams = 1;
  shmx_server *s;
  CHECK_OK(shmx_server_create(n, &c, &s));
  static uint8_t src[4u << 20];
  memset(src, 1, sizeof src); /* fault our own source buffer in first */
  long before = minflt();
  for (int i = 0; i < 16; i++) {
    CHECK_OK(shmx_server_begin(s));
    CHECK_OK(shmx_server_append(s, 1, src, sizeof src, sizeof src));
    CHECK_OK(shmx_server_publish(s, 0, NULL));
  }
  long pre = minflt() - before;
  shmx_server_destroy(s);
  /* With NO_PREFAULT the same run faults every page of the 4 slots. */
  c.flags = SHMX_CREATE_NO_PREFAULT;
  CHECK_OK(shmx_server_create(n, &c, &s));
  before = minflt();
  for (int i = 0; i < 16; i++) {
    CHECK_OK(shmx_server_begin(s));
    CHECK_OK(shmx_server_append(s, 1, src, sizeof src, sizeof src));
    CHECK_OK(shmx_server_publish(s, 0, NULL));
  }
  long lazy = minflt() - before;
  shmx_server_destroy(s);
  /* 4 slots x 4 MiB = 4096 pages fault lazily; pre-faulted, (almost) none
   * do. ASan adds shadow-memory faults (1/8 of the bytes copied) to the
   * first run, hence the relative bound in sanitized builds. */
  CHECK_GE(lazy, 4000);
  CHECK_LT(pre, lazy / 4);
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
  CHECK_LT(pre, 16);
#endif
}

/* Pins shown by the inspector for the slot holding frame fid (-1: none). */
static int pins_of(shmx_inspector *in, uint64_t fid) {
  shmx_slot_info si[8];
  int n = shmx_inspector_slots(in, si, 8);
  for (int i = 0; i < n; i++)
    if (si[i].state == SHMX_SLOT_PUBLISHED && si[i].frame_id == fid) return (int)si[i].pins;
  return -1;
}

/* latest() of a frame the client already holds (a polling reader) takes the
 * short path: same frame, same pointers, counted as one more hold of the
 * same pin; the slot stays pinned until every hold is released, and a
 * forced overwrite is still seen. */
TEST(relatest_held_frame) {
  const char *n = harness_name("rl");
  shmx_server *s = mk(n, 3, 0);
  CHECK(s);
  shmx_client *c;
  shmx_inspector *in;
  CHECK_OK(shmx_client_open(n, &c));
  CHECK_OK(shmx_inspector_open(n, &in));
  shmx_frame a, b, x, y;
  CHECK_OK(pub(s, 1, 100));
  CHECK_OK(shmx_client_latest(c, &a));
  CHECK_OK(shmx_client_latest(c, &b));
  CHECK_EQ(a.frame_id, 1);
  CHECK_EQ(b.frame_id, 1);
  CHECK(a.streams[2].data == b.streams[2].data);
  CHECK_EQ(b.tlv_count, 3);
  CHECK_EQ(pins_of(in, 1), 1);
  shmx_frame_release(c, &a);
  CHECK_EQ(pins_of(in, 1), 1); /* b still holds it */
  CHECK(shmx_frame_valid(c, &b));
  /* frames 2 and 3 take the two unpinned slots; frame 1 stays intact */
  CHECK_OK(pub(s, 2, 100));
  CHECK_OK(pub(s, 3, 100));
  CHECK(shmx_frame_valid(c, &b));
  CHECK_EQ(b.streams[2].data[99], 1);
  shmx_frame_release(c, &b);
  CHECK_EQ(pins_of(in, 1), 0);
  /* frame 1 is unpinned now: the next publish reuses its slot */
  CHECK_OK(pub(s, 4, 100));
  CHECK_EQ(pins_of(in, 1), -1);
  /* hold 4 twice and 5 once: 6 takes the free slot, then every slot but
   * the latest is pinned and 7 must overwrite the oldest, frame 4. Both
   * holds of it expire, and latest() reads frame 7 in full. */
  CHECK_OK(shmx_client_latest(c, &x));
  CHECK_OK(shmx_client_latest(c, &y));
  CHECK_EQ(y.frame_id, 4);
  CHECK_EQ(pins_of(in, 4), 1);
  shmx_frame z;
  CHECK_OK(pub(s, 5, 100));
  CHECK_OK(shmx_client_latest(c, &z));
  CHECK_EQ(z.frame_id, 5);
  CHECK_OK(pub(s, 6, 100));
  CHECK(shmx_frame_valid(c, &x));
  CHECK_OK(pub(s, 7, 100));
  CHECK(!shmx_frame_valid(c, &x));
  CHECK(!shmx_frame_valid(c, &y));
  CHECK(shmx_frame_valid(c, &z));
  shmx_frame f;
  CHECK_OK(shmx_client_latest(c, &f));
  CHECK_EQ(f.frame_id, 7);
  uint64_t v;
  memcpy(&v, f.streams[0].data, 8);
  CHECK_EQ(v, 7);
  shmx_frame_release(c, &f);
  shmx_frame_release(c, &x);
  shmx_frame_release(c, &y);
  shmx_frame_release(c, &z);
  /* a schema append between two reads of one frame: the second read
   * parses it again against the new schema */
  CHECK_OK(shmx_client_latest(c, &a));
  shmx_stream_spec extra = {9, "extra", SHMX_DT_U8, 1, SHMX_LAYOUT_SOA_SCALAR, 1, NULL, 0};
  CHECK_OK(shmx_server_add_stream(s, &extra));
  CHECK_OK(shmx_client_latest(c, &b));
  CHECK_EQ(b.frame_id, 7);
  CHECK_EQ(b.streams[2].index, 2);
  shmx_frame_release(c, &a);
  shmx_frame_release(c, &b);
  CHECK_EQ(pins_of(in, 7), 0);
  shmx_inspector_close(in);
  shmx_client_close(c);
  shmx_server_destroy(s);
}

/* copy_latest: the newest frame copied out under the seqlock, no pin. */
TEST(copy_latest) {
  const char *n = harness_name("cp");
  shmx_server *s = mk(n, 3, 0);
  CHECK(s);
  shmx_client *c;
  shmx_inspector *in;
  CHECK_OK(shmx_client_open(n, &c));
  CHECK_OK(shmx_inspector_open(n, &in));
  static alignas(64) uint8_t buf[4096];
  shmx_frame f, g;
  CHECK_ERR(shmx_client_copy_latest(c, buf, sizeof buf, &f), SHMX_E_NOFRAME);
  CHECK_ERR(shmx_client_copy_latest(c, NULL, sizeof buf, &f), SHMX_E_ARG);
  CHECK_ERR(shmx_client_copy_latest(c, buf, sizeof buf, NULL), SHMX_E_ARG);
  CHECK_OK(pub(s, 5, 1000));
  /* 3 records of 64 B headers; data 8 -> 64, 24 -> 64, 1000 -> 1024 */
  memset(buf, 0xAB, sizeof buf);
  CHECK_ERR(shmx_client_copy_latest(c, buf, 64 * 3 + 64 + 64 + 1024 - 1, &f), SHMX_E_CAPACITY);
  CHECK(strstr(shmx_errmsg(), "needs 1344 bytes") != NULL);
  CHECK_EQ(buf[0], 0xAB); /* nothing copied */
  CHECK_OK(shmx_client_copy_latest(c, buf, 64 * 3 + 64 + 64 + 1024, &f));
  CHECK_EQ(f.frame_id, 1);
  CHECK_EQ(f.tlv_count, 3);
  CHECK(f.sim_time == 2.5);
  CHECK_EQ(f.payload_bytes, 8 + 24 + 1000);
  for (int k = 0; k < 3; k++) {
    CHECK(f.streams[k].data >= buf && f.streams[k].data + f.streams[k].bytes <= buf + sizeof buf);
    CHECK_EQ((uintptr_t)f.streams[k].data % 64, 0);
  }
  CHECK_EQ(f.streams[1].elem_count, 2);
  CHECK_EQ(f.streams[1].index, 1);
  uint64_t v;
  memcpy(&v, f.streams[0].data, 8);
  CHECK_EQ(v, 5);
  CHECK_EQ(f.streams[2].data[999], 5);
  CHECK(shmx_frame_valid(c, &f));
  CHECK_EQ(pins_of(in, 1), 0); /* not pinned */
  /* the same frame by latest() matches byte for byte */
  CHECK_OK(shmx_client_latest(c, &g));
  CHECK_EQ(memcmp(g.streams[2].data, f.streams[2].data, 1000), 0);
  shmx_frame_release(c, &g);
  /* the copy outlives the slot: three more frames reuse every slot */
  CHECK_OK(pub(s, 6, 1000));
  CHECK_OK(pub(s, 7, 1000));
  CHECK_OK(pub(s, 8, 1000));
  CHECK_EQ(pins_of(in, 1), -1);
  CHECK(shmx_frame_valid(c, &f));
  CHECK_EQ(f.streams[2].data[999], 5);
  shmx_frame_release(c, &f); /* no-op on a copy, clears it */
  CHECK_EQ(f.frame_id, 0);
  /* it counts as read: a wait for something newer times out */
  CHECK_OK(shmx_client_copy_latest(c, buf, sizeof buf, &f));
  CHECK_EQ(f.frame_id, 4);
  CHECK_ERR(shmx_client_wait(c, &g, 0, 0), SHMX_E_TIMEOUT);
  shmx_inspector_close(in);
  shmx_client_close(c);
  shmx_server_destroy(s);
}

/* The reader reuses a slot's parsed record table while the records there
 * are unchanged; any change of stream, order, count or schema must show. */
TEST(record_table_follows_each_frame) {
  const char *n = harness_name("tbl");
  shmx_server *s = mk(n, 3, 0);
  CHECK(s);
  shmx_client *c;
  CHECK_OK(shmx_client_open(n, &c));
  /* Layouts of 24 bytes per record, so sizes alone never tell them apart:
   * stream 1 = 3 x u64, 2 = 2 x 12 B, 3 = 24 x u8, and 4 (added now) =
   * 3 x u64 again: 1 and 4 differ in nothing but the id. */
  shmx_stream_spec twin = {4, "twin", SHMX_DT_U64, 1, SHMX_LAYOUT_SOA_SCALAR, 8, NULL, 0};
  CHECK_OK(shmx_server_add_stream(s, &twin));
  static const uint32_t lay[7][2] = {{1, 0}, {4, 0}, {2, 0}, {3, 0}, {1, 3}, {3, 1}, {4, 3}};
  static const uint64_t count[5] = {0, 3, 2, 24, 3};
  for (uint64_t k = 1; k <= 60; k++) {
    const uint32_t *l = lay[(k * 5) % 7]; /* the same slot sees every layout */
    uint8_t bytes[24];
    memset(bytes, (int)k, sizeof bytes);
    CHECK_OK(shmx_server_begin(s));
    for (int r = 0; r < 2 && l[r]; r++)
      CHECK_OK(shmx_server_append(s, l[r], bytes, 24, count[l[r]]));
    if (k == 30) { /* the schema grows: tables are parsed again */
      shmx_stream_spec extra = {5, "extra", SHMX_DT_U8, 1, SHMX_LAYOUT_SOA_SCALAR, 1, NULL, 0};
      CHECK_OK(shmx_server_add_stream(s, &extra));
    }
    CHECK_OK(shmx_server_publish(s, 0.0, NULL));
    shmx_frame f;
    CHECK_OK(shmx_client_latest(c, &f));
    CHECK_EQ(f.frame_id, k);
    CHECK_EQ(f.tlv_count, l[1] ? 2 : 1);
    for (uint32_t r = 0; r < f.tlv_count; r++) {
      CHECK_EQ(f.streams[r].stream_id, l[r]);
      CHECK_EQ(f.streams[r].index, l[r] - 1);
      CHECK_EQ(f.streams[r].elem_count, count[l[r]]);
      CHECK_EQ(f.streams[r].bytes, 24);
      CHECK_EQ(f.streams[r].data[0], (uint8_t)k);
      CHECK_EQ(f.streams[r].data[23], (uint8_t)k);
    }
    shmx_frame_release(c, &f);
  }
  shmx_client_close(c);
  shmx_server_destroy(s);
}

/* The producer overwrites the oldest frame no reader pins, never the
 * latest: a held frame survives while newer ones cycle through the other
 * slots, and once released it is the first to go. In-order readers see
 * exactly the frames that policy keeps. */
static uint64_t next_id(shmx_client *c, uint64_t *dropped) {
  shmx_frame f;
  if (shmx_client_next(c, &f)) return 0;
  uint64_t id = f.frame_id;
  if (dropped) *dropped = f.dropped;
  shmx_frame_release(c, &f);
  return id;
}

TEST(oldest_unpinned_is_overwritten) {
  const char *n = harness_name("old");
  shmx_server *s = mk(n, 4, 0);
  CHECK(s);
  shmx_client *holder, *c2, *c3;
  CHECK_OK(shmx_client_open(n, &holder));
  CHECK_OK(shmx_client_open(n, &c2));
  CHECK_OK(shmx_client_open(n, &c3));
  for (uint64_t i = 1; i <= 3; i++) CHECK_OK(pub(s, i, 16));
  shmx_frame held;
  CHECK_OK(shmx_client_next(holder, &held));
  CHECK_EQ(held.frame_id, 1);
  for (uint64_t i = 4; i <= 7; i++) CHECK_OK(pub(s, i, 16));
  CHECK(shmx_frame_valid(holder, &held)); /* never overwritten while held */
  uint64_t d = 0;
  CHECK_EQ(next_id(c2, &d), 1);            /* the held frame is still there */
  CHECK_EQ(next_id(c2, &d), 5);            /* then the three newest */
  CHECK_EQ(d, 3);
  CHECK_EQ(next_id(c2, NULL), 6);
  CHECK_EQ(next_id(c2, NULL), 7);
  CHECK_EQ(next_id(c2, NULL), 0);
  shmx_frame_release(holder, &held);
  CHECK_OK(pub(s, 8, 16));                 /* takes frame 1's slot */
  CHECK_OK(pub(s, 9, 16));                 /* then frame 5's */
  CHECK_EQ(next_id(c3, &d), 6);
  CHECK_EQ(next_id(c3, NULL), 7);
  CHECK_EQ(next_id(c3, NULL), 8);
  CHECK_EQ(next_id(c3, NULL), 9);
  CHECK_EQ(next_id(c3, NULL), 0);
  /* an aborted frame's slot is reused first; nothing else is lost */
  CHECK_OK(shmx_server_begin(s));
  CHECK_OK(shmx_server_abort(s));
  CHECK_OK(pub(s, 10, 16));
  CHECK_EQ(next_id(c2, &d), 8);
  CHECK_EQ(next_id(c2, NULL), 9);
  CHECK_EQ(next_id(c2, NULL), 10);
  shmx_client_close(holder);
  shmx_client_close(c2);
  shmx_client_close(c3);
  shmx_server_destroy(s);
}

/* Caller-given frame ids (relays, replays): kept as given, gaps are drops
 * for in-order readers, ids never go back, a refused id leaves the frame
 * begun, and plain publish continues after the given id. */
TEST(publish_given_id) {
  const char *n = harness_name("pid");
  shmx_server *s = mk(n, 8, 0);
  CHECK(s);
  shmx_client *c, *c2;
  CHECK_OK(shmx_client_open(n, &c));
  CHECK_OK(shmx_client_open(n, &c2));
  uint64_t ids[] = {5, 6, 9, 100};
  for (int i = 0; i < 4; i++) {
    CHECK_OK(shmx_server_begin(s));
    CHECK_OK(shmx_server_append(s, 1, &ids[i], 8, 1));
    CHECK_OK(shmx_server_publish_id(s, ids[i], (double)ids[i] / 4));
  }
  CHECK_EQ(shmx_client_frame_seq(c), 100);
  shmx_frame f;
  uint64_t want_drop[] = {0, 0, 2, 90};
  for (int i = 0; i < 4; i++) {
    CHECK_OK(shmx_client_next(c, &f));
    CHECK_EQ(f.frame_id, ids[i]);
    CHECK(f.sim_time == (double)ids[i] / 4);
    uint64_t v;
    memcpy(&v, f.streams[0].data, 8);
    CHECK_EQ(v, ids[i]);
    CHECK_EQ(f.dropped, want_drop[i]);
    shmx_frame_release(c, &f);
  }
  CHECK_ERR(shmx_client_next(c, &f), SHMX_E_NOFRAME);
  CHECK_OK(shmx_client_latest(c2, &f));
  CHECK_EQ(f.frame_id, 100);
  shmx_frame_release(c2, &f);
  /* Not above the last id, or beyond the maximum: refused, still begun. */
  CHECK_OK(shmx_server_begin(s));
  CHECK_ERR(shmx_server_publish_id(s, 100, 0), SHMX_E_ARG);
  CHECK_ERR(shmx_server_publish_id(s, 7, 0), SHMX_E_ARG);
  CHECK_ERR(shmx_server_publish_id(s, SHMX_FRAME_ID_MAX + 1, 0), SHMX_E_ARG);
  CHECK_ERR(shmx_server_begin(s), SHMX_E_STATE);
  uint64_t id = 0;
  CHECK_OK(shmx_server_publish(s, 0, &id));
  CHECK_EQ(id, 101);
  CHECK_ERR(shmx_server_publish_id(s, 200, 0), SHMX_E_STATE); /* none begun */
  CHECK_OK(shmx_client_next(c, &f));
  CHECK_EQ(f.frame_id, 101);
  CHECK_EQ(f.dropped, 0);
  shmx_frame_release(c, &f);
  shmx_client_close(c);
  shmx_client_close(c2);
  shmx_server_destroy(s);
}

/* The streaming copy (copy.c) gives the same bytes as memcpy for every size
 * and alignment of either side, and touches nothing around them. */
TEST(stream_copy_exact) {
  static uint8_t src[70000 + 64], dst[70000 + 256];
  const size_t sizes[] = {0, 1, 15, 16, 17, 63, 64, 65, 127, 128, 129, 1000, 4103, 65569};
  for (size_t i = 0; i < sizeof src; i++) src[i] = (uint8_t)(i * 131 + 7);
  for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++)
    for (size_t d = 0; d < 32; d++)
      for (size_t o = 0; o < 8; o++) {
        size_t n = sizes[k];
        memset(dst, 0xEE, sizeof dst);
        shmx__copy_stream(dst + 64 + d, src + o, n);
        CHECK(memcmp(dst + 64 + d, src + o, n) == 0);
        for (size_t j = 0; j < 64 + d; j++) CHECK_EQ(dst[j], 0xEE);
        for (size_t j = 64 + d + n; j < sizeof dst; j++) CHECK_EQ(dst[j], 0xEE);
        if (harness_cur_failed) return;
      }
}

/* Large appends: the first frame into each slot of a new channel is a copy
 * into a slot never written (the streaming path), later ones may not be;
 * a reader sees every byte of each, sizes not a multiple of the line
 * included; with checksums on, every frame passes its check. */
static void large_frames(uint32_t flags) {
  const char *n = harness_name(flags ? "bigcrc" : "big");
  shmx_server_config c;
  shmx_server_config_init(&c);
  c.slots = 3;
  c.flags = flags;
  c.frame_bytes_cap = (1u << 20) + 4096;
  c.streams = specs;
  c.n_streams = 3;
  shmx_server *s = NULL;
  CHECK_OK(shmx_server_create(n, &c, &s));
  shmx_client *cl;
  CHECK_OK(shmx_client_open(n, &cl));
  size_t cap = 1u << 20;
  uint8_t *img = malloc(cap);
  CHECK(img != NULL);
  uint64_t x = 88172645463325252ull;
  for (int f = 0; f < 9 && !harness_cur_failed; f++) {
    size_t bytes = (size_t)SHMX__STREAM_MIN + (size_t)f * 77777 + (size_t)(f & 1) * 13;
    for (size_t i = 0; i < bytes; i++) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      img[i] = (uint8_t)x;
    }
    CHECK_OK(shmx_server_begin(s));
    CHECK_OK(shmx_server_append(s, 3, img, bytes, bytes));
    CHECK_OK(shmx_server_publish(s, 0, NULL));
    shmx_frame fr;
    CHECK_OK(shmx_client_latest(cl, &fr));
    CHECK_EQ(fr.tlv_count, 1);
    CHECK_EQ(fr.streams[0].bytes, bytes);
    CHECK(memcmp(fr.streams[0].data, img, bytes) == 0);
    shmx_frame_release(cl, &fr);
  }
  free(img);
  shmx_client_close(cl);
  shmx_server_destroy(s);
}

TEST(large_appends_every_byte) {
  large_frames(0);
  large_frames(SHMX_CREATE_CRC32C);
}

/* With every slot but the latest pinned, the producer overwrites a held
 * frame. A reader that holds its previous frame while it takes the next
 * pins two slots; once one of them was overwritten under its pin, that slot
 * (whose holders are already told their frame is invalid) is the one
 * overwritten next, not the slot of the frame the reader is reading; unless
 * someone pinned the new frame there since, then the oldest goes. */
static void stale_pin_case(int other_reader) {
  const char *n = harness_name(other_reader ? "stale2" : "stale");
  shmx_server *s = mk(n, 3, 0);
  CHECK(s);
  shmx_client *c, *c2;
  CHECK_OK(shmx_client_open(n, &c));
  CHECK_OK(shmx_client_open(n, &c2));
  shmx_frame p, f, q;
  CHECK_OK(pub(s, 1, 64));
  CHECK_OK(shmx_client_latest(c, &p)); /* frame 1, held */
  CHECK_OK(pub(s, 2, 64));
  CHECK_OK(shmx_client_latest(c, &f)); /* frame 2, held too */
  CHECK_OK(pub(s, 3, 64));             /* the one free slot */
  CHECK_OK(pub(s, 4, 64));             /* forced: the oldest, frame 1's */
  CHECK(!shmx_frame_valid(c, &p));
  CHECK(shmx_frame_valid(c, &f));
  if (other_reader) CHECK_OK(shmx_client_latest(c2, &q)); /* frame 4 */
  CHECK_OK(pub(s, 5, 64)); /* frame 3's slot: not pinned */
  CHECK_OK(pub(s, 6, 64)); /* forced again */
  if (!other_reader) {
    /* frame 4's slot was pinned only by the stale pin of frame 1 */
    CHECK(shmx_frame_valid(c, &f));
  } else {
    /* frame 4 is held by a reader that took it: the oldest goes */
    CHECK(shmx_frame_valid(c2, &q));
    CHECK(!shmx_frame_valid(c, &f));
    shmx_frame_release(c2, &q);
  }
  uint64_t v;
  memcpy(&v, f.streams[0].data, 8);
  if (shmx_frame_valid(c, &f)) CHECK_EQ(v, 2); /* and its bytes are frame 2's */
  shmx_frame_release(c, &p);
  shmx_frame_release(c, &f);
  shmx_client_close(c);
  shmx_client_close(c2);
  shmx_server_destroy(s);
}

TEST(stale_pin_slot_overwritten_first) {
  stale_pin_case(0);
  stale_pin_case(1);
}

int main(void) {
  RUN(roundtrip);
  RUN(stream_copy_exact);
  RUN(large_appends_every_byte);
  RUN(publish_given_id);
  RUN(oldest_unpinned_is_overwritten);
  RUN(stale_pin_slot_overwritten_first);
  RUN(append_errors);
  RUN(next_in_order_and_drops);
  RUN(prefaulted_publish);
  RUN(relatest_held_frame);
  RUN(copy_latest);
  RUN(record_table_follows_each_frame);
  return harness_done();
}

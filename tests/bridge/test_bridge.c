/* shmx bridge: the wire codec against hostile input, the receiver fed
 * crafted messages directly (shmx__bridge_feed), and a real sender and
 * receiver over TCP loopback in threads (every frame, every byte, in order,
 * with each codec). Processes, restarts, CURVE and namespaces are in
 * tests/python/test_bridge.py. */
#include <pthread.h>
#include <stdlib.h>

#include "../c/harness.h"
#include "bridge.h"
#include "schema.h"
#include "wire.h"

static shmx_stream_spec specs[2] = {
    {1, "seq", SHMX_DT_U64, 1, SHMX_LAYOUT_SOA_SCALAR, 8, NULL, 0},
    {2, "blob", SHMX_DT_U8, 1, SHMX_LAYOUT_SOA_SCALAR, 1, "extra!", 6},
};

static shmx_server *mk(const char *name, uint64_t cap) {
  shmx_server_config c;
  shmx_server_config_init(&c);
  c.slots = 8;
  c.frame_bytes_cap = cap;
  c.streams = specs;
  c.n_streams = 2;
  shmx_server *s = NULL;
  if (shmx_server_create(name, &c, &s)) fprintf(stderr, "create: %s\n", shmx_errmsg());
  return s;
}

/* A schema message body for channel `name` with the given streams. */
static uint8_t *schema_blob(const char *name, int n_streams, size_t *len) {
  shmx_header_info g = {0};
  g.slots = 4;
  g.reader_slots = 4;
  g.static_bytes_cap = 4096;
  g.frame_bytes_cap = 65536;
  g.control_per_reader = 4096;
  shmx_stream_info si[2];
  for (int i = 0; i < 2; i++) {
    si[i] = (shmx_stream_info){specs[i].id, specs[i].dtype, specs[i].components,
                               specs[i].layout, specs[i].bytes_per_elem,
                               specs[i].extra_len, specs[i].name, specs[i].extra};
  }
  const uint8_t *user[1] = {(const uint8_t *)"user-record"};
  uint32_t ulen[1] = {11};
  uint8_t *out = NULL;
  if (shmx__sb_encode(name, &g, si, n_streams, user, ulen, 1, &out, len)) return NULL;
  return out;
}

static void hdr(uint8_t *out, uint32_t type, uint64_t sender, uint32_t gen, uint64_t fid,
                uint32_t n) {
  shmx__br_hdr h = {0};
  h.type = type;
  h.sender_id = sender;
  h.session = 77;
  h.schema_gen = gen;
  h.frame_id = fid;
  h.sim_time = (double)fid / 8;
  h.n_streams = n;
  h.origin_ns = 1;
  shmx__br_hdr_put(out, &h);
}

TEST(header_codec) {
  uint8_t b[SHMX__BR_HDR + 2 * SHMX__BR_DIRENT + 16];
  shmx__br_dirent dir[SHMX_FRAME_MAX_STREAMS];
  shmx__br_hdr h;
  size_t tail;
  hdr(b, SHMX__BR_FRAME, 5, 1, 9, 2);
  shmx__br_dirent e0 = {1, 1, 8, 8}, e1 = {2, 8, 8, 8};
  shmx__br_dirent_put(b, 0, &e0);
  shmx__br_dirent_put(b, 1, &e1);
  CHECK_OK(shmx__br_hdr_get(b, sizeof b, &h, dir, &tail));
  CHECK_EQ(h.type, SHMX__BR_FRAME);
  CHECK_EQ(h.frame_id, 9);
  CHECK(h.sim_time == 9.0 / 8);
  CHECK_EQ(h.n_streams, 2);
  CHECK_EQ(tail, 16);
  CHECK_EQ(dir[1].stream_id, 2);
  CHECK_EQ(dir[1].elem_count, 8);
  CHECK_OK(shmx__br_dir_check(dir, 2, SHMX__BR_RAW, 65536, 16));
  CHECK_ERR(shmx__br_dir_check(dir, 2, SHMX__BR_RAW, 65536, 15), SHMX_E_CORRUPT);
  CHECK_ERR(shmx__br_dir_check(dir, 2, SHMX__BR_RAW, 15, 16), SHMX_E_CORRUPT);
  /* every truncation of the header+directory is refused */
  for (size_t n = 0; n < SHMX__BR_HDR + 2 * SHMX__BR_DIRENT; n++)
    CHECK_ERR(shmx__br_hdr_get(b, n, &h, dir, &tail), SHMX_E_CORRUPT);
  /* each field that can lie */
  struct { size_t off; uint8_t v; } lies[] = {
      {0, 'X'}, {4, 9}, {5, 0}, {5, 7}, {6, 3}, {7, 1}, /* magic, version, type, codec, pad */
      {28, 0xff},                                     /* n_streams: 0xff.. > 256 */
      {SHMX__BR_HDR + 4, 1},                          /* directory padding */
  };
  for (size_t i = 0; i < sizeof lies / sizeof lies[0]; i++) {
    uint8_t c[sizeof b];
    memcpy(c, b, sizeof b);
    c[lies[i].off] = lies[i].v;
    CHECK_ERR(shmx__br_hdr_get(c, sizeof c, &h, dir, &tail), SHMX_E_CORRUPT);
  }
  /* frame id 0, sender 0 */
  hdr(b, SHMX__BR_FRAME, 5, 1, 0, 0);
  CHECK_ERR(shmx__br_hdr_get(b, SHMX__BR_HDR, &h, dir, &tail), SHMX_E_CORRUPT);
  hdr(b, SHMX__BR_FRAME, 0, 1, 1, 0);
  CHECK_ERR(shmx__br_hdr_get(b, SHMX__BR_HDR, &h, dir, &tail), SHMX_E_CORRUPT);
  /* control messages carry nothing after the header */
  hdr(b, SHMX__BR_SCHEMA, 5, 1, 0, 0);
  CHECK_OK(shmx__br_hdr_get(b, SHMX__BR_HDR, &h, dir, &tail));
  CHECK_ERR(shmx__br_hdr_get(b, SHMX__BR_HDR + 1, &h, dir, &tail), SHMX_E_CORRUPT);
  /* sums that overflow */
  shmx__br_dirent big[2] = {{1, 1, UINT64_MAX, UINT64_MAX}, {2, 1, 2, 2}};
  CHECK_ERR(shmx__br_dir_check(big, 2, SHMX__BR_ZSTD, UINT64_MAX, 1), SHMX_E_CORRUPT);
}

TEST(schema_codec) {
  size_t len;
  uint8_t *b = schema_blob("cam.0", 2, &len);
  CHECK(b);
  shmx__sb s;
  CHECK_OK(shmx__sb_decode(b, len, &s));
  CHECK(!strcmp(s.name, "cam.0"));
  CHECK_EQ(s.n_streams, 2);
  CHECK_EQ(s.n_user, 1);
  CHECK(!strcmp(s.streams[1].name, "blob"));
  CHECK_EQ(s.streams[1].extra_len, 6);
  CHECK_MEM(s.streams[1].extra, "extra!", 6);
  CHECK_EQ(s.user_len[0], 11);
  CHECK_EQ(s.frame_cap, 65536);
  shmx__sb_free(&s);
  /* every prefix and every longer blob is refused, never read past */
  for (size_t n = 0; n < len; n++) {
    uint8_t *c = malloc(n ? n : 1);
    memcpy(c, b, n);
    CHECK_ERR(shmx__sb_decode(c, n, &s), SHMX_E_CORRUPT);
    free(c);
  }
  uint8_t *longer = calloc(1, len + 8);
  memcpy(longer, b, len);
  CHECK_ERR(shmx__sb_decode(longer, len + 8, &s), SHMX_E_CORRUPT);
  free(longer);
  /* every single-byte change either decodes to a valid schema or is refused */
  int refused = 0;
  for (size_t i = 0; i < len; i++) {
    for (int v = 0; v < 256; v += 51) {
      uint8_t *c = malloc(len);
      memcpy(c, b, len);
      c[i] = (uint8_t)(c[i] ^ (v | 1));
      int rc = shmx__sb_decode(c, len, &s);
      if (rc == 0) {
        for (uint32_t k = 0; k < s.n_streams; k++) CHECK_OK(shmx__spec_check(&s.streams[k]));
        CHECK_OK(shmx_name_check(s.name));
        shmx__sb_free(&s);
      } else {
        CHECK_EQ(rc, SHMX_E_CORRUPT);
        refused++;
      }
      free(c);
    }
  }
  CHECK_GT(refused, 0);
  free(b);
}

/* A receiver fed crafted messages: good ones build and feed the channel,
 * each lie is counted and changes nothing. */
TEST(receiver_feed) {
  const char *name = harness_name("brf");
  shmx_bridge_opts o = {0};
  o.endpoint = "inproc://nowhere";
  o.channel = name;
  o.quiet = 1;
  shmx_bridge *b;
  CHECK_OK(shmx_bridge_open(0, &o, &b));
  shmx_bridge_stats st;
  size_t slen;
  uint8_t *sch = schema_blob("origin", 1, &slen);
  uint8_t m[SHMX__BR_HDR + 2 * SHMX__BR_DIRENT + 64];
  uint64_t seq = 1;
  /* a frame before any schema */
  hdr(m, SHMX__BR_FRAME, 5, 1, 1, 1);
  shmx__br_dirent e = {1, 1, 8, 8};
  shmx__br_dirent_put(m, 0, &e);
  memcpy(m + SHMX__BR_HDR + SHMX__BR_DIRENT, &seq, 8);
  size_t one = SHMX__BR_HDR + SHMX__BR_DIRENT + 8;
  shmx__bridge_feed(b, m, one, NULL, 0, 1);
  shmx_bridge_stats_get(b, &st);
  CHECK_EQ(st.schema_wait, 1);
  CHECK_EQ(st.attached, 0);
  /* a schema asking for a channel beyond the memory limit is refused */
  uint64_t huge = 1ull << 40;
  memcpy(sch + 16, &huge, 8); /* frame_bytes_cap, schema blob offset 16 */
  uint8_t h0[SHMX__BR_HDR];
  hdr(h0, SHMX__BR_SCHEMA, 5, 1, 0, 0);
  shmx__bridge_feed(b, h0, sizeof h0, sch, slen, 2);
  shmx_bridge_stats_get(b, &st);
  CHECK_EQ(st.bad, 1);
  CHECK_EQ(st.attached, 0);
  free(sch);
  sch = schema_blob("origin", 1, &slen);
  /* the schema creates the channel under our name */
  uint8_t h[SHMX__BR_HDR];
  hdr(h, SHMX__BR_SCHEMA, 5, 1, 0, 0);
  shmx__bridge_feed(b, h, sizeof h, sch, slen, 2);
  shmx_bridge_stats_get(b, &st);
  CHECK_EQ(st.attached, 1);
  CHECK_EQ(st.schemas, 1);
  shmx_client *c;
  CHECK_OK(shmx_client_open(name, &c));
  const shmx_stream_info *si;
  int ns;
  CHECK_OK(shmx_client_streams(c, &si, &ns));
  CHECK_EQ(ns, 1);
  const uint8_t *ud;
  uint32_t ul;
  CHECK_OK(shmx_client_static_user(c, 0, &ud, &ul));
  CHECK_EQ(ul, 11);
  /* frames: one part, then two parts */
  for (uint64_t fid = 3; fid <= 4; fid++) {
    hdr(m, SHMX__BR_FRAME, 5, 1, fid, 1);
    shmx__br_dirent_put(m, 0, &e);
    memcpy(m + SHMX__BR_HDR + SHMX__BR_DIRENT, &fid, 8);
    if (fid == 3) shmx__bridge_feed(b, m, one, NULL, 0, 1);
    else shmx__bridge_feed(b, m, one - 8, m + one - 8, 8, 2);
  }
  shmx_frame f;
  for (uint64_t fid = 3; fid <= 4; fid++) {
    CHECK_OK(shmx_client_next(c, &f));
    CHECK_EQ(f.frame_id, fid);
    CHECK(f.sim_time == (double)fid / 8);
    uint64_t v;
    memcpy(&v, f.streams[0].data, 8);
    CHECK_EQ(v, fid);
    shmx_frame_release(c, &f);
  }
  /* lies: each is counted as bad and publishes nothing */
  struct { uint32_t sid; uint64_t elems, bytes, wire; size_t data; uint64_t fid; int codec; } lies[] = {
      {9, 1, 8, 8, 8, 10, 0},     /* unknown stream */
      {1, 2, 8, 8, 8, 10, 0},     /* 2 elements of 8 bytes in 8 bytes */
      {1, 1, 8, 8, 7, 10, 0},     /* data shorter than the directory */
      {1, 1, 8, 8, 9, 10, 0},     /* data longer */
      {1, 1, 8, 8, 8, 4, 0},      /* frame id not increasing */
      {1, 1, 8, 4, 4, 10, 1},     /* garbage zstd */
      {1, 1, 8, 4, 4, 10, 2},     /* garbage lz4 */
      {1, 1, 1u << 20, 1u << 20, 8, 10, 0}, /* beyond the frame capacity */
  };
  uint64_t bad0 = st.bad;
  size_t nl = sizeof lies / sizeof lies[0];
  for (size_t i = 0; i < nl; i++) {
    hdr(m, SHMX__BR_FRAME, 5, 1, lies[i].fid, 1);
    m[6] = (uint8_t)lies[i].codec;
    shmx__br_dirent le = {lies[i].sid, lies[i].elems, lies[i].bytes, lies[i].wire};
    shmx__br_dirent_put(m, 0, &le);
    memset(m + SHMX__BR_HDR + SHMX__BR_DIRENT, 0xa5, 16);
    shmx__bridge_feed(b, m, SHMX__BR_HDR + SHMX__BR_DIRENT + lies[i].data, NULL, 0, 1);
  }
  shmx__bridge_feed(b, m, 3, NULL, 0, 1);               /* short */
  shmx__bridge_feed(b, m, one, m, one, 2);              /* one-part frame with a 2nd part */
  hdr(h, SHMX__BR_SCHEMA, 5, 1, 0, 0);
  shmx__bridge_feed(b, h, sizeof h, sch, slen - 1, 2);  /* torn schema */
  shmx_bridge_stats_get(b, &st);
#if defined(SHMX_HAVE_ZSTD) && defined(SHMX_HAVE_LZ4)
  CHECK_EQ(st.bad - bad0, nl + 3);
#else
  CHECK_GE(st.bad - bad0, nl + 3 - 2);
#endif
  CHECK_EQ(st.frames, 2);
  CHECK_ERR(shmx_client_next(c, &f), SHMX_E_NOFRAME);
  CHECK_OK(shmx_client_status(c));
  /* a gap in the origin's ids is counted and seen as a drop by readers */
  uint64_t fid = 9;
  hdr(m, SHMX__BR_FRAME, 5, 1, fid, 1);
  shmx__br_dirent_put(m, 0, &e);
  memcpy(m + SHMX__BR_HDR + SHMX__BR_DIRENT, &fid, 8);
  shmx__bridge_feed(b, m, one, NULL, 0, 1);
  CHECK_OK(shmx_client_next(c, &f));
  CHECK_EQ(f.frame_id, 9);
  CHECK_EQ(f.dropped, 4);
  shmx_frame_release(c, &f);
  /* a BATCH of small frames: each republished; a bad record ends it, the
   * frames before it stand */
  {
    uint8_t bat[SHMX__BR_HDR + 4 * 128];
    size_t blen = SHMX__BR_HDR;
    for (uint64_t id = 10; id < 13; id++) {
      uint8_t fm[SHMX__BR_HDR + SHMX__BR_DIRENT + 8];
      hdr(fm, SHMX__BR_FRAME, 5, 1, id, 1);
      shmx__br_dirent_put(fm, 0, &e);
      memcpy(fm + SHMX__BR_HDR + SHMX__BR_DIRENT, &id, 8);
      blen += shmx__br_batch_put(bat + blen, fm, sizeof fm);
    }
    hdr(bat, SHMX__BR_BATCH, 5, 1, 0, 3);
    shmx_bridge_stats_get(b, &st);
    uint64_t frames0 = st.frames, bad1 = st.bad;
    shmx__bridge_feed(b, bat, blen, NULL, 0, 1);
    for (uint64_t id = 10; id < 13; id++) {
      CHECK_OK(shmx_client_next(c, &f));
      CHECK_EQ(f.frame_id, id);
      uint64_t v;
      memcpy(&v, f.streams[0].data, 8);
      CHECK_EQ(v, id);
      shmx_frame_release(c, &f);
    }
    shmx_bridge_stats_get(b, &st);
    CHECK_EQ(st.frames, frames0 + 3);
    CHECK_EQ(st.bad, bad1);
    /* lies, each in a batch of three fresh ids (count the frames that
     * stand and the bad ones): a count beyond the records (3 stand, 1
     * bad), a first record longer than the rest (0, 1), a nested batch
     * (0, 1), a batch of 0 frames (0, 1), a record left over (2, 1), a
     * second part (0, 1) */
    struct { int patch; uint32_t count; size_t stand; } lies2[] = {
        {0, 4, 3}, {1, 3, 0}, {2, 3, 0}, {3, 0, 0}, {0, 2, 2}, {4, 3, 0}};
    uint64_t next_id = 20;
    for (size_t L = 0; L < sizeof lies2 / sizeof lies2[0]; L++) {
      uint8_t lie[sizeof bat];
      size_t ll = SHMX__BR_HDR;
      for (uint64_t id = next_id; id < next_id + 3; id++) {
        uint8_t fm[SHMX__BR_HDR + SHMX__BR_DIRENT + 8];
        hdr(fm, SHMX__BR_FRAME, 5, 1, id, 1);
        shmx__br_dirent_put(fm, 0, &e);
        memcpy(fm + SHMX__BR_HDR + SHMX__BR_DIRENT, &id, 8);
        ll += shmx__br_batch_put(lie + ll, fm, sizeof fm);
      }
      hdr(lie, SHMX__BR_BATCH, 5, 1, 0, lies2[L].count);
      if (lies2[L].patch == 1) lie[SHMX__BR_HDR + 1] = 0xff; /* length > the rest */
      if (lies2[L].patch == 2) lie[SHMX__BR_HDR + 8 + 5] = SHMX__BR_BATCH;
      shmx_bridge_stats_get(b, &st);
      uint64_t fr = st.frames, bd = st.bad;
      if (lies2[L].patch == 4) shmx__bridge_feed(b, lie, ll, lie, 8, 2);
      else shmx__bridge_feed(b, lie, ll, NULL, 0, 1);
      shmx_bridge_stats_get(b, &st);
      CHECK_EQ(st.frames - fr, lies2[L].stand);
      CHECK_EQ(st.bad - bd, 1);
      for (size_t k = 0; k < lies2[L].stand; k++) {
        CHECK_OK(shmx_client_next(c, &f));
        CHECK_EQ(f.frame_id, next_id + k);
        shmx_frame_release(c, &f);
      }
      CHECK_ERR(shmx_client_next(c, &f), SHMX_E_NOFRAME);
      next_id += 3;
    }
    /* replayed ids are refused (each counted), nothing republished */
    shmx_bridge_stats_get(b, &st);
    uint64_t fr = st.frames, bd = st.bad;
    shmx__bridge_feed(b, bat, blen, NULL, 0, 1);
    shmx_bridge_stats_get(b, &st);
    CHECK_EQ(st.frames, fr);
    CHECK_EQ(st.bad - bd, 3);
    (void)bad1;
  }
  /* the schema grows (same origin, gen 2): the stream is added in place */
  free(sch);
  sch = schema_blob("origin", 2, &slen);
  hdr(h, SHMX__BR_SCHEMA, 5, 2, 0, 0);
  shmx__bridge_feed(b, h, sizeof h, sch, slen, 2);
  CHECK_EQ(shmx_client_refresh(c), 1);
  CHECK_OK(shmx_client_streams(c, &si, &ns));
  CHECK_EQ(ns, 2);
  CHECK_OK(shmx_client_status(c));
  /* frames of the old generation now wait for their schema */
  hdr(m, SHMX__BR_FRAME, 5, 1, 20, 1);
  shmx__br_dirent_put(m, 0, &e);
  shmx__bridge_feed(b, m, one, NULL, 0, 1);
  shmx_bridge_stats_get(b, &st);
  CHECK_EQ(st.schema_wait, 2);
  /* another sender (restarted): the channel is re-created, readers see it */
  hdr(h, SHMX__BR_SCHEMA, 6, 1, 0, 0);
  shmx__bridge_feed(b, h, sizeof h, sch, slen, 2);
  shmx_bridge_stats_get(b, &st);
  CHECK_EQ(st.recreated, 1);
  int rc = shmx_client_status(c);
  CHECK(rc == SHMX_E_CLOSED || rc == SHMX_E_RESTARTED);
  shmx_client_close(c);
  /* BYE from the current origin closes the local channel */
  CHECK_OK(shmx_client_open(name, &c));
  hdr(h, SHMX__BR_BYE, 6, 1, 0, 0);
  shmx__bridge_feed(b, h, sizeof h, NULL, 0, 2);
  CHECK_ERR(shmx_client_status(c), SHMX_E_CLOSED);
  shmx_client_close(c);
  free(sch);
  shmx_bridge_close(b);
}

/* ---- loopback: producer -> sender -> TCP -> receiver -> reader -------- */

typedef struct runner {
  shmx_bridge *b;
  volatile sig_atomic_t stop;
  pthread_t t;
} runner;

static void *run_thread(void *arg) {
  runner *r = arg;
  shmx_bridge_run(r->b, -1, &r->stop);
  return NULL;
}

static void loopback(int codec, size_t blob_bytes, int n_frames) {
  const char *src = harness_name("brs");
  const char *dst = harness_name("brd");
  shmx_server *s = mk(src, blob_bytes + 4096);
  CHECK(s);
  shmx_bridge_opts so = {0}, ro = {0};
  so.channel = src;
  so.endpoint = "tcp://127.0.0.1:*";
  so.in_order = 1;
  so.codec = codec;
  runner snd = {0}, rcv = {0};
  CHECK_OK(shmx_bridge_open(1, &so, &snd.b));
  ro.endpoint = shmx_bridge_endpoint(snd.b);
  ro.channel = dst;
  CHECK_OK(shmx_bridge_open(0, &ro, &rcv.b));
  CHECK_EQ(pthread_create(&snd.t, NULL, run_thread, &snd), 0);
  CHECK_EQ(pthread_create(&rcv.t, NULL, run_thread, &rcv), 0);
  /* the receiver creates its channel from the schema once subscribed */
  shmx_client *c = NULL;
  WAIT_UNTIL(shmx_client_open(dst, &c) == 0, 10000);
  uint8_t *blob = malloc(blob_bytes);
  shmx_frame f;
  int got = 0;
  uint64_t t0 = shmx_now_ns();
  for (int i = 1; i <= n_frames; i++) {
    uint64_t v = (uint64_t)i;
    for (size_t k = 0; k < blob_bytes; k++) blob[k] = (uint8_t)(k * 7 + (size_t)i);
    CHECK_OK(shmx_server_begin(s));
    CHECK_OK(shmx_server_append(s, 1, &v, 8, 1));
    CHECK_OK(shmx_server_append(s, 2, blob, blob_bytes, blob_bytes));
    CHECK_OK(shmx_server_publish(s, (double)i / 4, NULL));
    /* paced on the reader's progress: at most 4 frames in flight */
    while (got < i) {
      int rc = shmx_client_wait(c, &f, i - got > 4 ? 1000000000 : 0, 1);
      if (rc == SHMX_E_TIMEOUT || rc == SHMX_E_NOFRAME) break;
      CHECK_OK(rc);
      got++;
      CHECK_EQ(f.frame_id, (uint64_t)got);
      CHECK_EQ(f.dropped, 0);
      CHECK(f.sim_time == (double)got / 4);
      CHECK_EQ(f.tlv_count, 2);
      memcpy(&v, f.streams[0].data, 8);
      CHECK_EQ(v, (uint64_t)got);
      CHECK_EQ(f.streams[1].bytes, blob_bytes);
      for (size_t k = 0; k < blob_bytes; k++)
        if (f.streams[1].data[k] != (uint8_t)(k * 7 + (size_t)got))
          HARNESS_FAIL("frame %d byte %zu differs", got, k);
      shmx_frame_release(c, &f);
      CHECK(shmx_now_ns() - t0 < 60ull * 1000000000);
    }
  }
  while (got < n_frames) {
    CHECK_OK(shmx_client_wait(c, &f, 5000000000, 1));
    got++;
    CHECK_EQ(f.frame_id, (uint64_t)got);
    shmx_frame_release(c, &f);
  }
  snd.stop = rcv.stop = 1; /* stats are read by the handle's own thread only */
  pthread_join(snd.t, NULL);
  pthread_join(rcv.t, NULL);
  shmx_bridge_stats st;
  shmx_bridge_stats_get(snd.b, &st);
  CHECK_EQ(st.frames, (uint64_t)n_frames);
  CHECK_EQ(st.dropped_net, 0);
  CHECK_EQ(st.torn, 0);
  if (codec != SHMX_BRIDGE_RAW) CHECK_LT(st.wire_bytes, st.bytes);
  shmx_bridge_stats_get(rcv.b, &st);
  CHECK_EQ(st.frames, (uint64_t)n_frames);
  CHECK_EQ(st.bad, 0);
  shmx_client_close(c);
  shmx_bridge_close(rcv.b);
  shmx_bridge_close(snd.b);
  shmx_server_destroy(s);
  free(blob);
  CHECK_ERR(shmx_client_open(dst, &c), SHMX_E_NOCHANNEL); /* receiver removed it */
}

TEST(loopback_raw_small) { loopback(SHMX_BRIDGE_RAW, 100, 2000); }
TEST(loopback_raw_large) { loopback(SHMX_BRIDGE_RAW, 1 << 20, 60); }
TEST(loopback_zstd) {
  if (shmx_bridge_codec("zstd") < 0) {
    printf("# skip: built without zstd\n");
    return;
  }
  loopback(SHMX_BRIDGE_ZSTD, 200000, 100);
}
TEST(loopback_lz4) {
  if (shmx_bridge_codec("lz4") < 0) {
    printf("# skip: built without lz4\n");
    return;
  }
  loopback(SHMX_BRIDGE_LZ4, 200000, 100);
}

int main(void) {
  RUN(header_codec);
  RUN(schema_codec);
  RUN(receiver_feed);
  RUN(loopback_raw_small);
  RUN(loopback_raw_large);
  RUN(loopback_zstd);
  RUN(loopback_lz4);
  return harness_done();
}

/*
 * test_record.c -- recordings: record live channels, read them back at
 * random, recover torn files, and survive hostile ones (issue 12).
 *
 * The producer and the recorder run in lock step in one process (publish,
 * then one recorder pass with a zero timeout) where a test needs every
 * frame; a forked recorder is SIGKILLed for the crash test.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "mcap.h" /* internal: the CRC32 implementations */
#include "shmx.h"
#include "shmx_record.h"

static char g_dir[256];

static const char *path_in(const char *leaf) {
  static char p[8][512];
  static int k;
  char *b = p[k++ % 8];
  snprintf(b, 512, "%s/%s", g_dir, leaf);
  return b;
}

static uint8_t pat(uint64_t frame, uint32_t stream, uint64_t j) {
  return (uint8_t)(frame * 31 + stream * 7 + j * 13);
}

/* Stream sizes of frame k: pos (12 B elems), img (1 B elems, up to 100 KiB:
 * both the staged and the writev paths), extra (2 B elems, after the
 * schema grows). */
static uint64_t n_pos(uint64_t k) { return k % 50 + 1; }
static uint64_t n_img(uint64_t k) { return (k * 7919) % (100u << 10) + 1; }
static uint64_t n_extra(uint64_t k) { return k % 5; }

static shmx_server *producer(const char *name) {
  shmx_stream_spec sp[] = {
      {.id = 1, .name = "pos", .dtype = SHMX_DT_F32, .components = 3,
       .layout = SHMX_LAYOUT_AOS_VECTOR, .bytes_per_elem = 12, .extra = "xyz", .extra_len = 3},
      {.id = 2, .name = "img", .dtype = SHMX_DT_U8, .components = 1, .bytes_per_elem = 1},
  };
  shmx_server_config c;
  shmx_server_config_init(&c);
  c.streams = sp;
  c.n_streams = 2;
  c.slots = 8;
  c.frame_bytes_cap = 256u << 10;
  shmx_server *s = NULL;
  if (shmx_server_create(name, &c, &s)) return NULL;
  return s;
}

static int publish(shmx_server *s, uint64_t k, int with_extra) {
  static uint8_t buf[3][128u << 10];
  uint64_t n[3] = {n_pos(k) * 12, n_img(k), n_extra(k) * 2};
  int rc = shmx_server_begin(s);
  for (uint32_t st = 0; st < (with_extra ? 3u : 2u) && !rc; st++) {
    for (uint64_t j = 0; j < n[st]; j++) buf[st][j] = pat(k, st + 1, j);
    uint64_t elems = st == 0 ? n_pos(k) : st == 1 ? n_img(k) : n_extra(k);
    rc = shmx_server_append(s, st + 1, buf[st], n[st], elems);
  }
  return rc ? rc : shmx_server_publish(s, (double)k * 0.5, NULL);
}

static void add_extra(shmx_server *s) {
  shmx_stream_spec x = {.id = 3, .name = "extra", .dtype = SHMX_DT_U16, .components = 1,
                        .bytes_per_elem = 2};
  shmx_server_add_stream(s, &x);
}

/* Every byte of a read frame against the pattern. */
static int frame_ok(const shmx_rec_frame *f) {
  for (uint32_t i = 0; i < f->tlv_count; i++) {
    const shmx_frame_stream *s = &f->streams[i];
    uint64_t want = s->stream_id == 1 ? n_pos(f->frame_id) * 12
                  : s->stream_id == 2 ? n_img(f->frame_id) : n_extra(f->frame_id) * 2;
    if (s->bytes != want || ((uintptr_t)s->data & (s->bytes >= 256 ? 63 : 7))) return 0;
    for (uint64_t j = 0; j < s->bytes; j++)
      if (s->data[j] != pat(f->frame_id, s->stream_id, j)) return 0;
  }
  return f->sim_time == (double)f->frame_id * 0.5;
}

/* Record `frames` frames in lock step (schema grows at half), close. */
static int record_lockstep(const char *path, const shmx_rec_config *cfg, uint64_t frames) {
  const char *name = harness_name("rec");
  shmx_server *s = producer(name);
  shmx_recorder *r;
  if (!s || shmx_recorder_open(path, cfg, &r)) return -1;
  int rc = shmx_recorder_add(r, name);
  for (uint64_t k = 1; k <= frames && !rc; k++) {
    if (k == frames / 2) add_extra(s);
    rc = publish(s, k, k >= frames / 2);
    if (!rc) rc = shmx_recorder_run(r, 0, 0, NULL);
  }
  shmx_rec_stats st;
  shmx_recorder_stats(r, &st);
  if (!rc && (st.frames != frames || st.dropped)) rc = -2;
  int crc = shmx_recorder_close(r);
  shmx_server_destroy(s);
  return rc ? rc : crc;
}

/* Read every frame of a recording of `frames` lock-step frames, forward,
 * backward, by id and by time. */
static void check_recording(const char *path, uint64_t frames, const char *codec) {
  shmx_recording *r;
  CHECK_OK(shmx_recording_open(path, &r));
  if (!r) return;
  shmx_rec_info in;
  shmx_recording_info(r, &in);
  CHECK_EQ(in.frames, frames);
  CHECK_EQ(in.channels, 2u); /* the schema grew: a second MCAP channel */
  CHECK(!strcmp(in.compression, codec));
  CHECK_GT(in.chunks, 2u);
  const shmx_rec_channel *c0 = shmx_recording_channel(r, 0), *c1 = shmx_recording_channel(r, 1);
  CHECK(c0 && c1 && !strcmp(c0->topic, c1->topic));
  if (c0 && c1) {
    CHECK_EQ(c0->n_streams, 2);
    CHECK_EQ(c1->n_streams, 3);
    CHECK_EQ(c0->frames + c1->frames, frames);
    CHECK_EQ(c0->streams[0].extra_len, 3u);
    CHECK(!memcmp(c0->streams[0].extra, "xyz", 3));
    CHECK_EQ(c0->session, c1->session);
    CHECK_EQ(c1->schema_gen, 2u);
  }
  CHECK(shmx_recording_channel(r, 2) == NULL);
  uint64_t prev_log = 0, dropped = 1;
  for (uint64_t p = 0; p < frames; p++) {
    shmx_rec_frame f;
    int rc = shmx_recording_read_at(r, p, &f);
    CHECK_OK(rc);
    if (rc) break;
    CHECK_EQ(f.frame_id, p + 1);
    CHECK_EQ(f.tlv_count, p + 1 >= frames / 2 ? 3u : 2u);
    CHECK(frame_ok(&f));
    CHECK_EQ(f.dropped, 0u);
    CHECK_GE(f.log_ns, prev_log);
    CHECK_GE(f.log_ns, f.publish_time_ns);
    prev_log = f.log_ns;
    shmx_rec_frame_release(&f);
  }
  shmx_rec_frame f;
  CHECK_ERR(shmx_recording_read_at(r, frames, &f), SHMX_E_NOFRAME);
  CHECK_OK(shmx_recording_count_dropped(r, &dropped));
  CHECK_EQ(dropped, 0u);
  /* Random access by id: every id, in a scrambled order. */
  for (uint64_t i = 0; i < frames; i++) {
    uint64_t id = (i * 7 + 3) % frames + 1, pos = 0;
    CHECK_OK(shmx_recording_find_id(r, NULL, id, &pos));
    CHECK_EQ(pos, id - 1);
  }
  uint64_t pos;
  CHECK_ERR(shmx_recording_find_id(r, NULL, frames + 1, &pos), SHMX_E_NOFRAME);
  CHECK_ERR(shmx_recording_find_id(r, NULL, 0, &pos), SHMX_E_NOFRAME);
  CHECK_ERR(shmx_recording_find_id(r, "nope", 1, &pos), SHMX_E_STREAM);
  /* By time: each frame's own log time finds it (or a frame logged at the
   * same ns); before the start gives the first, after the end the last. */
  for (uint64_t p = 0; p < frames; p += 7) {
    shmx_rec_frame g;
    CHECK_OK(shmx_recording_read_at(r, p, &g));
    CHECK_OK(shmx_recording_find_time(r, NULL, g.log_ns, &pos));
    shmx_rec_frame h;
    CHECK_OK(shmx_recording_read_at(r, pos, &h));
    CHECK_EQ(h.log_ns, g.log_ns);
    CHECK_GE(pos, p);
    shmx_rec_frame_release(&h);
    shmx_rec_frame_release(&g);
  }
  CHECK_OK(shmx_recording_find_time(r, c0 ? c0->topic : NULL, 0, &pos));
  CHECK_EQ(pos, 0u);
  CHECK_OK(shmx_recording_find_time(r, NULL, UINT64_MAX, &pos));
  CHECK_EQ(pos, frames - 1);
  /* Stepping both ways. */
  pos = 0;
  CHECK_ERR(shmx_recording_step(r, NULL, -1, &pos), SHMX_E_NOFRAME);
  CHECK_OK(shmx_recording_step(r, NULL, 1, &pos));
  CHECK_EQ(pos, 1u);
  pos = frames - 1;
  CHECK_ERR(shmx_recording_step(r, NULL, 1, &pos), SHMX_E_NOFRAME);
  /* A frame held after close stays readable. */
  CHECK_OK(shmx_recording_read_at(r, frames / 3, &f));
  shmx_recording_close(r);
  CHECK(frame_ok(&f));
  shmx_rec_frame_release(&f);
  shmx_rec_frame_release(&f); /* twice: no-op */
}

TEST(roundtrip_stored) {
  shmx_rec_config c;
  shmx_rec_config_init(&c);
  c.chunk_bytes = 64u << 10;
  const char *p = path_in("stored.mcap");
  CHECK_OK(record_lockstep(p, &c, 300));
  check_recording(p, 300, "none");
  struct stat sb;
  CHECK(stat(p, &sb) == 0 && (sb.st_mode & 0777) == 0600);
  CHECK_ERR(shmx_recorder_open(p, &c, &(shmx_recorder *){0}), SHMX_E_EEXIST);
}

/* A compressed round trip, or a skip naming the codec this build lacks. */
static void roundtrip_codec(uint32_t codec, const char *leaf, const char *name) {
  shmx_rec_config c;
  shmx_rec_config_init(&c);
  c.chunk_bytes = 64u << 10;
  c.compression = codec;
  const char *p = path_in(leaf);
  int rc = record_lockstep(p, &c, 200);
  if (rc == SHMX_E_ENOSYS) {
    printf("# skipped: built without %s\n", name);
    return;
  }
  CHECK_OK(rc);
  check_recording(p, 200, name);
}

TEST(roundtrip_zstd) { roundtrip_codec(SHMX_REC_ZSTD, "z.mcap", "zstd"); }
TEST(roundtrip_lz4) { roundtrip_codec(SHMX_REC_LZ4, "l.mcap", "lz4"); }

/* Frames overwritten before the recorder read them are counted on the
 * next recorded frame, exactly. */
TEST(missed_frames_counted) {
  const char *name = harness_name("drop");
  shmx_server *s = producer(name);
  shmx_recorder *r;
  const char *p = path_in("drops.mcap");
  CHECK_OK(shmx_recorder_open(p, NULL, &r));
  CHECK_OK(shmx_recorder_add(r, name));
  CHECK_ERR(shmx_recorder_add(r, name), SHMX_E_DUPLICATE);
  CHECK_ERR(shmx_recorder_add(r, "bad/name"), SHMX_E_NAME);
  uint64_t k = 0;
  for (int burst = 0; burst < 20; burst++) {
    int n = 1 + (burst * 5) % 23; /* some bursts overrun the 8 slots */
    for (int i = 0; i < n; i++) CHECK_OK(publish(s, ++k, 0));
    CHECK_OK(shmx_recorder_run(r, 0, 0, NULL));
  }
  shmx_rec_stats st;
  shmx_recorder_stats(r, &st);
  CHECK_GT(st.dropped, 0u);
  CHECK_EQ(st.frames + st.dropped, k);
  CHECK_OK(shmx_recorder_close(r));
  shmx_server_destroy(s);
  shmx_recording *rec;
  CHECK_OK(shmx_recording_open(p, &rec));
  if (!rec) return;
  shmx_rec_info in;
  shmx_recording_info(rec, &in);
  uint64_t last = 0, sum = 0;
  for (uint64_t i = 0; i < in.frames; i++) {
    shmx_rec_frame f;
    CHECK_OK(shmx_recording_read_at(rec, i, &f));
    CHECK_EQ(f.frame_id - last - 1, f.dropped); /* the gap, exactly */
    CHECK(frame_ok(&f));
    sum += f.dropped;
    last = f.frame_id;
    shmx_rec_frame_release(&f);
  }
  CHECK_EQ(last, k);
  CHECK_EQ(sum, st.dropped);
  uint64_t d;
  CHECK_OK(shmx_recording_count_dropped(rec, &d));
  CHECK_EQ(d, st.dropped);
  shmx_recording_close(rec);
}

/* A producer that restarts: a new MCAP channel per session, ids restart. */
TEST(producer_restart_followed) {
  const char *name = harness_name("rst");
  const char *p = path_in("restart.mcap");
  shmx_recorder *r;
  CHECK_OK(shmx_recorder_open(p, NULL, &r));
  CHECK_OK(shmx_recorder_add(r, name)); /* not there yet */
  CHECK_OK(shmx_recorder_run(r, 0, 0, NULL));
  for (int run = 0; run < 3; run++) {
    shmx_server *s = producer(name);
    CHECK(s != NULL);
    if (!s) break;
    /* The second session runs ahead of the recorder: 21 frames in 8 slots
     * before it looks (it reads 14..21, then the rest in step); the 13 it
     * missed are counted on the first it gets. */
    uint64_t ahead = run == 1 ? 20 : 0;
    for (uint64_t k = 1; k <= ahead; k++) CHECK_OK(publish(s, k, 0));
    for (uint64_t k = ahead + 1; k <= ahead + 5; k++) {
      CHECK_OK(publish(s, k, 0));
      CHECK_OK(shmx_recorder_run(r, 0, 0, NULL));
    }
    shmx_server_destroy(s);
    CHECK_OK(shmx_recorder_run(r, 0, 0, NULL)); /* sees the close, detaches */
  }
  shmx_rec_stats st;
  shmx_recorder_stats(r, &st);
  CHECK_EQ(st.frames, 5u + 12u + 5u);
  CHECK_EQ(st.sessions, 3u);
  CHECK_OK(shmx_recorder_close(r));
  shmx_recording *rec;
  CHECK_OK(shmx_recording_open(p, &rec));
  if (!rec) return;
  shmx_rec_info in;
  shmx_recording_info(rec, &in);
  CHECK_EQ(in.channels, 3u);
  CHECK_EQ(in.frames, 22u);
  uint64_t pos, d;
  CHECK_OK(shmx_recording_find_id(rec, name, 4, &pos)); /* first session's */
  CHECK_EQ(pos, 3u);
  shmx_rec_frame f;
  CHECK_OK(shmx_recording_read_at(rec, 5, &f)); /* the second session's first */
  CHECK_EQ(f.frame_id, 14u);
  CHECK_EQ(f.dropped, 13u);
  shmx_rec_frame_release(&f);
  CHECK_OK(shmx_recording_count_dropped(rec, &d));
  CHECK_EQ(d, 13u);
  shmx_recording_close(rec);
}

/* A frame that fails its checksum (the producer, or a writer of the
 * segment, is buggy): the recorder neither spins nor re-attaches; it waits
 * for the frame to be overwritten and counts it as missed. */
TEST(bad_frame_is_waited_out) {
  const char *name = harness_name("bad");
  shmx_stream_spec sp = {.id = 1, .name = "b", .dtype = SHMX_DT_U8, .components = 1,
                         .bytes_per_elem = 1};
  shmx_server_config c;
  shmx_server_config_init(&c);
  c.streams = &sp;
  c.n_streams = 1;
  c.slots = 8;
  c.flags = SHMX_CREATE_CRC32C;
  shmx_server *s;
  CHECK_OK(shmx_server_create(name, &c, &s));
  shmx_recorder *r;
  const char *p = path_in("bad.mcap");
  CHECK_OK(shmx_recorder_open(p, NULL, &r));
  CHECK_OK(shmx_recorder_add(r, name));
  uint8_t b[64];
  for (uint64_t k = 1; k <= 12; k++) {
    memset(b, (int)k, sizeof b);
    if (k == 4) memcpy(b, "MARKER-bad-frame", 16);
    CHECK_OK(shmx_server_begin(s));
    CHECK_OK(shmx_server_append(s, 1, b, sizeof b, sizeof b));
    CHECK_OK(shmx_server_publish(s, (double)k, NULL));
    if (k == 4) { /* scribble on the published payload through the file */
      char path[256];
      snprintf(path, sizeof path, "/dev/shm/%s%s", SHMX_SEGMENT_PREFIX, name);
      int fd = open(path, O_RDWR);
      struct stat sb;
      CHECK(fd >= 0 && fstat(fd, &sb) == 0);
      uint8_t *m = mmap(NULL, (size_t)sb.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
      uint8_t *hit = m == MAP_FAILED ? NULL : memmem(m, (size_t)sb.st_size, "MARKER-bad-frame", 16);
      CHECK(hit != NULL);
      if (hit) hit[20] ^= 0xff;
      if (m != MAP_FAILED) munmap(m, (size_t)sb.st_size);
      close(fd);
      struct rusage u0, u1;
      getrusage(RUSAGE_SELF, &u0);
      uint64_t t0 = harness_now_ms();
      CHECK_OK(shmx_recorder_run(r, 100 * 1000 * 1000, 0, NULL)); /* 100 ms: must not spin */
      getrusage(RUSAGE_SELF, &u1);
      CHECK_GE(harness_now_ms() - t0, 90u);
      uint64_t cpu_us = (uint64_t)((u1.ru_utime.tv_sec - u0.ru_utime.tv_sec) * 1000000 +
                                   (u1.ru_utime.tv_usec - u0.ru_utime.tv_usec) +
                                   (u1.ru_stime.tv_sec - u0.ru_stime.tv_sec) * 1000000 +
                                   (u1.ru_stime.tv_usec - u0.ru_stime.tv_usec));
      CHECK_LT(cpu_us, 50000u); /* it sleeps between looks */
    }
    if (k < 4 || k > 11) CHECK_OK(shmx_recorder_run(r, 0, 0, NULL));
  }
  shmx_rec_stats st;
  shmx_recorder_stats(r, &st);
  CHECK_EQ(st.frames, 11u);
  CHECK_EQ(st.dropped, 1u);
  CHECK_EQ(st.sessions, 1u); /* never detached */
  CHECK_OK(shmx_recorder_close(r));
  shmx_server_destroy(s);
  shmx_recording *rec;
  CHECK_OK(shmx_recording_open(p, &rec));
  if (!rec) return;
  shmx_rec_frame f;
  CHECK_OK(shmx_recording_read_at(rec, 3, &f));
  CHECK_EQ(f.frame_id, 5u);
  CHECK_EQ(f.dropped, 1u);
  shmx_rec_frame_release(&f);
  shmx_recording_close(rec);
}

/* Split files: together they hold every frame once, in order. */
TEST(split_files_cover_the_run) {
  shmx_rec_config c;
  shmx_rec_config_init(&c);
  c.chunk_bytes = 64u << 10;
  c.split_bytes = 1u << 20;
  const char *p = path_in("split.mcap");
  CHECK_OK(record_lockstep(p, &c, 200));
  uint64_t next = 1;
  int files = 0;
  for (int i = 0; i < 100; i++) {
    char f[600];
    snprintf(f, sizeof f, "%s/split-%04d.mcap", g_dir, i);
    shmx_recording *r;
    if (access(f, F_OK)) break;
    files++;
    CHECK_OK(shmx_recording_open(f, &r));
    if (!r) break;
    shmx_rec_info in;
    shmx_recording_info(r, &in);
    for (uint64_t k = 0; k < in.frames; k++) {
      shmx_rec_frame fr;
      CHECK_OK(shmx_recording_read_at(r, k, &fr));
      CHECK_EQ(fr.frame_id, next);
      CHECK(frame_ok(&fr));
      next = fr.frame_id + 1;
      shmx_rec_frame_release(&fr);
    }
    shmx_recording_close(r);
  }
  CHECK_GT(files, 3);
  CHECK_EQ(next, 201u);
}

static size_t file_bytes(const char *p, uint8_t **out) {
  FILE *f = fopen(p, "rb");
  if (!f) return 0;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  *out = malloc((size_t)n);
  size_t got = fread(*out, 1, (size_t)n, f);
  fclose(f);
  return got;
}

static void put_file(const char *p, const uint8_t *b, size_t n) {
  unlink(p);
  FILE *f = fopen(p, "wb");
  if (f) {
    fwrite(b, 1, n, f);
    fclose(f);
  }
}

/* Read all it can; never crash. Returns frames read. */
static uint64_t read_all(const char *p) {
  shmx_recording *r;
  if (shmx_recording_open(p, &r)) return 0;
  shmx_rec_info in;
  shmx_recording_info(r, &in);
  uint64_t ok = 0, pos;
  for (uint64_t k = 0; k < in.frames; k++) {
    shmx_rec_frame f;
    if (shmx_recording_read_at(r, k, &f) == 0) {
      volatile uint8_t x = 0;
      for (uint32_t i = 0; i < f.tlv_count; i++)
        for (uint64_t j = 0; j < f.streams[i].bytes; j += 97) x ^= f.streams[i].data[j];
      ok++;
      shmx_rec_frame_release(&f);
    }
  }
  (void)shmx_recording_find_id(r, NULL, 17, &pos);
  (void)shmx_recording_find_time(r, NULL, in.start_ns + 1000, &pos);
  uint64_t d;
  (void)shmx_recording_count_dropped(r, &d);
  shmx_recording_close(r);
  return ok;
}

/* Truncated at many points: open refuses (no footer), recover keeps every
 * frame of every complete chunk, a prefix, never more as the cut moves
 * back; and nothing crashes. */
TEST(truncated_files_recover) {
  shmx_rec_config c;
  shmx_rec_config_init(&c);
  c.chunk_bytes = 64u << 10;
  const char *p = path_in("full.mcap");
  CHECK_OK(record_lockstep(p, &c, 120));
  uint8_t *b = NULL;
  size_t n = file_bytes(p, &b);
  CHECK_GT(n, 100000u);
  const char *cut = path_in("cut.mcap"), *out = path_in("rec.mcap");
  uint64_t prev = 1u << 30;
  for (size_t at = n; at > 8; at = at * 15 / 16) {
    put_file(cut, b, at);
    shmx_recording *r;
    if (at < n) CHECK_ERR(shmx_recording_open(cut, &r), SHMX_E_CORRUPT);
    unlink(out);
    shmx_recover_stats st;
    int rc = shmx_recording_recover(cut, out, &st);
    CHECK_OK(rc);
    if (rc) break;
    uint64_t got = read_all(out);
    CHECK_EQ(got, st.frames);
    CHECK_LE(got, prev);
    prev = got;
    /* What was kept is frames 1..got, whole and in order. */
    shmx_recording *rr;
    if (got && shmx_recording_open(out, &rr) == 0) {
      for (uint64_t k = 0; k < got; k++) {
        shmx_rec_frame f;
        CHECK_OK(shmx_recording_read_at(rr, k, &f));
        CHECK_EQ(f.frame_id, k + 1);
        CHECK(frame_ok(&f));
        shmx_rec_frame_release(&f);
      }
      shmx_recording_close(rr);
    }
    if (at == n) CHECK_EQ(got, 120u);
  }
  CHECK_EQ(prev, 0u);
  CHECK_ERR(shmx_recording_recover(cut, out, NULL), SHMX_E_EEXIST);
  free(b);
}

/* Hostile bytes: flip bytes all over a recording (summary and footer
 * included); open, read, seek and recover give errors, never a crash;
 * and a flipped stored chunk is caught by its CRC in recovery. */
TEST(hostile_files) {
  shmx_rec_config c;
  shmx_rec_config_init(&c);
  c.chunk_bytes = 64u << 10;
  const char *p = path_in("good.mcap");
  CHECK_OK(record_lockstep(p, &c, 60));
  uint8_t *b = NULL;
  size_t n = file_bytes(p, &b);
  const char *bad = path_in("bad.mcap"), *out = path_in("badrec.mcap");
  uint64_t seed = 12345;
  for (int round = 0; round < 400; round++) {
    uint8_t *m = malloc(n);
    memcpy(m, b, n);
    int flips = 1 + round % 4;
    for (int i = 0; i < flips; i++) {
      seed = seed * 6364136223846793005ull + 1442695040888963407ull;
      /* Half the rounds aim at the last 4 KiB: summary, offsets, footer. */
      size_t at = round % 2 ? (size_t)(seed >> 33) % n : n - 1 - (size_t)(seed >> 33) % 4096;
      m[at] ^= (uint8_t)(1u << ((seed >> 20) & 7)) | (round % 8 == 0 ? 0xff : 0);
    }
    put_file(bad, m, n);
    read_all(bad);
    unlink(out);
    (void)shmx_recording_recover(bad, out, NULL);
    read_all(out);
    free(m);
  }
  /* One byte of stored stream data flipped: recovery drops that chunk (its
   * CRC fails) and keeps the rest. */
  uint8_t *m = malloc(n);
  memcpy(m, b, n);
  m[4096] ^= 0x10;
  put_file(bad, m, n);
  unlink(out);
  shmx_recover_stats st;
  CHECK_OK(shmx_recording_recover(bad, out, &st));
  CHECK_EQ(st.bad_chunks, 1u);
  CHECK_LT(st.frames, 60u);
  CHECK_GT(st.frames, 0u);
  free(m);
  /* Not MCAP at all. */
  put_file(bad, (const uint8_t *)"hello, world, not a recording at all.....", 40);
  shmx_recording *r;
  CHECK_ERR(shmx_recording_open(bad, &r), SHMX_E_CORRUPT);
  unlink(out);
  CHECK_ERR(shmx_recording_recover(bad, out, NULL), SHMX_E_CORRUPT);
  CHECK_ERR(shmx_recording_open(path_in("absent.mcap"), &r), SHMX_E_ENOENT);
  free(b);
}

/* A recorder SIGKILLed mid-run: recovery returns frames 1..N, each whole,
 * N at least every frame of the chunks closed before the kill. */
static int live_readers(shmx_server *s) {
  shmx_reader_info ri[16];
  int n = shmx_server_readers(s, ri, 16), u = 0;
  for (int i = 0; i < n; i++) u += ri[i].in_use;
  return u;
}

static const char *g_kill_name, *g_kill_path;
static int kill_child(void *arg) {
  (void)arg;
  shmx_rec_config c;
  shmx_rec_config_init(&c);
  c.chunk_bytes = 64u << 10;
  shmx_recorder *r;
  if (shmx_recorder_open(g_kill_path, &c, &r) || shmx_recorder_add(r, g_kill_name)) return 3;
  shmx_recorder_run(r, -1, 0, NULL); /* until killed */
  return 4;
}

TEST(sigkill_then_recover) {
  for (int round = 0; round < 6; round++) {
    char leaf[64];
    snprintf(leaf, sizeof leaf, "killed-%d.mcap", round);
    g_kill_path = path_in(leaf);
    g_kill_name = harness_name("kill");
    shmx_stream_spec sp[] = {{.id = 1, .name = "pos", .dtype = SHMX_DT_F32, .components = 3,
                              .layout = SHMX_LAYOUT_AOS_VECTOR, .bytes_per_elem = 12},
                             {.id = 2, .name = "img", .dtype = SHMX_DT_U8, .components = 1,
                              .bytes_per_elem = 1}};
    shmx_server_config cf;
    shmx_server_config_init(&cf);
    cf.streams = sp;
    cf.n_streams = 2;
    cf.slots = 256; /* the recorder keeps up: nothing dropped */
    cf.frame_bytes_cap = 256u << 10;
    shmx_server *s;
    CHECK_OK(shmx_server_create(g_kill_name, &cf, &s));
    pid_t pid = harness_spawn(kill_child, NULL);
    CHECK(WAIT_UNTIL(live_readers(s) == 1, 20000));
    uint64_t k = 0;
    char part[600];
    snprintf(part, sizeof part, "%s.part", g_kill_path);
    struct stat sb;
    /* Publish, paced by what the recorder has read, until the file holds
     * a few chunks (more each round), then kill at once. */
    uint64_t want = (uint64_t)(200 + round * 150) << 10;
    uint64_t end = harness_now_ms() + 30000;
    while (harness_now_ms() < end) {
      shmx_reader_info ri[16];
      int nn = shmx_server_readers(s, ri, 16);
      uint64_t seen = 0;
      for (int i = 0; i < nn; i++)
        if (ri[i].in_use) seen = ri[i].last_frame_seen;
      if (k - seen < 128) {
        CHECK_OK(publish(s, ++k, 0));
      } else {
        usleep(100);
      }
      if (stat(part, &sb) == 0 && (uint64_t)sb.st_size >= want) break;
    }
    kill(pid, SIGKILL);
    harness_wait(pid, 10000);
    shmx_server_destroy(s);
    char out[600];
    snprintf(out, sizeof out, "%s.recovered", g_kill_path);
    shmx_recover_stats st;
    CHECK_OK(shmx_recording_recover(part, out, &st));
    CHECK_GE(st.chunks, 2u);
    shmx_recording *r;
    CHECK_OK(shmx_recording_open(out, &r));
    if (!r) continue;
    shmx_rec_info in;
    shmx_recording_info(r, &in);
    CHECK_EQ(in.frames, st.frames);
    CHECK_LE(in.frames, k);
    for (uint64_t i = 0; i < in.frames; i++) {
      shmx_rec_frame f;
      CHECK_OK(shmx_recording_read_at(r, i, &f));
      CHECK_EQ(f.frame_id, i + 1);
      CHECK_EQ(f.dropped, 0u);
      CHECK(frame_ok(&f));
      shmx_rec_frame_release(&f);
    }
    shmx_recording_close(r);
    printf("# round %d: published %llu, recovered %llu (%llu salvaged from the open chunk) "
           "in %llu chunks\n", round, (unsigned long long)k, (unsigned long long)st.frames,
           (unsigned long long)st.salvaged, (unsigned long long)st.chunks);
  }
}

/* The folding CRC32 against the byte-wise table: every length 0..4096 at
 * every misalignment 0..15, one call and split in two calls; and the known
 * check value of "123456789". */
TEST(crc32_matches_reference) {
  static uint8_t buf[4096 + 64];
  uint64_t s = 1;
  for (size_t i = 0; i < sizeof buf; i++) {
    s = s * 6364136223846793005ull + 1;
    buf[i] = (uint8_t)(s >> 56);
  }
  CHECK_EQ(shmx__crc32(0, "123456789", 9), 0xCBF43926u);
  CHECK_EQ(shmx__crc32_table(0, "123456789", 9), 0xCBF43926u);
  int bad = 0;
  for (size_t off = 0; off < 16; off++)
    for (size_t n = 0; n <= 4096 && bad < 5; n++) {
      uint32_t want = shmx__crc32_table(0, buf + off, n);
      uint32_t got = shmx__crc32(0, buf + off, n);
      uint32_t split = shmx__crc32(shmx__crc32(0, buf + off, n / 3), buf + off + n / 3, n - n / 3);
      if (got != want || split != want) {
        HARNESS_FAIL("crc32 of %zu bytes at +%zu: %08x / %08x, want %08x", n, off, got, split,
                     want);
        bad++;
      }
    }
  printf("# crc32: %s\n", shmx__crc32_fast() ? "pclmulqdq folding" : "zlib/table");
}

TEST(bad_arguments) {
  shmx_recorder *r;
  shmx_rec_config c;
  shmx_rec_config_init(&c);
  c.chunk_bytes = 10;
  CHECK_ERR(shmx_recorder_open(path_in("x.mcap"), &c, &r), SHMX_E_ARG);
  CHECK_ERR(shmx_recorder_open(NULL, NULL, &r), SHMX_E_ARG);
  CHECK_ERR(shmx_recorder_open(path_in("no/such/dir/x.mcap"), NULL, &r), SHMX_E_ENOENT);
  shmx_rec_config_init(&c);
  CHECK_OK(shmx_recorder_open(path_in("empty.mcap"), &c, &r));
  for (int i = 0; i < 64; i++) {
    char nm[32];
    snprintf(nm, sizeof nm, "ch%d", i);
    CHECK_OK(shmx_recorder_add(r, nm));
  }
  CHECK_ERR(shmx_recorder_add(r, "one-too-many"), SHMX_E_LIMIT);
  CHECK_OK(shmx_recorder_close(r));
  /* An empty recording is a valid file with no frames. */
  shmx_recording *rec;
  CHECK_OK(shmx_recording_open(path_in("empty.mcap"), &rec));
  if (rec) {
    shmx_rec_info in;
    shmx_recording_info(rec, &in);
    CHECK_EQ(in.frames, 0u);
    CHECK_EQ(in.channels, 0u);
    uint64_t pos = 0;
    shmx_rec_frame f;
    CHECK_ERR(shmx_recording_read_at(rec, 0, &f), SHMX_E_NOFRAME);
    CHECK_ERR(shmx_recording_find_time(rec, NULL, 0, &pos), SHMX_E_NOFRAME);
    CHECK_ERR(shmx_recording_find_id(rec, NULL, 1, &pos), SHMX_E_NOFRAME);
    CHECK_ERR(shmx_recording_step(rec, NULL, 1, &pos), SHMX_E_NOFRAME);
    shmx_recording_close(rec);
  }
  CHECK_OK(shmx_recorder_close(NULL));
  shmx_recording_close(NULL);
  shmx_rec_frame_release(NULL);
}

int main(void) {
  snprintf(g_dir, sizeof g_dir, "/tmp/shmx-rec-test-%d", (int)getpid());
  mkdir(g_dir, 0700);
  RUN(roundtrip_stored);
  RUN(roundtrip_zstd);
  RUN(roundtrip_lz4);
  RUN(missed_frames_counted);
  RUN(producer_restart_followed);
  RUN(bad_frame_is_waited_out);
  RUN(split_files_cover_the_run);
  RUN(truncated_files_recover);
  RUN(hostile_files);
  RUN(sigkill_then_recover);
  RUN(crc32_matches_reference);
  RUN(bad_arguments);
  int rc = harness_done();
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
  if (system(cmd)) rc = rc ? rc : 1;
  return rc;
}

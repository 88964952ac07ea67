/*
 * layout_dump.c -- print a channel's segment bytes for one fixed history,
 * so that two builds can be compared: `make test-windows` runs the Linux
 * and the Windows (Wine) build and requires identical output (issue 14: a
 * Windows producer's segment is byte for byte a Linux producer's).
 *
 * The history: a channel with four streams (one with extra bytes), a user
 * schema record, a stream added after create, CRC32C checksums, three
 * frames published with given ids; one reader attached that read frame 2
 * in order and sent a control message. Printed: the header's first 512
 * bytes in hex, then an FNV-1a hash of every 4 KiB block of the control
 * part, then each frame slot's used bytes hashed. Fields that hold times,
 * pids, the random session id and the lock file's identity are zeroed
 * first (listed in volatile_fields()); nothing else is.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#ifdef _WIN32
#include <fcntl.h>
#include <io.h>
#endif

#include "format.h"
#include "segment.h"
#include "shmx.h"

static uint64_t fnv(const uint8_t *p, uint64_t n) {
  uint64_t h = 1469598103934665603ull;
  for (uint64_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

static void zero(uint8_t *base, uint64_t off, uint64_t len) { memset(base + off, 0, len); }

/* Zero what differs between any two runs on any system. */
static void volatile_fields(uint8_t *ctl, const shmx__geom *g) {
  zero(ctl, offsetof(struct shmx__hdr, session_id), 8);
  zero(ctl, offsetof(struct shmx__hdr, owner_pid), 4);
  zero(ctl, offsetof(struct shmx__hdr, create_ns), 8);
  zero(ctl, offsetof(struct shmx__hdr, last_publish_ns), 8);
  zero(ctl, offsetof(struct shmx__hdr, lock_dev), 16);
  for (uint32_t i = 0; i < g->slots; i++)
    zero(ctl, g->slotdesc_off + (uint64_t)i * g->slotdesc_stride +
                  offsetof(struct shmx__slotdesc, publish_ns), 8);
  for (uint32_t i = 0; i < g->reader_slots; i++) {
    uint64_t r = g->readers_off + (uint64_t)i * SHMX__READER_STRIDE;
    zero(ctl, r + offsetof(struct shmx__reader, pid), 4);
    zero(ctl, r + offsetof(struct shmx__reader, heartbeat_ns), 8);
    zero(ctl, r + offsetof(struct shmx__reader, attach_ns), 8);
    zero(ctl, r + offsetof(struct shmx__reader, pid_start), 8);
  }
}

static int fail(const char *what, int rc) {
  fprintf(stderr, "layout_dump: %s: %s (%s)\n", what, shmx_err_name(rc), shmx_errmsg());
  return 1;
}

int main(int argc, char **argv) {
#ifdef _WIN32
  _setmode(_fileno(stdout), _O_BINARY); /* the same bytes as on Linux */
#endif
  char name[64];
  snprintf(name, sizeof name, "layout-%s", argc > 1 ? argv[1] : "dump");
  static const uint8_t extra[5] = {'R', 'G', 'B', 8, 0};
  shmx_stream_spec sp[4] = {
      {1, "image", SHMX_DT_U8, 3, SHMX_LAYOUT_AOS_VECTOR, 3, extra, sizeof extra},
      {2, "pos", SHMX_DT_F32, 3, SHMX_LAYOUT_AOS_VECTOR, 12, NULL, 0},
      {3, "ids", SHMX_DT_U64, 1, SHMX_LAYOUT_SOA_SCALAR, 8, NULL, 0},
      {4, "tiny", SHMX_DT_U8, 1, SHMX_LAYOUT_SOA_SCALAR, 1, NULL, 0},
  };
  shmx_server_config c;
  shmx_server_config_init(&c);
  c.slots = 4;
  c.reader_slots = 3;
  c.frame_bytes_cap = 70000;
  c.flags = SHMX_CREATE_CRC32C;
  c.streams = sp;
  c.n_streams = 4;
  shmx_server *s;
  int rc;
  if ((rc = shmx_server_create(name, &c, &s))) return fail("create", rc);
  if ((rc = shmx_server_static_append(s, "calib:v1", 8))) return fail("user record", rc);
  shmx_stream_spec late = {5, "late", SHMX_DT_I16, 2, SHMX_LAYOUT_AOS_VECTOR, 4, NULL, 0};
  if ((rc = shmx_server_add_stream(s, &late))) return fail("add stream", rc);
  shmx_client *cl;
  if ((rc = shmx_client_open(name, &cl))) return fail("open", rc);
  static uint8_t img[64 * 48 * 3];
  float pos[30];
  uint64_t ids[10];
  for (uint64_t f = 1; f <= 3; f++) {
    for (size_t i = 0; i < sizeof img; i++) img[i] = (uint8_t)(i * 13 + f);
    for (int i = 0; i < 30; i++) pos[i] = (float)(i * 0.25 + (double)f);
    for (int i = 0; i < 10; i++) ids[i] = f * 1000 + (uint64_t)i;
    uint8_t t = (uint8_t)f;
    int16_t l[2] = {(int16_t)-f, (int16_t)f};
    if ((rc = shmx_server_begin(s)) || (rc = shmx_server_append(s, 1, img, sizeof img, sizeof img / 3)) ||
        (rc = shmx_server_append(s, 2, pos, sizeof pos, 10)) ||
        (rc = shmx_server_append(s, 3, ids, sizeof ids, 10)) ||
        (rc = shmx_server_append(s, 4, &t, 1, 1)) ||
        (f == 3 && (rc = shmx_server_append(s, 5, l, 4, 1))) ||
        (rc = shmx_server_publish_id(s, f * 10, (double)f * 0.125)))
      return fail("publish", rc);
    if (f == 2) {
      shmx_frame fr;
      if ((rc = shmx_client_next(cl, &fr))) return fail("read", rc);
      shmx_frame_release(cl, &fr);
      if ((rc = shmx_client_send(cl, 7, "hello", 5))) return fail("send", rc);
    }
  }
  shmx__seg seg;
  if ((rc = shmx__seg_attach(name, SHMX__ATTACH_RO, &seg))) return fail("attach", rc);
  const shmx__geom *g = &seg.g;
  static uint8_t ctl[1u << 22];
  if (g->frames_off > sizeof ctl) return fail("control part too big", SHMX_E_OVERFLOW);
  memcpy(ctl, seg.ctl, g->frames_off);
  volatile_fields(ctl, g);
  printf("total %llu frames_off %llu slot_bytes %llu slots %u readers %u\n",
         (unsigned long long)g->total, (unsigned long long)g->frames_off,
         (unsigned long long)g->slot_bytes, g->slots, g->reader_slots);
  for (int i = 0; i < 512; i++) printf("%02x%s", ctl[i], i % 32 == 31 ? "\n" : "");
  for (uint64_t o = 0; o < g->frames_off; o += 4096) {
    uint64_t n = g->frames_off - o < 4096 ? g->frames_off - o : 4096;
    printf("ctl %08llx %016llx\n", (unsigned long long)o, (unsigned long long)fnv(ctl + o, n));
  }
  for (uint32_t i = 0; i < g->slots; i++) {
    const struct shmx__slotdesc *d =
        (const void *)(ctl + g->slotdesc_off + (uint64_t)i * g->slotdesc_stride);
    uint64_t used = d->used_bytes < g->slot_bytes ? d->used_bytes : g->slot_bytes;
    printf("slot %u frame %llu used %llu %016llx\n", i, (unsigned long long)d->frame_id,
           (unsigned long long)used,
           (unsigned long long)fnv(seg.frames + (uint64_t)i * g->slot_bytes, used));
  }
  shmx__seg_detach(&seg);
  shmx_client_close(cl);
  shmx_server_destroy(s);
  return 0;
}

/*
 * wire.c -- encode and check the bridge's messages (see wire.h and
 * docs/bridge.md). No sockets here: what comes off the network is parsed
 * by these functions only, and they are what fuzz/fuzz_bridge.c exercises.
 */
#include "wire.h"

#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "le.h"

void shmx__br_hdr_put(uint8_t *o, const shmx__br_hdr *h) {
  uint64_t t;
  memcpy(&t, &h->sim_time, 8);
  shmx__put32(o + 0, SHMX__BR_MAGIC);
  o[4] = SHMX__BR_VERSION;
  o[5] = (uint8_t)h->type;
  o[6] = (uint8_t)h->codec;
  o[7] = 0;
  shmx__put64(o + 8, h->sender_id);
  shmx__put64(o + 16, h->session);
  shmx__put32(o + 24, h->schema_gen);
  shmx__put32(o + 28, h->n_streams);
  shmx__put64(o + 32, h->frame_id);
  shmx__put64(o + 40, t);
  shmx__put64(o + 48, h->origin_ns);
  shmx__put64(o + 56, h->sender_dropped);
}

int shmx__br_hdr_get(const uint8_t *p, size_t n, shmx__br_hdr *h,
                     shmx__br_dirent dir[SHMX_FRAME_MAX_STREAMS], size_t *tail) {
  if (tail) *tail = 0;
  if (n < SHMX__BR_HDR)
    return shmx__err(SHMX_E_CORRUPT, "message of %zu bytes: shorter than a header", n);
  if (shmx__get32(p) != SHMX__BR_MAGIC) return shmx__err(SHMX_E_CORRUPT, "bad magic");
  if (p[4] != SHMX__BR_VERSION)
    return shmx__err(SHMX_E_CORRUPT, "wire version %u (this is %u)", p[4],
                     SHMX__BR_VERSION);
  memset(h, 0, sizeof *h);
  h->type = p[5];
  h->codec = p[6];
  h->sender_id = shmx__get64(p + 8);
  h->session = shmx__get64(p + 16);
  h->schema_gen = shmx__get32(p + 24);
  h->n_streams = shmx__get32(p + 28);
  h->frame_id = shmx__get64(p + 32);
  uint64_t t = shmx__get64(p + 40);
  memcpy(&h->sim_time, &t, 8);
  h->origin_ns = shmx__get64(p + 48);
  h->sender_dropped = shmx__get64(p + 56);
  if (p[7]) return shmx__err(SHMX_E_CORRUPT, "header padding");
  if (h->sender_id == 0) return shmx__err(SHMX_E_CORRUPT, "sender id 0");
  switch (h->type) {
  case SHMX__BR_SCHEMA:
  case SHMX__BR_BYE:
    if (n != SHMX__BR_HDR || h->n_streams || h->codec)
      return shmx__err(SHMX_E_CORRUPT, "control message with a directory");
    return 0;
  case SHMX__BR_FRAME:
    break;
  case SHMX__BR_BATCH:
    if (h->codec || h->n_streams == 0 || h->n_streams > SHMX__BR_BATCH_MAX_FRAMES)
      return shmx__err(SHMX_E_CORRUPT, "batch of %u frames", h->n_streams);
    if (tail) *tail = n - SHMX__BR_HDR;
    return 0;
  default:
    return shmx__err(SHMX_E_CORRUPT, "message type %u", h->type);
  }
  if (h->codec > SHMX__BR_LZ4) return shmx__err(SHMX_E_CORRUPT, "codec %u", h->codec);
  if (h->frame_id == 0 || h->frame_id > SHMX_FRAME_ID_MAX)
    return shmx__err(SHMX_E_CORRUPT, "frame id %llu", (unsigned long long)h->frame_id);
  if (h->n_streams > SHMX_FRAME_MAX_STREAMS ||
      n - SHMX__BR_HDR < (size_t)h->n_streams * SHMX__BR_DIRENT)
    return shmx__err(SHMX_E_CORRUPT, "directory of %u streams in %zu bytes",
                     h->n_streams, n - SHMX__BR_HDR);
  const uint8_t *d = p + SHMX__BR_HDR;
  for (uint32_t i = 0; i < h->n_streams; i++, d += SHMX__BR_DIRENT) {
    dir[i].stream_id = shmx__get32(d);
    if (shmx__get32(d + 4)) return shmx__err(SHMX_E_CORRUPT, "directory padding");
    dir[i].elem_count = shmx__get64(d + 8);
    dir[i].bytes = shmx__get64(d + 16);
    dir[i].wire_bytes = shmx__get64(d + 24);
  }
  if (tail) *tail = n - SHMX__BR_HDR - (size_t)h->n_streams * SHMX__BR_DIRENT;
  return 0;
}

int shmx__br_batch_next(const uint8_t *p, size_t n, size_t *off, const uint8_t **msg,
                        size_t *len) {
  if (n - *off < 8) return shmx__err(SHMX_E_CORRUPT, "batch record past the end");
  uint64_t l = shmx__get32(p + *off);
  if (shmx__get32(p + *off + 4) || l < SHMX__BR_HDR || n - *off - 8 < l ||
      n - *off - 8 < ((l + 7) & ~7ull))
    return shmx__err(SHMX_E_CORRUPT, "batch record of %llu bytes", (unsigned long long)l);
  if (p[*off + 8 + 5] != SHMX__BR_FRAME)
    return shmx__err(SHMX_E_CORRUPT, "batch record is not a frame");
  *msg = p + *off + 8;
  *len = (size_t)l;
  *off += 8 + (size_t)((l + 7) & ~7ull);
  return 0;
}

size_t shmx__br_batch_put(uint8_t *dst, const uint8_t *msg, size_t len) {
  shmx__put32(dst, (uint32_t)len);
  shmx__put32(dst + 4, 0);
  if (dst + 8 != msg) memmove(dst + 8, msg, len);
  size_t padded = (len + 7) & ~(size_t)7;
  memset(dst + 8 + len, 0, padded - len);
  return 8 + padded;
}

void shmx__br_dirent_put(uint8_t *part, uint32_t i, const shmx__br_dirent *e) {
  uint8_t *d = part + SHMX__BR_HDR + (size_t)i * SHMX__BR_DIRENT;
  shmx__put32(d, e->stream_id);
  shmx__put32(d + 4, 0);
  shmx__put64(d + 8, e->elem_count);
  shmx__put64(d + 16, e->bytes);
  shmx__put64(d + 24, e->wire_bytes);
}

int shmx__br_dir_check(const shmx__br_dirent *dir, uint32_t n, uint32_t codec,
                       uint64_t cap, uint64_t data_len) {
  uint64_t sum = 0, wire = 0;
  for (uint32_t i = 0; i < n; i++) {
    if (!shmx__add_ok(sum, dir[i].bytes, &sum) || sum > cap)
      return shmx__err(SHMX_E_CORRUPT, "frame of more than %llu bytes",
                       (unsigned long long)cap);
    if (!shmx__add_ok(wire, dir[i].wire_bytes, &wire) || wire > data_len)
      return shmx__err(SHMX_E_CORRUPT, "streams exceed the %llu data bytes",
                       (unsigned long long)data_len);
    if (codec == SHMX__BR_RAW && dir[i].wire_bytes != dir[i].bytes)
      return shmx__err(SHMX_E_CORRUPT, "stream %u: %llu wire bytes for %llu raw",
                       dir[i].stream_id, (unsigned long long)dir[i].wire_bytes,
                       (unsigned long long)dir[i].bytes);
  }
  if (wire != data_len)
    return shmx__err(SHMX_E_CORRUPT, "%llu data bytes, directory says %llu",
                     (unsigned long long)data_len, (unsigned long long)wire);
  return 0;
}

/*
 * wire.c -- encode and check the bridge's messages (see wire.h and
 * docs/bridge.md). No sockets here: what comes off the network is parsed
 * by these functions only, and they are what fuzz/fuzz_bridge.c exercises.
 */
#include "wire.h"

#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "schema.h"

static void put32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get32(const uint8_t *p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; i++) v |= (uint32_t)p[i] << (8 * i);
  return v;
}
static uint64_t get64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
  return v;
}
static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

void shmx__br_hdr_put(uint8_t *o, const shmx__br_hdr *h) {
  uint64_t t;
  memcpy(&t, &h->sim_time, 8);
  put32(o + 0, SHMX__BR_MAGIC);
  o[4] = SHMX__BR_VERSION;
  o[5] = (uint8_t)h->type;
  o[6] = (uint8_t)h->codec;
  o[7] = 0;
  put64(o + 8, h->sender_id);
  put64(o + 16, h->session);
  put32(o + 24, h->schema_gen);
  put32(o + 28, h->n_streams);
  put64(o + 32, h->frame_id);
  put64(o + 40, t);
  put64(o + 48, h->origin_ns);
  put64(o + 56, h->sender_dropped);
}

int shmx__br_hdr_get(const uint8_t *p, size_t n, shmx__br_hdr *h,
                     shmx__br_dirent dir[SHMX_FRAME_MAX_STREAMS], size_t *tail) {
  if (tail) *tail = 0;
  if (n < SHMX__BR_HDR)
    return shmx__err(SHMX_E_CORRUPT, "message of %zu bytes: shorter than a header", n);
  if (get32(p) != SHMX__BR_MAGIC) return shmx__err(SHMX_E_CORRUPT, "bad magic");
  if (p[4] != SHMX__BR_VERSION)
    return shmx__err(SHMX_E_CORRUPT, "wire version %u (this is %u)", p[4],
                     SHMX__BR_VERSION);
  memset(h, 0, sizeof *h);
  h->type = p[5];
  h->codec = p[6];
  h->sender_id = get64(p + 8);
  h->session = get64(p + 16);
  h->schema_gen = get32(p + 24);
  h->n_streams = get32(p + 28);
  h->frame_id = get64(p + 32);
  uint64_t t = get64(p + 40);
  memcpy(&h->sim_time, &t, 8);
  h->origin_ns = get64(p + 48);
  h->sender_dropped = get64(p + 56);
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
    dir[i].stream_id = get32(d);
    if (get32(d + 4)) return shmx__err(SHMX_E_CORRUPT, "directory padding");
    dir[i].elem_count = get64(d + 8);
    dir[i].bytes = get64(d + 16);
    dir[i].wire_bytes = get64(d + 24);
  }
  if (tail) *tail = n - SHMX__BR_HDR - (size_t)h->n_streams * SHMX__BR_DIRENT;
  return 0;
}

int shmx__br_batch_next(const uint8_t *p, size_t n, size_t *off, const uint8_t **msg,
                        size_t *len) {
  if (n - *off < 8) return shmx__err(SHMX_E_CORRUPT, "batch record past the end");
  uint64_t l = get32(p + *off);
  if (get32(p + *off + 4) || l < SHMX__BR_HDR || n - *off - 8 < l ||
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
  put32(dst, (uint32_t)len);
  put32(dst + 4, 0);
  if (dst + 8 != msg) memmove(dst + 8, msg, len);
  size_t padded = (len + 7) & ~(size_t)7;
  memset(dst + 8 + len, 0, padded - len);
  return 8 + padded;
}

void shmx__br_dirent_put(uint8_t *part, uint32_t i, const shmx__br_dirent *e) {
  uint8_t *d = part + SHMX__BR_HDR + (size_t)i * SHMX__BR_DIRENT;
  put32(d, e->stream_id);
  put32(d + 4, 0);
  put64(d + 8, e->elem_count);
  put64(d + 16, e->bytes);
  put64(d + 24, e->wire_bytes);
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

/* ---- schema blob ---------------------------------------------------------
 * geometry (48 B): slots u32, reader_slots u32, static_cap u64, frame_cap
 *   u64, control_per_reader u64, flags u32, n_streams u32, n_user u32,
 *   name_len u32; then the origin channel's name, padded to 8
 * n_streams x: id, dtype, components, layout, bytes_per_elem (u32 each),
 *   name_len u16, extra_len u16, then name, extra; padded to 8
 * n_user x: len u32, 0 u32, bytes; padded to 8                            */

static size_t pad8(size_t n) { return (n + 7) & ~(size_t)7; }

int shmx__br_schema_encode(const char *name, const shmx_header_info *g, const shmx_stream_info *st,
                           int n_streams, const uint8_t *const *user,
                           const uint32_t *user_len, int n_user, uint8_t **out,
                           size_t *len) {
  size_t name_len = strlen(name);
  size_t n = SHMX__BR_GEOM + pad8(name_len);
  for (int i = 0; i < n_streams; i++)
    n += pad8(SHMX__BR_SPEC + strlen(st[i].name) + st[i].extra_len);
  for (int i = 0; i < n_user; i++) n += pad8(8 + (size_t)user_len[i]);
  uint8_t *b = calloc(1, n), *p = b;
  if (!b) return shmx__syserr(ENOMEM, "schema message of %zu bytes", n);
  put32(p, g->slots);
  put32(p + 4, g->reader_slots);
  put64(p + 8, g->static_bytes_cap);
  put64(p + 16, g->frame_bytes_cap);
  put64(p + 24, g->control_per_reader);
  put32(p + 32, g->flags);
  put32(p + 36, (uint32_t)n_streams);
  put32(p + 40, (uint32_t)n_user);
  put32(p + 44, (uint32_t)name_len);
  memcpy(p + SHMX__BR_GEOM, name, name_len);
  p += SHMX__BR_GEOM + pad8(name_len);
  for (int i = 0; i < n_streams; i++) {
    size_t nl = strlen(st[i].name);
    put32(p, st[i].id);
    put32(p + 4, st[i].dtype);
    put32(p + 8, st[i].components);
    put32(p + 12, st[i].layout);
    put32(p + 16, st[i].bytes_per_elem);
    p[20] = (uint8_t)nl;
    p[21] = (uint8_t)(nl >> 8);
    p[22] = (uint8_t)st[i].extra_len;
    p[23] = (uint8_t)(st[i].extra_len >> 8);
    memcpy(p + SHMX__BR_SPEC, st[i].name, nl);
    if (st[i].extra_len) memcpy(p + SHMX__BR_SPEC + nl, st[i].extra, st[i].extra_len);
    p += pad8(SHMX__BR_SPEC + nl + st[i].extra_len);
  }
  for (int i = 0; i < n_user; i++) {
    put32(p, user_len[i]);
    if (user_len[i]) memcpy(p + 8, user[i], user_len[i]);
    p += pad8(8 + (size_t)user_len[i]);
  }
  *out = b;
  *len = n;
  return 0;
}

void shmx__br_schema_free(shmx__br_schema *s) {
  free(s->streams);
  free(s->names);
  free(s->user);
  free(s->user_len);
  memset(s, 0, sizeof *s);
}

int shmx__br_schema_decode(const uint8_t *p, size_t n, shmx__br_schema *s) {
  memset(s, 0, sizeof *s);
  if (n < SHMX__BR_GEOM)
    return shmx__err(SHMX_E_CORRUPT, "schema of %zu bytes: no geometry", n);
  s->slots = get32(p);
  s->reader_slots = get32(p + 4);
  s->static_cap = get64(p + 8);
  s->frame_cap = get64(p + 16);
  s->control_per_reader = get64(p + 24);
  s->flags = get32(p + 32);
  s->n_streams = get32(p + 36);
  s->n_user = get32(p + 40);
  uint32_t name_len = get32(p + 44);
  if (name_len == 0 || name_len > SHMX_NAME_MAX || n - SHMX__BR_GEOM < pad8(name_len))
    return shmx__err(SHMX_E_CORRUPT, "schema: channel name of %u bytes", name_len);
  memcpy(s->name, p + SHMX__BR_GEOM, name_len);
  s->name[name_len] = 0;
  if (strlen(s->name) != name_len || shmx_name_check(s->name))
    return shmx__err(SHMX_E_CORRUPT, "schema: invalid channel name");
  size_t off = SHMX__BR_GEOM + pad8(name_len);
  if (s->n_streams > SHMX__BR_MAX_STREAMS || s->n_user > SHMX__BR_MAX_USER)
    return shmx__err(SHMX_E_CORRUPT, "schema of %u streams and %u user records",
                     s->n_streams, s->n_user);
  /* Every record takes at least 8 bytes: bound the counts by the blob. */
  if ((uint64_t)s->n_streams * pad8(SHMX__BR_SPEC + 1) + (uint64_t)s->n_user * 8 >
      n - off)
    return shmx__err(SHMX_E_CORRUPT, "schema counts exceed its %zu bytes", n);
  s->streams = calloc(s->n_streams ? s->n_streams : 1, sizeof *s->streams);
  s->names = calloc((size_t)s->n_streams * (SHMX_STREAM_NAME_MAX + 1) + 1, 1);
  s->user = calloc(s->n_user ? s->n_user : 1, sizeof *s->user);
  s->user_len = calloc(s->n_user ? s->n_user : 1, sizeof *s->user_len);
  if (!s->streams || !s->names || !s->user || !s->user_len) {
    shmx__br_schema_free(s);
    return shmx__syserr(ENOMEM, "schema of %u streams", s->n_streams);
  }
  int rc = 0;
  char *nm = s->names;
  for (uint32_t i = 0; i < s->n_streams && !rc; i++) {
    if (n - off < SHMX__BR_SPEC) {
      rc = shmx__err(SHMX_E_CORRUPT, "stream %u: record past the end", i);
      break;
    }
    const uint8_t *q = p + off;
    size_t nl = get16(q + 20), xl = get16(q + 22);
    if (nl == 0 || nl > SHMX_STREAM_NAME_MAX || n - off - SHMX__BR_SPEC < nl + xl ||
        n - off < pad8(SHMX__BR_SPEC + nl + xl)) {
      rc = shmx__err(SHMX_E_CORRUPT, "stream %u: name/extra lengths %zu/%zu", i, nl, xl);
      break;
    }
    memcpy(nm, q + SHMX__BR_SPEC, nl);
    nm[nl] = 0;
    if (memchr(nm, 0, nl)) {
      rc = shmx__err(SHMX_E_CORRUPT, "stream %u: NUL in name", i);
      break;
    }
    shmx_stream_spec *sp = &s->streams[i];
    sp->id = get32(q);
    sp->name = nm;
    sp->dtype = get32(q + 4);
    sp->components = get32(q + 8);
    sp->layout = get32(q + 12);
    sp->bytes_per_elem = get32(q + 16);
    sp->extra = xl ? q + SHMX__BR_SPEC + nl : NULL;
    sp->extra_len = (uint32_t)xl;
    if ((rc = shmx__spec_check(sp))) break;
    for (uint32_t j = 0; j < i && !rc; j++)
      if (s->streams[j].id == sp->id || strcmp(s->streams[j].name, sp->name) == 0)
        rc = shmx__err(SHMX_E_CORRUPT, "stream %u: duplicate id or name", i);
    nm += nl + 1;
    off += pad8(SHMX__BR_SPEC + nl + xl);
  }
  for (uint32_t i = 0; i < s->n_user && !rc; i++) {
    if (n - off < 8) {
      rc = shmx__err(SHMX_E_CORRUPT, "user record %u past the end", i);
      break;
    }
    uint64_t ul = get32(p + off);
    if (get32(p + off + 4) || n - off - 8 < ul || n - off < pad8(8 + ul)) {
      rc = shmx__err(SHMX_E_CORRUPT, "user record %u: length %llu", i,
                     (unsigned long long)ul);
      break;
    }
    s->user[i] = p + off + 8;
    s->user_len[i] = (uint32_t)ul;
    off += pad8(8 + ul);
  }
  if (!rc && off != n) rc = shmx__err(SHMX_E_CORRUPT, "%zu bytes after the schema", n - off);
  if (rc) {
    if (rc != SHMX_E_CORRUPT && rc != -ENOMEM) rc = SHMX_E_CORRUPT; /* spec check */
    shmx__br_schema_free(s);
  }
  return rc;
}

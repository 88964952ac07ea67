/*
 * schemablob.c -- a channel's schema (geometry, stream specs with their extra
 * bytes, user records, channel name) as one self-contained byte string: what
 * the bridge sends (docs/bridge.md) and what recordings store as their MCAP
 * Schema data (`shmx.schema/1`, docs/format.md). Decoding trusts nothing.
 */
#include "schemablob.h"

#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "schema.h"
#include "le.h"

/* ---- schema blob ---------------------------------------------------------
 * geometry (48 B): slots u32, reader_slots u32, static_cap u64, frame_cap
 *   u64, control_per_reader u64, flags u32, n_streams u32, n_user u32,
 *   name_len u32; then the origin channel's name, padded to 8
 * n_streams x: id, dtype, components, layout, bytes_per_elem (u32 each),
 *   name_len u16, extra_len u16, then name, extra; padded to 8
 * n_user x: len u32, 0 u32, bytes; padded to 8                            */

static size_t pad8(size_t n) { return (n + 7) & ~(size_t)7; }

int shmx__sb_encode(const char *name, const shmx_header_info *g, const shmx_stream_info *st,
                           int n_streams, const uint8_t *const *user,
                           const uint32_t *user_len, int n_user, uint8_t **out,
                           size_t *len) {
  size_t name_len = strlen(name);
  size_t n = SHMX__SB_GEOM + pad8(name_len);
  for (int i = 0; i < n_streams; i++)
    n += pad8(SHMX__SB_SPEC + strlen(st[i].name) + st[i].extra_len);
  for (int i = 0; i < n_user; i++) n += pad8(8 + (size_t)user_len[i]);
  uint8_t *b = calloc(1, n), *p = b;
  if (!b) return shmx__syserr(ENOMEM, "schema message of %zu bytes", n);
  shmx__put32(p, g->slots);
  shmx__put32(p + 4, g->reader_slots);
  shmx__put64(p + 8, g->static_bytes_cap);
  shmx__put64(p + 16, g->frame_bytes_cap);
  shmx__put64(p + 24, g->control_per_reader);
  shmx__put32(p + 32, g->flags);
  shmx__put32(p + 36, (uint32_t)n_streams);
  shmx__put32(p + 40, (uint32_t)n_user);
  shmx__put32(p + 44, (uint32_t)name_len);
  memcpy(p + SHMX__SB_GEOM, name, name_len);
  p += SHMX__SB_GEOM + pad8(name_len);
  for (int i = 0; i < n_streams; i++) {
    size_t nl = strlen(st[i].name);
    shmx__put32(p, st[i].id);
    shmx__put32(p + 4, st[i].dtype);
    shmx__put32(p + 8, st[i].components);
    shmx__put32(p + 12, st[i].layout);
    shmx__put32(p + 16, st[i].bytes_per_elem);
    p[20] = (uint8_t)nl;
    p[21] = (uint8_t)(nl >> 8);
    p[22] = (uint8_t)st[i].extra_len;
    p[23] = (uint8_t)(st[i].extra_len >> 8);
    memcpy(p + SHMX__SB_SPEC, st[i].name, nl);
    if (st[i].extra_len) memcpy(p + SHMX__SB_SPEC + nl, st[i].extra, st[i].extra_len);
    p += pad8(SHMX__SB_SPEC + nl + st[i].extra_len);
  }
  for (int i = 0; i < n_user; i++) {
    shmx__put32(p, user_len[i]);
    if (user_len[i]) memcpy(p + 8, user[i], user_len[i]);
    p += pad8(8 + (size_t)user_len[i]);
  }
  *out = b;
  *len = n;
  return 0;
}

void shmx__sb_free(shmx__sb *s) {
  free(s->streams);
  free(s->names);
  free(s->user);
  free(s->user_len);
  memset(s, 0, sizeof *s);
}

int shmx__sb_decode(const uint8_t *p, size_t n, shmx__sb *s) {
  memset(s, 0, sizeof *s);
  if (n < SHMX__SB_GEOM)
    return shmx__err(SHMX_E_CORRUPT, "schema of %zu bytes: no geometry", n);
  s->slots = shmx__get32(p);
  s->reader_slots = shmx__get32(p + 4);
  s->static_cap = shmx__get64(p + 8);
  s->frame_cap = shmx__get64(p + 16);
  s->control_per_reader = shmx__get64(p + 24);
  s->flags = shmx__get32(p + 32);
  s->n_streams = shmx__get32(p + 36);
  s->n_user = shmx__get32(p + 40);
  uint32_t name_len = shmx__get32(p + 44);
  if (name_len == 0 || name_len > SHMX_NAME_MAX || n - SHMX__SB_GEOM < pad8(name_len))
    return shmx__err(SHMX_E_CORRUPT, "schema: channel name of %u bytes", name_len);
  memcpy(s->name, p + SHMX__SB_GEOM, name_len);
  s->name[name_len] = 0;
  if (strlen(s->name) != name_len || shmx_name_check(s->name))
    return shmx__err(SHMX_E_CORRUPT, "schema: invalid channel name");
  size_t off = SHMX__SB_GEOM + pad8(name_len);
  if (s->n_streams > SHMX__SB_MAX_STREAMS || s->n_user > SHMX__SB_MAX_USER)
    return shmx__err(SHMX_E_CORRUPT, "schema of %u streams and %u user records",
                     s->n_streams, s->n_user);
  /* Every record takes at least 8 bytes: bound the counts by the blob. */
  if ((uint64_t)s->n_streams * pad8(SHMX__SB_SPEC + 1) + (uint64_t)s->n_user * 8 >
      n - off)
    return shmx__err(SHMX_E_CORRUPT, "schema counts exceed its %zu bytes", n);
  s->streams = calloc(s->n_streams ? s->n_streams : 1, sizeof *s->streams);
  s->names = calloc((size_t)s->n_streams * (SHMX_STREAM_NAME_MAX + 1) + 1, 1);
  s->user = calloc(s->n_user ? s->n_user : 1, sizeof *s->user);
  s->user_len = calloc(s->n_user ? s->n_user : 1, sizeof *s->user_len);
  if (!s->streams || !s->names || !s->user || !s->user_len) {
    shmx__sb_free(s);
    return shmx__syserr(ENOMEM, "schema of %u streams", s->n_streams);
  }
  int rc = 0;
  char *nm = s->names;
  for (uint32_t i = 0; i < s->n_streams && !rc; i++) {
    if (n - off < SHMX__SB_SPEC) {
      rc = shmx__err(SHMX_E_CORRUPT, "stream %u: record past the end", i);
      break;
    }
    const uint8_t *q = p + off;
    size_t nl = shmx__get16(q + 20), xl = shmx__get16(q + 22);
    if (nl == 0 || nl > SHMX_STREAM_NAME_MAX || n - off - SHMX__SB_SPEC < nl + xl ||
        n - off < pad8(SHMX__SB_SPEC + nl + xl)) {
      rc = shmx__err(SHMX_E_CORRUPT, "stream %u: name/extra lengths %zu/%zu", i, nl, xl);
      break;
    }
    memcpy(nm, q + SHMX__SB_SPEC, nl);
    nm[nl] = 0;
    if (memchr(nm, 0, nl)) {
      rc = shmx__err(SHMX_E_CORRUPT, "stream %u: NUL in name", i);
      break;
    }
    shmx_stream_spec *sp = &s->streams[i];
    sp->id = shmx__get32(q);
    sp->name = nm;
    sp->dtype = shmx__get32(q + 4);
    sp->components = shmx__get32(q + 8);
    sp->layout = shmx__get32(q + 12);
    sp->bytes_per_elem = shmx__get32(q + 16);
    sp->extra = xl ? q + SHMX__SB_SPEC + nl : NULL;
    sp->extra_len = (uint32_t)xl;
    if ((rc = shmx__spec_check(sp))) break;
    for (uint32_t j = 0; j < i && !rc; j++)
      if (s->streams[j].id == sp->id || strcmp(s->streams[j].name, sp->name) == 0)
        rc = shmx__err(SHMX_E_CORRUPT, "stream %u: duplicate id or name", i);
    nm += nl + 1;
    off += pad8(SHMX__SB_SPEC + nl + xl);
  }
  for (uint32_t i = 0; i < s->n_user && !rc; i++) {
    if (n - off < 8) {
      rc = shmx__err(SHMX_E_CORRUPT, "user record %u past the end", i);
      break;
    }
    uint64_t ul = shmx__get32(p + off);
    if (shmx__get32(p + off + 4) || n - off - 8 < ul || n - off < pad8(8 + ul)) {
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
    shmx__sb_free(s);
  }
  return rc;
}

int shmx__sb_encode_client(shmx_client *cl, uint8_t **out, size_t *len, int *n_streams,
                           int *n_user) {
  shmx_header_info hi;
  const shmx_stream_info *si;
  int n, rc;
  if ((rc = shmx_client_header(cl, &hi)) || (rc = shmx_client_streams(cl, &si, &n))) return rc;
  const uint8_t *user[SHMX__SB_MAX_USER];
  uint32_t ulen[SHMX__SB_MAX_USER];
  int nu = 0;
  while (nu < SHMX__SB_MAX_USER && shmx_client_static_user(cl, nu, &user[nu], &ulen[nu]) == 0)
    nu++;
  if (n_streams) *n_streams = n;
  if (n_user) *n_user = nu;
  return shmx__sb_encode(shmx_client_name(cl), &hi, si, n, user, ulen, nu, out, len);
}

static int spec_eq(const shmx_stream_spec *a, const shmx_stream_spec *c) {
  return a->id == c->id && a->dtype == c->dtype && a->components == c->components &&
         a->layout == c->layout && a->bytes_per_elem == c->bytes_per_elem &&
         a->extra_len == c->extra_len && !strcmp(a->name, c->name) &&
         (!a->extra_len || !memcmp(a->extra, c->extra, a->extra_len));
}

int shmx__sb_extends(const shmx__sb *old, const shmx__sb *s) {
  if (strcmp(old->name, s->name) || old->slots != s->slots ||
      old->reader_slots != s->reader_slots || old->flags != s->flags ||
      old->static_cap != s->static_cap || old->frame_cap != s->frame_cap ||
      old->control_per_reader != s->control_per_reader || s->n_streams < old->n_streams ||
      s->n_user < old->n_user)
    return 0;
  for (uint32_t i = 0; i < old->n_streams; i++)
    if (!spec_eq(&old->streams[i], &s->streams[i])) return 0;
  for (uint32_t i = 0; i < old->n_user; i++)
    if (old->user_len[i] != s->user_len[i] ||
        memcmp(old->user[i], s->user[i], old->user_len[i]))
      return 0;
  return 1;
}

int shmx__sb_grow(shmx_server *srv, const shmx__sb *old, const shmx__sb *s) {
  int rc = 0;
  for (uint32_t i = old->n_streams; i < s->n_streams && !rc; i++)
    rc = shmx_server_add_stream(srv, &s->streams[i]);
  for (uint32_t i = old->n_user; i < s->n_user && !rc; i++)
    rc = shmx_server_static_append(srv, s->user[i], s->user_len[i]);
  return rc;
}

int shmx__sb_create(const char *name, const shmx__sb *s, uint32_t slots, uint32_t mode,
                    shmx_server **out) {
  shmx_server_config c;
  shmx_server_config_init(&c);
  c.slots = slots ? slots : s->slots;
  c.reader_slots = s->reader_slots;
  c.static_bytes_cap = s->static_cap;
  c.frame_bytes_cap = s->frame_cap;
  c.control_per_reader = s->control_per_reader;
  c.flags = s->flags & SHMX_CREATE_CRC32C;
  c.mode = mode ? mode : 0600;
  c.streams = s->streams;
  c.n_streams = s->n_streams;
  int rc = shmx_server_create(name ? name : s->name, &c, out);
  if (rc) return rc;
  for (uint32_t i = 0; i < s->n_user; i++)
    if ((rc = shmx_server_static_append(*out, s->user[i], s->user_len[i]))) {
      shmx_server_destroy(*out);
      *out = NULL;
      return rc;
    }
  return 0;
}

uint64_t shmx__sb_bytes(const shmx__sb *s) {
  uint64_t frames, ctl, total = UINT64_MAX;
  if (!shmx__mul_ok(s->slots ? s->slots : 3, s->frame_cap, &frames) ||
      !shmx__mul_ok(s->reader_slots ? s->reader_slots : 16, s->control_per_reader, &ctl) ||
      !shmx__add_ok(frames, ctl, &total) || !shmx__add_ok(total, s->static_cap, &total))
    return UINT64_MAX;
  return total;
}

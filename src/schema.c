/*
 * schema.c -- encode and parse the static directory (stream specs).
 *
 * Record: { u32 type, u32 len } then len payload bytes, padded to 8.
 * A SHMX_TLV_STATIC_DIR payload is struct shmx__sspec, the name bytes and
 * the extra bytes. Records are append-only: the producer writes a record,
 * then publishes static_used (release) and bumps static_gen.
 */
#include <stdlib.h>
#include <string.h>

#include "schema.h"

int shmx__spec_check(const shmx_stream_spec *sp) {
  if (!sp) return shmx__err(SHMX_E_ARG, "stream spec is NULL");
  size_t n = sp->name ? strlen(sp->name) : 0;
  if (n == 0 || n > SHMX_STREAM_NAME_MAX)
    return shmx__err(SHMX_E_ARG, "stream %u: name must be 1..%d bytes", sp->id,
                     SHMX_STREAM_NAME_MAX);
  if (strcmp(sp->name, "__metadata__") == 0)
    return shmx__err(SHMX_E_ARG, "stream %u: the name '__metadata__' is reserved",
                     sp->id);
  if (sp->components < 1)
    return shmx__err(SHMX_E_ARG, "stream '%s': components must be >= 1", sp->name);
  if (sp->bytes_per_elem < 1)
    return shmx__err(SHMX_E_ARG, "stream '%s': bytes_per_elem must be >= 1",
                     sp->name);
  if (sp->extra_len > SHMX_EXTRA_MAX || (sp->extra_len && !sp->extra))
    return shmx__err(SHMX_E_ARG, "stream '%s': extra must be 0..%d bytes",
                     sp->name, SHMX_EXTRA_MAX);
  return 0;
}

uint64_t shmx__spec_record_size(const shmx_stream_spec *sp) {
  uint64_t len = sizeof(struct shmx__sspec) + strlen(sp->name) + sp->extra_len;
  return sizeof(struct shmx__srec) + ((len + 7) & ~7ull);
}

uint64_t shmx__record_encode(uint8_t *dst, uint64_t room, uint32_t type,
                             const void *a, uint32_t alen, const void *b,
                             uint32_t blen, const void *c, uint32_t clen) {
  uint64_t len = (uint64_t)alen + blen + clen;
  uint64_t total = sizeof(struct shmx__srec) + ((len + 7) & ~7ull);
  if (len > UINT32_MAX || total > room) return 0;
  struct shmx__srec r = {type, (uint32_t)len};
  memcpy(dst, &r, sizeof r);
  uint8_t *p = dst + sizeof r;
  if (alen) memcpy(p, a, alen);
  p += alen;
  if (blen) memcpy(p, b, blen);
  p += blen;
  if (clen) memcpy(p, c, clen);
  p += clen;
  memset(p, 0, (size_t)(dst + total - p));
  return total;
}

void shmx__schema_free(shmx__schema *s) {
  free(s->buf);
  free(s->streams);
  free(s->user);
  memset(s, 0, sizeof *s);
}

int shmx__schema_parse(const uint8_t *area, uint64_t used, uint64_t cap,
                       uint32_t gen, shmx__schema *out) {
  memset(out, 0, sizeof *out);
  if (used > cap)
    return shmx__err(SHMX_E_CORRUPT, "schema: %llu bytes used of %llu",
                     (unsigned long long)used, (unsigned long long)cap);
  /* Copy records, then room for NUL-terminated names (<= used bytes). */
  uint8_t *buf = malloc((size_t)used * 2 + 16);
  if (!buf) return shmx__err(SHMX_E_ENOMEM, "schema copy");
  memcpy(buf, area, (size_t)used);
  uint8_t *names = buf + used, *np = names;
  int cnt = 0, ucnt = 0;
  /* Pass 1: validate and count. Pass 2: fill. */
  for (int pass = 0; pass < 2; pass++) {
    uint64_t pos = 0;
    int i = 0, u = 0;
    np = names;
    while (used - pos >= sizeof(struct shmx__srec)) {
      struct shmx__srec r;
      memcpy(&r, buf + pos, sizeof r);
      uint64_t body = pos + sizeof r;
      uint64_t padded = ((uint64_t)r.len + 7) & ~7ull;
      if (used - body < padded) {
        free(buf);
        if (pass == 1) { free(out->streams); free(out->user); }
        memset(out, 0, sizeof *out);
        return shmx__err(SHMX_E_CORRUPT, "schema record at %llu overruns",
                         (unsigned long long)pos);
      }
      if (r.type == SHMX_TLV_STATIC_DIR) {
        struct shmx__sspec sp;
        if (r.len < sizeof sp) goto bad;
        memcpy(&sp, buf + body, sizeof sp);
        if (sp.name_len == 0 || sp.name_len > SHMX_STREAM_NAME_MAX ||
            (uint64_t)sizeof sp + sp.name_len + sp.extra_len > r.len)
          goto bad;
        if (pass == 1) {
          shmx_stream_info *si = &out->streams[i];
          si->id = sp.id;
          si->dtype = sp.dtype;
          si->components = sp.components;
          si->layout = sp.layout;
          si->bytes_per_elem = sp.bytes_per_elem;
          si->extra_len = sp.extra_len;
          memcpy(np, buf + body + sizeof sp, sp.name_len);
          np[sp.name_len] = 0;
          si->name = (const char *)np;
          np += sp.name_len + 1;
          si->extra = buf + body + sizeof sp + sp.name_len;
        }
        i++;
      } else if (r.type == SHMX_TLV_STATIC_USER) {
        if (pass == 1) {
          out->user[u].data = buf + body;
          out->user[u].len = r.len;
        }
        u++;
      } /* unknown record types are skipped: newer producers may add some */
      pos = body + padded;
      continue;
    bad:
      free(buf);
      if (pass == 1) { free(out->streams); free(out->user); }
      memset(out, 0, sizeof *out);
      return shmx__err(SHMX_E_CORRUPT, "schema record at %llu is malformed",
                       (unsigned long long)pos);
    }
    if (pass == 0) {
      cnt = i;
      ucnt = u;
      out->streams = calloc((size_t)cnt + 1, sizeof *out->streams);
      out->user = calloc((size_t)ucnt + 1, sizeof *out->user);
      if (!out->streams || !out->user) {
        free(out->streams);
        free(out->user);
        free(buf);
        memset(out, 0, sizeof *out);
        return shmx__err(SHMX_E_ENOMEM, "schema");
      }
    }
  }
  out->buf = buf;
  out->n = cnt;
  out->n_user = ucnt;
  out->used = used;
  out->gen = gen;
  return 0;
}

int shmx__schema_find(const shmx__schema *s, uint32_t id) {
  for (int i = 0; i < s->n; i++)
    if (s->streams[i].id == id) return i;
  return -1;
}

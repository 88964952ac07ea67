/*
 * mcap.c -- checked parsing of MCAP records and of shmx frame messages,
 * CRC32 and chunk decompression (see mcap.h). Every length is compared
 * with the bytes that remain before anything is read.
 */
#include "mcap.h"

#include <string.h>


#ifdef SHMX_HAVE_ZSTD
#include <zstd.h>
#endif
#ifdef SHMX_HAVE_LZ4
#include <lz4frame.h>
#endif

#include "internal.h"
#include "le.h"

static const uint8_t *take(shmx__mr *r, uint64_t n) {
  if (r->bad || r->n - r->off < n) {
    r->bad = 1;
    return NULL;
  }
  const uint8_t *q = r->p + r->off;
  r->off += n;
  return q;
}

const uint8_t *shmx__mr_take(shmx__mr *r, uint64_t n) { return take(r, n); }

uint8_t shmx__mr_u8(shmx__mr *r) {
  const uint8_t *q = take(r, 1);
  return q ? q[0] : 0;
}
uint16_t shmx__mr_u16(shmx__mr *r) {
  const uint8_t *q = take(r, 2);
  return q ? shmx__get16(q) : 0;
}
uint32_t shmx__mr_u32(shmx__mr *r) {
  const uint8_t *q = take(r, 4);
  return q ? shmx__get32(q) : 0;
}
uint64_t shmx__mr_u64(shmx__mr *r) {
  const uint8_t *q = take(r, 8);
  return q ? shmx__get64(q) : 0;
}
const uint8_t *shmx__mr_bytes32(shmx__mr *r, uint64_t *len) {
  *len = shmx__mr_u32(r);
  const uint8_t *q = take(r, *len);
  if (!q) *len = 0;
  return q;
}
const uint8_t *shmx__mr_bytes64(shmx__mr *r, uint64_t *len) {
  *len = shmx__mr_u64(r);
  const uint8_t *q = take(r, *len);
  if (!q) *len = 0;
  return q;
}

int shmx__mcap_next(const uint8_t *p, uint64_t n, uint64_t *off, uint8_t *op,
                    const uint8_t **body, uint64_t *len) {
  if (*off >= n) return 1;
  if (n - *off < 9)
    return shmx__err(SHMX_E_CORRUPT, "record header cut at offset %llu",
                     (unsigned long long)*off);
  uint64_t l = shmx__get64(p + *off + 1);
  if (n - *off - 9 < l)
    return shmx__err(SHMX_E_CORRUPT, "record of %llu bytes at offset %llu runs past the end",
                     (unsigned long long)l, (unsigned long long)*off);
  *op = p[*off];
  *body = p + *off + 9;
  *len = l;
  *off += 9 + l;
  return 0;
}

int shmx__mcap_chunk_parse(const uint8_t *body, uint64_t len, shmx__mcap_chunk *c) {
  shmx__mr r = shmx__mr_of(body, len);
  c->start = shmx__mr_u64(&r);
  c->end = shmx__mr_u64(&r);
  c->usize = shmx__mr_u64(&r);
  c->crc = shmx__mr_u32(&r);
  uint64_t cl;
  const uint8_t *cs = shmx__mr_bytes32(&r, &cl);
  c->records_len = shmx__mr_u64(&r);
  if (r.bad) return shmx__err(SHMX_E_CORRUPT, "chunk header cut");
  c->records_off = r.off;
  if (cl == 0)
    c->compression[0] = 0;
  else if (cl == 4 && !memcmp(cs, "zstd", 4))
    memcpy(c->compression, "zstd", 5);
  else if (cl == 3 && !memcmp(cs, "lz4", 3))
    memcpy(c->compression, "lz4", 4);
  else
    memcpy(c->compression, "?", 2);
  if (c->start > c->end) return shmx__err(SHMX_E_CORRUPT, "chunk ends before it starts");
  return 0;
}


int shmx__mcap_usize_ok(const char *compression, const uint8_t *src, uint64_t n, uint64_t usize) {
  if (!compression[0]) return usize == n;
#ifdef SHMX_HAVE_ZSTD
  if (!strcmp(compression, "zstd")) {
    unsigned long long cs = ZSTD_getFrameContentSize(src, n);
    if (cs == ZSTD_CONTENTSIZE_ERROR) return 0;
    if (cs != ZSTD_CONTENTSIZE_UNKNOWN) return cs == usize;
    return usize / 1024 <= n; /* a frame without its size: bound the ratio */
  }
#endif
#ifdef SHMX_HAVE_LZ4
  if (!strcmp(compression, "lz4")) {
    LZ4F_dctx *d;
    if (LZ4F_isError(LZ4F_createDecompressionContext(&d, LZ4F_VERSION))) return 0;
    LZ4F_frameInfo_t fi;
    size_t used = n;
    size_t r = LZ4F_getFrameInfo(d, &fi, src, &used);
    LZ4F_freeDecompressionContext(d);
    if (LZ4F_isError(r)) return 0;
    if (fi.contentSize) return fi.contentSize == usize;
    return usize / 256 <= n; /* LZ4 cannot do better than ~255:1 */
  }
#endif
  (void)src;
  return 1; /* an unknown codec fails in decompression, before any allocation matters */
}

int shmx__mcap_decompress(const char *compression, const uint8_t *src, uint64_t n,
                          uint8_t *dst, uint64_t usize) {
  if (!compression[0]) {
    if (n != usize) return shmx__err(SHMX_E_CORRUPT, "stored chunk of %llu bytes, %llu said",
                                     (unsigned long long)n, (unsigned long long)usize);
    memcpy(dst, src, n);
    return 0;
  }
  if (!strcmp(compression, "zstd")) {
#ifdef SHMX_HAVE_ZSTD
    size_t got = ZSTD_decompress(dst, usize, src, n);
    if (ZSTD_isError(got) || got != usize)
      return shmx__err(SHMX_E_CORRUPT, "zstd chunk: %s",
                       ZSTD_isError(got) ? ZSTD_getErrorName(got) : "wrong size");
    return 0;
#else
    return shmx__err(SHMX_E_ENOSYS, "zstd chunk: this build has no zstd");
#endif
  }
  if (!strcmp(compression, "lz4")) {
#ifdef SHMX_HAVE_LZ4
    LZ4F_dctx *d;
    if (LZ4F_isError(LZ4F_createDecompressionContext(&d, LZ4F_VERSION)))
      return shmx__syserr(ENOMEM, "lz4 context");
    uint64_t in = 0, out = 0;
    int rc = 0;
    for (;;) {
      size_t si = n - in, so = usize - out;
      size_t hint = LZ4F_decompress(d, dst + out, &so, src + in, &si, NULL);
      if (LZ4F_isError(hint)) {
        rc = shmx__err(SHMX_E_CORRUPT, "lz4 chunk: %s", LZ4F_getErrorName(hint));
        break;
      }
      in += si;
      out += so;
      if (hint == 0) break; /* frame complete */
      if (si == 0 && so == 0) {
        rc = shmx__err(SHMX_E_CORRUPT, "lz4 chunk: cut or larger than said");
        break;
      }
    }
    LZ4F_freeDecompressionContext(d);
    if (!rc && (out != usize || in != n))
      rc = shmx__err(SHMX_E_CORRUPT, "lz4 chunk: %llu bytes, %llu said",
                     (unsigned long long)out, (unsigned long long)usize);
    return rc;
#else
    return shmx__err(SHMX_E_ENOSYS, "lz4 chunk: this build has no lz4");
#endif
  }
  return shmx__err(SHMX_E_ENOSYS, "chunk compression '%s' unknown", compression);
}

int shmx__mcap_frame_parse(const uint8_t *p, uint64_t n, shmx__mcap_frame *f) {
  if (n < SHMX__FRAME_HEAD)
    return shmx__err(SHMX_E_CORRUPT, "frame message of %llu bytes", (unsigned long long)n);
  f->frame_id = shmx__get64(p);
  uint64_t t = shmx__get64(p + 8);
  memcpy(&f->sim_time, &t, 8);
  f->publish_ns = shmx__get64(p + 16);
  f->dropped = shmx__get64(p + 24);
  f->n_streams = shmx__get32(p + 32);
  if (shmx__get32(p + 36)) return shmx__err(SHMX_E_CORRUPT, "frame message flags");
  if (f->frame_id == 0 || f->frame_id > SHMX_FRAME_ID_MAX)
    return shmx__err(SHMX_E_CORRUPT, "frame id %llu", (unsigned long long)f->frame_id);
  if (f->n_streams > SHMX_FRAME_MAX_STREAMS ||
      (n - SHMX__FRAME_HEAD) / SHMX__FRAME_DIRENT < f->n_streams)
    return shmx__err(SHMX_E_CORRUPT, "frame message: %u streams in %llu bytes", f->n_streams,
                     (unsigned long long)n);
  f->dir = p + SHMX__FRAME_HEAD;
  uint64_t head = SHMX__FRAME_HEAD + (uint64_t)f->n_streams * SHMX__FRAME_DIRENT;
  for (uint32_t i = 0; i < f->n_streams; i++) {
    const uint8_t *d = f->dir + (size_t)i * SHMX__FRAME_DIRENT;
    uint64_t bytes = shmx__get64(d + 16), off = shmx__get64(d + 24);
    if (shmx__get32(d + 4) || off < head || !shmx__range_ok(off, bytes, n))
      return shmx__err(SHMX_E_CORRUPT, "frame message: stream %u of %llu bytes at %llu in %llu",
                       i, (unsigned long long)bytes, (unsigned long long)off,
                       (unsigned long long)n);
    for (uint32_t j = 0; j < i; j++)
      if (shmx__get32(f->dir + (size_t)j * SHMX__FRAME_DIRENT) == shmx__get32(d))
        return shmx__err(SHMX_E_CORRUPT, "frame message: stream %u twice", shmx__get32(d));
  }
  return 0;
}

void shmx__mcap_frame_entry(const shmx__mcap_frame *f, uint32_t i, uint32_t *stream_id,
                            uint64_t *elem_count, uint64_t *bytes, uint64_t *offset) {
  const uint8_t *d = f->dir + (size_t)i * SHMX__FRAME_DIRENT;
  *stream_id = shmx__get32(d);
  *elem_count = shmx__get64(d + 8);
  *bytes = shmx__get64(d + 16);
  *offset = shmx__get64(d + 24);
}

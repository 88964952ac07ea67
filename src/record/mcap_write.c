/*
 * mcap_write.c -- stream an indexed MCAP file to a descriptor (mcap.h).
 *
 * Uncompressed chunks go to the file as their messages come: the chunk's
 * header is written first with zero lengths and rewritten in place
 * (pwrite) when the chunk closes, so a frame's bytes are copied once, from
 * the shared-memory slot into the file. Small messages are gathered in a
 * staging buffer; big ones go out with writev straight from their pieces.
 * A chunk left open by a crash keeps its zero header: recover.c salvages
 * its complete messages. Compressed chunks are built in memory and written
 * whole when they close.
 */
#include "mcap.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#ifdef SHMX_HAVE_ZSTD
#include <zstd.h>
#endif
#ifdef SHMX_HAVE_LZ4
#include <lz4frame.h>
#endif

#include "internal.h"
#include "le.h"
#include "shmx_record.h"

#define STAGE_FLUSH (1u << 20) /* write the staging buffer past this */
#define BIG_MESSAGE (64u << 10) /* messages this big bypass the staging buffer */
#define WRITE_BATCH (256u << 10) /* ... and go out in CRC'd batches of this size */

typedef struct dbuf {
  uint8_t *p;
  size_t n, cap;
} dbuf;

static uint8_t *db_room(dbuf *b, size_t k) {
  if (!b->p || b->cap - b->n < k) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap - b->n < k) {
      if (cap > SIZE_MAX / 2) return NULL;
      cap *= 2;
    }
    uint8_t *q = realloc(b->p, cap);
    if (!q) return NULL;
    b->p = q;
    b->cap = cap;
  }
  uint8_t *q = b->p + b->n;
  b->n += k;
  return q;
}

typedef struct msg_index {
  uint16_t ch;
  dbuf ent; /* (log u64, offset u64) pairs, little-endian */
} msg_index;

struct shmx__mw {
  int fd;
  shmx__mw_opts o;
  int err;           /* sticky: the first write error */
  uint64_t pos;      /* logical end of the file (flushed + staged) */
  dbuf stage;        /* bytes after `pos - stage.n`, not written yet */
  /* the open chunk */
  int in_chunk;
  uint64_t chunk_at;   /* file offset of its record */
  uint64_t rec_ref;    /* file offset its records would start at, stored */
  uint64_t rec_len;    /* records so far */
  uint64_t c_start, c_end;
  uint32_t c_crc;
  dbuf cbuf;           /* compressed chunks: the records */
  dbuf zbuf;           /* compressed chunks: compressor output */
  msg_index *mi;
  int n_mi, cap_mi;
  /* summary */
  dbuf schemas, channels, chunk_idx, meta_idx;
  uint32_t n_schemas, n_channels, n_meta;
  uint64_t n_chunks, n_msgs, start, end;
  uint64_t *ch_msgs;   /* per channel id (1 .. n_channels) */
};

static const char *codec_name(uint32_t c) {
  return c == SHMX_REC_ZSTD ? "zstd" : c == SHMX_REC_LZ4 ? "lz4" : "";
}

int shmx__mw_codec_ok(uint32_t c) {
  switch (c) {
  case SHMX_REC_NONE: return 1;
#ifdef SHMX_HAVE_ZSTD
  case SHMX_REC_ZSTD: return 1;
#endif
#ifdef SHMX_HAVE_LZ4
  case SHMX_REC_LZ4: return 1;
#endif
  default: return 0;
  }
}

/* ---- output ---------------------------------------------------------------- */

static int fail(shmx__mw *w, int e, const char *what) {
  if (!w->err) w->err = shmx__syserr(e, "recording: %s", what);
  return w->err;
}

static int write_all(shmx__mw *w, struct iovec *iov, int n) {
  while (n > 0) {
    ssize_t k = writev(w->fd, iov, n > IOV_MAX ? IOV_MAX : n);
    if (k < 0) {
      if (errno == EINTR) continue;
      return fail(w, errno, "write");
    }
    while (n > 0 && (size_t)k >= iov->iov_len) {
      k -= (ssize_t)iov->iov_len;
      iov++;
      n--;
    }
    if (n > 0) {
      iov->iov_base = (uint8_t *)iov->iov_base + k;
      iov->iov_len -= (size_t)k;
    }
  }
  return 0;
}

static int flush(shmx__mw *w) {
  if (w->err) return w->err;
  if (!w->stage.n) return 0;
  struct iovec v = {w->stage.p, w->stage.n};
  int rc = write_all(w, &v, 1);
  w->stage.n = 0;
  return rc;
}

/* Append k bytes to the file (through the staging buffer). */
static uint8_t *emit(shmx__mw *w, size_t k) {
  if (w->err) return NULL;
  uint8_t *q = db_room(&w->stage, k);
  if (!q) {
    fail(w, ENOMEM, "staging buffer");
    return NULL;
  }
  w->pos += k;
  return q;
}

static int emit_bytes(shmx__mw *w, const void *p, size_t k) {
  uint8_t *q = emit(w, k);
  if (!q) return w->err;
  if (k) memcpy(q, p, k);
  return w->stage.n >= STAGE_FLUSH ? flush(w) : 0;
}

/* ---- record building in a dbuf -------------------------------------------- */

static int put_u8(dbuf *b, uint8_t v) {
  uint8_t *q = db_room(b, 1);
  if (q) *q = v;
  return q ? 0 : -1;
}
static int put_u16(dbuf *b, uint16_t v) {
  uint8_t *q = db_room(b, 2);
  if (q) shmx__put16(q, v);
  return q ? 0 : -1;
}
static int put_u32(dbuf *b, uint32_t v) {
  uint8_t *q = db_room(b, 4);
  if (q) shmx__put32(q, v);
  return q ? 0 : -1;
}
static int put_u64(dbuf *b, uint64_t v) {
  uint8_t *q = db_room(b, 8);
  if (q) shmx__put64(q, v);
  return q ? 0 : -1;
}
static int put_raw(dbuf *b, const void *p, size_t n) {
  uint8_t *q = db_room(b, n);
  if (q && n) memcpy(q, p, n);
  return q ? 0 : -1;
}
static int put_str(dbuf *b, const char *s) {
  size_t n = strlen(s);
  return put_u32(b, (uint32_t)n) | put_raw(b, s, n);
}
/* Start a record; returns the offset of its length field to patch. */
static size_t rec_begin(dbuf *b, uint8_t op) {
  put_u8(b, op);
  size_t at = b->n;
  put_u64(b, 0);
  return at;
}
static void rec_end(dbuf *b, size_t at) {
  if (b->p && at + 8 <= b->n) shmx__put64(b->p + at, b->n - at - 8);
}
static int put_map(dbuf *b, const char *const *kv, int n_kv) {
  size_t at = b->n;
  int rc = put_u32(b, 0);
  for (int i = 0; i < 2 * n_kv; i++) rc |= put_str(b, kv[i]);
  if (!rc) shmx__put32(b->p + at, (uint32_t)(b->n - at - 4));
  return rc;
}

/* ---- open ----------------------------------------------------------------- */

int shmx__mw_open(int fd, const shmx__mw_opts *o, shmx__mw **out) {
  *out = NULL;
  if (!shmx__mw_codec_ok(o->compression))
    return shmx__err(SHMX_E_ENOSYS, "compression '%s' is not built in",
                     codec_name(o->compression));
  shmx__mw *w = calloc(1, sizeof *w);
  if (!w) return shmx__syserr(ENOMEM, "recording writer");
  w->fd = fd;
  w->o = *o;
  dbuf h = {0};
  size_t at;
  put_raw(&h, SHMX__MCAP_MAGIC, SHMX__MCAP_MAGIC_LEN);
  at = rec_begin(&h, SHMX__OP_HEADER);
  put_str(&h, ""); /* profile: none of the well-known ones */
  int rc = put_str(&h, "shmx " SHMX_VERSION_STRING);
  rec_end(&h, at);
  if (rc || !h.p) {
    free(h.p);
    free(w);
    return shmx__syserr(ENOMEM, "recording header");
  }
  rc = emit_bytes(w, h.p, h.n);
  free(h.p);
  if (!rc) rc = flush(w);
  if (rc) {
    shmx__mw_free(w);
    return rc;
  }
  *out = w;
  return 0;
}

/* ---- schema, channel, metadata ---------------------------------------------- */

/* Emit rec (a whole record) into the data section and keep a copy in sum. */
static int emit_record(shmx__mw *w, dbuf *rec, dbuf *sum) {
  if (!rec->p) return fail(w, ENOMEM, "record");
  int rc = emit_bytes(w, rec->p, rec->n);
  if (!rc && sum && put_raw(sum, rec->p, rec->n)) rc = fail(w, ENOMEM, "summary");
  free(rec->p);
  return rc;
}

int shmx__mw_schema(shmx__mw *w, const char *name, const char *enc, const void *data,
                    uint64_t len, uint16_t *id) {
  int rc;
  if ((rc = shmx__mw_chunk_close(w))) return rc;
  if (w->n_schemas >= 65535 || len > UINT32_MAX)
    return shmx__err(SHMX_E_LIMIT, "recording: too many schemas or schema too large");
  *id = (uint16_t)++w->n_schemas;
  dbuf r = {0};
  size_t at = rec_begin(&r, SHMX__OP_SCHEMA);
  put_u16(&r, *id);
  put_str(&r, name);
  put_str(&r, enc);
  put_u32(&r, (uint32_t)len);
  put_raw(&r, data, (size_t)len);
  rec_end(&r, at);
  return emit_record(w, &r, &w->schemas);
}

int shmx__mw_channel(shmx__mw *w, uint16_t schema_id, const char *topic, const char *enc,
                     const char *const *kv, int n_kv, uint16_t *id) {
  int rc;
  if ((rc = shmx__mw_chunk_close(w))) return rc;
  if (w->n_channels >= 65535) return shmx__err(SHMX_E_LIMIT, "recording: 65535 channels");
  uint64_t *c = realloc(w->ch_msgs, (w->n_channels + 2) * sizeof *c);
  if (!c) return fail(w, ENOMEM, "channels");
  w->ch_msgs = c;
  /* Channel ids start at 1 (0 is valid in MCAP, but 1.. reads better). */
  *id = (uint16_t)++w->n_channels;
  c[*id] = 0;
  dbuf r = {0};
  size_t at = rec_begin(&r, SHMX__OP_CHANNEL);
  put_u16(&r, *id);
  put_u16(&r, schema_id);
  put_str(&r, topic);
  put_str(&r, enc);
  put_map(&r, kv, n_kv);
  rec_end(&r, at);
  return emit_record(w, &r, &w->channels);
}

int shmx__mw_metadata(shmx__mw *w, const char *name, const char *const *kv, int n_kv) {
  int rc;
  if ((rc = shmx__mw_chunk_close(w))) return rc;
  uint64_t at_file = w->pos;
  dbuf r = {0};
  size_t at = rec_begin(&r, SHMX__OP_METADATA);
  put_str(&r, name);
  put_map(&r, kv, n_kv);
  rec_end(&r, at);
  uint64_t len = r.n;
  if ((rc = emit_record(w, &r, NULL))) return rc;
  at = rec_begin(&w->meta_idx, SHMX__OP_META_INDEX);
  put_u64(&w->meta_idx, at_file);
  put_u64(&w->meta_idx, len);
  if (put_str(&w->meta_idx, name)) return fail(w, ENOMEM, "summary");
  rec_end(&w->meta_idx, at);
  w->n_meta++;
  return 0;
}

/* ---- chunks and messages ------------------------------------------------------ */

/* Chunk record header: opcode, length, start, end, usize, crc, compression
 * string, records length. */
static size_t chunk_head_len(uint32_t codec) { return 1 + 8 + 8 + 8 + 8 + 4 + 4 + strlen(codec_name(codec)) + 8; }

static int chunk_open(shmx__mw *w) {
  size_t hl = chunk_head_len(w->o.compression);
  w->in_chunk = 1;
  w->chunk_at = w->pos;
  w->rec_ref = w->pos + hl;
  w->rec_len = 0;
  w->c_start = UINT64_MAX;
  w->c_end = 0;
  w->c_crc = 0;
  w->cbuf.n = 0;
  for (int i = 0; i < w->n_mi; i++) w->mi[i].ent.n = 0;
  w->n_mi = 0;
  if (w->o.compression != SHMX_REC_NONE) return 0;
  /* Stored chunk: a header with zero lengths now, the real one at close. */
  uint8_t *q = emit(w, hl);
  if (!q) return w->err;
  memset(q, 0, hl);
  q[0] = SHMX__OP_CHUNK;
  return 0;
}

uint64_t shmx__mw_data_ref(const shmx__mw *w) {
  uint64_t ref = w->in_chunk ? w->rec_ref + w->rec_len
                             : w->pos + chunk_head_len(w->o.compression);
  return ref + SHMX__MCAP_MSG_HEAD;
}

static msg_index *index_for(shmx__mw *w, uint16_t ch) {
  for (int i = 0; i < w->n_mi; i++)
    if (w->mi[i].ch == ch) return &w->mi[i];
  if (w->n_mi == w->cap_mi) {
    int cap = w->cap_mi ? w->cap_mi * 2 : 8;
    msg_index *m = realloc(w->mi, (size_t)cap * sizeof *m);
    if (!m) return NULL;
    memset(m + w->cap_mi, 0, (size_t)(cap - w->cap_mi) * sizeof *m);
    w->mi = m;
    w->cap_mi = cap;
  }
  msg_index *m = &w->mi[w->n_mi++];
  m->ch = ch;
  m->ent.n = 0;
  return m;
}

static const uint8_t zeros[4096];

int shmx__mw_message(shmx__mw *w, uint16_t ch, uint32_t seq, uint64_t log_ns, uint64_t pub_ns,
                     const shmx__piece *pc, int n) {
  if (w->err) return w->err;
  if (ch == 0 || ch > w->n_channels) return shmx__err(SHMX_E_ARG, "recording: channel %u", ch);
  uint64_t data = 0;
  for (int i = 0; i < n; i++) data += pc[i].n;
  if (!w->in_chunk && chunk_open(w)) return w->err;
  msg_index *mi = index_for(w, ch);
  uint8_t *e = mi ? db_room(&mi->ent, 16) : NULL;
  if (!e) return fail(w, ENOMEM, "message index");
  shmx__put64(e, log_ns);
  shmx__put64(e + 8, w->rec_len);
  uint8_t h[SHMX__MCAP_MSG_HEAD];
  h[0] = SHMX__OP_MESSAGE;
  shmx__put64(h + 1, SHMX__MCAP_MSG_HEAD - 9 + data);
  shmx__put16(h + 9, ch);
  shmx__put32(h + 11, seq);
  shmx__put64(h + 15, log_ns);
  shmx__put64(h + 23, pub_ns);
  int crc = !w->o.no_crc;
  if (w->o.compression != SHMX_REC_NONE || data < BIG_MESSAGE) {
    /* Into the chunk buffer (compressed) or the staging buffer: copied
     * once, the CRC taken over the copy in one pass. */
    uint8_t *q0 = w->o.compression != SHMX_REC_NONE ? db_room(&w->cbuf, sizeof h + data)
                                                   : emit(w, sizeof h + data);
    if (!q0) return w->err ? w->err : fail(w, ENOMEM, "chunk buffer");
    uint8_t *q = q0;
    memcpy(q, h, sizeof h);
    q += sizeof h;
    for (int i = 0; i < n; i++) {
      if (pc[i].p) memcpy(q, pc[i].p, pc[i].n);
      else memset(q, 0, pc[i].n);
      q += pc[i].n;
    }
    if (crc) w->c_crc = shmx__crc32(w->c_crc, q0, sizeof h + data);
    if (w->o.compression == SHMX_REC_NONE && w->stage.n >= STAGE_FLUSH && flush(w))
      return w->err;
  } else {
    /* Straight from the pieces (staged bytes first), in batches of about
     * 256 KiB: each batch's CRC is taken right before it is written, so the
     * write finds the bytes still in the cache. */
    if (flush(w)) return w->err;
    struct iovec iov[64];
    int k = 0;
    uint64_t batch = sizeof h;
    iov[k++] = (struct iovec){h, sizeof h};
    for (int i = 0; i <= n; i++) {
      for (uint64_t done = 0; i < n && done < pc[i].n;) {
        uint64_t m = pc[i].n - done;
        if (m > WRITE_BATCH) m = WRITE_BATCH;
        if (!pc[i].p && m > sizeof zeros) m = sizeof zeros;
        iov[k++] = (struct iovec){pc[i].p ? (void *)((const uint8_t *)pc[i].p + done)
                                          : (void *)zeros, (size_t)m};
        done += m;
        batch += m;
        if (k < (int)(sizeof iov / sizeof iov[0]) && batch < WRITE_BATCH) continue;
        for (int j = 0; j < k && crc; j++)
          w->c_crc = shmx__crc32(w->c_crc, iov[j].iov_base, iov[j].iov_len);
        if (write_all(w, iov, k)) return w->err;
        k = 0;
        batch = 0;
      }
    }
    for (int j = 0; j < k && crc; j++)
      w->c_crc = shmx__crc32(w->c_crc, iov[j].iov_base, iov[j].iov_len);
    if (k && write_all(w, iov, k)) return w->err;
    w->pos += sizeof h + data;
  }
  w->rec_len += sizeof h + data;
  if (log_ns < w->c_start) w->c_start = log_ns;
  if (log_ns > w->c_end) w->c_end = log_ns;
  if (!w->n_msgs || log_ns < w->start) w->start = log_ns;
  if (log_ns > w->end) w->end = log_ns;
  w->n_msgs++;
  w->ch_msgs[ch]++;
  return 0;
}

uint64_t shmx__mw_chunk_bytes(const shmx__mw *w, uint64_t *first_log) {
  if (first_log) *first_log = w->in_chunk && w->rec_len ? w->c_start : 0;
  return w->in_chunk ? w->rec_len : 0;
}

static int compress_chunk(shmx__mw *w, uint64_t *stored) {
  const uint8_t *src = w->cbuf.p;
  size_t n = w->cbuf.n;
  size_t bound = 0;
#ifdef SHMX_HAVE_ZSTD
  if (w->o.compression == SHMX_REC_ZSTD) bound = ZSTD_compressBound(n);
#endif
#ifdef SHMX_HAVE_LZ4
  if (w->o.compression == SHMX_REC_LZ4) bound = LZ4F_compressFrameBound(n, NULL);
#endif
  w->zbuf.n = 0;
  if (!db_room(&w->zbuf, bound)) return fail(w, ENOMEM, "compression buffer");
#ifdef SHMX_HAVE_ZSTD
  if (w->o.compression == SHMX_REC_ZSTD) {
    size_t k = ZSTD_compress(w->zbuf.p, bound, src, n, w->o.level ? w->o.level : 1);
    if (ZSTD_isError(k)) return shmx__err(SHMX_E_INTERNAL, "zstd: %s", ZSTD_getErrorName(k));
    *stored = k;
  }
#endif
#ifdef SHMX_HAVE_LZ4
  if (w->o.compression == SHMX_REC_LZ4) {
    LZ4F_preferences_t pr;
    memset(&pr, 0, sizeof pr);
    pr.compressionLevel = w->o.level;
    pr.frameInfo.contentSize = n;
    size_t k = LZ4F_compressFrame(w->zbuf.p, bound, src, n, &pr);
    if (LZ4F_isError(k)) return shmx__err(SHMX_E_INTERNAL, "lz4: %s", LZ4F_getErrorName(k));
    *stored = k;
  }
#endif
  (void)src;
  return 0;
}

int shmx__mw_chunk_close(shmx__mw *w) {
  if (w->err) return w->err;
  if (!w->in_chunk) return 0;
  w->in_chunk = 0;
  int stored_plain = w->o.compression == SHMX_REC_NONE;
  uint64_t stored = w->rec_len;
  if (!stored_plain && compress_chunk(w, &stored)) return w->err ? w->err : SHMX_E_INTERNAL;
  const char *cs = codec_name(w->o.compression);
  size_t hl = chunk_head_len(w->o.compression);
  uint8_t h[64];
  h[0] = SHMX__OP_CHUNK;
  shmx__put64(h + 1, hl - 9 + stored);
  shmx__put64(h + 9, w->c_start == UINT64_MAX ? 0 : w->c_start);
  shmx__put64(h + 17, w->c_end);
  shmx__put64(h + 25, w->rec_len);
  shmx__put32(h + 33, w->o.no_crc ? 0 : w->c_crc);
  shmx__put32(h + 37, (uint32_t)strlen(cs));
  memcpy(h + 41, cs, strlen(cs));
  shmx__put64(h + hl - 8, stored);
  if (stored_plain) {
    /* The records are in the file (or staged): fix the header in place. */
    if (flush(w)) return w->err;
    for (size_t done = 0; done < hl;) {
      ssize_t k = pwrite(w->fd, h + done, hl - done, (off_t)(w->chunk_at + done));
      if (k < 0 && errno == EINTR) continue;
      if (k <= 0) return fail(w, k < 0 ? errno : EIO, "chunk header");
      done += (size_t)k;
    }
  } else {
    if (emit_bytes(w, h, hl) || flush(w)) return w->err;
    struct iovec v = {w->zbuf.p, (size_t)stored};
    if (write_all(w, &v, 1)) return w->err;
    w->pos += stored;
  }
  uint64_t chunk_len = w->pos - w->chunk_at;
  /* Message Index records, one per channel of the chunk. */
  uint64_t mi_start = w->pos;
  dbuf offs = {0};
  for (int i = 0; i < w->n_mi; i++) {
    msg_index *m = &w->mi[i];
    put_u16(&offs, m->ch);
    put_u64(&offs, w->pos);
    uint8_t *q = emit(w, 1 + 8 + 2 + 4);
    if (!q) break;
    q[0] = SHMX__OP_MSG_INDEX;
    shmx__put64(q + 1, 2 + 4 + m->ent.n);
    shmx__put16(q + 9, m->ch);
    shmx__put32(q + 11, (uint32_t)m->ent.n);
    if (emit_bytes(w, m->ent.p, m->ent.n)) break;
  }
  uint64_t mi_len = w->pos - mi_start;
  dbuf *ci = &w->chunk_idx;
  size_t at = rec_begin(ci, SHMX__OP_CHUNK_INDEX);
  put_u64(ci, w->c_start == UINT64_MAX ? 0 : w->c_start);
  put_u64(ci, w->c_end);
  put_u64(ci, w->chunk_at);
  put_u64(ci, chunk_len);
  put_u32(ci, (uint32_t)offs.n);
  put_raw(ci, offs.p, offs.n);
  put_u64(ci, mi_len);
  put_str(ci, cs);
  put_u64(ci, stored);
  int bad = put_u64(ci, w->rec_len);
  rec_end(ci, at);
  free(offs.p);
  if (bad || (w->n_mi && !offs.p)) return fail(w, ENOMEM, "chunk index");
  w->n_chunks++;
  if (flush(w)) return w->err;
  if (w->o.sync && fdatasync(w->fd) && errno != EINVAL) return fail(w, errno, "fdatasync");
  return w->err;
}

/* ---- finish ------------------------------------------------------------------ */

int shmx__mw_finish(shmx__mw *w) {
  if (shmx__mw_chunk_close(w)) return w->err;
  uint8_t de[13] = {SHMX__OP_DATA_END};
  shmx__put64(de + 1, 4);
  if (emit_bytes(w, de, sizeof de)) return w->err;
  /* Summary: groups by opcode, then one Summary Offset per group. */
  dbuf s = {0}, so = {0};
  uint64_t base = w->pos;
  struct { uint8_t op; dbuf *b; } groups[] = {
    {SHMX__OP_SCHEMA, &w->schemas}, {SHMX__OP_CHANNEL, &w->channels},
    {SHMX__OP_STATISTICS, NULL},    {SHMX__OP_CHUNK_INDEX, &w->chunk_idx},
    {SHMX__OP_META_INDEX, &w->meta_idx},
  };
  for (size_t g = 0; g < sizeof groups / sizeof groups[0]; g++) {
    size_t from = s.n;
    if (groups[g].b) {
      put_raw(&s, groups[g].b->p, groups[g].b->n);
    } else {
      size_t at = rec_begin(&s, SHMX__OP_STATISTICS);
      put_u64(&s, w->n_msgs);
      put_u16(&s, (uint16_t)w->n_schemas);
      put_u32(&s, w->n_channels);
      put_u32(&s, 0); /* attachments */
      put_u32(&s, w->n_meta);
      put_u32(&s, (uint32_t)w->n_chunks);
      put_u64(&s, w->n_msgs ? w->start : 0);
      put_u64(&s, w->n_msgs ? w->end : 0);
      put_u32(&s, w->n_channels * 10);
      for (uint32_t c = 1; c <= w->n_channels; c++) {
        put_u16(&s, (uint16_t)c);
        put_u64(&s, w->ch_msgs[c]);
      }
      rec_end(&s, at);
    }
    if (s.n == from) continue;
    put_u8(&so, SHMX__OP_SUMMARY_OFFSET);
    put_u64(&so, 17);
    put_u8(&so, groups[g].op);
    put_u64(&so, base + from);
    put_u64(&so, s.n - from);
  }
  uint64_t so_start = base + s.n;
  put_raw(&s, so.p, so.n);
  free(so.p);
  put_u8(&s, SHMX__OP_FOOTER);
  put_u64(&s, 20);
  put_u64(&s, base);
  put_u64(&s, so_start);
  int bad = !s.p;
  uint32_t crc = bad ? 0 : shmx__crc32(0, s.p, s.n);
  bad |= put_u32(&s, crc) | put_raw(&s, SHMX__MCAP_MAGIC, SHMX__MCAP_MAGIC_LEN);
  if (bad) {
    free(s.p);
    return fail(w, ENOMEM, "summary");
  }
  int rc = emit_bytes(w, s.p, s.n);
  free(s.p);
  if (!rc) rc = flush(w);
  if (!rc && fsync(w->fd) && errno != EINVAL) rc = fail(w, errno, "fsync");
  return rc;
}

uint64_t shmx__mw_size(const shmx__mw *w) { return w->pos; }
uint64_t shmx__mw_chunks(const shmx__mw *w) { return w->n_chunks; }

void shmx__mw_free(shmx__mw *w) {
  if (!w) return;
  free(w->stage.p);
  free(w->cbuf.p);
  free(w->zbuf.p);
  for (int i = 0; i < w->cap_mi; i++) free(w->mi[i].ent.p);
  free(w->mi);
  free(w->schemas.p);
  free(w->channels.p);
  free(w->chunk_idx.p);
  free(w->meta_idx.p);
  free(w->ch_msgs);
  free(w);
}

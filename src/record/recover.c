/*
 * recover.c -- rebuild an indexed recording from a torn one
 * (shmx_recording_recover, `shmx recover`).
 *
 * The input's records are read in order from the start. Schemas and
 * channels are kept; every message of every complete chunk (decompressed,
 * CRC-checked when the chunk has a CRC) is written again into a new file
 * with fresh chunks, indexes and summary. A stored chunk that a crash left
 * open (its header still zero: mcap_write.c writes it at close) gives up
 * the complete message records it holds, counted as salvaged; a chunk whose
 * records stop parsing part-way gives up the whole ones before. Nothing is
 * invented: a message is copied or dropped whole; shmx frame messages keep
 * every field and byte, only their stream padding is laid out again so the
 * data stay 64-byte aligned in the new file.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "le.h"
#include "mcap.h"
#include "shmx_record.h"

#define BODY_MAX (UINT64_C(4) << 30) /* a record we are willing to load */

typedef struct idmap {
  uint16_t in, out;
  int shmx;           /* channel: shmx.frame/1 messages */
} idmap;

typedef struct rec {
  int in;
  uint64_t size;
  shmx__mw *w;
  idmap sch[65536 / 64], ch[65536 / 64]; /* small maps: ids seen */
  int n_sch, n_ch;
  uint8_t *head;
  shmx_recover_stats st;
  shmx_frame_stream fs[SHMX_FRAME_MAX_STREAMS];
} rec;

static int pread_all(int fd, void *dst, uint64_t n, uint64_t off) {
  uint8_t *p = dst;
  while (n) {
    ssize_t k = pread(fd, p, n > (1u << 30) ? (1u << 30) : (size_t)n, (off_t)off);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) return shmx__syserr(errno, "recover: read");
    if (k == 0) return shmx__err(SHMX_E_CORRUPT, "recover: file ends early");
    p += k;
    off += (uint64_t)k;
    n -= (uint64_t)k;
  }
  return 0;
}

/* A field of at most 4096 bytes as a C string (cut at a NUL inside). */
static void cstr(char out[4097], const uint8_t *p, uint64_t n) {
  memcpy(out, p, (size_t)n);
  out[n] = 0;
}

static idmap *find(idmap *m, int n, uint16_t in) {
  for (int i = 0; i < n; i++)
    if (m[i].in == in) return &m[i];
  return NULL;
}

/* One record from inside or outside a chunk. Returns 0 if it was used or
 * skipped as harmless, SHMX_E_CORRUPT if it is malformed. */
static int one(rec *R, uint8_t op, const uint8_t *b, uint64_t len) {
  shmx__mr m = shmx__mr_of(b, len);
  if (op == SHMX__OP_SCHEMA) {
    uint16_t id = shmx__mr_u16(&m);
    uint64_t nl, el, dl;
    const uint8_t *nm = shmx__mr_bytes32(&m, &nl), *en = shmx__mr_bytes32(&m, &el);
    const uint8_t *d = shmx__mr_bytes32(&m, &dl);
    if (m.bad || !id || nl > 4096 || el > 4096) return shmx__err(SHMX_E_CORRUPT, "bad schema");
    if (find(R->sch, R->n_sch, id)) return 0;
    if (R->n_sch == (int)(sizeof R->sch / sizeof R->sch[0]))
      return shmx__err(SHMX_E_LIMIT, "recover: too many schemas");
    char name[4097], enc[4097];
    cstr(name, nm, nl);
    cstr(enc, en, el);
    idmap *x = &R->sch[R->n_sch];
    int rc = shmx__mw_schema(R->w, name, enc, d, dl, &x->out);
    if (rc) return rc;
    x->in = id;
    x->shmx = !strcmp(enc, SHMX__MCAP_SCHEMA_ENC);
    R->n_sch++;
    return 0;
  }
  if (op == SHMX__OP_CHANNEL) {
    uint16_t id = shmx__mr_u16(&m), sid = shmx__mr_u16(&m);
    uint64_t tl, el, ml;
    const uint8_t *t = shmx__mr_bytes32(&m, &tl), *e = shmx__mr_bytes32(&m, &el);
    const uint8_t *meta = shmx__mr_bytes32(&m, &ml);
    if (m.bad || tl > 4096 || el > 4096) return shmx__err(SHMX_E_CORRUPT, "bad channel");
    if (find(R->ch, R->n_ch, id)) return 0;
    idmap *s = find(R->sch, R->n_sch, sid);
    if (sid && !s) return shmx__err(SHMX_E_CORRUPT, "channel before its schema");
    if (R->n_ch == (int)(sizeof R->ch / sizeof R->ch[0]))
      return shmx__err(SHMX_E_LIMIT, "recover: too many channels");
    /* Metadata pairs: copied as they are (bounded). */
    char *kv[64];
    int n_kv = 0, rc = 0;
    shmx__mr mm = shmx__mr_of(meta, ml);
    while (mm.off < mm.n && !mm.bad && n_kv < 32) {
      for (int j = 0; j < 2; j++) {
        uint64_t sl;
        const uint8_t *sp = shmx__mr_bytes32(&mm, &sl);
        kv[2 * n_kv + j] = mm.bad ? NULL : strndup((const char *)sp, sl);
      }
      if (mm.bad || !kv[2 * n_kv] || !kv[2 * n_kv + 1]) {
        free(kv[2 * n_kv]);
        free(kv[2 * n_kv + 1]);
        break;
      }
      n_kv++;
    }
    char topic[4097], enc[4097];
    cstr(topic, t, tl);
    cstr(enc, e, el);
    idmap *x = &R->ch[R->n_ch];
    rc = shmx__mw_channel(R->w, s ? s->out : 0, topic, enc, (const char *const *)kv, n_kv,
                         &x->out);
    for (int j = 0; j < 2 * n_kv; j++) free(kv[j]);
    if (rc) return rc;
    x->in = id;
    x->shmx = s && s->shmx && !strcmp(enc, SHMX__MCAP_MSG_ENC);
    R->n_ch++;
    return 0;
  }
  if (op == SHMX__OP_MESSAGE) {
    uint16_t id = shmx__mr_u16(&m);
    uint32_t seq = shmx__mr_u32(&m);
    uint64_t log = shmx__mr_u64(&m), pub = shmx__mr_u64(&m);
    if (m.bad) return shmx__err(SHMX_E_CORRUPT, "bad message");
    idmap *c = find(R->ch, R->n_ch, id);
    if (!c) return shmx__err(SHMX_E_CORRUPT, "message on an unknown channel");
    const uint8_t *d = b + m.off;
    uint64_t n = len - m.off;
    shmx__mcap_frame mf;
    if (c->shmx && shmx__mcap_frame_parse(d, n, &mf) == 0) {
      shmx_frame f;
      memset(&f, 0, sizeof f);
      f.frame_id = mf.frame_id;
      f.sim_time = mf.sim_time;
      f.publish_ns = mf.publish_ns;
      f.dropped = mf.dropped;
      f.tlv_count = mf.n_streams;
      for (uint32_t i = 0; i < mf.n_streams; i++) {
        uint64_t off;
        shmx__mcap_frame_entry(&mf, i, &R->fs[i].stream_id, &R->fs[i].elem_count,
                               &R->fs[i].bytes, &off);
        R->fs[i].data = d + off;
      }
      f.streams = R->fs;
      int rc = shmx__rec_put_frame(R->w, c->out, R->head, &f, log, pub);
      if (!rc) R->st.frames++;
      return rc;
    }
    if (c->shmx) return shmx__err(SHMX_E_CORRUPT, "undecodable frame message");
    shmx__piece pc = {d, n};
    int rc = shmx__mw_message(R->w, c->out, seq, log, pub, &pc, 1);
    if (!rc) R->st.frames++;
    return rc;
  }
  return 0; /* indexes, metadata, attachments, private records: rebuilt or left */
}

/* The records of a chunk's body (already decompressed). With partial set,
 * stop quietly at the first incomplete record (an unfinished chunk). */
static int records(rec *R, const uint8_t *p, uint64_t n, int partial, uint64_t *used) {
  uint64_t off = 0, before = R->st.frames;
  uint8_t op;
  const uint8_t *b;
  uint64_t len;
  int rc;
  while ((rc = shmx__mcap_next(p, n, &off, &op, &b, &len)) == 0) {
    if (op == SHMX__OP_CHUNK || op == 0) {
      rc = SHMX_E_CORRUPT;
      break;
    }
    if ((rc = one(R, op, b, len))) break;
  }
  if (used) *used = R->st.frames - before;
  if (rc == 1 || (partial && rc == SHMX_E_CORRUPT)) return 0;
  return rc;
}

static int scan(rec *R) {
  uint64_t off = SHMX__MCAP_MAGIC_LEN;
  uint8_t h[9];
  int rc = 0;
  while (off < R->size) {
    if (R->size - off < 9 || (rc = pread_all(R->in, h, 9, off))) break;
    uint8_t op = h[0];
    uint64_t len = shmx__get64(h + 1);
    if (op == SHMX__OP_DATA_END || op == SHMX__OP_FOOTER) return 0;
    if (op == SHMX__OP_CHUNK && len == 0) { /* left open by a crash */
      uint64_t rest = R->size - off - 9 - 40;
      if (R->size - off < 9 + 40 || rest > BODY_MAX) break;
      uint8_t *body = malloc(rest ? rest : 1);
      if (!body) return shmx__syserr(ENOMEM, "recover");
      uint64_t got = 0;
      if (!(rc = pread_all(R->in, body, rest, off + 9 + 40)))
        rc = records(R, body, rest, 1, &got);
      free(body);
      R->st.salvaged += got;
      if (!rc) rc = shmx__mw_chunk_close(R->w);
      R->st.tail_bytes = 0;
      return rc;
    }
    if (R->size - off - 9 < len || len > BODY_MAX) break; /* torn */
    uint8_t *body = malloc(len ? len : 1);
    if (!body) return shmx__syserr(ENOMEM, "recover: record of %llu bytes",
                                   (unsigned long long)len);
    if ((rc = pread_all(R->in, body, len, off + 9))) {
      free(body);
      break;
    }
    if (op == SHMX__OP_CHUNK) {
      shmx__mcap_chunk c;
      uint8_t *plain = NULL;
      int ok = shmx__mcap_chunk_parse(body, len, &c) == 0 && c.compression[0] != '?' &&
               c.records_off + c.records_len == len && c.usize <= BODY_MAX &&
               shmx__mcap_usize_ok(c.compression, body + c.records_off, c.records_len, c.usize);
      if (ok && !(plain = malloc(c.usize ? c.usize : 1))) {
        free(body);
        return shmx__syserr(ENOMEM, "recover: chunk");
      }
      ok = ok && shmx__mcap_decompress(c.compression, body + c.records_off, c.records_len,
                                       plain, c.usize) == 0;
      ok = ok && (!c.crc || shmx__crc32(0, plain, c.usize) == c.crc);
      if (ok) {
        /* All or nothing per chunk: a chunk whose records do not parse
         * was damaged after its CRC (or has none): skip it whole. */
        uint64_t frames = R->st.frames;
        rc = records(R, plain, c.usize, 0, NULL);
        if (rc == SHMX_E_CORRUPT) { /* damaged past its CRC, or it has none */
          rc = 0;
          ok = R->st.frames != frames; /* keep the whole messages before */
        }
        if (!rc) rc = shmx__mw_chunk_close(R->w);
        if (ok) R->st.chunks++;
      }
      if (!ok) R->st.bad_chunks++;
      free(plain);
    } else {
      rc = one(R, op, body, len);
      if (rc == SHMX_E_CORRUPT) rc = 0; /* a damaged loose record: skip it */
    }
    free(body);
    if (rc) return rc;
    off += 9 + len;
  }
  if (!rc) R->st.tail_bytes = R->size - off;
  return rc;
}

int shmx_recording_recover(const char *in_path, const char *out_path, shmx_recover_stats *st) {
  if (st) memset(st, 0, sizeof *st);
  if (!in_path || !out_path) return shmx__err(SHMX_E_ARG, "recover: no path");
  rec *R = calloc(1, sizeof *R);
  if (!R || !(R->head = malloc(SHMX__FRAME_HEAD + SHMX__FRAME_DIRENT * SHMX_FRAME_MAX_STREAMS))) {
    free(R);
    return shmx__syserr(ENOMEM, "recover");
  }
  int out = -1, rc;
  R->in = open(in_path, O_RDONLY | O_CLOEXEC);
  struct stat sb;
  uint8_t magic[SHMX__MCAP_MAGIC_LEN];
  if (R->in < 0) {
    rc = shmx__syserr(errno, "recover: '%s'", in_path);
    goto done;
  }
  if (fstat(R->in, &sb) || !S_ISREG(sb.st_mode)) {
    rc = shmx__err(SHMX_E_ARG, "recover: '%s' is not a regular file", in_path);
    goto done;
  }
  R->size = (uint64_t)sb.st_size;
  if (R->size < sizeof magic || pread_all(R->in, magic, sizeof magic, 0) ||
      memcmp(magic, SHMX__MCAP_MAGIC, SHMX__MCAP_MAGIC_LEN)) {
    rc = shmx__err(SHMX_E_CORRUPT, "recover: '%s' is not an MCAP file", in_path);
    goto done;
  }
  /* The output keeps the compression of the input's first complete chunk. */
  shmx__mw_opts o = {SHMX_REC_NONE, 0, 4u << 20, 0, 0};
  uint64_t off = SHMX__MCAP_MAGIC_LEN;
  for (int i = 0; i < 100000 && off < R->size; i++) {
    uint8_t h[9 + 40 + 8];
    if (R->size - off < sizeof h || pread_all(R->in, h, sizeof h, off)) break;
    uint64_t len = shmx__get64(h + 1);
    shmx__mcap_chunk c;
    if (h[0] == SHMX__OP_CHUNK && len && shmx__mcap_chunk_parse(h + 9, sizeof h - 9, &c) == 0) {
      o.compression = !strcmp(c.compression, "zstd") ? SHMX_REC_ZSTD
                    : !strcmp(c.compression, "lz4") ? SHMX_REC_LZ4 : SHMX_REC_NONE;
      if (!shmx__mw_codec_ok(o.compression)) o.compression = SHMX_REC_NONE;
      break;
    }
    if (R->size - off - 9 < len) break;
    off += 9 + len;
  }
  out = open(out_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (out < 0) {
    rc = shmx__syserr(errno, "recover: '%s'", out_path);
    goto done;
  }
  if (!(rc = shmx__mw_open(out, &o, &R->w)) && !(rc = scan(R))) rc = shmx__mw_finish(R->w);
  if (st) *st = R->st;
done:
  shmx__mw_free(R->w);
  if (out >= 0) {
    close(out);
    if (rc) unlink(out_path);
  }
  if (R->in >= 0) close(R->in);
  free(R->head);
  free(R);
  return rc;
}

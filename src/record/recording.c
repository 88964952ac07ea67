/*
 * recording.c -- read a recording at random (shmx_record.h).
 *
 * Open reads the Footer and the summary only. Every chunk index is checked
 * against the file; the messages of a chunk are found through its Message
 * Index records (read when the chunk is first needed, a few hundred bytes);
 * compressed chunks are decompressed into a buffer that frames share by
 * reference, stored chunks are read through the window manager without a
 * copy. Positions number the messages in chunk order (chunks sorted by start
 * time), then by log time and file order within a chunk.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "le.h"
#include "mcap.h"
#include "schemablob.h"
#include "shmx_record.h"

#define SUMMARY_MAX (256u << 20)   /* summary bytes we accept */
#define CHUNK_MAX (UINT64_C(4) << 30) /* decompressed chunk bytes we accept */
#define CACHE 2                     /* decompressed chunks kept */

typedef struct rbuf {
  int refs;
  void *mem;
} rbuf;

static void rbuf_unref(rbuf *b) {
  if (b && --b->refs == 0) {
    free(b->mem);
    free(b);
  }
}

typedef struct rchunk {
  uint64_t start, end, at, len, mi_len, csize, usize;
  uint64_t first;       /* position of its first message */
  uint32_t n_msgs;
  uint32_t ch0, n_ch;   /* its (channel, index offset) pairs in chx[] */
  char comp[8];
} rchunk;

typedef struct chx {
  uint16_t ch;          /* channel table index */
  uint64_t mi_at;       /* Message Index record offset */
  uint64_t count;       /* messages of the channel in the chunk */
  uint64_t first_id;    /* frame id of the channel's first message here, 0 unknown */
} chx;

typedef struct ent {
  uint64_t log, off;
  uint32_t ch;          /* channel table index */
} ent;

typedef struct loaded {
  int64_t k;            /* chunk, -1 none */
  ent *e;               /* n_msgs entries, position order */
  uint64_t rec_abs;     /* file offset of the stored records */
  rbuf *buf;            /* decompressed records (+ alignment shift), or NULL */
  uint8_t *rec;         /* records start inside buf */
  unsigned age;
} loaded;

typedef struct rchan {
  shmx_rec_channel pub;
  uint16_t mcap_id;
  int is_shmx;
  shmx__sb sb;
  uint8_t *blob;
  char *topic;
  shmx_stream_info *si;
  uint32_t *chunks;     /* chunk numbers holding it, in order */
  uint32_t *chunk_chx;  /* ... and the chx entry for each */
  uint32_t n_chunks;
} rchan;

struct shmx_recording {
  shmx_wm *wm;
  shmx_wc *c;
  uint64_t size;
  char *library;
  const char *compression;
  rchunk *ck;
  uint32_t n_ck;
  chx *chx;
  uint32_t n_chx;
  rchan *ch;
  uint32_t n_ch;        /* channels; the shmx ones first: */
  uint32_t n_pub;       /* ... they are the public list (others, such as
                           derived Foxglove channels, are skipped) */
  uint64_t frames, start, end, dropped;
  int dropped_known;
  loaded cache[CACHE];
  unsigned tick;
};

/* ---- small reads ------------------------------------------------------------- */

static int rd(shmx_recording *r, uint64_t off, void *dst, uint64_t n) {
  if (!shmx__range_ok(off, n, r->size))
    return shmx__err(SHMX_E_CORRUPT, "recording: %llu bytes at %llu past its end (%llu)",
                     (unsigned long long)n, (unsigned long long)off,
                     (unsigned long long)r->size);
  /* Through the mapped window when it holds the range (no system call
   * while the cursor stays in its window), else pread. */
  if (n && n <= 65536 && shmx_wc_use(r->c, off, n) == 1 && shmx_wc_size(r->c) >= n) {
    const shmx_wm_region *reg = shmx_wc_region(r->c);
    memcpy(dst, shmx_wc_ptr(r->c), n);
    if (!shmx_wm_region_lost(reg)) return 0;
    return shmx__err(SHMX_E_CORRUPT, "recording: the file shrank under its mapping");
  }
  int64_t got = shmx_wc_read(r->c, off, dst, n);
  if (got < 0) return (int)got;
  if ((uint64_t)got != n)
    return shmx__err(SHMX_E_CORRUPT, "recording: file shorter than its index (%llu at %llu)",
                     (unsigned long long)n, (unsigned long long)off);
  return 0;
}

static void *rd_alloc(shmx_recording *r, uint64_t off, uint64_t n, int *rc) {
  uint8_t *b = malloc(n ? n : 1);
  if (!b) {
    *rc = shmx__syserr(ENOMEM, "recording: %llu bytes", (unsigned long long)n);
    return NULL;
  }
  if ((*rc = rd(r, off, b, n))) {
    free(b);
    return NULL;
  }
  return b;
}

/* ---- summary ------------------------------------------------------------------ */

static char *dup_str(const uint8_t *p, uint64_t n) {
  char *s = malloc(n + 1);
  if (!s) return NULL;
  memcpy(s, p, n);
  s[n] = 0;
  if (strlen(s) != n) { /* a NUL inside: cut there, still a string */
  }
  return s;
}

typedef struct sch {
  uint16_t id;
  const uint8_t *name, *enc, *data;
  uint64_t name_n, enc_n, data_n;
} sch;

static int cmp_chunk(const void *a, const void *b) {
  const rchunk *x = a, *y = b;
  if (x->start != y->start) return x->start < y->start ? -1 : 1;
  return x->at < y->at ? -1 : x->at > y->at;
}

static int meta_get(const uint8_t *map, uint64_t n, const char *key, uint64_t *v) {
  shmx__mr m = shmx__mr_of(map, n);
  while (m.off < m.n && !m.bad) {
    uint64_t kl, vl;
    const uint8_t *k = shmx__mr_bytes32(&m, &kl), *val = shmx__mr_bytes32(&m, &vl);
    if (m.bad) break;
    if (kl == strlen(key) && !memcmp(k, key, kl) && vl && vl < 24) {
      char buf[24];
      memcpy(buf, val, vl);
      buf[vl] = 0;
      char *end;
      unsigned long long x = strtoull(buf, &end, 0);
      if (*end == 0) {
        *v = x;
        return 1;
      }
    }
  }
  return 0;
}

static int parse_summary(shmx_recording *r, const uint8_t *s, uint64_t n, uint64_t data_end) {
  uint64_t off = 0;
  uint8_t op;
  const uint8_t *body;
  uint64_t len;
  int rc;
  sch *schemas = NULL;
  uint32_t n_sch = 0, cap_sch = 0, cap_ch = 0, cap_ck = 0, cap_chx = 0;
  uint64_t *stat_counts = NULL; /* by mcap channel id */
  while ((rc = shmx__mcap_next(s, n, &off, &op, &body, &len)) == 0) {
    shmx__mr m = shmx__mr_of(body, len);
    if (op == SHMX__OP_SCHEMA) {
      if (n_sch == cap_sch) {
        cap_sch = cap_sch ? 2 * cap_sch : 8;
        sch *q = realloc(schemas, cap_sch * sizeof *q);
        if (!q) { rc = shmx__syserr(ENOMEM, "schemas"); break; }
        schemas = q;
      }
      sch *x = &schemas[n_sch];
      x->id = shmx__mr_u16(&m);
      x->name = shmx__mr_bytes32(&m, &x->name_n);
      x->enc = shmx__mr_bytes32(&m, &x->enc_n);
      x->data = shmx__mr_bytes32(&m, &x->data_n);
      if (m.bad || !x->id) { rc = shmx__err(SHMX_E_CORRUPT, "recording: bad Schema record"); break; }
      n_sch++;
    } else if (op == SHMX__OP_CHANNEL) {
      if (r->n_ch == cap_ch) {
        cap_ch = cap_ch ? 2 * cap_ch : 8;
        rchan *q = realloc(r->ch, cap_ch * sizeof *q);
        if (!q) { rc = shmx__syserr(ENOMEM, "channels"); break; }
        r->ch = q;
      }
      rchan *c = &r->ch[r->n_ch];
      memset(c, 0, sizeof *c);
      uint64_t tl, el, ml;
      c->mcap_id = shmx__mr_u16(&m);
      uint16_t sid = shmx__mr_u16(&m);
      const uint8_t *t = shmx__mr_bytes32(&m, &tl), *e = shmx__mr_bytes32(&m, &el);
      const uint8_t *meta = shmx__mr_bytes32(&m, &ml);
      if (m.bad) { rc = shmx__err(SHMX_E_CORRUPT, "recording: bad Channel record"); break; }
      for (uint32_t i = 0; i < r->n_ch; i++)
        if (r->ch[i].mcap_id == c->mcap_id) rc = shmx__err(SHMX_E_CORRUPT, "recording: channel %u twice", c->mcap_id);
      if (rc) break;
      r->n_ch++;
      if (!(c->topic = dup_str(t, tl))) { rc = shmx__syserr(ENOMEM, "topic"); break; }
      c->pub.id = c->mcap_id;
      c->pub.topic = c->topic;
      uint64_t v;
      if (meta_get(meta, ml, "shmx.session", &v)) c->pub.session = v;
      if (meta_get(meta, ml, "shmx.schema_gen", &v) && v <= UINT32_MAX) c->pub.schema_gen = (uint32_t)v;
      int enc_ok = el == strlen(SHMX__MCAP_MSG_ENC) && !memcmp(e, SHMX__MCAP_MSG_ENC, el);
      for (uint32_t i = 0; i < n_sch && enc_ok; i++) {
        sch *x = &schemas[i];
        if (x->id != sid || x->enc_n != strlen(SHMX__MCAP_SCHEMA_ENC) ||
            memcmp(x->enc, SHMX__MCAP_SCHEMA_ENC, x->enc_n))
          continue;
        if (!(c->blob = malloc(x->data_n ? x->data_n : 1))) { rc = shmx__syserr(ENOMEM, "schema"); break; }
        if (x->data_n) memcpy(c->blob, x->data, x->data_n);
        if ((rc = shmx__sb_decode(c->blob, x->data_n, &c->sb))) {
          rc = shmx__err(SHMX_E_CORRUPT, "recording: channel %u: schema: %s", c->mcap_id,
                         shmx_errmsg());
          break;
        }
        c->is_shmx = 1;
        c->pub.schema = c->blob;
        c->pub.schema_len = x->data_n;
        c->si = calloc(c->sb.n_streams ? c->sb.n_streams : 1, sizeof *c->si);
        if (!c->si) { rc = shmx__syserr(ENOMEM, "streams"); break; }
        for (uint32_t j = 0; j < c->sb.n_streams; j++) {
          const shmx_stream_spec *sp = &c->sb.streams[j];
          c->si[j] = (shmx_stream_info){sp->id, sp->dtype, sp->components, sp->layout,
                                        sp->bytes_per_elem, sp->extra_len, sp->name, sp->extra};
        }
        c->pub.streams = c->si;
        c->pub.n_streams = (int)c->sb.n_streams;
        c->pub.slots = c->sb.slots;
        c->pub.reader_slots = c->sb.reader_slots;
        c->pub.flags = c->sb.flags;
        c->pub.frame_bytes_cap = c->sb.frame_cap;
        c->pub.static_bytes_cap = c->sb.static_cap;
        c->pub.control_per_reader = c->sb.control_per_reader;
        break;
      }
      if (rc) break;
    } else if (op == SHMX__OP_CHUNK_INDEX) {
      if (r->n_ck == cap_ck) {
        cap_ck = cap_ck ? 2 * cap_ck : 64;
        rchunk *q = realloc(r->ck, cap_ck * sizeof *q);
        if (!q) { rc = shmx__syserr(ENOMEM, "chunk indexes"); break; }
        r->ck = q;
      }
      rchunk *k = &r->ck[r->n_ck];
      memset(k, 0, sizeof *k);
      k->start = shmx__mr_u64(&m);
      k->end = shmx__mr_u64(&m);
      k->at = shmx__mr_u64(&m);
      k->len = shmx__mr_u64(&m);
      uint64_t mapn;
      const uint8_t *map = shmx__mr_bytes32(&m, &mapn);
      k->mi_len = shmx__mr_u64(&m);
      uint64_t cl;
      const uint8_t *cs = shmx__mr_bytes32(&m, &cl);
      k->csize = shmx__mr_u64(&m);
      k->usize = shmx__mr_u64(&m);
      if (m.bad || mapn % 10 || !shmx__range_ok(k->at, k->len, data_end) ||
          k->len < 9 + 40 || k->start > k->end || k->usize > CHUNK_MAX || cl > 4 ||
          (mapn && !shmx__range_ok(k->at + k->len, k->mi_len, data_end))) {
        rc = shmx__err(SHMX_E_CORRUPT, "recording: chunk index %u does not fit the file", r->n_ck);
        break;
      }
      memcpy(k->comp, cs, cl);
      k->comp[cl] = 0;
      k->ch0 = r->n_chx;
      k->n_ch = (uint32_t)(mapn / 10);
      uint64_t entries = 0;
      for (uint32_t i = 0; i < k->n_ch; i++) {
        if (r->n_chx == cap_chx) {
          cap_chx = cap_chx ? 2 * cap_chx : 64;
          chx *q = realloc(r->chx, cap_chx * sizeof *q);
          if (!q) { rc = shmx__syserr(ENOMEM, "chunk indexes"); break; }
          r->chx = q;
        }
        chx *x = &r->chx[r->n_chx++];
        x->ch = shmx__get16(map + 10 * i); /* mcap id for now */
        x->mi_at = shmx__get64(map + 10 * i + 2);
        x->first_id = 0;
        if (!shmx__range_ok(x->mi_at, 15, data_end) || x->mi_at < k->at + k->len ||
            x->mi_at - (k->at + k->len) >= k->mi_len) {
          rc = shmx__err(SHMX_E_CORRUPT, "recording: chunk %u: message index outside", r->n_ck);
          break;
        }
      }
      if (rc) break;
      /* Message Index records: 15 bytes each plus 16 per message. */
      if (k->mi_len < 15ull * k->n_ch || (k->mi_len - 15ull * k->n_ch) % 16) {
        rc = shmx__err(SHMX_E_CORRUPT, "recording: chunk %u: message index length", r->n_ck);
        break;
      }
      entries = (k->mi_len - 15ull * k->n_ch) / 16;
      if (entries > k->usize / SHMX__MCAP_MSG_HEAD || entries > UINT32_MAX) {
        rc = shmx__err(SHMX_E_CORRUPT, "recording: chunk %u: %llu messages", r->n_ck,
                       (unsigned long long)entries);
        break;
      }
      /* Each channel's count, from where its record starts and the next
       * one does (records follow each other after the chunk). */
      chx *cx = r->chx + k->ch0;
      for (uint32_t i = 0; i < k->n_ch && !rc; i++) {
        uint64_t end = k->at + k->len + k->mi_len;
        for (uint32_t j = 0; j < k->n_ch; j++)
          if (cx[j].mi_at > cx[i].mi_at && cx[j].mi_at < end) end = cx[j].mi_at;
        for (uint32_t j = 0; j < i; j++)
          if (cx[j].mi_at == cx[i].mi_at) end = 0;
        if (end - cx[i].mi_at < 15 || (end - cx[i].mi_at - 15) % 16)
          rc = shmx__err(SHMX_E_CORRUPT, "recording: chunk %u: message index records overlap",
                         r->n_ck);
        else
          cx[i].count = (end - cx[i].mi_at - 15) / 16;
      }
      if (rc) break;
      r->n_ck++;
    } else if (op == SHMX__OP_STATISTICS) {
      shmx__mr_take(&m, 8 + 2 + 4 + 4 + 4 + 4 + 8 + 8);
      uint64_t mapn;
      const uint8_t *map = shmx__mr_bytes32(&m, &mapn);
      if (!m.bad && mapn % 10 == 0) {
        free(stat_counts);
        stat_counts = calloc(65536, sizeof *stat_counts);
        for (uint64_t i = 0; stat_counts && i < mapn / 10; i++)
          stat_counts[shmx__get16(map + 10 * i)] = shmx__get64(map + 10 * i + 2);
      }
    } else if (op == SHMX__OP_FOOTER) {
      break;
    }
  }
  if (rc == 1) rc = 0;
  /* The shmx channels first, in file order: they are the public list. */
  for (uint32_t i = 0, w = 0; i < r->n_ch && !rc; i++)
    if (r->ch[i].is_shmx) {
      rchan t = r->ch[i];
      memmove(&r->ch[w + 1], &r->ch[w], (i - w) * sizeof *r->ch);
      r->ch[w++] = t;
      r->n_pub = w;
    }
  /* Chunk pairs name channels by MCAP id: resolve to table indexes. */
  for (uint32_t i = 0; i < r->n_chx && !rc; i++) {
    uint32_t j = 0;
    while (j < r->n_ch && r->ch[j].mcap_id != r->chx[i].ch) j++;
    if (j == r->n_ch)
      rc = shmx__err(SHMX_E_CORRUPT, "recording: chunk index names channel %u, not in the summary",
                     r->chx[i].ch);
    r->chx[i].ch = (uint16_t)j;
  }
  for (uint32_t i = 0; i < r->n_ch && stat_counts; i++)
    r->ch[i].pub.frames = stat_counts[r->ch[i].mcap_id];
  free(stat_counts);
  free(schemas);
  return rc;
}

static int index_chunks(shmx_recording *r) {
  for (uint32_t i = 0; i < r->n_ck; i++) { /* frames: messages of shmx channels */
    uint64_t n = 0;
    for (uint32_t j = 0; j < r->ck[i].n_ch; j++)
      if (r->chx[r->ck[i].ch0 + j].ch < r->n_pub) n += r->chx[r->ck[i].ch0 + j].count;
    r->ck[i].n_msgs = (uint32_t)n; /* <= the chunk's entries, checked < 2^32 */
  }
  if (r->n_ck) qsort(r->ck, r->n_ck, sizeof *r->ck, cmp_chunk);
  uint64_t pos = 0;
  int mixed = 0;
  for (uint32_t i = 0; i < r->n_ck; i++) {
    r->ck[i].first = pos;
    pos += r->ck[i].n_msgs;
    if (i && strcmp(r->ck[i].comp, r->ck[0].comp)) mixed = 1;
    if (r->ck[i].n_msgs) {
      if (!r->frames || r->ck[i].start < r->start) r->start = r->ck[i].start;
      if (r->ck[i].end > r->end) r->end = r->ck[i].end;
    }
    r->frames = pos;
  }
  r->compression = !r->n_ck ? "none" : mixed ? "mixed"
                 : !r->ck[0].comp[0] ? "none" : r->ck[0].comp;
  /* Per channel: the chunks holding it, in order. */
  for (uint32_t c = 0; c < r->n_pub; c++) {
    rchan *ch = &r->ch[c];
    uint32_t n = 0;
    for (uint32_t i = 0; i < r->n_ck; i++)
      for (uint32_t j = 0; j < r->ck[i].n_ch; j++) n += r->chx[r->ck[i].ch0 + j].ch == c;
    ch->chunks = malloc((n ? n : 1) * sizeof *ch->chunks);
    ch->chunk_chx = malloc((n ? n : 1) * sizeof *ch->chunk_chx);
    if (!ch->chunks || !ch->chunk_chx) return shmx__syserr(ENOMEM, "channel index");
    for (uint32_t i = 0; i < r->n_ck; i++)
      for (uint32_t j = 0; j < r->ck[i].n_ch; j++)
        if (r->chx[r->ck[i].ch0 + j].ch == c) {
          ch->chunks[ch->n_chunks] = i;
          ch->chunk_chx[ch->n_chunks++] = r->ck[i].ch0 + j;
        }
  }
  return 0;
}

int shmx_recording_open(const char *path, shmx_recording **out) {
  *out = NULL;
  if (!path) return shmx__err(SHMX_E_ARG, "recording: no path");
  shmx_recording *r = calloc(1, sizeof *r);
  if (!r) return shmx__syserr(ENOMEM, "recording");
  for (int i = 0; i < CACHE; i++) r->cache[i].k = -1;
  shmx_wm_config wc;
  shmx_wm_config_init(&wc, SHMX_WM_SLIDING);
  /* Windows of 256 MiB, at most 16 GiB of address space mapped: only the
   * pages read become resident, and they are the page cache's. A random
   * seek in a file up to 16 GiB never remaps (an unmap of a used window
   * costs more than the rest of a seek); larger files go through LRU
   * windows. */
  wc.window_size = sizeof(void *) >= 8 ? 256u << 20 : 32u << 20;
  wc.max_memory = sizeof(void *) >= 8 ? UINT64_C(16) << 30 : 256u << 20;
  int rc = shmx_wm_create(&wc, &r->wm);
  if (!rc) rc = shmx_wc_open_path(r->wm, path, 0, &r->c);
  uint8_t *sum = NULL;
  if (rc) goto fail;
  if ((rc = shmx_wc_use(r->c, 0, 1)) < 0) goto fail;
  r->size = shmx_wc_file_size(r->c);
  shmx_wc_unuse(r->c);
  uint8_t head[SHMX__MCAP_MAGIC_LEN], foot[SHMX__MCAP_FOOTER_LEN];
  if (r->size < 2 * SHMX__MCAP_MAGIC_LEN + SHMX__MCAP_FOOTER_LEN - SHMX__MCAP_MAGIC_LEN ||
      rd(r, 0, head, sizeof head) || memcmp(head, SHMX__MCAP_MAGIC, SHMX__MCAP_MAGIC_LEN)) {
    rc = shmx__err(SHMX_E_CORRUPT, "'%s' is not an MCAP file", path);
    goto fail;
  }
  if ((rc = rd(r, r->size - sizeof foot, foot, sizeof foot))) goto fail;
  if (foot[0] != SHMX__OP_FOOTER || shmx__get64(foot + 1) != 20 ||
      memcmp(foot + 29, SHMX__MCAP_MAGIC, SHMX__MCAP_MAGIC_LEN)) {
    rc = shmx__err(SHMX_E_CORRUPT, "'%s' has no footer: an unfinished recording "
                   "(shmx recover rebuilds it)", path);
    goto fail;
  }
  uint64_t s_start = shmx__get64(foot + 9), so_start = shmx__get64(foot + 17);
  uint32_t s_crc = shmx__get32(foot + 25);
  uint64_t foot_at = r->size - sizeof foot;
  if (s_start == 0) {
    rc = shmx__err(SHMX_E_CORRUPT, "'%s' has no summary: not indexed (shmx recover "
                   "rebuilds the index)", path);
    goto fail;
  }
  if (s_start < SHMX__MCAP_MAGIC_LEN || s_start > foot_at || foot_at - s_start > SUMMARY_MAX ||
      (so_start && (so_start < s_start || so_start > foot_at))) {
    rc = shmx__err(SHMX_E_CORRUPT, "'%s': summary offsets outside the file", path);
    goto fail;
  }
  /* The summary, the summary offsets and the footer up to its CRC. */
  uint64_t s_len = foot_at - s_start;
  if (!(sum = rd_alloc(r, s_start, s_len + 25, &rc))) goto fail;
  if (s_crc && shmx__crc32(0, sum, s_len + 25) != s_crc) {
    rc = shmx__err(SHMX_E_CORRUPT, "'%s': summary CRC mismatch", path);
    goto fail;
  }
  if ((rc = parse_summary(r, sum, so_start ? so_start - s_start : s_len, s_start))) goto fail;
  if ((rc = index_chunks(r))) goto fail;
  /* Header: the writer's name. */
  uint8_t hb[9 + 4 + 64 + 4 + 128];
  uint64_t hn = r->size - SHMX__MCAP_MAGIC_LEN < sizeof hb ? r->size - SHMX__MCAP_MAGIC_LEN : sizeof hb;
  if (!rd(r, SHMX__MCAP_MAGIC_LEN, hb, hn) && hb[0] == SHMX__OP_HEADER) {
    shmx__mr m = shmx__mr_of(hb + 9, hn - 9);
    uint64_t pl, ll;
    shmx__mr_bytes32(&m, &pl);
    const uint8_t *lib = shmx__mr_bytes32(&m, &ll);
    if (!m.bad) r->library = dup_str(lib, ll);
  }
  free(sum);
  *out = r;
  return 0;
fail:
  free(sum);
  shmx_recording_close(r); /* sets no error message */
  return rc;
}

static void cache_drop(loaded *l) {
  free(l->e);
  rbuf_unref(l->buf);
  l->e = NULL;
  l->buf = NULL;
  l->rec = NULL;
  l->k = -1;
}

void shmx_recording_close(shmx_recording *r) {
  if (!r) return;
  for (int i = 0; i < CACHE; i++) cache_drop(&r->cache[i]);
  for (uint32_t i = 0; i < r->n_ch; i++) {
    rchan *c = &r->ch[i];
    shmx__sb_free(&c->sb);
    free(c->blob);
    free(c->topic);
    free(c->si);
    free(c->chunks);
    free(c->chunk_chx);
  }
  free(r->ch);
  free(r->ck);
  free(r->chx);
  free(r->library);
  shmx_wc_close(r->c);
  shmx_wm_destroy(r->wm);
  free(r);
}

void shmx_recording_info(const shmx_recording *r, shmx_rec_info *o) {
  memset(o, 0, sizeof *o);
  o->channels = r->n_pub;
  o->frames = r->frames;
  o->chunks = r->n_ck;
  o->start_ns = r->start;
  o->end_ns = r->end;
  o->dropped = r->dropped;
  o->file_bytes = r->size;
  o->library = r->library ? r->library : "";
  o->compression = r->compression;
}

const shmx_rec_channel *shmx_recording_channel(const shmx_recording *r, uint32_t i) {
  return i < r->n_pub ? &r->ch[i].pub : NULL;
}

/* ---- chunks -------------------------------------------------------------------- */

static int cmp_ent(const void *a, const void *b) {
  const ent *x = a, *y = b;
  if (x->log != y->log) return x->log < y->log ? -1 : 1;
  return x->off < y->off ? -1 : x->off > y->off;
}

/* The chunk's header: records start and a check against its index. */
static int chunk_head(shmx_recording *r, const rchunk *k, uint64_t *rec_abs) {
  uint8_t h[9 + 40 + 8];
  uint64_t n = k->len < sizeof h ? k->len : sizeof h;
  int rc = rd(r, k->at, h, n);
  if (rc) return rc;
  shmx__mcap_chunk c;
  if (h[0] != SHMX__OP_CHUNK || shmx__get64(h + 1) != k->len - 9 ||
      shmx__mcap_chunk_parse(h + 9, n - 9, &c))
    return shmx__err(SHMX_E_CORRUPT, "recording: no chunk at offset %llu",
                     (unsigned long long)k->at);
  if (c.usize != k->usize || c.records_len != k->csize || strcmp(c.compression, k->comp) ||
      c.records_off + c.records_len != k->len - 9)
    return shmx__err(SHMX_E_CORRUPT, "recording: chunk at %llu disagrees with its index",
                     (unsigned long long)k->at);
  if (!k->comp[0] && k->csize != k->usize)
    return shmx__err(SHMX_E_CORRUPT, "recording: stored chunk sizes differ");
  *rec_abs = k->at + 9 + c.records_off;
  return 0;
}

/* Load chunk k's message entries (and, if data, its decompressed bytes). */
static loaded *load(shmx_recording *r, uint32_t k, int data, int *rc) {
  loaded *l = NULL;
  for (int i = 0; i < CACHE; i++)
    if (r->cache[i].k == k) l = &r->cache[i];
  if (!l) {
    l = &r->cache[0];
    for (int i = 1; i < CACHE; i++)
      if (r->cache[i].age < l->age) l = &r->cache[i];
    cache_drop(l);
    const rchunk *c = &r->ck[k];
    if ((*rc = chunk_head(r, c, &l->rec_abs))) return NULL;
    l->e = malloc((c->n_msgs ? c->n_msgs : 1) * sizeof *l->e);
    if (!l->e) {
      *rc = shmx__syserr(ENOMEM, "chunk index");
      return NULL;
    }
    uint8_t *mi = rd_alloc(r, c->at + c->len, c->mi_len, rc);
    if (!mi) {
      cache_drop(l);
      return NULL;
    }
    uint64_t off = 0, got = 0;
    uint8_t op;
    const uint8_t *body;
    uint64_t len;
    while (!*rc && shmx__mcap_next(mi, c->mi_len, &off, &op, &body, &len) == 0) {
      shmx__mr m = shmx__mr_of(body, len);
      uint16_t id = shmx__mr_u16(&m);
      uint64_t an;
      const uint8_t *arr = shmx__mr_bytes32(&m, &an);
      uint32_t ch = 0;
      while (ch < r->n_ch && r->ch[ch].mcap_id != id) ch++;
      if (op != SHMX__OP_MSG_INDEX || m.bad || an % 16 || ch == r->n_ch) {
        *rc = shmx__err(SHMX_E_CORRUPT, "recording: chunk at %llu: bad message index",
                        (unsigned long long)c->at);
        break;
      }
      if (ch >= r->n_pub) continue; /* not a shmx channel: not a frame */
      if (an / 16 > c->n_msgs - got) {
        *rc = shmx__err(SHMX_E_CORRUPT, "recording: chunk at %llu: more messages than "
                        "indexed", (unsigned long long)c->at);
        break;
      }
      for (uint64_t i = 0; i < an / 16; i++, got++) {
        l->e[got].log = shmx__get64(arr + 16 * i);
        l->e[got].off = shmx__get64(arr + 16 * i + 8);
        l->e[got].ch = ch;
        if (l->e[got].off >= c->usize || c->usize - l->e[got].off < SHMX__MCAP_MSG_HEAD)
          *rc = shmx__err(SHMX_E_CORRUPT, "recording: message offset outside its chunk");
      }
    }
    free(mi);
    if (!*rc && got != c->n_msgs)
      *rc = shmx__err(SHMX_E_CORRUPT, "recording: chunk at %llu: %llu of %u messages indexed",
                      (unsigned long long)c->at, (unsigned long long)got, c->n_msgs);
    if (*rc) {
      cache_drop(l);
      return NULL;
    }
    int sorted = 1; /* as shmx writes them: skip the sort */
    for (uint32_t i = 1; i < c->n_msgs && sorted; i++) sorted = cmp_ent(&l->e[i - 1], &l->e[i]) < 0;
    if (!sorted) qsort(l->e, c->n_msgs, sizeof *l->e, cmp_ent);
    l->k = k;
  }
  l->age = ++r->tick;
  if (data && r->ck[k].comp[0] && !l->buf) {
    const rchunk *c = &r->ck[k];
    uint8_t *z = rd_alloc(r, l->rec_abs, c->csize, rc);
    if (!z) return NULL;
    if (!shmx__mcap_usize_ok(c->comp, z, c->csize, c->usize)) {
      free(z);
      *rc = shmx__err(SHMX_E_CORRUPT, "recording: chunk at %llu: %llu compressed bytes "
                      "cannot hold %llu", (unsigned long long)c->at,
                      (unsigned long long)c->csize, (unsigned long long)c->usize);
      return NULL;
    }
    rbuf *b = calloc(1, sizeof *b);
    void *mem = NULL;
    if (!b || posix_memalign(&mem, SHMX__REC_ALIGN, c->usize + SHMX__REC_ALIGN)) {
      free(b);
      free(z);
      *rc = shmx__syserr(ENOMEM, "chunk of %llu bytes", (unsigned long long)c->usize);
      return NULL;
    }
    b->refs = 1;
    b->mem = mem;
    /* At the alignment the writer placed the stream data at. */
    uint8_t *rec = (uint8_t *)mem + l->rec_abs % SHMX__REC_ALIGN;
    *rc = shmx__mcap_decompress(c->comp, z, c->csize, rec, c->usize);
    free(z);
    if (*rc) {
      rbuf_unref(b);
      return NULL;
    }
    l->buf = b;
    l->rec = rec;
  }
  return l;
}

static uint32_t chunk_of(const shmx_recording *r, uint64_t pos) {
  uint32_t lo = 0, hi = r->n_ck; /* last chunk with first <= pos */
  while (hi - lo > 1) {
    uint32_t mid = lo + (hi - lo) / 2;
    if (r->ck[mid].first <= pos) lo = mid;
    else hi = mid;
  }
  while (lo + 1 < r->n_ck && r->ck[lo].n_msgs == 0) lo++;
  return lo;
}

/* The message at entry e of loaded chunk l: its header fields and a
 * pointer to its data (held in *hold_* if not NULL). */
typedef struct msgref {
  uint16_t mcap_ch;
  uint64_t log, pub;
  const uint8_t *data;
  uint64_t n;
  rbuf *buf;
  shmx_wm_region *region;
  void *own;            /* private copy (a window straddled) */
} msgref;

static int message(shmx_recording *r, loaded *l, const ent *e, int want_data, msgref *m) {
  const rchunk *c = &r->ck[l->k];
  memset(m, 0, sizeof *m);
  uint8_t h[SHMX__MCAP_MSG_HEAD];
  int rc;
  if (c->comp[0]) {
    memcpy(h, l->rec + e->off, sizeof h);
  } else if ((rc = rd(r, l->rec_abs + e->off, h, sizeof h))) {
    return rc;
  }
  uint64_t len = shmx__get64(h + 1);
  if (h[0] != SHMX__OP_MESSAGE || len < SHMX__MCAP_MSG_HEAD - 9 ||
      c->usize - e->off - 9 < len || shmx__get16(h + 9) != r->ch[e->ch].mcap_id)
    return shmx__err(SHMX_E_CORRUPT, "recording: no message at chunk offset %llu",
                     (unsigned long long)e->off);
  m->mcap_ch = shmx__get16(h + 9);
  m->log = shmx__get64(h + 15);
  m->pub = shmx__get64(h + 23);
  m->n = len - (SHMX__MCAP_MSG_HEAD - 9);
  if (!want_data) return 0;
  if (c->comp[0]) {
    m->data = l->rec + e->off + SHMX__MCAP_MSG_HEAD;
    m->buf = l->buf;
    l->buf->refs++;
    return 0;
  }
  uint64_t at = l->rec_abs + e->off + SHMX__MCAP_MSG_HEAD;
  if (want_data == 2) { /* the first bytes only, copied */
    uint64_t k = m->n < SHMX__FRAME_HEAD ? m->n : SHMX__FRAME_HEAD;
    m->own = malloc(SHMX__FRAME_HEAD);
    if (!m->own) return shmx__syserr(ENOMEM, "message");
    m->data = m->own;
    return rd(r, at, m->own, k);
  }
  rc = m->n ? shmx_wc_use(r->c, at, m->n) : 0;
  if (rc == 1 && shmx_wc_size(r->c) >= m->n) {
    m->region = shmx_wc_region(r->c);
    if (shmx_wm_region_use(m->region) == 0) {
      shmx_wm_region_hold(m->region);
      m->data = shmx_wc_ptr(r->c);
      return 0;
    }
    m->region = NULL;
  }
  if (rc < 0) return rc;
  /* A window boundary cuts it: a private copy at the same alignment. */
  void *mem;
  if (posix_memalign(&mem, SHMX__REC_ALIGN, m->n + SHMX__REC_ALIGN))
    return shmx__syserr(ENOMEM, "message of %llu bytes", (unsigned long long)m->n);
  m->own = mem;
  m->data = (uint8_t *)mem + at % SHMX__REC_ALIGN;
  return rd(r, at, (uint8_t *)m->data, m->n);
}

static void msgref_drop(msgref *m) {
  rbuf_unref(m->buf);
  if (m->region) {
    shmx_wm_region_unuse(m->region);
    shmx_wm_region_unhold(m->region);
  }
  free(m->own);
  memset(m, 0, sizeof *m);
}

void shmx_rec_frame_release(shmx_rec_frame *f) {
  if (!f || !f->_priv[0]) return;
  msgref *m = f->_priv[0];
  msgref_drop(m);
  free(m);
  free((void *)f->streams);
  memset(f, 0, sizeof *f);
}

int shmx_recording_read_at(shmx_recording *r, uint64_t pos, shmx_rec_frame *f) {
  memset(f, 0, sizeof *f);
  if (pos >= r->frames) return shmx__err(SHMX_E_NOFRAME, "recording: position %llu past the "
                                         "last frame", (unsigned long long)pos);
  uint32_t k = chunk_of(r, pos);
  int rc = 0;
  loaded *l = load(r, k, 1, &rc);
  if (!l) return rc;
  const ent *e = &l->e[pos - r->ck[k].first];
  const rchan *ch = &r->ch[e->ch];
  if (!ch->is_shmx)
    return shmx__err(SHMX_E_STREAM, "recording: channel '%s' is not a shmx channel", ch->topic);
  msgref *m = calloc(1, sizeof *m);
  if (!m) return shmx__syserr(ENOMEM, "frame");
  shmx__mcap_frame mf;
  shmx_frame_stream *st = NULL;
  if ((rc = message(r, l, e, 1, m)) || (rc = shmx__mcap_frame_parse(m->data, m->n, &mf)))
    goto fail;
  st = calloc(mf.n_streams ? mf.n_streams : 1, sizeof *st);
  if (!st) {
    rc = shmx__syserr(ENOMEM, "frame");
    goto fail;
  }
  uint64_t payload = 0;
  for (uint32_t i = 0; i < mf.n_streams; i++) {
    uint64_t off;
    shmx__mcap_frame_entry(&mf, i, &st[i].stream_id, &st[i].elem_count, &st[i].bytes, &off);
    st[i].data = m->data + off;
    st[i].index = UINT32_MAX;
    for (int j = 0; j < ch->pub.n_streams; j++)
      if (ch->si[j].id == st[i].stream_id) st[i].index = (uint32_t)j;
    uint64_t want;
    if (st[i].index != UINT32_MAX &&
        (!shmx__mul_ok(st[i].elem_count, ch->si[st[i].index].bytes_per_elem, &want) ||
         want != st[i].bytes)) {
      rc = shmx__err(SHMX_E_CORRUPT, "recording: frame %llu: stream %u: %llu bytes for %llu "
                     "elements", (unsigned long long)mf.frame_id, st[i].stream_id,
                     (unsigned long long)st[i].bytes, (unsigned long long)st[i].elem_count);
      goto fail;
    }
    payload += st[i].bytes;
  }
  f->channel = e->ch;
  f->frame_id = mf.frame_id;
  f->sim_time = mf.sim_time;
  f->publish_ns = mf.publish_ns;
  f->log_ns = m->log;
  f->publish_time_ns = m->pub;
  f->dropped = mf.dropped;
  f->payload_bytes = payload;
  f->tlv_count = mf.n_streams;
  f->streams = st;
  f->pos = pos;
  f->_priv[0] = m;
  return 0;
fail:
  free(st);
  msgref_drop(m);
  free(m);
  return rc;
}

/* ---- finding ---------------------------------------------------------------------- */

static int topic_match(const shmx_recording *r, const char *topic, uint32_t ch) {
  return !topic || !strcmp(r->ch[ch].topic, topic);
}

static int topic_check(shmx_recording *r, const char **topic) {
  if (*topic) {
    for (uint32_t i = 0; i < r->n_pub; i++)
      if (!strcmp(r->ch[i].topic, *topic)) return 0;
    return shmx__err(SHMX_E_STREAM, "recording: no channel '%s'", *topic);
  }
  return 0;
}

int shmx_recording_step(shmx_recording *r, const char *topic, int dir, uint64_t *pos) {
  int rc = topic_check(r, &topic);
  if (rc) return rc;
  uint64_t p = *pos;
  for (;;) {
    if (dir > 0 ? p + 1 >= r->frames : p == 0 || p > r->frames)
      return shmx__err(SHMX_E_NOFRAME, "recording: no %s frame", dir > 0 ? "next" : "previous");
    p = dir > 0 ? p + 1 : p - 1;
    if (!topic) break;
    uint32_t k = chunk_of(r, p);
    loaded *l = load(r, k, 0, &rc);
    if (!l) return rc;
    if (topic_match(r, topic, l->e[p - r->ck[k].first].ch)) break;
  }
  *pos = p;
  return 0;
}

int shmx_recording_find_time(shmx_recording *r, const char *topic, uint64_t log_ns,
                             uint64_t *pos) {
  int rc = topic_check(r, &topic);
  if (rc) return rc;
  if (!r->frames) return shmx__err(SHMX_E_NOFRAME, "recording: no frames");
  /* Last chunk starting at or before log_ns (chunks sorted by start). */
  uint32_t lo = 0, hi = r->n_ck;
  while (hi - lo > 1) {
    uint32_t mid = lo + (hi - lo) / 2;
    if (r->ck[mid].start <= log_ns) lo = mid;
    else hi = mid;
  }
  while (lo > 0 && r->ck[lo].n_msgs == 0) lo--;
  while (r->ck[lo].n_msgs == 0) lo++; /* chunk 0 held no frame: the first that does */
  uint64_t p = r->ck[lo].first;
  loaded *l = load(r, lo, 0, &rc);
  if (!l) return rc;
  uint32_t a = 0, b = r->ck[lo].n_msgs; /* last entry with log <= log_ns */
  while (b - a > 1) {
    uint32_t mid = a + (b - a) / 2;
    if (l->e[mid].log <= log_ns) a = mid;
    else b = mid;
  }
  p += a;
  if (topic_match(r, topic, l->e[a].ch)) {
    *pos = p;
    return 0;
  }
  uint64_t q = p;
  if (shmx_recording_step(r, topic, -1, &q) == 0 || shmx_recording_step(r, topic, 1, &q) == 0) {
    *pos = q;
    return 0;
  }
  return shmx__err(SHMX_E_NOFRAME, "recording: no frame of '%s'", topic);
}

/* Frame id of entry e of loaded chunk l: the message header and the
 * frame id read in one go (71 bytes), checked as message() checks them. */
static int entry_id(shmx_recording *r, loaded *l, const ent *e, uint64_t *id) {
  const rchunk *c = &r->ck[l->k];
  uint8_t b[SHMX__MCAP_MSG_HEAD + 8];
  const uint8_t *h = b;
  if (c->usize - e->off < sizeof b)
    return shmx__err(SHMX_E_CORRUPT, "recording: short frame message");
  if (c->comp[0]) {
    h = l->rec + e->off;
  } else {
    int rc = rd(r, l->rec_abs + e->off, b, sizeof b);
    if (rc) return rc;
  }
  uint64_t len = shmx__get64(h + 1);
  if (h[0] != SHMX__OP_MESSAGE || len < SHMX__MCAP_MSG_HEAD - 9 + SHMX__FRAME_HEAD ||
      c->usize - e->off - 9 < len || shmx__get16(h + 9) != r->ch[e->ch].mcap_id)
    return shmx__err(SHMX_E_CORRUPT, "recording: no frame message at chunk offset %llu",
                     (unsigned long long)e->off);
  *id = shmx__get64(h + SHMX__MCAP_MSG_HEAD);
  return 0;
}

/* First frame id of channel c in its i-th chunk (cached). */
static int first_id(shmx_recording *r, uint32_t c, uint32_t i, uint64_t *id) {
  chx *x = &r->chx[r->ch[c].chunk_chx[i]];
  if (x->first_id) {
    *id = x->first_id;
    return 0;
  }
  uint32_t k = r->ch[c].chunks[i];
  int rc = 0;
  loaded *l = load(r, k, r->ck[k].comp[0] != 0, &rc);
  if (!l) return rc;
  for (uint32_t j = 0; j < r->ck[k].n_msgs; j++)
    if (l->e[j].ch == c) {
      if ((rc = entry_id(r, l, &l->e[j], id))) return rc;
      x->first_id = *id;
      return 0;
    }
  return shmx__err(SHMX_E_CORRUPT, "recording: chunk index lists a channel its chunk lacks");
}

static int find_in(shmx_recording *r, uint32_t c, uint64_t frame_id, uint64_t *pos) {
  rchan *ch = &r->ch[c];
  if (!ch->n_chunks || !ch->is_shmx) return SHMX_E_NOFRAME;
  uint32_t lo = 0, hi = ch->n_chunks; /* last chunk whose first id <= frame_id */
  uint64_t id = 0;
  int rc;
  if ((rc = first_id(r, c, 0, &id))) return rc;
  if (id > frame_id) return SHMX_E_NOFRAME;
  while (hi - lo > 1) {
    uint32_t mid = lo + (hi - lo) / 2;
    if ((rc = first_id(r, c, mid, &id))) return rc;
    if (id <= frame_id) lo = mid;
    else hi = mid;
  }
  uint32_t k = ch->chunks[lo];
  loaded *l = load(r, k, r->ck[k].comp[0] != 0, &rc);
  if (!l) return rc;
  /* The channel's entries in this chunk, in order: binary search by id. */
  uint32_t n = r->ck[k].n_msgs, cnt = 0;
  uint32_t *idx = malloc((n ? n : 1) * sizeof *idx);
  if (!idx) return shmx__syserr(ENOMEM, "search");
  for (uint32_t j = 0; j < n; j++)
    if (l->e[j].ch == c) idx[cnt++] = j;
  uint32_t a = 0, b = cnt;
  rc = SHMX_E_NOFRAME;
  /* Ids run on without gaps unless the recorder missed frames: try the
   * entry the chunk's first id points at before bisecting. */
  uint64_t first = r->chx[ch->chunk_chx[lo]].first_id;
  uint32_t guess = first && frame_id - first < cnt ? (uint32_t)(frame_id - first) : cnt / 2;
  for (int probe = 0; a < b; probe++) {
    uint32_t mid = probe == 0 && guess >= a && guess < b ? guess : a + (b - a) / 2;
    int e = entry_id(r, l, &l->e[idx[mid]], &id);
    if (e) {
      rc = e;
      break;
    }
    if (id == frame_id) {
      *pos = r->ck[k].first + idx[mid];
      rc = 0;
      break;
    }
    if (id < frame_id) a = mid + 1;
    else b = mid;
  }
  free(idx);
  return rc;
}

int shmx_recording_find_id(shmx_recording *r, const char *topic, uint64_t frame_id,
                           uint64_t *pos) {
  int rc = topic_check(r, &topic);
  if (rc) return rc;
  for (uint32_t c = 0; c < r->n_pub; c++) {
    if (!topic_match(r, topic, c)) continue;
    rc = find_in(r, c, frame_id, pos);
    if (rc != SHMX_E_NOFRAME) return rc;
  }
  return shmx__err(SHMX_E_NOFRAME, "recording: frame %llu is not in the file",
                   (unsigned long long)frame_id);
}

int shmx_recording_count_dropped(shmx_recording *r, uint64_t *dropped) {
  uint64_t sum = 0;
  for (uint32_t k = 0; k < r->n_ck; k++) {
    int rc = 0;
    loaded *l = load(r, k, r->ck[k].comp[0] != 0, &rc);
    if (!l) return rc;
    for (uint32_t j = 0; j < r->ck[k].n_msgs; j++) {
      msgref m;
      if (!r->ch[l->e[j].ch].is_shmx) continue;
      rc = message(r, l, &l->e[j], r->ck[k].comp[0] ? 1 : 2, &m);
      if (!rc && m.n >= SHMX__FRAME_HEAD) sum += shmx__get64(m.data + 24);
      msgref_drop(&m);
      if (rc) return rc;
    }
  }
  r->dropped = sum;
  r->dropped_known = 1;
  *dropped = sum;
  return 0;
}

/*
 * client.c -- the reader: attach, latest/next/wait, pinning, control send,
 * liveness.
 *
 * Reading a frame (see docs/design.md, "reading"):
 *   1. pin the slot (set our bit in its pin bitmap, seq_cst);
 *   2. load seq (seq_cst): it must be 2*frame_id, else unpin and retry;
 *   3. copy and validate the metadata and the record table against the
 *      slot size; 4. re-load seq: unchanged means the bytes we validated are
 *      the published ones, and the pin keeps them so while we hold it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control.h"
#include "owner.h"
#include "registry.h"
#include "schema.h"
#include "segment.h"

#define PROBE_INTERVAL_NS (100u * 1000 * 1000)
#define READ_RETRIES 1000
#define RETRY 1

struct shmx_client {
  shmx__seg seg;
  shmx__schema schema;
  uint32_t slot;               /* our reader slot */
  uint32_t lock_k;             /* our lock identity in it */
  uint64_t id;                 /* our reader id */
  uint64_t last_id;            /* last frame returned */
  uint32_t next_hint;          /* slot after the one next() last read */
  uint32_t *pinref;            /* per frame slot: frames we hold there */
  shmx_frame_stream **fs;      /* per frame slot: parsed record table */
  struct held { shmx_frame f; uint32_t gen; uint64_t used; } *held; /* per
                                  frame slot: the frame last fully read there
                                  (frame_id 0: none), the schema generation
                                  and the record area size fs[] was parsed
                                  with */
  shmx_frame_stream *copy_fs;   /* record table of the last copied frame */
  uint64_t probe_ns, probe_seq;
  int ev_fd;                   /* event fd (shmx_client_fd), -1 until asked */
  int ev_checked;              /* liveness checked since the watch exists */
};

static inline int reaped(const shmx_client *cl);

/* Our pin bits belong to our reader slot index: once reaped, that index may
 * be a newcomer's, so we no longer touch the bitmap (the reaper cleared our
 * bits). */
static int pin(shmx_client *cl, uint32_t s) {
  if (cl->pinref[s]++ == 0 && !reaped(cl))
    atomic_fetch_or(shmx__pin_word(&cl->seg, s, cl->slot >> 6),
                    1ull << (cl->slot & 63));
  return 0;
}

static void unpin(shmx_client *cl, uint32_t s) {
  if (cl->pinref[s] == 0) return;
  if (--cl->pinref[s] == 0 && !reaped(cl))
    atomic_fetch_and(shmx__pin_word(&cl->seg, s, cl->slot >> 6),
                     ~(1ull << (cl->slot & 63)));
}

/* Reasons to wait in shmx_client_open_wait: the channel may yet appear. */
static int curable(int rc) {
  return rc == SHMX_E_NOCHANNEL || rc == SHMX_E_CLOSED || rc == SHMX_E_DEAD ||
         rc == SHMX_E_RESTARTED || rc == SHMX_E_FULL;
}

int shmx_client_open_wait(const char *name, int64_t timeout_ns, shmx_client **out) {
  if (!out) return shmx__err(SHMX_E_ARG, "out is NULL");
  int rc = shmx_client_open(name, out);
  if (rc == 0 || !curable(rc) || timeout_ns == 0) return rc;
  uint64_t start = shmx__mono_ns();
  int wfd = shmx__dirwatch_open(); /* -errno: fall back to sleeping */
  char why[256];
  for (;;) {
    /* Watch first, then look again: a channel created between our last
     * look and the watch is seen by the look. */
    if ((rc = shmx_client_open(name, out)) == 0 || !curable(rc)) break;
    snprintf(why, sizeof why, "%s", shmx_errmsg());
    uint64_t el = shmx__mono_ns() - start;
    if (timeout_ns >= 0 && el >= (uint64_t)timeout_ns) {
      rc = shmx__err(SHMX_E_TIMEOUT, "not ready in time (%s)", why);
      break;
    }
    int64_t slice = 100 * 1000 * 1000;
    if (wfd < 0) slice = 10 * 1000 * 1000;
    if (timeout_ns >= 0 && (int64_t)((uint64_t)timeout_ns - el) < slice)
      slice = (int64_t)((uint64_t)timeout_ns - el);
    if (shmx__dirwatch_wait(wfd, slice) == -EINTR) {
      rc = shmx__err(SHMX_E_EINTR, "channel '%s': wait interrupted", name);
      break;
    }
  }
  if (wfd >= 0) shmx__close(wfd);
  return rc;
}

int shmx_client_open(const char *name, shmx_client **out) {
  int rc;
  if (!out) return shmx__err(SHMX_E_ARG, "out is NULL");
  *out = NULL;
  shmx_client *cl = calloc(1, sizeof *cl);
  if (!cl) return shmx__err(SHMX_E_ENOMEM, "client");
  if ((rc = shmx__seg_attach(name, SHMX__ATTACH_RW, &cl->seg))) {
    free(cl);
    return rc;
  }
  struct shmx__hdr *h = shmx__hdr(&cl->seg);
  if (atomic_load(&h->state) == SHMX__ST_CLOSED) {
    rc = shmx__err(SHMX_E_CLOSED, "channel '%s'", name);
    goto fail;
  }
  if (shmx__seg_owner_alive(cl->seg.fd) == 0) {
    rc = shmx__err(SHMX_E_DEAD, "channel '%s': producer pid %d is gone", name,
                   (int)cl->seg.owner_pid);
    goto fail;
  }
  if (cl->seg.lock_fd < 0) {
    /* A live producer whose lock file is not the one its header names: it
     * was replaced between our two opens (a restart), or tampered with. */
    rc = shmx__err(SHMX_E_RESTARTED, "channel '%s': its lock file belongs to "
                   "another session; open again", name);
    goto fail;
  }
  cl->pinref = calloc(cl->seg.g.slots, sizeof *cl->pinref);
  cl->fs = calloc(cl->seg.g.slots, sizeof *cl->fs);
  cl->held = calloc(cl->seg.g.slots, sizeof *cl->held);
  if (!cl->pinref || !cl->fs || !cl->held) {
    rc = shmx__err(SHMX_E_ENOMEM, "client");
    goto fail;
  }
  uint32_t gen = atomic_load(&h->static_gen);
  uint64_t used = atomic_load_explicit(&h->static_used, memory_order_acquire);
  if ((rc = shmx__schema_parse(shmx__static_area(&cl->seg), used,
                               cl->seg.g.static_cap, gen, &cl->schema))) {
    shmx__err(rc, "channel '%s': %s", name, shmx_errmsg());
    goto fail;
  }
  if ((rc = shmx__reg_claim(&cl->seg, &cl->slot, &cl->id, &cl->lock_k))) goto fail;
  cl->probe_ns = shmx__mono_ns();
  cl->ev_fd = -1;
  *out = cl;
  return 0;
fail:
  shmx__schema_free(&cl->schema);
  shmx__seg_detach(&cl->seg);
  free(cl->pinref);
  free(cl->fs);
  free(cl->held);
  free(cl);
  return rc;
}

void shmx_client_close(shmx_client *cl) {
  if (!cl) return;
  if (cl->ev_fd >= 0) shmx__close(cl->ev_fd);
  for (uint32_t s = 0; s < cl->seg.g.slots; s++) {
    if (cl->pinref[s]) {
      cl->pinref[s] = 1;
      unpin(cl, s);
    }
    free(cl->fs[s]);
  }
  shmx__reg_release(&cl->seg, cl->slot, cl->id, cl->lock_k);
  shmx__schema_free(&cl->schema);
  shmx__seg_detach(&cl->seg);
  free(cl->pinref);
  free(cl->fs);
  free(cl->held);
  free(cl->copy_fs);
  free(cl);
}

static inline int reaped(const shmx_client *cl) {
  return atomic_load_explicit(&shmx__rdr(&cl->seg, cl->slot)->owner,
                              memory_order_relaxed) != cl->id;
}

/* We were reaped: drop our lock identity (a newcomer may want it) and
 * report it. Idempotent. */
static int on_reaped(shmx_client *cl) {
  /* Our slot read as free because the file was cut under it (the guard gave
   * zeros during that very load): that is the truncation, not a reap. */
  SHMX__TRUNCATED_CHECK(&cl->seg);
  shmx__byte_unlock(cl->seg.lock_fd, shmx__reg_lock_off(&cl->seg, cl->slot, cl->lock_k));
  return shmx__err(SHMX_E_REAPED, "channel '%s': reader %llu was reaped",
                   cl->seg.name, (unsigned long long)cl->id);
}

static int refresh_schema(shmx_client *cl) {
  struct shmx__hdr *h = shmx__hdr(&cl->seg);
  uint32_t gen = atomic_load_explicit(&h->static_gen, memory_order_acquire);
  if (gen == cl->schema.gen) return 0;
  uint64_t used = atomic_load_explicit(&h->static_used, memory_order_acquire);
  shmx__schema fresh;
  int rc = shmx__schema_parse(shmx__static_area(&cl->seg), used,
                              cl->seg.g.static_cap, gen, &fresh);
  if (rc) return rc;
  shmx__schema_free(&cl->schema);
  cl->schema = fresh;
  return 1;
}

/* Checks shared by every read: reaped, closed, schema changed, heartbeat. */
static int pre_read(shmx_client *cl, uint64_t now) {
  struct shmx__reader *r = shmx__rdr(&cl->seg, cl->slot);
  SHMX__TRUNCATED_CHECK(&cl->seg);
  if (reaped(cl)) return on_reaped(cl);
  atomic_store_explicit(&r->heartbeat_ns, now, memory_order_relaxed);
  struct shmx__hdr *h = shmx__hdr(&cl->seg);
  if (SHMX__UNLIKELY(atomic_load_explicit(&h->static_gen, memory_order_relaxed) !=
                     cl->schema.gen)) {
    int rc = refresh_schema(cl);
    if (rc < 0) return rc;
  }
  return 0;
}

/* Producer liveness and the segment's size, probed at most every
 * PROBE_INTERVAL_NS while no new frame arrives (a publishing producer is
 * alive). */
static int probe_owner(shmx_client *cl, uint64_t seq, uint64_t now) {
  if (seq != cl->probe_seq) {
    cl->probe_seq = seq;
    cl->probe_ns = now;
    return 0;
  }
  if (now - cl->probe_ns < PROBE_INTERVAL_NS) return 0;
  cl->probe_ns = now;
  shmx__seg_check_size(&cl->seg);
  SHMX__TRUNCATED_CHECK(&cl->seg);
  if (shmx__seg_owner_alive(cl->seg.fd) == 0)
    return shmx__err(SHMX_E_DEAD, "channel '%s': producer pid %d is gone",
                     cl->seg.name, (int)cl->seg.owner_pid);
  return 0;
}

/* Parse the tlv records in [base, base + used) into table; they must add
 * up to payload bytes. NULL if they are sound, else what is wrong. base is
 * the slot (read under its seqlock: the caller re-checks seq before using
 * the result) or a private copy. */
static const char *parse_records(const shmx_client *cl, const uint8_t *base, uint64_t used,
                                 uint32_t tlv, uint64_t payload, shmx_frame_stream *table) {
  uint64_t pos = 0, sum = 0;
  for (uint32_t k = 0; k < tlv; k++) {
    const struct shmx__tlv *t = (const struct shmx__tlv *)(const void *)(base + pos);
    if (used - pos < SHMX__TLV_HDR) return "record header";
    uint32_t type = SHMX__LD(t->type), sid = SHMX__LD(t->stream_id);
    uint64_t cnt = SHMX__LD(t->elem_count), bytes = SHMX__LD(t->bytes);
    uint64_t data = pos + SHMX__TLV_HDR;
    if (type != SHMX_TLV_FRAME_STREAM) return "record type";
    if (used - data < bytes) return "record length";
    shmx_frame_stream *e = &table[k];
    e->stream_id = sid;
    int idx = shmx__schema_find(&cl->schema, sid);
    e->index = idx < 0 ? UINT32_MAX : (uint32_t)idx;
    e->elem_count = cnt;
    e->bytes = bytes;
    e->data = base + data;
    sum += bytes;
    pos = (data + bytes + SHMX__DATA_ALIGN - 1) & ~(uint64_t)(SHMX__DATA_ALIGN - 1);
    if (pos > used) pos = used;
  }
  return sum == payload ? NULL : "payload size";
}

/* A slot descriptor's metadata, loaded under the caller's seqlock. */
typedef struct slot_meta {
  uint64_t used, payload, publish_ns;
  uint32_t tlv, checksum;
  double sim_time;
} slot_meta;

/* Load d's metadata for frame fid; NULL if it fits the geometry, else what
 * is wrong. */
static const char *load_meta(const shmx__geom *g, struct shmx__slotdesc *d, uint64_t fid,
                             slot_meta *m) {
  uint64_t mfid = SHMX__LD(d->frame_id);
  m->used = SHMX__LD(d->used_bytes);
  m->payload = SHMX__LD(d->payload_bytes);
  m->tlv = SHMX__LD(d->tlv_count);
  m->checksum = SHMX__LD(d->checksum);
  m->sim_time = shmx__ld_f64(&d->sim_time);
  m->publish_ns = SHMX__LD(d->publish_ns);
  if (mfid != fid) return "frame id";
  if (m->used > g->slot_bytes) return "used bytes";
  if (m->tlv > g->max_tlv) return "record count";
  return NULL;
}

/* 1 if the records in slot s (read under the caller's seqlock) are the ones
 * table was parsed from for hd's frame: same schema, sizes and record
 * headers, hence the same parse. A producer that sends the same streams
 * every frame skips the parse and its schema lookups. */
static int same_records(const struct held *hd, uint32_t gen, const slot_meta *m,
                        const shmx_frame_stream *table) {
  if (hd->f.frame_id == 0 || hd->gen != gen || hd->used != m->used ||
      hd->f.tlv_count != m->tlv || hd->f.payload_bytes != m->payload)
    return 0;
  for (uint32_t k = 0; k < m->tlv; k++) {
    const shmx_frame_stream *e = &table[k];
    const struct shmx__tlv *t =
        (const struct shmx__tlv *)(const void *)(e->data - SHMX__TLV_HDR);
    if (SHMX__LD(t->type) != SHMX_TLV_FRAME_STREAM || SHMX__LD(t->stream_id) != e->stream_id ||
        SHMX__LD(t->elem_count) != e->elem_count || SHMX__LD(t->bytes) != e->bytes)
      return 0;
  }
  return 1;
}

/* The error for frame fid in slot s, found bad for `why`. */
static int bad_frame(const shmx__seg *seg, uint64_t fid, uint32_t s, const char *why) {
  if (strcmp(why, "checksum") == 0)
    return shmx__err(SHMX_E_CHECKSUM, "channel '%s': frame %llu", seg->name,
                     (unsigned long long)fid);
  return shmx__err(SHMX_E_CORRUPT, "channel '%s': frame %llu in slot %u: bad %s", seg->name,
                   (unsigned long long)fid, s, why);
}

static void fill_frame(shmx_frame *f, uint64_t fid, const slot_meta *m, uint32_t slot,
                       const shmx_frame_stream *streams) {
  f->frame_id = fid;
  f->sim_time = m->sim_time;
  f->publish_ns = m->publish_ns;
  f->payload_bytes = m->payload;
  f->tlv_count = m->tlv;
  f->slot = slot;
  f->dropped = 0;
  f->streams = streams;
}

/* Pin slot s and read frame `fid` from it into f. Returns 0, RETRY (slot no
 * longer holds fid; unpinned), or an error (unpinned). */
static int read_slot(shmx_client *cl, uint32_t s, uint64_t fid, shmx_frame *f) {
  const shmx__seg *seg = &cl->seg;
  const shmx__geom *g = &seg->g;
  struct shmx__slotdesc *d = shmx__slot(seg, s);
  /* Already holding this very frame (a reader polling an unchanged latest
   * frame): our pin bit has been set since the full read below validated
   * it, so the producer has not touched the slot unless every slot was
   * pinned, and then seq has moved. No pin RMW, no re-parse. */
  struct held *hd = &cl->held[s];
  if (cl->pinref[s] && hd->f.frame_id == fid && hd->gen == cl->schema.gen && !reaped(cl) &&
      atomic_load_explicit(&d->seq, memory_order_acquire) == 2 * fid) {
    cl->pinref[s]++;
    *f = hd->f;
    return 0;
  }
  pin(cl, s);
  uint64_t q = atomic_load(&d->seq);
  if (q != 2 * fid) {
    unpin(cl, s);
    return RETRY;
  }
  slot_meta m;
  const char *why = load_meta(g, d, fid, &m);
  if (!why && !cl->fs[s]) {
    cl->fs[s] = calloc(g->max_tlv, sizeof **cl->fs);
    if (!cl->fs[s]) {
      unpin(cl, s);
      return shmx__err(SHMX_E_ENOMEM, "frame table");
    }
  }
  const uint8_t *base = shmx__frame_data(seg, s);
  if (!why && !same_records(hd, cl->schema.gen, &m, cl->fs[s])) {
    hd->f.frame_id = 0; /* fs[s] is being rewritten */
    why = parse_records(cl, base, m.used, m.tlv, m.payload, cl->fs[s]);
  }
  if (!why && (g->flags & SHMX_CREATE_CRC32C) &&
      shmx__crc32c(0, base, (size_t)m.used) != m.checksum)
    why = "checksum";
  atomic_thread_fence(memory_order_acquire);
  uint64_t q2 = atomic_load_explicit(&d->seq, memory_order_relaxed);
  if (q2 != q) { /* overwritten under us (only when all slots were pinned) */
    testcase(1);
    unpin(cl, s);
    return RETRY;
  }
  if (why) {
    unpin(cl, s);
    return bad_frame(seg, fid, s, why);
  }
  fill_frame(f, fid, &m, s, cl->fs[s]);
  hd->f = *f;
  hd->gen = cl->schema.gen;
  hd->used = m.used;
  return 0;
}

/* Copy bytes a concurrent writer may be changing; the caller discards the
 * result unless the slot's seq is unchanged afterwards (a seqlock read), so
 * the race is benign and ThreadSanitizer is told so. */
#if defined(__SANITIZE_THREAD__)
#define SHMX__NO_TSAN __attribute__((no_sanitize("thread")))
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SHMX__NO_TSAN __attribute__((no_sanitize("thread")))
#endif
#endif
#ifndef SHMX__NO_TSAN
#define SHMX__NO_TSAN
#endif
SHMX__NO_TSAN static void seqlock_copy(uint8_t *dst, const uint8_t *src, size_t n) {
  for (size_t i = 0; i < n; i++) dst[i] = src[i];
}

/* Copy frame `fid` out of slot s into buf under the slot's seqlock, without
 * pinning, then parse the private copy. Returns 0, RETRY (the slot moved on
 * while copying), or an error. */
static int copy_slot(shmx_client *cl, uint32_t s, uint64_t fid, shmx_frame *f, uint8_t *buf,
                     size_t cap) {
  const shmx__seg *seg = &cl->seg;
  const shmx__geom *g = &seg->g;
  struct shmx__slotdesc *d = shmx__slot(seg, s);
  uint64_t q = atomic_load_explicit(&d->seq, memory_order_acquire);
  if (q != 2 * fid) return RETRY;
  slot_meta m;
  const char *why = load_meta(g, d, fid, &m);
  int fits = m.used <= cap;
  if (!why && fits) seqlock_copy(buf, shmx__frame_data(seg, s), (size_t)m.used);
  atomic_thread_fence(memory_order_acquire);
  if (atomic_load_explicit(&d->seq, memory_order_relaxed) != q) return RETRY;
  /* From here on only the private copy is read: nothing can change it. */
  if (!why && !fits)
    return shmx__err(SHMX_E_CAPACITY, "channel '%s': frame %llu needs %llu bytes, the buffer has %zu",
                     seg->name, (unsigned long long)fid, (unsigned long long)m.used, cap);
  if (!why && !cl->copy_fs) {
    cl->copy_fs = calloc(g->max_tlv ? g->max_tlv : 1, sizeof *cl->copy_fs);
    if (!cl->copy_fs) return shmx__err(SHMX_E_ENOMEM, "frame table");
  }
  if (!why) why = parse_records(cl, buf, m.used, m.tlv, m.payload, cl->copy_fs);
  if (!why && (g->flags & SHMX_CREATE_CRC32C) && shmx__crc32c(0, buf, (size_t)m.used) != m.checksum)
    why = "checksum";
  if (why) return bad_frame(seg, fid, s, why);
  fill_frame(f, fid, &m, UINT32_MAX, cl->copy_fs); /* not held: nothing to release */
  return 0;
}

static void add_dropped(struct shmx__reader *r, uint64_t n) {
  atomic_store_explicit(&r->frames_dropped,
                        atomic_load_explicit(&r->frames_dropped, memory_order_relaxed) + n,
                        memory_order_relaxed);
}

int shmx_client_note_dropped(shmx_client *cl, uint64_t n) {
  if (!cl) return shmx__err(SHMX_E_ARG, "client is NULL");
  SHMX__TRUNCATED_CHECK(&cl->seg);
  if (reaped(cl)) return shmx__err(SHMX_E_REAPED, "channel '%s'", cl->seg.name);
  add_dropped(shmx__rdr(&cl->seg, cl->slot), n);
  return 0;
}

static void account(shmx_client *cl, const shmx_frame *f) {
  struct shmx__reader *r = shmx__rdr(&cl->seg, cl->slot);
  cl->last_id = f->frame_id;
  atomic_store_explicit(&r->last_frame_seen, f->frame_id, memory_order_relaxed);
  atomic_store_explicit(&r->frames_read,
                        atomic_load_explicit(&r->frames_read, memory_order_relaxed) + 1,
                        memory_order_relaxed);
  if (f->dropped) add_dropped(r, f->dropped);
}

/* Start the transfers a read of the latest frame will wait for, so that
 * they overlap each other and the bookkeeping before them: the slot
 * descriptor (for writing when we will pin it), the first record header and
 * the first line of its data. Only a hint: nothing is read here, and the
 * slot number is checked before use. */
static inline void prefetch_latest(const shmx_client *cl, int pinning) {
  uint32_t s = atomic_load_explicit(&shmx__hdr(&cl->seg)->latest_slot, memory_order_relaxed);
  if (s >= cl->seg.g.slots) return;
  const uint8_t *data = shmx__frame_data(&cl->seg, s);
  if (pinning)
    SHMX__PREFETCH_W(shmx__slot(&cl->seg, s));
  else
    SHMX__PREFETCH(shmx__slot(&cl->seg, s));
  SHMX__PREFETCH(data);
  SHMX__PREFETCH(data + SHMX__TLV_HDR);
}

/* Latest frame; newer_only: NOFRAME unless newer than the last returned.
 * With buf, copied into it (copy_slot) instead of held (read_slot). */
static int get_latest(shmx_client *cl, shmx_frame *f, int newer_only, uint8_t *buf, size_t cap) {
  prefetch_latest(cl, buf == NULL);
  uint64_t now = shmx__mono_coarse_ns();
  int rc = pre_read(cl, now);
  if (rc < 0) return rc;
  struct shmx__hdr *h = shmx__hdr(&cl->seg);
  uint64_t found_fid = 0; /* frame found by a scan (see below), and where */
  uint32_t found_slot = 0;
  for (int tries = 0; tries < READ_RETRIES; tries++) {
    uint64_t fid = atomic_load_explicit(&h->frame_seq, memory_order_acquire);
    uint32_t s = atomic_load_explicit(&h->latest_slot, memory_order_acquire);
    if (found_fid && found_fid == fid) s = found_slot;
    if (tries == READ_RETRIES / 2 && fid && !found_fid) {
      /* latest_slot keeps naming a slot that does not hold frame_seq: the
       * producer stored latest_slot for its next frame and died before
       * frame_seq (publish stores them in that order). frame_seq's frame is
       * still complete in some slot: find it. */
      for (uint32_t k = 0; k < cl->seg.g.slots; k++)
        if (atomic_load_explicit(&shmx__slot(&cl->seg, k)->seq, memory_order_acquire) ==
            2 * fid) {
          found_fid = fid;
          found_slot = s = k;
          break;
        }
    }
    if (fid == 0 || (newer_only && fid <= cl->last_id)) {
      if (atomic_load(&h->state) == SHMX__ST_CLOSED)
        return shmx__err(SHMX_E_CLOSED, "channel '%s'", cl->seg.name);
      if ((rc = probe_owner(cl, fid, now))) return rc;
      return SHMX_E_NOFRAME;
    }
    if (s >= cl->seg.g.slots) {
      if (atomic_load(&h->frame_seq) != fid) continue;
      return shmx__err(SHMX_E_CORRUPT, "channel '%s': latest slot %u", cl->seg.name, s);
    }
    rc = buf ? copy_slot(cl, s, fid, f, buf, cap) : read_slot(cl, s, fid, f);
    if (rc == RETRY) {
      shmx__cpu_relax();
      continue;
    }
    if (rc == 0) {
      if (SHMX__UNLIKELY(shmx__seg_truncated(&cl->seg))) { /* read zeros */
        if (!buf) shmx_frame_release(cl, f);
        return shmx__seg_truncated_err(&cl->seg);
      }
      if (atomic_load_explicit(&h->state, memory_order_relaxed) == SHMX__ST_CLOSED) {
        /* Closed: still hand out the final frame once, then CLOSED. */
        if (fid <= cl->last_id) {
          shmx_frame_release(cl, f);
          return shmx__err(SHMX_E_CLOSED, "channel '%s'", cl->seg.name);
        }
      }
      account(cl, f);
      /* The same frame again (nothing new): probe now and then, as when
       * there is no frame, so a poller learns of a cut or a dead producer. */
      if ((rc = probe_owner(cl, fid, now))) {
        if (!buf) shmx_frame_release(cl, f);
        return rc;
      }
    }
    return rc;
  }
  SHMX__TRUNCATED_CHECK(&cl->seg);
  return shmx__err(SHMX_E_BUSY, "channel '%s'", cl->seg.name);
}

int shmx_client_latest(shmx_client *cl, shmx_frame *f) {
  if (!cl || !f) return shmx__err(SHMX_E_ARG, "client or frame is NULL");
  return get_latest(cl, f, 0, NULL, 0);
}

int shmx_client_copy_latest(shmx_client *cl, void *buf, size_t cap, shmx_frame *f) {
  if (!cl || !f || !buf) return shmx__err(SHMX_E_ARG, "client, buffer or frame is NULL");
  return get_latest(cl, f, 0, buf, cap);
}

int shmx_client_next(shmx_client *cl, shmx_frame *f) {
  if (!cl || !f) return shmx__err(SHMX_E_ARG, "client or frame is NULL");
  uint64_t now = shmx__mono_coarse_ns();
  int rc = pre_read(cl, now);
  if (rc < 0) return rc;
  struct shmx__hdr *h = shmx__hdr(&cl->seg);
  const shmx__seg *seg = &cl->seg;
  for (int tries = 0; tries < READ_RETRIES; tries++) {
    uint64_t top = atomic_load_explicit(&h->frame_seq, memory_order_acquire);
    if (top <= cl->last_id) {
      if (atomic_load(&h->state) == SHMX__ST_CLOSED)
        return shmx__err(SHMX_E_CLOSED, "channel '%s'", seg->name);
      if ((rc = probe_owner(cl, top, now))) return rc;
      return SHMX_E_NOFRAME;
    }
    /* The oldest published frame newer than last_id (ideally last_id+1).
     * A producer fills free slots oldest first, so that frame is usually in
     * the slot after the last one read: try it before scanning them all. */
    uint32_t best = SHMX__NO_SLOT;
    uint64_t best_fid = 0;
    uint32_t hint = cl->next_hint < seg->g.slots ? cl->next_hint : 0;
    if (atomic_load_explicit(&shmx__slot(seg, hint)->seq, memory_order_relaxed) ==
            2 * (cl->last_id + 1) && cl->last_id + 1 <= top) {
      best = hint;
      best_fid = cl->last_id + 1;
    }
    uint32_t scan = best == SHMX__NO_SLOT ? seg->g.slots : 0;
    for (uint32_t s = 0; s < scan; s++) {
      uint64_t q = atomic_load_explicit(&shmx__slot(seg, s)->seq,
                                        memory_order_relaxed);
      if (q == 0 || (q & 1)) continue;
      uint64_t fid = q / 2;
      if (fid <= cl->last_id || fid > top) continue;
      if (best == SHMX__NO_SLOT || fid < best_fid) {
        best = s;
        best_fid = fid;
      }
    }
    if (best == SHMX__NO_SLOT) continue; /* raced with the producer */
    rc = read_slot(cl, best, best_fid, f);
    if (rc == RETRY) {
      shmx__cpu_relax();
      continue;
    }
    if (rc == 0) {
      if (SHMX__UNLIKELY(shmx__seg_truncated(seg))) { /* read zeros */
        shmx_frame_release(cl, f);
        return shmx__seg_truncated_err(seg);
      }
      f->dropped = cl->last_id ? best_fid - cl->last_id - 1 : 0;
      account(cl, f);
      cl->next_hint = best + 1 == seg->g.slots ? 0 : best + 1;
      cl->probe_seq = top;
      cl->probe_ns = now;
    }
    return rc;
  }
  SHMX__TRUNCATED_CHECK(seg);
  return shmx__err(SHMX_E_BUSY, "channel '%s'", seg->name);
}

int shmx_client_wait(shmx_client *cl, shmx_frame *f, int64_t timeout_ns,
                     int in_order) {
  if (!cl || !f) return shmx__err(SHMX_E_ARG, "client or frame is NULL");
  struct shmx__hdr *h = shmx__hdr(&cl->seg);
  struct shmx__reader *r = shmx__rdr(&cl->seg, cl->slot);
  uint64_t start = shmx__mono_ns();
  if (!cl->seg.wake && !cl->seg.wake_tried) { /* once; NULL: naps instead */
    cl->seg.wake_tried = 1;
    shmx__wake_open(cl->seg.session_id, 0, 0, &cl->seg.wake);
  }
  for (;;) {
    int rc = in_order ? shmx_client_next(cl, f) : get_latest(cl, f, 1, NULL, 0);
    if (rc != SHMX_E_NOFRAME) return rc;
    uint64_t now = shmx__mono_ns();
    int64_t left = -1;
    if (timeout_ns >= 0) {
      if (now - start >= (uint64_t)timeout_ns)
        return shmx__err(SHMX_E_TIMEOUT, "channel '%s': no frame within %lld ns",
                         cl->seg.name, (long long)timeout_ns);
      left = timeout_ns - (int64_t)(now - start);
    }
    int64_t slice = PROBE_INTERVAL_NS;
    if (left >= 0 && left < slice) slice = left;
    /* Announce ourselves, then re-check (pairs with publish's RMW). */
    if (cl->seg.format_minor >= 2) {
      /* Format 2.2: count ourselves for monitors, then ask for a wake-up;
       * the producer makes one system call per request, not one per
       * publish while we are counted (see design.md, "wake-ups"). */
      atomic_fetch_add(&h->sleepers, 1);
      atomic_store(&r->waiting, SHMX__WAIT_ARMED);
      atomic_store(&h->wake_armed, 1);
    } else { /* a 2.0/2.1 producer wakes while waiters > 0 */
      atomic_fetch_add(&h->waiters, 1);
      atomic_store(&r->waiting, SHMX__WAIT_COUNTED);
    }
    uint32_t w = atomic_load(&h->wake_word);
    int ready = atomic_load(&h->frame_seq) > cl->last_id ||
                atomic_load(&h->state) == SHMX__ST_CLOSED || reaped(cl);
    int wr = ready ? 0 : shmx__futex_wait(cl->seg.wake, &h->wake_word, w, slice);
    shmx__unwait(&cl->seg, r);
    if (wr == -EINTR) return shmx__err(SHMX_E_EINTR, "wait interrupted");
    if (wr == SHMX_E_TIMEOUT && shmx__seg_owner_alive(cl->seg.fd) == 0)
      return shmx__err(SHMX_E_DEAD, "channel '%s': producer pid %d is gone",
                       cl->seg.name, (int)cl->seg.owner_pid);
  }
}

int shmx_frame_valid(const shmx_client *cl, const shmx_frame *f) {
  if (!cl || !f || f->frame_id == 0) return 0;
  if (SHMX__UNLIKELY(shmx__seg_truncated(&cl->seg))) return 0; /* zeros now */
  if (f->slot == UINT32_MAX) return 1; /* a private copy never changes */
  if (f->slot >= cl->seg.g.slots) return 0;
  return atomic_load(&shmx__slot(&cl->seg, f->slot)->seq) == 2 * f->frame_id;
}

void shmx_frame_release(shmx_client *cl, shmx_frame *f) {
  if (!cl || !f) return;
  if (f->frame_id && f->slot < cl->seg.g.slots) unpin(cl, f->slot);
  memset(f, 0, sizeof *f);
}

uint64_t shmx_client_frame_seq(const shmx_client *cl) {
  return cl ? atomic_load_explicit(&shmx__hdr(&cl->seg)->frame_seq,
                                   memory_order_acquire)
            : 0;
}

int shmx_client_send(shmx_client *cl, uint32_t type, const void *data,
                     uint32_t len) {
  if (!cl || (len && !data)) return shmx__err(SHMX_E_ARG, "bad arguments");
  if (reaped(cl)) return on_reaped(cl);
  SHMX__TRUNCATED_CHECK(&cl->seg);
  return shmx__ring_send(&cl->seg, cl->slot, type, data, len);
}

int shmx_client_heartbeat(shmx_client *cl) {
  if (!cl) return shmx__err(SHMX_E_ARG, "client is NULL");
  if (reaped(cl)) return on_reaped(cl);
  atomic_store(&shmx__rdr(&cl->seg, cl->slot)->heartbeat_ns, shmx__mono_ns());
  return 0;
}

/* 1 if `name` now names a different segment than ours. */
static int name_moved(const shmx_client *cl) {
  char file[SHMX__FILE_CAP];
  shmx__seg_file(cl->seg.name, file, sizeof file);
  shmx__fid id;
  if (shmx__shm_stat(file, &id) != 0) return 0;
  return id.ino != cl->seg.ino || id.dev != cl->seg.dev;
}

int shmx_client_status(shmx_client *cl) {
  if (!cl) return shmx__err(SHMX_E_ARG, "client is NULL");
  SHMX__TRUNCATED_CHECK(&cl->seg);
  if (name_moved(cl))
    return shmx__err(SHMX_E_RESTARTED, "channel '%s' has a new producer",
                     cl->seg.name);
  if (atomic_load(&shmx__hdr(&cl->seg)->state) == SHMX__ST_CLOSED)
    return shmx__err(SHMX_E_CLOSED, "channel '%s'", cl->seg.name);
  if (shmx__seg_owner_alive(cl->seg.fd) == 0)
    return shmx__err(SHMX_E_DEAD, "channel '%s': producer pid %d is gone",
                     cl->seg.name, (int)cl->seg.owner_pid);
  if (reaped(cl)) return on_reaped(cl);
  return 0;
}

int shmx_client_refresh(shmx_client *cl) {
  if (!cl) return shmx__err(SHMX_E_ARG, "client is NULL");
  return refresh_schema(cl);
}

uint32_t shmx__client_schema_gen(const shmx_client *cl) { return cl->schema.gen; }
uint64_t shmx__client_session(const shmx_client *cl) { return cl->seg.session_id; }

int shmx_client_streams(shmx_client *cl, const shmx_stream_info **streams,
                        int *n) {
  if (!cl || !streams || !n) return shmx__err(SHMX_E_ARG, "bad arguments");
  *streams = cl->schema.streams;
  *n = cl->schema.n;
  return 0;
}

int shmx_client_static_user(shmx_client *cl, int index, const uint8_t **data,
                            uint32_t *len) {
  if (!cl || !data || !len) return shmx__err(SHMX_E_ARG, "bad arguments");
  if (index < 0 || index >= cl->schema.n_user)
    return shmx__err(SHMX_E_ARG, "user record %d of %d", index, cl->schema.n_user);
  *data = cl->schema.user[index].data;
  *len = cl->schema.user[index].len;
  return 0;
}

int shmx_client_header(shmx_client *cl, shmx_header_info *out) {
  if (!cl || !out) return shmx__err(SHMX_E_ARG, "bad arguments");
  shmx__header_info(&cl->seg, out);
  SHMX__TRUNCATED_CHECK(&cl->seg);
  return 0;
}

uint64_t shmx_client_reader_id(const shmx_client *cl) { return cl ? cl->id : 0; }

const char *shmx_client_name(const shmx_client *cl) {
  return cl ? cl->seg.name : "";
}

/* ---- event fd (docs/design.md, "Event fds") ------------------------------ */

int shmx_client_fd(shmx_client *cl) {
  if (!cl) return shmx__err(SHMX_E_ARG, "client is NULL");
  if (cl->ev_fd >= 0) return cl->ev_fd;
  if (cl->seg.format_minor < 1)
    return shmx__err(SHMX_E_VERSION, "channel '%s': its producer (format 2.%u) "
                     "does not ring event fds (2.1 and later do)",
                     cl->seg.name, cl->seg.format_minor);
  int fd = shmx__notify_open(cl->seg.fd);
  if (fd == -ENOSYS)
    return shmx__err(fd, "channel '%s': event fds are POSIX descriptors; on this "
                     "system wait with shmx_client_wait", cl->seg.name);
  if (fd == -EMFILE)
    return shmx__err(fd, "channel '%s': event fd: this process is out of descriptors, "
                     "or this user of inotify instances (fs.inotify.max_user_instances)",
                     cl->seg.name);
  if (fd < 0) return shmx__err(fd, "channel '%s': event fd", cl->seg.name);
  cl->ev_fd = fd;
  cl->ev_checked = 0;
  return fd;
}

int shmx_client_arm(shmx_client *cl) {
  if (!cl) return shmx__err(SHMX_E_ARG, "client is NULL");
  int rc = shmx_client_fd(cl);
  if (rc < 0) return rc;
  /* the checks every read makes: truncated, reaped, heartbeat, schema */
  if ((rc = pre_read(cl, shmx__mono_coarse_ns())) < 0) return rc;
  struct shmx__hdr *h = shmx__hdr(&cl->seg);
  /* Something to read already: say so without asking for a ring, and
   * without draining (the fd may stay readable: the arm before the next
   * sleep drains it, so a reader woken by a ring makes one read(2) per
   * frame, not two). */
  if (atomic_load_explicit(&h->frame_seq, memory_order_acquire) > cl->last_id) return 1;
  /* Drain before asking: whatever rings from here on leaves the fd
   * readable. */
  int what = shmx__notify_drain(cl->ev_fd);
  if (what < 0) return shmx__err(what, "channel '%s': event fd", cl->seg.name);
  /* Ask for a ring, then re-check: this seq_cst RMW pairs with publish's
   * RMW on wake_word before it loads fd_armed (the futex protocol's Dekker
   * pair; design.md, "Event fds"). */
  atomic_exchange(&h->fd_armed, 1);
  if (atomic_load(&h->frame_seq) > cl->last_id) return 1;
  if (atomic_load(&h->state) == SHMX__ST_CLOSED)
    return shmx__err(SHMX_E_CLOSED, "channel '%s'", cl->seg.name);
  /* A producer that died, or a name taken over, rings nothing but leaves
   * a close or unlink event: look only when one came (or the watch is new
   * and may have missed it). */
  if (what == 2 || !cl->ev_checked) {
    cl->ev_checked = 1;
    return shmx_client_status(cl);
  }
  return 0;
}

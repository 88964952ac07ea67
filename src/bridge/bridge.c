/*
 * bridge.c -- shmx bridge: a channel's frames over ZeroMQ (see bridge.h,
 * docs/bridge.md). The sender is a shmx reader plus an XPUB socket; the
 * receiver a SUB socket plus a shmx producer. Everything that arrives from
 * the network goes through wire.c's checks before it touches a channel.
 */
#include "bridge.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>
#ifdef SHMX_HAVE_ZSTD
#  include <zstd.h>
#endif
#ifdef SHMX_HAVE_LZ4
#  include <lz4.h>
#endif

#include "internal.h"
#include "wire.h"

#define SCHEMA_EVERY_NS (1000u * 1000 * 1000) /* schema heartbeat */
#define POLL_SLICE_MS 100
#define IDLE_SLICE_MS 10   /* sender asleep on its channel: wake to serve XPUB */
#define SMALL_FRAME 8192   /* below this, one part, copied by zmq_send */
#define LAT_SAMPLES 65536
#define POOL_KEEP 8
#define RETRY_NS 20000     /* in-order sender: retry a full queue after this */

/* A line on stderr about what the bridge did (unless opts.quiet). */
static void note(const shmx_bridge *b, const char *fmt, ...) SHMX__PRINTF(2, 3);

static int zerr(const char *what) {
  int e = zmq_errno();
  return shmx__err(SHMX_E_EINVAL, "%s: %s", what, zmq_strerror(e));
}

/* ---- send buffers: handed to libzmq (zmq_msg_init_data), returned by its
 * I/O thread when sent. A spinlocked free list of equal-sized buffers. ---- */
typedef struct pool {
  atomic_flag lock;
  size_t cap;
  int n;
  void *free[POOL_KEEP];
} pool;

static void pool_put(void *data, void *hint) {
  pool *p = hint;
  while (atomic_flag_test_and_set_explicit(&p->lock, memory_order_acquire)) {
  }
  if (p->n < POOL_KEEP) {
    p->free[p->n++] = data;
    data = NULL;
  }
  atomic_flag_clear_explicit(&p->lock, memory_order_release);
  free(data);
}

static void *pool_get(pool *p, size_t need) {
  void *b = NULL;
  while (atomic_flag_test_and_set_explicit(&p->lock, memory_order_acquire)) {
  }
  if (need <= p->cap && p->n) b = p->free[--p->n];
  atomic_flag_clear_explicit(&p->lock, memory_order_release);
  if (b) return b;
  return malloc(need > p->cap ? need : p->cap);
}

static void pool_drain(pool *p) {
  for (int i = 0; i < p->n; i++) free(p->free[i]);
  p->n = 0;
}

struct shmx_bridge {
  int send;
  shmx_bridge_opts o;
  char chan[SHMX_NAME_MAX + 1];
  char endpoint[512];
  void *ctx, *sock;
  shmx_bridge_stats st;
  uint64_t sender_id;
  /* sender */
  shmx_client *cl;
  uint64_t session;
  uint32_t gen;            /* schema version sent */
  int sent_streams, sent_user; /* what the encoded schema holds */
  int schema_due;          /* send a schema now */
  int schema_block;        /* a changed schema is unsent: hold frames */
  uint8_t *schema;         /* encoded blob */
  size_t schema_len;
  uint64_t last_schema_ns, last_try_ns;
  uint64_t last_fid;
  int64_t clock_off;       /* realtime - monotonic, refreshed each second */
  uint64_t clock_ns;
  pool *pool;              /* shared with libzmq's I/O thread */
  uint8_t *batch;          /* small frames gathered into one BATCH message:
                              64-B header, then records (wire.h) */
  size_t batch_len;        /* bytes used, header included */
  uint32_t batch_n;        /* frames in it (0: none open) */
  uint64_t batch_bytes;    /* their stream bytes */
  size_t batch_first_len;  /* message bytes of its first frame */
  uint8_t *meta;           /* header + directory */
  /* Messages encoded, not yet accepted by libzmq, oldest first: at most a
   * closed batch and then one large frame. */
  struct pend {
    int batch;             /* 1: b->batch (one part); 0: b->meta + data */
    int single;            /* batch of one frame: sent as a plain FRAME */
    size_t meta, len;      /* large: header bytes in b->meta; data bytes */
    uint8_t *data;         /* large: pool buffer */
    uint32_t frames;
    uint64_t bytes;        /* stream bytes */
  } pend[2];
  int npend;
  void *cctx;              /* ZSTD_CCtx */
  /* receiver */
  shmx_server *srv;
  uint64_t cur_sender, cur_session;
  uint32_t cur_gen;
  shmx__sb sch;         /* the applied schema (for equality checks) */
  uint8_t *sch_blob;           /* sch's strings point into it */
  uint64_t last_pub;
  uint64_t last_create_fail_ns;
  uint64_t max_bytes;      /* largest channel a sender's schema may ask for */
  int warned_size;
  shmx__br_dirent dir[SHMX_FRAME_MAX_STREAMS];
  uint64_t *lat;
  uint32_t lat_n;
};

static void note(const shmx_bridge *b, const char *fmt, ...) {
  if (b->o.quiet) return;
  va_list ap;
  va_start(ap, fmt);
  fputs("shmx bridge: ", stderr);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
}

int shmx_bridge_has_curve(void) { return zmq_has("curve") ? 1 : 0; }

int shmx_bridge_codec(const char *name) {
  if (!name || !strcmp(name, "none") || !strcmp(name, "raw")) return SHMX_BRIDGE_RAW;
#ifdef SHMX_HAVE_ZSTD
  if (!strcmp(name, "zstd")) return SHMX_BRIDGE_ZSTD;
#endif
#ifdef SHMX_HAVE_LZ4
  if (!strcmp(name, "lz4")) return SHMX_BRIDGE_LZ4;
#endif
  return -1;
}

int shmx_bridge_keygen(char pub[41], char sec[41]) {
  if (!shmx_bridge_has_curve())
    return shmx__err(SHMX_E_ENOSYS, "this libzmq was built without CURVE");
  if (zmq_curve_keypair(pub, sec) != 0) return zerr("zmq_curve_keypair");
  return 0;
}

static int set_int(void *s, int opt, int v, const char *what) {
  return zmq_setsockopt(s, opt, &v, sizeof v) ? zerr(what) : 0;
}

const char *shmx_bridge_channel(const shmx_bridge *b) { return b ? b->chan : ""; }
const char *shmx_bridge_endpoint(const shmx_bridge *b) { return b ? b->endpoint : ""; }

/* ====================================================================== */
/* sender                                                                 */

static void drop_pending(shmx_bridge *b);
static void close_batch(shmx_bridge *b);

static int build_schema(shmx_bridge *b) {
  shmx_header_info hi;
  int n, nu, rc;
  uint8_t *blob;
  size_t len;
  if ((rc = shmx_client_header(b->cl, &hi)) ||
      (rc = shmx__sb_encode_client(b->cl, &blob, &len, &n, &nu)))
    return rc;
  free(b->schema);
  b->schema = blob;
  b->schema_len = len;
  b->sent_streams = n;
  b->sent_user = nu;
  b->session = hi.session_id;
  b->gen++;
  b->schema_due = b->schema_block = 1;
  size_t cap = (size_t)hi.frame_bytes_cap;
#ifdef SHMX_HAVE_ZSTD
  if (b->o.codec == SHMX_BRIDGE_ZSTD) cap = ZSTD_compressBound(cap) + 64 * SHMX_FRAME_MAX_STREAMS;
#endif
#ifdef SHMX_HAVE_LZ4
  if (b->o.codec == SHMX_BRIDGE_LZ4)
    cap = (size_t)LZ4_compressBound((int)(cap > LZ4_MAX_INPUT_SIZE ? LZ4_MAX_INPUT_SIZE : cap)) +
          64 * SHMX_FRAME_MAX_STREAMS;
#endif
  if (cap > b->pool->cap) b->pool->cap = cap; /* only grows: old buffers stay usable */
  return 0;
}

/* The header fields every message of this sender carries. */
static shmx__br_hdr hdr_of(const shmx_bridge *b, uint32_t type) {
  shmx__br_hdr h = {0};
  h.type = type;
  h.sender_id = b->sender_id;
  h.session = b->session;
  h.schema_gen = b->gen;
  h.sender_dropped = b->st.dropped_net;
  return h;
}

/* Send a two-part control message; 0, or EAGAIN (queues full). */
static int send_ctl(shmx_bridge *b, uint32_t type, const void *body, size_t len) {
  uint8_t h[SHMX__BR_HDR];
  shmx__br_hdr hd = hdr_of(b, type);
  shmx__br_hdr_put(h, &hd);
  if (zmq_send(b->sock, h, sizeof h, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) return -1;
  zmq_send(b->sock, body, len, ZMQ_DONTWAIT); /* a later part always goes */
  return 0;
}

static void sender_detach(shmx_bridge *b, int rc) {
  if (!b->cl) return;
  note(b, "channel '%s': %s; waiting for it to come back\n", b->chan,
          shmx_strerror(rc));
  drop_pending(b); /* its schema generation is gone with the channel */
  send_ctl(b, SHMX__BR_BYE, NULL, 0);
  shmx_client_close(b->cl);
  b->cl = NULL;
  b->st.attached = 0;
  b->last_fid = 0;
}

/* Open the channel (waiting up to wait_ns for it, see
 * shmx_client_open_wait) and encode its schema. */
static int sender_attach(shmx_bridge *b, int64_t wait_ns) {
  int rc = shmx_client_open_wait(b->chan, wait_ns, &b->cl);
  if (rc) {
    b->cl = NULL;
    return rc;
  }
  if ((rc = build_schema(b))) {
    shmx_client_close(b->cl);
    b->cl = NULL;
    return rc;
  }
  b->st.attached = 1;
  b->last_fid = 0;
  return 0;
}

/* Encode stream i's bytes into dst (room bytes); returns wire bytes or 0
 * on a compression failure. */
static size_t encode_stream(shmx_bridge *b, const shmx_frame_stream *s, uint8_t *dst,
                            size_t room) {
  switch (b->o.codec) {
#ifdef SHMX_HAVE_ZSTD
  case SHMX_BRIDGE_ZSTD: {
    size_t r = ZSTD_compressCCtx(b->cctx, dst, room, s->data, (size_t)s->bytes,
                                 b->o.level ? b->o.level : 1);
    return ZSTD_isError(r) ? 0 : r;
  }
#endif
#ifdef SHMX_HAVE_LZ4
  case SHMX_BRIDGE_LZ4: {
    if (s->bytes > LZ4_MAX_INPUT_SIZE || room > INT32_MAX) return 0;
    int r = LZ4_compress_fast((const char *)s->data, (char *)dst, (int)s->bytes, (int)room,
                              b->o.level ? b->o.level : 1);
    return r > 0 ? (size_t)r : 0;
  }
#endif
  default:
    if (s->bytes > room) return 0;
    if (s->bytes) memcpy(dst, s->data, (size_t)s->bytes);
    return (size_t)s->bytes;
  }
}

/* Re-read the channel's schema if it changed (then it goes out before any
 * frame that needs it), and send it when due. 0 or an error. */
static int sync_schema(shmx_bridge *b, uint64_t now) {
  int rc = shmx_client_refresh(b->cl);
  /* The client also refreshes by itself when a read finds a newer schema,
   * so compare what we encoded with what it holds. */
  const shmx_stream_info *si;
  int n = 0;
  const uint8_t *ud;
  uint32_t ul;
  if (rc == 0 && (shmx_client_streams(b->cl, &si, &n) || n != b->sent_streams ||
                  shmx_client_static_user(b->cl, b->sent_user, &ud, &ul) == 0))
    rc = 1;
  if (rc == 1) rc = build_schema(b);
  if (rc < 0) return rc;
  if (b->schema_due || now - b->last_schema_ns >= SCHEMA_EVERY_NS) {
    close_batch(b); /* frames of the old schema go first */
    if (send_ctl(b, SHMX__BR_SCHEMA, b->schema, b->schema_len) == 0) {
      b->schema_due = b->schema_block = 0;
      b->last_schema_ns = now;
      b->st.schemas++;
    }
  }
  return 0;
}

/* A frame that could not go out: counted here and in the reader slot, so
 * shmx top shows it among this reader's drops. */
static void net_drop(shmx_bridge *b) {
  b->st.dropped_net++;
  if (b->cl) shmx_client_note_dropped(b->cl, 1);
}

/* Drop every message not yet sent (and an open batch), counting frames. */
static void drop_pending(shmx_bridge *b) {
  for (int i = 0; i < b->npend; i++) {
    if (!b->pend[i].batch) pool_put(b->pend[i].data, b->pool);
    for (uint32_t k = 0; k < b->pend[i].frames; k++) net_drop(b);
  }
  b->npend = 0;
  for (uint32_t k = 0; k < b->batch_n; k++) net_drop(b);
  b->batch_n = 0;
  b->batch_len = SHMX__BR_HDR;
  b->batch_bytes = 0;
}

static int send_one(shmx_bridge *b, struct pend *p) {
  if (p->batch) {
    const uint8_t *m = p->single ? b->batch + SHMX__BR_HDR + 8 : b->batch;
    return zmq_send(b->sock, m, p->len, ZMQ_DONTWAIT) >= 0;
  }
  if (zmq_send(b->sock, b->meta, p->meta, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) return 0;
  /* once the first part is accepted the rest always is */
  zmq_msg_t m;
  if (zmq_msg_init_data(&m, p->data, p->len, pool_put, b->pool) != 0) {
    pool_put(p->data, b->pool);
    zmq_msg_init(&m);
  }
  if (zmq_msg_send(&m, b->sock, ZMQ_DONTWAIT) < 0) zmq_msg_close(&m);
  return 1;
}

/* Send what is pending, oldest first. 1 all sent; 0 the queue of some
 * subscriber is full (in order: kept to retry; latest: dropped, newer
 * frames will follow). */
static int send_pending(shmx_bridge *b) {
  while (b->npend) {
    struct pend *p = &b->pend[0];
    if (!send_one(b, p)) {
      b->st.queue_full++;
      if (zmq_errno() == EAGAIN && b->o.in_order && b->st.subscribers) return 0;
      drop_pending(b);
      return 0;
    }
    b->st.frames += p->frames;
    b->st.messages++;
    b->st.bytes += p->bytes;
    b->st.wire_bytes += p->len;
    b->pend[0] = b->pend[1];
    b->npend--;
  }
  return 1;
}

/* Close the open batch: queue it (before the large frame that may have
 * closed it) and try to send. */
static void close_batch(shmx_bridge *b) {
  if (!b->batch_n) return;
  shmx__br_hdr h = hdr_of(b, SHMX__BR_BATCH);
  h.n_streams = b->batch_n;
  shmx__br_hdr_put(b->batch, &h);
  struct pend *p = &b->pend[b->npend++];
  p->batch = 1;
  p->single = b->batch_n == 1;
  p->len = p->single ? b->batch_first_len : b->batch_len;
  p->frames = b->batch_n;
  p->bytes = b->batch_bytes;
  p->data = NULL;
  b->batch_n = 0;
  b->batch_len = SHMX__BR_HDR;
  b->batch_bytes = 0;
  send_pending(b);
}

/* Room for one more small frame in the open batch (and nothing queued in
 * the batch buffer)? */
static int batch_room(const shmx_bridge *b) {
  return b->batch_n < SHMX__BR_BATCH_MAX_FRAMES &&
         SHMX__BR_BATCH_BYTES - b->batch_len >= SMALL_FRAME + 8;
}

/* Encode one held frame (released here) as the pending message and try to
 * send it. */
static void forward(shmx_bridge *b, shmx_frame *f) {
  /* A stream the schema we sent does not name (the producer added it and
   * the read refreshed the client): the new schema must go out first. */
  for (uint32_t i = 0; i < f->tlv_count; i++)
    if (f->streams[i].index == UINT32_MAX || f->streams[i].index >= (uint32_t)b->sent_streams) {
      if (sync_schema(b, shmx_now_ns()) < 0) b->schema_block = 1; /* drop below */
      break;
    }
  b->st.skipped += b->o.in_order ? f->dropped
                                 : (b->last_fid && f->frame_id > b->last_fid + 1
                                        ? f->frame_id - b->last_fid - 1 : 0);
  b->last_fid = f->frame_id;
  if (b->st.subscribers == 0 || b->schema_block) {
    shmx_frame_release(b->cl, f);
    if (b->st.subscribers == 0) b->st.no_subscriber++;
    else net_drop(b);
    return;
  }
  uint32_t n = f->tlv_count;
  size_t meta = SHMX__BR_HDR + (size_t)n * SHMX__BR_DIRENT;
  size_t need = (size_t)f->payload_bytes;
  if (b->o.codec != SHMX_BRIDGE_RAW) need = b->pool->cap;
  /* The batch buffer may still hold a closed batch that the queue refused
   * (a schema change just closed it): then this frame goes on its own. */
  int batch_busy = b->npend && b->pend[0].batch;
  int one_part = b->o.codec == SHMX_BRIDGE_RAW && meta + need <= SMALL_FRAME && !batch_busy;
  if (!one_part) close_batch(b); /* keep the order: the batch goes first */
  if (!one_part && b->npend == 2) { /* nowhere to queue it */
    shmx_frame_release(b->cl, f);
    net_drop(b);
    return;
  }
  /* a small frame is encoded in place as the next record of the batch */
  uint8_t *rec = b->batch + b->batch_len;
  uint8_t *data = one_part ? rec + 8 + meta : pool_get(b->pool, need ? need : 1);
  uint8_t *hdrp = one_part ? rec + 8 : b->meta;
  if (!data) {
    shmx_frame_release(b->cl, f);
    net_drop(b);
    return;
  }
  size_t off = 0, room = one_part ? SMALL_FRAME - meta : (need ? need : 1);
  int ok = 1;
  for (uint32_t i = 0; i < n && ok; i++) {
    const shmx_frame_stream *s = &f->streams[i];
    size_t w = encode_stream(b, s, data + off, room - off);
    if (w == 0 && s->bytes) ok = 0;
    shmx__br_dirent e = {s->stream_id, s->elem_count, s->bytes, w};
    shmx__br_dirent_put(hdrp, i, &e);
    off += w;
  }
  int valid = shmx_frame_valid(b->cl, f);
  shmx__br_hdr h = hdr_of(b, SHMX__BR_FRAME);
  h.codec = (uint32_t)b->o.codec;
  h.n_streams = n;
  h.frame_id = f->frame_id;
  h.sim_time = f->sim_time;
  h.origin_ns = (uint64_t)((int64_t)f->publish_ns + b->clock_off);
  uint64_t bytes = f->payload_bytes;
  shmx_frame_release(b->cl, f);
  if (!ok || !valid) {
    if (!valid) b->st.torn++;
    else net_drop(b);
    if (!one_part) pool_put(data, b->pool);
    return;
  }
  shmx__br_hdr_put(hdrp, &h);
  if (one_part) {
    if (b->batch_n == 0) b->batch_first_len = meta + off;
    b->batch_len += shmx__br_batch_put(rec, rec + 8, meta + off);
    b->batch_n++;
    b->batch_bytes += bytes;
    return; /* sent when the batch closes: no more frames, or no more room */
  }
  struct pend *p = &b->pend[b->npend++];
  p->batch = 0;
  p->single = 0;
  p->meta = meta;
  p->data = data;
  p->len = off;
  p->frames = 1;
  p->bytes = bytes;
  send_pending(b);
}

/* Subscriptions and unsubscriptions (XPUB_VERBOSER): count peers, and give
 * each new one the schema. */
static void sender_subs(shmx_bridge *b) {
  uint8_t buf[256];
  for (;;) {
    int r = zmq_recv(b->sock, buf, sizeof buf, ZMQ_DONTWAIT);
    if (r < 0) return;
    if (r >= 1 && buf[0] == 1) {
      b->st.subscribers++;
      b->schema_due = 1;
    } else if (r >= 1 && buf[0] == 0 && b->st.subscribers) {
      b->st.subscribers--;
    }
  }
}

static void sender_step(shmx_bridge *b, int64_t budget_ms, volatile sig_atomic_t *stop) {
  uint64_t now = shmx_now_ns();
  if (now - b->clock_ns > SCHEMA_EVERY_NS) {
    b->clock_off = (int64_t)(shmx__real_ns() - shmx_now_ns());
    b->clock_ns = now;
  }
  sender_subs(b);
  if (!b->cl) {
    if (now - b->last_try_ns >= 50u * 1000 * 1000) {
      b->last_try_ns = now;
      if (sender_attach(b, 0) == 0)
        note(b, "reading channel '%s' again\n", b->chan);
    }
    if (!b->cl) {
      zmq_pollitem_t it = {b->sock, 0, ZMQ_POLLIN, 0};
      zmq_poll(&it, 1, budget_ms < 50 ? budget_ms : 50);
      return;
    }
  }
  int rc = sync_schema(b, now);
  if (rc < 0) {
    sender_detach(b, rc);
    return;
  }
  if (b->npend && !send_pending(b)) {
    /* In order, a subscriber's queue is full: hold our read position (the
     * channel's slots absorb the difference, then readers' skips count
     * it) and retry shortly. XPUB has no POLLOUT to wait for. */
    shmx__sleep_ns(RETRY_NS);
    return;
  }
  shmx_frame f;
  int got = 0;
  for (int k = 0; k < 1024 && !(stop && *stop) && !b->npend; k++) {
    if (!batch_room(b)) {
      close_batch(b);
      if (b->npend) break; /* held back: keep our place */
    }
    if (b->o.in_order) {
      rc = shmx_client_next(b->cl, &f);
    } else if (shmx_client_frame_seq(b->cl) > b->last_fid) {
      rc = shmx_client_latest(b->cl, &f);
      if (rc == 0 && f.frame_id <= b->last_fid) {
        shmx_frame_release(b->cl, &f);
        rc = SHMX_E_NOFRAME;
      }
    } else {
      rc = SHMX_E_NOFRAME;
    }
    if (rc == SHMX_E_NOFRAME || rc == SHMX_E_BUSY) break;
    if (rc < 0) {
      sender_detach(b, rc);
      return;
    }
    forward(b, &f);
    got++;
  }
  close_batch(b); /* nothing more to read right now: send what we have */
  if (got) return;
  if (b->o.spin_us > 0) { /* busy-poll a while before sleeping: no wake-up */
    uint64_t until = shmx_now_ns() + (uint64_t)b->o.spin_us * 1000u;
    while (shmx_client_frame_seq(b->cl) <= b->last_fid && !(stop && *stop)) {
      if (shmx_now_ns() >= until) break;
      for (int k = 0; k < 64; k++) shmx__cpu_relax();
    }
    if (shmx_client_frame_seq(b->cl) > b->last_fid) return;
  }
  /* Nothing to read: sleep on the channel's futex (a wake-up through it
   * costs less than through the event fd and poll: 18-26 us added p50
   * against 28-43 us in the same runs), in slices of at most 10 ms so that
   * a new subscriber's schema and the heartbeat wait no longer than that.
   * A frame it brings goes out at once. */
  int64_t ms = budget_ms < IDLE_SLICE_MS ? budget_ms : IDLE_SLICE_MS;
  rc = shmx_client_wait(b->cl, &f, ms * 1000000, b->o.in_order);
  if (rc == 0) {
    forward(b, &f);
    close_batch(b);
  } else if (rc != SHMX_E_TIMEOUT && rc != SHMX_E_EINTR && rc != SHMX_E_NOFRAME) {
    sender_detach(b, rc);
  }
}

/* ====================================================================== */
/* receiver                                                               */

static void recv_drop_channel(shmx_bridge *b) {
  if (b->srv) shmx_server_destroy(b->srv);
  b->srv = NULL;
  b->st.attached = 0;
  shmx__sb_free(&b->sch);
  free(b->sch_blob);
  b->sch_blob = NULL;
  b->cur_sender = b->cur_session = 0;
  b->cur_gen = 0;
  b->last_pub = 0;
}

static int recv_create(shmx_bridge *b, const shmx__sb *s) {
  const char *name = b->o.channel ? b->o.channel : s->name;
  int rc = shmx__sb_create(name, s, b->o.slots, b->o.mode, &b->srv);
  if (rc) {
    b->srv = NULL;
    return rc;
  }
  if (name != b->chan) snprintf(b->chan, sizeof b->chan, "%s", name);
  b->st.attached = 1;
  return 0;
}

static void recv_schema(shmx_bridge *b, const shmx__br_hdr *h, const uint8_t *body,
                        size_t n) {
  uint8_t *blob = malloc(n ? n : 1);
  if (!blob) return;
  if (n) memcpy(blob, body, n);
  shmx__sb s;
  if (shmx__sb_decode(blob, n, &s)) {
    b->st.bad++;
    free(blob);
    return;
  }
  /* A sender decides the geometry of a channel we create: bound the memory
   * it may make us allocate (and pre-fault). */
  uint64_t total = shmx__sb_bytes(&s);
  if (total > b->max_bytes) {
    if (!b->warned_size++)
      note(b, "refusing a schema for a %llu-byte channel (limit "
              "%llu; see --max-bytes)\n", (unsigned long long)total,
              (unsigned long long)b->max_bytes);
    b->st.bad++;
    shmx__sb_free(&s);
    free(blob);
    return;
  }
  int same_origin = b->srv && h->sender_id == b->cur_sender && h->session == b->cur_session;
  if (same_origin && h->schema_gen == b->cur_gen) { /* heartbeat */
    shmx__sb_free(&s);
    free(blob);
    return;
  }
  int rc = 0;
  if (same_origin && shmx__sb_extends(&b->sch, &s)) {
    rc = shmx__sb_grow(b->srv, &b->sch, &s);
  } else {
    uint64_t now = shmx_now_ns();
    if (b->srv) {
      recv_drop_channel(b);
      b->st.recreated++;
    } else if (b->last_create_fail_ns && now - b->last_create_fail_ns < SCHEMA_EVERY_NS / 2) {
      shmx__sb_free(&s); /* failed just now: wait for the next heartbeat */
      free(blob);
      return;
    }
    rc = recv_create(b, &s);
    if (rc) {
      b->last_create_fail_ns = now;
      note(b, "cannot create channel '%s': %s\n",
              b->o.channel ? b->o.channel : s.name, shmx_errmsg());
    }
  }
  if (rc) {
    if (b->srv) recv_drop_channel(b);
    shmx__sb_free(&s);
    free(blob);
    return;
  }
  shmx__sb_free(&b->sch);
  free(b->sch_blob);
  b->sch = s;
  b->sch_blob = blob;
  b->cur_sender = h->sender_id;
  b->cur_session = h->session;
  b->cur_gen = h->schema_gen;
  b->st.schemas++;
}

static int decode_stream(uint32_t codec, const uint8_t *src, size_t n, uint8_t *dst,
                         size_t want) {
  switch (codec) {
  case SHMX__BR_RAW:
    if (n) memcpy(dst, src, n);
    return 0;
#ifdef SHMX_HAVE_ZSTD
  case SHMX__BR_ZSTD: {
    size_t r = ZSTD_decompress(dst, want, src, n);
    return !ZSTD_isError(r) && r == want ? 0 : -1;
  }
#endif
#ifdef SHMX_HAVE_LZ4
  case SHMX__BR_LZ4:
    if (n > INT32_MAX || want > INT32_MAX) return -1;
    return LZ4_decompress_safe((const char *)src, (char *)dst, (int)n, (int)want) == (int)want
               ? 0 : -1;
#endif
  default:
    return -1;
  }
}

static void recv_frame(shmx_bridge *b, const shmx__br_hdr *h, const uint8_t *data,
                       size_t len) {
  if (!b->srv || h->sender_id != b->cur_sender || h->session != b->cur_session ||
      h->schema_gen != b->cur_gen) {
    b->st.schema_wait++;
    return;
  }
  if (h->frame_id <= b->last_pub ||
      shmx__br_dir_check(b->dir, h->n_streams, h->codec, b->sch.frame_cap, len)) {
    b->st.bad++;
    return;
  }
  if (shmx_server_begin(b->srv)) {
    b->st.bad++;
    return;
  }
  size_t off = 0;
  uint64_t bytes = 0;
  for (uint32_t i = 0; i < h->n_streams; i++) {
    const shmx__br_dirent *e = &b->dir[i];
    void *p = NULL;
    const shmx_stream_info *si;
    int ns;
    /* reserve checks the id and the capacity; the byte count must be the
     * schema's elem_count x bytes_per_elem. */
    if (shmx_server_reserve(b->srv, e->stream_id, e->elem_count, &p) ||
        shmx_server_streams(b->srv, &si, &ns))
      goto bad;
    int k = 0;
    while (k < ns && si[k].id != e->stream_id) k++;
    uint64_t want;
    if (k == ns || !shmx__mul_ok(e->elem_count, si[k].bytes_per_elem, &want) ||
        want != e->bytes)
      goto bad;
    if (decode_stream(h->codec, data + off, (size_t)e->wire_bytes, p, (size_t)e->bytes))
      goto bad;
    off += (size_t)e->wire_bytes;
    bytes += e->bytes;
  }
  if (shmx_server_publish_id(b->srv, h->frame_id, h->sim_time)) goto bad;
  if (b->last_pub && h->frame_id > b->last_pub + 1)
    b->st.skipped += h->frame_id - b->last_pub - 1;
  b->last_pub = h->frame_id;
  b->st.frames++;
  b->st.bytes += bytes;
  b->st.wire_bytes += len;
  b->st.sender_dropped = h->sender_dropped;
  if (h->origin_ns && b->lat_n < LAT_SAMPLES) {
    uint64_t now = shmx__real_ns();
    b->lat[b->lat_n++] = now > h->origin_ns ? now - h->origin_ns : 0;
  }
  return;
bad:
  shmx_server_abort(b->srv);
  b->st.bad++;
}

void shmx__bridge_feed(shmx_bridge *b, const uint8_t *p1, size_t n1, const uint8_t *p2,
                       size_t n2, int parts) {
  shmx__br_hdr h;
  size_t tail;
  if (b->send || parts < 1 || parts > 2 || shmx__br_hdr_get(p1, n1, &h, b->dir, &tail)) {
    b->st.bad++;
    return;
  }
  switch (h.type) {
  case SHMX__BR_SCHEMA:
    if (parts != 2) break;
    recv_schema(b, &h, p2, n2);
    return;
  case SHMX__BR_BYE:
    if (parts != 2 || n2) break;
    if (b->srv && h.sender_id == b->cur_sender && h.session == b->cur_session) {
      note(b, "origin channel closed; closing '%s'\n", b->chan);
      recv_drop_channel(b);
    }
    return;
  case SHMX__BR_FRAME:
    if (parts == 1)
      recv_frame(b, &h, p1 + n1 - tail, tail);
    else if (tail == 0)
      recv_frame(b, &h, p2, n2);
    else
      break;
    return;
  case SHMX__BR_BATCH: {
    if (parts != 1) break;
    /* Small frames the sender had queued, one after another: each decoded
     * as a one-part FRAME. A bad record ends the batch (counted); the
     * frames before it stand. */
    size_t off = SHMX__BR_HDR;
    for (uint32_t i = 0; i < h.n_streams; i++) {
      const uint8_t *m;
      size_t ml;
      shmx__br_hdr fh;
      size_t ft;
      if (shmx__br_batch_next(p1, n1, &off, &m, &ml) ||
          shmx__br_hdr_get(m, ml, &fh, b->dir, &ft) || fh.type != SHMX__BR_FRAME) {
        b->st.bad++;
        return;
      }
      recv_frame(b, &fh, m + ml - ft, ft);
    }
    if (off != n1) break;
    return;
  }
  }
  b->st.bad++;
}

static void recv_step(shmx_bridge *b, int64_t budget_ms) {
  zmq_pollitem_t it = {b->sock, 0, ZMQ_POLLIN, 0};
  if (b->o.spin_us > 0) { /* busy-poll the socket a while before sleeping */
    uint64_t until = shmx_now_ns() + (uint64_t)b->o.spin_us * 1000u;
    while (zmq_poll(&it, 1, 0) == 0 && shmx_now_ns() < until) {
    }
  }
  if (zmq_poll(&it, 1, (long)(budget_ms < POLL_SLICE_MS ? budget_ms : POLL_SLICE_MS)) <= 0)
    return;
  for (int k = 0; k < 1024; k++) {
    zmq_msg_t m[2];
    zmq_msg_init(&m[0]);
    if (zmq_msg_recv(&m[0], b->sock, ZMQ_DONTWAIT) < 0) {
      zmq_msg_close(&m[0]);
      return;
    }
    int parts = 1, extra = 0;
    zmq_msg_init(&m[1]);
    if (zmq_msg_more(&m[0])) {
      /* parts arrive together; a signal must not split them */
      while (zmq_msg_recv(&m[1], b->sock, 0) < 0 && zmq_errno() == EINTR) {
      }
      parts = 2;
      while (zmq_msg_more(&m[1])) { /* more than two: not ours */
        zmq_msg_t x;
        zmq_msg_init(&x);
        zmq_msg_recv(&x, b->sock, 0);
        int more = zmq_msg_more(&x);
        zmq_msg_close(&x);
        extra = 1;
        if (!more) break;
      }
    }
    if (extra) b->st.bad++;
    else
      shmx__bridge_feed(b, zmq_msg_data(&m[0]), zmq_msg_size(&m[0]), zmq_msg_data(&m[1]),
                        zmq_msg_size(&m[1]), parts);
    b->st.messages++;
    zmq_msg_close(&m[0]);
    zmq_msg_close(&m[1]);
  }
}

/* ====================================================================== */

int shmx_bridge_open(int send, const shmx_bridge_opts *o, shmx_bridge **out) {
  if (!out) return shmx__err(SHMX_E_ARG, "out is NULL");
  *out = NULL;
  if (!o || !o->endpoint) return shmx__err(SHMX_E_ARG, "no endpoint");
  if (strlen(o->endpoint) >= 512) return shmx__err(SHMX_E_ARG, "endpoint too long");
  if (send && !o->channel) return shmx__err(SHMX_E_ARG, "no channel to send");
  if (o->channel && shmx_name_check(o->channel))
    return shmx__err(SHMX_E_NAME, "channel '%s'", o->channel);
  if (o->codec < 0 || o->codec > SHMX_BRIDGE_LZ4 ||
      shmx_bridge_codec(o->codec == 0 ? "none" : o->codec == 1 ? "zstd" : "lz4") < 0)
    return shmx__err(SHMX_E_ENOSYS, "compression codec %d is not built in", o->codec);
  if ((o->curve_secret || o->curve_server_public) && !shmx_bridge_has_curve())
    return shmx__err(SHMX_E_ENOSYS, "this libzmq was built without CURVE");
  shmx_bridge *b = calloc(1, sizeof *b);
  if (!b) return shmx__syserr(ENOMEM, "bridge");
  b->send = send;
  b->o = *o;
  snprintf(b->endpoint, sizeof b->endpoint, "%s", o->endpoint);
  b->o.endpoint = b->endpoint;
  if (o->channel) snprintf(b->chan, sizeof b->chan, "%s", o->channel);
  b->o.channel = o->channel ? b->chan : NULL;
  b->o.curve_secret = b->o.curve_server_public = NULL; /* used below only */
  b->sender_id = shmx__random64(); /* per run, never 0 */
  int rc = 0;
  b->ctx = zmq_ctx_new();
  if (!b->ctx) {
    rc = zerr("zmq_ctx_new");
    goto fail;
  }
  if (send) {
    b->pool = calloc(1, sizeof *b->pool);
    b->batch = malloc(SHMX__BR_BATCH_BYTES);
    b->batch_len = SHMX__BR_HDR;
    b->meta = malloc(SHMX__BR_HDR + SHMX_FRAME_MAX_STREAMS * SHMX__BR_DIRENT);
    if (!b->pool || !b->batch || !b->meta) {
      rc = shmx__syserr(ENOMEM, "bridge buffers");
      goto fail;
    }
    atomic_flag_clear(&b->pool->lock);
#ifdef SHMX_HAVE_ZSTD
    if (o->codec == SHMX_BRIDGE_ZSTD && !(b->cctx = ZSTD_createCCtx())) {
      rc = shmx__syserr(ENOMEM, "zstd context");
      goto fail;
    }
#endif
    if ((rc = sender_attach(b, o->wait_s > 0 ? (int64_t)(o->wait_s * 1e9) : 0))) goto fail;
    shmx_header_info hi;
    shmx_client_header(b->cl, &hi);
    int hwm = o->hwm;
    if (hwm <= 0) {
      uint64_t q = (64ull << 20) / (hi.frame_bytes_cap ? hi.frame_bytes_cap : 1);
      hwm = q < 2 ? 2 : q > 1000 ? 1000 : (int)q;
    }
    b->o.hwm = hwm;
    b->sock = zmq_socket(b->ctx, ZMQ_XPUB);
    if (!b->sock) {
      rc = zerr("zmq_socket");
      goto fail;
    }
    if ((rc = set_int(b->sock, ZMQ_SNDHWM, hwm, "ZMQ_SNDHWM")) ||
        (rc = set_int(b->sock, ZMQ_XPUB_VERBOSER, 1, "ZMQ_XPUB_VERBOSER")) ||
        (rc = set_int(b->sock, ZMQ_XPUB_NODROP, 1, "ZMQ_XPUB_NODROP")) ||
        (rc = set_int(b->sock, ZMQ_LINGER, 0, "ZMQ_LINGER")) ||
        (rc = set_int(b->sock, ZMQ_HEARTBEAT_IVL, 1000, "ZMQ_HEARTBEAT_IVL")) ||
        (rc = set_int(b->sock, ZMQ_HEARTBEAT_TIMEOUT, 5000, "ZMQ_HEARTBEAT_TIMEOUT")))
      goto fail;
    if (o->curve_secret) {
      if ((rc = set_int(b->sock, ZMQ_CURVE_SERVER, 1, "ZMQ_CURVE_SERVER"))) goto fail;
      if (zmq_setsockopt(b->sock, ZMQ_CURVE_SECRETKEY, o->curve_secret, 40)) {
        rc = zerr("CURVE secret key");
        goto fail;
      }
    }
    if (zmq_bind(b->sock, o->endpoint)) {
      rc = zerr(o->endpoint);
      goto fail;
    }
    size_t el = sizeof b->endpoint;
    if (zmq_getsockopt(b->sock, ZMQ_LAST_ENDPOINT, b->endpoint, &el)) {
      rc = zerr("ZMQ_LAST_ENDPOINT");
      goto fail;
    }
  } else {
    b->lat = malloc(LAT_SAMPLES * sizeof *b->lat);
    if (!b->lat) {
      rc = shmx__syserr(ENOMEM, "bridge buffers");
      goto fail;
    }
    b->sock = zmq_socket(b->ctx, ZMQ_SUB);
    if (!b->sock) {
      rc = zerr("zmq_socket");
      goto fail;
    }
    int hwm = o->hwm > 0 ? o->hwm : 64;
    b->o.hwm = hwm;
    b->max_bytes = o->max_bytes ? o->max_bytes : (1ull << 30);
    if ((rc = set_int(b->sock, ZMQ_RCVHWM, hwm, "ZMQ_RCVHWM")) ||
        (rc = set_int(b->sock, ZMQ_LINGER, 0, "ZMQ_LINGER")) ||
        (rc = set_int(b->sock, ZMQ_RECONNECT_IVL, 100, "ZMQ_RECONNECT_IVL")) ||
        (rc = set_int(b->sock, ZMQ_RECONNECT_IVL_MAX, 1000, "ZMQ_RECONNECT_IVL_MAX")) ||
        (rc = set_int(b->sock, ZMQ_HEARTBEAT_IVL, 1000, "ZMQ_HEARTBEAT_IVL")) ||
        (rc = set_int(b->sock, ZMQ_HEARTBEAT_TIMEOUT, 5000, "ZMQ_HEARTBEAT_TIMEOUT")))
      goto fail;
    if (o->curve_server_public) {
      char pub[41], sec[41];
      if (zmq_curve_keypair(pub, sec) ||
          zmq_setsockopt(b->sock, ZMQ_CURVE_SERVERKEY, o->curve_server_public, 40) ||
          zmq_setsockopt(b->sock, ZMQ_CURVE_PUBLICKEY, pub, 40) ||
          zmq_setsockopt(b->sock, ZMQ_CURVE_SECRETKEY, sec, 40)) {
        rc = zerr("CURVE keys");
        goto fail;
      }
    }
    if (zmq_setsockopt(b->sock, ZMQ_SUBSCRIBE, "", 0)) {
      rc = zerr("ZMQ_SUBSCRIBE");
      goto fail;
    }
    if (zmq_connect(b->sock, o->endpoint)) {
      rc = zerr(o->endpoint);
      goto fail;
    }
  }
  *out = b;
  return 0;
fail:
  {
    char msg[256];
    snprintf(msg, sizeof msg, "%s", shmx_errmsg());
    shmx_bridge_close(b);
    return shmx__err(rc, "%s", msg);
  }
}

int shmx_bridge_run(shmx_bridge *b, int64_t timeout_ns, volatile sig_atomic_t *stop) {
  if (!b || !b->sock) return shmx__err(SHMX_E_ARG, "bridge is NULL");
  uint64_t t0 = shmx_now_ns();
  for (;;) {
    if (stop && *stop) return 0;
    int64_t left_ms = POLL_SLICE_MS;
    if (timeout_ns >= 0) {
      uint64_t el = shmx_now_ns() - t0;
      if (el >= (uint64_t)timeout_ns) return 0;
      left_ms = (int64_t)(((uint64_t)timeout_ns - el) / 1000000u);
    }
    if (b->send) sender_step(b, left_ms, stop);
    else recv_step(b, left_ms);
  }
}

static int cmp_u64(const void *a, const void *c) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)c;
  return x < y ? -1 : x > y;
}

void shmx_bridge_stats_get(shmx_bridge *b, shmx_bridge_stats *st) {
  if (!b || !st) return;
  b->st.lat_n = b->lat_n;
  b->st.lat_p50_ns = b->st.lat_p99_ns = b->st.lat_max_ns = 0;
  if (b->lat_n) {
    qsort(b->lat, b->lat_n, sizeof *b->lat, cmp_u64);
    b->st.lat_p50_ns = b->lat[b->lat_n / 2];
    b->st.lat_p99_ns = b->lat[(uint64_t)b->lat_n * 99 / 100];
    b->st.lat_max_ns = b->lat[b->lat_n - 1];
  }
  b->lat_n = 0;
  *st = b->st;
}

void shmx_bridge_close(shmx_bridge *b) {
  if (!b) return;
  for (int i = 0; i < b->npend; i++)
    if (!b->pend[i].batch) free(b->pend[i].data);
  if (b->send && b->cl && b->sock) send_ctl(b, SHMX__BR_BYE, NULL, 0);
  if (b->cl) shmx_client_close(b->cl);
  if (b->srv) shmx_server_destroy(b->srv);
  if (b->sock) zmq_close(b->sock);
  if (b->ctx) zmq_ctx_term(b->ctx); /* linger 0: returns once sockets close */
  if (b->pool) pool_drain(b->pool); /* libzmq has returned every buffer now */
  free(b->pool);
#ifdef SHMX_HAVE_ZSTD
  if (b->cctx) ZSTD_freeCCtx(b->cctx);
#endif
  shmx__sb_free(&b->sch);
  free(b->sch_blob);
  free(b->schema);
  free(b->batch);
  free(b->meta);
  free(b->lat);
  free(b);
}

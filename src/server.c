/*
 * server.c -- the producer: create, frames (begin/append/reserve/publish),
 * schema appends, control polling, reader liveness, destroy.
 *
 * The producer is the only writer of header line 2, slot descriptors' meta,
 * frame data and ring tails. It never blocks on readers: a slot is chosen
 * among unpinned ones, and if none is free the oldest is overwritten.
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

#define SWEEP_INTERVAL_NS (100u * 1000 * 1000)

struct shmx_server {
  shmx__seg seg;
  shmx__namelock nl;       /* the session's lock file (seg.lock_fd) */
  uint8_t *base;           /* whole segment, read-write */
  shmx__schema schema;     /* parsed from our own schema area */
  /* frame in progress */
  int in_frame;
  uint32_t cur;            /* slot being written */
  uint64_t pos;            /* next record offset in the slot */
  uint64_t payload;
  uint32_t tlv_count;
  uint32_t *cur_streams;   /* schema indexes already in this frame */
  /* private state (never read back from shared memory) */
  uint64_t next_fid;
  uint32_t latest;         /* slot of the newest frame, SHMX__NO_SLOT */
  uint64_t last_sweep_ns;
  uint64_t last_stamp;     /* publish_ns of the newest frame (never falls) */
  /* Slots by the age of their frame, oldest first (the newest, `latest`,
   * last): a doubly linked list through age_next/age_prev (SHMX__NO_SLOT
   * ends it). publish moves a slot to the end, abort to the front. */
  uint32_t *age_next, *age_prev;
  uint32_t age_head, age_tail;
  uint8_t *msgbuf;
  uint64_t msgbuf_cap;
  uint32_t poll_rr;
  /* When each slot was last written (stamp clock; 0 = not since create)
   * and how many bytes all frames had carried by then (`carried` counts
   * every published frame's bytes): a large append into a slot idle for
   * SHMX__COLD_NS, or with SHMX__COLD_BYTES written elsewhere since,
   * streams (copy.c). */
  uint64_t *slot_used_ns, *slot_used_at;
  uint64_t carried;
  int copy_mode; /* SHMX__COPY_*, from the environment at create */
  /* Slots overwritten while pinned, and the pin words they had then
   * (slots x pin_words): while a slot's pins are all from then, its holders
   * already have an invalidated frame, and it is the next to overwrite. */
  uint8_t *forced;
  uint64_t *forced_pins;
};

void shmx_server_config_init(shmx_server_config *c) {
  memset(c, 0, sizeof *c);
  c->slots = 3;
  c->reader_slots = 16;
  c->static_bytes_cap = 4096;
  c->frame_bytes_cap = 65536;
  c->control_per_reader = 4096;
  c->mode = 0600;
}

/* Readers counted as sleeping (2.0/2.1 and 2.2 protocols): how many a
 * wake-up must reach. */
static uint32_t waiting(const struct shmx__hdr *h) {
  return atomic_load(&h->waiters) + atomic_load(&h->sleepers);
}

static int check_streams(const shmx_stream_spec *st, uint32_t n) {
  if (n && !st) return shmx__err(SHMX_E_ARG, "streams is NULL");
  for (uint32_t i = 0; i < n; i++) {
    int rc = shmx__spec_check(&st[i]);
    if (rc) return rc;
    for (uint32_t j = 0; j < i; j++) {
      if (st[j].id == st[i].id)
        return shmx__err(SHMX_E_DUPLICATE, "stream id %u declared twice", st[i].id);
      if (strcmp(st[j].name, st[i].name) == 0)
        return shmx__err(SHMX_E_DUPLICATE, "stream name '%s' declared twice",
                         st[i].name);
    }
  }
  return 0;
}

/* Encode a checked spec as a STATIC_DIR record; bytes written, 0 if it
 * does not fit in room. */
static uint64_t spec_encode(uint8_t *dst, uint64_t room,
                            const shmx_stream_spec *sp) {
  struct shmx__sspec e = {sp->id, sp->dtype, sp->components, sp->layout,
                          sp->bytes_per_elem, (uint16_t)strlen(sp->name),
                          (uint16_t)sp->extra_len};
  return shmx__record_encode(dst, room, SHMX_TLV_STATIC_DIR, &e, sizeof e,
                             sp->name, e.name_len, sp->extra, sp->extra_len);
}

/* Append an encoded record to the schema area and publish it to readers. */
static int static_commit(shmx_server *srv, uint64_t used, uint64_t n);

static int reparse_schema(shmx_server *srv) {
  struct shmx__hdr *h = shmx__hdr(&srv->seg);
  shmx__schema fresh;
  int rc = shmx__schema_parse(shmx__static_area(&srv->seg),
                              atomic_load(&h->static_used), srv->seg.g.static_cap,
                              atomic_load(&h->static_gen), &fresh);
  if (rc) return rc;
  shmx__schema_free(&srv->schema);
  srv->schema = fresh;
  return 0;
}

/* Under the name lock: create the segment file, or reclaim the name from a
 * dead producer, and take the producer lock. Every creator, remover and
 * destroyer of the name holds that lock while it probes, unlinks and
 * creates, so what was probed is what is unlinked and exactly one of many
 * concurrent creators wins. The file starts 0600 (nobody else can open it
 * before we hold its lock); create sets the asked mode later. Returns the
 * segment fd or an error. */
static int take_name(shmx_server *srv, const char *name, shmx__fid *id) {
  char file[SHMX__FILE_CAP];
  shmx__seg_file(name, file, sizeof file);
  uint32_t uid = shmx__euid();
  int rc = shmx__name_lock(name, uid, 1, &srv->nl);
  if (rc) return rc;
  for (int attempt = 0;; attempt++) {
    int fd = shmx__shm_open(file, O_RDWR | O_CREAT | O_EXCL, 0600, id);
    if (fd >= 0) {
      rc = shmx__byte_lock(fd, SHMX__OWNER_LOCK_OFF);
      if (rc == 0) {
        shmx__name_release(&srv->nl);
        return fd;
      }
      shmx__close(fd);
      rc = rc == -EAGAIN ? shmx__err(SHMX_E_EXISTS, "channel '%s': a process of "
                                     "this user locked the new segment", name)
                         : shmx__syserr(-rc, "channel '%s': owner lock", name);
      break;
    }
    if (fd == SHMX_E_CORRUPT) { rc = fd; break; } /* detail says what it is */
    if (fd != -EEXIST || attempt >= 20) {
      rc = shmx__syserr(-fd, "channel '%s': create", name);
      break;
    }
    shmx__fid old_id;
    int old = shmx__shm_open(file, O_RDONLY, 0, &old_id);
    if (old == -ENOENT) continue; /* removed meanwhile (outside the lock) */
    if (old == SHMX_E_CORRUPT) {
      rc = shmx__err(SHMX_E_EXISTS, "channel '%s': %s; remove it first", name,
                     shmx_errmsg());
      break;
    }
    if (old < 0) {
      rc = old == -EACCES
               ? shmx__err(SHMX_E_EACCES, "channel '%s' exists and belongs to "
                           "another user", name)
               : shmx__syserr(-old, "channel '%s': open existing", name);
      break;
    }
    int alive = shmx__owner_alive_fd(old);
    if (alive != 0) {
      int32_t pid = 0;
      if (alive == 1 &&
          shmx__fd_pread(old, &pid, sizeof pid, offsetof(struct shmx__hdr, owner_pid)) !=
              (int64_t)sizeof pid)
        pid = 0;
      shmx__close(old);
      rc = alive == 1 ? shmx__err(SHMX_E_EXISTS, "channel '%s' is owned by live "
                                  "producer pid %d", name, (int)pid)
                      : shmx__syserr(-alive, "channel '%s': owner lock probe", name);
      break;
    }
    /* Stale: its producer died. Unlink it if the name still names what we
     * probed (every process that follows this protocol holds the lock). */
    shmx__fid now;
    int same = shmx__shm_stat(file, &now) == 0 && shmx__fid_same(&now, &old_id);
    shmx__close(old);
    if (same && (rc = shmx__shm_unlink(file)) != 0 && rc != -ENOENT) {
      rc = rc == -EPERM || rc == -EACCES
               ? shmx__err(SHMX_E_EACCES, "channel '%s': stale segment of uid %u "
                           "cannot be removed by uid %u", name,
                           (unsigned)old_id.uid, (unsigned)uid)
               : shmx__syserr(-rc, "channel '%s': unlink stale segment", name);
      break;
    }
  }
  shmx__name_close(&srv->nl);
  return rc;
}

/* Under the name lock: unlink our segment and the session's lock file if
 * the names still name them, then close the lock file. */
static void release_name(shmx_server *srv) {
  char file[SHMX__FILE_CAP];
  if (shmx__name_relock(srv->seg.name, &srv->nl) == 1) {
    shmx__fid now;
    shmx__seg_file(srv->seg.name, file, sizeof file);
    if (shmx__shm_stat(file, &now) == 0 && now.ino == srv->seg.ino &&
        now.dev == srv->seg.dev)
      shmx__shm_unlink(file);
    shmx__lock_file(srv->seg.name, file, sizeof file);
    shmx__shm_unlink(file); /* relock checked that it names ours */
  }
  shmx__name_close(&srv->nl);
  srv->seg.lock_fd = -1;
}

/* Everything a server holds, given back (create's failure path and
 * destroy): the guard, the mapping (total bytes, if made), the wake handle,
 * the segment descriptor (which releases the owner lock) and the memory. */
static void server_free(shmx_server *srv, uint64_t total) {
  shmx__guard_del(srv->seg.guard_ctl);
  if (srv->base) shmx__unmap(srv->base, total);
  shmx__wake_close(srv->seg.wake);
  shmx__close(srv->seg.fd);
  shmx__schema_free(&srv->schema);
  free(srv->cur_streams);
  free(srv->age_next);
  free(srv->age_prev);
  free(srv->slot_used_ns);
  free(srv->slot_used_at);
  free(srv->forced);
  free(srv->forced_pins);
  free(srv->msgbuf);
  free(srv);
}

int shmx_server_create(const char *name, const shmx_server_config *cfg_in,
                       shmx_server **out) {
  int rc;
  shmx_server_config cfg;
  if (!out) return shmx__err(SHMX_E_ARG, "out is NULL");
  *out = NULL;
  if ((rc = shmx_name_check(name))) return rc;
  shmx_server_config_init(&cfg);
  if (cfg_in) {
#define TAKE(f) if (cfg_in->f) cfg.f = cfg_in->f
    TAKE(slots); TAKE(reader_slots); TAKE(static_bytes_cap);
    TAKE(frame_bytes_cap); TAKE(control_per_reader); TAKE(mode);
#undef TAKE
    cfg.flags = cfg_in->flags;
    cfg.streams = cfg_in->streams;
    cfg.n_streams = cfg_in->n_streams;
  }
  if (cfg.mode & ~0777u) return shmx__err(SHMX_E_ARG, "mode %o", cfg.mode);
  if ((rc = check_streams(cfg.streams, cfg.n_streams))) return rc;
  shmx__geom g;
  if ((rc = shmx__geom_compute(cfg.slots, cfg.reader_slots, cfg.static_bytes_cap,
                               cfg.frame_bytes_cap, cfg.control_per_reader,
                               cfg.n_streams, &g)))
    return rc;
  g.flags = cfg.flags & (SHMX_CREATE_CRC32C);
  uint64_t schema_bytes = 0;
  for (uint32_t i = 0; i < cfg.n_streams; i++)
    schema_bytes += shmx__spec_record_size(&cfg.streams[i]);
  if (schema_bytes > g.static_cap)
    return shmx__err(SHMX_E_CAPACITY, "%u stream specs need %llu bytes of "
                     "schema; static_bytes_cap is %llu", cfg.n_streams,
                     (unsigned long long)schema_bytes,
                     (unsigned long long)g.static_cap);

  shmx_server *srv = calloc(1, sizeof *srv);
  if (!srv) return shmx__err(SHMX_E_ENOMEM, "server");
  srv->seg.fd = srv->seg.lock_fd = srv->nl.fd = -1;
  srv->seg.guard_ctl = srv->seg.guard_frames = -1;
  srv->cur_streams = calloc(g.max_tlv, sizeof *srv->cur_streams);
  srv->age_next = calloc(g.slots, sizeof *srv->age_next);
  srv->age_prev = calloc(g.slots, sizeof *srv->age_prev);
  srv->copy_mode = shmx__copy_mode();
  srv->slot_used_ns = calloc(g.slots, sizeof *srv->slot_used_ns);
  srv->slot_used_at = calloc(g.slots, sizeof *srv->slot_used_at);
  srv->forced = calloc(g.slots, 1);
  srv->forced_pins = calloc((size_t)g.slots * g.pin_words, sizeof *srv->forced_pins);
  srv->msgbuf_cap = g.ring_bytes * 4;
  srv->msgbuf = malloc((size_t)srv->msgbuf_cap);
  if (!srv->cur_streams || !srv->msgbuf || !srv->age_next ||
      !srv->age_prev || !srv->slot_used_ns || !srv->slot_used_at || !srv->forced || !srv->forced_pins) {
    rc = shmx__err(SHMX_E_ENOMEM, "server");
    goto fail;
  }
  snprintf(srv->seg.name, sizeof srv->seg.name, "%s", name);
  shmx__fid id;
  int fd = take_name(srv, name, &id);
  if (fd < 0) { rc = fd; goto fail; }
  srv->seg.fd = fd;
  srv->seg.lock_fd = srv->nl.fd;
  srv->seg.dev = id.dev;
  srv->seg.ino = id.ino;
  srv->seg.uid = id.uid;
  /* Now that we hold the producer lock, the asked modes, umask
   * notwithstanding: the segment's, and the lock file's (its owner plus the
   * segment's write bits, see owner.h). */
  if ((rc = shmx__fd_chmod(fd, cfg.mode)) ||
      (rc = shmx__fd_chmod(srv->nl.fd, shmx__lock_mode(cfg.mode)))) {
    rc = shmx__syserr(-rc, "channel '%s': chmod", name);
    goto fail_unlink;
  }
  if ((rc = shmx__fd_truncate(fd, g.total)) ||
      (!(cfg.flags & SHMX_CREATE_NO_PREFAULT) &&
       (rc = shmx__fd_allocate(fd, g.total)))) {
    rc = shmx__syserr(-rc, "channel '%s': reserve %llu bytes of shared memory",
                      name, (unsigned long long)g.total);
    goto fail_unlink;
  }
  void *p;
  if ((rc = shmx__map(fd, 0, g.total, 3, !(cfg.flags & SHMX_CREATE_NO_PREFAULT),
                      &p))) {
    rc = shmx__syserr(-rc, "channel '%s': map", name);
    goto fail_unlink;
  }
  srv->base = p;
  srv->seg.guard_ctl = shmx__guard_add(p, g.total, 3, &srv->seg.truncated);
  srv->seg.ctl = srv->base;
  srv->seg.frames = srv->base + g.frames_off;
  srv->seg.g = g;
  srv->seg.writable = 1;
  srv->seg.is_owner = 1;
  srv->seg.session_id = shmx__random64();
  srv->seg.owner_pid = shmx__getpid();
  /* What readers' waits sleep on (nothing to create on Linux); the name
   * comes from the session id, which nobody knows before this point. */
  if ((rc = shmx__wake_open(srv->seg.session_id, 1, cfg.mode, &srv->seg.wake))) {
    rc = shmx__syserr(-rc, "channel '%s': wake-up object", name);
    goto fail_unlink;
  }

  /* The segment is zero-filled by ftruncate; write header and schema, then
   * publish state=LIVE with release so readers see a complete header. */
  struct shmx__hdr *h = shmx__hdr(&srv->seg);
  h->magic = SHMX__MAGIC;
  h->version_major = SHMX_FORMAT_MAJOR;
  h->version_minor = SHMX_FORMAT_MINOR;
  h->header_bytes = SHMX__HDR_BYTES;
  h->session_id = srv->seg.session_id;
  h->total_bytes = g.total;
  h->owner_pid = srv->seg.owner_pid;
  h->flags = g.flags;
  h->slots = g.slots;
  h->reader_slots = g.reader_slots;
  h->static_bytes_cap = g.static_cap;
  h->frame_bytes_cap = g.frame_cap;
  h->slot_bytes = g.slot_bytes;
  h->control_per_reader = g.ring_bytes;
  h->static_off = g.static_off;
  h->slotdesc_off = g.slotdesc_off;
  h->readers_off = g.readers_off;
  h->control_off = g.control_off;
  h->frames_off = g.frames_off;
  h->create_ns = shmx__real_ns();
  h->slotdesc_stride = g.slotdesc_stride;
  h->pin_words = g.pin_words;
  h->max_tlv = g.max_tlv;
  h->lock_dev = srv->nl.id.dev;
  h->lock_ino = srv->nl.id.ino;
  atomic_store(&h->latest_slot, SHMX__NO_SLOT);
  uint64_t used = 0;
  for (uint32_t i = 0; i < cfg.n_streams; i++)
    used += spec_encode(shmx__static_area(&srv->seg) + used, g.static_cap - used,
                        &cfg.streams[i]);
  atomic_store(&h->static_used, used);
  atomic_store(&h->static_gen, 1);
  if ((rc = reparse_schema(srv))) goto fail_unlink;
  srv->next_fid = 1;
  srv->latest = SHMX__NO_SLOT;
  for (uint32_t i = 0; i < g.slots; i++) { /* all empty: any order */
    srv->age_prev[i] = i ? i - 1 : SHMX__NO_SLOT;
    srv->age_next[i] = i + 1 < g.slots ? i + 1 : SHMX__NO_SLOT;
  }
  srv->age_head = 0;
  srv->age_tail = g.slots - 1;
  atomic_store_explicit(&h->state, SHMX__ST_LIVE, memory_order_release);
  *out = srv;
  return 0;

fail_unlink:
  release_name(srv);
fail:
  server_free(srv, g.total);
  return rc;
}

void shmx_server_destroy(shmx_server *srv) {
  if (!srv) return;
  if (srv->in_frame) shmx_server_abort(srv);
  struct shmx__hdr *h = shmx__hdr(&srv->seg);
  atomic_store_explicit(&h->state, SHMX__ST_CLOSED, memory_order_release);
  atomic_fetch_add(&h->wake_word, 1);
  shmx__futex_wake(srv->seg.wake, &h->wake_word, waiting(h));
  shmx__notify_ring(srv->seg.fd, SHMX__BELL_OFF); /* after state: see arm */
  release_name(srv);
  server_free(srv, srv->seg.g.total);
}

/* Reap readers whose process died; rate-limited unless force. Slow path. */
static int sweep_dead(shmx_server *srv, bool force) {
  uint64_t now = shmx__mono_ns();
  if (!force && now - srv->last_sweep_ns < SWEEP_INTERVAL_NS) return 0;
  srv->last_sweep_ns = now;
  int n = 0;
  for (uint32_t i = 0; i < srv->seg.g.reader_slots; i++) {
    struct shmx__reader *r = shmx__rdr(&srv->seg, i);
    uint64_t id = atomic_load(&r->owner);
    if (id == SHMX__REAPING) {
      n += shmx__reg_reap_stuck(&srv->seg, i);
      continue;
    }
    if (id == 0) continue;
    if (shmx__reg_alive(&srv->seg, i) == 0) {
      n += shmx__reg_reap(&srv->seg, i, id);
    }
  }
  return n;
}

static void age_unlink(shmx_server *srv, uint32_t i) {
  uint32_t p = srv->age_prev[i], n = srv->age_next[i];
  if (p == SHMX__NO_SLOT) srv->age_head = n; else srv->age_next[p] = n;
  if (n == SHMX__NO_SLOT) srv->age_tail = p; else srv->age_prev[n] = p;
}

/* Slot i now holds the newest frame (to_end) or none (the front). */
static void age_move(shmx_server *srv, uint32_t i, bool to_end) {
  if (to_end ? srv->age_tail == i : srv->age_head == i) return;
  age_unlink(srv, i);
  if (to_end) {
    srv->age_prev[i] = srv->age_tail;
    srv->age_next[i] = SHMX__NO_SLOT;
    if (srv->age_tail == SHMX__NO_SLOT) srv->age_head = i;
    else srv->age_next[srv->age_tail] = i;
    srv->age_tail = i;
  } else {
    srv->age_next[i] = srv->age_head;
    srv->age_prev[i] = SHMX__NO_SLOT;
    if (srv->age_head == SHMX__NO_SLOT) srv->age_tail = i;
    else srv->age_prev[srv->age_head] = i;
    srv->age_head = i;
  }
}

/* Take slot i for frame fid if no reader pins it (Dekker with the reader's
 * pin: mark busy, then look for pins; a reader pins, then checks seq; one of
 * us sees the other). */
static bool try_take(shmx_server *srv, uint32_t i, uint64_t fid) {
  const shmx__seg *s = &srv->seg;
  if (shmx__slot_pinned(s, i)) return false;
  struct shmx__slotdesc *d = shmx__slot(s, i);
  uint64_t old = atomic_load_explicit(&d->seq, memory_order_relaxed);
  atomic_store(&d->seq, 2 * fid - 1);
  if (shmx__slot_pinned(s, i)) {
    testcase(1); /* a reader pinned it between our check and mark */
    atomic_store(&d->seq, old);
    return false;
  }
  srv->forced[i] = 0;
  return true;
}

/* Every pin on slot i was already there when we last overwrote it while
 * pinned: its holders hold frames that are invalid already. */
static bool pins_all_stale(const shmx_server *srv, uint32_t i) {
  const shmx__seg *s = &srv->seg;
  if (!srv->forced[i]) return false;
  const uint64_t *then = srv->forced_pins + (size_t)i * s->g.pin_words;
  for (uint32_t w = 0; w < s->g.pin_words; w++)
    if (atomic_load(shmx__pin_word(s, i, w)) & ~then[w]) return false;
  return true;
}

int shmx_server_begin(shmx_server *srv) {
  if (!srv) return shmx__err(SHMX_E_ARG, "server is NULL");
  if (srv->in_frame) return shmx__err(SHMX_E_STATE, "a frame is already begun");
  const shmx__seg *s = &srv->seg;
  SHMX__TRUNCATED_CHECK(s);
  uint64_t fid = srv->next_fid;
  /* The slot to write: the one holding the oldest frame among those no
   * reader pins, never the latest. The age list gives them in that order,
   * so with nothing pinned the first candidate is taken: one pin check, no
   * scan of all slots. */
  for (int round = 0; round < 2; round++) {
    for (uint32_t i = srv->age_head; i != SHMX__NO_SLOT; i = srv->age_next[i]) {
      if (i == srv->latest || !try_take(srv, i, fid)) continue;
      srv->cur = i;
      goto chosen;
    }
    if (round == 0) sweep_dead(srv, true); /* maybe a dead reader's pins */
  }
  /* Every other slot is pinned: overwrite one; its holders see
   * shmx_frame_valid() == 0. First choice, a slot pinned only by holders of
   * a frame we already overwrote there (a reader that holds its previous
   * frame while it takes the next keeps such a pin for a moment; it must
   * not cost the frame it is reading); else the oldest. */
  {
    uint32_t best = SHMX__NO_SLOT;
    for (uint32_t i = srv->age_head; i != SHMX__NO_SLOT; i = srv->age_next[i])
      if (i != srv->latest && pins_all_stale(srv, i)) {
        testcase(1); /* a stale pin's slot overwritten again */
        best = i;
        break;
      }
    if (best == SHMX__NO_SLOT) {
      best = srv->age_head;
      if (best == srv->latest) best = srv->age_next[best];
    }
    testcase(1); /* forced overwrite of a pinned slot */
    srv->cur = best;
    atomic_store(&shmx__slot(s, best)->seq, 2 * fid - 1);
    /* the pins now: seq is odd, so no pin taken from here on is for a
     * frame of ours until publish (readers re-check seq after pinning) */
    uint64_t *now = srv->forced_pins + (size_t)best * s->g.pin_words;
    for (uint32_t w = 0; w < s->g.pin_words; w++)
      now[w] = atomic_load(shmx__pin_word(s, best, w));
    srv->forced[best] = 1;
  }
chosen:
  srv->in_frame = 1;
  srv->pos = 0;
  srv->payload = 0;
  srv->tlv_count = 0;
  return 0;
}

/* Validate and lay out one record; returns the data pointer in *ptr. */
static int put_record(shmx_server *srv, uint32_t stream_id, uint64_t bytes,
                      uint64_t elem_count, uint8_t **ptr) {
  if (!srv->in_frame) return shmx__err(SHMX_E_STATE, "no frame begun");
  int idx = shmx__schema_find(&srv->schema, stream_id);
  if (idx < 0)
    return shmx__err(SHMX_E_STREAM, "stream id %u is not in channel '%s' schema",
                     stream_id, srv->seg.name);
  const shmx_stream_info *si = &srv->schema.streams[idx];
  uint64_t want;
  if (!shmx__mul_ok(elem_count, si->bytes_per_elem, &want) || want != bytes)
    return shmx__err(SHMX_E_SIZE, "stream '%s': %llu bytes for %llu elements of "
                     "%u bytes", si->name, (unsigned long long)bytes,
                     (unsigned long long)elem_count, si->bytes_per_elem);
  for (uint32_t k = 0; k < srv->tlv_count; k++)
    if (srv->cur_streams[k] == (uint32_t)idx)
      return shmx__err(SHMX_E_DUPLICATE, "stream '%s' already in this frame",
                       si->name);
  const shmx__geom *g = &srv->seg.g;
  uint64_t data_off = srv->pos + SHMX__TLV_HDR, end;
  if (srv->tlv_count >= g->max_tlv || g->frame_cap - srv->payload < bytes ||
      g->slot_bytes < data_off || g->slot_bytes - data_off < bytes ||
      !shmx__align_ok(data_off + bytes, SHMX__DATA_ALIGN, &end))
    return shmx__err(SHMX_E_CAPACITY, "stream '%s': %llu bytes exceed frame "
                     "capacity (%llu of %llu used, %u of %u records)", si->name,
                     (unsigned long long)bytes, (unsigned long long)srv->payload,
                     (unsigned long long)g->frame_cap, srv->tlv_count, g->max_tlv);
  uint8_t *slot = shmx__frame_data(&srv->seg, srv->cur);
  struct shmx__tlv t = {SHMX_TLV_FRAME_STREAM, stream_id, elem_count, bytes, {0}};
  memcpy(slot + srv->pos, &t, sizeof t);
  *ptr = slot + data_off;
  srv->cur_streams[srv->tlv_count++] = (uint32_t)idx;
  srv->payload += bytes;
  srv->pos = end > g->slot_bytes ? g->slot_bytes : end;
  return 0;
}

/* Stream the copy into the slot being written? Yes if it is probably out of
 * this core's caches, unless a checksum is about to read the bytes back. */
static bool slot_is_cold(const shmx_server *srv) {
  if (srv->copy_mode != SHMX__COPY_AUTO) return srv->copy_mode == SHMX__COPY_STREAM;
  if (srv->seg.g.flags & SHMX_CREATE_CRC32C) return false;
  uint64_t used = srv->slot_used_ns[srv->cur];
  return !used || srv->carried - srv->slot_used_at[srv->cur] > SHMX__COLD_BYTES ||
         shmx__stamp_ns() > used + SHMX__COLD_NS;
}

int shmx_server_append(shmx_server *srv, uint32_t stream_id, const void *data,
                       uint64_t bytes, uint64_t elem_count) {
  if (!srv) return shmx__err(SHMX_E_ARG, "server is NULL");
  if (bytes && !data) return shmx__err(SHMX_E_ARG, "data is NULL");
  uint8_t *p = NULL;
  int rc = put_record(srv, stream_id, bytes, elem_count, &p);
  if (rc) return rc;
  if (bytes >= SHMX__STREAM_MIN && slot_is_cold(srv))
    shmx__copy_stream(p, data, (size_t)bytes);
  else if (bytes)
    memcpy(p, data, (size_t)bytes);
  return 0;
}

int shmx_server_reserve(shmx_server *srv, uint32_t stream_id,
                        uint64_t elem_count, void **ptr) {
  if (!srv || !ptr) return shmx__err(SHMX_E_ARG, "server or ptr is NULL");
  int idx = shmx__schema_find(&srv->schema, stream_id);
  uint64_t bytes = 0;
  if (idx >= 0 && !shmx__mul_ok(elem_count, srv->schema.streams[idx].bytes_per_elem,
                                &bytes))
    return shmx__err(SHMX_E_CAPACITY, "stream %u: %llu elements overflow",
                     stream_id, (unsigned long long)elem_count);
  uint8_t *p = NULL;
  int rc = put_record(srv, stream_id, bytes, elem_count, &p);
  if (rc) return rc;
  *ptr = p;
  return 0;
}

SHMX__ALWAYS_INLINE static inline int publish(shmx_server *srv, uint64_t fid, double sim_time,
                                            uint64_t *frame_id);

int shmx_server_publish(shmx_server *srv, double sim_time, uint64_t *frame_id) {
  if (!srv) return shmx__err(SHMX_E_ARG, "server is NULL");
  return publish(srv, srv->next_fid, sim_time, frame_id);
}

int shmx_server_publish_id(shmx_server *srv, uint64_t frame_id, double sim_time) {
  if (!srv) return shmx__err(SHMX_E_ARG, "server is NULL");
  if (!srv->in_frame) return shmx__err(SHMX_E_STATE, "no frame begun");
  if (frame_id < srv->next_fid || frame_id > SHMX_FRAME_ID_MAX)
    return shmx__err(SHMX_E_ARG, "frame id %llu: must be in [%llu, 2^62] (ids only "
                     "increase)", (unsigned long long)frame_id,
                     (unsigned long long)srv->next_fid);
  return publish(srv, frame_id, sim_time, NULL);
}

/* Publish the begun frame as fid (>= next_fid: begin marked the slot busy
 * with next_fid, and any odd seq means "being written"). */
SHMX__ALWAYS_INLINE static inline int publish(shmx_server *srv, uint64_t fid, double sim_time,
                                            uint64_t *frame_id) {
  if (!srv->in_frame) return shmx__err(SHMX_E_STATE, "no frame begun");
  const shmx__seg *s = &srv->seg;
  if (SHMX__UNLIKELY(shmx__seg_truncated(s))) { /* nobody can see it now */
    srv->in_frame = 0;
    return shmx__seg_truncated_err(s);
  }
  struct shmx__hdr *h = shmx__hdr(s);
  struct shmx__slotdesc *d = shmx__slot(s, srv->cur);
  /* The stamp: CLOCK_MONOTONIC via the TSC where that is sound (stamp.c),
   * never earlier than the previous frame's. */
  uint64_t now = shmx__stamp_ns();
  if (now < srv->last_stamp) now = srv->last_stamp;
  srv->last_stamp = now;
  srv->slot_used_ns[srv->cur] = now;
  srv->carried += srv->pos;
  srv->slot_used_at[srv->cur] = srv->carried;
  SHMX__ST(d->frame_id, fid);
  shmx__st_f64(&d->sim_time, sim_time);
  SHMX__ST(d->publish_ns, now);
  SHMX__ST(d->payload_bytes, srv->payload);
  SHMX__ST(d->used_bytes, srv->pos);
  SHMX__ST(d->tlv_count, srv->tlv_count);
  if (s->g.flags & SHMX_CREATE_CRC32C)
    SHMX__ST(d->checksum, shmx__crc32c(0, shmx__frame_data(s, srv->cur), srv->pos));
  atomic_store_explicit(&d->seq, 2 * fid, memory_order_release);
  atomic_store_explicit(&h->latest_slot, srv->cur, memory_order_release);
  atomic_store_explicit(&h->frame_seq, fid, memory_order_release);
  atomic_store_explicit(&h->last_publish_ns, now, memory_order_relaxed);
  /* Wake waiters; a system call only if someone is waiting (see design.md,
   * "wake-ups": the seq_cst RMW pairs with the waiter's increment). */
  atomic_fetch_add(&h->wake_word, 1);
  if (atomic_load(&h->waiters)) {
    /* Readers of format 2.0/2.1 libraries: woken while counted. */
    shmx__futex_wake(s->wake, &h->wake_word, waiting(h));
    /* A reader killed inside its wait stays counted until it is reaped, and
     * until then every publish makes this system call: look for dead
     * readers now and then (at most every SWEEP_INTERVAL_NS). */
    sweep_dead(srv, false);
  } else if (atomic_load(&h->wake_armed) && atomic_exchange(&h->wake_armed, 0)) {
    /* Format 2.2 readers: one wake per request. Readers woken but not yet
     * running cost later publishes nothing; one that sleeps again asks
     * again (and a killed one at most once). */
    shmx__futex_wake(s->wake, &h->wake_word, waiting(h));
  }
  /* A reader armed its event fd since the last ring: one pwrite rings
   * every watcher, and clearing the flag makes the next publish free until
   * someone arms again (the load after the seq_cst RMW above is the
   * futex protocol's; see design.md, "Event fds"). */
  if (atomic_load(&h->fd_armed) && atomic_exchange(&h->fd_armed, 0))
    shmx__notify_ring(s->fd, SHMX__BELL_OFF);
  age_move(srv, srv->cur, true);
  srv->latest = srv->cur;
  srv->next_fid = fid + 1;
  srv->in_frame = 0;
  if (frame_id) *frame_id = fid;
  return 0;
}

int shmx_server_abort(shmx_server *srv) {
  if (!srv) return shmx__err(SHMX_E_ARG, "server is NULL");
  if (!srv->in_frame) return shmx__err(SHMX_E_STATE, "no frame begun");
  /* The slot's old frame may be partly overwritten: mark it empty. */
  atomic_store_explicit(&shmx__slot(&srv->seg, srv->cur)->seq, 0,
                        memory_order_release);
  age_move(srv, srv->cur, false); /* empty now: the first to reuse */
  srv->in_frame = 0;
  return 0;
}

static uint64_t static_used(shmx_server *srv) {
  uint64_t used = atomic_load(&shmx__hdr(&srv->seg)->static_used);
  return used > srv->seg.g.static_cap ? srv->seg.g.static_cap : used;
}

static int static_commit(shmx_server *srv, uint64_t used, uint64_t n) {
  struct shmx__hdr *h = shmx__hdr(&srv->seg);
  SHMX__TRUNCATED_CHECK(&srv->seg);
  if (n == 0)
    return shmx__err(SHMX_E_CAPACITY, "schema area full (%llu of %llu bytes)",
                     (unsigned long long)used,
                     (unsigned long long)srv->seg.g.static_cap);
  atomic_store_explicit(&h->static_used, used + n, memory_order_release);
  atomic_fetch_add_explicit(&h->static_gen, 1, memory_order_release);
  return reparse_schema(srv);
}

int shmx_server_add_stream(shmx_server *srv, const shmx_stream_spec *sp) {
  if (!srv) return shmx__err(SHMX_E_ARG, "server is NULL");
  int rc = shmx__spec_check(sp);
  if (rc) return rc;
  for (int i = 0; i < srv->schema.n; i++) {
    if (srv->schema.streams[i].id == sp->id)
      return shmx__err(SHMX_E_DUPLICATE, "stream id %u exists", sp->id);
    if (strcmp(srv->schema.streams[i].name, sp->name) == 0)
      return shmx__err(SHMX_E_DUPLICATE, "stream name '%s' exists", sp->name);
  }
  uint64_t used = static_used(srv);
  return static_commit(srv, used,
                       spec_encode(shmx__static_area(&srv->seg) + used,
                                   srv->seg.g.static_cap - used, sp));
}

int shmx_server_static_append(shmx_server *srv, const void *data, uint32_t len) {
  if (!srv) return shmx__err(SHMX_E_ARG, "server is NULL");
  if (len && !data) return shmx__err(SHMX_E_ARG, "data is NULL");
  uint64_t used = static_used(srv);
  return static_commit(srv, used,
                       shmx__record_encode(shmx__static_area(&srv->seg) + used,
                                           srv->seg.g.static_cap - used,
                                           SHMX_TLV_STATIC_USER, data, len,
                                           NULL, 0, NULL, 0));
}

int shmx_server_poll_control(shmx_server *srv, shmx_control_msg *msgs, int max,
                             int *corrupt_rings) {
  if (!srv || (max > 0 && !msgs)) return shmx__err(SHMX_E_ARG, "bad arguments");
  if (corrupt_rings) *corrupt_rings = 0;
  SHMX__TRUNCATED_CHECK(&srv->seg);
  sweep_dead(srv, false);
  const shmx__seg *s = &srv->seg;
  uint64_t cap = s->g.ring_bytes, used = 0;
  uint64_t *offs = NULL;
  int n = 0;
  if (max <= 0) return 0;
  offs = malloc(sizeof *offs * (size_t)max);
  if (!offs) return shmx__err(SHMX_E_ENOMEM, "poll");
  for (uint32_t k = 0; k < s->g.reader_slots && n < max; k++) {
    uint32_t i = (srv->poll_rr + k) % s->g.reader_slots;
    struct shmx__reader *r = shmx__rdr(s, i);
    uint64_t id = atomic_load(&r->owner);
    if (id == 0 || id == SHMX__REAPING ||
        atomic_load_explicit(&r->state, memory_order_acquire) != SHMX__RD_ACTIVE)
      continue;
    while (n < max) {
      if (srv->msgbuf_cap - used < cap) {
        uint64_t nc = srv->msgbuf_cap * 2;
        uint8_t *nb = realloc(srv->msgbuf, (size_t)nc);
        if (!nb) break;
        srv->msgbuf = nb;
        srv->msgbuf_cap = nc;
      }
      uint32_t type, len;
      int rc = shmx__ring_pop(s, i, srv->msgbuf + used, cap, &type, &len);
      if (rc == 0) break;
      if (rc < 0) {
        if (corrupt_rings) (*corrupt_rings)++;
        break;
      }
      msgs[n].reader_id = id;
      msgs[n].type = type;
      msgs[n].len = len;
      offs[n] = used;
      used += (len + 7u) & ~7ull;
      n++;
    }
  }
  srv->poll_rr = (srv->poll_rr + 1) % s->g.reader_slots;
  for (int k = 0; k < n; k++) msgs[k].data = srv->msgbuf + offs[k];
  free(offs);
  return n;
}

int shmx_server_readers(shmx_server *srv, shmx_reader_info *out, int max) {
  if (!srv || (max > 0 && !out)) return shmx__err(SHMX_E_ARG, "bad arguments");
  sweep_dead(srv, true);
  int n = 0;
  for (uint32_t i = 0; i < srv->seg.g.reader_slots && n < max; i++) {
    shmx__reader_info(&srv->seg, i, &out[n]);
    if (out[n].in_use) out[n].alive = shmx__reg_alive(&srv->seg, i);
    n++;
  }
  return n;
}

int shmx_server_reap(shmx_server *srv, uint64_t now_ns, uint64_t timeout_ns) {
  if (!srv) return shmx__err(SHMX_E_ARG, "server is NULL");
  int n = sweep_dead(srv, true);
  if (timeout_ns == 0) return n;
  if (now_ns == 0) now_ns = shmx__mono_ns();
  for (uint32_t i = 0; i < srv->seg.g.reader_slots; i++) {
    struct shmx__reader *r = shmx__rdr(&srv->seg, i);
    uint64_t id = atomic_load(&r->owner);
    if (id == 0 || id == SHMX__REAPING) continue;
    uint64_t hb = atomic_load(&r->heartbeat_ns);
    if (now_ns > hb && now_ns - hb > timeout_ns) {
      n += shmx__reg_reap(&srv->seg, i, id);
    }
  }
  return n;
}

int shmx_server_header(shmx_server *srv, shmx_header_info *out) {
  if (!srv || !out) return shmx__err(SHMX_E_ARG, "bad arguments");
  shmx__header_info(&srv->seg, out);
  SHMX__TRUNCATED_CHECK(&srv->seg);
  return 0;
}

const char *shmx_server_name(const shmx_server *srv) {
  return srv ? srv->seg.name : "";
}

int shmx_server_streams(shmx_server *srv, const shmx_stream_info **streams,
                        int *n) {
  if (!srv || !streams || !n) return shmx__err(SHMX_E_ARG, "bad arguments");
  *streams = srv->schema.streams;
  *n = srv->schema.n;
  return 0;
}

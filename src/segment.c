/*
 * segment.c -- geometry of a channel segment, header validation, attach.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "owner.h"
#include "segment.h"

static bool is_pow2(uint64_t v) { return v && !(v & (v - 1)); }

/* Geometry from parameters, with slot_bytes/max_tlv given. */
static int geom_layout(shmx__geom *g) {
  uint64_t t, off;
  g->pin_words = (g->reader_slots + 63) / 64;
  g->slotdesc_stride = 64 + 64 * (((g->pin_words - 1) * 8 + 63) / 64);
  g->static_off = SHMX__HDR_BYTES;
  if (!shmx__add_ok(g->static_off, g->static_cap, &t) ||
      !shmx__align_ok(t, 64, &g->slotdesc_off) ||
      !shmx__mul_ok(g->slots, g->slotdesc_stride, &t) ||
      !shmx__add_ok(g->slotdesc_off, t, &off) ||
      !shmx__align_ok(off, 64, &g->readers_off) ||
      !shmx__mul_ok(g->reader_slots, SHMX__READER_STRIDE, &t) ||
      !shmx__add_ok(g->readers_off, t, &off) ||
      !shmx__align_ok(off, 64, &g->control_off) ||
      !shmx__mul_ok(g->reader_slots, g->ring_bytes, &t) ||
      !shmx__add_ok(g->control_off, t, &off) ||
      !shmx__align_ok(off, SHMX__FRAMES_ALIGN, &g->frames_off) ||
      !shmx__mul_ok(g->slots, g->slot_bytes, &t) ||
      !shmx__add_ok(g->frames_off, t, &g->total) || g->total > INT64_MAX)
    return SHMX_E_OVERFLOW;
  return 0;
}

int shmx__geom_compute(uint32_t slots, uint32_t readers, uint64_t static_cap,
                       uint64_t frame_cap, uint64_t ring_bytes,
                       uint32_t n_streams, shmx__geom *g) {
  memset(g, 0, sizeof *g);
  if (slots < 2 || slots > SHMX__MAX_SLOTS)
    return shmx__err(SHMX_E_ARG, "slots=%u (must be 2..%u)", slots,
                     SHMX__MAX_SLOTS);
  if (readers < 1 || readers > SHMX__MAX_READERS)
    return shmx__err(SHMX_E_ARG, "reader_slots=%u (must be 1..%u)", readers,
                     SHMX__MAX_READERS);
  if (static_cap < 64 || static_cap > SHMX__MAX_STATIC)
    return shmx__err(SHMX_E_ARG, "static_bytes_cap=%llu (must be 64..%llu)",
                     (unsigned long long)static_cap,
                     (unsigned long long)SHMX__MAX_STATIC);
  if (frame_cap < 1 || frame_cap > SHMX__MAX_FRAME)
    return shmx__err(SHMX_E_ARG, "frame_bytes_cap=%llu (must be 1..%llu)",
                     (unsigned long long)frame_cap,
                     (unsigned long long)SHMX__MAX_FRAME);
  if (ring_bytes < SHMX__MIN_RING || ring_bytes > SHMX__MAX_RING)
    return shmx__err(SHMX_E_ARG, "control_per_reader=%llu (must be %u..%llu)",
                     (unsigned long long)ring_bytes, SHMX__MIN_RING,
                     (unsigned long long)SHMX__MAX_RING);
  uint64_t rb = 1;
  while (rb < ring_bytes) rb <<= 1;
  g->slots = slots;
  g->reader_slots = readers;
  if (!shmx__align_ok(static_cap, 8, &g->static_cap))
    return shmx__err(SHMX_E_OVERFLOW, "static_bytes_cap");
  g->frame_cap = frame_cap;
  g->ring_bytes = rb;
  /* Room for every record header and its alignment padding. */
  uint32_t mt = n_streams * 2;
  if (mt < 16) mt = 16;
  if (mt > SHMX_FRAME_MAX_STREAMS) mt = SHMX_FRAME_MAX_STREAMS;
  g->max_tlv = mt;
  uint64_t t;
  if (!shmx__add_ok(frame_cap, (uint64_t)mt * (SHMX__TLV_HDR + SHMX__DATA_ALIGN),
                    &t) ||
      !shmx__align_ok(t, SHMX__SLOT_ALIGN, &g->slot_bytes))
    return shmx__err(SHMX_E_OVERFLOW, "frame_bytes_cap=%llu",
                     (unsigned long long)frame_cap);
  int rc = geom_layout(g);
  if (rc) return shmx__err(rc, "segment size for this configuration");
  return 0;
}

#define BAD(field, ...) shmx__err(SHMX_E_CORRUPT, "header field " field __VA_ARGS__)

int shmx__geom_from_header(const struct shmx__hdr *h, uint64_t file_size,
                           shmx__geom *g) {
  memset(g, 0, sizeof *g);
  if (h->magic != SHMX__MAGIC) return BAD("magic");
  if (h->version_major != SHMX_FORMAT_MAJOR)
    return shmx__err(SHMX_E_VERSION, "segment format %u.%u, library reads %u.x",
                     h->version_major, h->version_minor, SHMX_FORMAT_MAJOR);
  if (h->header_bytes != SHMX__HDR_BYTES) return BAD("header_bytes");
  if (h->slots < 2 || h->slots > SHMX__MAX_SLOTS) return BAD("slots");
  if (h->reader_slots < 1 || h->reader_slots > SHMX__MAX_READERS)
    return BAD("reader_slots");
  if (h->static_bytes_cap < 64 || h->static_bytes_cap > SHMX__MAX_STATIC ||
      (h->static_bytes_cap & 7))
    return BAD("static_bytes_cap");
  if (h->frame_bytes_cap < 1 || h->frame_bytes_cap > SHMX__MAX_FRAME)
    return BAD("frame_bytes_cap");
  if (!is_pow2(h->control_per_reader) ||
      h->control_per_reader < SHMX__MIN_RING ||
      h->control_per_reader > SHMX__MAX_RING)
    return BAD("control_per_reader");
  if (h->max_tlv < 1 || h->max_tlv > SHMX_FRAME_MAX_STREAMS) return BAD("max_tlv");
  if (h->slot_bytes % SHMX__SLOT_ALIGN ||
      h->slot_bytes < h->frame_bytes_cap ||
      h->slot_bytes - h->frame_bytes_cap <
          (uint64_t)h->max_tlv * (SHMX__TLV_HDR + SHMX__DATA_ALIGN))
    return BAD("slot_bytes");
  g->slots = h->slots;
  g->reader_slots = h->reader_slots;
  g->static_cap = h->static_bytes_cap;
  g->frame_cap = h->frame_bytes_cap;
  g->ring_bytes = h->control_per_reader;
  g->max_tlv = h->max_tlv;
  g->slot_bytes = h->slot_bytes;
  g->flags = h->flags;
  if (geom_layout(g)) return BAD("sizes (overflow)");
  if (h->pin_words != g->pin_words) return BAD("pin_words");
  if (h->slotdesc_stride != g->slotdesc_stride) return BAD("slotdesc_stride");
  if (h->static_off != g->static_off) return BAD("static_off");
  if (h->slotdesc_off != g->slotdesc_off) return BAD("slotdesc_off");
  if (h->readers_off != g->readers_off) return BAD("readers_off");
  if (h->control_off != g->control_off) return BAD("control_off");
  if (h->frames_off != g->frames_off) return BAD("frames_off");
  if (h->total_bytes != g->total) return BAD("total_bytes");
  if (file_size < g->total)
    return shmx__err(SHMX_E_CORRUPT, "segment file is %llu bytes, header says %llu",
                     (unsigned long long)file_size, (unsigned long long)g->total);
  return 0;
}

int shmx__seg_owner_alive(int fd) {
  int r = shmx__owner_alive_fd(fd);
  return r < 0 ? -1 : r;
}

/* Open the session's lock file: a reader needs it (its liveness lock), a
 * monitor uses it if it may. It must be a regular file of the segment's
 * owner and the very file the producer recorded in the header: a file of
 * a later session (the producer restarted between our two opens) is not
 * ours. Leaves s->lock_fd -1 if it cannot be had; returns -EACCES if a
 * writer may not open it (the modes were changed by hand). */
static int open_lock_file(shmx__seg *s, const struct shmx__hdr *h, int ro) {
  char file[SHMX__FILE_CAP];
  shmx__lock_file(s->name, file, sizeof file);
  shmx__fid id;
  int fd = shmx__shm_open(file, ro ? O_RDONLY : O_WRONLY, 0, &id);
  if (fd == -EACCES && ro) fd = shmx__shm_open(file, O_WRONLY, 0, &id);
  if (fd < 0) return ro || fd != -EACCES ? 0 : fd;
  if (id.uid != s->uid || id.dev != h->lock_dev || id.ino != h->lock_ino) {
    shmx__close(fd);
    return 0;
  }
  s->lock_fd = fd;
  return 0;
}

int shmx__seg_attach(const char *name, int mode, shmx__seg *s) {
  char path[SHMX__FILE_CAP];
  int rc;
  memset(s, 0, sizeof *s);
  s->fd = s->lock_fd = -1;
  s->guard_ctl = s->guard_frames = -1;
  if ((rc = shmx_name_check(name))) return rc;
  shmx__seg_file(name, path, sizeof path);
  snprintf(s->name, sizeof s->name, "%s", name);
  int ro = mode == SHMX__ATTACH_RO;
  shmx__fid id;
  int fd = shmx__shm_open(path, ro ? O_RDONLY : O_RDWR, 0, &id);
  if (fd == -ENOENT) return shmx__err(SHMX_E_NOCHANNEL, "channel '%s'", name);
  if (fd == SHMX_E_CORRUPT) return fd; /* not a regular file: detail set */
  if (fd < 0) return shmx__syserr(-fd, "channel '%s': open", name);
  s->fd = fd;
  s->dev = id.dev;
  s->ino = id.ino;
  s->uid = id.uid;

  /* Wait briefly for a producer that is still initialising the segment. */
  struct shmx__hdr h;
  uint64_t size = 0;
  for (int tries = 0;; tries++) {
    if ((rc = shmx__fd_size(fd, &size))) goto fail_sys;
    int ready = 0;
    if (size >= SHMX__HDR_BYTES) {
      /* pread, not a mapping: a file truncated meanwhile reads short here
       * instead of raising SIGBUS. */
      int64_t n = shmx__fd_pread(fd, &h, sizeof h, 0);
      if (n == -ENOENT && shmx__seg_owner_alive(fd) == 0) {
        /* Windows: the memory of a dead producer's segment is gone once
         * nobody maps it; only its file is left. */
        rc = shmx__err(SHMX_E_DEAD, "channel '%s': its producer is gone", name);
        goto fail;
      }
      if (n < 0) { rc = (int)n; goto fail_sys; }
      ready = n == (int64_t)sizeof h && h.state != SHMX__ST_INIT;
    }
    if (ready) break;
    if (ro && size >= SHMX__HDR_BYTES && tries >= 20) break; /* inspect anyway */
    if (tries >= 20) {
      rc = shmx__err(size < SHMX__HDR_BYTES ? SHMX_E_CORRUPT : SHMX_E_NOCHANNEL,
                     "channel '%s': segment not initialised (%llu bytes)", name,
                     (unsigned long long)size);
      goto fail;
    }
    shmx__sleep_ns(10 * 1000 * 1000);
  }
  if ((rc = shmx__geom_from_header(&h, size, &s->g))) {
    shmx__err(rc, "channel '%s': %s", name, shmx_errmsg());
    goto fail;
  }
  s->session_id = h.session_id;
  s->format_minor = h.version_minor;
  s->owner_pid = h.owner_pid;
  s->writable = !ro;
  if ((rc = open_lock_file(s, &h, ro))) {
    rc = shmx__syserr(-rc, "channel '%s': open its lock file", name);
    goto fail;
  }
  void *p;
  if ((rc = shmx__map(fd, 0, s->g.frames_off, ro ? 1 : 3, !ro, &p)))
    goto fail_sys;
  s->ctl = p;
  /* Readers pre-fault frame pages (no first-touch faults on the hot path)
   * unless the area is huge; then pages fault in on first use. */
  uint64_t flen = s->g.total - s->g.frames_off;
  if ((rc = shmx__map(fd, s->g.frames_off, flen, 1,
                      !ro && flen <= SHMX__READER_PREFAULT_MAX, &p))) {
    shmx__unmap(s->ctl, s->g.frames_off);
    s->ctl = NULL;
    goto fail_sys;
  }
  s->frames = p;
  s->guard_ctl = shmx__guard_add(s->ctl, s->g.frames_off, ro ? 1 : 3, &s->truncated);
  s->guard_frames = shmx__guard_add(s->frames, flen, 1, &s->truncated);
  return 0;
fail_sys:
  rc = shmx__syserr(-rc, "channel '%s': map", name);
fail:
  shmx__close(fd);
  shmx__close(s->lock_fd);
  s->fd = s->lock_fd = -1;
  return rc;
}

void shmx__seg_detach(shmx__seg *s) {
  shmx__guard_del(s->guard_ctl);
  shmx__guard_del(s->guard_frames);
  s->guard_ctl = s->guard_frames = -1;
  if (s->ctl) shmx__unmap(s->ctl, s->g.frames_off);
  if (s->frames) shmx__unmap(s->frames, s->g.total - s->g.frames_off);
  shmx__close(s->fd);
  shmx__close(s->lock_fd);
  shmx__wake_close(s->wake);
  s->wake = NULL;
  s->wake_tried = 0;
  s->ctl = s->frames = NULL;
  s->fd = s->lock_fd = -1;
}

int shmx__seg_truncated_err(const shmx__seg *s) {
  return shmx__err(SHMX_E_CORRUPT, "channel '%s': segment truncated by another "
                   "process (its memory now reads as zeros; reopen the channel)",
                   s->name);
}

void shmx__seg_check_size(shmx__seg *s) {
  uint64_t size;
  if (shmx__fd_size(s->fd, &size) == 0 && size < s->g.total)
    atomic_store(&s->truncated, 1);
}

uint32_t shmx__slot_pins(const shmx__seg *s, uint32_t i) {
  uint32_t n = 0;
  for (uint32_t w = 0; w < s->g.pin_words; w++)
    n += (uint32_t)__builtin_popcountll(atomic_load(shmx__pin_word(s, i, w)));
  return n;
}

void shmx__header_info(const shmx__seg *s, shmx_header_info *o) {
  struct shmx__hdr *h = shmx__hdr(s);
  memset(o, 0, sizeof *o);
  o->magic = SHMX__MAGIC;
  o->version_major = SHMX__LD(h->version_major);
  o->version_minor = SHMX__LD(h->version_minor);
  o->session_id = s->session_id;
  o->owner_pid = s->owner_pid;
  o->owner_alive = s->is_owner ? 1 : shmx__seg_owner_alive(s->fd);
  o->closed = atomic_load(&h->state) == SHMX__ST_CLOSED;
  o->flags = s->g.flags;
  o->slots = s->g.slots;
  o->reader_slots = s->g.reader_slots;
  o->static_bytes_cap = s->g.static_cap;
  o->static_bytes_used = atomic_load(&h->static_used);
  o->frame_bytes_cap = s->g.frame_cap;
  o->slot_bytes = s->g.slot_bytes;
  o->control_per_reader = s->g.ring_bytes;
  o->total_bytes = s->g.total;
  o->frame_seq = atomic_load(&h->frame_seq);
  o->last_publish_ns = atomic_load(&h->last_publish_ns);
  o->static_gen = atomic_load(&h->static_gen);
  o->waiters = atomic_load(&h->waiters) + atomic_load(&h->sleepers);
  o->fd_armed = atomic_load(&h->fd_armed);
  /* Counted from the reader slots, not taken from the shared counter: a
   * reader killed mid-attach or mid-close can leave that counter off by one
   * until it is reaped, the slots never are. */
  uint32_t n = 0;
  for (uint32_t i = 0; i < s->g.reader_slots; i++) {
    struct shmx__reader *r = shmx__rdr(s, i);
    uint64_t own = atomic_load(&r->owner);
    n += own != 0 && own != UINT64_MAX &&
         atomic_load(&r->state) == SHMX__RD_ACTIVE;
  }
  o->readers_connected = n;
  o->create_ns = SHMX__LD(h->create_ns);
}

void shmx__reader_info(const shmx__seg *s, uint32_t i, shmx_reader_info *o) {
  struct shmx__reader *r = shmx__rdr(s, i);
  memset(o, 0, sizeof *o);
  o->slot = i;
  o->reader_id = atomic_load(&r->owner);
  o->in_use = o->reader_id != 0 &&
              atomic_load(&r->state) == SHMX__RD_ACTIVE;
  o->alive = -1;
  o->pid = SHMX__LD(r->pid);
  o->heartbeat_ns = atomic_load(&r->heartbeat_ns);
  o->last_frame_seen = atomic_load(&r->last_frame_seen);
  o->frames_read = atomic_load(&r->frames_read);
  o->frames_dropped = atomic_load(&r->frames_dropped);
  o->generation = atomic_load(&r->generation);
}

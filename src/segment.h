/*
 * segment.h -- a mapped channel segment and its validated geometry.
 *
 * Geometry (offsets, sizes, counts) is computed once: by create from the
 * config, or by attach from a COPY of the header that is then checked
 * against what create would have computed and against the file size. After
 * that nothing reads geometry from shared memory again, so a process that
 * scribbles over the header cannot move a reader out of bounds.
 */
#ifndef SHMX_SEGMENT_H
#define SHMX_SEGMENT_H

#include <string.h>

#include "format.h"
#include "internal.h"

typedef struct shmx__geom {
  uint32_t slots, reader_slots, pin_words, slotdesc_stride, max_tlv, flags;
  uint64_t static_cap, frame_cap, slot_bytes, ring_bytes;
  uint64_t static_off, slotdesc_off, readers_off, control_off, frames_off;
  uint64_t total;
} shmx__geom;

typedef struct shmx__seg {
  int fd;
  int lock_fd;             /* the session's lock file (owner.h), -1 if we
                              could not open it (a monitor) */
  int writable;            /* control part mapped read-write */
  int is_owner;            /* we are the producer: fd holds the owner lock */
  uint32_t uid;            /* owner of the segment file */
  int guard_ctl, guard_frames; /* SIGBUS guard handles (posix/guard.c) */
  _Atomic uint32_t truncated;  /* set by the guard: another process shrank
                                  the file under our mappings */
  uint8_t *ctl;            /* [0, frames_off): header, schema, slots, readers */
  uint8_t *frames;         /* [frames_off, total): frame data */
  shmx__geom g;
  uint64_t session_id;
  int32_t owner_pid;
  uint32_t format_minor;    /* version_minor of the header at attach */
  uint64_t dev, ino;       /* identity of the segment file */
  void *wake;              /* what waits sleep on (shmx__wake_open) */
  int wake_tried;          /* a reader tried to open it */
  char name[SHMX_NAME_MAX + 1];
} shmx__seg;

/* Fill g from parameters; max_tlv and slot_bytes are derived. Errors:
 * SHMX_E_ARG (out of range), SHMX_E_OVERFLOW. */
int shmx__geom_compute(uint32_t slots, uint32_t readers, uint64_t static_cap,
                       uint64_t frame_cap, uint64_t ring_bytes,
                       uint32_t n_streams, shmx__geom *g);
/* Validate a header copy against the file size; fill g. SHMX_E_CORRUPT or
 * SHMX_E_VERSION with a detail naming the bad field. */
int shmx__geom_from_header(const struct shmx__hdr *h, uint64_t file_size,
                           shmx__geom *g);

enum { SHMX__ATTACH_RW = 0, SHMX__ATTACH_RO = 1 };
/* Open and map channel `name` (client: RW control + RO frames; inspector:
 * all RO). Waits up to ~200 ms for a segment still being initialised. */
int shmx__seg_attach(const char *name, int mode, shmx__seg *s);
void shmx__seg_detach(shmx__seg *s);

/* 1 if a live producer holds the segment's lock, 0 if not, -1 unknown.
 * Never on the producer's own fd (its own lock never conflicts). */
int shmx__seg_owner_alive(int fd);

static inline struct shmx__hdr *shmx__hdr(const shmx__seg *s) {
  return (struct shmx__hdr *)(void *)s->ctl;
}
static inline struct shmx__slotdesc *shmx__slot(const shmx__seg *s,
                                                uint32_t i) {
  return (struct shmx__slotdesc *)(void *)(s->ctl + s->g.slotdesc_off +
                                           (uint64_t)i * s->g.slotdesc_stride);
}
/* Pin bitmap word w of frame slot i (word 0 lives in the descriptor line). */
static inline _Atomic uint64_t *shmx__pin_word(const shmx__seg *s, uint32_t i,
                                               uint32_t w) {
  struct shmx__slotdesc *d = shmx__slot(s, i);
  if (w == 0) return &d->pin0;
  return (_Atomic uint64_t *)(void *)((uint8_t *)d + 64 + (uint64_t)(w - 1) * 8);
}
static inline struct shmx__reader *shmx__rdr(const shmx__seg *s, uint32_t i) {
  return (struct shmx__reader *)(void *)(s->ctl + s->g.readers_off +
                                         (uint64_t)i * SHMX__READER_STRIDE);
}
static inline uint8_t *shmx__ring(const shmx__seg *s, uint32_t i) {
  return s->ctl + s->g.control_off + (uint64_t)i * s->g.ring_bytes;
}
static inline uint8_t *shmx__frame_data(const shmx__seg *s, uint32_t i) {
  return s->frames + (uint64_t)i * s->g.slot_bytes;
}
static inline uint8_t *shmx__static_area(const shmx__seg *s) {
  return s->ctl + s->g.static_off;
}

/* Relaxed atomic access to plain fields shared with another process. */
#define SHMX__LD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)
#define SHMX__ST(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELAXED)

/* Doubles cross the boundary as their bit pattern in a relaxed u64. */
static inline void shmx__st_f64(double *p, double v) {
  uint64_t b;
  memcpy(&b, &v, 8);
  __atomic_store_n((uint64_t *)(void *)p, b, __ATOMIC_RELAXED);
}
static inline double shmx__ld_f64(const double *p) {
  uint64_t b = __atomic_load_n((const uint64_t *)(const void *)p, __ATOMIC_RELAXED);
  double v;
  memcpy(&v, &b, 8);
  return v;
}

/* 1 once another process truncated the segment under our mappings (they
 * now read zeros): every later call reports it. One relaxed load. */
static inline int shmx__seg_truncated(const shmx__seg *s) {
  return (int)atomic_load_explicit(&s->truncated, memory_order_relaxed);
}
int shmx__seg_truncated_err(const shmx__seg *s);
/* Slow paths only (one fstat): flag the segment truncated if its file is
 * now shorter than the geometry, so a cut below pages this process has not
 * touched is seen too. */
void shmx__seg_check_size(shmx__seg *s);
#define SHMX__TRUNCATED_CHECK(s)                                               \
  do {                                                                         \
    if (SHMX__UNLIKELY(shmx__seg_truncated(s))) return shmx__seg_truncated_err(s); \
  } while (0)

/* Count pins on frame slot i (sum of bits). */
uint32_t shmx__slot_pins(const shmx__seg *s, uint32_t i);
/* reader.waiting: how the reader is counted while in futex wait. */
#define SHMX__WAIT_COUNTED 1 /* in header.waiters (2.0/2.1 protocol) */
#define SHMX__WAIT_ARMED 2   /* in header.sleepers (2.2 protocol) */

/* Uncount a reader that left (or died in) its futex wait; whoever
 * exchanges its flag first decrements, once. */
static inline void shmx__unwait(const shmx__seg *s, struct shmx__reader *r) {
  struct shmx__hdr *h = shmx__hdr(s);
  uint32_t was = atomic_exchange(&r->waiting, 0);
  if (was == SHMX__WAIT_COUNTED) atomic_fetch_sub(&h->waiters, 1);
  else if (was == SHMX__WAIT_ARMED) atomic_fetch_sub(&h->sleepers, 1);
}

/* True if any reader pins frame slot i. */
static inline bool shmx__slot_pinned(const shmx__seg *s, uint32_t i) {
  for (uint32_t w = 0; w < s->g.pin_words; w++)
    if (atomic_load(shmx__pin_word(s, i, w))) return true;
  return false;
}

/* Fill a public header info from the segment (all loads; no trust needed:
 * values are only reported). */
void shmx__header_info(const shmx__seg *s, shmx_header_info *out);
/* Reader slot info i (reports; loads only). Does not probe liveness. */
void shmx__reader_info(const shmx__seg *s, uint32_t i, shmx_reader_info *out);

#endif /* SHMX_SEGMENT_H */

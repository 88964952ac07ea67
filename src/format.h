/*
 * format.h -- the shared segment layout, byte by byte.
 *
 * This is the only file that knows offsets. docs/format.md describes the same
 * layout in prose; the static_asserts below keep the two honest. All integers
 * are little-endian host order (the segment never leaves the machine).
 *
 *   +--------------------+ 0
 *   | header (4096 B)    |   struct shmx__hdr
 *   +--------------------+ static_off = 4096
 *   | schema area        |   static_bytes_cap bytes of TLV records
 *   +--------------------+ slotdesc_off (64-aligned)
 *   | slot descriptors   |   slots x slotdesc_stride (seqlock + pin bitmap)
 *   +--------------------+ readers_off (64-aligned)
 *   | reader slots       |   reader_slots x 192 B
 *   +--------------------+ control_off (64-aligned)
 *   | control rings      |   reader_slots x control_per_reader
 *   +--------------------+ frames_off (64 KiB-aligned)
 *   | frame slots        |   slots x slot_bytes (read-only for readers)
 *   +--------------------+ total_bytes
 */
#ifndef SHMX_FORMAT_H
#define SHMX_FORMAT_H

#include <assert.h>
#include <stdalign.h>
#include <stddef.h>
#include <stdint.h>

#include "shmx.h"

/* "SHMXCHN1" read as a little-endian u64. */
#define SHMX__MAGIC 0x314E48435848534DULL

#define SHMX__HDR_BYTES 4096u
/* Offset of the bell byte (header line 6; see struct shmx__hdr). */
#define SHMX__BELL_OFF 384u
#define SHMX__FRAMES_ALIGN 65536u   /* so readers can map frames read-only */
#define SHMX__SLOT_ALIGN 4096u      /* slot_bytes is a multiple of this */
#define SHMX__DATA_ALIGN 64u        /* stream data alignment in a frame */
#define SHMX__TLV_HDR 64u           /* frame TLV record header size */
#define SHMX__READER_STRIDE 192u
#define SHMX__MAX_SLOTS 1024u
#define SHMX__MAX_READERS 1024u
#define SHMX__MIN_RING 64u
#define SHMX__MAX_RING (1ull << 30)
#define SHMX__MAX_STATIC (1ull << 30)
#define SHMX__MAX_FRAME (1ull << 40)  /* 1 TiB per frame: far past RAM */
#define SHMX__RING_MSG_HDR 8u
#define SHMX__READER_PREFAULT_MAX (256ull << 20) /* not format: reader policy */

/* header.state */
enum { SHMX__ST_INIT = 0, SHMX__ST_LIVE = 1, SHMX__ST_CLOSED = 2 };
/* reader.state */
enum { SHMX__RD_FREE = 0, SHMX__RD_CLAIMING = 1, SHMX__RD_ACTIVE = 2 };

#define SHMX__NO_SLOT 0xFFFFFFFFu
#define SHMX__LOCK_BYTES 8u /* liveness lock identities per reader slot */
/* Reader lock identities live in the lock file (owner.h), not the segment:
 * session s uses bytes [BASE + (s mod 2^30) * SPAN, ... + SPAN), so readers
 * of an earlier session that still hold theirs never collide with this
 * one's. */
#define SHMX__RLOCK_BASE 4096u
#define SHMX__RLOCK_SPAN (SHMX__MAX_READERS * SHMX__LOCK_BYTES)

/*
 * Header. Lines 0-1 are immutable once state leaves INIT (written by create
 * before the release-store of state=LIVE). Line 2 is written only by the
 * producer. Line 3 is the futex word (producer) and waiter count (readers).
 * Line 4 is written by readers at attach/detach.
 */
struct shmx__hdr {
  /* line 0: identity and geometry (immutable) */
  uint64_t magic;              /* 0   SHMX__MAGIC */
  uint16_t version_major;      /* 8   SHMX_FORMAT_MAJOR */
  uint16_t version_minor;      /* 10  SHMX_FORMAT_MINOR */
  uint32_t header_bytes;       /* 12  SHMX__HDR_BYTES */
  uint64_t session_id;         /* 16  random per create, never 0 */
  uint64_t total_bytes;        /* 24  segment size */
  int32_t owner_pid;           /* 32  producer pid */
  uint32_t flags;              /* 36  enum shmx_create_flags */
  uint32_t slots;              /* 40  frame slots */
  uint32_t reader_slots;       /* 44  reader slots */
  uint64_t static_bytes_cap;   /* 48  schema area bytes */
  uint64_t frame_bytes_cap;    /* 56  max stream bytes per frame */
  /* line 1: offsets (immutable) */
  uint64_t slot_bytes;         /* 64  frame slot stride */
  uint64_t control_per_reader; /* 72  ring bytes per reader (power of 2) */
  uint64_t static_off;         /* 80 */
  uint64_t slotdesc_off;       /* 88 */
  uint64_t readers_off;        /* 96 */
  uint64_t control_off;        /* 104 */
  uint64_t frames_off;         /* 112 */
  uint64_t create_ns;          /* 120 CLOCK_REALTIME at create */
  /* line 2: producer-written */
  _Atomic uint32_t state;      /* 128 SHMX__ST_* */
  _Atomic uint32_t latest_slot;/* 132 slot of frame_seq, SHMX__NO_SLOT */
  _Atomic uint64_t frame_seq;  /* 136 newest published frame id */
  _Atomic uint64_t last_publish_ns; /* 144 */
  _Atomic uint64_t static_used;/* 152 bytes of schema records */
  _Atomic uint32_t static_gen; /* 160 bumps on every schema append */
  uint32_t slotdesc_stride;    /* 164 immutable: slot descriptor stride */
  uint32_t pin_words;          /* 168 immutable: u64 words of pin bitmap */
  uint32_t max_tlv;            /* 172 immutable: records a frame may hold */
  uint8_t pad2[16];            /* 176 */
  /* line 3: wake-up */
  _Atomic uint32_t wake_word;  /* 192 futex word: bumps on publish/close */
  _Atomic uint32_t waiters;    /* 196 readers inside futex wait */
  _Atomic uint32_t fd_armed;   /* 200 1 if a reader armed its event fd
                                  since the last ring (format 2.1) */
  _Atomic uint32_t sleepers;   /* 204 format-2.2 readers inside futex wait */
  _Atomic uint32_t wake_armed; /* 208 1 if a format-2.2 reader went to sleep
                                  since the producer last woke (2.2) */
  uint8_t pad3[44];            /* 212 */
  /* line 4: reader-written */
  _Atomic uint32_t readers_connected; /* 256 */
  uint32_t pad4a;              /* 260 */
  _Atomic uint64_t next_reader_id;    /* 264 last reader id handed out */
  uint8_t pad4[48];            /* 272 */
  /* line 5: the session's lock file (immutable; see owner.h) */
  uint64_t lock_dev;           /* 320 device and inode of .shmx.NAME.lock */
  uint64_t lock_ino;           /* 328 */
  uint8_t pad5[48];            /* 336 zero */
  /* line 6: the bell (format 2.1). The producer pwrite()s one zero byte at
   * SHMX__BELL_OFF when fd_armed is set: the write, not the value, is the
   * signal (an inotify IN_MODIFY event on the segment file). */
  uint8_t bell[64];            /* 384 zero */
  uint8_t reserved[SHMX__HDR_BYTES - 448]; /* 448 zero */
};

/* Frame slot descriptor: a seqlock. seq == 2*frame_id when slot holds a
 * complete frame; 2*frame_id - 1 while frame_id is being written; 0 empty. */
struct shmx__slotdesc {
  _Atomic uint64_t seq;        /* 0 */
  uint64_t frame_id;           /* 8  */
  double sim_time;             /* 16 */
  uint64_t publish_ns;         /* 24 */
  uint64_t payload_bytes;      /* 32 sum of stream bytes */
  uint64_t used_bytes;         /* 40 bytes of TLV area in use */
  uint32_t tlv_count;          /* 48 */
  uint32_t checksum;           /* 52 CRC32C of [0, used_bytes) if enabled */
  _Atomic uint64_t pin0;       /* 56 pin bitmap word 0: bit r set while
                                  reader slot r holds this frame */
  /* 64: pin bitmap words 1 .. pin_words-1 (reader slots 64 and up). Word 0
   * shares the line with seq: a reader's pin RMW brings in the line it
   * reads next, one cache miss instead of two. */
};

/* Frame TLV record header (64 B); the data follows it at +64. The next
 * record starts at the next 64-aligned offset after the data. */
struct shmx__tlv {
  uint32_t type;               /* 0  SHMX_TLV_FRAME_STREAM */
  uint32_t stream_id;          /* 4 */
  uint64_t elem_count;         /* 8 */
  uint64_t bytes;              /* 16 */
  uint8_t pad[40];             /* 24 */
};

/* Reader slot. Line 0 written by the reader (claim by CAS on owner);
 * line 1 by the reader (ring head); line 2 by the producer (ring tail). */
struct shmx__reader {
  _Atomic uint64_t owner;      /* 0   reader_id, 0 when free */
  _Atomic uint32_t generation; /* 8   bumps on claim and on release/reap */
  int32_t pid;                 /* 12 */
  _Atomic uint64_t heartbeat_ns;   /* 16 */
  _Atomic uint64_t last_frame_seen;/* 24 */
  _Atomic uint64_t frames_read;    /* 32 */
  _Atomic uint64_t frames_dropped; /* 40 */
  uint64_t attach_ns;          /* 48 */
  _Atomic uint32_t state;      /* 56  SHMX__RD_* */
  _Atomic uint32_t waiting;    /* 60  1 while counted in header.waiters */
  _Atomic uint64_t ring_head;  /* 64  bytes ever written by the reader */
  _Atomic uint32_t lock_byte;  /* 72  which of the slot's 8 lock identities
                                       the owner holds (0..7) */
  uint32_t pad1a;              /* 76 */
  uint64_t pid_start;          /* 80  the reader process's start time, for
                                       monitors that cannot see its lock */
  uint8_t pad1[40];            /* 88 */
  _Atomic uint64_t ring_tail;  /* 128 bytes ever consumed by the producer */
  _Atomic uint64_t ring_resets;/* 136 times the producer reset this ring */
  uint8_t pad2[48];            /* 144 */
};

/* Schema record header; payload follows, padded to 8. */
struct shmx__srec {
  uint32_t type;               /* 0 SHMX_TLV_STATIC_DIR / _STATIC_USER */
  uint32_t len;                /* 4 payload bytes */
};

/* SHMX_TLV_STATIC_DIR payload; then name_len name bytes, extra_len bytes. */
struct shmx__sspec {
  uint32_t id;                 /* 0 */
  uint32_t dtype;              /* 4 */
  uint32_t components;         /* 8 */
  uint32_t layout;             /* 12 */
  uint32_t bytes_per_elem;     /* 16 */
  uint16_t name_len;           /* 20 */
  uint16_t extra_len;          /* 22 */
};

/* Control ring message header; payload follows, padded to 8. */
struct shmx__cmsg {
  uint32_t len;                /* 0 payload bytes */
  uint32_t type;               /* 4 user type */
};

#define SHMX__OFF(T, f, o) static_assert(offsetof(struct T, f) == (o), #T "." #f)
SHMX__OFF(shmx__hdr, magic, 0);
SHMX__OFF(shmx__hdr, version_major, 8);
SHMX__OFF(shmx__hdr, version_minor, 10);
SHMX__OFF(shmx__hdr, header_bytes, 12);
SHMX__OFF(shmx__hdr, session_id, 16);
SHMX__OFF(shmx__hdr, total_bytes, 24);
SHMX__OFF(shmx__hdr, owner_pid, 32);
SHMX__OFF(shmx__hdr, flags, 36);
SHMX__OFF(shmx__hdr, slots, 40);
SHMX__OFF(shmx__hdr, reader_slots, 44);
SHMX__OFF(shmx__hdr, static_bytes_cap, 48);
SHMX__OFF(shmx__hdr, frame_bytes_cap, 56);
SHMX__OFF(shmx__hdr, slot_bytes, 64);
SHMX__OFF(shmx__hdr, control_per_reader, 72);
SHMX__OFF(shmx__hdr, static_off, 80);
SHMX__OFF(shmx__hdr, slotdesc_off, 88);
SHMX__OFF(shmx__hdr, readers_off, 96);
SHMX__OFF(shmx__hdr, control_off, 104);
SHMX__OFF(shmx__hdr, frames_off, 112);
SHMX__OFF(shmx__hdr, create_ns, 120);
SHMX__OFF(shmx__hdr, state, 128);
SHMX__OFF(shmx__hdr, latest_slot, 132);
SHMX__OFF(shmx__hdr, frame_seq, 136);
SHMX__OFF(shmx__hdr, last_publish_ns, 144);
SHMX__OFF(shmx__hdr, static_used, 152);
SHMX__OFF(shmx__hdr, static_gen, 160);
SHMX__OFF(shmx__hdr, slotdesc_stride, 164);
SHMX__OFF(shmx__hdr, pin_words, 168);
SHMX__OFF(shmx__hdr, max_tlv, 172);
SHMX__OFF(shmx__hdr, wake_word, 192);
SHMX__OFF(shmx__hdr, waiters, 196);
SHMX__OFF(shmx__hdr, readers_connected, 256);
SHMX__OFF(shmx__hdr, next_reader_id, 264);
SHMX__OFF(shmx__hdr, lock_dev, 320);
SHMX__OFF(shmx__hdr, lock_ino, 328);
SHMX__OFF(shmx__hdr, fd_armed, 200);
SHMX__OFF(shmx__hdr, sleepers, 204);
SHMX__OFF(shmx__hdr, wake_armed, 208);
SHMX__OFF(shmx__hdr, bell, SHMX__BELL_OFF);
SHMX__OFF(shmx__hdr, reserved, 448);
static_assert(sizeof(struct shmx__hdr) == SHMX__HDR_BYTES, "header size");

SHMX__OFF(shmx__slotdesc, seq, 0);
SHMX__OFF(shmx__slotdesc, frame_id, 8);
SHMX__OFF(shmx__slotdesc, sim_time, 16);
SHMX__OFF(shmx__slotdesc, publish_ns, 24);
SHMX__OFF(shmx__slotdesc, payload_bytes, 32);
SHMX__OFF(shmx__slotdesc, used_bytes, 40);
SHMX__OFF(shmx__slotdesc, tlv_count, 48);
SHMX__OFF(shmx__slotdesc, checksum, 52);
SHMX__OFF(shmx__slotdesc, pin0, 56);
static_assert(sizeof(struct shmx__slotdesc) == 64, "slotdesc size");

SHMX__OFF(shmx__tlv, type, 0);
SHMX__OFF(shmx__tlv, stream_id, 4);
SHMX__OFF(shmx__tlv, elem_count, 8);
SHMX__OFF(shmx__tlv, bytes, 16);
static_assert(sizeof(struct shmx__tlv) == SHMX__TLV_HDR, "tlv size");

SHMX__OFF(shmx__reader, owner, 0);
SHMX__OFF(shmx__reader, generation, 8);
SHMX__OFF(shmx__reader, pid, 12);
SHMX__OFF(shmx__reader, heartbeat_ns, 16);
SHMX__OFF(shmx__reader, last_frame_seen, 24);
SHMX__OFF(shmx__reader, frames_read, 32);
SHMX__OFF(shmx__reader, frames_dropped, 40);
SHMX__OFF(shmx__reader, attach_ns, 48);
SHMX__OFF(shmx__reader, state, 56);
SHMX__OFF(shmx__reader, waiting, 60);
SHMX__OFF(shmx__reader, ring_head, 64);
SHMX__OFF(shmx__reader, lock_byte, 72);
SHMX__OFF(shmx__reader, pid_start, 80);
SHMX__OFF(shmx__reader, ring_tail, 128);
SHMX__OFF(shmx__reader, ring_resets, 136);
static_assert(sizeof(struct shmx__reader) == SHMX__READER_STRIDE, "reader");

SHMX__OFF(shmx__srec, type, 0);
SHMX__OFF(shmx__srec, len, 4);
static_assert(sizeof(struct shmx__srec) == 8, "srec");
SHMX__OFF(shmx__sspec, id, 0);
SHMX__OFF(shmx__sspec, dtype, 4);
SHMX__OFF(shmx__sspec, components, 8);
SHMX__OFF(shmx__sspec, layout, 12);
SHMX__OFF(shmx__sspec, bytes_per_elem, 16);
SHMX__OFF(shmx__sspec, name_len, 20);
SHMX__OFF(shmx__sspec, extra_len, 22);
static_assert(sizeof(struct shmx__sspec) == 24, "sspec");
SHMX__OFF(shmx__cmsg, len, 0);
SHMX__OFF(shmx__cmsg, type, 4);
static_assert(sizeof(struct shmx__cmsg) == SHMX__RING_MSG_HDR, "cmsg");

static_assert(sizeof(_Atomic uint64_t) == 8, "lock-free 64-bit atomics");
static_assert(sizeof(double) == 8, "IEEE double");

#endif /* SHMX_FORMAT_H */

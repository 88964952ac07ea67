/*
 * wire.h -- the shmx bridge's messages (docs/bridge.md, "Wire format").
 *
 * Pure encoding and decoding, no sockets: the sender and receiver in
 * bridge.c, the unit tests and the libFuzzer target share it. Every
 * message is a ZeroMQ multipart message of exactly two parts:
 *
 *   SCHEMA  [ header (64 B) ] [ schema blob ]
 *   FRAME   [ header (64 B) + directory (32 B per stream) ] [ stream bytes ]
 *           or, for small frames, one part: header + directory + bytes
 *   BYE     [ header (64 B) ] [ empty ]
 *   BATCH   [ header (64 B; n_streams = frame count) + that many records of
 *             { u32 len, u32 0, a one-part FRAME of len bytes, padded to 8 } ]
 *
 * All integers little-endian. Decoders trust nothing: every count, length
 * and sum is checked against the bytes received before use.
 */
#ifndef SHMX_BRIDGE_WIRE_H
#define SHMX_BRIDGE_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "shmx.h"
#include "schemablob.h"

#define SHMX__BR_MAGIC 0x31425853u /* "SXB1" */
#define SHMX__BR_VERSION 1
#define SHMX__BR_HDR 64
#define SHMX__BR_DIRENT 32

enum shmx__br_type { SHMX__BR_SCHEMA = 1, SHMX__BR_FRAME = 2, SHMX__BR_BYE = 3,
                     SHMX__BR_BATCH = 4 };
#define SHMX__BR_BATCH_MAX_FRAMES 4096 /* frames in one BATCH */
#define SHMX__BR_BATCH_BYTES 65536     /* a sender's BATCH part at most */
enum shmx__br_codec { SHMX__BR_RAW = 0, SHMX__BR_ZSTD = 1, SHMX__BR_LZ4 = 2 };

/* The fixed header of every message. */
typedef struct shmx__br_hdr {
  uint32_t type;            /* enum shmx__br_type */
  uint32_t codec;           /* FRAME: enum shmx__br_codec of the data part */
  uint64_t sender_id;       /* random per sender run, never 0 */
  uint64_t session;         /* origin channel's session id */
  uint32_t schema_gen;      /* sender's schema version (1, 2, ...) */
  uint32_t n_streams;       /* FRAME: directory entries */
  uint64_t frame_id;        /* FRAME: origin frame id (>= 1) */
  double sim_time;          /* FRAME */
  uint64_t origin_ns;       /* FRAME: CLOCK_REALTIME ns of origin publish */
  uint64_t sender_dropped;  /* frames the sender dropped so far */
} shmx__br_hdr;

typedef struct shmx__br_dirent {
  uint32_t stream_id;
  uint64_t elem_count;
  uint64_t bytes;           /* bytes of this stream in the frame */
  uint64_t wire_bytes;      /* its bytes in the data (== bytes if RAW) */
} shmx__br_dirent;


/* Write h into out[SHMX__BR_HDR]. */
void shmx__br_hdr_put(uint8_t *out, const shmx__br_hdr *h);
/* Parse a first part of n bytes: the header, then (FRAME) the directory,
 * n_streams entries (<= SHMX_FRAME_MAX_STREAMS) into dir[]; *tail (if
 * non-NULL) gets the bytes after them (a one-part frame's data; must be 0
 * for other messages). Returns 0 or SHMX_E_CORRUPT (magic, version, type,
 * lengths) with shmx_errmsg() saying what. */
int shmx__br_hdr_get(const uint8_t *p, size_t n, shmx__br_hdr *h,
                     shmx__br_dirent dir[SHMX_FRAME_MAX_STREAMS], size_t *tail);
/* The next record of a BATCH part p (n bytes, records from *off): *msg and
 * *len are a one-part FRAME message to decode like any other; *off moves
 * past it. SHMX_E_CORRUPT if the record is cut, lies about its length or is
 * not a FRAME. */
int shmx__br_batch_next(const uint8_t *p, size_t n, size_t *off, const uint8_t **msg,
                        size_t *len);
/* Write a BATCH record for the len-byte message msg (which may already sit
 * at dst + 8) at dst; returns the bytes used (8 + len padded to 8). */
size_t shmx__br_batch_put(uint8_t *dst, const uint8_t *msg, size_t len);
/* Write directory entry i of a FRAME's first part. */
void shmx__br_dirent_put(uint8_t *part, uint32_t i, const shmx__br_dirent *d);
/* Check a directory against the data's size: the wire_bytes sum to
 * data_len exactly, the bytes sum to at most cap, and RAW entries have
 * wire_bytes == bytes. SHMX_E_CORRUPT otherwise. */
int shmx__br_dir_check(const shmx__br_dirent *dir, uint32_t n, uint32_t codec,
                       uint64_t cap, uint64_t data_len);

/* The SCHEMA body is a schema blob: schemablob.h. */

#endif /* SHMX_BRIDGE_WIRE_H */

/*
 * mcap.h -- the MCAP container, as much of it as shmx writes and reads
 * (spec: https://mcap.dev/spec; docs/format.md, "Recordings").
 *
 * The writer (mcap_write.c) streams records to a file descriptor; the
 * parsing helpers here read records out of byte ranges and check every
 * length against the range before use: they are what recording.c,
 * recover.c and fuzz/fuzz_mcap.c share.
 */
#ifndef SHMX_MCAP_H
#define SHMX_MCAP_H

#include <stddef.h>
#include <stdint.h>

#include "shmx.h"

#define SHMX__MCAP_MAGIC "\x89MCAP0\r\n"
#define SHMX__MCAP_MAGIC_LEN 8

enum shmx__mcap_op {
  SHMX__OP_HEADER = 0x01, SHMX__OP_FOOTER = 0x02, SHMX__OP_SCHEMA = 0x03,
  SHMX__OP_CHANNEL = 0x04, SHMX__OP_MESSAGE = 0x05, SHMX__OP_CHUNK = 0x06,
  SHMX__OP_MSG_INDEX = 0x07, SHMX__OP_CHUNK_INDEX = 0x08, SHMX__OP_ATTACHMENT = 0x09,
  SHMX__OP_ATTACH_INDEX = 0x0A, SHMX__OP_STATISTICS = 0x0B, SHMX__OP_METADATA = 0x0C,
  SHMX__OP_META_INDEX = 0x0D, SHMX__OP_SUMMARY_OFFSET = 0x0E, SHMX__OP_DATA_END = 0x0F
};

/* Message record: opcode, length, channel u16, sequence u32, log u64,
 * publish u64: the data start this many bytes after the record's start. */
#define SHMX__MCAP_MSG_HEAD 31
/* Footer record with the trailing magic: the file's last bytes. */
#define SHMX__MCAP_FOOTER_LEN (1 + 8 + 20 + SHMX__MCAP_MAGIC_LEN)

/* The shmx encodings (docs/format.md). */
#define SHMX__MCAP_SCHEMA_NAME "shmx"
#define SHMX__MCAP_SCHEMA_ENC "shmx.schema/1"
#define SHMX__MCAP_MSG_ENC "shmx.frame/1"
/* Message data: frame_id u64, sim_time f64, publish_ns u64, dropped u64,
 * n_streams u32, 0 u32, then n_streams entries of 32 bytes {stream_id
 * u32, 0 u32, elem_count u64, bytes u64, offset u64 (from the data start)}. */
#define SHMX__FRAME_HEAD 40
#define SHMX__FRAME_DIRENT 32
/* Streams of 256 bytes or more start at file offsets (uncompressed chunks)
 * or chunk-buffer offsets (compressed ones, decompressed at the same
 * alignment) that are multiples of this; smaller ones at multiples of 8. */
#define SHMX__REC_ALIGN 64

/* ---- parsing -------------------------------------------------------------- */

/* A bounded reader over n bytes; any read past the end sets bad and
 * returns zeros/NULL from then on. */
typedef struct shmx__mr {
  const uint8_t *p;
  uint64_t n, off;
  int bad;
} shmx__mr;

static inline shmx__mr shmx__mr_of(const uint8_t *p, uint64_t n) {
  shmx__mr r = {p, n, 0, 0};
  return r;
}
uint8_t shmx__mr_u8(shmx__mr *r);
uint16_t shmx__mr_u16(shmx__mr *r);
uint32_t shmx__mr_u32(shmx__mr *r);
uint64_t shmx__mr_u64(shmx__mr *r);
/* A u32-length-prefixed string or byte string: *len bytes at the result. */
const uint8_t *shmx__mr_bytes32(shmx__mr *r, uint64_t *len);
/* A u64-length-prefixed byte string. */
const uint8_t *shmx__mr_bytes64(shmx__mr *r, uint64_t *len);
/* Skip n bytes. */
const uint8_t *shmx__mr_take(shmx__mr *r, uint64_t n);

/* The record at *off of p[0..n): *op, its content (*body, *len); *off moves
 * past it. 0, 1 at the end (no bytes left), or SHMX_E_CORRUPT (the record
 * runs past n). */
int shmx__mcap_next(const uint8_t *p, uint64_t n, uint64_t *off, uint8_t *op,
                    const uint8_t **body, uint64_t *len);

/* A decoded Chunk record's fixed part. */
typedef struct shmx__mcap_chunk {
  uint64_t start, end, usize;
  uint32_t crc;
  char compression[8];      /* "", "zstd", "lz4" ("?" for another) */
  uint64_t records_off;     /* records' offset within the chunk body */
  uint64_t records_len;
} shmx__mcap_chunk;
/* Parse a Chunk record body of len bytes (only its fixed part must be
 * there when records_len is checked by the caller). SHMX_E_CORRUPT. */
int shmx__mcap_chunk_parse(const uint8_t *body, uint64_t len, shmx__mcap_chunk *c);

/* 1 if a chunk whose stored records are src[0..n) may really expand to
 * usize bytes (the frame's own content size where it has one, else a bound
 * on the ratio): checked before usize bytes are allocated, so a small
 * hostile file cannot make a reader allocate gigabytes. */
int shmx__mcap_usize_ok(const char *compression, const uint8_t *src, uint64_t n, uint64_t usize);
/* Decompress a chunk's records into dst (exactly usize bytes expected).
 * SHMX_E_ENOSYS for a codec this build lacks, SHMX_E_CORRUPT otherwise. */
int shmx__mcap_decompress(const char *compression, const uint8_t *src, uint64_t n,
                          uint8_t *dst, uint64_t usize);

/* CRC32 (IEEE, as MCAP and zlib) of n bytes continuing crc (start with 0).
 * crc32.c: carry-less multiplication where the CPU has it. */
uint32_t shmx__crc32(uint32_t crc, const void *p, uint64_t n);
/* The same, byte by byte from a table: the reference the tests use. */
uint32_t shmx__crc32_table(uint32_t crc, const void *p, uint64_t n);
/* 1 if shmx__crc32 folds with PCLMULQDQ on this CPU. */
int shmx__crc32_fast(void);

/* A decoded shmx.frame/1 message body. */
typedef struct shmx__mcap_frame {
  uint64_t frame_id, publish_ns, dropped;
  double sim_time;
  uint32_t n_streams;
  const uint8_t *dir;       /* n_streams entries, checked */
} shmx__mcap_frame;
/* Check and decode a message body of n bytes: every entry's offset and
 * bytes inside it, stream ids distinct, n_streams <= SHMX_FRAME_MAX_STREAMS.
 * SHMX_E_CORRUPT. */
int shmx__mcap_frame_parse(const uint8_t *p, uint64_t n, shmx__mcap_frame *f);
/* Entry i of a parsed frame. */
void shmx__mcap_frame_entry(const shmx__mcap_frame *f, uint32_t i, uint32_t *stream_id,
                            uint64_t *elem_count, uint64_t *bytes, uint64_t *offset);

/* ---- writing -------------------------------------------------------------- */

typedef struct shmx__mw shmx__mw;

typedef struct shmx__mw_opts {
  uint32_t compression;  /* enum shmx_rec_compression */
  int level;
  uint64_t chunk_bytes;
  int no_crc;
  int sync;
} shmx__mw_opts;

/* A piece of a message's data: n bytes at p, or n zero bytes if p is NULL. */
typedef struct shmx__piece {
  const void *p;
  uint64_t n;
} shmx__piece;

/* Start a file on fd (at offset 0, empty): magic and Header. */
int shmx__mw_open(int fd, const shmx__mw_opts *o, shmx__mw **out);
/* Add a Schema (outside chunks; the open chunk is closed first). *id: 1.. */
int shmx__mw_schema(shmx__mw *w, const char *name, const char *enc, const void *data,
                    uint64_t len, uint16_t *id);
/* Add a Channel with metadata pairs kv[0], kv[1], ... (n_kv pairs). */
int shmx__mw_channel(shmx__mw *w, uint16_t schema_id, const char *topic, const char *enc,
                     const char *const *kv, int n_kv, uint16_t *id);
/* The alignment reference of the next message's data start: stream data
 * placed at reference offsets that are multiples of SHMX__REC_ALIGN are
 * 64-byte aligned when read back (mod 64 is all that matters). */
uint64_t shmx__mw_data_ref(const shmx__mw *w);
/* Add a Message with the pieces as its data (into the open chunk; one is
 * opened if needed). */
int shmx__mw_message(shmx__mw *w, uint16_t channel, uint32_t seq, uint64_t log_ns,
                     uint64_t pub_ns, const shmx__piece *pc, int n);
/* Close the open chunk (if any) with its Message Indexes. */
int shmx__mw_chunk_close(shmx__mw *w);
/* Bytes in the open chunk (0 if none) and its first message's log time. */
uint64_t shmx__mw_chunk_bytes(const shmx__mw *w, uint64_t *first_log);
/* Add a Metadata record (closes the open chunk). */
int shmx__mw_metadata(shmx__mw *w, const char *name, const char *const *kv, int n_kv);
/* Close the chunk, write DataEnd, the summary and the Footer, and fsync.
 * The handle must still be freed. */
int shmx__mw_finish(shmx__mw *w);
/* Bytes written so far (the file's size once flushed), chunks closed. */
uint64_t shmx__mw_size(const shmx__mw *w);
uint64_t shmx__mw_chunks(const shmx__mw *w);
void shmx__mw_free(shmx__mw *w);
/* Write frame f as a shmx.frame/1 message on channel ch, its stream data
 * 64-byte aligned (h: scratch of SHMX__FRAME_HEAD + SHMX__FRAME_DIRENT x
 * SHMX_FRAME_MAX_STREAMS bytes). recorder.c. */
int shmx__rec_put_frame(shmx__mw *w, uint16_t ch, uint8_t *h, const shmx_frame *f,
                        uint64_t log_ns, uint64_t pub_ns);
/* ---- Foxglove copies (foxglove.c) ------------------------------------------ */

enum { SHMX__FOX_NONE = 0, SHMX__FOX_IMAGE = 1, SHMX__FOX_POINTS = 2 };
typedef struct shmx__fox {
  int kind;
  uint32_t width, height, step; /* images */
  char encoding[33];
  uint16_t ch;                  /* its MCAP channel in the current file, 0 none */
} shmx__fox;
/* Whether a stream gets a Foxglove copy, and how (docs/recording.md). */
int shmx__fox_kind(const shmx_stream_info *si, shmx__fox *fx);
/* The protobuf FileDescriptorSet of foxglove.RawImage or .PointCloud
 * (malloc'd) and the message's full name. */
int shmx__fox_schema(int kind, uint8_t **out, size_t *len, const char **name);
/* The message's bytes before its data field's bytes (which follow as they
 * are): returns the length written to out, 0 if cap is too small. */
size_t shmx__fox_head(const shmx__fox *fx, const char *frame_id, uint64_t time_ns,
                      uint64_t data_len, uint8_t *out, size_t cap);

/* 1 if the codec is built in. */
int shmx__mw_codec_ok(uint32_t compression);

#endif /* SHMX_MCAP_H */

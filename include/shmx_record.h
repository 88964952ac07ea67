/*
 * shmx_record.h -- record channels into MCAP files, read them back at random.
 *
 * A RECORDER reads one or more channels in order (every frame it can; the
 * frames it missed are counted per frame) and writes them into an indexed
 * MCAP file (https://mcap.dev/spec): messages in chunks closed every
 * chunk_bytes or chunk_ns, a Message Index after each chunk, and at the end
 * a summary (Schema and Channel copies, Statistics, Chunk Indexes) and a
 * Footer. The file is written as PATH.part and renamed to PATH once
 * finished; a recorder that dies leaves the .part file, whose complete
 * chunks shmx_recording_recover() turns back into an indexed file.
 *
 * A RECORDING is such a file opened for reading: only its summary is read at
 * open; frames are found through the chunk indexes (binary search, no scan)
 * and read through a window manager (shmx_window.h), so a 100 GiB file opens
 * at once and memory stays bounded. Frames of uncompressed chunks are not
 * copied: their stream data point into the mapped file, 64-byte aligned
 * (streams under 256 bytes: 8-byte aligned).
 *
 * How shmx maps onto MCAP (docs/recording.md, docs/format.md):
 *   - one MCAP Channel per (shmx channel, producer session, schema
 *     generation): topic = channel name, message_encoding "shmx.frame/1";
 *   - its Schema: name "shmx", encoding "shmx.schema/1", data = the schema
 *     blob (geometry, every stream spec with extra bytes, user records);
 *   - one Message per frame: sequence = frame_id mod 2^32, log_time = when
 *     the recorder read it, publish_time = the producer's publish, both
 *     CLOCK_REALTIME ns derived from CLOCK_MONOTONIC at one fixed offset
 *     (never stepping back); data = frame_id, sim_time, publish_ns, frames
 *     missed just before it, then each stream's directory entry and bytes.
 *
 * CONVENTIONS as shmx.h: 0 or a negative error code, shmx_errmsg() for the
 * detail. Nothing read from a file is trusted: every length, offset and
 * count is checked; a damaged file gives SHMX_E_CORRUPT, never a crash.
 * Handles are not thread-safe (one thread at a time per handle).
 */
#ifndef SHMX_RECORD_H
#define SHMX_RECORD_H

#include <signal.h>
#include <stdint.h>

#include "shmx.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Recorder ----------------------------------------------------------- */

typedef struct shmx_recorder shmx_recorder;

enum shmx_rec_compression {
  SHMX_REC_NONE = 0, /* chunks stored as is: zero-copy reads */
  SHMX_REC_ZSTD = 1, /* needs libzstd at build time (else SHMX_E_ENOSYS) */
  SHMX_REC_LZ4 = 2   /* LZ4 frame format; needs liblz4 at build time */
};

typedef struct shmx_rec_config {
  uint32_t compression; /* enum shmx_rec_compression, default NONE */
  int level;            /* compression level, 0 = the codec's default */
  uint64_t chunk_bytes; /* close a chunk once it holds this much, default
                           4 MiB (64 KiB .. 1 GiB) */
  uint64_t chunk_ns;    /* ... or this long after its first frame, default
                           1 s: what a crash can lose at most */
  uint64_t split_bytes; /* start a new file once one holds this much
                           (0 = never); files are PATH with "-0001", ...
                           before the extension */
  uint64_t split_ns;    /* ... or once one spans this long (0 = never) */
  int no_crc;           /* 1: skip the chunk CRC32s (faster; readers then
                           cannot detect a damaged chunk) */
  int sync;             /* 1: fdatasync after every chunk (survives power
                           loss up to the last chunk; slower) */
  uint32_t mode;        /* permission bits of the files, default 0600 */
  int foxglove;         /* 1: also write image and point-cloud streams as
                           foxglove.RawImage / foxglove.PointCloud protobuf
                           channels ("CHANNEL/STREAM") that Foxglove shows
                           (docs/recording.md); their bytes are stored twice */
} shmx_rec_config;

/* Fill cfg with the defaults above. */
SHMX_API void shmx_rec_config_init(shmx_rec_config *cfg);

/* Create a recorder writing PATH (PATH.part until finished). Errors:
 * SHMX_E_ARG, SHMX_E_ENOSYS (compression not built in), -EEXIST (PATH or
 * PATH.part exists: never overwritten), -EACCES, ... */
SHMX_API int shmx_recorder_open(const char *path, const shmx_rec_config *cfg,
                                shmx_recorder **out);

/* Record channel `name` (up to 64 channels). It need not exist yet: the
 * recorder attaches when it appears and again whenever its producer
 * restarts (a new MCAP channel per session). Errors: SHMX_E_NAME,
 * SHMX_E_DUPLICATE, SHMX_E_LIMIT. */
SHMX_API int shmx_recorder_add(shmx_recorder *r, const char *name);

/* Record for up to timeout_ns (< 0: until *stop is set; stop may be NULL),
 * sleeping on the channels' event fds when nothing is new. Returns 0, or an
 * error of the file (-ENOSPC, -EIO, ...): the recorder is then broken and
 * should be closed. Also returns once max_frames (if > 0) frames in all
 * were recorded since open. */
SHMX_API int shmx_recorder_run(shmx_recorder *r, int64_t timeout_ns, uint64_t max_frames,
                               volatile sig_atomic_t *stop);

/* Make a shmx_recorder_run running in another thread return within 0.5 s
 * (and the next one return at once, once). Thread-safe and
 * async-signal-safe (one atomic store). */
SHMX_API void shmx_recorder_stop(shmx_recorder *r);

typedef struct shmx_rec_stats {
  uint64_t frames;       /* frames recorded */
  uint64_t bytes;        /* stream bytes recorded */
  uint64_t dropped;      /* frames the recorder missed (overwritten before
                            it read them), over all channels */
  uint64_t file_bytes;   /* bytes written to files so far */
  uint64_t chunks;       /* chunks closed */
  uint32_t files;        /* files started (1 + splits) */
  uint32_t attached;     /* channels being read now */
  uint64_t sessions;     /* producer sessions seen (attachments) */
} shmx_rec_stats;

/* The counters. Safe from any thread, also while shmx_recorder_run runs in
 * another: a copy refreshed at every pass of its loop (at most ~0.5 s old
 * while it sleeps, current once it returns). */
SHMX_API void shmx_recorder_stats(const shmx_recorder *r, shmx_rec_stats *st);

/* Path of the file being written now (ends in ".part"). Changes at a split:
 * not for another thread while shmx_recorder_run runs. */
SHMX_API const char *shmx_recorder_path(const shmx_recorder *r);

/* Finish the file (last chunk, summary, footer; fsync), rename it from
 * .part to its name, detach and free. Returns 0 or the file's error (the
 * .part file is then left for shmx_recording_recover). NULL is a no-op. */
SHMX_API int shmx_recorder_close(shmx_recorder *r);

/* ---- Reading ------------------------------------------------------------- */

typedef struct shmx_recording shmx_recording;

/* One MCAP channel of the file: one producer session and schema of a shmx
 * channel. Pointers stay valid until shmx_recording_close. */
typedef struct shmx_rec_channel {
  uint16_t id;            /* MCAP channel id */
  const char *topic;      /* shmx channel name */
  uint64_t session;       /* producer session id (0 if unknown) */
  uint32_t schema_gen;    /* schema generation within the session */
  uint64_t frames;        /* messages (Statistics) */
  const shmx_stream_info *streams;
  int n_streams;
  uint32_t slots, reader_slots, flags;  /* the recorded geometry */
  uint64_t frame_bytes_cap, static_bytes_cap, control_per_reader;
  const uint8_t *schema;  /* the schema blob (shmx.schema/1) */
  uint64_t schema_len;
} shmx_rec_channel;

typedef struct shmx_rec_info {
  uint32_t channels;     /* MCAP channels (entries of shmx_recording_channel) */
  uint64_t frames;       /* messages in the file */
  uint64_t chunks;
  uint64_t start_ns;     /* first and last log_time (CLOCK_REALTIME ns) */
  uint64_t end_ns;
  uint64_t dropped;      /* frames the recorder missed, from the messages'
                            own counts (0 until the file is scanned) */
  uint64_t file_bytes;
  const char *library;   /* the writer's name from the Header */
  const char *compression; /* "none", "zstd", "lz4" or "mixed" */
} shmx_rec_info;

/* A frame read from a recording. HELD until shmx_rec_frame_release: its
 * stream data (read-only, aligned as above) stay valid until then, even
 * across other reads and after shmx_recording_close. */
typedef struct shmx_rec_frame {
  uint32_t channel;        /* index for shmx_recording_channel */
  uint64_t frame_id;
  double sim_time;
  uint64_t publish_ns;     /* the producer's CLOCK_MONOTONIC publish ns */
  uint64_t log_ns;         /* MCAP log_time */
  uint64_t publish_time_ns;/* MCAP publish_time */
  uint64_t dropped;        /* frames of its channel the recorder missed
                              just before this one */
  uint64_t payload_bytes;
  uint32_t tlv_count;      /* entries in streams */
  const shmx_frame_stream *streams; /* index = position in the channel's
                              streams, UINT32_MAX if not in its schema */
  uint64_t pos;            /* position in the file's message order (for
                              shmx_recording_read_at / step) */
  void *_priv[2];
} shmx_rec_frame;

/* Open a finished recording (summary only: nothing is scanned). Errors:
 * -ENOENT, -EACCES, SHMX_E_CORRUPT (not MCAP, no footer: an unfinished
 * .part file, see shmx_recording_recover; or no chunk index), SHMX_E_ENOSYS
 * (a compression this build lacks is only reported when a chunk needs it). */
SHMX_API int shmx_recording_open(const char *path, shmx_recording **out);
/* Free the handle; frames still held stay valid until released. NULL ok. */
SHMX_API void shmx_recording_close(shmx_recording *r);

SHMX_API void shmx_recording_info(const shmx_recording *r, shmx_rec_info *out);
/* Channel i (0 .. info.channels - 1); NULL if out of range. */
SHMX_API const shmx_rec_channel *shmx_recording_channel(const shmx_recording *r, uint32_t i);

/* Frames are numbered by their position in the file's message order (log
 * time, then file order): 0 .. info.frames - 1. */

/* Read the frame at position pos. SHMX_E_NOFRAME past the end. */
SHMX_API int shmx_recording_read_at(shmx_recording *r, uint64_t pos, shmx_rec_frame *f);

/* Position of the frame of channel `topic` (NULL: the only topic) with id
 * frame_id: binary search over the chunks, then within one chunk.
 * SHMX_E_NOFRAME if that frame is not in the file (the recorder missed it,
 * or it is outside the recording); SHMX_E_STREAM if no such topic. With
 * several sessions of one topic, the first session holding the id wins. */
SHMX_API int shmx_recording_find_id(shmx_recording *r, const char *topic, uint64_t frame_id,
                                    uint64_t *pos);

/* Position of the last frame (of `topic`, NULL: any) logged at or before
 * log_ns; the first frame if log_ns precedes it. SHMX_E_NOFRAME if the
 * topic has no frame. */
SHMX_API int shmx_recording_find_time(shmx_recording *r, const char *topic, uint64_t log_ns,
                                      uint64_t *pos);

/* Move *pos to the next (dir > 0) or previous (dir < 0) frame of `topic`
 * (NULL: any). SHMX_E_NOFRAME at either end (*pos unchanged). */
SHMX_API int shmx_recording_step(shmx_recording *r, const char *topic, int dir, uint64_t *pos);

/* Unhold a frame (its bytes may then go away). Cleared frames: no-op. */
SHMX_API void shmx_rec_frame_release(shmx_rec_frame *f);

/* Scan the messages' own drop counts once (reads every chunk) and return
 * their sum; also fills info.dropped from then on. */
SHMX_API int shmx_recording_count_dropped(shmx_recording *r, uint64_t *dropped);

/* ---- Recovery ------------------------------------------------------------ */

typedef struct shmx_recover_stats {
  uint64_t chunks;     /* complete chunks kept */
  uint64_t frames;     /* messages kept */
  uint64_t salvaged;   /* of which from an unfinished uncompressed chunk
                          (each a complete message record) */
  uint64_t bad_chunks; /* chunks skipped: torn, bad CRC, undecodable */
  uint64_t tail_bytes; /* bytes after the last usable record, dropped */
} shmx_recover_stats;

/* Rebuild an indexed MCAP file at out_path (created exclusively) from the
 * records of in_path (a .part left by a dead recorder, or any MCAP file
 * whose summary or footer is lost): every message of every complete chunk,
 * in order, nothing invented; chunks that fail their CRC are skipped and
 * counted. Errors: -EEXIST (out_path exists), SHMX_E_CORRUPT (not MCAP),
 * file errors. st may be NULL. */
SHMX_API int shmx_recording_recover(const char *in_path, const char *out_path,
                                    shmx_recover_stats *st);

#ifdef __cplusplus
}
#endif

#endif /* SHMX_RECORD_H */

/*
 * shmx.h -- frame streaming between processes through shared memory.
 *
 * One producer (a server) publishes frames into a named channel; many
 * readers (clients) read them without copying. A frame carries typed streams
 * declared in a self-describing schema. Slow readers drop frames; the
 * producer never blocks. This header is the contract: every function states
 * what it does, what it returns, and how long returned pointers stay valid.
 *
 * CONVENTIONS
 *   - Functions return 0 (SHMX_OK) or a negative error code; codes are listed
 *     once in SHMX_ERRNO_MAP. System failures are minus errno (SHMX_E_ENOENT
 *     == -ENOENT on POSIX). shmx_strerror() and shmx_err_name() never
 *     allocate and accept any int.
 *   - shmx_errmsg() returns a longer message for the last failure on the
 *     calling thread (e.g. "channel 'cam': owned by live producer pid 4242").
 *   - Handles are opaque and not thread-safe: use one handle from one thread
 *     at a time (different handles may be used from different threads).
 *   - Nothing read from the shared segment is trusted: every offset, size,
 *     count and length is checked against the mapping before use. A corrupt
 *     segment yields SHMX_E_CORRUPT, never an out-of-bounds access.
 *
 * CAVEATS
 *   - Producer crash mid-frame: the half-written slot keeps an odd sequence
 *     number, so no reader ever accepts it. Readers see SHMX_E_DEAD.
 *   - Stale readers: a reader that stops calling into the library stops
 *     heart-beating; the producer may reap it (shmx_server_reap). A reaped
 *     reader gets SHMX_E_REAPED on its next call and must reopen.
 *   - fork(): a child inherits mappings but not ownership semantics; do not
 *     use a handle in both parent and child. Producer liveness is a write
 *     lock on the segment's open file description, which a forked child
 *     shares until it closes its descriptors (they are O_CLOEXEC: exec
 *     drops them).
 *   - Truncation: if another process truncates the segment file, the pages
 *     it lost read as zeros in this process (a SIGBUS guard; no crash), and
 *     every later call on the handle returns SHMX_E_CORRUPT ("truncated by
 *     another process"); shmx_frame_valid() says 0. SHMX_SIGBUS_GUARD=0
 *     turns the guard off. See docs/design.md, "Truncation".
 *   - Names: the segment and its lock file (.shmx.NAME.lock) are opened
 *     O_NOFOLLOW|O_NONBLOCK; a FIFO, symlink or other non-file under the
 *     name gives SHMX_E_CORRUPT at once; another user's files give
 *     SHMX_E_EACCES.
 *   - Segments live on tmpfs (/dev/shm): they use RAM, not disk. Containers
 *     may cap /dev/shm at 64 MiB; see docs/operations.md.
 */
#ifndef SHMX_H
#define SHMX_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#  define SHMX_API __declspec(dllexport)
#elif defined(__GNUC__)
#  define SHMX_API __attribute__((visibility("default")))
#else
#  define SHMX_API
#endif

/* ---- Version ----------------------------------------------------------- */

#define SHMX_VERSION_MAJOR 2
#define SHMX_VERSION_MINOR 2
#define SHMX_VERSION_PATCH 0
#define SHMX_VERSION_STRING "2.2.0"

/* Segment format version. A reader refuses a segment with another major. */
#define SHMX_FORMAT_MAJOR 2
#define SHMX_FORMAT_MINOR 2

/* Library version packed as (major << 16 | minor << 8 | patch). */
SHMX_API unsigned shmx_version(void);
/* Library version as a static string, e.g. "2.0.0". */
SHMX_API const char *shmx_version_string(void);

/* ---- Errors ------------------------------------------------------------ */

/*
 * One list drives the enum, shmx_err_name() and shmx_strerror().
 * System errors first (values are -errno, defined in src/errors.c via
 * <errno.h>), then the library's own in a reserved range (-4000 ... -4099).
 */
#define SHMX_SYS_ERRNO_MAP(XX)                                                 \
  XX(EPERM, "operation not permitted")                                         \
  XX(ENOENT, "no such file or directory")                                      \
  XX(EINTR, "interrupted system call")                                         \
  XX(EIO, "i/o error")                                                         \
  XX(EBADF, "bad file descriptor")                                             \
  XX(EAGAIN, "resource temporarily unavailable")                               \
  XX(ENOMEM, "not enough memory")                                              \
  XX(EACCES, "permission denied")                                              \
  XX(EBUSY, "resource busy")                                                   \
  XX(EEXIST, "file exists")                                                    \
  XX(ENODEV, "no such device")                                                 \
  XX(EINVAL, "invalid argument")                                               \
  XX(ENFILE, "file table overflow")                                            \
  XX(EMFILE, "too many open files")                                            \
  XX(EFBIG, "file too large")                                                  \
  XX(ENOSPC, "no space left on device")                                        \
  XX(ENAMETOOLONG, "name too long")                                            \
  XX(ENOSYS, "function not implemented")                                       \
  XX(EOVERFLOW, "value too large for defined data type")                       \
  XX(ETIMEDOUT, "connection timed out")

#define SHMX_ERRNO_MAP(XX)                                                     \
  XX(NAME, -4000, "invalid channel name (1-200 chars of [A-Za-z0-9._-])")     \
  XX(ARG, -4001, "invalid argument")                                           \
  XX(NOCHANNEL, -4002, "no such channel")                                      \
  XX(EXISTS, -4003, "channel owned by a live producer")                        \
  XX(CORRUPT, -4004, "corrupted: not a shmx channel or file, or damaged")     \
  XX(VERSION, -4005, "incompatible segment format version")                    \
  XX(CLOSED, -4006, "channel closed by its producer")                          \
  XX(DEAD, -4007, "producer process died")                                     \
  XX(RESTARTED, -4008, "producer restarted (new session)")                     \
  XX(FULL, -4009, "all reader slots are taken")                                \
  XX(REAPED, -4010, "this reader was reaped by the producer")                  \
  XX(NOFRAME, -4011, "no frame available")                                     \
  XX(TIMEOUT, -4012, "timed out")                                              \
  XX(EXPIRED, -4013, "frame was overwritten while held")                       \
  XX(CHECKSUM, -4014, "frame payload checksum mismatch")                       \
  XX(STREAM, -4015, "unknown stream id")                                       \
  XX(SIZE, -4016, "byte count does not match element count x element size")   \
  XX(CAPACITY, -4017, "frame capacity exceeded")                               \
  XX(DUPLICATE, -4018, "duplicate stream id or name")                          \
  XX(STATE, -4019, "call not valid in the handle's current state")             \
  XX(RINGFULL, -4020, "control ring full")                                     \
  XX(OVERFLOW, -4021, "size arithmetic overflow")                              \
  XX(BUSY, -4022, "frame kept changing while being read; try again")          \
  XX(LIMIT, -4023, "resource limit reached")                                   \
  XX(SHRUNK, -4024, "file shrank below the mapped range")                      \
  XX(INTERNAL, -4099, "internal error")

typedef enum shmx_err {
  SHMX_OK = 0,
#define SHMX__XX_SYS(name, msg) SHMX_E_##name = -(name),
#define SHMX__XX_OWN(name, val, msg) SHMX_E_##name = (val),
  SHMX_SYS_ERRNO_MAP(SHMX__XX_SYS)
  SHMX_ERRNO_MAP(SHMX__XX_OWN)
#undef SHMX__XX_OWN
#undef SHMX__XX_SYS
  SHMX_E__LAST = -4100
} shmx_err;

/* System error codes: minus the platform errno. Use these with shmx_strerror. */
#define SHMX_E_SYS(e) (-(e))

/* Static English message for any code (unknown codes: "unknown error"). */
SHMX_API const char *shmx_strerror(int err);
/* Static symbolic name, e.g. "SHMX_E_FULL", "ENOENT"; "UNKNOWN" otherwise. */
SHMX_API const char *shmx_err_name(int err);
/* Detail of the last failure on this thread; never NULL; thread-local,
 * valid until the next shmx call on this thread. */
SHMX_API const char *shmx_errmsg(void);

/* ---- Codes shared with shmx 1.0.1 -------------------------------------- */

enum shmx_dtype {
  SHMX_DT_BOOL = 1, SHMX_DT_I8 = 2, SHMX_DT_U8 = 3, SHMX_DT_I16 = 4,
  SHMX_DT_U16 = 5, SHMX_DT_I32 = 6, SHMX_DT_U32 = 7, SHMX_DT_I64 = 8,
  SHMX_DT_U64 = 9, SHMX_DT_F16 = 10, SHMX_DT_BF16 = 11, SHMX_DT_F32 = 12,
  SHMX_DT_F64 = 13
};
enum shmx_layout { SHMX_LAYOUT_SOA_SCALAR = 0, SHMX_LAYOUT_AOS_VECTOR = 1 };
enum shmx_tlv {
  SHMX_TLV_STATIC_DIR = 0x1000,  /* schema record: one stream spec */
  SHMX_TLV_STATIC_USER = 0x1001, /* schema record: opaque user bytes */
  SHMX_TLV_FRAME_STREAM = 0x2000,
  SHMX_TLV_CONTROL_USER = 0x3000
};

/* "float32" etc. for a dtype code, "unknown" otherwise. Static. */
SHMX_API const char *shmx_dtype_name(uint32_t dtype);
/* Size in bytes of one scalar of the dtype (BOOL=1 ... F64=8), 0 if unknown. */
SHMX_API uint32_t shmx_dtype_size(uint32_t dtype);
/* "scalar" / "vector" for a layout code, "unknown" otherwise. Static. */
SHMX_API const char *shmx_layout_name(uint32_t layout);

/* ---- Schema ------------------------------------------------------------ */

#define SHMX_NAME_MAX 200        /* channel name, excluding the prefix */
#define SHMX_STREAM_NAME_MAX 255 /* stream name bytes */
#define SHMX_EXTRA_MAX 65535     /* stream spec extra bytes */

typedef struct shmx_stream_spec {
  uint32_t id;             /* unique within the channel */
  const char *name;        /* UTF-8, 1..255 bytes, unique, not "__metadata__" */
  uint32_t dtype;          /* enum shmx_dtype (other values allowed, opaque) */
  uint32_t components;     /* >= 1 */
  uint32_t layout;         /* enum shmx_layout */
  uint32_t bytes_per_elem; /* >= 1: bytes of one element (all components) */
  const void *extra;       /* optional opaque bytes (may be NULL) */
  uint32_t extra_len;      /* <= SHMX_EXTRA_MAX */
} shmx_stream_spec;

/* A stream spec as parsed from a segment: pointers point into the reader's
 * private copy of the schema and stay valid until the next successful
 * shmx_client_refresh()/shmx_inspector_refresh() or close. name is
 * NUL-terminated. */
typedef struct shmx_stream_info {
  uint32_t id, dtype, components, layout, bytes_per_elem, extra_len;
  const char *name;
  const uint8_t *extra;
} shmx_stream_info;

/* ---- Channel names ----------------------------------------------------- */

/* Segments are named SHMX_SEGMENT_PREFIX + name in POSIX shared memory, e.g.
 * /dev/shm/shmx.cam0 for channel "cam0". */
#define SHMX_SEGMENT_PREFIX "shmx."

/* 0 if name is a valid channel name, SHMX_E_NAME otherwise. */
SHMX_API int shmx_name_check(const char *name);

/* ---- Server (producer) ------------------------------------------------- */

typedef struct shmx_server shmx_server;

enum shmx_create_flags {
  SHMX_CREATE_CRC32C = 1u << 0,   /* checksum every frame payload */
  SHMX_CREATE_NO_PREFAULT = 1u << 1 /* skip pre-faulting the segment */
};

typedef struct shmx_server_config {
  uint32_t slots;              /* frame slots, default 3 (2..1024) */
  uint32_t reader_slots;       /* max readers, default 16 (1..1024) */
  uint64_t static_bytes_cap;   /* schema area, default 4096 */
  uint64_t frame_bytes_cap;    /* max stream bytes per frame, default 65536 */
  uint64_t control_per_reader; /* control ring bytes per reader, default 4096
                                  (64 .. 1 GiB, rounded up to a power of 2) */
  uint32_t mode;               /* permission bits, default 0600 */
  uint32_t flags;              /* enum shmx_create_flags */
  const shmx_stream_spec *streams;
  uint32_t n_streams;
} shmx_server_config;

/* Fill cfg with the defaults above (no streams). */
SHMX_API void shmx_server_config_init(shmx_server_config *cfg);

/* Create channel `name` exclusively and become its producer.
 * Zero fields of cfg take their defaults. Errors: SHMX_E_NAME, SHMX_E_ARG,
 * SHMX_E_DUPLICATE (stream id/name), SHMX_E_OVERFLOW (layout too large),
 * SHMX_E_EXISTS (a live producer owns the name; shmx_errmsg() names its pid),
 * -EACCES, -ENOSPC, -ENOMEM. A segment left by a dead producer is reclaimed.
 * On success *out is a new handle; on error *out is NULL. */
SHMX_API int shmx_server_create(const char *name, const shmx_server_config *cfg,
                                shmx_server **out);

/* Mark the channel closed (readers see SHMX_E_CLOSED and wake), unlink it and
 * free the handle. Mappings held by readers stay valid until they close.
 * NULL is a no-op. Always succeeds. */
SHMX_API void shmx_server_destroy(shmx_server *srv);

/* Start a frame. Chooses a slot that no reader pins (or, if every other slot
 * is pinned, the least recently published one: its holders see
 * SHMX_E_EXPIRED). Errors: SHMX_E_STATE if a frame is already begun. */
SHMX_API int shmx_server_begin(shmx_server *srv);

/* Append stream `stream_id` with elem_count elements from data (bytes =
 * elem_count x bytes_per_elem, copied once). Errors: SHMX_E_STATE (no frame
 * begun), SHMX_E_STREAM, SHMX_E_SIZE, SHMX_E_CAPACITY, SHMX_E_DUPLICATE
 * (stream already in this frame). On error the frame is unchanged. */
SHMX_API int shmx_server_append(shmx_server *srv, uint32_t stream_id,
                                const void *data, uint64_t bytes,
                                uint64_t elem_count);

/* Like append but reserves the space and returns a 64-byte aligned pointer
 * into shared memory in *ptr for the caller to fill before publish/abort.
 * The bytes are zero-initialised only if the caller writes them. */
SHMX_API int shmx_server_reserve(shmx_server *srv, uint32_t stream_id,
                                 uint64_t elem_count, void **ptr);

/* Publish the begun frame with sim_time; frame ids are 1, 2, 3, ... Wakes
 * waiting readers (a system call only if someone waits). If frame_id is
 * non-NULL it receives the published id. Errors: SHMX_E_STATE. */
SHMX_API int shmx_server_publish(shmx_server *srv, double sim_time,
                                 uint64_t *frame_id);

/* Largest frame id a channel can carry (seq words hold 2 x id). */
#define SHMX_FRAME_ID_MAX (UINT64_C(1) << 62)

/* Publish the begun frame under a caller-given frame_id, for relays and
 * replays that keep another channel's numbering (shmx bridge, shmx play).
 * frame_id must exceed every id published before on this handle (gaps are
 * allowed: in-order readers count them in shmx_frame.dropped, as frames
 * they missed) and be <= SHMX_FRAME_ID_MAX; plain shmx_server_publish
 * continues from frame_id + 1. Errors: SHMX_E_STATE (no frame begun),
 * SHMX_E_ARG (id not above the last one; the frame stays begun). */
SHMX_API int shmx_server_publish_id(shmx_server *srv, uint64_t frame_id,
                                    double sim_time);

/* Drop the begun frame; readers never see it. SHMX_E_STATE if none. */
SHMX_API int shmx_server_abort(shmx_server *srv);

/* Add a stream to the schema after create (readers refresh to see it).
 * Errors: SHMX_E_DUPLICATE, SHMX_E_ARG, SHMX_E_CAPACITY (schema area full). */
SHMX_API int shmx_server_add_stream(shmx_server *srv,
                                    const shmx_stream_spec *spec);

/* Append an opaque user record (SHMX_TLV_STATIC_USER) to the schema area. */
SHMX_API int shmx_server_static_append(shmx_server *srv, const void *data,
                                       uint32_t len);

typedef struct shmx_control_msg {
  uint64_t reader_id;
  uint32_t type;
  uint32_t len;
  const uint8_t *data; /* valid until the next poll on this server */
} shmx_control_msg;

/* Read up to max control messages from all readers into msgs, in per-reader
 * order. Returns the number read (>= 0) or an error. A ring holding a bad
 * length is reset; *corrupt_rings (if non-NULL) counts such resets. */
SHMX_API int shmx_server_poll_control(shmx_server *srv, shmx_control_msg *msgs,
                                      int max, int *corrupt_rings);

typedef struct shmx_reader_info {
  uint32_t slot;            /* reader slot index */
  int in_use;               /* 1 if attached */
  int alive;                /* 1 if its process exists, 0 dead, -1 unknown */
  uint64_t reader_id;       /* unique in the session, never reused */
  int32_t pid;
  uint64_t heartbeat_ns;    /* CLOCK_MONOTONIC ns of last heartbeat */
  uint64_t last_frame_seen;
  uint64_t frames_read;
  uint64_t frames_dropped;  /* frames skipped by in-order reads */
  uint32_t generation;      /* bumps each time the slot is claimed or reaped */
} shmx_reader_info;

/* Fill up to max entries (one per reader slot, in use or not); returns the
 * number written. Also reaps readers whose process died. */
SHMX_API int shmx_server_readers(shmx_server *srv, shmx_reader_info *out,
                                 int max);

/* Reap readers whose heartbeat is older than timeout_ns at now_ns (both
 * CLOCK_MONOTONIC ns; now_ns 0 = now) and readers whose process died.
 * Returns how many were reaped (>= 0). */
SHMX_API int shmx_server_reap(shmx_server *srv, uint64_t now_ns,
                              uint64_t timeout_ns);

typedef struct shmx_header_info {
  uint64_t magic;
  uint32_t version_major, version_minor;
  uint64_t session_id;
  int32_t owner_pid;
  int owner_alive;          /* 1, 0, or -1 unknown */
  int closed;
  uint32_t flags;
  uint32_t slots, reader_slots;
  uint64_t static_bytes_cap, static_bytes_used;
  uint64_t frame_bytes_cap, slot_bytes, control_per_reader;
  uint64_t total_bytes;
  uint64_t frame_seq;       /* id of the newest published frame, 0 if none */
  uint64_t last_publish_ns; /* CLOCK_MONOTONIC ns of that publish */
  uint32_t static_gen;
  uint32_t readers_connected;
  uint64_t create_ns;       /* CLOCK_REALTIME ns of create */
  uint32_t waiters;         /* readers blocked in shmx_client_wait (both
                               wake protocols: header waiters + sleepers) */
  uint32_t fd_armed;        /* 1 if a reader armed its event fd since the
                               producer last rang (format 2.1) */
} shmx_header_info;

SHMX_API int shmx_server_header(shmx_server *srv, shmx_header_info *out);
/* Channel name (without prefix); valid for the handle's life. */
SHMX_API const char *shmx_server_name(const shmx_server *srv);
/* Schema as a stream list; valid until the next add_stream or destroy. */
SHMX_API int shmx_server_streams(shmx_server *srv,
                                 const shmx_stream_info **streams, int *n);

/* ---- Client (reader) --------------------------------------------------- */

typedef struct shmx_client shmx_client;

/* Attach to channel `name` as a reader. Errors: SHMX_E_NAME,
 * SHMX_E_NOCHANNEL, -EACCES, SHMX_E_CORRUPT, SHMX_E_VERSION, SHMX_E_CLOSED,
 * SHMX_E_DEAD, SHMX_E_FULL. */
SHMX_API int shmx_client_open(const char *name, shmx_client **out);
/* Like shmx_client_open, but if the channel is absent, closed, its producer
 * dead, or all reader slots are taken, wait up to timeout_ns (< 0: forever)
 * for a live producer to (re)create it or a slot to free, without spinning
 * (a watch on the shared-memory directory, re-checked at least every
 * 100 ms). Errors: SHMX_E_TIMEOUT (with the last reason in shmx_errmsg()),
 * -EINTR (a signal arrived; call again with the time left), and the errors
 * of shmx_client_open that waiting cannot cure (SHMX_E_NAME, -EACCES,
 * SHMX_E_CORRUPT, SHMX_E_VERSION...). */
SHMX_API int shmx_client_open_wait(const char *name, int64_t timeout_ns,
                                   shmx_client **out);
/* Release the reader slot and unmap. Frames still held are released. NULL ok. */
SHMX_API void shmx_client_close(shmx_client *cl);

/*
 * A frame as seen by a reader, filled by shmx_client_latest/next/wait. The
 * frame is HELD (its slot pinned) from that call until shmx_frame_release().
 * A client may hold several frames; the producer never overwrites a pinned
 * slot while an unpinned one is free. If every slot is pinned it must, and
 * shmx_frame_valid() then returns 0: the bytes may have changed.
 * All pointers point into shared memory (a read-only mapping for frame data)
 * or into the client, and stay valid (never dangling) until release or
 * shmx_client_close(), even after the producer exits.
 */
typedef struct shmx_frame_stream {
  uint32_t stream_id;
  uint32_t index;          /* index into the client's stream list, or
                              UINT32_MAX if the id is not in the schema */
  uint64_t elem_count;
  uint64_t bytes;
  const uint8_t *data;     /* 64-byte aligned, read-only */
} shmx_frame_stream;

/* Most streams a single frame may carry. */
#define SHMX_FRAME_MAX_STREAMS 256

typedef struct shmx_frame {
  uint64_t frame_id;
  double sim_time;
  uint64_t publish_ns;     /* CLOCK_MONOTONIC ns at publish (read through
                              the TSC where sound: within ~0.1 us of
                              shmx_now_ns(); never falls between frames) */
  uint64_t payload_bytes;  /* sum of stream bytes */
  uint32_t tlv_count;      /* number of streams = entries in streams[] */
  uint32_t slot;           /* frame slot index (internal use) */
  uint64_t dropped;        /* frames skipped before this one (next/wait) */
  const shmx_frame_stream *streams; /* tlv_count entries, owned by client */
} shmx_frame;

/* The newest published frame (the same one again if nothing newer came).
 * SHMX_E_NOFRAME if none yet. Errors also: SHMX_E_CLOSED (no frame left to
 * read after close), SHMX_E_DEAD, SHMX_E_REAPED, SHMX_E_CORRUPT,
 * SHMX_E_CHECKSUM, and SHMX_E_BUSY: the frame was overwritten under the
 * reader 1000 times running (every slot pinned and the machine overloaded);
 * nothing is held, call again. On success the frame is held. */
SHMX_API int shmx_client_latest(shmx_client *cl, shmx_frame *f);

/* The newest frame, copied into buf (cap bytes) under the slot's sequence
 * lock instead of held: for small frames a reader wants to keep, or to read
 * without ever pinning a slot. The copy is private and never changes;
 * f->streams[i].data point into buf (64-byte aligned if buf is), f->streams
 * is valid until the next copy by this client, and f needs no release
 * (shmx_frame_release is a no-op on it). buf needs the frame's record area:
 * 64 bytes per stream plus its data rounded up to 64 (SHMX_E_CAPACITY names
 * the size otherwise; nothing is copied). Other errors as shmx_client_latest. */
SHMX_API int shmx_client_copy_latest(shmx_client *cl, void *buf, size_t cap,
                                     shmx_frame *f);

/* Next frame in order after the last one this client returned (by latest,
 * next or wait); f->dropped counts frames overwritten before they could be
 * read. The first frame a client reads is the oldest still in a slot, with
 * dropped = 0 (frames published before it attached are not counted).
 * SHMX_E_NOFRAME if there is nothing newer. On success it is held. */
SHMX_API int shmx_client_next(shmx_client *cl, shmx_frame *f);

/* Block until a frame newer than the last returned one is published, then
 * behave like latest (in_order=0) or next (in_order=1). timeout_ns < 0 waits
 * forever, 0 polls. Returns SHMX_E_TIMEOUT, -EINTR (a signal arrived; retry
 * if you like), SHMX_E_CLOSED when the channel closes, SHMX_E_DEAD when the
 * producer dies (checked at least every 100 ms). Heartbeats while waiting. */
SHMX_API int shmx_client_wait(shmx_client *cl, shmx_frame *f,
                              int64_t timeout_ns, int in_order);

/* ---- Event-loop readers ------------------------------------------------- *
 * A reader that serves many channels from one thread polls their event fds
 * (poll, epoll, select, asyncio, libuv...) instead of spinning or blocking:
 *
 *   for (;;) {
 *     int rc = shmx_client_arm(cl);    // 1: read now, 0: sleep, <0: why not
 *     if (rc < 0) break;                // CLOSED, DEAD, RESTARTED, REAPED...
 *     if (rc == 0) poll(&(struct pollfd){shmx_client_fd(cl), POLLIN}, 1, -1);
 *     while (shmx_client_next(cl, &f) == 0) { use(&f); shmx_frame_release(cl, &f); }
 *   }
 *
 * Arming is one-shot and shared: the first publish after any reader armed
 * rings every event fd of the channel with one pwrite(2) and clears the
 * request, so a publish costs nothing while no reader has gone to sleep, and
 * a reader that stops arming (or dies armed) costs at most one ring. */

/* The client's event fd (made on first call; closed by shmx_client_close;
 * do not close or read it yourself). It becomes readable after
 * shmx_client_arm returned 0 when a frame is published, when the channel
 * closes, and when its producer dies or the name is taken over; it may also
 * become readable for nothing (another reader detaching). Readable means
 * "call shmx_client_arm", never "a frame is there". Each fd is an inotify
 * instance: Linux allows a user fs.inotify.max_user_instances of them (128
 * by default) over all its processes. Errors: SHMX_E_VERSION (the
 * producer's format predates event fds), -EMFILE (descriptors or inotify
 * instances exhausted), -ENOENT (no /proc). */
SHMX_API int shmx_client_fd(shmx_client *cl);

/* Decide whether the caller may sleep on the event fd. Returns 1 if a frame
 * newer than the last one this client returned is published (read it;
 * nothing was armed, and the fd was not drained: it may stay readable until
 * the next call), 0 if there is none, the fd is drained and the producer
 * will ring it at its next publish (sleep now), or SHMX_E_CLOSED, SHMX_E_DEAD,
 * SHMX_E_RESTARTED, SHMX_E_REAPED, SHMX_E_CORRUPT (truncated) as the read
 * calls would. Never loses a wake-up: a publish racing it either is seen by
 * its check or rings the fd. Heartbeats. Call it before every sleep. */
SHMX_API int shmx_client_arm(shmx_client *cl);

/* 1 if the held frame's bytes are still the ones published, 0 if the
 * producer was forced to overwrite its slot. Cheap (one atomic load). */
SHMX_API int shmx_frame_valid(const shmx_client *cl, const shmx_frame *f);

/* Unpin a held frame; f is cleared. No-op for a cleared/unheld frame. */
SHMX_API void shmx_frame_release(shmx_client *cl, shmx_frame *f);

/* Frame id of the newest published frame (0 if none). One atomic load. */
SHMX_API uint64_t shmx_client_frame_seq(const shmx_client *cl);

/* Send a control message to the producer; never blocks. SHMX_E_RINGFULL if
 * it does not fit now; SHMX_E_ARG if it can never fit. */
SHMX_API int shmx_client_send(shmx_client *cl, uint32_t type, const void *data,
                              uint32_t len);

/* Add n to this reader's frames_dropped as the producer and monitors see it
 * (shmx_reader_info, shmx top): for a relay that read frames but had to drop
 * them downstream (shmx bridge on a slow network). Errors: SHMX_E_REAPED,
 * SHMX_E_CORRUPT (truncated). */
SHMX_API int shmx_client_note_dropped(shmx_client *cl, uint64_t n);

/* Record a heartbeat now (reads and waits do this automatically). */
SHMX_API int shmx_client_heartbeat(shmx_client *cl);

/* 0 if the channel is live and this reader attached; otherwise the reason:
 * SHMX_E_CLOSED, SHMX_E_DEAD, SHMX_E_REAPED, SHMX_E_RESTARTED (a new producer
 * owns the name now). Makes system calls: not for hot loops. */
SHMX_API int shmx_client_status(shmx_client *cl);

/* Re-read the schema if its generation changed. Returns 1 if it changed,
 * 0 if not, or an error. */
SHMX_API int shmx_client_refresh(shmx_client *cl);
SHMX_API int shmx_client_streams(shmx_client *cl,
                                 const shmx_stream_info **streams, int *n);
/* Opaque user records (SHMX_TLV_STATIC_USER) from the schema, in order. */
SHMX_API int shmx_client_static_user(shmx_client *cl, int index,
                                     const uint8_t **data, uint32_t *len);
SHMX_API int shmx_client_header(shmx_client *cl, shmx_header_info *out);
SHMX_API uint64_t shmx_client_reader_id(const shmx_client *cl);
SHMX_API const char *shmx_client_name(const shmx_client *cl);

/* ---- Inspector (read-only) --------------------------------------------- */

typedef struct shmx_inspector shmx_inspector;

enum shmx_slot_state {
  SHMX_SLOT_EMPTY = 0,     /* never written */
  SHMX_SLOT_WRITING = 1,   /* producer is writing (or died writing) */
  SHMX_SLOT_PUBLISHED = 2  /* holds a complete frame */
};

typedef struct shmx_slot_info {
  uint32_t index;
  uint32_t state;          /* enum shmx_slot_state */
  uint64_t frame_id;       /* frame held (or being written) */
  uint32_t pins;           /* readers pinning it */
  uint64_t payload_bytes;
  int latest;              /* 1 if it is the newest published frame */
} shmx_slot_info;

/* Open `name` read-only (read-only mapping; the channel is not disturbed).
 * Works on channels whose producer died or closed. Errors as client_open
 * minus SHMX_E_FULL/CLOSED/DEAD. */
SHMX_API int shmx_inspector_open(const char *name, shmx_inspector **out);
SHMX_API void shmx_inspector_close(shmx_inspector *in);
SHMX_API int shmx_inspector_header(shmx_inspector *in, shmx_header_info *out);
SHMX_API int shmx_inspector_refresh(shmx_inspector *in);
SHMX_API int shmx_inspector_streams(shmx_inspector *in,
                                    const shmx_stream_info **streams, int *n);
/* Fill up to max reader slots (see shmx_reader_info); returns count. */
SHMX_API int shmx_inspector_readers(shmx_inspector *in, shmx_reader_info *out,
                                    int max);
/* Fill up to max frame slots; returns count. */
SHMX_API int shmx_inspector_slots(shmx_inspector *in, shmx_slot_info *out,
                                  int max);

/* ---- Channel listing and removal --------------------------------------- */

/* The directory that holds channel files (segment SHMX_SEGMENT_PREFIX NAME
 * and its lock file): "/dev/shm" on Linux; on Windows %SHMX_DIR% if set,
 * else %LOCALAPPDATA%\shmx (created on first use). Static string. */
SHMX_API const char *shmx_channel_dir(void);
/* Call fn(name, arg) for every segment with the shmx prefix (valid names
 * only). Stops early and returns fn's value if it returns non-zero. */
SHMX_API int shmx_channel_list(int (*fn)(const char *name, void *arg),
                               void *arg);
/* 1 if a live producer owns the channel, 0 if not (stale), or an error. */
SHMX_API int shmx_channel_owner_alive(const char *name);
/* Unlink the channel's segment. Refuses (SHMX_E_EXISTS) if a live producer
 * owns it unless force != 0. SHMX_E_NOCHANNEL if absent. */
SHMX_API int shmx_channel_remove(const char *name, int force);

/* ---- Clock ------------------------------------------------------------- */

/* CLOCK_MONOTONIC in ns: the units of heartbeats and publish_ns. */
SHMX_API uint64_t shmx_now_ns(void);

#ifdef __cplusplus
}
#endif

#include "shmx_window.h"

#endif /* SHMX_H */

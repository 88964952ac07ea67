/*
 * bridge.h -- carry a channel to other machines over ZeroMQ (shmx bridge).
 *
 * Internal to the project (the `shmx bridge` CLI, its tests and bench link
 * it); docs/bridge.md is the user's manual and the wire format.
 *
 * A SENDER is a reader of a local channel and an XPUB socket: it forwards
 * every frame it reads (latest or in-order) to any number of subscribers,
 * never waits for the network (a subscriber's full queue drops whole
 * frames, counted) and sends the schema to every new subscriber, on every
 * schema change and once a second.
 * A RECEIVER is a SUB socket and the producer of a local channel that it
 * creates from the sender's schema and republishes into with the origin's
 * frame ids (shmx_server_publish_id) and sim_times.
 *
 * One handle, one thread (libzmq's I/O thread aside).
 */
#ifndef SHMX_BRIDGE_H
#define SHMX_BRIDGE_H

#include <signal.h>
#include <stdint.h>

#include "shmx.h"

typedef struct shmx_bridge shmx_bridge;

enum shmx_bridge_codec { SHMX_BRIDGE_RAW = 0, SHMX_BRIDGE_ZSTD = 1, SHMX_BRIDGE_LZ4 = 2 };

typedef struct shmx_bridge_opts {
  const char *channel;   /* send: channel to read; recv: local name (NULL:
                            the sender's channel name) */
  const char *endpoint;  /* send: address to bind; recv: address to connect */
  int in_order;          /* send: every frame in order (1) or latest (0) */
  int codec;             /* send: enum shmx_bridge_codec */
  int level;             /* send: compression level, 0 = codec default */
  int hwm;               /* frames queued per peer; 0 = auto (sender:
                            64 MiB / frame_bytes_cap, 2..1000; receiver 64) */
  double wait_s;         /* send: wait this long for the channel (0: fail) */
  const char *curve_secret;        /* send: Z85 secret key (CURVE server) */
  const char *curve_server_public; /* recv: Z85 server public key */
  uint32_t slots;        /* recv: frame slots of the local channel (0: as
                            the origin) */
  uint32_t mode;         /* recv: permission bits (0: 0600) */
  uint64_t max_bytes;    /* recv: refuse a schema whose channel would take
                            more (slots x frame cap + rings + schema area);
                            0 = 1 GiB. A sender chooses the geometry. */
  int quiet;             /* no notes on stderr (channel lost/back, ...) */
  uint32_t spin_us;      /* busy-poll this long for the next frame or
                            message before sleeping (0: sleep at once);
                            trades a CPU for the wake-up latency */
} shmx_bridge_opts;

typedef struct shmx_bridge_stats {
  uint64_t frames;        /* send: frames sent; recv: frames republished */
  uint64_t bytes;         /* stream bytes of those frames */
  uint64_t wire_bytes;    /* data bytes on the wire (after compression) */
  uint64_t messages;      /* ZeroMQ messages those frames took (small
                             frames travel several to a BATCH message) */
  uint64_t dropped_net;   /* send: frames dropped, a subscriber's queue full */
  uint64_t skipped;       /* send: frames the local reader skipped (in-order:
                             overwritten; latest: newer ones came);
                             recv: frame ids missing from the origin's
                             sequence (origin, local or network drops) */
  uint64_t no_subscriber; /* send: frames read while nobody subscribed */
  uint64_t torn;          /* send: frames overwritten while being copied */
  uint64_t queue_full;    /* send: sends refused by a full subscriber queue
                             (in order: retried; latest: dropped) */
  uint64_t bad;           /* recv: messages rejected (malformed, lying
                             lengths, unknown streams, bad compression) */
  uint64_t schema_wait;   /* recv: frames dropped before their schema came */
  uint64_t schemas;       /* send: schema messages sent; recv: applied */
  uint64_t recreated;     /* recv: times the local channel was re-created */
  uint64_t sender_dropped;/* recv: the sender's dropped_net as last reported */
  uint32_t subscribers;   /* send: subscribers now */
  int attached;           /* send: reading the channel; recv: producing it */
  uint64_t lat_n;         /* recv: origin publish -> local publish, over the
                             frames since the last shmx_bridge_stats call */
  uint64_t lat_p50_ns, lat_p99_ns, lat_max_ns; /* (CLOCK_REALTIME: across
                             hosts only as good as their clock sync) */
} shmx_bridge_stats;

/* Open a sender (send != 0) or receiver. Errors: SHMX_E_ARG, SHMX_E_NAME,
 * SHMX_E_NOCHANNEL (sender, channel absent and wait_s 0), SHMX_E_TIMEOUT
 * (sender: not there, or its producer dead, for all of wait_s), SHMX_E_ENOSYS
 * (codec or CURVE not built in), SHMX_E_EINVAL (endpoint refused by libzmq;
 * shmx_errmsg() says why). */
int shmx_bridge_open(int send, const shmx_bridge_opts *o, shmx_bridge **out);
/* Do the bridge's work for up to timeout_ns (< 0: until *stop), returning
 * early once *stop (if non-NULL) becomes non-zero. Returns 0; errors only
 * for a broken handle. Channel loss, bad messages and peers coming and
 * going are handled inside and show in the stats. */
int shmx_bridge_run(shmx_bridge *b, int64_t timeout_ns, volatile sig_atomic_t *stop);
/* Copy the counters; resets the latency window. */
void shmx_bridge_stats_get(shmx_bridge *b, shmx_bridge_stats *st);
/* The local channel's name (send: the one read; recv: the one produced, or
 * "" before the first schema). */
const char *shmx_bridge_channel(const shmx_bridge *b);
/* The endpoint as bound or connected ("tcp://127.0.0.1:40123" for a
 * bind to port *). Valid for the handle's life. */
const char *shmx_bridge_endpoint(const shmx_bridge *b);
/* Send BYE (sender), destroy the local channel (receiver), free. NULL ok. */
void shmx_bridge_close(shmx_bridge *b);
/* A new CURVE key pair, Z85 text (40 chars + NUL each). SHMX_E_ENOSYS
 * without CURVE support. */
int shmx_bridge_keygen(char public_key[41], char secret_key[41]);
/* 1 if libzmq has CURVE, 0 if not. */
int shmx_bridge_has_curve(void);
/* Name of a codec ("none", "zstd", "lz4") -> code, -1 if unknown or not
 * built in. */
int shmx_bridge_codec(const char *name);

/* Internal (tests, fuzzing): handle one received message of 1 or 2 parts
 * on a receiver exactly as if it came off the socket. */
void shmx__bridge_feed(shmx_bridge *b, const uint8_t *p1, size_t n1, const uint8_t *p2,
                       size_t n2, int parts);

#endif /* SHMX_BRIDGE_H */

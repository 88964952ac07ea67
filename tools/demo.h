/*
 * demo.h -- the `shmx demo` synthetic stream and its processes.
 *
 * A frame carries four streams, all derived from the frame id alone so any
 * reader can verify every byte it gets:
 *   1 "image"      uint8 x3 (RGB), 320 x 240 elements, a moving pattern
 *   2 "positions"  float32 x3 per particle, wrapping in the unit cube
 *   3 "velocities" float32 x3 per particle
 *   4 "ids"        uint32 per particle
 *
 * Processes (each its own program image: the orchestrator fork+execs
 * itself with --publish / --read) report to the orchestrator through a pipe
 * with fixed-size demo_report records (smaller than PIPE_BUF, so each write
 * is atomic).
 */
#ifndef SHMX_TOOLS_DEMO_H
#define SHMX_TOOLS_DEMO_H

#include <signal.h>
#include <stdint.h>

#include "shmx.h"

#define DEMO_W 320u
#define DEMO_H 240u
#define DEMO_PARTICLES 4096u
#define DEMO_MAX_PARTICLES (1u << 20)

enum { DEMO_ST_IMAGE = 1, DEMO_ST_POS = 2, DEMO_ST_VEL = 3, DEMO_ST_IDS = 4 };

/* Stream specs of the demo schema (4 entries). */
extern const shmx_stream_spec demo_streams[4];

/* Payload bytes of one demo frame. */
uint64_t demo_payload_bytes(uint32_t particles);

/* Fill one image row (DEMO_W x 3 bytes) for frame fid. */
void demo_image_row(uint64_t fid, uint32_t y, uint8_t *row);
/* Particle i at frame fid. */
void demo_particle(uint64_t fid, uint32_t i, float pos[3], float vel[3]);
uint32_t demo_particle_id(uint32_t i);

/* Verify a received frame. 0 if every byte is what frame f->frame_id
 * should carry; otherwise -1 and a reason in why. */
int demo_verify(const shmx_frame *f, char *why, size_t cap);

/* Check that the client's schema is the demo schema. 0 or -1 + why. */
int demo_check_schema(shmx_client *cl, char *why, size_t cap);

/* ---- processes ---------------------------------------------------------- */

enum { DEMO_ROLE_PRODUCER = 1, DEMO_ROLE_READER = 2 };
#define DEMO_REPORT_MAGIC 0x53484d44u /* "DMHS" */

typedef struct demo_report {
  uint32_t magic;
  uint32_t role;        /* DEMO_ROLE_* */
  uint32_t final;       /* 1 in the last report before exit */
  int32_t pid;
  int32_t status;       /* last shmx code seen (0, SHMX_E_CLOSED, ...) */
  uint32_t pad;
  uint64_t frames;      /* published, or read and verified */
  uint64_t bytes;       /* payload bytes of those frames */
  uint64_t dropped;     /* frames the reader never saw */
  uint64_t expired;     /* frames overwritten while held */
  uint64_t errors;      /* frames whose bytes were wrong */
  uint64_t lat_sum_ns;  /* publish -> receipt latency, summed */
  uint64_t lat_max_ns;  /* since the previous report */
  uint64_t lag;         /* frames behind the newest at the last read */
  uint64_t last_frame;  /* newest frame id published / read */
  uint64_t t_ns;        /* CLOCK_MONOTONIC when sent: rates use it */
} demo_report;

typedef struct demo_opts {
  double duration;      /* seconds, 0 = until a signal */
  double fps;           /* producer frame rate, 0 = as fast as possible */
  uint32_t particles;
  int crc;              /* producer: checksum frames */
  int mode;             /* reader: DEMO_MODE_* */
  double slow_ms;       /* reader in slow mode: processing time per frame */
  int report_fd;        /* -1, or the orchestrator's pipe */
  int quiet;            /* no periodic lines */
  double open_wait;     /* reader: seconds to wait for the channel */
} demo_opts;

enum { DEMO_MODE_EVERY = 0, DEMO_MODE_LATEST = 1, DEMO_MODE_SLOW = 2 };

/* Run the producer / one reader; return an exit code. */
int demo_run_producer(const char *name, const demo_opts *o);
int demo_run_reader(const char *name, const demo_opts *o);

/* Set by SIGINT/SIGTERM/SIGHUP once demo_install_signals() ran. */
extern volatile sig_atomic_t demo_stop;
void demo_install_signals(void);

#endif /* SHMX_TOOLS_DEMO_H */

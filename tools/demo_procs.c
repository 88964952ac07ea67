/*
 * demo_procs.c -- the two sides of `shmx demo`: the producer
 * (`shmx demo --publish NAME`) and a reader (`shmx demo --read NAME`).
 * Each runs in its own process; alone they print a line per second, under
 * the orchestrator they send demo_report records to its pipe instead.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "demo.h"
#include "os.h"
#include "util.h"

volatile sig_atomic_t demo_stop;

void demo_install_signals(void) { os_on_stop(&demo_stop); }

/* Send a report; on a broken pipe (the orchestrator is gone) stop. */
static void send_report(const demo_opts *o, demo_report *r) {
  if (o->report_fd < 0) return;
  r->magic = DEMO_REPORT_MAGIC;
  r->pid = (int32_t)os_getpid();
  r->t_ns = shmx_now_ns();
  ssize_t w;
  do
    w = write(o->report_fd, r, sizeof *r);
  while (w < 0 && errno == EINTR);
  if (w < 0 && errno == EPIPE) demo_stop = 1;
}

static uint64_t mono_ns(void) { return shmx_now_ns(); }

/* Sleep until the absolute CLOCK_MONOTONIC time t_ns (or a signal). */
static void sleep_until(uint64_t t_ns) { os_sleep_until(t_ns, (volatile int *)&demo_stop); }

/* ---- producer ----------------------------------------------------------- */

static int fill_frame(shmx_server *srv, uint64_t fid, uint32_t particles) {
  void *p = NULL;
  int rc = shmx_server_reserve(srv, DEMO_ST_IMAGE, (uint64_t)DEMO_W * DEMO_H, &p);
  if (rc < 0) return rc;
  uint8_t *img = p;
  for (uint32_t y = 0; y < DEMO_H; y++)
    demo_image_row(fid, y, img + (size_t)y * DEMO_W * 3u);
  void *pp = NULL, *vp = NULL, *ip = NULL;
  if ((rc = shmx_server_reserve(srv, DEMO_ST_POS, particles, &pp)) < 0) return rc;
  if ((rc = shmx_server_reserve(srv, DEMO_ST_VEL, particles, &vp)) < 0) return rc;
  if ((rc = shmx_server_reserve(srv, DEMO_ST_IDS, particles, &ip)) < 0) return rc;
  float *pos = pp, *vel = vp;
  uint32_t *ids = ip;
  for (uint32_t i = 0; i < particles; i++) {
    demo_particle(fid, i, pos + 3 * (size_t)i, vel + 3 * (size_t)i);
    ids[i] = demo_particle_id(i);
  }
  return 0;
}

int demo_run_producer(const char *name, const demo_opts *o) {
  shmx_server_config cfg;
  shmx_server_config_init(&cfg);
  cfg.slots = 8; /* 3 readers pinning one frame each never force an overwrite */
  cfg.reader_slots = 16;
  /* Room for the payload plus per-stream record headers and alignment. */
  cfg.frame_bytes_cap = demo_payload_bytes(o->particles) + 64u * 1024u;
  cfg.streams = demo_streams;
  cfg.n_streams = 4;
  if (o->crc) cfg.flags |= SHMX_CREATE_CRC32C;
  shmx_server *srv = NULL;
  int rc = shmx_server_create(name, &cfg, &srv);
  if (rc < 0) {
    cli_chan_error("demo", name, rc);
    return CLI_ERR;
  }
  demo_report rep;
  memset(&rep, 0, sizeof rep);
  rep.role = DEMO_ROLE_PRODUCER;
  send_report(o, &rep); /* "created": readers may attach now */
  if (o->report_fd < 0 && !o->quiet) {
    char rate[32] = "unpaced";
    if (o->fps > 0) snprintf(rate, sizeof rate, "%.0f frames/s", o->fps);
    printf("shmx demo: publishing on channel '%s' (pid %d): %ux%u RGB image + "
           "%u particles, %s%s; Ctrl-C to stop\n",
           name, (int)getpid(), DEMO_W, DEMO_H, o->particles, rate,
           o->crc ? ", crc32c" : "");
  }
  fflush(stdout);

  uint64_t start = mono_ns();
  uint64_t end = o->duration > 0 ? start + (uint64_t)(o->duration * 1e9) : 0;
  uint64_t period = o->fps > 0 ? (uint64_t)(1e9 / o->fps) : 0;
  uint64_t next_report = start + 100000000u, next_line = start + 1000000000u;
  uint64_t line_frames = 0, line_t = start;
  uint64_t payload = demo_payload_bytes(o->particles);
  int status = CLI_OK;
  for (uint64_t k = 0; !demo_stop; k++) {
    uint64_t now = mono_ns();
    if (end && now >= end) break;
    if ((rc = shmx_server_begin(srv)) < 0) break;
    uint64_t fid = rep.frames + 1; /* frame ids are 1, 2, 3, ... */
    if ((rc = fill_frame(srv, fid, o->particles)) < 0) {
      shmx_server_abort(srv);
      break;
    }
    uint64_t got = 0;
    if ((rc = shmx_server_publish(srv, (double)(now - start) / 1e9, &got)) < 0)
      break;
    if (got != fid) {
      cli_error("demo", "channel '%s': published frame %llu, expected %llu",
                name, (unsigned long long)got, (unsigned long long)fid);
      status = CLI_ERR;
    }
    rep.frames++;
    rep.bytes += payload;
    rep.last_frame = got;
    now = mono_ns();
    if (now >= next_report) {
      send_report(o, &rep);
      next_report = now + 100000000u;
      /* Readers that died without closing keep their slot: free it. */
      shmx_server_reap(srv, 0, 5000000000ull);
    }
    if (o->report_fd < 0 && !o->quiet && now >= next_line) {
      double dt = (double)(now - line_t) / 1e9;
      double fps = (double)(rep.frames - line_frames) / dt;
      printf("[%5.1fs] published %llu frames  %.1f frames/s  %.1f MB/s\n",
             (double)(now - start) / 1e9, (unsigned long long)rep.frames, fps,
             fps * (double)payload / 1e6);
      fflush(stdout);
      line_frames = rep.frames;
      line_t = now;
      next_line = now + 1000000000u;
    }
    if (period) sleep_until(start + (k + 1) * period);
  }
  if (rc < 0) {
    cli_chan_error("demo", name, rc);
    status = CLI_ERR;
  }
  shmx_server_destroy(srv); /* readers see SHMX_E_CLOSED; name unlinked */
  rep.final = 1;
  rep.status = rc < 0 ? rc : 0;
  send_report(o, &rep);
  if (o->report_fd < 0 && !o->quiet) {
    double dt = (double)(mono_ns() - start) / 1e9;
    printf("shmx demo: published %llu frames in %.1f s (%.1f MB/s); channel "
           "'%s' closed and removed\n",
           (unsigned long long)rep.frames, dt,
           dt > 0 ? (double)rep.bytes / dt / 1e6 : 0.0, name);
  }
  return status;
}

/* ---- reader ------------------------------------------------------------- */

static int open_with_wait(const char *name, double wait_s, shmx_client **cl) {
  uint64_t deadline = mono_ns() + (uint64_t)(wait_s * 1e9);
  for (;;) {
    int rc = shmx_client_open(name, cl);
    if (rc == 0) return 0;
    int retry = rc == SHMX_E_NOCHANNEL || rc == SHMX_E_ENOENT ||
                rc == SHMX_E_EAGAIN || rc == SHMX_E_BUSY ||
                rc == SHMX_E_CLOSED || rc == SHMX_E_DEAD;
    if (!retry || demo_stop || mono_ns() >= deadline) return rc;
    cli_sleep_ns(20000000u, &demo_stop);
  }
}

static const char *mode_name(int m) {
  return m == DEMO_MODE_LATEST ? "latest" : m == DEMO_MODE_SLOW ? "slow" : "every frame";
}

int demo_run_reader(const char *name, const demo_opts *o) {
  shmx_client *cl = NULL;
  int rc = open_with_wait(name, o->open_wait, &cl);
  if (rc < 0) {
    cli_chan_error("demo", name, rc);
    demo_report r0;
    memset(&r0, 0, sizeof r0);
    r0.role = DEMO_ROLE_READER;
    r0.final = 1;
    r0.status = rc;
    send_report(o, &r0);
    return CLI_ERR;
  }
  char why[256];
  if (demo_check_schema(cl, why, sizeof why) != 0) {
    cli_error("demo", "channel '%s': %s", name, why);
    shmx_client_close(cl);
    return CLI_ERR;
  }
  if (o->report_fd < 0 && !o->quiet) {
    printf("shmx demo: reading channel '%s' (pid %d, reader id %llu, %s)\n",
           name, (int)getpid(), (unsigned long long)shmx_client_reader_id(cl),
           mode_name(o->mode));
    fflush(stdout);
  }
  demo_report rep;
  memset(&rep, 0, sizeof rep);
  rep.role = DEMO_ROLE_READER;
  uint64_t start = mono_ns();
  uint64_t end = o->duration > 0 ? start + (uint64_t)(o->duration * 1e9) : 0;
  uint64_t next_report = start, next_line = start + 1000000000u;
  uint64_t line_frames = 0, line_bytes = 0, line_lat = 0, line_t = start;
  int in_order = o->mode != DEMO_MODE_LATEST;
  int errors_printed = 0;
  int end_rc = 0;
  while (!demo_stop) {
    uint64_t now = mono_ns();
    if (end && now >= end) break;
    shmx_frame f;
    rc = shmx_client_wait(cl, &f, 100000000, in_order);
    now = mono_ns();
    if (rc == 0) {
      uint64_t lat = cli_age_ns(now, f.publish_ns);
      uint64_t seq = shmx_client_frame_seq(cl);
      rep.lag = seq > f.frame_id ? seq - f.frame_id : 0;
      rep.dropped += f.dropped;
      int bad = demo_verify(&f, why, sizeof why) != 0;
      if (o->mode == DEMO_MODE_SLOW && o->slow_ms > 0)
        cli_sleep_ns((uint64_t)(o->slow_ms * 1e6), &demo_stop); /* "work" */
      if (!shmx_frame_valid(cl, &f)) {
        rep.expired++; /* overwritten while held: the bytes prove nothing */
      } else if (bad) {
        rep.errors++;
        if (errors_printed++ < 5)
          cli_error("demo", "channel '%s': verification failed: %s", name, why);
      } else {
        rep.frames++;
        rep.bytes += f.payload_bytes;
        rep.lat_sum_ns += lat;
        if (lat > rep.lat_max_ns) rep.lat_max_ns = lat;
      }
      rep.last_frame = f.frame_id;
      shmx_frame_release(cl, &f);
    } else if (rc == SHMX_E_TIMEOUT || rc == SHMX_E_EINTR || rc == SHMX_E_NOFRAME ||
               rc == SHMX_E_BUSY || rc == SHMX_E_EXPIRED) {
      /* nothing new yet, a signal, or a frame that changed under us */
      if (rc == SHMX_E_EXPIRED) rep.expired++;
    } else if (rc == SHMX_E_CHECKSUM) {
      rep.errors++;
      cli_chan_error("demo", name, rc);
    } else {
      end_rc = rc; /* SHMX_E_CLOSED when the producer is done; or worse */
      break;
    }
    if (now >= next_report) {
      send_report(o, &rep);
      rep.lat_max_ns = 0;
      next_report = now + 100000000u;
    }
    if (o->report_fd < 0 && !o->quiet && now >= next_line) {
      double dt = (double)(now - line_t) / 1e9;
      uint64_t df = rep.frames - line_frames;
      char lat[32];
      cli_fmt_ns(df ? (rep.lat_sum_ns - line_lat) / df : 0, lat, sizeof lat);
      printf("[%5.1fs] %.1f frames/s  %.1f MB/s  lag %llu  latency %s  "
             "verified %llu  dropped %llu  errors %llu\n",
             (double)(now - start) / 1e9, (double)df / dt,
             (double)(rep.bytes - line_bytes) / dt / 1e6,
             (unsigned long long)rep.lag, lat, (unsigned long long)rep.frames,
             (unsigned long long)rep.dropped, (unsigned long long)rep.errors);
      fflush(stdout);
      line_frames = rep.frames;
      line_bytes = rep.bytes;
      line_lat = rep.lat_sum_ns;
      line_t = now;
      next_line = now + 1000000000u;
    }
  }
  shmx_client_close(cl);
  rep.final = 1;
  rep.status = end_rc;
  send_report(o, &rep);
  int ok_end = end_rc == 0 || end_rc == SHMX_E_CLOSED;
  if (!ok_end) cli_chan_error("demo", name, end_rc);
  if (o->report_fd < 0 && !o->quiet) {
    printf("shmx demo: verified %llu frames (%.1f MB), dropped %llu, "
           "expired %llu, errors %llu%s\n",
           (unsigned long long)rep.frames, (double)rep.bytes / 1e6,
           (unsigned long long)rep.dropped, (unsigned long long)rep.expired,
           (unsigned long long)rep.errors,
           end_rc == SHMX_E_CLOSED ? "; channel closed by its producer" : "");
  }
  if (rep.errors || !ok_end) return CLI_ERR;
  if (rep.frames == 0 && o->report_fd < 0) {
    cli_error("demo", "channel '%s': no frame received", name);
    return CLI_ERR;
  }
  return CLI_OK;
}

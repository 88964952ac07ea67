/*
 * cmd_demo.c -- `shmx demo`: the orchestrator. It starts itself as one
 * producer (`demo --publish`) and a few readers (`demo --read`), each in its
 * own process, collects their reports through pipes and shows them live
 * (in place on a terminal, periodic plain lines otherwise). Bounded in time:
 * the producer stops after --duration, readers stop when the channel closes,
 * and anything still running 5 s later is killed. Nothing is left in
 * the channel directory. Processes and pipes: os.h.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "demo.h"
#include "os.h"
#include "util.h"

static const char demo_usage[] =
    "usage: shmx demo [--duration S] [--readers N] [--fps F]\n"
    "       shmx demo --publish NAME [--duration S] [--fps F] [--crc]\n"
    "       shmx demo --read NAME [--duration S] [--mode every|latest|slow]\n"
    "\n"
    "Stream a synthetic scene through shared memory: a producer publishes a\n"
    "320x240 RGB image with a moving pattern and 4096 moving particles\n"
    "(positions float32 x3, velocities float32 x3, ids uint32) every frame;\n"
    "readers in separate processes verify every byte they receive. Shows\n"
    "frames/s, MB/s, lag, latency and drops live, then exits 0 and leaves\n"
    "no channel behind. Ctrl-C stops early.\n"
    "\n"
    "Options:\n"
    "  -d, --duration S   run for S seconds (default 10; 0 = until Ctrl-C)\n"
    "  -r, --readers N    reader processes (default 3, 1..8): they cycle\n"
    "                     through the modes every, latest and slow\n"
    "  -f, --fps F        producer frame rate (default 120; 0 = unpaced)\n"
    "  -p, --publish NAME run only the producer, on channel NAME\n"
    "  -R, --read NAME    run only one reader of channel NAME (waits up to\n"
    "                     5 s, at most --duration, for it to appear; exits\n"
    "                     when it closes)\n"
    "  -m, --mode M       reader mode: every (in order, counts drops),\n"
    "                     latest (newest frame only), slow (in order, with\n"
    "                     --slow-ms of work per frame while holding it)\n"
    "      --slow-ms MS   work per frame of a slow reader (default 25)\n"
    "      --particles N  particles per frame (default 4096, 1..1048576)\n"
    "      --crc          producer: checksum every frame (CRC32C)\n"
    "  -q, --quiet        only the final summary (or nothing with -p/-R)\n"
    "  -h, --help         this help\n";

enum { OPT_SLOW = 1000, OPT_PARTICLES, OPT_CRC, OPT_REPORT_FD };

#define DEMO_MAX_READERS 8

typedef struct child {
  const char *label;
  int mode;
  os_child proc;
  int pid;
  int fd;            /* read end of its report pipe, -1 when closed */
  int exited, code;  /* code: exit status, 128+sig if killed */
  demo_report last, shown; /* newest report, and the one at the last render */
  int have;
  uint64_t lat_max;  /* max latency since the last render */
  uint64_t lat_max_all;
  char buf[sizeof(demo_report)];
  size_t buf_len;
} child;

static volatile sig_atomic_t orch_stop;

/* Start this program with `demo ARGS --quiet --report-fd N`. */
static int start_child(child *c, const char *self_args[], int n_args) {
  const char *args[24];
  int k = 0;
  args[k++] = "demo";
  for (int i = 0; i < n_args && k < 20; i++) args[k++] = self_args[i];
  args[k++] = "--quiet";
  int rc = os_spawn_self(args, k, &c->proc, &c->fd);
  if (rc < 0) return rc;
  c->pid = c->proc.pid;
  return 0;
}

/* Read whatever reports are waiting on c->fd. */
static void drain(child *c) {
  for (;;) {
    int n = os_read(c->fd, c->buf + c->buf_len, sizeof c->buf - c->buf_len);
    if (n == -1) return; /* nothing more yet */
    if (n <= 0) {        /* end of file or an error */
      os_close(c->fd);
      c->fd = -1;
      return;
    }
    c->buf_len += (size_t)n;
    if (c->buf_len == sizeof c->buf) {
      demo_report r;
      memcpy(&r, c->buf, sizeof r);
      c->buf_len = 0;
      if (r.magic != DEMO_REPORT_MAGIC) continue;
      if (r.lat_max_ns > c->lat_max) c->lat_max = r.lat_max_ns;
      if (r.lat_max_ns > c->lat_max_all) c->lat_max_all = r.lat_max_ns;
      if (!c->have) c->shown = r; /* rates start from the first report */
      c->last = r;
      c->have = 1;
    }
  }
}

static void reap(child *c) {
  if (c->exited) return;
  int code = os_child_status(&c->proc);
  if (code >= 0) {
    c->exited = 1;
    c->code = code;
  }
}

typedef struct view {
  const char *name;
  int tty;
  double t0, last_render, duration, fps;
  uint32_t particles;
  int lines_drawn;
} view;

static void bar(FILE *o, double frac, int width) {
  if (frac < 0) frac = 0;
  if (frac > 1) frac = 1;
  int fill = (int)(frac * width + 0.5);
  fputc('[', o);
  for (int i = 0; i < width; i++) fputc(i < fill ? '#' : '.', o);
  fputc(']', o);
}

/* Rate of a counter between two reports, by the reports' own clocks. */
static double rate(const demo_report *r, const demo_report *s, uint64_t a,
                   uint64_t b) {
  if (r->t_ns <= s->t_ns || a < b || s->t_ns == 0) return 0;
  return (double)(a - b) / ((double)(r->t_ns - s->t_ns) / 1e9);
}

static void render(view *v, child *cs, int n, int final) {
  double now = cli_now_s();
  double el = now - v->t0;
  char *screen;
  size_t screen_len = 0;
  FILE *o = v->tty ? os_memstream() : NULL;
  if (!o) o = stdout;
  const char *b = v->tty ? "\033[1m" : "", *off = v->tty ? "\033[0m" : "",
             *dim = v->tty ? "\033[2m" : "", *red = v->tty ? "\033[31m" : "",
             *grn = v->tty ? "\033[32m" : "", *K = v->tty ? "\033[K" : "";
  if (v->tty) {
    if (v->lines_drawn) fprintf(o, "\033[%dA\r", v->lines_drawn);
    int lines = 0;
    fprintf(o, "%sshmx demo%s  channel %s%s%s  %.1f s ", b, off, b, v->name, off, el);
    if (v->duration > 0) {
      bar(o, el / v->duration, 30);
      fprintf(o, " %.0f s", v->duration);
    }
    fprintf(o, "%s\n", K);
    lines++;
    /* Most telling columns first: an 80-column terminal shows up to ERRORS. */
    fprintf(o, "%s%-18s %6s %8s %6s %4s %15s %7s %6s %8s %7s%s%s\n", "\033[7m",
            "PROCESS", "PID", "FRAMES/s", "MB/s", "LAG", "LATENCY avg/max",
            "DROPPED", "ERRORS", "FRAMES", "EXPIRED", off, K);
    lines++;
    for (int i = 0; i < n; i++) {
      child *c = &cs[i];
      demo_report *r = &c->last, *s = &c->shown;
      double fps = rate(r, s, r->frames, s->frames);
      double mbs = rate(r, s, r->bytes, s->bytes) / 1e6;
      if (final) {
        fps = el > 0 ? (double)r->frames / el : 0;
        mbs = el > 0 ? (double)r->bytes / el / 1e6 : 0;
      }
      fprintf(o, "%-18s %6d %8.1f %6.1f", c->label, (int)c->pid, fps, mbs);
      if (r->role == DEMO_ROLE_READER) {
        uint64_t df = r->frames - s->frames;
        char a[16], m[16], lat[40];
        uint64_t avg = final ? (r->frames ? r->lat_sum_ns / r->frames : 0)
                             : (df ? (r->lat_sum_ns - s->lat_sum_ns) / df : 0);
        cli_fmt_ns(avg, a, sizeof a);
        cli_fmt_ns(final ? c->lat_max_all : c->lat_max, m, sizeof m);
        snprintf(lat, sizeof lat, "%s/%s", a, m);
        fprintf(o, " %4llu %15s %7llu %s%6llu%s %8llu %7llu",
                (unsigned long long)r->lag, lat, (unsigned long long)r->dropped,
                r->errors ? red : grn, (unsigned long long)r->errors, off,
                (unsigned long long)r->frames, (unsigned long long)r->expired);
      } else {
        fprintf(o, " %4s %15s %7s %6s %8llu %7s", "", "", "", "",
                (unsigned long long)r->frames, "");
      }
      if (c->exited)
        fprintf(o, " %s%s%s", dim, c->code == 0 ? "done" : "FAILED", off);
      fprintf(o, "%s\n", K);
      lines++;
    }
    fprintf(o, "%s%u particles + %ux%u RGB image per frame (%.0f KiB); readers "
               "verify every byte; Ctrl-C stops%s%s\n",
            dim, v->particles, DEMO_W, DEMO_H,
            (double)demo_payload_bytes(v->particles) / 1024.0, off, K);
    lines++;
    v->lines_drawn = lines;
  } else {
    for (int i = 0; i < n; i++) {
      child *c = &cs[i];
      demo_report *r = &c->last, *s = &c->shown;
      double fps = rate(r, s, r->frames, s->frames);
      double mbs = rate(r, s, r->bytes, s->bytes) / 1e6;
      fprintf(o, "[%5.1fs] %-20s pid %-7d %7.1f frames/s %7.1f MB/s  frames %llu", el,
              c->label, (int)c->pid, fps, mbs, (unsigned long long)r->frames);
      if (r->role == DEMO_ROLE_READER) {
        uint64_t df = r->frames - s->frames;
        char a[16], m[16];
        cli_fmt_ns(df ? (r->lat_sum_ns - s->lat_sum_ns) / df : 0, a, sizeof a);
        cli_fmt_ns(c->lat_max, m, sizeof m);
        fprintf(o, "  lag %llu  latency %s (max %s)  dropped %llu  expired %llu  errors %llu",
                (unsigned long long)r->lag, a, m, (unsigned long long)r->dropped,
                (unsigned long long)r->expired, (unsigned long long)r->errors);
      }
      fputc('\n', o);
    }
  }
  if (o != stdout) {
    screen = os_memstream_done(o, &screen_len);
    if (screen) cli_write_fitted(stdout, screen, screen_len, cli_term_cols(1));
    free(screen);
  }
  fflush(stdout);
  for (int i = 0; i < n; i++) {
    if (cs[i].last.t_ns == cs[i].shown.t_ns) continue; /* no news: keep window */
    cs[i].shown = cs[i].last;
    cs[i].lat_max = 0;
  }
  v->last_render = now;
}

static int run_orchestrator(const demo_opts *o, uint32_t n_readers) {
  char name[64];
  snprintf(name, sizeof name, "demo.%d", os_getpid());
  child cs[1 + DEMO_MAX_READERS];
  memset(cs, 0, sizeof cs);
  int n = 0;
  static const char *const labels[] = {"reader every frame", "reader latest",
                                       "reader slow"};
  static const char *const modes[] = {"every", "latest", "slow"};

  os_on_stop(&orch_stop);

  char dur[32], fps[32], parts[32], slow[32], rdur[32];
  snprintf(dur, sizeof dur, "%g", o->duration);
  snprintf(fps, sizeof fps, "%g", o->fps);
  snprintf(parts, sizeof parts, "%u", o->particles);
  snprintf(slow, sizeof slow, "%g", o->slow_ms);
  /* Readers outlive the producer a little: they stop when it closes. */
  snprintf(rdur, sizeof rdur, "%g", o->duration > 0 ? o->duration + 3 : 0);

  view v = {name, os_isatty(1), cli_now_s(), 0, o->duration, o->fps,
            o->particles, 0};
  v.last_render = v.t0;
  if (!o->quiet)
    printf("shmx demo: channel '%s': 1 producer + %u readers, separate "
           "processes, %s s\n",
           name, n_readers, o->duration > 0 ? dur : "until Ctrl-C");

  /* 1. the producer; wait for its first report (channel created). */
  const char *pargs[] = {"--publish", name, "--duration", dur, "--fps", fps,
                         "--particles", parts, o->crc ? "--crc" : NULL};
  cs[0].label = "producer";
  int rc = start_child(&cs[0], pargs, o->crc ? 9 : 8);
  if (rc < 0) {
    cli_error("demo", "cannot start the producer: %s", strerror(-rc));
    return CLI_ERR;
  }
  n = 1;
  int status = CLI_OK;
  double created_by = cli_now_s() + 10.0;
  while (!cs[0].have && cs[0].fd >= 0 && !orch_stop && cli_now_s() < created_by) {
    int ready = 0;
    if (os_wait_readable(&cs[0].fd, 1, 100, &ready) > 0) drain(&cs[0]);
  }
  if (!cs[0].have) {
    cli_error("demo", "channel '%s': the producer did not start", name);
    status = CLI_ERR;
  } else {
    /* 2. the readers */
    for (uint32_t i = 0; i < n_readers; i++) {
      child *c = &cs[n];
      c->label = labels[i % 3];
      const char *rargs[] = {"--read", name, "--duration", rdur, "--mode",
                             modes[i % 3], "--slow-ms", slow};
      rc = start_child(c, rargs, 8);
      if (rc < 0) {
        cli_error("demo", "cannot start a reader: %s", strerror(-rc));
        status = CLI_ERR;
        break;
      }
      n++;
    }
  }

  /* 3. watch until everyone is done (bounded). */
  double render_every = v.tty ? 0.25 : (o->duration > 0 && o->duration <= 5 ? 1.0 : 2.0);
  double hard = o->duration > 0 ? v.t0 + o->duration + 8.0 : 0;
  double stop_at = 0;
  int killed = 0;
  for (;;) {
    int fds[1 + DEMO_MAX_READERS], ready[1 + DEMO_MAX_READERS];
    int np = 0, idx[1 + DEMO_MAX_READERS];
    for (int i = 0; i < n; i++)
      if (cs[i].fd >= 0) {
        fds[np] = cs[i].fd;
        idx[np++] = i;
      }
    int all_done = 1;
    for (int i = 0; i < n; i++) {
      reap(&cs[i]);
      if (!cs[i].exited) all_done = 0;
    }
    if (all_done && np == 0) break;
    if (np > 0) {
      if (os_wait_readable(fds, np, 50, ready) > 0)
        for (int k = 0; k < np; k++)
          if (ready[k]) drain(&cs[idx[k]]);
    } else {
      cli_sleep_ns(20000000u, NULL);
    }
    double now = cli_now_s();
    if (orch_stop && stop_at == 0) {
      /* Ctrl-C: the producer closes the channel, readers follow. */
      stop_at = now;
      if (!cs[0].exited) os_child_stop(&cs[0].proc, 0);
    }
    if (!killed && ((hard && now > hard) || (stop_at && now > stop_at + 5.0))) {
      killed = 1;
      for (int i = 0; i < n; i++)
        if (!cs[i].exited) os_child_stop(&cs[i].proc, 1);
      cli_error("demo", "channel '%s': processes did not stop in time; killed",
                name);
      status = CLI_ERR;
    }
    if (!o->quiet && now - v.last_render >= render_every) render(&v, cs, n, 0);
  }

  /* 4. verdict and cleanup. */
  if (!o->quiet && v.tty) render(&v, cs, n, 1);
  uint64_t errors = 0, verified = 0;
  for (int i = 0; i < n; i++) {
    if (cs[i].fd >= 0) os_close(cs[i].fd);
    if (cs[i].code != 0 && !(orch_stop && cs[i].code == 128 + SIGINT)) {
      cli_error("demo", "%s (pid %d) failed (exit %d)", cs[i].label,
                (int)cs[i].pid, cs[i].code);
      status = CLI_ERR;
    }
    if (!cs[i].last.final && !killed && cs[i].code == 0) {
      cli_error("demo", "%s (pid %d) sent no final report", cs[i].label,
                (int)cs[i].pid);
      status = CLI_ERR;
    }
    if (cs[i].last.role == DEMO_ROLE_READER) {
      errors += cs[i].last.errors;
      verified += cs[i].last.frames;
    }
  }
  if (errors) status = CLI_ERR;
  int left = shmx_channel_owner_alive(name);
  if (left != SHMX_E_NOCHANNEL) {
    /* The producer died without closing: remove what it left. */
    int r = shmx_channel_remove(name, 1);
    if (r < 0 && r != SHMX_E_NOCHANNEL) cli_chan_error("demo", name, r);
    if (!orch_stop && !killed) {
      cli_error("demo", "channel '%s' was left behind by the producer; removed", name);
      status = CLI_ERR;
    }
  }
  double el = cli_now_s() - v.t0;
  demo_report *pr = &cs[0].last;
  if (!o->quiet || status != CLI_OK) {
    printf("shmx demo: %s: %llu frames published in %.1f s (%.1f frames/s, %.1f MB/s); "
           "%llu frames verified by %d readers, %llu errors; channel '%s' removed, "
           "nothing left in %s\n",
           status == CLI_OK ? "ok" : "FAILED", (unsigned long long)pr->frames, el,
           el > 0 ? (double)pr->frames / el : 0.0,
           el > 0 ? (double)pr->bytes / el / 1e6 : 0.0,
           (unsigned long long)verified, n - 1, (unsigned long long)errors, name,
           shmx_channel_dir());
  }
  return status;
}

int cmd_demo(int argc, char **argv) {
  static const struct option opts[] = {
      {"duration", required_argument, NULL, 'd'},
      {"readers", required_argument, NULL, 'r'},
      {"fps", required_argument, NULL, 'f'},
      {"publish", required_argument, NULL, 'p'},
      {"read", required_argument, NULL, 'R'},
      {"mode", required_argument, NULL, 'm'},
      {"slow-ms", required_argument, NULL, OPT_SLOW},
      {"particles", required_argument, NULL, OPT_PARTICLES},
      {"crc", no_argument, NULL, OPT_CRC},
      {"report-fd", required_argument, NULL, OPT_REPORT_FD},
      {"quiet", no_argument, NULL, 'q'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  demo_opts o = {10.0, 120.0, DEMO_PARTICLES, 0, DEMO_MODE_EVERY, 25.0, -1, 0, 5.0};
  uint64_t readers = 3, u;
  const char *publish = NULL, *read = NULL;
  int c;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":d:r:f:p:R:m:qh", opts, NULL)) != -1) {
    switch (c) {
    case 'd':
      if (cli_parse_double(optarg, 0, 86400 * 365.0, &o.duration) != 0)
        return cli_usage("demo", "--duration: expected seconds >= 0, got '%s'", optarg);
      break;
    case 'r':
      if (cli_parse_u64(optarg, 1, DEMO_MAX_READERS, &readers) != 0)
        return cli_usage("demo", "--readers: expected 1..%d, got '%s'", DEMO_MAX_READERS, optarg);
      break;
    case 'f':
      if (cli_parse_double(optarg, 0, 1e6, &o.fps) != 0)
        return cli_usage("demo", "--fps: expected 0..1000000, got '%s'", optarg);
      break;
    case 'p': publish = optarg; break;
    case 'R': read = optarg; break;
    case 'm':
      if (strcmp(optarg, "every") == 0) o.mode = DEMO_MODE_EVERY;
      else if (strcmp(optarg, "latest") == 0) o.mode = DEMO_MODE_LATEST;
      else if (strcmp(optarg, "slow") == 0) o.mode = DEMO_MODE_SLOW;
      else return cli_usage("demo", "--mode: expected every, latest or slow, got '%s'", optarg);
      break;
    case OPT_SLOW:
      if (cli_parse_double(optarg, 0, 10000, &o.slow_ms) != 0)
        return cli_usage("demo", "--slow-ms: expected 0..10000, got '%s'", optarg);
      break;
    case OPT_PARTICLES:
      if (cli_parse_u64(optarg, 1, DEMO_MAX_PARTICLES, &u) != 0)
        return cli_usage("demo", "--particles: expected 1..%u, got '%s'", DEMO_MAX_PARTICLES, optarg);
      o.particles = (uint32_t)u;
      break;
    case OPT_CRC: o.crc = 1; break;
    case OPT_REPORT_FD:
      if (cli_parse_u64(optarg, 3, UINT32_MAX, &u) != 0 || (o.report_fd = os_report_fd(u)) < 0)
        return cli_usage("demo", "--report-fd: bad fd '%s'", optarg);
      break;
    case 'q': o.quiet = 1; break;
    case 'h': fputs(demo_usage, stdout); return CLI_OK;
    case ':': return cli_usage("demo", "option '%s' needs a value", argv[optind - 1]);
    default: return cli_usage("demo", "unknown option '%s'", argv[optind - 1]);
    }
  }
  if (optind < argc) return cli_usage("demo", "unexpected argument '%s'", argv[optind]);
  if (publish && read) return cli_usage("demo", "--publish and --read do not combine");
  const char *name = publish ? publish : read;
  if (name && shmx_name_check(name) != 0) {
    cli_chan_error("demo", name, SHMX_E_NAME);
    return CLI_USAGE;
  }
  if (publish || read) {
    if (o.duration > 0 && o.duration < o.open_wait) o.open_wait = o.duration;
    demo_install_signals();
    return publish ? demo_run_producer(name, &o) : demo_run_reader(name, &o);
  }
  if (o.report_fd >= 0) return cli_usage("demo", "--report-fd needs --publish or --read");
  return run_orchestrator(&o, (uint32_t)readers);
}

/*
 * cmd_top.c -- `shmx top NAME`: a live view of one channel, refreshed in
 * place with plain ANSI escapes (alternate screen, cursor home, erase to end
 * of line). The terminal is put in non-canonical no-echo mode (os.h)
 * so a single 'q' quits; it is restored on q, Ctrl-C, SIGTERM and SIGHUP.
 * Without a terminal it prints one plain block per interval.
 *
 * Rates come from two successive samples of the read-only inspector: the
 * producer's frame counter and each reader's read/dropped counters.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "os.h"
#include "util.h"

static const char top_usage[] =
    "usage: shmx top NAME [--interval MS] [--iterations N]\n"
    "\n"
    "Live view of a channel: frames/s, MB/s, frame slots, and per reader its\n"
    "lag, read rate, drop rate and heartbeat age. Press q (or Ctrl-C) to quit;\n"
    "the terminal is restored. Without a terminal, prints a plain block every\n"
    "interval and stops when the channel goes away.\n"
    "\n"
    "Options:\n"
    "  -i, --interval MS    refresh period (default 500, 50..60000)\n"
    "  -n, --iterations N   quit after N refreshes (default: until q)\n"
    "  -h, --help           this help\n";

static volatile sig_atomic_t top_stop;

typedef struct top_sample {
  int ok;
  shmx_header_info h;
  shmx_reader_info *readers;
  int n_readers;
  shmx_slot_info *slots;
  int n_slots;
  uint64_t now;
} top_sample;

static void sample_free(top_sample *s) {
  free(s->readers);
  free(s->slots);
  memset(s, 0, sizeof *s);
}

static int sample_take(shmx_inspector *in, top_sample *s) {
  memset(s, 0, sizeof *s);
  int rc = shmx_inspector_header(in, &s->h);
  if (rc < 0) return rc;
  if (s->h.reader_slots > 0 && s->h.reader_slots <= 1024) {
    s->readers = calloc(s->h.reader_slots, sizeof *s->readers);
    if (!s->readers) return SHMX_E_ENOMEM;
    rc = shmx_inspector_readers(in, s->readers, (int)s->h.reader_slots);
    if (rc < 0) return rc;
    s->n_readers = rc;
  }
  if (s->h.slots > 0 && s->h.slots <= 1024) {
    s->slots = calloc(s->h.slots, sizeof *s->slots);
    if (!s->slots) return SHMX_E_ENOMEM;
    rc = shmx_inspector_slots(in, s->slots, (int)s->h.slots);
    if (rc < 0) return rc;
    s->n_slots = rc;
  }
  s->now = shmx_now_ns();
  s->ok = 1;
  return 0;
}

/* The previous sample's entry for the same reader (same slot and id). */
static const shmx_reader_info *prev_reader(const top_sample *p,
                                           const shmx_reader_info *r) {
  if (!p->ok || p->h.session_id == 0) return NULL;
  for (int i = 0; i < p->n_readers; i++)
    if (p->readers[i].in_use && p->readers[i].slot == r->slot &&
        p->readers[i].reader_id == r->reader_id)
      return &p->readers[i];
  return NULL;
}

/* max_rows: reader rows that fit on the screen (< 0: no limit). */
static void render(FILE *o, const char *name, const char *status,
                   const top_sample *s, const top_sample *p, int tty,
                   int max_rows) {
  const char *el = tty ? "\033[K" : ""; /* erase rest of line */
  const char *bold = tty ? "\033[1m" : "", *rev = tty ? "\033[7m" : "",
             *off = tty ? "\033[0m" : "";
  char a[32], b[32];
  time_t t = time(NULL);
  struct tm tm;
  char clock[16] = "";
  if (localtime_r(&t, &tm)) strftime(clock, sizeof clock, "%H:%M:%S", &tm);
  const shmx_header_info *h = &s->h;
  fprintf(o, "%sshmx top%s  %s%s%s  producer pid %d  %s  %s%s%s\n", bold, off,
          bold, name, off, (int)h->owner_pid, status, clock,
          tty ? "   (q to quit)" : "", el);

  double dt = p->ok ? (double)(s->now - p->now) / 1e9 : 0;
  int same = p->ok && p->h.session_id == h->session_id;
  double fps = 0, bps = 0;
  uint64_t payload = 0;
  for (int i = 0; i < s->n_slots; i++)
    if (s->slots[i].latest) payload = s->slots[i].payload_bytes;
  if (same && dt > 0 && h->frame_seq >= p->h.frame_seq) {
    fps = (double)(h->frame_seq - p->h.frame_seq) / dt;
    bps = fps * (double)payload;
  }
  char last[32] = "never";
  if (h->last_publish_ns) cli_fmt_ns(cli_age_ns(s->now, h->last_publish_ns), last, sizeof last);
  fprintf(o, "frames %llu   %s%.1f frames/s   %.1f MB/s%s   %s/frame   last "
             "publish %s ago%s\n",
          (unsigned long long)h->frame_seq, bold, fps, bps / 1e6, off,
          cli_fmt_bytes(payload, a, sizeof a), last, el);
  int pub = 0, wr = 0, pinned = 0;
  for (int i = 0; i < s->n_slots; i++) {
    pub += s->slots[i].state == SHMX_SLOT_PUBLISHED;
    wr += s->slots[i].state == SHMX_SLOT_WRITING;
    pinned += s->slots[i].pins > 0;
  }
  int in_use = 0;
  for (int i = 0; i < s->n_readers; i++) in_use += s->readers[i].in_use != 0;
  fprintf(o, "slots %u x %s: %d published, %d writing, %d pinned   readers "
             "%d/%u%s\n",
          h->slots, cli_fmt_bytes(h->slot_bytes, b, sizeof b), pub, wr, pinned,
          in_use, h->reader_slots, el);
  fprintf(o, "%s\n", el);
  fprintf(o, "%s%7s %7s %5s %9s %7s %9s %6s %11s %9s%s%s\n", rev, "READER",
          "PID", "ALIVE", "HEARTBEAT", "LAG", "READ/s", "DROP%", "READ",
          "DROPPED", off, el);
  int rows = 0;
  for (int i = 0; i < s->n_readers; i++) {
    const shmx_reader_info *r = &s->readers[i];
    if (!r->in_use) continue;
    if (max_rows >= 0 && rows >= max_rows) {
      fprintf(o, "  ... %d more readers (see 'shmx inspect %s')%s\n",
              in_use - rows, name, el);
      break;
    }
    const shmx_reader_info *q = same ? prev_reader(p, r) : NULL;
    double rps = 0, drop = 0;
    if (q && dt > 0 && r->frames_read >= q->frames_read &&
        r->frames_dropped >= q->frames_dropped) {
      uint64_t dr = r->frames_read - q->frames_read;
      uint64_t dd = r->frames_dropped - q->frames_dropped;
      rps = (double)dr / dt;
      if (dr + dd) drop = 100.0 * (double)dd / (double)(dr + dd);
    }
    uint64_t lag = r->last_frame_seen && r->last_frame_seen <= h->frame_seq
                       ? h->frame_seq - r->last_frame_seen
                       : h->frame_seq;
    char hb[32] = "never";
    if (r->heartbeat_ns) cli_fmt_ns(cli_age_ns(s->now, r->heartbeat_ns), hb, sizeof hb);
    fprintf(o, "%7llu %7d %5s %9s %7llu %9.1f %5.1f%% %11llu %9llu%s\n",
            (unsigned long long)r->reader_id, (int)r->pid,
            r->alive > 0 ? "yes" : r->alive == 0 ? "DEAD" : "?", hb,
            (unsigned long long)lag, rps, drop,
            (unsigned long long)r->frames_read,
            (unsigned long long)r->frames_dropped, el);
    rows++;
  }
  if (!rows) fprintf(o, "  (no readers attached)%s\n", el);
  if (tty) fputs("\033[J", o); /* clear whatever was below last time */
}

int cmd_top(int argc, char **argv) {
  static const struct option opts[] = {
      {"interval", required_argument, NULL, 'i'},
      {"iterations", required_argument, NULL, 'n'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  uint64_t interval_ms = 500, iterations = 0;
  int c;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":i:n:h", opts, NULL)) != -1) {
    switch (c) {
    case 'i':
      if (cli_parse_u64(optarg, 50, 60000, &interval_ms) != 0)
        return cli_usage("top", "--interval: expected 50..60000 ms, got '%s'", optarg);
      break;
    case 'n':
      if (cli_parse_u64(optarg, 1, UINT32_MAX, &iterations) != 0)
        return cli_usage("top", "--iterations: expected a count >= 1, got '%s'", optarg);
      break;
    case 'h': fputs(top_usage, stdout); return CLI_OK;
    case ':': return cli_usage("top", "option '%s' needs a value", argv[optind - 1]);
    default: return cli_usage("top", "unknown option '%s'", argv[optind - 1]);
    }
  }
  if (optind >= argc) return cli_usage("top", "missing channel NAME");
  if (argc - optind > 1)
    return cli_usage("top", "unexpected argument '%s'", argv[optind + 1]);
  const char *name = argv[optind];
  if (shmx_name_check(name) != 0) {
    cli_chan_error("top", name, SHMX_E_NAME);
    return CLI_USAGE;
  }
  shmx_inspector *in = NULL;
  int rc = shmx_inspector_open(name, &in);
  if (rc < 0) {
    cli_chan_error("top", name, rc);
    return CLI_ERR;
  }

  os_on_stop(&top_stop);
  int tty = os_isatty(0) && os_isatty(1);
  if (tty && os_term_raw() != 0) tty = 0;

  char *screen = NULL;
  size_t screen_len = 0;
  top_sample prev, cur;
  memset(&prev, 0, sizeof prev);
  /* A first sample shortly before the first screen, so rates show at once. */
  if (sample_take(in, &prev) < 0) sample_free(&prev);
  cli_sleep_ns(100000000u, (volatile int *)&top_stop);
  int status = CLI_OK, reopened = 0;
  uint64_t iter = 0;
  while (!top_stop) {
    rc = sample_take(in, &cur);
    if (rc < 0) {
      sample_free(&cur);
      os_term_restore();
      cli_chan_error("top", name, rc);
      status = CLI_ERR;
      break;
    }
    /* Is the segment we map still the channel? */
    int alive = shmx_channel_owner_alive(name);
    const char *st = cur.h.closed ? "closed"
                     : alive == SHMX_E_NOCHANNEL ? "removed"
                     : cur.h.owner_alive == 0 ? "STALE (producer died)"
                     : "live";
    int gone = cur.h.closed || alive == SHMX_E_NOCHANNEL || cur.h.owner_alive == 0;
    if (gone && alive == 1 && !reopened) {
      /* A new producer owns the name: follow it (once per refresh). */
      shmx_inspector *in2 = NULL;
      if (shmx_inspector_open(name, &in2) == 0) {
        shmx_inspector_close(in);
        in = in2;
        sample_free(&cur);
        sample_free(&prev);
        reopened = 1;
        continue;
      }
    }
    reopened = 0;
    FILE *o = os_memstream();
    if (!o) {
      sample_free(&cur);
      os_term_restore();
      cli_error("top", "out of memory");
      status = CLI_ERR;
      break;
    }
    if (tty) fputs("\033[H", o);
    int max_rows = -1;
    if (tty) {
      /* 6 lines of header, one for "... more", one spare. */
      int rows = os_term_rows(1);
      if (rows > 0) max_rows = rows > 9 ? rows - 8 : 1;
    }
    render(o, name, st, &cur, &prev, tty, max_rows);
    if (!tty) fputc('\n', o);
    screen = os_memstream_done(o, &screen_len);
    if (screen)
      cli_write_fitted(stdout, screen, screen_len, tty ? cli_term_cols(1) : 0);
    fflush(stdout);
    free(screen);
    screen = NULL;
    sample_free(&prev);
    prev = cur;
    iter++;
    if (iterations && iter >= iterations) break;
    if (!tty && gone) break;
    /* Wait for the next refresh or a key. */
    double deadline = cli_now_s() + (double)interval_ms / 1e3;
    while (!top_stop) {
      double left = deadline - cli_now_s();
      if (left <= 0) break;
      if (!tty) {
        cli_sleep_ns((uint64_t)(left * 1e9), (volatile int *)&top_stop);
        break;
      }
      int key = os_wait_key((int)(left * 1000) + 1);
      if (key == -2) { /* end of input */
        top_stop = 1;
        break;
      }
      if (key >= 0) {
        if (key == 'q' || key == 'Q' || key == 3 || key == 4) top_stop = 1;
        if (!top_stop) break; /* any other key: refresh now */
      }
    }
  }
  sample_free(&prev);
  os_term_restore();
  shmx_inspector_close(in);
  return status;
}

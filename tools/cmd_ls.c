/*
 * cmd_ls.c -- `shmx ls`: every channel on the machine, one line each.
 *
 * The frame rate is measured: the header of every channel is read twice,
 * --interval apart (default 200 ms; 0 skips it and prints no rate).
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static const char ls_usage[] =
    "usage: shmx ls [--json] [--interval MS]\n"
    "\n"
    "List every shmx channel on this machine: name, producer pid and status\n"
    "(live, STALE when the producer died, closed), frame slots, frame capacity,\n"
    "readers attached, frames published, frame rate and memory used.\n"
    "Channels that cannot be read are listed with the cause (permission denied,\n"
    "corrupted). Remove stale channels with 'shmx rm --stale'.\n"
    "\n"
    "Options:\n"
    "  -j, --json         one JSON document: {\"channels\": [...]}\n"
    "  -i, --interval MS  sample the frame rate over MS milliseconds\n"
    "                     (default 200; 0 = do not measure)\n"
    "  -h, --help         this help\n";

typedef struct ls_row {
  const char *name;
  int err;                  /* 0, or why the channel cannot be read */
  const char *not_channel;  /* the file is a FIFO, symlink...: not a channel */
  int gone;                 /* stale, and its memory is gone (Windows: a dead
                               producer's section goes with its last mapper) */
  shmx_header_info h;
  uint64_t seq0;            /* frame_seq at the first sample */
  double t0, t1;
  double rate;              /* frames/s, < 0 if not measured */
  uint32_t readers;         /* reader slots in use */
  uint64_t resident;
  shmx_inspector *in;
} ls_row;

static const char *row_status(const ls_row *r) {
  if (r->err) return cli_cause(r->err);
  if (r->h.closed) return "closed";
  if (r->h.owner_alive == 0) return "STALE";
  if (r->h.owner_alive < 0) return "unknown";
  return "live";
}

static uint32_t count_readers(shmx_inspector *in, uint32_t reader_slots) {
  if (reader_slots == 0 || reader_slots > 1024) return 0;
  shmx_reader_info *ri = calloc(reader_slots, sizeof *ri);
  if (!ri) return 0;
  int n = shmx_inspector_readers(in, ri, (int)reader_slots);
  uint32_t c = 0;
  for (int i = 0; i < n; i++)
    if (ri[i].in_use) c++;
  free(ri);
  return c;
}

static void print_json(ls_row *rows, size_t n) {
  cli_json j;
  cli_json_init(&j, stdout);
  cli_json_obj(&j, NULL);
  cli_json_arr(&j, "channels");
  for (size_t i = 0; i < n; i++) {
    ls_row *r = &rows[i];
    cli_json_obj(&j, NULL);
    cli_json_str(&j, "name", r->name);
    if (r->gone) {
      cli_json_str(&j, "status", "STALE");
      cli_json_bool(&j, "stale", 1);
      cli_json_bool(&j, "owner_alive", 0);
      cli_json_str(&j, "memory", "gone");
      cli_json_end(&j);
      continue;
    }
    cli_json_str(&j, "status", r->not_channel ? "not a channel"
                               : r->err   ? "error"
                                          : row_status(r));
    cli_json_bool(&j, "stale", !r->err && r->h.owner_alive == 0);
    if (r->not_channel) cli_json_str(&j, "file_type", r->not_channel);
    if (r->err) {
      cli_json_str(&j, "error", cli_cause(r->err));
      cli_json_str(&j, "error_code", shmx_err_name(r->err));
      cli_json_end(&j);
      continue;
    }
    cli_json_i64(&j, "owner_pid", r->h.owner_pid);
    if (r->h.owner_alive < 0)
      cli_json_null(&j, "owner_alive");
    else
      cli_json_bool(&j, "owner_alive", r->h.owner_alive);
    cli_json_bool(&j, "closed", r->h.closed);
    cli_json_u64(&j, "slots", r->h.slots);
    cli_json_u64(&j, "reader_slots", r->h.reader_slots);
    cli_json_u64(&j, "frame_bytes_cap", r->h.frame_bytes_cap);
    cli_json_u64(&j, "readers", r->readers);
    cli_json_u64(&j, "frames", r->h.frame_seq);
    if (r->rate >= 0)
      cli_json_dbl(&j, "rate_hz", r->rate);
    else
      cli_json_null(&j, "rate_hz");
    cli_json_u64(&j, "total_bytes", r->h.total_bytes);
    cli_json_u64(&j, "resident_bytes", r->resident);
    cli_json_end(&j);
  }
  cli_json_end(&j);
  cli_json_end(&j);
}

static void print_table(ls_row *rows, size_t n) {
  int w = 4;
  for (size_t i = 0; i < n; i++) {
    int l = (int)strlen(rows[i].name);
    if (l > w) w = l;
  }
  if (w > 40) w = 40;
  printf("%-*s  %7s  %-7s  %5s  %9s  %7s  %10s  %8s  %9s\n", w, "NAME", "PID",
         "STATUS", "SLOTS", "FRAME CAP", "READERS", "FRAMES", "RATE/s",
         "MEMORY");
  for (size_t i = 0; i < n; i++) {
    ls_row *r = &rows[i];
    if (r->not_channel) {
      printf("%-*s  %7s  not a channel (a %s; shmx never opens it)\n", w,
             r->name, "-", r->not_channel);
      continue;
    }
    if (r->gone) {
      printf("%-*s  %7s  %-7s  (its memory is gone: nothing maps it)\n", w, r->name, "-",
             "STALE");
      continue;
    }
    if (r->err) {
      printf("%-*s  %7s  %s (%s)\n", w, r->name, "-", cli_cause(r->err),
             shmx_err_name(r->err));
      continue;
    }
    char cap[32], mem[32], rd[32], rate[32];
    cli_fmt_bytes(r->h.frame_bytes_cap, cap, sizeof cap);
    cli_fmt_bytes(r->resident ? r->resident : r->h.total_bytes, mem,
                  sizeof mem);
    snprintf(rd, sizeof rd, "%u/%u", r->readers, r->h.reader_slots);
    if (r->rate >= 0)
      snprintf(rate, sizeof rate, "%.1f", r->rate);
    else
      snprintf(rate, sizeof rate, "-");
    printf("%-*s  %7d  %-7s  %5u  %9s  %7s  %10llu  %8s  %9s\n", w, r->name,
           (int)r->h.owner_pid, row_status(r), r->h.slots, cap, rd,
           (unsigned long long)r->h.frame_seq, rate, mem);
  }
}

int cmd_ls(int argc, char **argv) {
  static const struct option opts[] = {{"json", no_argument, NULL, 'j'},
                                       {"interval", required_argument, NULL, 'i'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  int json = 0;
  uint64_t interval_ms = 200;
  int c;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":ji:h", opts, NULL)) != -1) {
    switch (c) {
    case 'j': json = 1; break;
    case 'i':
      if (cli_parse_u64(optarg, 0, 60000, &interval_ms) != 0)
        return cli_usage("ls", "--interval: expected 0..60000 ms, got '%s'",
                         optarg);
      break;
    case 'h': fputs(ls_usage, stdout); return CLI_OK;
    case ':': return cli_usage("ls", "option '%s' needs a value", argv[optind - 1]);
    default: return cli_usage("ls", "unknown option '%s'", argv[optind - 1]);
    }
  }
  if (optind < argc)
    return cli_usage("ls", "unexpected argument '%s'", argv[optind]);

  cli_names names;
  int rc = cli_names_collect(&names);
  if (rc < 0) {
    cli_error("ls", "cannot list channels: %s (%s)", cli_cause(rc),
              shmx_errmsg());
    return CLI_ERR;
  }
  ls_row *rows = calloc(names.n ? names.n : 1, sizeof *rows);
  if (!rows) {
    cli_names_free(&names);
    cli_error("ls", "out of memory");
    return CLI_ERR;
  }
  int any_live = 0;
  for (size_t i = 0; i < names.n; i++) {
    ls_row *r = &rows[i];
    r->name = names.v[i];
    r->rate = -1;
    rc = shmx_inspector_open(r->name, &r->in);
    if (rc == 0) rc = shmx_inspector_header(r->in, &r->h);
    if (rc == SHMX_E_DEAD) { /* stale, nothing left to read */
      r->gone = 1;
      continue;
    }
    if (rc < 0) {
      r->err = rc;
      if (rc == SHMX_E_CORRUPT) r->not_channel = cli_not_channel(r->name);
      continue;
    }
    r->t0 = cli_now_s();
    r->seq0 = r->h.frame_seq;
    r->readers = count_readers(r->in, r->h.reader_slots);
    r->resident = cli_segment_resident(r->name);
    if (r->h.owner_alive && !r->h.closed) any_live = 1;
  }
  if (any_live && interval_ms > 0) {
    cli_sleep_ns(interval_ms * 1000000ull, NULL);
    for (size_t i = 0; i < names.n; i++) {
      ls_row *r = &rows[i];
      if (r->err || !r->in) continue;
      shmx_header_info h2;
      if (shmx_inspector_header(r->in, &h2) != 0) continue;
      r->t1 = cli_now_s();
      /* A restarted producer starts over at frame 1: no rate then. */
      if (h2.session_id == r->h.session_id && h2.frame_seq >= r->seq0 &&
          r->t1 > r->t0)
        r->rate = (double)(h2.frame_seq - r->seq0) / (r->t1 - r->t0);
      r->h = h2;
      r->readers = count_readers(r->in, h2.reader_slots);
    }
  } else if (interval_ms > 0) {
    for (size_t i = 0; i < names.n; i++)
      if (!rows[i].err) rows[i].rate = 0;
  }
  if (json)
    print_json(rows, names.n);
  else if (names.n == 0)
    printf("no shmx channels (looked in %s for %s*)\n", shmx_channel_dir(),
           SHMX_SEGMENT_PREFIX);
  else
    print_table(rows, names.n);
  for (size_t i = 0; i < names.n; i++) shmx_inspector_close(rows[i].in);
  free(rows);
  cli_names_free(&names);
  return CLI_OK;
}

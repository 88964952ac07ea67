/*
 * cmd_inspect.c -- `shmx inspect NAME`: everything the read-only inspector
 * sees in a channel: header, schema, readers, frame slots. Text or JSON.
 * The channel is not disturbed (read-only mapping, no reader slot taken).
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "os.h"
#include "util.h"

static const char inspect_usage[] =
    "usage: shmx inspect NAME [--json] [--all]\n"
    "       shmx inspect FILE.mcap [--json]\n"
    "\n"
    "A path to a file (with a '/', or ending in .mcap or .part) is a recording:\n"
    "its channels, schemas, frames, time range and missed frames.\n"
    "\n"
    "Show a channel as the read-only inspector sees it: header (producer pid\n"
    "and liveness, geometry, frames published), schema (streams with dtype,\n"
    "components, layout, bytes per element), readers (id, pid, alive,\n"
    "heartbeat age, last frame seen, lag), and the state of every frame slot.\n"
    "\n"
    "Options:\n"
    "  -j, --json  the same as one JSON document\n"
    "  -a, --all   also list free reader slots\n"
    "  -h, --help  this help\n"
    "\n"
    "Exit status: 0 ok, 1 the channel cannot be read (not found, permission\n"
    "denied, corrupted), 2 usage error.\n";

typedef struct snapshot {
  shmx_header_info h;
  const shmx_stream_info *streams;
  int n_streams;
  shmx_reader_info *readers;
  int n_readers;
  shmx_slot_info *slots;
  int n_slots;
  uint64_t now;
} snapshot;

static const char *slot_state_name(uint32_t s) {
  switch (s) {
  case SHMX_SLOT_EMPTY: return "empty";
  case SHMX_SLOT_WRITING: return "writing";
  case SHMX_SLOT_PUBLISHED: return "published";
  default: return "unknown";
  }
}

static const char *status_name(const shmx_header_info *h) {
  if (h->closed) return "closed";
  if (h->owner_alive == 0) return "stale";
  if (h->owner_alive < 0) return "unknown";
  return "live";
}

/* Frames the reader is behind the newest published one. */
static uint64_t reader_lag(const snapshot *s, const shmx_reader_info *r) {
  if (r->last_frame_seen == 0 || r->last_frame_seen > s->h.frame_seq)
    return s->h.frame_seq;
  return s->h.frame_seq - r->last_frame_seen;
}

static void hex(const uint8_t *p, uint32_t n, char *out, size_t cap) {
  static const char d[] = "0123456789abcdef";
  size_t o = 0;
  for (uint32_t i = 0; i < n && o + 3 <= cap; i++) {
    out[o++] = d[p[i] >> 4];
    out[o++] = d[p[i] & 15];
  }
  out[o < cap ? o : cap - 1] = 0;
}

static void print_json(const char *name, const snapshot *s, int all) {
  cli_json j;
  cli_json_init(&j, stdout);
  cli_json_obj(&j, NULL);
  cli_json_str(&j, "name", name);
  cli_json_str(&j, "status", status_name(&s->h));
  cli_json_obj(&j, "header");
  char buf[64];
  snprintf(buf, sizeof buf, "0x%016" PRIx64, s->h.magic);
  cli_json_str(&j, "magic", buf);
  snprintf(buf, sizeof buf, "%u.%u", s->h.version_major, s->h.version_minor);
  cli_json_str(&j, "version", buf);
  snprintf(buf, sizeof buf, "0x%016" PRIx64, s->h.session_id);
  cli_json_str(&j, "session_id", buf);
  cli_json_i64(&j, "owner_pid", s->h.owner_pid);
  if (s->h.owner_alive < 0)
    cli_json_null(&j, "owner_alive");
  else
    cli_json_bool(&j, "owner_alive", s->h.owner_alive);
  cli_json_bool(&j, "closed", s->h.closed);
  cli_json_u64(&j, "flags", s->h.flags);
  cli_json_bool(&j, "crc32c", (s->h.flags & SHMX_CREATE_CRC32C) != 0);
  cli_json_u64(&j, "slots", s->h.slots);
  cli_json_u64(&j, "reader_slots", s->h.reader_slots);
  cli_json_u64(&j, "static_bytes_cap", s->h.static_bytes_cap);
  cli_json_u64(&j, "static_bytes_used", s->h.static_bytes_used);
  cli_json_u64(&j, "static_gen", s->h.static_gen);
  cli_json_u64(&j, "frame_bytes_cap", s->h.frame_bytes_cap);
  cli_json_u64(&j, "slot_bytes", s->h.slot_bytes);
  cli_json_u64(&j, "control_per_reader", s->h.control_per_reader);
  cli_json_u64(&j, "total_bytes", s->h.total_bytes);
  cli_json_u64(&j, "frame_seq", s->h.frame_seq);
  cli_json_u64(&j, "last_publish_ns", s->h.last_publish_ns);
  if (s->h.last_publish_ns)
    cli_json_u64(&j, "last_publish_age_ns",
                 cli_age_ns(s->now, s->h.last_publish_ns));
  else
    cli_json_null(&j, "last_publish_age_ns");
  cli_json_u64(&j, "readers_connected", s->h.readers_connected);
  cli_json_u64(&j, "waiters", s->h.waiters);
  cli_json_u64(&j, "fd_armed", s->h.fd_armed);
  cli_json_u64(&j, "create_ns", s->h.create_ns);
  cli_json_end(&j);

  cli_json_arr(&j, "streams");
  for (int i = 0; i < s->n_streams; i++) {
    const shmx_stream_info *st = &s->streams[i];
    cli_json_obj(&j, NULL);
    cli_json_u64(&j, "id", st->id);
    cli_json_str(&j, "name", st->name);
    cli_json_u64(&j, "dtype", st->dtype);
    cli_json_str(&j, "dtype_name", shmx_dtype_name(st->dtype));
    cli_json_u64(&j, "components", st->components);
    cli_json_u64(&j, "layout", st->layout);
    cli_json_str(&j, "layout_name", shmx_layout_name(st->layout));
    cli_json_u64(&j, "bytes_per_elem", st->bytes_per_elem);
    cli_json_u64(&j, "extra_len", st->extra_len);
    if (st->extra && st->extra_len > 0 && st->extra_len <= 256) {
      char hx[513];
      hex(st->extra, st->extra_len, hx, sizeof hx);
      cli_json_str(&j, "extra_hex", hx);
    }
    cli_json_end(&j);
  }
  cli_json_end(&j);

  cli_json_arr(&j, "readers");
  for (int i = 0; i < s->n_readers; i++) {
    const shmx_reader_info *r = &s->readers[i];
    if (!r->in_use && !all) continue;
    cli_json_obj(&j, NULL);
    cli_json_u64(&j, "slot", r->slot);
    cli_json_bool(&j, "in_use", r->in_use);
    cli_json_u64(&j, "id", r->reader_id);
    cli_json_i64(&j, "pid", r->pid);
    if (r->alive < 0)
      cli_json_null(&j, "alive");
    else
      cli_json_bool(&j, "alive", r->alive);
    cli_json_u64(&j, "heartbeat_ns", r->heartbeat_ns);
    if (r->in_use && r->heartbeat_ns)
      cli_json_u64(&j, "heartbeat_age_ns", cli_age_ns(s->now, r->heartbeat_ns));
    else
      cli_json_null(&j, "heartbeat_age_ns");
    cli_json_u64(&j, "last_frame_seen", r->last_frame_seen);
    cli_json_u64(&j, "lag", r->in_use ? reader_lag(s, r) : 0);
    cli_json_u64(&j, "frames_read", r->frames_read);
    cli_json_u64(&j, "frames_dropped", r->frames_dropped);
    cli_json_u64(&j, "generation", r->generation);
    cli_json_end(&j);
  }
  cli_json_end(&j);

  cli_json_arr(&j, "slots");
  for (int i = 0; i < s->n_slots; i++) {
    const shmx_slot_info *sl = &s->slots[i];
    cli_json_obj(&j, NULL);
    cli_json_u64(&j, "index", sl->index);
    cli_json_str(&j, "state", slot_state_name(sl->state));
    cli_json_u64(&j, "frame_id", sl->frame_id);
    cli_json_u64(&j, "pins", sl->pins);
    cli_json_u64(&j, "payload_bytes", sl->payload_bytes);
    cli_json_bool(&j, "latest", sl->latest);
    cli_json_end(&j);
  }
  cli_json_end(&j);
  cli_json_end(&j);
}

static void print_text(const char *name, const snapshot *s, int all) {
  const shmx_header_info *h = &s->h;
  char a[32], b[32], c[32], d[32];
  printf("channel   %s  (%s/%s%s)\n", name, shmx_channel_dir(), SHMX_SEGMENT_PREFIX, name);
  printf("status    %s, producer pid %d%s\n", status_name(h), (int)h->owner_pid,
         h->owner_alive == 0 ? " (dead: remove with 'shmx rm')" : "");
  printf("format    %u.%u, session %016" PRIx64 "%s\n", h->version_major,
         h->version_minor, h->session_id,
         (h->flags & SHMX_CREATE_CRC32C) ? ", crc32c checksums" : "");
  if (h->create_ns) {
    time_t t = (time_t)(h->create_ns / 1000000000u);
    struct tm tm;
    char when[64] = "?";
    if (gmtime_r(&t, &tm)) strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", &tm);
    printf("created   %s\n", when);
  }
  printf("geometry  %u frame slots of %s (frame capacity %s), %u reader slots,\n"
         "          control ring %s per reader, schema %llu of %llu bytes "
         "(generation %u)\n",
         h->slots, cli_fmt_bytes(h->slot_bytes, a, sizeof a),
         cli_fmt_bytes(h->frame_bytes_cap, b, sizeof b), h->reader_slots,
         cli_fmt_bytes(h->control_per_reader, c, sizeof c),
         (unsigned long long)h->static_bytes_used,
         (unsigned long long)h->static_bytes_cap, h->static_gen);
  uint64_t res = cli_segment_resident(name);
  printf("memory    %s segment", cli_fmt_bytes(h->total_bytes, a, sizeof a));
  if (res) printf(", %s resident", cli_fmt_bytes(res, b, sizeof b));
  printf("\n");
  if (h->frame_seq && h->last_publish_ns)
    printf("frames    %llu published, last %s ago\n",
           (unsigned long long)h->frame_seq,
           cli_fmt_ns(cli_age_ns(s->now, h->last_publish_ns), d, sizeof d));
  else
    printf("frames    %llu published\n", (unsigned long long)h->frame_seq);

  printf("\nstreams (%d)\n", s->n_streams);
  if (s->n_streams > 0) {
    printf("  %6s  %-20s  %-8s  %5s  %-6s  %10s  %5s\n", "ID", "NAME", "DTYPE",
           "COMP", "LAYOUT", "BYTES/ELEM", "EXTRA");
    for (int i = 0; i < s->n_streams; i++) {
      const shmx_stream_info *st = &s->streams[i];
      char nm[SHMX_STREAM_NAME_MAX + 1];
      printf("  %6u  %-20s  %-8s  %5u  %-6s  %10u  %5u\n", st->id,
             cli_printable(st->name, nm, sizeof nm),
             shmx_dtype_name(st->dtype), st->components,
             shmx_layout_name(st->layout), st->bytes_per_elem, st->extra_len);
    }
  }

  int in_use = 0;
  for (int i = 0; i < s->n_readers; i++) in_use += s->readers[i].in_use != 0;
  printf("\nreaders (%d of %u slots in use; %u blocked in wait%s)\n", in_use,
         h->reader_slots, h->waiters, h->fd_armed ? "; event fds armed" : "");
  if (in_use > 0 || all) {
    printf("  %4s  %6s  %7s  %-5s  %9s  %10s  %6s  %10s  %8s\n", "SLOT", "ID",
           "PID", "ALIVE", "HEARTBEAT", "LAST FRAME", "LAG", "READ", "DROPPED");
    for (int i = 0; i < s->n_readers; i++) {
      const shmx_reader_info *r = &s->readers[i];
      if (!r->in_use) {
        if (all) printf("  %4u  (free)\n", r->slot);
        continue;
      }
      char hb[32];
      if (r->heartbeat_ns)
        cli_fmt_ns(cli_age_ns(s->now, r->heartbeat_ns), hb, sizeof hb);
      else
        snprintf(hb, sizeof hb, "never");
      printf("  %4u  %6llu  %7d  %-5s  %9s  %10llu  %6llu  %10llu  %8llu\n",
             r->slot, (unsigned long long)r->reader_id, (int)r->pid,
             r->alive > 0 ? "yes" : r->alive == 0 ? "DEAD" : "?", hb,
             (unsigned long long)r->last_frame_seen,
             (unsigned long long)reader_lag(s, r),
             (unsigned long long)r->frames_read,
             (unsigned long long)r->frames_dropped);
    }
  }

  printf("\nframe slots (%d)\n", s->n_slots);
  if (s->n_slots > 0) {
    printf("  %4s  %-9s  %10s  %4s  %10s\n", "SLOT", "STATE", "FRAME", "PINS",
           "PAYLOAD");
    for (int i = 0; i < s->n_slots; i++) {
      const shmx_slot_info *sl = &s->slots[i];
      printf("  %4u  %-9s  %10llu  %4u  %10s%s\n", sl->index,
             slot_state_name(sl->state), (unsigned long long)sl->frame_id,
             sl->pins, cli_fmt_bytes(sl->payload_bytes, a, sizeof a),
             sl->latest ? "  <- latest" : "");
    }
  }
}

int cmd_inspect(int argc, char **argv) {
  static const struct option opts[] = {{"json", no_argument, NULL, 'j'},
                                       {"all", no_argument, NULL, 'a'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  int json = 0, all = 0, c;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":jah", opts, NULL)) != -1) {
    switch (c) {
    case 'j': json = 1; break;
    case 'a': all = 1; break;
    case 'h': fputs(inspect_usage, stdout); return CLI_OK;
    default: return cli_usage("inspect", "unknown option '%s'", argv[optind - 1]);
    }
  }
  if (optind >= argc) return cli_usage("inspect", "missing channel NAME");
  if (argc - optind > 1)
    return cli_usage("inspect", "unexpected argument '%s'", argv[optind + 1]);
  const char *name = argv[optind];
  /* A recording: an existing regular file, or a path ending in .mcap or
   * .part (the channel is looked for otherwise; channel names have no '/'). */
  size_t nl = strlen(name);
  if ((os_is_file(name) && strchr(name, '/')) ||
      (nl > 5 && !strcmp(name + nl - 5, ".mcap") && (strchr(name, '/') || os_is_file(name))) ||
      (nl > 5 && !strcmp(name + nl - 5, ".part")))
    return cli_inspect_recording(name, json);
  if (shmx_name_check(name) != 0) {
    cli_chan_error("inspect", name, SHMX_E_NAME);
    return CLI_USAGE;
  }

  shmx_inspector *in = NULL;
  snapshot s;
  memset(&s, 0, sizeof s);
  int rc = shmx_inspector_open(name, &in);
  if (rc == 0) rc = shmx_inspector_header(in, &s.h);
  if (rc == 0) rc = shmx_inspector_streams(in, &s.streams, &s.n_streams);
  if (rc == 0 && s.h.reader_slots > 0 && s.h.reader_slots <= 1024) {
    s.readers = calloc(s.h.reader_slots, sizeof *s.readers);
    if (!s.readers) rc = SHMX_E_ENOMEM;
    if (rc == 0) {
      rc = shmx_inspector_readers(in, s.readers, (int)s.h.reader_slots);
      if (rc >= 0) s.n_readers = rc, rc = 0;
    }
  }
  if (rc == 0 && s.h.slots > 0 && s.h.slots <= 1024) {
    s.slots = calloc(s.h.slots, sizeof *s.slots);
    if (!s.slots) rc = SHMX_E_ENOMEM;
    if (rc == 0) {
      rc = shmx_inspector_slots(in, s.slots, (int)s.h.slots);
      if (rc >= 0) s.n_slots = rc, rc = 0;
    }
  }
  if (rc < 0) {
    cli_chan_error("inspect", name, rc);
  } else {
    s.now = shmx_now_ns();
    if (json)
      print_json(name, &s, all);
    else
      print_text(name, &s, all);
  }
  free(s.readers);
  free(s.slots);
  shmx_inspector_close(in);
  return rc < 0 ? CLI_ERR : CLI_OK;
}

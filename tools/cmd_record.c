/*
 * cmd_record.c -- `shmx record`, `shmx play`, `shmx recover` and `shmx
 * inspect FILE.mcap`: recordings in MCAP (include/shmx_record.h,
 * docs/recording.md).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "schemablob.h"
#include "shmx_record.h"
#include "util.h"

static volatile sig_atomic_t g_stop;
static void on_signal(int sig) {
  (void)sig;
  g_stop = 1;
}

static void catch_signals(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal; /* no SA_RESTART: poll and sleeps return */
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);
}

/* ---- shmx record ------------------------------------------------------------ */

static const char record_usage[] =
    "usage: shmx record NAME... -o FILE.mcap [options]\n"
    "\n"
    "Record every frame of the channels into an indexed MCAP file. It is\n"
    "written as FILE.mcap.part and renamed when finished (SIGINT, SIGTERM,\n"
    "SIGHUP, --duration or --frames). A recorder that is killed leaves the\n"
    ".part file: 'shmx recover' turns its complete chunks into a valid file.\n"
    "Channels need not exist yet; a producer that restarts is followed.\n"
    "\n"
    "options:\n"
    "  -o, --output FILE      the recording (never overwritten)\n"
    "  --compress CODEC       none (default: zero-copy reads), zstd or lz4\n"
    "  --level N              compression level (default: the codec's)\n"
    "  --chunk-size BYTES     close a chunk at this size (default 4 MiB)\n"
    "  --chunk-ms MS          ... or this long after its first frame (default\n"
    "                         1000): at most this much is lost in a crash\n"
    "  --split-size BYTES     start a new file past this size: FILE-0000.mcap,\n"
    "                         FILE-0001.mcap, ... (no frame lost at a cut)\n"
    "  --split-duration S     ... or after S seconds\n"
    "  --duration S           stop after S seconds\n"
    "  --frames N             stop after N frames\n"
    "  --no-crc               skip chunk CRC32s (faster, undetected damage)\n"
    "  --sync                 fdatasync after every chunk (power loss)\n"
    "  --mode OCTAL           file permissions (default 0600)\n"
    "  --foxglove             also write image streams (extra \"image:WxH[:enc]\")\n"
    "                         and f32x3 point streams as foxglove.RawImage /\n"
    "                         foxglove.PointCloud channels NAME/STREAM\n"
    "  --json                 JSON lines on stdout: ready, stats, exit\n"
    "  -h, --help             this help\n"
    "\n"
    "Exit status: 0 ok, 1 error, 2 usage error.\n";

static int parse_codec(const char *s, uint32_t *out) {
  if (!strcmp(s, "none")) *out = SHMX_REC_NONE;
  else if (!strcmp(s, "zstd")) *out = SHMX_REC_ZSTD;
  else if (!strcmp(s, "lz4")) *out = SHMX_REC_LZ4;
  else return -1;
  return 0;
}

static void rec_json(const char *event, shmx_recorder *r) {
  shmx_rec_stats s;
  shmx_recorder_stats(r, &s);
  printf("{\"event\":\"%s\",\"path\":", event);
  cli_json_write_string(stdout, shmx_recorder_path(r));
  printf(",\"frames\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"dropped\":%" PRIu64
         ",\"file_bytes\":%" PRIu64 ",\"chunks\":%" PRIu64 ",\"files\":%u,\"attached\":%u}\n",
         s.frames, s.bytes, s.dropped, s.file_bytes, s.chunks, s.files, s.attached);
  fflush(stdout);
}

int cmd_record(int argc, char **argv) {
  enum { O_COMP = 256, O_LEVEL, O_CSIZE, O_CMS, O_SSIZE, O_SDUR, O_DUR, O_FRAMES, O_NOCRC,
         O_SYNC, O_MODE, O_JSON, O_FOX };
  static const struct option opts[] = {
      {"output", required_argument, NULL, 'o'},
      {"compress", required_argument, NULL, O_COMP},
      {"level", required_argument, NULL, O_LEVEL},
      {"chunk-size", required_argument, NULL, O_CSIZE},
      {"chunk-ms", required_argument, NULL, O_CMS},
      {"split-size", required_argument, NULL, O_SSIZE},
      {"split-duration", required_argument, NULL, O_SDUR},
      {"duration", required_argument, NULL, O_DUR},
      {"frames", required_argument, NULL, O_FRAMES},
      {"no-crc", no_argument, NULL, O_NOCRC},
      {"sync", no_argument, NULL, O_SYNC},
      {"mode", required_argument, NULL, O_MODE},
      {"json", no_argument, NULL, O_JSON},
      {"foxglove", no_argument, NULL, O_FOX},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  shmx_rec_config cfg;
  shmx_rec_config_init(&cfg);
  const char *out = NULL;
  double duration = -1, d;
  uint64_t v, frames = 0;
  int json = 0, c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
    switch (c) {
    case 'o': out = optarg; break;
    case O_COMP:
      if (parse_codec(optarg, &cfg.compression))
        return cli_usage("record", "--compress: none, zstd or lz4");
      break;
    case O_LEVEL:
      if (cli_parse_u64(optarg, 1, 22, &v)) return cli_usage("record", "--level: 1..22");
      cfg.level = (int)v;
      break;
    case O_CSIZE:
      if (cli_parse_u64(optarg, 64 << 10, 1 << 30, &cfg.chunk_bytes))
        return cli_usage("record", "--chunk-size: 65536 .. 1073741824 bytes");
      break;
    case O_CMS:
      if (cli_parse_u64(optarg, 1, 3600000, &v)) return cli_usage("record", "--chunk-ms: 1..3600000");
      cfg.chunk_ns = v * 1000000;
      break;
    case O_SSIZE:
      if (cli_parse_u64(optarg, 1 << 20, UINT64_MAX / 2, &cfg.split_bytes))
        return cli_usage("record", "--split-size: bytes, at least 1 MiB");
      break;
    case O_SDUR:
      if (cli_parse_double(optarg, 0.01, 1e7, &d)) return cli_usage("record", "--split-duration: seconds");
      cfg.split_ns = (uint64_t)(d * 1e9);
      break;
    case O_DUR:
      if (cli_parse_double(optarg, 0, 1e9, &duration)) return cli_usage("record", "--duration: seconds");
      break;
    case O_FRAMES:
      if (cli_parse_u64(optarg, 1, UINT64_MAX / 2, &frames)) return cli_usage("record", "--frames: N >= 1");
      break;
    case O_NOCRC: cfg.no_crc = 1; break;
    case O_SYNC: cfg.sync = 1; break;
    case O_MODE: {
      char *end;
      unsigned long m = strtoul(optarg, &end, 8);
      if (*end || m > 0777 || !(m & 0600)) return cli_usage("record", "--mode: octal, e.g. 0640");
      cfg.mode = (uint32_t)m;
      break;
    }
    case O_JSON: json = 1; break;
    case O_FOX: cfg.foxglove = 1; break;
    case 'h': fputs(record_usage, stdout); return CLI_OK;
    default: return cli_usage("record", "bad option");
    }
  }
  if (!out) return cli_usage("record", "needs -o FILE.mcap");
  if (optind >= argc) return cli_usage("record", "needs at least one channel NAME");
  for (int i = optind; i < argc; i++)
    if (shmx_name_check(argv[i])) return cli_usage("record", "'%s' is not a channel name", argv[i]);
  shmx_recorder *r;
  int rc = shmx_recorder_open(out, &cfg, &r);
  if (rc) {
    cli_error("record", "%s", shmx_errmsg());
    return CLI_ERR;
  }
  for (int i = optind; i < argc; i++)
    if ((rc = shmx_recorder_add(r, argv[i]))) {
      cli_error("record", "%s", shmx_errmsg());
      shmx_recorder_close(r);
      return rc == SHMX_E_DUPLICATE ? CLI_USAGE : CLI_ERR;
    }
  catch_signals();
  if (json) rec_json("ready", r);
  fprintf(stderr, "shmx record: writing %s\n", shmx_recorder_path(r));
  double t0 = cli_now_s();
  while (!g_stop && !rc) {
    double left = duration >= 0 ? t0 + duration - cli_now_s() : 1.0;
    if (left <= 0) break;
    rc = shmx_recorder_run(r, (int64_t)((left < 1.0 ? left : 1.0) * 1e9), frames, &g_stop);
    shmx_rec_stats s;
    shmx_recorder_stats(r, &s);
    if (frames && s.frames >= frames) break;
    if (json && !rc) rec_json("stats", r);
  }
  if (rc) cli_error("record", "%s (the .part file is kept: see 'shmx recover')", shmx_errmsg());
  shmx_rec_stats s;
  shmx_recorder_stats(r, &s);
  if (json) rec_json("exit", r);
  int crc = shmx_recorder_close(r);
  if (crc && !rc) {
    cli_error("record", "finishing: %s", shmx_errmsg());
    rc = crc;
  }
  fprintf(stderr, "shmx record: %" PRIu64 " frames (%" PRIu64 " missed), %" PRIu64
          " bytes in %u file(s)\n", s.frames, s.dropped, s.file_bytes, s.files);
  return rc ? CLI_ERR : CLI_OK;
}

/* ---- shmx recover ------------------------------------------------------------- */

int cmd_recover(int argc, char **argv) {
  static const struct option opts[] = {{"output", required_argument, NULL, 'o'},
                                       {"json", no_argument, NULL, 'j'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  const char *out = NULL;
  int json = 0, c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
    if (c == 'o') out = optarg;
    else if (c == 'j') json = 1;
    else if (c == 'h') {
      puts("usage: shmx recover IN -o OUT [--json]\n\n"
           "Rebuild an indexed MCAP file from IN (a recorder's .part file, or a\n"
           "recording whose end was lost): every message of every complete chunk,\n"
           "and the complete messages of a chunk left open, in order; nothing\n"
           "invented. OUT is never overwritten.");
      return CLI_OK;
    } else
      return cli_usage("recover", "bad option");
  }
  if (!out || optind != argc - 1) return cli_usage("recover", "needs IN and -o OUT");
  shmx_recover_stats st;
  int rc = shmx_recording_recover(argv[optind], out, &st);
  if (rc) {
    cli_error("recover", "%s", shmx_errmsg());
    return CLI_ERR;
  }
  if (json)
    printf("{\"chunks\":%" PRIu64 ",\"frames\":%" PRIu64 ",\"salvaged\":%" PRIu64
           ",\"bad_chunks\":%" PRIu64 ",\"tail_bytes\":%" PRIu64 "}\n",
           st.chunks, st.frames, st.salvaged, st.bad_chunks, st.tail_bytes);
  else
    printf("%s: %" PRIu64 " frames (%" PRIu64 " from an unfinished chunk) in %" PRIu64
           " chunks; %" PRIu64 " damaged chunks skipped, %" PRIu64 " torn bytes dropped\n",
           out, st.frames, st.salvaged, st.chunks, st.bad_chunks, st.tail_bytes);
  return CLI_OK;
}

/* ---- shmx inspect FILE.mcap ----------------------------------------------------- */

int cli_inspect_recording(const char *path, int json) {
  shmx_recording *r;
  int rc = shmx_recording_open(path, &r);
  if (rc) {
    cli_error("inspect", "%s", shmx_errmsg());
    return CLI_ERR;
  }
  shmx_rec_info in;
  uint64_t dropped = 0;
  int drc = shmx_recording_count_dropped(r, &dropped);
  shmx_recording_info(r, &in);
  double secs = in.frames ? (double)(in.end_ns - in.start_ns) / 1e9 : 0;
  char b1[32];
  if (json) {
    cli_json j;
    cli_json_init(&j, stdout);
    cli_json_obj(&j, NULL);
    cli_json_str(&j, "path", path);
    cli_json_str(&j, "library", in.library);
    cli_json_str(&j, "compression", in.compression);
    cli_json_u64(&j, "file_bytes", in.file_bytes);
    cli_json_u64(&j, "frames", in.frames);
    cli_json_u64(&j, "chunks", in.chunks);
    cli_json_u64(&j, "start_ns", in.start_ns);
    cli_json_u64(&j, "end_ns", in.end_ns);
    cli_json_dbl(&j, "duration_s", secs);
    if (drc == 0) cli_json_u64(&j, "dropped", dropped);
    else cli_json_null(&j, "dropped");
    cli_json_arr(&j, "channels");
    for (uint32_t i = 0; i < in.channels; i++) {
      const shmx_rec_channel *c = shmx_recording_channel(r, i);
      cli_json_obj(&j, NULL);
      cli_json_u64(&j, "id", c->id);
      cli_json_str(&j, "topic", c->topic);
      cli_json_u64(&j, "session", c->session);
      cli_json_u64(&j, "schema_gen", c->schema_gen);
      cli_json_u64(&j, "frames", c->frames);
      cli_json_u64(&j, "frame_bytes_cap", c->frame_bytes_cap);
      cli_json_arr(&j, "streams");
      for (int s = 0; s < c->n_streams; s++) {
        cli_json_obj(&j, NULL);
        cli_json_u64(&j, "id", c->streams[s].id);
        cli_json_str(&j, "name", c->streams[s].name);
        cli_json_str(&j, "dtype", shmx_dtype_name(c->streams[s].dtype));
        cli_json_u64(&j, "components", c->streams[s].components);
        cli_json_u64(&j, "bytes_per_elem", c->streams[s].bytes_per_elem);
        cli_json_end(&j);
      }
      cli_json_end(&j);
      cli_json_end(&j);
    }
    cli_json_end(&j);
    cli_json_end(&j);
    putchar('\n');
  } else {
    char tb[256];
    printf("recording  %s\n", cli_printable(path, tb, sizeof tb));
    printf("written by %s, compression %s, %s\n", cli_printable(in.library, tb, sizeof tb),
           in.compression, cli_fmt_bytes(in.file_bytes, b1, sizeof b1));
    printf("frames     %" PRIu64 " in %" PRIu64 " chunks over %.3f s", in.frames, in.chunks, secs);
    if (drc == 0) printf(", %" PRIu64 " missed by the recorder", dropped);
    printf("\n");
    for (uint32_t i = 0; i < in.channels; i++) {
      const shmx_rec_channel *c = shmx_recording_channel(r, i);
      printf("channel %u  '%s'  session %016" PRIx64 " schema %u  %" PRIu64 " frames\n", c->id,
             cli_printable(c->topic, tb, sizeof tb), c->session, c->schema_gen, c->frames);
      for (int s = 0; s < c->n_streams; s++)
        printf("  stream %-4u %-20s %-8s x%u  %u B/elem\n", c->streams[s].id,
               cli_printable(c->streams[s].name, tb, sizeof tb),
               shmx_dtype_name(c->streams[s].dtype), c->streams[s].components,
               c->streams[s].bytes_per_elem);
    }
  }
  shmx_recording_close(r);
  return CLI_OK;
}

/* ---- shmx play -------------------------------------------------------------------- */

static const char play_usage[] =
    "usage: shmx play FILE... [options]\n"
    "\n"
    "Publish the recorded frames again into live channels, with their recorded\n"
    "schema, frame_id and sim_time, at the recorded pace (deadlines taken from\n"
    "the first frame played: no drift). Several files (a split recording)\n"
    "play one after the other.\n"
    "\n"
    "options:\n"
    "  --as NAME              channel name (recordings of one channel only)\n"
    "  --rate R               speed factor (default 1; 2 = twice as fast)\n"
    "  --fast                 no pacing: as fast as possible\n"
    "  --start S, --end S     seconds from the recording's first frame\n"
    "  --loop                 start again at the end (frame ids go on rising)\n"
    "  --clock publish|log    pace by the producer's publish times (default)\n"
    "                         or by when the recorder saw each frame\n"
    "  --slots N              frame slots of the channels (default: recorded)\n"
    "  --mode OCTAL           channel permissions (default 0600)\n"
    "  --wait-readers N       after creating a channel, wait for N readers\n"
    "                         before publishing into it\n"
    "  --wait-timeout S       ... at most S seconds (default 10)\n"
    "  --spin-us US           spin this long before each frame's time instead\n"
    "                         of sleeping through it (default: adapted to how\n"
    "                         late sleeps wake here, 50..2000; 0: sleep only,\n"
    "                         least CPU, late by the wake-up latency)\n"
    "  --json                 JSON lines on stdout: ready, exit (with timing)\n"
    "  -h, --help             this help\n"
    "\n"
    "Exit status: 0 ok, 1 error, 2 usage error.\n";

typedef struct pacer {
  int fixed;
  uint64_t margin;   /* ns */
  double worst;      /* decaying maximum oversleep, ns */
} pacer;

typedef struct out_ch {
  char topic[SHMX_NAME_MAX + 1];
  shmx_server *srv;
  shmx__sb sb;
  uint8_t *blob;
  const void *rec_key;  /* the recording channel it was made from */
  uint64_t session;
  uint64_t first_id, last_id, offset, last_out;
} out_ch;

typedef struct play {
  const char *as;
  double rate;
  int fast, loop, by_log, json;
  double start_s, end_s;
  uint32_t slots, mode, wait_readers;
  double wait_timeout;
  pacer pace;           /* how the deadlines are waited for */
  out_ch ch[64];
  int n_ch;
  uint64_t frames, errors;
  uint64_t *late;       /* lateness samples, ns */
  size_t n_late, cap_late;
} play;

static void sleep_until(uint64_t t) {
  struct timespec ts = {(time_t)(t / 1000000000u), (long)(t % 1000000000u)};
  while (!g_stop && clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
  }
}

/* Sleep to a margin before the deadline, then spin to it: a sleeping
 * thread wakes late (timer slack, scheduling, and on a virtual machine the
 * wake-up of an idle vCPU: here up to milliseconds), a spinning one within a
 * microsecond. A fixed margin (--spin-us) or, by default, one that follows
 * how late this process's sleeps actually wake: 1.5 x a slowly decaying
 * maximum of the oversleep, plus 50 us, within [50 us, 2 ms]. */
static void wait_until(pacer *pc, uint64_t t) {
  if (t > pc->margin) {
    uint64_t want = t - pc->margin, before = shmx_now_ns();
    if (want > before) {
      sleep_until(want);
      uint64_t over = shmx_now_ns() - want;
      if (!pc->fixed) {
        pc->worst = pc->worst * 0.995 > (double)over ? pc->worst * 0.995 : (double)over;
        double m = 1.5 * pc->worst + 50e3;
        pc->margin = m < 50e3 ? 50000 : m > 2e6 ? 2000000 : (uint64_t)m;
      }
    }
  }
  while (!g_stop && shmx_now_ns() < t) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }
}

static int wait_readers(play *p, shmx_server *srv) {
  if (!p->wait_readers) return 0;
  uint64_t end = shmx_now_ns() + (uint64_t)(p->wait_timeout * 1e9);
  shmx_reader_info ri[1024];
  while (!g_stop) {
    int n = shmx_server_readers(srv, ri, 1024), live = 0;
    for (int i = 0; i < n; i++) live += ri[i].in_use;
    if (live >= (int)p->wait_readers) return 0;
    if (shmx_now_ns() > end) {
      cli_error("play", "channel '%s': %d of %u readers after %.1f s", shmx_server_name(srv),
                live, p->wait_readers, p->wait_timeout);
      return -1;
    }
    sleep_until(shmx_now_ns() + 2000000);
  }
  return -1;
}

/* The live channel for recording channel c, (re)made as its schema says. */
static out_ch *producer_for(play *p, const shmx_rec_channel *c) {
  const char *topic = p->as ? p->as : c->topic;
  out_ch *o = NULL;
  for (int i = 0; i < p->n_ch; i++)
    if (!strcmp(p->ch[i].topic, topic)) o = &p->ch[i];
  if (o && o->rec_key == c) return o;
  if (!o) {
    if (p->n_ch == 64) return NULL;
    o = &p->ch[p->n_ch++];
    memset(o, 0, sizeof *o);
    snprintf(o->topic, sizeof o->topic, "%s", topic);
  }
  shmx__sb sb;
  uint8_t *blob = malloc(c->schema_len ? c->schema_len : 1);
  if (!blob) return NULL;
  memcpy(blob, c->schema, c->schema_len);
  if (shmx__sb_decode(blob, c->schema_len, &sb)) {
    free(blob);
    cli_error("play", "channel '%s': recorded schema: %s", topic, shmx_errmsg());
    return NULL;
  }
  int rc = -1;
  if (o->srv && o->session == c->session && shmx__sb_extends(&o->sb, &sb))
    rc = shmx__sb_grow(o->srv, &o->sb, &sb);
  if (rc) {
    int had = o->srv != NULL;
    shmx_server_destroy(o->srv);
    o->srv = NULL;
    if ((rc = shmx__sb_create(topic, &sb, p->slots, p->mode, &o->srv))) {
      cli_chan_error("play", topic, rc);
      shmx__sb_free(&sb);
      free(blob);
      return NULL;
    }
    o->first_id = o->last_id = o->offset = o->last_out = 0;
    if (!had && wait_readers(p, o->srv)) {
      shmx__sb_free(&sb);
      free(blob);
      return NULL;
    }
  }
  shmx__sb_free(&o->sb);
  free(o->blob);
  o->sb = sb;
  o->blob = blob;
  o->rec_key = c;
  o->session = c->session;
  return o;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* Play one file once. pass 0 learns each channel's id span for loops. */
static int play_file(play *p, const char *path, int pass) {
  shmx_recording *r;
  int rc = shmx_recording_open(path, &r);
  if (rc) {
    cli_error("play", "%s", shmx_errmsg());
    return -1;
  }
  shmx_rec_info in;
  shmx_recording_info(r, &in);
  if (p->as) {
    for (uint32_t i = 1; i < in.channels; i++)
      if (strcmp(shmx_recording_channel(r, i)->topic, shmx_recording_channel(r, 0)->topic)) {
        cli_error("play", "--as needs a recording of one channel; %s has several", path);
        shmx_recording_close(r);
        return -1;
      }
  }
  uint64_t from = in.start_ns + (uint64_t)(p->start_s * 1e9);
  uint64_t to = p->end_s >= 0 ? in.start_ns + (uint64_t)(p->end_s * 1e9) : UINT64_MAX;
  uint64_t pos;
  if (!in.frames || shmx_recording_find_time(r, NULL, from, &pos)) {
    shmx_recording_close(r);
    return 0;
  }
  uint64_t t_first = 0, wall0 = 0;
  int first = 1;
  for (; !g_stop; ) {
    shmx_rec_frame f;
    if ((rc = shmx_recording_read_at(r, pos, &f))) {
      cli_error("play", "%s: %s", path, shmx_errmsg());
      p->errors++;
      if (shmx_recording_step(r, NULL, 1, &pos)) break;
      continue;
    }
    if (f.log_ns < from) {
      shmx_rec_frame_release(&f);
      if (shmx_recording_step(r, NULL, 1, &pos)) break;
      continue;
    }
    if (f.log_ns > to) {
      shmx_rec_frame_release(&f);
      break;
    }
    const shmx_rec_channel *c = shmx_recording_channel(r, f.channel);
    out_ch *o = producer_for(p, c);
    if (!o) {
      shmx_rec_frame_release(&f);
      rc = -1;
      break;
    }
    uint64_t t = p->by_log ? f.log_ns : f.publish_time_ns;
    if (first) {
      t_first = t;
      wall0 = shmx_now_ns();
      first = 0;
    }
    uint64_t deadline = wall0;
    if (!p->fast && t > t_first) deadline += (uint64_t)((double)(t - t_first) / p->rate);
    if (!p->fast) wait_until(&p->pace, deadline);
    if (g_stop) {
      shmx_rec_frame_release(&f);
      break;
    }
    int e = shmx_server_begin(o->srv);
    for (uint32_t i = 0; i < f.tlv_count && !e; i++)
      e = shmx_server_append(o->srv, f.streams[i].stream_id, f.streams[i].data,
                             f.streams[i].bytes, f.streams[i].elem_count);
    if (pass == 0) {
      if (!o->first_id) o->first_id = f.frame_id;
      o->last_id = f.frame_id;
    }
    uint64_t id = f.frame_id + o->offset;
    if (!e) e = shmx_server_publish_id(o->srv, id, f.sim_time);
    uint64_t now = shmx_now_ns();
    if (e) {
      shmx_server_abort(o->srv);
      p->errors++;
      cli_error("play", "frame %" PRIu64 ": %s", f.frame_id, shmx_errmsg());
    } else {
      o->last_out = id;
      p->frames++;
      if (!p->fast) {
        if (p->n_late == p->cap_late) {
          size_t cap = p->cap_late ? p->cap_late * 2 : 4096;
          uint64_t *q = realloc(p->late, cap * sizeof *q);
          if (q) {
            p->late = q;
            p->cap_late = cap;
          }
        }
        if (p->n_late < p->cap_late) p->late[p->n_late++] = now > deadline ? now - deadline : 0;
      }
    }
    shmx_rec_frame_release(&f);
    if (shmx_recording_step(r, NULL, 1, &pos)) break;
  }
  shmx_recording_close(r);
  return rc ? -1 : 0;
}

int cmd_play(int argc, char **argv) {
  enum { O_AS = 256, O_RATE, O_FAST, O_START, O_END, O_LOOP, O_CLOCK, O_SLOTS, O_MODE, O_WR,
         O_WT, O_JSON, O_SPIN };
  static const struct option opts[] = {
      {"as", required_argument, NULL, O_AS},       {"rate", required_argument, NULL, O_RATE},
      {"fast", no_argument, NULL, O_FAST},         {"start", required_argument, NULL, O_START},
      {"end", required_argument, NULL, O_END},     {"loop", no_argument, NULL, O_LOOP},
      {"clock", required_argument, NULL, O_CLOCK}, {"slots", required_argument, NULL, O_SLOTS},
      {"mode", required_argument, NULL, O_MODE},   {"wait-readers", required_argument, NULL, O_WR},
      {"wait-timeout", required_argument, NULL, O_WT}, {"json", no_argument, NULL, O_JSON},
      {"spin-us", required_argument, NULL, O_SPIN},
      {"help", no_argument, NULL, 'h'},            {NULL, 0, NULL, 0}};
  play p;
  memset(&p, 0, sizeof p);
  p.rate = 1;
  p.end_s = -1;
  p.wait_timeout = 10;
  p.pace.margin = 300000; /* until the first sleeps say better */
  uint64_t v;
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (c) {
    case O_AS:
      if (shmx_name_check(optarg)) return cli_usage("play", "--as: not a channel name");
      p.as = optarg;
      break;
    case O_RATE:
      if (cli_parse_double(optarg, 1e-3, 1e6, &p.rate)) return cli_usage("play", "--rate: 0.001..1e6");
      break;
    case O_FAST: p.fast = 1; break;
    case O_START:
      if (cli_parse_double(optarg, 0, 1e9, &p.start_s)) return cli_usage("play", "--start: seconds");
      break;
    case O_END:
      if (cli_parse_double(optarg, 0, 1e9, &p.end_s)) return cli_usage("play", "--end: seconds");
      break;
    case O_LOOP: p.loop = 1; break;
    case O_CLOCK:
      if (!strcmp(optarg, "log")) p.by_log = 1;
      else if (strcmp(optarg, "publish")) return cli_usage("play", "--clock: publish or log");
      break;
    case O_SLOTS:
      if (cli_parse_u64(optarg, 2, 1024, &v)) return cli_usage("play", "--slots: 2..1024");
      p.slots = (uint32_t)v;
      break;
    case O_MODE: {
      char *end;
      unsigned long m = strtoul(optarg, &end, 8);
      if (*end || m > 0777 || !(m & 0600)) return cli_usage("play", "--mode: octal, e.g. 0640");
      p.mode = (uint32_t)m;
      break;
    }
    case O_WR:
      if (cli_parse_u64(optarg, 0, 1024, &v)) return cli_usage("play", "--wait-readers: 0..1024");
      p.wait_readers = (uint32_t)v;
      break;
    case O_WT:
      if (cli_parse_double(optarg, 0, 1e6, &p.wait_timeout)) return cli_usage("play", "--wait-timeout: seconds");
      break;
    case O_JSON: p.json = 1; break;
    case O_SPIN:
      if (cli_parse_u64(optarg, 0, 1000000, &v)) return cli_usage("play", "--spin-us: 0..1000000");
      p.pace.fixed = 1;
      p.pace.margin = v * 1000;
      break;
    case 'h': fputs(play_usage, stdout); return CLI_OK;
    default: return cli_usage("play", "bad option");
    }
  }
  if (optind >= argc) return cli_usage("play", "needs a FILE");
  if (p.end_s >= 0 && p.end_s < p.start_s) return cli_usage("play", "--end before --start");
  catch_signals();
  if (p.json) {
    printf("{\"event\":\"ready\"}\n");
    fflush(stdout);
  }
  int rc = 0;
  uint64_t t0 = shmx_now_ns();
  for (int pass = 0; !rc && !g_stop; pass++) {
    for (int i = optind; i < argc && !rc && !g_stop; i++) rc = play_file(&p, argv[i], pass);
    if (!p.loop || !p.frames) break;
    for (int i = 0; i < p.n_ch; i++) /* ids go on rising: next pass above this one */
      p.ch[i].offset = p.ch[i].last_out - p.ch[i].first_id + 1;
  }
  double secs = (double)(shmx_now_ns() - t0) / 1e9;
  uint64_t p50 = 0, p99 = 0, mx = 0;
  if (p.n_late) {
    qsort(p.late, p.n_late, sizeof *p.late, cmp_u64);
    p50 = p.late[p.n_late / 2];
    p99 = p.late[(size_t)((double)(p.n_late - 1) * 0.99)];
    mx = p.late[p.n_late - 1];
  }
  if (p.json)
    printf("{\"event\":\"exit\",\"frames\":%" PRIu64 ",\"errors\":%" PRIu64
           ",\"seconds\":%.6f,\"late_p50_us\":%.1f,\"late_p99_us\":%.1f,\"late_max_us\":%.1f}\n",
           p.frames, p.errors, secs, p50 / 1e3, p99 / 1e3, mx / 1e3);
  else
    fprintf(stderr, "shmx play: %" PRIu64 " frames in %.2f s, %" PRIu64 " errors; late p50 %.1f us, "
            "p99 %.1f us\n", p.frames, secs, p.errors, p50 / 1e3, p99 / 1e3);
  for (int i = 0; i < p.n_ch; i++) {
    shmx_server_destroy(p.ch[i].srv);
    shmx__sb_free(&p.ch[i].sb);
    free(p.ch[i].blob);
  }
  free(p.late);
  return rc ? CLI_ERR : p.errors ? CLI_ERR : CLI_OK;
}

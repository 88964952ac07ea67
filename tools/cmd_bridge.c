/*
 * cmd_bridge.c -- `shmx bridge send|recv|keygen`: a channel over ZeroMQ to
 * other machines (src/bridge/, docs/bridge.md).
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bridge.h"
#include "util.h"

static const char bridge_usage[] =
    "usage: shmx bridge send NAME --bind ENDPOINT [options]\n"
    "       shmx bridge recv ENDPOINT [--as NAME] [options]\n"
    "       shmx bridge keygen PREFIX\n"
    "\n"
    "Carry channel NAME to other machines over ZeroMQ. 'send' reads the local\n"
    "channel and publishes each frame to every subscriber; 'recv' subscribes,\n"
    "creates the channel locally from the sender's schema and republishes each\n"
    "frame with the origin's frame_id and sim_time. Plain TCP is for trusted\n"
    "networks only: anyone who can reach the port reads every frame. With CURVE\n"
    "keys ('keygen') the link is encrypted and only holders of the server's\n"
    "public key can subscribe.\n"
    "\n"
    "send options:\n"
    "  --bind ENDPOINT        e.g. tcp://0.0.0.0:5600 (tcp://127.0.0.1:* picks\n"
    "                         a free port; the ready line says which)\n"
    "  --in-order             forward every frame in order (default: latest)\n"
    "  --compress CODEC       none (default), zstd or lz4 (if built in)\n"
    "  --level N              compression level (default 1)\n"
    "  --curve-secret FILE    CURVE server secret key (from keygen; mode 0600)\n"
    "  --wait SECONDS         wait this long for the channel to appear (or a\n"
    "                         dead producer's successor to take it over)\n"
    "recv options:\n"
    "  --as NAME              local channel name (default: the sender's)\n"
    "  --curve-server-public FILE  the sender's CURVE public key\n"
    "  --slots N              frame slots of the local channel (default: the\n"
    "                         sender's)\n"
    "  --mode OCTAL           permissions of the local channel (default 0600)\n"
    "  --max-bytes N          refuse a sender's schema for a channel larger\n"
    "                         than N bytes (default 1 GiB)\n"
    "both:\n"
    "  --busy-poll US         spin this many microseconds for the next frame\n"
    "                         or message before sleeping (default 0): lower\n"
    "                         latency for a CPU kept busy\n"
    "  --hwm N                frames queued per peer (default: send 64 MiB\n"
    "                         worth, 2..1000; recv 64)\n"
    "  --json                 JSON lines on stdout: ready, stats, exit\n"
    "  --stats-interval S     seconds between stats lines (default 1)\n"
    "  --duration S           stop after S seconds (default: until a signal)\n"
    "  -h, --help             this help\n"
    "\n"
    "SIGINT, SIGTERM and SIGHUP stop it cleanly (the receiver closes its\n"
    "channel). Exit status: 0 ok, 1 error, 2 usage error.\n";

static volatile sig_atomic_t g_stop;
static void on_signal(int sig) {
  (void)sig;
  g_stop = 1;
}

/* Read a Z85 key (40 chars) from the first line of path. A secret key file
 * must not be readable by group or others. */
static int read_key(const char *path, int secret, char key[41]) {
  FILE *f = fopen(path, "r");
  if (!f) {
    cli_error("bridge", "%s: %s", path, strerror(errno));
    return -1;
  }
  struct stat sb;
  if (secret && fstat(fileno(f), &sb) == 0 && (sb.st_mode & 077)) {
    cli_error("bridge", "%s: secret key readable by others (mode %03o); chmod 600 it",
              path, (unsigned)(sb.st_mode & 0777));
    fclose(f);
    return -1;
  }
  char line[128] = {0};
  char *got = fgets(line, sizeof line, f);
  fclose(f);
  size_t n = got ? strcspn(line, "\r\n \t") : 0;
  if (n != 40) {
    cli_error("bridge", "%s: not a CURVE key (40 Z85 characters)", path);
    return -1;
  }
  memcpy(key, line, 40);
  key[40] = 0;
  return 0;
}

static int keygen(int argc, char **argv) {
  if (argc != 2 || cli_is_help(argv[1]))
    return cli_usage("bridge", "keygen needs one PREFIX (writes PREFIX.key, PREFIX.pub)");
  char pub[41], sec[41], path[4096];
  if (shmx_bridge_keygen(pub, sec)) {
    cli_error("bridge", "keygen: %s", shmx_errmsg());
    return CLI_ERR;
  }
  const char *ext[2] = {".key", ".pub"};
  const char *val[2] = {sec, pub};
  for (int i = 0; i < 2; i++) {
    snprintf(path, sizeof path, "%s%s", argv[1], ext[i]);
    mode_t old = umask(i == 0 ? 077 : 022);
    FILE *f = fopen(path, "wx"); /* never overwrite a key */
    umask(old);
    if (!f || fprintf(f, "%s\n", val[i]) < 0 || fclose(f) != 0) {
      cli_error("bridge", "%s: %s", path, strerror(errno));
      return CLI_ERR;
    }
  }
  printf("wrote %s.key (secret: keep it on the sending host) and %s.pub\n", argv[1], argv[1]);
  return CLI_OK;
}

static void json_line(const char *event, const char *role, shmx_bridge *b,
                      const shmx_bridge_stats *s) {
  printf("{\"event\":\"%s\",\"role\":\"%s\",\"channel\":", event, role);
  cli_json_write_string(stdout, shmx_bridge_channel(b));
  printf(",\"endpoint\":");
  cli_json_write_string(stdout, shmx_bridge_endpoint(b));
  if (s)
    printf(",\"attached\":%d,\"frames\":%llu,\"bytes\":%llu,\"wire_bytes\":%llu,"
           "\"messages\":%llu,\"dropped_net\":%llu,\"queue_full\":%llu,\"skipped\":%llu,\"no_subscriber\":%llu,\"torn\":%llu,"
           "\"bad\":%llu,\"schema_wait\":%llu,\"schemas\":%llu,\"recreated\":%llu,"
           "\"sender_dropped\":%llu,\"subscribers\":%u,\"lat_n\":%llu,"
           "\"lat_p50_us\":%.1f,\"lat_p99_us\":%.1f,\"lat_max_us\":%.1f",
           s->attached, (unsigned long long)s->frames, (unsigned long long)s->bytes,
           (unsigned long long)s->wire_bytes, (unsigned long long)s->messages,
           (unsigned long long)s->dropped_net,
           (unsigned long long)s->queue_full,
           (unsigned long long)s->skipped, (unsigned long long)s->no_subscriber,
           (unsigned long long)s->torn, (unsigned long long)s->bad,
           (unsigned long long)s->schema_wait, (unsigned long long)s->schemas,
           (unsigned long long)s->recreated, (unsigned long long)s->sender_dropped,
           s->subscribers, (unsigned long long)s->lat_n, s->lat_p50_ns / 1e3,
           s->lat_p99_ns / 1e3, s->lat_max_ns / 1e3);
  printf("}\n");
  fflush(stdout);
}

int cmd_bridge(int argc, char **argv) {
  if (argc < 2 || cli_is_help(argv[1])) {
    fputs(bridge_usage, argc < 2 ? stderr : stdout);
    return argc < 2 ? CLI_USAGE : CLI_OK;
  }
  const char *sub = argv[1];
  if (!strcmp(sub, "keygen")) return keygen(argc - 1, argv + 1);
  int send = !strcmp(sub, "send");
  if (!send && strcmp(sub, "recv"))
    return cli_usage("bridge", "unknown subcommand '%s' (send, recv, keygen)", sub);
  enum { O_BIND = 256, O_INORDER, O_COMP, O_LEVEL, O_CSEC, O_WAIT, O_AS, O_CPUB,
         O_SLOTS, O_MODE, O_HWM, O_JSON, O_INT, O_DUR, O_SPIN, O_MAXB };
  static const struct option opts[] = {
      {"bind", required_argument, NULL, O_BIND},
      {"in-order", no_argument, NULL, O_INORDER},
      {"compress", required_argument, NULL, O_COMP},
      {"level", required_argument, NULL, O_LEVEL},
      {"curve-secret", required_argument, NULL, O_CSEC},
      {"wait", required_argument, NULL, O_WAIT},
      {"as", required_argument, NULL, O_AS},
      {"curve-server-public", required_argument, NULL, O_CPUB},
      {"slots", required_argument, NULL, O_SLOTS},
      {"mode", required_argument, NULL, O_MODE},
      {"hwm", required_argument, NULL, O_HWM},
      {"json", no_argument, NULL, O_JSON},
      {"stats-interval", required_argument, NULL, O_INT},
      {"duration", required_argument, NULL, O_DUR},
      {"busy-poll", required_argument, NULL, O_SPIN},
      {"max-bytes", required_argument, NULL, O_MAXB},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  shmx_bridge_opts o = {0};
  const char *csec = NULL, *cpub = NULL;
  char key[41];
  int json = 0;
  double interval = 1.0, duration = -1;
  uint64_t v;
  optind = 1;
  int c;
  while ((c = getopt_long(argc - 1, argv + 1, "h", opts, NULL)) != -1) {
    switch (c) {
    case O_BIND: o.endpoint = optarg; break;
    case O_INORDER: o.in_order = 1; break;
    case O_COMP:
      if ((o.codec = shmx_bridge_codec(optarg)) < 0)
        return cli_usage("bridge", "--compress %s: not one of none, zstd, lz4 built in", optarg);
      break;
    case O_LEVEL:
      if (cli_parse_u64(optarg, 1, 22, &v)) return cli_usage("bridge", "--level: 1..22");
      o.level = (int)v;
      break;
    case O_CSEC: csec = optarg; break;
    case O_WAIT:
      if (cli_parse_double(optarg, 0, 1e9, &o.wait_s)) return cli_usage("bridge", "--wait: seconds");
      break;
    case O_AS: o.channel = optarg; break;
    case O_CPUB: cpub = optarg; break;
    case O_SLOTS:
      if (cli_parse_u64(optarg, 2, 1024, &v)) return cli_usage("bridge", "--slots: 2..1024");
      o.slots = (uint32_t)v;
      break;
    case O_MODE: {
      char *end;
      unsigned long m = strtoul(optarg, &end, 8);
      if (*end || m > 0777 || !(m & 0600)) return cli_usage("bridge", "--mode: octal, e.g. 0640");
      o.mode = (uint32_t)m;
      break;
    }
    case O_HWM:
      if (cli_parse_u64(optarg, 1, 1000000, &v)) return cli_usage("bridge", "--hwm: 1..1000000");
      o.hwm = (int)v;
      break;
    case O_JSON: json = 1; break;
    case O_INT:
      if (cli_parse_double(optarg, 0.01, 3600, &interval))
        return cli_usage("bridge", "--stats-interval: 0.01..3600 s");
      break;
    case O_DUR:
      if (cli_parse_double(optarg, 0, 1e9, &duration)) return cli_usage("bridge", "--duration: seconds");
      break;
    case O_SPIN:
      if (cli_parse_u64(optarg, 0, 1000000, &v)) return cli_usage("bridge", "--busy-poll: 0..1000000 us");
      o.spin_us = (uint32_t)v;
      break;
    case O_MAXB:
      if (cli_parse_u64(optarg, 4096, UINT64_MAX / 2, &o.max_bytes))
        return cli_usage("bridge", "--max-bytes: bytes, at least 4096");
      break;
    case 'h': fputs(bridge_usage, stdout); return CLI_OK;
    default: return cli_usage("bridge", "bad option");
    }
  }
  char **rest = argv + 1 + optind;
  int nrest = argc - 1 - optind;
  if (nrest != 1)
    return cli_usage("bridge", "%s needs exactly one %s", sub, send ? "NAME" : "ENDPOINT");
  if (send) {
    o.channel = rest[0];
    if (!o.endpoint) return cli_usage("bridge", "send needs --bind ENDPOINT");
    if (cpub || o.slots || o.mode || o.max_bytes)
      return cli_usage("bridge", "--curve-server-public, --slots, --mode, --max-bytes are recv options");
    if (csec) {
      if (read_key(csec, 1, key)) return CLI_ERR;
      o.curve_secret = key;
    }
  } else {
    if (o.endpoint || o.in_order || o.codec || csec || o.wait_s)
      return cli_usage("bridge", "--bind, --in-order, --compress, --curve-secret, --wait are send options");
    o.endpoint = rest[0];
    if (cpub) {
      if (read_key(cpub, 0, key)) return CLI_ERR;
      o.curve_server_public = key;
    }
  }
  const char *role = send ? "send" : "recv";
  shmx_bridge *b;
  int rc = shmx_bridge_open(send, &o, &b);
  if (rc) {
    if (send && rc == SHMX_E_NOCHANNEL) cli_chan_error("bridge", o.channel, rc);
    else cli_error("bridge", "%s: %s", role, shmx_errmsg());
    return CLI_ERR;
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal; /* no SA_RESTART: zmq_poll returns EINTR */
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  if (json) json_line("ready", role, b, NULL);
  fprintf(stderr, "shmx bridge %s: %s %s %s\n", role, send ? "channel" : "endpoint",
          send ? o.channel : shmx_bridge_endpoint(b), send ? shmx_bridge_endpoint(b) : "");
  double t0 = cli_now_s(), next = t0 + interval;
  shmx_bridge_stats s;
  while (!g_stop) {
    double now = cli_now_s();
    if (duration >= 0 && now - t0 >= duration) break;
    double slice = next - now;
    if (duration >= 0 && t0 + duration - now < slice) slice = t0 + duration - now;
    if (slice < 0) slice = 0;
    shmx_bridge_run(b, (int64_t)(slice * 1e9), &g_stop);
    if (cli_now_s() >= next) {
      next += interval;
      if (json) {
        shmx_bridge_stats_get(b, &s);
        json_line("stats", role, b, &s);
      }
    }
  }
  shmx_bridge_stats_get(b, &s);
  if (json) json_line("exit", role, b, &s);
  else
    fprintf(stderr, "shmx bridge %s: %llu frames, %llu dropped on the network, %llu skipped, "
            "%llu bad messages\n", role, (unsigned long long)s.frames,
            (unsigned long long)(send ? s.dropped_net : s.sender_dropped),
            (unsigned long long)s.skipped, (unsigned long long)s.bad);
  shmx_bridge_close(b);
  return CLI_OK;
}

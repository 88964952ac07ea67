/*
 * cmd_bench.c -- `shmx bench`: runs the core benchmark suite (bench/).
 *
 * When meson defines SHMX_HAVE_BENCH_LIB the suite is linked in and called
 * as shmx_bench_main(argc, argv). Otherwise the `shmx-bench` program is
 * executed: next to this binary (installed), in ../bench (build tree), or
 * from PATH. Arguments after `bench` are passed through.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

#ifdef SHMX_HAVE_BENCH_LIB
int shmx_bench_main(int argc, char **argv);
#endif

static const char bench_usage[] =
    "usage: shmx bench [--json] [--quick] [--filter SUBSTR] [--rounds N]\n"
    "                  [--list]\n"
    "\n"
    "Run the core benchmark suite (publish and read latency, throughput,\n"
    "wake-up) and print p50/p99/p99.9 with ratios to this machine's own\n"
    "limits (memcpy, futex round trip) measured in the same run.\n"
    "\n"
    "Options (passed to the suite unchanged):\n"
    "  --json           one JSON object per line instead of the table\n"
    "  --quick          a short run (smoke test; figures not meaningful)\n"
    "  --filter SUBSTR  only cases whose name contains SUBSTR\n"
    "  --rounds N       interleaved rounds per group\n"
    "  --list           print the case names and exit\n"
    "  -h, --help       this help\n"
    "\n"
    "Exit status: 0 every case ran, 1 a case could not run, 2 usage error.\n";

#ifndef SHMX_HAVE_BENCH_LIB
/* Directory of the running executable into buf (no trailing slash). */
static int self_dir(char *buf, size_t cap) {
  ssize_t n = readlink("/proc/self/exe", buf, cap - 1);
  if (n <= 0 || (size_t)n >= cap - 1) return -1;
  buf[n] = 0;
  char *slash = strrchr(buf, '/');
  if (!slash) return -1;
  *slash = 0;
  return 0;
}
#endif

int cmd_bench(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--") == 0) break;
    if (cli_is_help(argv[i])) {
      fputs(bench_usage, stdout);
      return CLI_OK;
    }
  }
  fflush(stdout);
#ifdef SHMX_HAVE_BENCH_LIB
  char prog[] = "shmx bench";
  argv[0] = prog;
  int rc = shmx_bench_main(argc, argv);
  return rc == 0 ? CLI_OK : rc == 2 ? CLI_USAGE : CLI_ERR;
#else
  char dir[PATH_MAX];
  char path[PATH_MAX + 32];
  char **args = calloc((size_t)argc + 1, sizeof *args);
  if (!args) {
    cli_error("bench", "out of memory");
    return CLI_ERR;
  }
  char prog[] = "shmx-bench";
  args[0] = prog;
  for (int i = 1; i < argc; i++) args[i] = argv[i];
  args[argc] = NULL;
  if (self_dir(dir, sizeof dir) == 0) {
    static const char *const rel[] = {"/shmx-bench", "/../bench/shmx-bench"};
    for (size_t k = 0; k < 2; k++) {
      snprintf(path, sizeof path, "%s%s", dir, rel[k]);
      if (access(path, X_OK) == 0) execv(path, args);
    }
  }
  execvp("shmx-bench", args);
  int e = errno;
  free(args);
  cli_error("bench", "the benchmark suite is not available: cannot run "
                     "shmx-bench (%s); build it with 'make build'",
            strerror(e));
  return CLI_ERR;
#endif
}

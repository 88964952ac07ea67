/*
 * cmd_rm.c -- `shmx rm NAME...` and `shmx rm --stale`.
 *
 * Removal goes through shmx_channel_remove(), which itself refuses a channel
 * whose producer is alive (unless forced): checking liveness here first would
 * race with a producer starting in between.
 */
#include <getopt.h>
#include <string.h>

#include "util.h"

static const char rm_usage[] =
    "usage: shmx rm [--force] NAME...\n"
    "       shmx rm --stale [--dry-run] [PATTERN...]\n"
    "\n"
    "Remove channels (their files in /dev/shm; on Windows in %SHMX_DIR% or\n"
    "%LOCALAPPDATA%\\shmx). A channel whose producer is still running is\n"
    "refused (exit 1, 'in use') unless --force is given; readers that have\n"
    "it open keep their mapping until they close it.\n"
    "\n"
    "Options:\n"
    "  -f, --force    remove even if the producer is alive\n"
    "  -s, --stale    remove every stale channel (its producer died); with\n"
    "                 PATTERNs (shell globs such as 'cam*'), only those\n"
    "  -n, --dry-run  with --stale: only list what would be removed\n"
    "  -q, --quiet    print nothing on success\n"
    "  -h, --help     this help\n"
    "\n"
    "Exit status: 0 all removed, 1 some channel could not be removed\n"
    "(not found, in use, permission denied), 2 usage error.\n";

static int matches(const char *name, char **pats, int n_pats) {
  if (n_pats == 0) return 1;
  for (int i = 0; i < n_pats; i++)
    if (cli_glob_match(pats[i], name)) return 1;
  return 0;
}

static int remove_stale(int dry_run, int quiet, char **pats, int n_pats) {
  cli_names names;
  int rc = cli_names_collect(&names);
  if (rc < 0) {
    cli_error("rm", "cannot list channels: %s (%s)", cli_cause(rc),
              shmx_errmsg());
    return CLI_ERR;
  }
  int status = CLI_OK;
  size_t removed = 0;
  for (size_t i = 0; i < names.n; i++) {
    const char *name = names.v[i];
    if (!matches(name, pats, n_pats)) continue;
    int alive = shmx_channel_owner_alive(name);
    if (alive != 0) continue; /* live, or unreadable: not known stale */
    if (dry_run) {
      printf("would remove stale channel '%s'\n", name);
      removed++;
      continue;
    }
    rc = shmx_channel_remove(name, 0);
    if (rc == SHMX_E_NOCHANNEL) continue; /* someone else removed it */
    if (rc < 0) {
      cli_chan_error("rm", name, rc);
      status = CLI_ERR;
      continue;
    }
    removed++;
    if (!quiet) printf("removed stale channel '%s'\n", name);
  }
  if (!quiet && removed == 0) printf("no stale channels\n");
  cli_names_free(&names);
  return status;
}

int cmd_rm(int argc, char **argv) {
  static const struct option opts[] = {{"force", no_argument, NULL, 'f'},
                                       {"stale", no_argument, NULL, 's'},
                                       {"dry-run", no_argument, NULL, 'n'},
                                       {"quiet", no_argument, NULL, 'q'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  int force = 0, stale = 0, dry_run = 0, quiet = 0, c;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":fsnqh", opts, NULL)) != -1) {
    switch (c) {
    case 'f': force = 1; break;
    case 's': stale = 1; break;
    case 'n': dry_run = 1; break;
    case 'q': quiet = 1; break;
    case 'h': fputs(rm_usage, stdout); return CLI_OK;
    default: return cli_usage("rm", "unknown option '%s'", argv[optind - 1]);
    }
  }
  if (stale) {
    if (force) return cli_usage("rm", "--stale and --force do not combine");
    return remove_stale(dry_run, quiet, argv + optind, argc - optind);
  }
  if (dry_run) return cli_usage("rm", "--dry-run needs --stale");
  if (optind >= argc) return cli_usage("rm", "missing channel NAME (or --stale)");
  for (int i = optind; i < argc; i++)
    if (shmx_name_check(argv[i]) != 0) {
      cli_chan_error("rm", argv[i], SHMX_E_NAME);
      return CLI_USAGE;
    }
  int status = CLI_OK;
  for (int i = optind; i < argc; i++) {
    const char *name = argv[i];
    int rc = shmx_channel_remove(name, force);
    if (rc == SHMX_E_EXISTS) {
      cli_chan_error("rm", name, rc);
      fprintf(stderr, "shmx rm: '%s' has a live producer; stop it, or use "
                      "--force to unlink it anyway\n", name);
      status = CLI_ERR;
    } else if (rc < 0) {
      cli_chan_error("rm", name, rc);
      status = CLI_ERR;
    } else if (!quiet) {
      printf("removed '%s'\n", name);
    }
  }
  return status;
}

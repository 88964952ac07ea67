/*
 * main.c -- `shmx`: see and manage shmx channels on this machine.
 *
 *   shmx ls | inspect NAME | top NAME | rm NAME | demo | bench | bridge |
 *        record | play | recover
 *
 * Each command lives in its own file (cmd_*.c) and returns the exit code:
 * 0 ok, 1 error, 2 usage.
 */
#include <stdio.h>
#include <string.h>

#include "util.h"

static const struct {
  const char *name;
  int (*fn)(int, char **);
  const char *summary;
} commands[] = {
    {"ls", cmd_ls, "list every channel on this machine (stale ones marked)"},
    {"inspect", cmd_inspect, "header, schema, readers and slots of a channel"},
    {"top", cmd_top, "live view of a channel: rates, readers, lag, drops"},
    {"rm", cmd_rm, "remove a channel whose producer is dead (or --stale)"},
    {"demo", cmd_demo, "a producer and readers in separate processes, live"},
    {"bench", cmd_bench, "run the core benchmark suite"},
    {"bridge", cmd_bridge, "carry a channel to other machines over ZeroMQ"},
    {"record", cmd_record, "record channels into an MCAP file"},
    {"play", cmd_play, "publish a recording again, paced as recorded"},
    {"recover", cmd_recover, "rebuild a recording a crash left unfinished"},
};

#ifndef SHMX_HAVE_BRIDGE
int cmd_bridge(int argc, char **argv) {
  (void)argc;
  (void)argv;
  cli_error("bridge", "this shmx was built without libzmq (install libzmq3-dev, rebuild)");
  return CLI_ERR;
}
#endif

static void usage(FILE *f) {
  fprintf(f,
          "usage: shmx COMMAND [ARGS...]\n"
          "\n"
          "Frame streaming between processes through shared memory.\n"
          "\n"
          "Commands:\n");
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].summary);
  fprintf(f,
          "\n"
          "Options:\n"
          "  -h, --help     this help ('shmx COMMAND --help' for a command)\n"
          "  -V, --version  print the library version\n"
          "\n"
          "Exit status: 0 ok, 1 error, 2 usage error.\n"
          "Channels live in %s as %sNAME; see docs/cli.md.\n",
          shmx_channel_dir(), SHMX_SEGMENT_PREFIX);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return CLI_USAGE;
  }
  const char *cmd = argv[1];
  if (cli_is_help(cmd) || strcmp(cmd, "help") == 0) {
    if (strcmp(cmd, "help") == 0 && argc > 2) {
      for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[2], commands[i].name) == 0) {
          char *hargv[] = {argv[2], (char *)"--help", NULL};
          return commands[i].fn(2, hargv);
        }
    }
    usage(stdout);
    return CLI_OK;
  }
  if (strcmp(cmd, "-V") == 0 || strcmp(cmd, "--version") == 0) {
    printf("shmx %s (segment format %d.%d)\n", shmx_version_string(),
           SHMX_FORMAT_MAJOR, SHMX_FORMAT_MINOR);
    return CLI_OK;
  }
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    if (strcmp(cmd, commands[i].name) == 0)
      return commands[i].fn(argc - 1, argv + 1);
  fprintf(stderr, "shmx: unknown command '%s'\n", cmd);
  usage(stderr);
  return CLI_USAGE;
}

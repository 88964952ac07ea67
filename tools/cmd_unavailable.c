/*
 * cmd_unavailable.c -- commands this build does not have (Windows: the
 * recorder and its tools use POSIX I/O and are not ported yet). Each says
 * so and exits 1, so scripts see an error rather than a missing command.
 */
#include "util.h"

static int unavailable(const char *cmd) {
  cli_error(cmd, "not available in the Windows build yet (recordings are POSIX-only; "
                 "see docs/recording.md)");
  return CLI_ERR;
}

int cmd_record(int argc, char **argv) {
  (void)argc, (void)argv;
  return unavailable("record");
}
int cmd_play(int argc, char **argv) {
  (void)argc, (void)argv;
  return unavailable("play");
}
int cmd_recover(int argc, char **argv) {
  (void)argc, (void)argv;
  return unavailable("recover");
}
int cli_inspect_recording(const char *path, int json) {
  (void)path, (void)json;
  return unavailable("inspect");
}

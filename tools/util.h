/*
 * util.h -- helpers shared by the `shmx` command-line tool's commands:
 * exit codes, error messages that name the channel and the cause, number
 * parsing, human formatting, a tiny streaming JSON writer and a sorted list
 * of channel names.
 *
 * Every command is `int cmd_X(int argc, char **argv)` where argv[0] is the
 * command name; it returns an exit code (CLI_OK, CLI_ERR, CLI_USAGE).
 */
#ifndef SHMX_TOOLS_UTIL_H
#define SHMX_TOOLS_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "shmx.h"

#if defined(__GNUC__)
#  define CLI_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#  define CLI_PRINTF(a, b)
#endif

enum { CLI_OK = 0, CLI_ERR = 1, CLI_USAGE = 2 };

/* ---- commands (one file each) ----------------------------------------- */
int cmd_ls(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_top(int argc, char **argv);
int cmd_rm(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_bridge(int argc, char **argv); /* cmd_bridge.c, or a stub without libzmq */
int cmd_record(int argc, char **argv);  /* cmd_record.c: recordings */
int cmd_play(int argc, char **argv);
int cmd_recover(int argc, char **argv);
/* `shmx inspect FILE.mcap` (cmd_record.c). */
int cli_inspect_recording(const char *path, int json);

/* ---- errors ------------------------------------------------------------- */

/* A short cause for an error code as a user would say it: "not found",
 * "permission denied", "corrupted", "stale", "in use", else the library's
 * message. Static string. */
const char *cli_cause(int err);

/* "shmx CMD: channel 'NAME': CAUSE (SHMX_E_X: detail)" on stderr, using
 * shmx_errmsg() for the detail (call it right after the failing call). */
void cli_chan_error(const char *cmd, const char *name, int err);
/* "shmx CMD: message" on stderr. */
void cli_error(const char *cmd, const char *fmt, ...) CLI_PRINTF(2, 3);
/* "shmx CMD: message" + "try 'shmx CMD --help'" on stderr; returns
 * CLI_USAGE. */
int cli_usage(const char *cmd, const char *fmt, ...) CLI_PRINTF(2, 3);

/* ---- arguments ---------------------------------------------------------- */

/* 1 if arg is -h or --help. */
int cli_is_help(const char *arg);
/* Parse a finite double in [lo, hi]; 0 or -1. */
int cli_parse_double(const char *s, double lo, double hi, double *out);
/* Parse an unsigned decimal integer in [lo, hi]; 0 or -1. */
int cli_parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out);

/* 1 if s matches the shell pattern pat: '*' any run, '?' one character,
 * '[abc]', '[a-z]', '[!...]' a set ('\\' quotes the next character), as
 * fnmatch(3) without flags. */
int cli_glob_match(const char *pat, const char *s);

/* ---- formatting --------------------------------------------------------- */

/* "512 B", "1.5 KiB", "3.2 MiB" ... into buf; returns buf. */
const char *cli_fmt_bytes(uint64_t bytes, char *buf, size_t cap);
/* "850 us", "12.3 ms", "4.0 s", "3 min" ... into buf; returns buf. */
const char *cli_fmt_ns(uint64_t ns, char *buf, size_t cap);
/* Age of a CLOCK_MONOTONIC timestamp ts (ns) at now; 0 if ts is in the
 * future. */
uint64_t cli_age_ns(uint64_t now, uint64_t ts);
/* Bytes the segment file occupies in RAM (st_blocks * 512), or 0 if it
 * cannot be stat'ed. */
uint64_t cli_segment_resident(const char *name);
/* What /dev/shm/shmx.NAME is when it is not a regular file ("FIFO",
 * "symlink", "directory", "socket", "device"), NULL if it is one or is gone.
 * lstat only: never opens it. */
const char *cli_not_channel(const char *name);

/* s with control characters (C0, DEL) replaced by '?', truncated to fit
 * buf: safe to print to a terminal. Returns buf. */
const char *cli_printable(const char *s, char *buf, size_t cap);

/* Columns of the terminal on fd, or 0 if unknown. */
int cli_term_cols(int fd);
/* Write text (len bytes) to out with every line cut to cols - 1 visible
 * characters; ANSI escape sequences (ESC [ ... final byte) are copied
 * whole and not counted. cols <= 0 copies unchanged. Keeps in-place
 * redraws aligned when the terminal is narrower than the view. */
void cli_write_fitted(FILE *out, const char *text, size_t len, int cols);

/* Monotonic seconds as a double (for rates). */
double cli_now_s(void);
/* Sleep for ns nanoseconds (restarts on EINTR unless *stop becomes set;
 * stop may be NULL). */
void cli_sleep_ns(uint64_t ns, volatile int *stop);

/* ---- JSON writer -------------------------------------------------------- */

/*
 * Streaming JSON to a FILE, pretty-printed with two-space indents. Keys are
 * passed with each value inside objects and NULL inside arrays. Strings are
 * escaped (control characters, quotes, backslash; bytes >= 0x80 pass through
 * as the UTF-8 they are, invalid UTF-8 is replaced by U+FFFD).
 *   cli_json j; cli_json_init(&j, stdout);
 *   cli_json_obj(&j, NULL); cli_json_str(&j, "name", "cam"); cli_json_end(&j);
 */
#define CLI_JSON_DEPTH 16
typedef struct cli_json {
  FILE *f;
  int depth;
  int count[CLI_JSON_DEPTH]; /* values written at each depth */
  char close[CLI_JSON_DEPTH];
} cli_json;

void cli_json_init(cli_json *j, FILE *f);
void cli_json_obj(cli_json *j, const char *key);
void cli_json_arr(cli_json *j, const char *key);
void cli_json_end(cli_json *j); /* closes the innermost object/array */
void cli_json_str(cli_json *j, const char *key, const char *v); /* NULL: null */
void cli_json_u64(cli_json *j, const char *key, uint64_t v);
void cli_json_i64(cli_json *j, const char *key, int64_t v);
void cli_json_dbl(cli_json *j, const char *key, double v); /* NaN/inf: null */
void cli_json_bool(cli_json *j, const char *key, int v);
void cli_json_null(cli_json *j, const char *key);
/* Write s as a JSON string literal (with quotes). */
void cli_json_write_string(FILE *f, const char *s);

/* ---- channel names ------------------------------------------------------ */

typedef struct cli_names {
  char **v;
  size_t n, cap;
} cli_names;

/* Every channel on the machine, sorted by name. 0 or an shmx error. */
int cli_names_collect(cli_names *out);
void cli_names_free(cli_names *names);

/* Liveness of a pid: 1 alive, 0 gone, -1 unknown (e.g. another user's). */
int cli_pid_alive(int32_t pid);

#endif /* SHMX_TOOLS_UTIL_H */

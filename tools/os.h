/*
 * os.h -- what the `shmx` tool needs from the system, in one place:
 * os_posix.c and os_win.c implement it; no other file of tools/ is
 * platform-specific.
 */
#ifndef SHMX_TOOLS_OS_H
#define SHMX_TOOLS_OS_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---- stopping ------------------------------------------------------------- */

/* Set *flag on Ctrl-C, SIGTERM, SIGHUP (Windows: console Ctrl-C, Ctrl-Break,
 * close). Interrupted waits return early. Also ignores SIGPIPE. */
void os_on_stop(volatile sig_atomic_t *flag);
/* Put the default handlers back (a child about to exec). */
void os_default_stop(void);

/* ---- terminal --------------------------------------------------------------- */

int os_isatty(int fd);
/* Columns / rows of the terminal on fd, 0 if unknown. */
int os_term_cols(int fd);
int os_term_rows(int fd);
/* Keys without Enter and without echo, the alternate screen, no cursor;
 * os_term_restore (also run at exit) undoes it. 0 or -1. */
int os_term_raw(void);
void os_term_restore(void);
/* Wait up to ms for a key on stdin: the key (0..255), -1 on timeout or a
 * signal, -2 on end of input. */
int os_wait_key(int ms);

/* ---- memory streams ----------------------------------------------------- */

/* A FILE that collects what is printed to it (a screen drawn off-screen);
 * os_memstream_done closes it and returns the bytes (malloc'd, *len set),
 * or NULL. */
FILE *os_memstream(void);
char *os_memstream_done(FILE *f, size_t *len);

/* ---- processes ---------------------------------------------------------- */

typedef struct os_child {
  int pid;
  void *handle; /* Windows: the process handle */
} os_child;

/* Start this program with argv[1..] = args (n of them) followed by
 * "--report-fd N", where N names the write end of a new pipe in the child;
 * *rfd receives its read end (non-blocking reads with os_read). 0 or
 * -errno. */
int os_spawn_self(const char *const *args, int n, os_child *c, int *rfd);
/* Exit status (0..255; 128+signal if killed) if c has exited, else -1. */
int os_child_status(os_child *c);
/* Ask c to stop (hard: kill it outright). */
void os_child_stop(os_child *c, int hard);
/* The descriptor a child was given with --report-fd (Windows: a handle
 * value), usable with write(2); -1 if it is not valid. */
int os_report_fd(uint64_t value);
/* Wait up to ms until one of fds[0..n) is readable (data or end of file);
 * sets ready[i]. Returns how many, 0 on timeout, -1 if interrupted. */
int os_wait_readable(const int *fds, int n, int ms, int *ready);
/* Read up to len bytes without blocking: > 0 bytes, 0 at end of file, -1
 * if nothing is there yet, -2 on an error. */
int os_read(int fd, void *buf, size_t len);
void os_close(int fd);

/* ---- channels and processes ------------------------------------------------- */

/* 1 alive, 0 gone, -1 unknown (e.g. another user's). */
int os_pid_alive(int32_t pid);
/* Memory the channel's segment holds (tmpfs blocks), 0 if unknown. */
uint64_t os_segment_resident(const char *name);
/* What the channel's segment file is when it is not a regular file
 * ("FIFO", "symlink", "directory", ...), NULL if it is one or is gone. */
const char *os_not_channel(const char *name);
/* Nonzero if path names an existing regular file. */
int os_is_file(const char *path);

/* ---- time ------------------------------------------------------------------- */

double os_now_s(void);
/* Sleep ns; returns early if *stop becomes set (stop may be NULL). */
void os_sleep_ns(uint64_t ns, volatile int *stop);
/* Sleep until CLOCK_MONOTONIC (shmx_now_ns) reaches t_ns or *stop is set. */
void os_sleep_until(uint64_t t_ns, volatile int *stop);
int os_getpid(void);

#endif /* SHMX_TOOLS_OS_H */

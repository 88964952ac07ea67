/* common.h -- helpers for the window manager tests: temp files of random
 * bytes that are removed at exit, even when a CHECK fails. */
#ifndef WINDOW_COMMON_H
#define WINDOW_COMMON_H

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define MAX_TMP 64
static char tmp_paths[MAX_TMP][300];
static int n_tmp;

static void tmp_cleanup(void) {
  for (int i = 0; i < n_tmp; i++) unlink(tmp_paths[i]);
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static inline uint64_t rng(void) { /* xorshift64* */
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 2685821657736338717ull;
}

/* A new file of `size` random bytes; *data receives a malloc'd copy. */
static inline const char *tmp_file(size_t size, uint8_t **data) {
  if (n_tmp == 0) atexit(tmp_cleanup);
  if (n_tmp >= MAX_TMP) abort();
  char *p = tmp_paths[n_tmp];
#ifdef _WIN32
  const char *tmp = getenv("TEMP") ? getenv("TEMP") : ".";
  snprintf(p, 300, "%s\\shmx-wtest-%d-XXXXXX", tmp, (int)getpid());
  int fd = mkstemp(p);
  if (fd >= 0) _setmode(fd, _O_BINARY);
#else
  snprintf(p, 300, "/tmp/shmx-wtest-%d-XXXXXX", (int)getpid());
  int fd = mkstemp(p);
#endif
  if (fd < 0) abort();
  n_tmp++;
  uint8_t *d = malloc(size ? size : 1);
  if (!d) abort();
  for (size_t i = 0; i < size; i++) d[i] = (uint8_t)(rng() >> 56);
  size_t off = 0;
  while (off < size) {
    ssize_t w = write(fd, d + off, size - off);
    if (w <= 0) abort();
    off += (size_t)w;
  }
  close(fd);
  if (data) *data = d;
  else free(d);
  return p;
}

#endif

/*
 * errors.c -- the one error list (SHMX_ERRNO_MAP in shmx.h) expanded into
 * names and messages, plus the thread-local detail behind shmx_errmsg().
 * Nothing here allocates; unknown codes get static fallbacks.
 */
#include <stdio.h>
#include <string.h>

#include "internal.h"

static _Thread_local char errmsg_buf[512];

const char *shmx_strerror(int err) {
  switch (err) {
  case SHMX_OK: return "success";
#define XX_SYS(name, msg) case -(name): return msg;
#define XX_OWN(name, val, msg) case (val): return msg;
    SHMX_SYS_ERRNO_MAP(XX_SYS)
    SHMX_ERRNO_MAP(XX_OWN)
#undef XX_SYS
#undef XX_OWN
  default: return err < 0 && err > -4000 ? "system error" : "unknown error";
  }
}

const char *shmx_err_name(int err) {
  switch (err) {
  case SHMX_OK: return "SHMX_OK";
#define XX_SYS(name, msg) case -(name): return #name;
#define XX_OWN(name, val, msg) case (val): return "SHMX_E_" #name;
    SHMX_SYS_ERRNO_MAP(XX_SYS)
    SHMX_ERRNO_MAP(XX_OWN)
#undef XX_SYS
#undef XX_OWN
  default: return "UNKNOWN";
  }
}

const char *shmx_errmsg(void) {
  return errmsg_buf[0] ? errmsg_buf : "no error detail";
}

/* Format into a scratch buffer first: callers may pass shmx_errmsg() itself
 * as an argument (to prefix context to an inner error). */
static int vset(int err, const char *fmt, va_list ap) {
  char tmp[sizeof errmsg_buf];
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  if (n < 0) n = 0;
  if ((size_t)n < sizeof tmp)
    snprintf(tmp + n, sizeof tmp - (size_t)n, ": %s", shmx_strerror(err));
  memcpy(errmsg_buf, tmp, sizeof tmp);
  return err;
}

int shmx__err(int err, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vset(err, fmt, ap);
  va_end(ap);
  return err;
}

int shmx__syserr(int errno_value, const char *fmt, ...) {
  va_list ap;
  int err = errno_value > 0 ? -errno_value : SHMX_E_INTERNAL;
  va_start(ap, fmt);
  vset(err, fmt, ap);
  va_end(ap);
  return err;
}

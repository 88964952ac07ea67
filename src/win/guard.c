/*
 * win/guard.c -- nothing to guard on Windows. A file with a mapped view
 * cannot be shrunk below it (SetEndOfFile fails with
 * ERROR_USER_MAPPED_FILE), so the truncation that posix/guard.c survives
 * cannot happen to a mapped segment or window here.
 */
#include "../internal.h"

int shmx__guard_add(void *base, uint64_t len, int prot, _Atomic uint32_t *flag) {
  (void)base, (void)len, (void)prot, (void)flag;
  return -1;
}

void shmx__guard_del(int handle) { (void)handle; }

int shmx__guard_on(void) { return 0; }

/*
 * channel.c -- machine-wide operations on channels by name: list, owner
 * liveness, removal.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>

#include "segment.h"

int shmx_channel_list(int (*fn)(const char *name, void *arg), void *arg) {
  if (!fn) return shmx__err(SHMX_E_ARG, "callback is NULL");
  DIR *d = opendir(shmx__shm_dir());
  if (!d) return shmx__syserr(errno, "list %s", shmx__shm_dir());
  size_t plen = strlen(SHMX_SEGMENT_PREFIX);
  struct dirent *e;
  int rc = 0;
  while ((e = readdir(d)) != NULL) {
    if (strncmp(e->d_name, SHMX_SEGMENT_PREFIX, plen) != 0) continue;
    const char *name = e->d_name + plen;
    if (shmx_name_check(name) != 0) continue;
    if ((rc = fn(name, arg)) != 0) break;
  }
  closedir(d);
  return rc;
}

int shmx_channel_owner_alive(const char *name) {
  char path[SHMX_NAME_MAX + 16];
  int rc = shmx_name_check(name);
  if (rc) return rc;
  shmx__seg_path(name, path, sizeof path);
  int fd = shmx__shm_open(path, O_RDONLY, 0);
  if (fd == -ENOENT) return shmx__err(SHMX_E_NOCHANNEL, "channel '%s'", name);
  if (fd < 0) return shmx__syserr(-fd, "channel '%s'", name);
  /* A producer creating the segment takes its lock right after creating
   * it: re-probe over ~20 ms before calling an unlocked segment stale. */
  int alive = shmx__seg_owner_alive(fd);
  for (int i = 0; alive == 0 && i < 2; i++) {
    shmx__sleep_ns(10 * 1000 * 1000);
    alive = shmx__seg_owner_alive(fd);
  }
  shmx__close(fd);
  return alive < 0 ? shmx__err(SHMX_E_INTERNAL, "channel '%s': lock probe", name)
                   : alive;
}

int shmx_channel_remove(const char *name, int force) {
  char path[SHMX_NAME_MAX + 16];
  int alive = shmx_channel_owner_alive(name);
  if (alive < 0) return alive;
  if (alive && !force)
    return shmx__err(SHMX_E_EXISTS, "channel '%s' has a live producer "
                     "(use force to remove it anyway)", name);
  shmx__seg_path(name, path, sizeof path);
  int rc = shmx__shm_unlink(path);
  if (rc == -ENOENT) return shmx__err(SHMX_E_NOCHANNEL, "channel '%s'", name);
  if (rc) return shmx__syserr(-rc, "channel '%s': unlink", name);
  return 0;
}

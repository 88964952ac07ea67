/*
 * channel.c -- machine-wide operations on channels by name: list, owner
 * liveness, removal.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>

#include "owner.h"
#include "segment.h"

const char *shmx_channel_dir(void) { return shmx__shm_dir(); }

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

/* Open channel name's segment read-only: never follows a link, never
 * blocks on a FIFO (SHMX_E_CORRUPT names what it is instead). */
static int open_seg(const char *name, shmx__fid *id) {
  char file[SHMX__FILE_CAP];
  int rc = shmx_name_check(name);
  if (rc) return rc;
  shmx__seg_file(name, file, sizeof file);
  int fd = shmx__shm_open(file, O_RDONLY, 0, id);
  if (fd == -ENOENT) return shmx__err(SHMX_E_NOCHANNEL, "channel '%s'", name);
  if (fd == SHMX_E_CORRUPT) return fd;
  if (fd < 0) return shmx__syserr(-fd, "channel '%s'", name);
  return fd;
}

int shmx_channel_owner_alive(const char *name) {
  shmx__fid id;
  int fd = open_seg(name, &id);
  if (fd < 0) return fd;
  int alive = shmx__owner_alive_fd(fd);
  shmx__close(fd);
  return alive < 0 ? shmx__syserr(-alive, "channel '%s': lock probe", name) : alive;
}

int shmx_channel_remove(const char *name, int force) {
  char file[SHMX__FILE_CAP];
  shmx__fid id;
  int fd = open_seg(name, &id);
  if (fd < 0) return fd;
  shmx__close(fd);
  uint32_t me = shmx__euid();
  if (id.uid != me && me != 0)
    return shmx__err(SHMX_E_EACCES, "channel '%s' belongs to uid %u: only its "
                     "owner or root can remove it", name, (unsigned)id.uid);
  /* Probe and unlink under the name lock, so no producer can take the name
   * between the two: what is unlinked is what was probed. */
  shmx__namelock nl;
  int rc = shmx__name_lock(name, id.uid, 1, &nl);
  if (rc) return rc;
  shmx__seg_file(name, file, sizeof file);
  fd = open_seg(name, &id); /* what the name names now, under the lock */
  if (fd < 0) {
    rc = fd;
    goto out;
  }
  int alive = shmx__owner_alive_fd(fd);
  shmx__close(fd);
  if (alive < 0) {
    rc = shmx__syserr(-alive, "channel '%s': lock probe", name);
    goto out;
  }
  if (alive && !force) {
    rc = shmx__err(SHMX_E_EXISTS, "channel '%s' has a live producer "
                   "(use force to remove it anyway)", name);
    goto out;
  }
  shmx__fid now;
  if (shmx__shm_stat(file, &now) != 0 || !shmx__fid_same(&now, &id)) {
    rc = shmx__err(SHMX_E_NOCHANNEL, "channel '%s' vanished", name); /* not ours */
    goto out;
  }
  if ((rc = shmx__shm_unlink(file)) != 0) {
    rc = rc == -ENOENT ? shmx__err(SHMX_E_NOCHANNEL, "channel '%s'", name)
                       : shmx__syserr(-rc, "channel '%s': unlink", name);
    goto out;
  }
  /* The lock file goes with a stale segment; a live (forced) producer keeps
   * its own open and finds the name gone at destroy. */
  shmx__lock_file(name, file, sizeof file);
  shmx__shm_unlink(file);
out:
  shmx__name_close(&nl);
  return rc;
}

/*
 * owner.c -- the name lock and the producer's liveness lock (owner.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>

#include "owner.h"

#define NAME_LOCK_WAIT_NS (5ull * 1000 * 1000 * 1000)

void shmx__seg_file(const char *name, char *buf, size_t cap) {
  snprintf(buf, cap, "%s%s", SHMX_SEGMENT_PREFIX, name);
}

void shmx__lock_file(const char *name, char *buf, size_t cap) {
  snprintf(buf, cap, ".%s%s%s", SHMX_SEGMENT_PREFIX, name, SHMX__LOCKFILE_SUFFIX);
}

/* Write-lock the name byte, waiting up to NAME_LOCK_WAIT_NS for a holder
 * (holders keep it for a few system calls; only a hostile writer keeps it
 * longer). */
static int lock_byte_wait(const char *name, int fd) {
  uint64_t start = shmx__mono_ns(), nap = 20 * 1000;
  for (;;) {
    int r = shmx__byte_lock(fd, SHMX__NAME_LOCK_OFF);
    if (r != -EAGAIN) return r ? shmx__syserr(-r, "channel '%s': name lock", name) : 0;
    if (shmx__mono_ns() - start > NAME_LOCK_WAIT_NS)
      return shmx__err(SHMX_E_TIMEOUT, "channel '%s': its lock file has been "
                       "locked by another process for 5 s", name);
    shmx__sleep_ns(nap);
    if (nap < 1000 * 1000) nap *= 2;
  }
}

/* 1 if the lock file path names nl's file now, 0 if not, -errno. */
static int path_is(const char *file, const shmx__namelock *nl) {
  shmx__fid now;
  int r = shmx__shm_stat(file, &now);
  if (r == -ENOENT) return 0;
  if (r) return r;
  return shmx__fid_same(&now, &nl->id);
}

int shmx__name_lock(const char *name, uint32_t uid, int create,
                    shmx__namelock *nl) {
  char file[SHMX__FILE_CAP];
  shmx__lock_file(name, file, sizeof file);
  nl->fd = -1;
  for (int attempt = 0; attempt < 100; attempt++) {
    int created = create;
    int fd = create ? shmx__shm_open(file, O_RDWR | O_CREAT | O_EXCL, 0600, &nl->id)
                    : -EEXIST;
    if (fd == -EEXIST) {
      created = 0;
      fd = shmx__shm_open(file, O_RDWR, 0, &nl->id);
      if (fd == -ENOENT && create) continue; /* removed meanwhile */
    }
    if (fd == -ENOENT && !create)
      return shmx__err(SHMX_E_NOCHANNEL, "channel '%s': no lock file", name);
    if (fd == SHMX_E_CORRUPT)
      return shmx__err(SHMX_E_CORRUPT, "channel '%s': %s", name, shmx_errmsg());
    if (fd < 0) return shmx__syserr(-fd, "channel '%s': open lock file %s", name, file);
    if (nl->id.uid != uid) {
      /* Root (removing another user's channel) may have just created it:
       * hand it to the channel's owner. A lock file someone else made is
       * never ours to use (they may still hold it open). */
      if (created && shmx__euid() == 0 && shmx__fd_chown(fd, uid) == 0) {
        nl->id.uid = uid;
      } else {
        shmx__close(fd);
        return shmx__err(SHMX_E_EACCES, "channel '%s': lock file %s/%s belongs "
                         "to uid %u, not %u (planted by another user? remove it "
                         "or use another name)", name, shmx__shm_dir(), file,
                         (unsigned)nl->id.uid, (unsigned)uid);
      }
    }
    int r = lock_byte_wait(name, fd);
    if (r) {
      shmx__close(fd);
      return r;
    }
    nl->fd = fd;
    r = path_is(file, nl);
    if (r == 1) return 0;
    /* A remover unlinked it while we waited: ours is an orphan. */
    shmx__name_close(nl);
    if (r < 0) return shmx__syserr(-r, "channel '%s': stat lock file", name);
  }
  return shmx__err(SHMX_E_BUSY, "channel '%s': lock file keeps being replaced", name);
}

int shmx__name_relock(const char *name, shmx__namelock *nl) {
  char file[SHMX__FILE_CAP];
  shmx__lock_file(name, file, sizeof file);
  if (nl->fd < 0) return 0;
  int r = lock_byte_wait(name, nl->fd);
  if (r) return r;
  r = path_is(file, nl);
  if (r != 1) shmx__byte_unlock(nl->fd, SHMX__NAME_LOCK_OFF);
  return r < 0 ? shmx__syserr(-r, "channel '%s': stat lock file", name) : r;
}

void shmx__name_release(shmx__namelock *nl) {
  if (nl->fd >= 0) shmx__byte_unlock(nl->fd, SHMX__NAME_LOCK_OFF);
}

void shmx__name_close(shmx__namelock *nl) {
  shmx__close(nl->fd); /* drops every lock this description holds */
  nl->fd = -1;
}

int shmx__owner_alive_fd(int seg_fd) {
  return shmx__byte_locked(seg_fd, SHMX__OWNER_LOCK_OFF);
}

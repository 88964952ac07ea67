/*
 * posix/shm.c -- POSIX shared memory, files, mappings and advisory locks.
 * Every wrapper retries EINTR, sets O_CLOEXEC, and returns -errno.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../internal.h"

int shmx__seg_path(const char *name, char *buf, size_t cap) {
  int n = snprintf(buf, cap, "/%s%s", SHMX_SEGMENT_PREFIX, name);
  if (n < 0 || (size_t)n >= cap) return SHMX_E_NAME;
  return 0;
}

int shmx__shm_open(const char *segname, int oflag, unsigned mode) {
  int fd;
  do fd = shm_open(segname, oflag | O_CLOEXEC, (mode_t)mode);
  while (fd < 0 && errno == EINTR);
  return fd < 0 ? -errno : fd;
}

int shmx__shm_unlink(const char *segname) {
  return shm_unlink(segname) < 0 ? -errno : 0;
}

int shmx__fd_size(int fd, uint64_t *size) {
  struct stat st;
  if (fstat(fd, &st) < 0) return -errno;
  *size = st.st_size < 0 ? 0 : (uint64_t)st.st_size;
  return 0;
}

int shmx__fd_truncate(int fd, uint64_t size) {
  if (size > (uint64_t)INT64_MAX) return -EFBIG;
  int r;
  do r = ftruncate(fd, (off_t)size);
  while (r < 0 && errno == EINTR);
  return r < 0 ? -errno : 0;
}

int shmx__fd_allocate(int fd, uint64_t size) {
  if (size > (uint64_t)INT64_MAX) return -EFBIG;
  int r;
  do r = posix_fallocate(fd, 0, (off_t)size);
  while (r == EINTR);
  /* Filesystems without fallocate: fall back to lazy allocation. */
  if (r == EOPNOTSUPP || r == ENOSYS || r == EINVAL) return 0;
  return -r;
}

int shmx__map(int fd, uint64_t off, uint64_t len, int prot, bool populate,
              void **out) {
  int p = ((prot & 1) ? PROT_READ : 0) | ((prot & 2) ? PROT_WRITE : 0);
  int fl = MAP_SHARED;
#ifdef MAP_POPULATE
  if (populate) fl |= MAP_POPULATE;
#else
  (void)populate;
#endif
  if (len == 0 || len > (uint64_t)SIZE_MAX || off > (uint64_t)INT64_MAX)
    return -EINVAL;
  void *m = mmap(NULL, (size_t)len, p, fl, fd, (off_t)off);
  if (m == MAP_FAILED) return -errno;
  *out = m;
  return 0;
}

void shmx__unmap(void *p, uint64_t len) {
  if (p && len) munmap(p, (size_t)len);
}

void shmx__close(int fd) {
  if (fd >= 0) {
    int e = errno;
    close(fd);
    errno = e;
  }
}

int shmx__lock(int fd, bool excl) {
  int r;
  do r = flock(fd, (excl ? LOCK_EX : LOCK_SH) | LOCK_NB);
  while (r < 0 && errno == EINTR);
  if (r == 0) return 0;
  return errno == EWOULDBLOCK ? -EWOULDBLOCK : -errno;
}

void shmx__unlock(int fd) {
  int e = errno;
  flock(fd, LOCK_UN);
  errno = e;
}

static int ofd(int fd, int cmd, short type, uint64_t off, struct flock *fl) {
  memset(fl, 0, sizeof *fl);
  fl->l_type = type;
  fl->l_whence = SEEK_SET;
  fl->l_start = (off_t)off;
  fl->l_len = 1;
  int r;
  do r = fcntl(fd, cmd, fl);
  while (r < 0 && errno == EINTR);
  return r < 0 ? -errno : 0;
}

int shmx__byte_lock(int fd, uint64_t off) {
  struct flock fl;
  int r = ofd(fd, F_OFD_SETLK, F_WRLCK, off, &fl);
  return (r == -EACCES || r == -EAGAIN) ? -EAGAIN : r;
}

void shmx__byte_unlock(int fd, uint64_t off) {
  struct flock fl;
  int e = errno;
  ofd(fd, F_OFD_SETLK, F_UNLCK, off, &fl);
  errno = e;
}

int shmx__byte_locked(int fd, uint64_t off) {
  struct flock fl;
  int r = ofd(fd, F_OFD_GETLK, F_WRLCK, off, &fl);
  if (r) return r;
  return fl.l_type != F_UNLCK;
}

const char *shmx__shm_dir(void) { return "/dev/shm"; }

size_t shmx__page_size(void) {
  long p = sysconf(_SC_PAGESIZE);
  return p > 0 ? (size_t)p : 4096;
}

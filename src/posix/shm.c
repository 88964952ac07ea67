/*
 * posix/shm.c -- POSIX shared memory files, mappings and advisory locks.
 * Every wrapper retries EINTR, sets O_CLOEXEC, and returns -errno.
 *
 * Segment and lock files live in shmx__shm_dir() and are opened by path with
 * O_NOFOLLOW | O_NONBLOCK: a symlink or a FIFO that another user planted
 * under a channel's name is refused at once (never followed, never waited
 * on), and anything that is not a regular file is "not a channel".
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../internal.h"
#include "../platform_file.h"

const char *shmx__shm_dir(void) { return "/dev/shm"; }

static int join(const char *file, char *buf, size_t cap) {
  int n = snprintf(buf, cap, "%s/%s", shmx__shm_dir(), file);
  return n < 0 || (size_t)n >= cap ? SHMX_E_NAME : 0;
}

static const char *kind_of(mode_t m) {
  if (S_ISFIFO(m)) return "a FIFO";
  if (S_ISDIR(m)) return "a directory";
  if (S_ISLNK(m)) return "a symbolic link";
  if (S_ISSOCK(m)) return "a socket";
  if (S_ISCHR(m) || S_ISBLK(m)) return "a device";
  return "not a regular file";
}

static void fill(const struct stat *st, shmx__fid *id) {
  id->dev = (uint64_t)st->st_dev;
  id->ino = (uint64_t)st->st_ino;
  id->size = st->st_size > 0 ? (uint64_t)st->st_size : 0;
  id->uid = (uint32_t)st->st_uid;
  id->mode = (uint32_t)st->st_mode & 07777u;
  id->regular = S_ISREG(st->st_mode) ? 1 : 0;
}

int shmx__shm_open(const char *file, int oflag, unsigned mode, shmx__fid *id) {
  char path[SHMX_NAME_MAX + 64];
  int rc = join(file, path, sizeof path);
  if (rc) return rc;
  int fd;
  do fd = open(path, oflag | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, (mode_t)mode);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    if (errno == ELOOP) /* O_NOFOLLOW on a symlink */
      return shmx__err(SHMX_E_CORRUPT, "%s is a symbolic link, not a channel "
                       "file", path);
    if (errno == ENXIO) /* O_WRONLY | O_NONBLOCK on a FIFO or socket */
      return shmx__err(SHMX_E_CORRUPT, "%s is a FIFO or socket, not a channel "
                       "file", path);
    return -errno;
  }
  struct stat st;
  if (fstat(fd, &st) < 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return shmx__err(SHMX_E_CORRUPT, "%s is %s, not a channel file", path,
                     kind_of(st.st_mode));
  }
  if (id) fill(&st, id);
  return fd;
}

int shmx__shm_stat(const char *file, shmx__fid *id) {
  char path[SHMX_NAME_MAX + 64];
  int rc = join(file, path, sizeof path);
  if (rc) return rc;
  struct stat st;
  if (lstat(path, &st) < 0) return -errno;
  fill(&st, id);
  return 0;
}

int shmx__shm_unlink(const char *file) {
  char path[SHMX_NAME_MAX + 64];
  int rc = join(file, path, sizeof path);
  if (rc) return rc;
  return unlink(path) < 0 ? -errno : 0;
}

int shmx__fd_stat(int fd, shmx__fid *id) {
  struct stat st;
  if (fstat(fd, &st) < 0) return -errno;
  fill(&st, id);
  return 0;
}

int shmx__fd_size(int fd, uint64_t *size) {
  struct stat st;
  if (fstat(fd, &st) < 0) return -errno;
  *size = st.st_size < 0 ? 0 : (uint64_t)st.st_size;
  return 0;
}

int shmx__fd_chmod(int fd, unsigned mode) {
  return fchmod(fd, (mode_t)mode) < 0 ? -errno : 0;
}

int shmx__fd_chown(int fd, uint32_t uid) {
  return fchown(fd, (uid_t)uid, (gid_t)-1) < 0 ? -errno : 0;
}

uint32_t shmx__euid(void) { return (uint32_t)geteuid(); }

/* Channel files are plain descriptors here: the window manager's pread. */
int64_t shmx__fd_pread(int fd, void *dst, uint64_t len, uint64_t off) {
  return shmx__file_pread(fd, dst, len, off);
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

/* Only a WRITE lock counts: taking one needs a descriptor open for writing,
 * so a user who may only read the file cannot forge it. A read lock (which
 * such a user can take) never coexists with a write lock, and reads as
 * "not held". */
int shmx__byte_locked(int fd, uint64_t off) {
  struct flock fl;
  int r = ofd(fd, F_OFD_GETLK, F_WRLCK, off, &fl);
  if (r) return r;
  return fl.l_type == F_WRLCK;
}

size_t shmx__page_size(void) {
  long p = sysconf(_SC_PAGESIZE);
  return p > 0 ? (size_t)p : 4096;
}

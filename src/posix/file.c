/* posix/file.c -- file and mapping wrappers for the window manager. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../platform_file.h"
#include "shmx_window.h"

int shmx__file_open(const char *path, int extra_oflags) {
  for (;;) {
    int fd = open(path, O_RDONLY | O_CLOEXEC | extra_oflags);
    if (fd >= 0) return fd;
    if (errno != EINTR) return -errno;
  }
}

static void fill(const struct stat *st, shmx__file_info *out) {
  out->dev = (uint64_t)st->st_dev;
  out->ino = (uint64_t)st->st_ino;
  out->size = st->st_size > 0 ? (uint64_t)st->st_size : 0;
  out->mappable = S_ISREG(st->st_mode) || S_ISBLK(st->st_mode);
}

int shmx__file_fstat(int fd, shmx__file_info *out) {
  struct stat st;
  if (fstat(fd, &st) != 0) return -errno;
  fill(&st, out);
  if (S_ISBLK(st.st_mode)) {
    off_t end = lseek(fd, 0, SEEK_END);
    if (end > 0) out->size = (uint64_t)end;
  }
  return 0;
}

int shmx__file_stat(const char *path, shmx__file_info *out) {
  struct stat st;
  if (stat(path, &st) != 0) return -errno;
  fill(&st, out);
  return 0;
}

int shmx__file_map(int fd, uint64_t off, uint64_t len, void **out) {
  *out = NULL;
  if (len == 0) return -EINVAL;
  if (len > (uint64_t)SIZE_MAX || off > (uint64_t)INT64_MAX) return -EOVERFLOW;
  void *p = mmap(NULL, (size_t)len, PROT_READ, MAP_SHARED, fd, (off_t)off);
  if (p == MAP_FAILED) return -errno;
  *out = p;
  return 0;
}

void shmx__file_unmap(void *p, uint64_t len) {
  if (p && len) munmap(p, (size_t)len);
}

int shmx__file_advise(const void *p, uint64_t len, int advice) {
  int a;
  switch (advice) {
  case SHMX_WC_NORMAL: a = MADV_NORMAL; break;
  case SHMX_WC_SEQUENTIAL: a = MADV_SEQUENTIAL; break;
  case SHMX_WC_RANDOM: a = MADV_RANDOM; break;
  case SHMX_WC_WILLNEED: a = MADV_WILLNEED; break;
  default: return -EINVAL;
  }
  if (!p || !len) return 0;
  /* madvise wants a page-aligned start. */
  uintptr_t pg = (uintptr_t)shmx__file_granularity();
  uintptr_t s = (uintptr_t)p & ~(pg - 1);
  size_t n = (size_t)len + ((uintptr_t)p - s);
  return madvise((void *)s, n, a) == 0 ? 0 : -errno;
}

void shmx__file_close(int fd) {
  if (fd >= 0) close(fd); /* never retried: the fd is gone on EINTR (Linux) */
}

int64_t shmx__file_pread(int fd, void *dst, uint64_t len, uint64_t off) {
  uint64_t done = 0;
  if (len > (uint64_t)INT64_MAX) len = (uint64_t)INT64_MAX;
  while (done < len) {
    if (off + done > (uint64_t)INT64_MAX) break;
    size_t chunk = len - done > (1u << 30) ? (1u << 30) : (size_t)(len - done);
    ssize_t n = pread(fd, (char *)dst + done, chunk, (off_t)(off + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    if (n == 0) break;
    done += (uint64_t)n;
  }
  return (int64_t)done;
}

uint64_t shmx__file_granularity(void) {
  long p = sysconf(_SC_PAGESIZE);
  return p > 0 ? (uint64_t)p : 4096u;
}

uint64_t shmx__file_fd_limit(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
    return UINT64_MAX;
  return (uint64_t)rl.rlim_cur;
}

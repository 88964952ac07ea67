/*
 * platform_file.h -- file and file-mapping wrappers for the window manager
 * (not installed). POSIX implementation in src/posix/file.c. Every function
 * returns 0 / a value or minus errno; none sets a shmx error detail.
 */
#ifndef SHMX_PLATFORM_FILE_H
#define SHMX_PLATFORM_FILE_H

#include <stdbool.h>
#include <stdint.h>

typedef struct shmx__file_info {
  uint64_t dev, ino; /* identity of the file */
  uint64_t size;     /* bytes */
  bool mappable;     /* regular file or block device */
} shmx__file_info;

/* open(path, O_RDONLY | O_CLOEXEC | extra); retries EINTR. fd or -errno. */
int shmx__file_open(const char *path, int extra_oflags);
/* fstat / stat into *out. 0 or -errno. */
int shmx__file_fstat(int fd, shmx__file_info *out);
int shmx__file_stat(const char *path, shmx__file_info *out);
/* Read-only shared mapping of [off, off + len) of fd. 0 or -errno
 * (-EOVERFLOW if the range does not fit the address space). */
int shmx__file_map(int fd, uint64_t off, uint64_t len, void **out);
void shmx__file_unmap(void *p, uint64_t len);
/* madvise; advice is enum shmx_wc_advice. Errors are ignored by callers. */
int shmx__file_advise(const void *p, uint64_t len, int advice);
void shmx__file_close(int fd);
/* pread until len bytes, end of file or an error; retries EINTR. Returns
 * bytes read (>= 0) or -errno. */
int64_t shmx__file_pread(int fd, void *dst, uint64_t len, uint64_t off);
/* Allocation granularity for map offsets (the page size on POSIX). */
uint64_t shmx__file_granularity(void);
/* Soft RLIMIT_NOFILE (UINT64_MAX if unlimited or unknown). */
uint64_t shmx__file_fd_limit(void);

#endif /* SHMX_PLATFORM_FILE_H */

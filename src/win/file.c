/*
 * win/file.c -- files and read-only views for the window manager on Win32
 * (the POSIX twin is posix/file.c).
 *
 * Descriptors are C runtime fds, as users hand them in (shmx_wc_open_fd,
 * Python's fileno()); each call reaches the HANDLE with _get_osfhandle.
 * Files are opened with every share mode, so a mapped file can still be
 * renamed or deleted by others, as on POSIX. Views come from a section
 * created for each map and closed at once (the view holds it). Offsets are
 * multiples of the 64 KiB allocation granularity; file identity is the
 * volume serial number and the file index.
 */
#include <errno.h>
#include <fcntl.h>
#include <io.h>
#include <stdlib.h>
#include <string.h>

#include "win.h"

#include "../platform_file.h"
#include "shmx_window.h"

static HANDLE os(int fd) { return (HANDLE)_get_osfhandle(fd); }

int shmx__file_open(const char *path, int extra_oflags) {
  (void)extra_oflags; /* POSIX open flags (O_NOATIME...) have no meaning here */
  wchar_t *w = shmx__win_wide(path);
  if (!w) return -ENOENT;
  HANDLE h = CreateFileW(w, GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
                         NULL, OPEN_EXISTING, FILE_ATTRIBUTE_NORMAL, NULL);
  DWORD e = GetLastError();
  free(w);
  if (h == INVALID_HANDLE_VALUE) return shmx__win_errno(e);
  int fd = _open_osfhandle((intptr_t)h, _O_RDONLY | _O_BINARY | _O_NOINHERIT);
  if (fd < 0) {
    CloseHandle(h);
    return -EMFILE;
  }
  return fd;
}

static int fill(HANDLE h, shmx__file_info *out) {
  DWORD attrs = 0;
  int rc = shmx__win_identity(h, &out->dev, &out->ino, &out->size, &attrs);
  if (rc) return rc;
  out->mappable = !(attrs & (FILE_ATTRIBUTE_DIRECTORY | FILE_ATTRIBUTE_DEVICE)) &&
                  GetFileType(h) == FILE_TYPE_DISK;
  return 0;
}

int shmx__file_fstat(int fd, shmx__file_info *out) {
  HANDLE h = os(fd);
  if (h == INVALID_HANDLE_VALUE) return -EBADF;
  return fill(h, out);
}

int shmx__file_stat(const char *path, shmx__file_info *out) {
  wchar_t *w = shmx__win_wide(path);
  if (!w) return -ENOENT;
  HANDLE h = CreateFileW(w, FILE_READ_ATTRIBUTES,
                         FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, NULL,
                         OPEN_EXISTING, FILE_FLAG_BACKUP_SEMANTICS, NULL);
  DWORD e = GetLastError();
  free(w);
  if (h == INVALID_HANDLE_VALUE) return shmx__win_errno(e);
  int rc = fill(h, out);
  CloseHandle(h);
  return rc;
}

int shmx__file_map(int fd, uint64_t off, uint64_t len, void **out) {
  *out = NULL;
  if (len == 0) return -EINVAL;
  if (len > (uint64_t)SIZE_MAX || off > (uint64_t)INT64_MAX) return -EOVERFLOW;
  HANDLE h = os(fd);
  if (h == INVALID_HANDLE_VALUE) return -EBADF;
  HANDLE sec = CreateFileMappingW(h, NULL, PAGE_READONLY, 0, 0, NULL);
  if (!sec) return shmx__win_errno(GetLastError());
  void *p = MapViewOfFile(sec, FILE_MAP_READ, (DWORD)(off >> 32), (DWORD)off, (SIZE_T)len);
  DWORD e = GetLastError();
  CloseHandle(sec);
  if (!p) return shmx__win_errno(e);
  *out = p;
  return 0;
}

void shmx__file_unmap(void *p, uint64_t len) {
  (void)len;
  if (p) UnmapViewOfFile(p);
}

int shmx__file_advise(const void *p, uint64_t len, int advice) {
  switch (advice) {
  case SHMX_WC_NORMAL:
  case SHMX_WC_SEQUENTIAL:
  case SHMX_WC_RANDOM:
    return 0; /* no per-range read-ahead policy on Windows */
  case SHMX_WC_WILLNEED:
    if (p && len) {
      WIN32_MEMORY_RANGE_ENTRY r = {(void *)p, (SIZE_T)len};
      PrefetchVirtualMemory(GetCurrentProcess(), 1, &r, 0);
    }
    return 0;
  default:
    return -EINVAL;
  }
}

void shmx__file_close(int fd) {
  if (fd >= 0) _close(fd);
}

int64_t shmx__file_pread(int fd, void *dst, uint64_t len, uint64_t off) {
  HANDLE h = os(fd);
  if (h == INVALID_HANDLE_VALUE) return -EBADF;
  uint64_t done = 0;
  if (len > (uint64_t)INT64_MAX) len = (uint64_t)INT64_MAX;
  while (done < len) {
    uint64_t at = off + done;
    if (at > (uint64_t)INT64_MAX) break;
    DWORD chunk = len - done > (1u << 30) ? (1u << 30) : (DWORD)(len - done);
    OVERLAPPED ov;
    memset(&ov, 0, sizeof ov);
    ov.Offset = (DWORD)at;
    ov.OffsetHigh = (DWORD)(at >> 32);
    DWORD n = 0;
    if (!ReadFile(h, (char *)dst + done, chunk, &n, &ov)) {
      DWORD e = GetLastError();
      if (e == ERROR_HANDLE_EOF) break;
      return shmx__win_errno(e);
    }
    if (n == 0) break;
    done += n;
  }
  return (int64_t)done;
}

uint64_t shmx__file_granularity(void) {
  SYSTEM_INFO si;
  GetSystemInfo(&si);
  return si.dwAllocationGranularity ? si.dwAllocationGranularity : 65536u;
}

/* The C runtime's table of low-level descriptors is the limit that binds
 * (process handles run to millions): msvcrt has 2048 slots. */
uint64_t shmx__file_fd_limit(void) { return 2048; }

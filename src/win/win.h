/*
 * win/win.h -- what the Win32 platform files share (not installed).
 *
 * Descriptors: the portable code holds `int fd`. A Win32 HANDLE stored there
 * is HandleToLong(h): kernel handles carry 32 significant bits (they are
 * sign-extended when passed to 32-bit processes, by design), and a valid one
 * is never -1 or another negative errno value.
 */
#ifndef SHMX_WIN_H
#define SHMX_WIN_H

#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>

#include <stdint.h>

static inline HANDLE shmx__h(int fd) { return LongToHandle(fd); }
static inline int shmx__hfd(HANDLE h) { return (int)HandleToLong(h); }

/* Minus the errno closest to a Win32 error (EIO if none is close). */
int shmx__win_errno(DWORD e);
/* Volume serial number, file index, size and attributes of an open file.
 * 0 or -errno. */
int shmx__win_identity(HANDLE h, uint64_t *dev, uint64_t *ino, uint64_t *size,
                       DWORD *attrs);
/* UTF-8 path to a new UTF-16 string (free()). NULL if it does not convert
 * or memory is short. */
wchar_t *shmx__win_wide(const char *utf8);
/* A security descriptor for a new object: full access for the current
 * user and SYSTEM, plus `others` (an access mask, 0 for none) for
 * Everyone (the POSIX "others"). LocalFree() it. NULL on failure (then the object
 * takes its container's default). */
PSECURITY_DESCRIPTOR shmx__win_sd(DWORD others);
/* The access to grant other users for a POSIX mode's group/other bits:
 * read bits -> `rd`, write bits -> `wr`. */
static inline DWORD shmx__win_others(unsigned mode, DWORD rd, DWORD wr) {
  return ((mode & 0044u) ? rd : 0) | ((mode & 0022u) ? wr : 0);
}
/* 1 if the security descriptor's owner is this process's user (or the
 * default owner of its token, e.g. Administrators when elevated). */
int shmx__win_owned(PSID owner);

#endif /* SHMX_WIN_H */

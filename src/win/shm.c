/*
 * win/shm.c -- channel files, mappings and byte locks on Win32 (the POSIX
 * twin is posix/shm.c; docs/design.md, "Windows", says why this mapping).
 *
 * A channel's segment and lock file are ordinary files in one directory
 * (shmx__shm_dir(): %SHMX_DIR%, else %LOCALAPPDATA%\shmx), opened with every
 * share mode (so a producer can unlink a stale name that readers still
 * hold) and FILE_FLAG_OPEN_REPARSE_POINT (a link planted under a channel's
 * name is opened as itself and refused, never followed). Segments are
 * mapped with CreateFileMapping over the file: the same bytes, offsets and
 * 64 KiB-aligned frame area as on Linux. Liveness is a LockFileEx byte lock,
 * which the system drops when its process dies, like an OFD lock.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "win.h"

#include <aclapi.h>
#include <sddl.h>

#include "../internal.h"

/* ---- errors, strings, security ------------------------------------------ */

int shmx__win_errno(DWORD e) {
  switch (e) {
  case ERROR_FILE_NOT_FOUND:
  case ERROR_PATH_NOT_FOUND:
  case ERROR_DELETE_PENDING:
  case ERROR_INVALID_NAME:
    return -ENOENT;
  case ERROR_ACCESS_DENIED:
  case ERROR_PRIVILEGE_NOT_HELD:
    return -EACCES;
  case ERROR_FILE_EXISTS:
  case ERROR_ALREADY_EXISTS:
    return -EEXIST;
  case ERROR_LOCK_VIOLATION:
  case ERROR_SHARING_VIOLATION:
  case ERROR_IO_PENDING:
    return -EAGAIN;
  case ERROR_NOT_ENOUGH_MEMORY:
  case ERROR_OUTOFMEMORY:
  case ERROR_COMMITMENT_LIMIT:
    return -ENOMEM;
  case ERROR_DISK_FULL:
  case ERROR_HANDLE_DISK_FULL:
    return -ENOSPC;
  case ERROR_INVALID_HANDLE:
    return -EBADF;
  case ERROR_USER_MAPPED_FILE:
    return -EBUSY;
  case ERROR_TOO_MANY_OPEN_FILES:
    return -EMFILE;
  case ERROR_NOT_SUPPORTED:
  case ERROR_CALL_NOT_IMPLEMENTED:
  case ERROR_INVALID_FUNCTION:
    return -ENOSYS;
  case ERROR_INVALID_PARAMETER:
  case ERROR_NEGATIVE_SEEK:
    return -EINVAL;
  default:
    return -EIO;
  }
}

wchar_t *shmx__win_wide(const char *s) {
  int n = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s, -1, NULL, 0);
  if (n <= 0) return NULL;
  wchar_t *w = malloc((size_t)n * sizeof *w);
  if (w && MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s, -1, w, n) != n) {
    free(w);
    w = NULL;
  }
  return w;
}

/* The token's user and default owner SIDs, read once. */
static INIT_ONCE token_once = INIT_ONCE_STATIC_INIT;
static PSID token_user, token_owner;
static char token_user_str[192];

static BOOL CALLBACK read_token(PINIT_ONCE once, PVOID p, PVOID *ctx) {
  (void)once, (void)p, (void)ctx;
  HANDLE t;
  if (!OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &t)) return TRUE;
  static union { TOKEN_USER u; BYTE b[512]; } user;
  static union { TOKEN_OWNER o; BYTE b[512]; } owner;
  DWORD n;
  if (GetTokenInformation(t, TokenUser, &user, sizeof user, &n)) {
    token_user = user.u.User.Sid;
    LPSTR s;
    if (ConvertSidToStringSidA(token_user, &s)) {
      snprintf(token_user_str, sizeof token_user_str, "%s", s);
      LocalFree(s);
    }
  }
  if (GetTokenInformation(t, TokenOwner, &owner, sizeof owner, &n))
    token_owner = owner.o.Owner;
  CloseHandle(t);
  return TRUE;
}

static void token(void) { InitOnceExecuteOnce(&token_once, read_token, NULL, NULL); }

int shmx__win_owned(PSID owner) {
  token();
  if (!owner || !IsValidSid(owner)) return 0;
  return (token_user && EqualSid(owner, token_user)) ||
         (token_owner && EqualSid(owner, token_owner));
}

PSECURITY_DESCRIPTOR shmx__win_sd(DWORD others) {
  token();
  if (!token_user_str[0]) return NULL;
  char sddl[512];
  /* P: protected (nothing inherited from the directory). */
  int n = snprintf(sddl, sizeof sddl, "D:P(A;;GA;;;%s)(A;;GA;;;SY)", token_user_str);
  if (others)
    n += snprintf(sddl + n, sizeof sddl - (size_t)n, "(A;;0x%lx;;;AU)",
                  (unsigned long)others);
  if (n < 0 || (size_t)n >= sizeof sddl) return NULL;
  PSECURITY_DESCRIPTOR sd = NULL;
  if (!ConvertStringSecurityDescriptorToSecurityDescriptorA(sddl, SDDL_REVISION_1,
                                                            &sd, NULL))
    return NULL;
  return sd;
}

/* What a POSIX mode lets group/others do with a channel file. */
static DWORD file_others(unsigned mode) {
  return shmx__win_others(mode, FILE_GENERIC_READ, FILE_GENERIC_WRITE);
}

/* ---- the directory ------------------------------------------------------ */

static INIT_ONCE dir_once = INIT_ONCE_STATIC_INIT;
static char dir[MAX_PATH * 3];

static BOOL CALLBACK find_dir(PINIT_ONCE once, PVOID p, PVOID *ctx) {
  (void)once, (void)p, (void)ctx;
  const char *e = getenv("SHMX_DIR");
  if (e && *e) {
    snprintf(dir, sizeof dir, "%s", e);
  } else {
    const char *base = getenv("LOCALAPPDATA");
    if (!base || !*base) base = getenv("TEMP");
    if (!base || !*base) base = ".";
    snprintf(dir, sizeof dir, "%s\\shmx", base);
  }
  size_t n = strlen(dir);
  while (n > 1 && (dir[n - 1] == '\\' || dir[n - 1] == '/')) dir[--n] = 0;
  /* Created private to this user (files in it get their own DACL too). */
  wchar_t *w = shmx__win_wide(dir);
  if (w) {
    SECURITY_ATTRIBUTES sa = {sizeof sa, shmx__win_sd(0), FALSE};
    CreateDirectoryW(w, sa.lpSecurityDescriptor ? &sa : NULL);
    if (sa.lpSecurityDescriptor) LocalFree(sa.lpSecurityDescriptor);
    free(w);
  }
  return TRUE;
}

const char *shmx__shm_dir(void) {
  InitOnceExecuteOnce(&dir_once, find_dir, NULL, NULL);
  return dir;
}

static wchar_t *path_of(const char *file) {
  char p[sizeof dir + SHMX_NAME_MAX + 64];
  int n = snprintf(p, sizeof p, "%s\\%s", shmx__shm_dir(), file);
  if (n < 0 || (size_t)n >= sizeof p) return NULL;
  return shmx__win_wide(p);
}

/* ---- files -------------------------------------------------------------- */

static int fill(HANDLE h, shmx__fid *id) {
  BY_HANDLE_FILE_INFORMATION fi;
  if (!GetFileInformationByHandle(h, &fi)) return shmx__win_errno(GetLastError());
  id->dev = fi.dwVolumeSerialNumber;
  id->ino = ((uint64_t)fi.nFileIndexHigh << 32) | fi.nFileIndexLow;
  id->size = ((uint64_t)fi.nFileSizeHigh << 32) | fi.nFileSizeLow;
  id->regular = !(fi.dwFileAttributes &
                  (FILE_ATTRIBUTE_DIRECTORY | FILE_ATTRIBUTE_REPARSE_POINT |
                   FILE_ATTRIBUTE_DEVICE));
  /* Owners are SIDs here; the portable code compares uids, so "ours" is
   * shmx__euid() and anyone else's is another number. */
  PSID owner = NULL;
  PSECURITY_DESCRIPTOR sd = NULL;
  int mine = 0;
  if (GetSecurityInfo(h, SE_FILE_OBJECT, OWNER_SECURITY_INFORMATION, &owner,
                      NULL, NULL, NULL, &sd) == ERROR_SUCCESS) {
    mine = shmx__win_owned(owner);
    LocalFree(sd);
  }
  id->uid = mine ? shmx__euid() : shmx__euid() + 1;
  id->mode = 0600; /* not derived from the DACL: reported only */
  return 0;
}

static const char *kind_of(const shmx__fid *id, DWORD attrs) {
  (void)id;
  if (attrs & FILE_ATTRIBUTE_REPARSE_POINT) return "a symbolic link or junction";
  if (attrs & FILE_ATTRIBUTE_DIRECTORY) return "a directory";
  return "not a regular file";
}

int shmx__shm_open(const char *file, int oflag, unsigned mode, shmx__fid *id) {
  wchar_t *path = path_of(file);
  if (!path) return SHMX_E_NAME;
  DWORD acc = READ_CONTROL;
  int am = oflag & O_ACCMODE;
  if (am == O_RDONLY || am == O_RDWR) acc |= GENERIC_READ;
  if (am == O_WRONLY || am == O_RDWR) acc |= GENERIC_WRITE;
  if (oflag & O_CREAT) acc |= WRITE_DAC; /* the creator sets the mode */
  DWORD disp = (oflag & O_CREAT) ? ((oflag & O_EXCL) ? CREATE_NEW : OPEN_ALWAYS)
                                 : OPEN_EXISTING;
  SECURITY_ATTRIBUTES sa = {sizeof sa, NULL, FALSE}; /* not inherited */
  if (oflag & O_CREAT) sa.lpSecurityDescriptor = shmx__win_sd(file_others(mode));
  HANDLE h = CreateFileW(path, acc, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
                         &sa, disp,
                         FILE_ATTRIBUTE_TEMPORARY | FILE_FLAG_OPEN_REPARSE_POINT, NULL);
  DWORD e = GetLastError();
  if (sa.lpSecurityDescriptor) LocalFree(sa.lpSecurityDescriptor);
  free(path);
  if (h == INVALID_HANDLE_VALUE) {
    if (e == ERROR_ACCESS_DENIED) {
      /* A directory under the name, or a file we may not open. */
      shmx__fid st;
      if (shmx__shm_stat(file, &st) == 0 && !st.regular)
        return shmx__err(SHMX_E_CORRUPT, "%s\\%s is not a regular file, not a "
                         "channel file", shmx__shm_dir(), file);
    }
    return shmx__win_errno(e);
  }
  BY_HANDLE_FILE_INFORMATION fi;
  shmx__fid tmp;
  int rc = fill(h, id ? id : &tmp);
  if (rc == 0 && GetFileInformationByHandle(h, &fi) &&
      (fi.dwFileAttributes & (FILE_ATTRIBUTE_DIRECTORY | FILE_ATTRIBUTE_REPARSE_POINT |
                              FILE_ATTRIBUTE_DEVICE))) {
    CloseHandle(h);
    return shmx__err(SHMX_E_CORRUPT, "%s\\%s is %s, not a channel file",
                     shmx__shm_dir(), file, kind_of(id, fi.dwFileAttributes));
  }
  if (rc == 0 && GetFileType(h) != FILE_TYPE_DISK) {
    CloseHandle(h);
    return shmx__err(SHMX_E_CORRUPT, "%s\\%s is not a regular file, not a "
                     "channel file", shmx__shm_dir(), file);
  }
  if (rc) {
    CloseHandle(h);
    return rc;
  }
  return shmx__hfd(h);
}

int shmx__shm_stat(const char *file, shmx__fid *id) {
  wchar_t *path = path_of(file);
  if (!path) return SHMX_E_NAME;
  /* No data access: stat works on files we may not read, like lstat. */
  HANDLE h = CreateFileW(path, FILE_READ_ATTRIBUTES | READ_CONTROL,
                         FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, NULL,
                         OPEN_EXISTING,
                         FILE_FLAG_OPEN_REPARSE_POINT | FILE_FLAG_BACKUP_SEMANTICS, NULL);
  DWORD e = GetLastError();
  free(path);
  if (h == INVALID_HANDLE_VALUE) return shmx__win_errno(e);
  int rc = fill(h, id);
  CloseHandle(h);
  return rc;
}

/* FILE_DISPOSITION_INFO_EX (Windows 10 1709+), spelled out for older
 * headers. POSIX semantics remove the name at once even while readers hold
 * the file open, so a producer can reuse the name of a stale channel. */
typedef struct {
  DWORD Flags;
} shmx__disposition_ex;
#define SHMX__DISP_DELETE 0x1
#define SHMX__DISP_POSIX 0x2
#define SHMX__FileDispositionInfoEx ((FILE_INFO_BY_HANDLE_CLASS)21)

int shmx__shm_unlink(const char *file) {
  wchar_t *path = path_of(file);
  if (!path) return SHMX_E_NAME;
  HANDLE h = CreateFileW(path, DELETE,
                         FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, NULL,
                         OPEN_EXISTING,
                         FILE_FLAG_OPEN_REPARSE_POINT | FILE_FLAG_BACKUP_SEMANTICS, NULL);
  DWORD e = GetLastError();
  free(path);
  if (h == INVALID_HANDLE_VALUE) return shmx__win_errno(e);
  shmx__disposition_ex dx = {SHMX__DISP_DELETE | SHMX__DISP_POSIX};
  BOOL ok = SetFileInformationByHandle(h, SHMX__FileDispositionInfoEx, &dx, sizeof dx);
  if (!ok) { /* older systems: delete when the last handle closes */
    FILE_DISPOSITION_INFO d = {TRUE};
    ok = SetFileInformationByHandle(h, FileDispositionInfo, &d, sizeof d);
  }
  e = GetLastError();
  CloseHandle(h);
  return ok ? 0 : shmx__win_errno(e);
}

int shmx__fd_stat(int fd, shmx__fid *id) { return fill(shmx__h(fd), id); }

int shmx__fd_size(int fd, uint64_t *size) {
  LARGE_INTEGER n;
  if (!GetFileSizeEx(shmx__h(fd), &n)) return shmx__win_errno(GetLastError());
  *size = n.QuadPart < 0 ? 0 : (uint64_t)n.QuadPart;
  return 0;
}

int shmx__fd_chmod(int fd, unsigned mode) {
  PSECURITY_DESCRIPTOR sd = shmx__win_sd(file_others(mode));
  if (!sd) return -EACCES;
  BOOL present = FALSE, dflt = FALSE;
  PACL dacl = NULL;
  DWORD r = ERROR_INVALID_PARAMETER;
  if (GetSecurityDescriptorDacl(sd, &present, &dacl, &dflt) && present)
    r = SetSecurityInfo(shmx__h(fd), SE_FILE_OBJECT,
                        DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION,
                        NULL, NULL, dacl, NULL);
  LocalFree(sd);
  return r == ERROR_SUCCESS ? 0 : shmx__win_errno(r);
}

/* Only POSIX root gives files away; never called here (euid is not 0). */
int shmx__fd_chown(int fd, uint32_t uid) {
  (void)fd, (void)uid;
  return -ENOSYS;
}

uint32_t shmx__euid(void) { return 1000; }

int64_t shmx__fd_pread(int fd, void *dst, uint64_t len, uint64_t off) {
  uint64_t done = 0;
  while (done < len) {
    uint64_t at = off + done;
    DWORD chunk = len - done > (1u << 30) ? (1u << 30) : (DWORD)(len - done);
    OVERLAPPED ov;
    memset(&ov, 0, sizeof ov);
    ov.Offset = (DWORD)at;
    ov.OffsetHigh = (DWORD)(at >> 32);
    DWORD n = 0;
    if (!ReadFile(shmx__h(fd), (char *)dst + done, chunk, &n, &ov)) {
      DWORD e = GetLastError();
      if (e == ERROR_HANDLE_EOF) break;
      return shmx__win_errno(e);
    }
    if (n == 0) break;
    done += n;
  }
  return (int64_t)done;
}

int shmx__fd_truncate(int fd, uint64_t size) {
  if (size > (uint64_t)INT64_MAX) return -EFBIG;
  FILE_END_OF_FILE_INFO e;
  e.EndOfFile.QuadPart = (LONGLONG)size;
  if (!SetFileInformationByHandle(shmx__h(fd), FileEndOfFileInfo, &e, sizeof e))
    return shmx__win_errno(GetLastError());
  return 0;
}

/* Reserve the clusters now so a later write through the mapping cannot
 * fail for want of disk (best effort, like posix_fallocate on tmpfs). */
int shmx__fd_allocate(int fd, uint64_t size) {
  FILE_ALLOCATION_INFO a;
  a.AllocationSize.QuadPart = (LONGLONG)size;
  SetFileInformationByHandle(shmx__h(fd), FileAllocationInfo, &a, sizeof a);
  return 0;
}

int shmx__map(int fd, uint64_t off, uint64_t len, int prot, bool populate,
              void **out) {
  if (len == 0 || len > (uint64_t)SIZE_MAX || off > (uint64_t)INT64_MAX)
    return -EINVAL;
  int w = (prot & 2) != 0;
  /* Size 0: the file's size, which the view must lie within. */
  HANDLE sec = CreateFileMappingW(shmx__h(fd), NULL, w ? PAGE_READWRITE : PAGE_READONLY,
                                  0, 0, NULL);
  if (!sec) return shmx__win_errno(GetLastError());
  void *p = MapViewOfFile(sec, w ? FILE_MAP_READ | FILE_MAP_WRITE : FILE_MAP_READ,
                          (DWORD)(off >> 32), (DWORD)off, (SIZE_T)len);
  DWORD e = GetLastError();
  CloseHandle(sec); /* the view keeps the section */
  if (!p) return shmx__win_errno(e);
  if (populate) { /* fault the pages in now, not on the hot path */
    WIN32_MEMORY_RANGE_ENTRY r = {p, (SIZE_T)len};
    PrefetchVirtualMemory(GetCurrentProcess(), 1, &r, 0);
  }
  *out = p;
  return 0;
}

void shmx__unmap(void *p, uint64_t len) {
  (void)len;
  if (p) UnmapViewOfFile(p);
}

void shmx__close(int fd) {
  if (fd >= 0) {
    int e = errno;
    CloseHandle(shmx__h(fd));
    errno = e;
  }
}

/* ---- byte locks ---------------------------------------------------------- */
/*
 * LockFileEx locks belong to the handle (like OFD locks to the open file
 * description), and the system releases them when the process dies. They
 * are mandatory: a locked range cannot be read or written through another
 * handle, which is why the producer's byte lies past the data
 * (SHMX__OWNER_LOCK_OFF) and lock-file bytes are never read. Any handle
 * with read or write access may lock: see the threat model.
 */

static int lock1(HANDLE h, uint64_t off) {
  OVERLAPPED ov;
  memset(&ov, 0, sizeof ov);
  ov.Offset = (DWORD)off;
  ov.OffsetHigh = (DWORD)(off >> 32);
  if (LockFileEx(h, LOCKFILE_EXCLUSIVE_LOCK | LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0, &ov))
    return 0;
  DWORD e = GetLastError();
  return e == ERROR_LOCK_VIOLATION || e == ERROR_IO_PENDING ? -EAGAIN
                                                            : shmx__win_errno(e);
}

static void unlock1(HANDLE h, uint64_t off) {
  OVERLAPPED ov;
  memset(&ov, 0, sizeof ov);
  ov.Offset = (DWORD)off;
  ov.OffsetHigh = (DWORD)(off >> 32);
  UnlockFileEx(h, 0, 1, 0, &ov);
}

int shmx__byte_lock(int fd, uint64_t off) { return lock1(shmx__h(fd), off); }

void shmx__byte_unlock(int fd, uint64_t off) {
  DWORD e = GetLastError();
  unlock1(shmx__h(fd), off);
  SetLastError(e);
}

/* No F_GETLK here: probe by taking the byte and letting it go at once.
 * The probing handle must not be the holder's (the same rule as POSIX). */
int shmx__byte_locked(int fd, uint64_t off) {
  int r = lock1(shmx__h(fd), off);
  if (r == 0) {
    unlock1(shmx__h(fd), off);
    return 0;
  }
  return r == -EAGAIN ? 1 : r;
}

size_t shmx__page_size(void) {
  SYSTEM_INFO si;
  GetSystemInfo(&si);
  return si.dwPageSize ? si.dwPageSize : 4096;
}

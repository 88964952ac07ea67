/*
 * win/shm.c -- channel files, segment memory and byte locks on Win32 (the
 * POSIX twin is posix/shm.c; docs/design.md, "Windows", says why).
 *
 * A channel's segment file and lock file are small files in one directory
 * (shmx__shm_dir(): %SHMX_DIR%, else %LOCALAPPDATA%\shmx), opened with every
 * share mode and FILE_FLAG_OPEN_REPARSE_POINT (a link planted under a
 * channel's name is opened as itself and refused, never followed). They
 * are the channel's name, listing and liveness, exactly as on POSIX: the
 * producer's LockFileEx byte on the segment file, readers' bytes and the
 * name lock on the lock file; the system drops them when a process dies.
 *
 * The segment's memory is not the file (Windows cannot delete a file while
 * it is mapped, and writes mapped pages back to disk): it is a section
 * backed by the paging file, named "Local\shmx.seg.<random>", created by the
 * producer when it sizes the segment (shmx__fd_truncate) and named in a
 * record at the start of the segment file. Readers map it by that name; the
 * same bytes, offsets and 64 KiB-aligned frame area as on Linux. A section
 * never shrinks, so the truncation posix/guard.c survives cannot happen.
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
    n += snprintf(sddl + n, sizeof sddl - (size_t)n, "(A;;0x%lx;;;WD)",
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

int shmx__win_identity(HANDLE h, uint64_t *dev, uint64_t *ino, uint64_t *size,
                       DWORD *attrs) {
  BY_HANDLE_FILE_INFORMATION fi;
  if (!GetFileInformationByHandle(h, &fi)) return shmx__win_errno(GetLastError());
  *dev = fi.dwVolumeSerialNumber;
  *ino = ((uint64_t)fi.nFileIndexHigh << 32) | fi.nFileIndexLow;
  *size = ((uint64_t)fi.nFileSizeHigh << 32) | fi.nFileSizeLow;
  *attrs = fi.dwFileAttributes;
  return 0;
}

static int fill(HANDLE h, shmx__fid *id) {
  DWORD attrs = 0;
  int rc = shmx__win_identity(h, &id->dev, &id->ino, &id->size, &attrs);
  if (rc) return rc;
  id->regular = !(attrs & (FILE_ATTRIBUTE_DIRECTORY | FILE_ATTRIBUTE_REPARSE_POINT |
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

static const char *kind_of(DWORD attrs) {
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
                     shmx__shm_dir(), file, kind_of(fi.dwFileAttributes));
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

/* Open `file` itself (a link as the link, a directory too) for `access`
 * only, sharing everything. The handle, or -errno / SHMX_E_NAME. */
static int open_entry(const char *file, DWORD access, HANDLE *out) {
  wchar_t *path = path_of(file);
  if (!path) return SHMX_E_NAME;
  HANDLE h = CreateFileW(path, access, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
                         NULL, OPEN_EXISTING,
                         FILE_FLAG_OPEN_REPARSE_POINT | FILE_FLAG_BACKUP_SEMANTICS, NULL);
  DWORD e = GetLastError();
  free(path);
  if (h == INVALID_HANDLE_VALUE) return shmx__win_errno(e);
  *out = h;
  return 0;
}

int shmx__shm_stat(const char *file, shmx__fid *id) {
  /* No data access: stat works on files we may not read, like lstat. */
  HANDLE h = INVALID_HANDLE_VALUE;
  int rc = open_entry(file, FILE_READ_ATTRIBUTES | READ_CONTROL, &h);
  if (rc) return rc;
  rc = fill(h, id);
  CloseHandle(h);
  return rc;
}

/*
 * Unlink: the name must be free at once, even while readers hold the file
 * open (a producer re-creating a stale channel needs it). A plain delete
 * only marks the file "delete pending" until its last handle closes, and
 * the name stays taken meanwhile; POSIX-semantics delete (Windows 10 1709+)
 * is not everywhere (not in Wine 8). So: rename the open file to a unique
 * hidden name in the same directory, which frees the name, then mark it
 * for deletion; it goes away with the last handle.
 */
int shmx__shm_unlink(const char *file) {
  HANDLE h = INVALID_HANDLE_VALUE;
  int rc = open_entry(file, DELETE, &h);
  if (rc) return rc;
  char gone[64];
  snprintf(gone, sizeof gone, ".shmx-gone.%016llx", (unsigned long long)shmx__random64());
  wchar_t *to = path_of(gone);
  if (to) {
    size_t n = wcslen(to);
    size_t bytes = sizeof(FILE_RENAME_INFO) + (n + 1) * sizeof(wchar_t);
    FILE_RENAME_INFO *ri = calloc(1, bytes);
    if (ri) {
      ri->ReplaceIfExists = FALSE;
      ri->RootDirectory = NULL;
      ri->FileNameLength = (DWORD)(n * sizeof(wchar_t));
      memcpy(ri->FileName, to, (n + 1) * sizeof(wchar_t));
      SetFileInformationByHandle(h, FileRenameInfo, ri, (DWORD)bytes);
      free(ri); /* if the rename failed, the delete below still runs */
    }
    free(to);
  }
  FILE_DISPOSITION_INFO d = {TRUE};
  BOOL ok = SetFileInformationByHandle(h, FileDispositionInfo, &d, sizeof d);
  DWORD e = GetLastError();
  CloseHandle(h);
  return ok ? 0 : shmx__win_errno(e);
}

/* ---- the section behind a segment file ---------------------------------- */

/* The record at offset 0 of a segment file. Read-only users read it; a
 * writer who changes it can only point readers at memory of the same or
 * less trust than the segment they may scribble on anyway, and every view
 * is bounded by the section's real size. */
typedef struct {
  char magic[8]; /* "shmxsec1" */
  uint64_t size; /* bytes of the section */
  wchar_t name[40];
} seg_rec;
#define REC_MAGIC "shmxsec1"

/* Sections this process created, kept open while their file is (the
 * producer's), and the mode chmod gave the file (the section gets it). */
static SRWLOCK tab_lock = SRWLOCK_INIT;
static struct {
  int fd;
  unsigned mode;
  HANDLE sec;
} tab[64];

static int tab_find(int fd) {
  for (int i = 0; i < 64; i++)
    if (tab[i].sec && tab[i].fd == fd) return i;
  return -1;
}

static int read_rec(HANDLE h, seg_rec *r) {
  OVERLAPPED ov;
  memset(&ov, 0, sizeof ov);
  DWORD n = 0;
  if (!ReadFile(h, r, sizeof *r, &n, &ov)) {
    DWORD e = GetLastError();
    return e == ERROR_HANDLE_EOF ? 0 : shmx__win_errno(e);
  }
  if (n != sizeof *r || memcmp(r->magic, REC_MAGIC, 8) != 0) return 0;
  r->name[39] = 0;
  return 1;
}

/* Open the section the file names (access: FILE_MAP_*). 0, or -errno;
 * -ENOENT while the producer has not sized it yet. */
static int open_sec(int fd, DWORD access, HANDLE *sec, uint64_t *size) {
  AcquireSRWLockShared(&tab_lock);
  int i = tab_find(fd);
  HANDLE mine = NULL;
  if (i >= 0 && DuplicateHandle(GetCurrentProcess(), tab[i].sec, GetCurrentProcess(),
                                &mine, 0, FALSE, DUPLICATE_SAME_ACCESS) == 0)
    mine = NULL;
  ReleaseSRWLockShared(&tab_lock);
  seg_rec r;
  int rc = read_rec(shmx__h(fd), &r);
  if (rc < 0) {
    if (mine) CloseHandle(mine);
    return rc;
  }
  if (rc == 0) {
    if (mine) CloseHandle(mine);
    return -ENOENT;
  }
  *size = r.size;
  if (mine) {
    *sec = mine;
    return 0;
  }
  HANDLE h = OpenFileMappingW(access, FALSE, r.name);
  if (!h) return shmx__win_errno(GetLastError());
  *sec = h;
  return 0;
}

int shmx__fd_stat(int fd, shmx__fid *id) { return fill(shmx__h(fd), id); }

int shmx__fd_size(int fd, uint64_t *size) {
  seg_rec r;
  int rc = read_rec(shmx__h(fd), &r);
  if (rc < 0) return rc;
  *size = rc ? r.size : 0; /* no record yet: an empty segment */
  return 0;
}

int64_t shmx__fd_pread(int fd, void *dst, uint64_t len, uint64_t off) {
  HANDLE sec;
  uint64_t size;
  int rc = open_sec(fd, FILE_MAP_READ, &sec, &size);
  if (rc) return rc; /* -ENOENT: no section (not sized yet, or gone) */
  if (off >= size || len == 0) {
    CloseHandle(sec);
    return 0;
  }
  if (len > size - off) len = size - off;
  void *p = MapViewOfFile(sec, FILE_MAP_READ, 0, 0, (SIZE_T)(off + len));
  DWORD e = GetLastError();
  CloseHandle(sec);
  if (!p) return shmx__win_errno(e);
  memcpy(dst, (const uint8_t *)p + off, (size_t)len);
  UnmapViewOfFile(p);
  return (int64_t)len;
}

int shmx__fd_chmod(int fd, unsigned mode) {
  PSECURITY_DESCRIPTOR sd = shmx__win_sd(file_others(mode));
  if (!sd) return -EACCES;
  BOOL present = FALSE, dflt = FALSE;
  PACL dacl = NULL;
  DWORD r = ERROR_INVALID_PARAMETER;
  /* The descriptor may lack WRITE_DAC (another process of ours created the
   * file): a second handle asks for it, which the owner always gets. */
  HANDLE h = ReOpenFile(shmx__h(fd), READ_CONTROL | WRITE_DAC,
                        FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, 0);
  if (h == INVALID_HANDLE_VALUE) r = GetLastError();
  else if (GetSecurityDescriptorDacl(sd, &present, &dacl, &dflt) && present)
    r = SetSecurityInfo(h, SE_FILE_OBJECT,
                        DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION,
                        NULL, NULL, dacl, NULL);
  if (h != INVALID_HANDLE_VALUE) CloseHandle(h);
  LocalFree(sd);
  if (r != ERROR_SUCCESS) return shmx__win_errno(r);
  /* Remember it for the section (a slot without a section yet). */
  AcquireSRWLockExclusive(&tab_lock);
  for (int i = 0; i < 64; i++)
    if (!tab[i].sec && (tab[i].fd == fd || tab[i].fd == 0)) {
      tab[i].fd = fd;
      tab[i].mode = mode;
      break;
    }
  ReleaseSRWLockExclusive(&tab_lock);
  return 0;
}

/* Only POSIX root gives files away; never called here (euid is not 0). */
int shmx__fd_chown(int fd, uint32_t uid) {
  (void)fd, (void)uid;
  return -ENOSYS;
}

uint32_t shmx__euid(void) { return 1000; }

/* The producer sizes its new segment: create the section (a fresh random
 * name; one that exists is someone else's) and record it in the file. */
int shmx__fd_truncate(int fd, uint64_t size) {
  if (size == 0 || size > (uint64_t)INT64_MAX) return -EFBIG;
  unsigned mode = 0600;
  AcquireSRWLockExclusive(&tab_lock);
  int slot = -1;
  for (int i = 0; i < 64 && slot < 0; i++)
    if (!tab[i].sec && tab[i].fd == fd) slot = i;
  for (int i = 0; i < 64 && slot < 0; i++)
    if (!tab[i].sec && tab[i].fd == 0) slot = i;
  if (slot >= 0) {
    mode = tab[slot].fd == fd && tab[slot].mode ? tab[slot].mode : 0600;
    tab[slot].fd = fd;
    tab[slot].mode = mode;
  }
  ReleaseSRWLockExclusive(&tab_lock);
  if (slot < 0) return -EMFILE; /* 64 producers in one process */
  seg_rec r;
  memset(&r, 0, sizeof r);
  memcpy(r.magic, REC_MAGIC, 8);
  r.size = size;
  HANDLE sec = NULL;
  DWORD e = 0;
  SECURITY_ATTRIBUTES sa = {sizeof sa, NULL, FALSE};
  sa.lpSecurityDescriptor = shmx__win_sd(shmx__win_others(
      mode, SECTION_MAP_READ | SECTION_QUERY, SECTION_MAP_WRITE));
  for (int tries = 0; tries < 8 && !sec; tries++) {
    _snwprintf(r.name, 40, L"Local\\shmx.seg.%016llx",
               (unsigned long long)shmx__random64());
    sec = CreateFileMappingW(INVALID_HANDLE_VALUE, &sa, PAGE_READWRITE,
                             (DWORD)(size >> 32), (DWORD)size, r.name);
    e = GetLastError();
    if (sec && e == ERROR_ALREADY_EXISTS) {
      CloseHandle(sec);
      sec = NULL;
    }
  }
  if (sa.lpSecurityDescriptor) LocalFree(sa.lpSecurityDescriptor);
  if (!sec) {
    AcquireSRWLockExclusive(&tab_lock);
    tab[slot].fd = 0;
    ReleaseSRWLockExclusive(&tab_lock);
    return e == ERROR_ALREADY_EXISTS ? -EEXIST : shmx__win_errno(e);
  }
  OVERLAPPED ov;
  memset(&ov, 0, sizeof ov);
  DWORD n = 0;
  if (!WriteFile(shmx__h(fd), &r, sizeof r, &n, &ov) || n != sizeof r) {
    e = GetLastError();
    CloseHandle(sec);
    AcquireSRWLockExclusive(&tab_lock);
    tab[slot].fd = 0;
    ReleaseSRWLockExclusive(&tab_lock);
    return shmx__win_errno(e);
  }
  AcquireSRWLockExclusive(&tab_lock);
  tab[slot].sec = sec;
  ReleaseSRWLockExclusive(&tab_lock);
  return 0;
}

/* Paging-file sections commit their size at creation: nothing to do. */
int shmx__fd_allocate(int fd, uint64_t size) {
  (void)fd, (void)size;
  return 0;
}

int shmx__map(int fd, uint64_t off, uint64_t len, int prot, bool populate,
              void **out) {
  if (len == 0 || len > (uint64_t)SIZE_MAX || off > (uint64_t)INT64_MAX)
    return -EINVAL;
  int w = (prot & 2) != 0;
  DWORD access = w ? FILE_MAP_READ | FILE_MAP_WRITE : FILE_MAP_READ;
  HANDLE sec;
  uint64_t size;
  int rc = open_sec(fd, access, &sec, &size);
  if (rc) return rc;
  if (!shmx__range_ok(off, len, size)) {
    CloseHandle(sec);
    return -EINVAL;
  }
  void *p = MapViewOfFile(sec, access, (DWORD)(off >> 32), (DWORD)off, (SIZE_T)len);
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
    AcquireSRWLockExclusive(&tab_lock);
    for (int i = 0; i < 64; i++)
      if (tab[i].fd == fd) {
        if (tab[i].sec) CloseHandle(tab[i].sec);
        tab[i].sec = NULL;
        tab[i].fd = 0;
      }
    ReleaseSRWLockExclusive(&tab_lock);
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

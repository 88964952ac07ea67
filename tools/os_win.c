/* os_win.c -- os.h on Windows. */
#include "os.h"

#define WIN32_LEAN_AND_MEAN
#include <windows.h>

#include <conio.h>
#include <errno.h>
#include <fcntl.h>
#include <io.h>
#include <stdlib.h>
#include <string.h>

#include "shmx.h"

static volatile sig_atomic_t *stop_flag;

static BOOL WINAPI on_ctrl(DWORD type) {
  (void)type; /* Ctrl-C, Ctrl-Break, console closed, logoff, shutdown */
  if (stop_flag) *stop_flag = 1;
  return TRUE; /* handled: the program stops by itself */
}

void os_on_stop(volatile sig_atomic_t *flag) {
  stop_flag = flag;
  SetConsoleCtrlHandler(on_ctrl, TRUE);
}

void os_default_stop(void) { SetConsoleCtrlHandler(on_ctrl, FALSE); }

/* ---- terminal ---------------------------------------------------------------- */

int os_isatty(int fd) { return _isatty(fd); }

static int console_size(int fd, int rows) {
  CONSOLE_SCREEN_BUFFER_INFO ci;
  HANDLE h = (HANDLE)_get_osfhandle(fd);
  if (h == INVALID_HANDLE_VALUE || !GetConsoleScreenBufferInfo(h, &ci)) return 0;
  return rows ? ci.srWindow.Bottom - ci.srWindow.Top + 1
              : ci.srWindow.Right - ci.srWindow.Left + 1;
}

int os_term_cols(int fd) { return console_size(fd, 0); }
int os_term_rows(int fd) { return console_size(fd, 1); }

static DWORD saved_in, saved_out;
static int raw;

void os_term_restore(void) {
  if (!raw) return;
  raw = 0;
  fputs("\033[?25h\033[?1049l", stdout);
  fflush(stdout);
  SetConsoleMode(GetStdHandle(STD_INPUT_HANDLE), saved_in);
  SetConsoleMode(GetStdHandle(STD_OUTPUT_HANDLE), saved_out);
}

int os_term_raw(void) {
  HANDLE in = GetStdHandle(STD_INPUT_HANDLE), out = GetStdHandle(STD_OUTPUT_HANDLE);
  if (!GetConsoleMode(in, &saved_in) || !GetConsoleMode(out, &saved_out)) return -1;
  /* ANSI escapes on the console (Windows 10+). */
  if (!SetConsoleMode(out, saved_out | ENABLE_VIRTUAL_TERMINAL_PROCESSING)) return -1;
  SetConsoleMode(in, saved_in & ~(DWORD)(ENABLE_LINE_INPUT | ENABLE_ECHO_INPUT));
  raw = 1;
  atexit(os_term_restore);
  fputs("\033[?1049h\033[?25l\033[H\033[2J", stdout);
  fflush(stdout);
  return 0;
}

int os_wait_key(int ms) {
  DWORD end = GetTickCount() + (DWORD)(ms > 0 ? ms : 0);
  for (;;) {
    if (stop_flag && *stop_flag) return -1;
    if (_kbhit()) return _getch() & 0xff;
    if ((LONG)(GetTickCount() - end) >= 0) return -1;
    Sleep(10);
  }
}

/* ---- memory streams ---------------------------------------------------------- */

/* No open_memstream in the Windows C runtime: a temporary file read back. */
FILE *os_memstream(void) { return tmpfile(); }

char *os_memstream_done(FILE *f, size_t *len) {
  if (!f) return NULL;
  long n = ftell(f);
  char *b = n >= 0 ? malloc((size_t)n + 1) : NULL;
  if (b) {
    rewind(f);
    *len = fread(b, 1, (size_t)n, f);
    b[*len] = 0;
  }
  fclose(f);
  return b;
}

/* ---- processes ----------------------------------------------------------------- */

/* Append one argument to a CreateProcess command line, quoted the way the
 * C runtime splits it (backslashes double only before a quote). */
static void quote(char *dst, size_t cap, size_t *o, const char *s) {
#define PUT(ch) do { if (*o + 2 < cap) dst[(*o)++] = (ch); } while (0)
  if (*s && !strpbrk(s, " \t\"")) {
    for (const char *p = s; *p; p++) PUT(*p);
  } else {
    PUT('"');
    for (const char *p = s;; p++) {
      size_t bs = 0;
      while (*p == '\\') bs++, p++;
      if (!*p) {
        for (size_t i = 0; i < 2 * bs; i++) PUT('\\');
        break;
      }
      if (*p == '"') {
        for (size_t i = 0; i < 2 * bs + 1; i++) PUT('\\');
      } else {
        for (size_t i = 0; i < bs; i++) PUT('\\');
      }
      PUT(*p);
    }
    PUT('"');
  }
  PUT(' ');
  dst[*o] = 0;
#undef PUT
}

int os_spawn_self(const char *const *args, int n, os_child *c, int *rfd) {
  SECURITY_ATTRIBUTES sa = {sizeof sa, NULL, TRUE};
  HANDLE r, w;
  if (!CreatePipe(&r, &w, &sa, 0)) return -EMFILE;
  SetHandleInformation(r, HANDLE_FLAG_INHERIT, 0); /* only w goes to the child */
  char self[MAX_PATH];
  GetModuleFileNameA(NULL, self, sizeof self);
  static char cmd[8192];
  size_t o = 0;
  quote(cmd, sizeof cmd, &o, self);
  for (int i = 0; i < n; i++) quote(cmd, sizeof cmd, &o, args[i]);
  char hv[32];
  snprintf(hv, sizeof hv, "%llu", (unsigned long long)(uintptr_t)w);
  quote(cmd, sizeof cmd, &o, "--report-fd");
  quote(cmd, sizeof cmd, &o, hv);
  /* Inherit exactly the pipe's write end, nothing else. */
  SIZE_T size = 0;
  InitializeProcThreadAttributeList(NULL, 1, 0, &size);
  LPPROC_THREAD_ATTRIBUTE_LIST al = malloc(size);
  STARTUPINFOEXA si;
  memset(&si, 0, sizeof si);
  si.StartupInfo.cb = sizeof si;
  si.StartupInfo.dwFlags = STARTF_USESTDHANDLES;
  si.StartupInfo.hStdInput = GetStdHandle(STD_INPUT_HANDLE);
  si.StartupInfo.hStdOutput = GetStdHandle(STD_OUTPUT_HANDLE);
  si.StartupInfo.hStdError = GetStdHandle(STD_ERROR_HANDLE);
  DWORD flags = 0;
  if (al && InitializeProcThreadAttributeList(al, 1, 0, &size) &&
      UpdateProcThreadAttribute(al, 0, PROC_THREAD_ATTRIBUTE_HANDLE_LIST, &w, sizeof w,
                                NULL, NULL)) {
    si.lpAttributeList = al;
    flags |= EXTENDED_STARTUPINFO_PRESENT;
  }
  PROCESS_INFORMATION pi;
  fflush(stdout);
  fflush(stderr);
  BOOL ok = CreateProcessA(self, cmd, NULL, NULL, TRUE, flags, NULL, NULL,
                           &si.StartupInfo, &pi);
  DWORD e = GetLastError();
  if (si.lpAttributeList) DeleteProcThreadAttributeList(al);
  free(al);
  CloseHandle(w);
  if (!ok) {
    CloseHandle(r);
    return e == ERROR_FILE_NOT_FOUND ? -ENOENT : -EIO;
  }
  CloseHandle(pi.hThread);
  int fd = _open_osfhandle((intptr_t)r, _O_RDONLY | _O_BINARY);
  if (fd < 0) {
    CloseHandle(r);
    TerminateProcess(pi.hProcess, 127);
    CloseHandle(pi.hProcess);
    return -EMFILE;
  }
  c->pid = (int)pi.dwProcessId;
  c->handle = pi.hProcess;
  *rfd = fd;
  return 0;
}

int os_child_status(os_child *c) {
  if (!c->handle) return 127;
  if (WaitForSingleObject(c->handle, 0) != WAIT_OBJECT_0) return -1;
  DWORD code = 127;
  GetExitCodeProcess(c->handle, &code);
  CloseHandle(c->handle);
  c->handle = NULL;
  return (int)(code & 0xff);
}

/* Ctrl-C reaches every process of the console, children included, so a
 * gentle stop needs nothing more; a hard one terminates. */
void os_child_stop(os_child *c, int hard) {
  if (hard && c->handle) TerminateProcess(c->handle, 128 + 9);
}

int os_report_fd(uint64_t value) {
  HANDLE h = (HANDLE)(uintptr_t)value;
  if (!value || GetFileType(h) != FILE_TYPE_PIPE) return -1;
  return _open_osfhandle((intptr_t)h, _O_WRONLY | _O_BINARY);
}

/* Anonymous pipes cannot be waited on: peek at each, in short naps. */
static int peek(int fd) {
  DWORD avail = 0;
  if (!PeekNamedPipe((HANDLE)_get_osfhandle(fd), NULL, 0, NULL, &avail, NULL))
    return 1; /* broken: the end of file is readable */
  return avail > 0;
}

int os_wait_readable(const int *fds, int n, int ms, int *ready) {
  DWORD end = GetTickCount() + (DWORD)(ms > 0 ? ms : 0);
  for (;;) {
    int k = 0;
    for (int i = 0; i < n; i++) k += ready[i] = peek(fds[i]);
    if (k) return k;
    if (stop_flag && *stop_flag) return -1;
    if ((LONG)(GetTickCount() - end) >= 0) return 0;
    Sleep(5);
  }
}

int os_read(int fd, void *buf, size_t len) {
  DWORD avail = 0;
  if (!PeekNamedPipe((HANDLE)_get_osfhandle(fd), NULL, 0, NULL, &avail, NULL))
    return GetLastError() == ERROR_BROKEN_PIPE ? 0 : -2;
  if (avail == 0) return -1;
  if (len > avail) len = avail;
  int r = _read(fd, buf, (unsigned)len);
  return r > 0 ? r : r == 0 ? 0 : -2;
}

void os_close(int fd) {
  if (fd >= 0) _close(fd);
}

/* ---- channels ------------------------------------------------------------------- */

int os_pid_alive(int32_t pid) {
  if (pid <= 0) return -1;
  HANDLE h = OpenProcess(SYNCHRONIZE | PROCESS_QUERY_LIMITED_INFORMATION, FALSE, (DWORD)pid);
  if (!h) return GetLastError() == ERROR_INVALID_PARAMETER ? 0 : -1;
  DWORD r = WaitForSingleObject(h, 0);
  CloseHandle(h);
  return r == WAIT_TIMEOUT ? 1 : r == WAIT_OBJECT_0 ? 0 : -1;
}

/* Segment memory is a paging-file section: no per-file figure. */
uint64_t os_segment_resident(const char *name) {
  (void)name;
  return 0;
}

const char *os_not_channel(const char *name) {
  char path[1024];
  snprintf(path, sizeof path, "%s\\%s%s", shmx_channel_dir(), SHMX_SEGMENT_PREFIX, name);
  DWORD a = GetFileAttributesA(path);
  if (a == INVALID_FILE_ATTRIBUTES) return NULL;
  if (a & FILE_ATTRIBUTE_REPARSE_POINT) return "symlink";
  if (a & FILE_ATTRIBUTE_DIRECTORY) return "directory";
  if (a & FILE_ATTRIBUTE_DEVICE) return "device";
  return NULL;
}

int os_is_file(const char *path) {
  DWORD a = GetFileAttributesA(path);
  return a != INVALID_FILE_ATTRIBUTES &&
         !(a & (FILE_ATTRIBUTE_DIRECTORY | FILE_ATTRIBUTE_DEVICE));
}

/* ---- time ------------------------------------------------------------------------ */

double os_now_s(void) { return (double)shmx_now_ns() / 1e9; }

void os_sleep_ns(uint64_t ns, volatile int *stop) {
  uint64_t end = shmx_now_ns() + ns;
  for (;;) {
    if (stop && *stop) return;
    uint64_t now = shmx_now_ns();
    if (now >= end) return;
    uint64_t ms = (end - now) / 1000000u;
    Sleep(ms > 50 ? 50 : ms ? (DWORD)ms : 1);
  }
}

void os_sleep_until(uint64_t t_ns, volatile int *stop) {
  uint64_t now = shmx_now_ns();
  if (t_ns > now) os_sleep_ns(t_ns - now, stop);
}

int os_getpid(void) { return (int)GetCurrentProcessId(); }

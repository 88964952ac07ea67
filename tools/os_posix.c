/* os_posix.c -- os.h on Linux (and other POSIX systems). */
#include "os.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "shmx.h"

static volatile sig_atomic_t *stop_flag;
static void on_signal(int sig) {
  (void)sig;
  if (stop_flag) *stop_flag = 1;
}

void os_on_stop(volatile sig_atomic_t *flag) {
  stop_flag = flag;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal; /* no SA_RESTART: waits return EINTR */
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
}

void os_default_stop(void) {
  signal(SIGINT, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
}

/* ---- terminal ---------------------------------------------------------------- */

int os_isatty(int fd) { return isatty(fd); }

int os_term_cols(int fd) {
  struct winsize ws;
  if (ioctl(fd, TIOCGWINSZ, &ws) != 0 || ws.ws_col == 0) return 0;
  return ws.ws_col;
}

int os_term_rows(int fd) {
  struct winsize ws;
  if (ioctl(fd, TIOCGWINSZ, &ws) != 0) return 0;
  return ws.ws_row;
}

static struct termios saved;
static int raw;

void os_term_restore(void) {
  if (!raw) return;
  raw = 0;
  static const char seq[] = "\033[?25h\033[?1049l";
  ssize_t w = write(STDOUT_FILENO, seq, sizeof seq - 1);
  (void)w;
  tcsetattr(STDIN_FILENO, TCSADRAIN, &saved);
}

int os_term_raw(void) {
  if (tcgetattr(STDIN_FILENO, &saved) != 0) return -1;
  struct termios t = saved;
  t.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
  t.c_cc[VMIN] = 0;
  t.c_cc[VTIME] = 0;
  if (tcsetattr(STDIN_FILENO, TCSADRAIN, &t) != 0) return -1;
  raw = 1;
  atexit(os_term_restore);
  static const char seq[] = "\033[?1049h\033[?25l\033[H\033[2J";
  ssize_t w = write(STDOUT_FILENO, seq, sizeof seq - 1);
  (void)w;
  return 0;
}

int os_wait_key(int ms) {
  struct pollfd pfd = {STDIN_FILENO, POLLIN, 0};
  int pr = poll(&pfd, 1, ms);
  if (pr <= 0) return -1; /* timeout or a signal */
  if (pfd.revents & (POLLHUP | POLLERR | POLLNVAL)) return -2;
  unsigned char k;
  ssize_t n = read(STDIN_FILENO, &k, 1);
  if (n == 0) return -2;
  return n == 1 ? k : -1;
}

/* ---- memory streams ---------------------------------------------------------- */

typedef struct ms_slot {
  FILE *f;
  char *buf;
  size_t len;
} ms_slot;
static ms_slot mstreams[4]; /* at most a few at once (one screen each) */

FILE *os_memstream(void) {
  for (int i = 0; i < 4; i++)
    if (!mstreams[i].f) {
      mstreams[i].buf = NULL;
      mstreams[i].len = 0;
      mstreams[i].f = open_memstream(&mstreams[i].buf, &mstreams[i].len);
      return mstreams[i].f;
    }
  return NULL;
}

char *os_memstream_done(FILE *f, size_t *len) {
  for (int i = 0; i < 4; i++)
    if (mstreams[i].f == f && f) {
      fclose(f);
      mstreams[i].f = NULL;
      *len = mstreams[i].len;
      return mstreams[i].buf;
    }
  return NULL;
}

/* ---- processes ----------------------------------------------------------------- */

int os_spawn_self(const char *const *args, int n, os_child *c, int *rfd) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return -errno;
  fcntl(p[0], F_SETFL, fcntl(p[0], F_GETFL) | O_NONBLOCK);
  char fdarg[16];
  snprintf(fdarg, sizeof fdarg, "%d", p[1]);
  char *argv[32];
  int k = 0;
  argv[k++] = (char *)"shmx";
  for (int i = 0; i < n && k < 29; i++) argv[k++] = (char *)args[i];
  argv[k++] = (char *)"--report-fd";
  argv[k++] = fdarg;
  argv[k] = NULL;
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid == 0) {
    int fl = fcntl(p[1], F_GETFD);
    if (fl >= 0) fcntl(p[1], F_SETFD, fl & ~FD_CLOEXEC);
    os_default_stop();
    execv("/proc/self/exe", argv);
    _exit(127);
  }
  int e = errno;
  close(p[1]);
  if (pid < 0) {
    close(p[0]);
    return -e;
  }
  c->pid = (int)pid;
  c->handle = NULL;
  *rfd = p[0];
  return 0;
}

int os_child_status(os_child *c) {
  if (c->pid <= 0) return 127;
  int st;
  pid_t r = waitpid((pid_t)c->pid, &st, WNOHANG);
  if (r == (pid_t)c->pid) {
    c->pid = -c->pid; /* reaped: never waited for again */
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  }
  if (r < 0 && errno == ECHILD) return 127;
  return -1;
}

void os_child_stop(os_child *c, int hard) {
  if (c->pid > 0) kill((pid_t)c->pid, hard ? SIGKILL : SIGTERM);
}

int os_report_fd(uint64_t value) { return value <= 1u << 20 ? (int)value : -1; }

int os_wait_readable(const int *fds, int n, int timeout_ms, int *ready) {
  struct pollfd pf[16];
  if (n > 16) n = 16;
  for (int i = 0; i < n; i++) {
    pf[i].fd = fds[i];
    pf[i].events = POLLIN;
    pf[i].revents = 0;
  }
  int r = poll(pf, (nfds_t)n, timeout_ms);
  if (r < 0) return errno == EINTR ? -1 : 0;
  for (int i = 0; i < n; i++) ready[i] = pf[i].revents != 0;
  return r;
}

int os_read(int fd, void *buf, size_t len) {
  for (;;) {
    ssize_t n = read(fd, buf, len);
    if (n >= 0) return (int)n;
    if (errno == EINTR) continue;
    return errno == EAGAIN || errno == EWOULDBLOCK ? -1 : -2;
  }
}

void os_close(int fd) {
  if (fd >= 0) close(fd);
}

/* ---- channels ------------------------------------------------------------------- */

int os_pid_alive(int32_t pid) {
  if (pid <= 0) return -1;
  if (kill((pid_t)pid, 0) == 0) return 1;
  return errno == ESRCH ? 0 : (errno == EPERM ? 1 : -1);
}

uint64_t os_segment_resident(const char *name) {
  char path[512];
  struct stat st;
  snprintf(path, sizeof path, "%s/%s%s", shmx_channel_dir(), SHMX_SEGMENT_PREFIX, name);
  if (stat(path, &st) != 0 || st.st_blocks < 0) return 0;
  return (uint64_t)st.st_blocks * 512u;
}

const char *os_not_channel(const char *name) {
  char path[512];
  struct stat st;
  snprintf(path, sizeof path, "%s/%s%s", shmx_channel_dir(), SHMX_SEGMENT_PREFIX, name);
  if (lstat(path, &st) != 0 || S_ISREG(st.st_mode)) return NULL;
  if (S_ISFIFO(st.st_mode)) return "FIFO";
  if (S_ISLNK(st.st_mode)) return "symlink";
  if (S_ISDIR(st.st_mode)) return "directory";
  if (S_ISSOCK(st.st_mode)) return "socket";
  return "device";
}

int os_is_file(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* ---- time ------------------------------------------------------------------------ */

double os_now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void os_sleep_ns(uint64_t ns, volatile int *stop) {
  struct timespec req = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
  struct timespec rem;
  while (nanosleep(&req, &rem) != 0 && errno == EINTR) {
    if (stop && *stop) return;
    req = rem;
  }
}

void os_sleep_until(uint64_t t_ns, volatile int *stop) {
  struct timespec ts = {(time_t)(t_ns / 1000000000u), (long)(t_ns % 1000000000u)};
  while (!(stop && *stop) &&
         clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
  }
}

int os_getpid(void) { return (int)getpid(); }

/*
 * posix/notify.c -- the event fd of a reader (see docs/design.md, "Event
 * fds"). Linux: an inotify instance watching the segment file itself.
 *
 * Why inotify on the segment: every reader can already read the segment, so
 * the watch needs no permission beyond the one the reader has and no file of
 * its own (nothing to leave behind after any exit, nothing another user can
 * plant); the kernel queues at most one pending copy of an unread identical
 * event, so a fast producer cannot fill anything; the producer rings every
 * armed reader with one pwrite(2), not one system call per reader; and the
 * producer's death is an event too (IN_CLOSE_WRITE when its descriptor and
 * mapping go away), as is an unlink (IN_ATTRIB: the link count changed).
 * It works across mount and pid namespaces that share the tmpfs, since the
 * watch is on the inode.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <time.h>
#include <stdio.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "../internal.h"

#define WATCH_MASK (IN_MODIFY | IN_CLOSE_WRITE | IN_ATTRIB | IN_DELETE_SELF)

int shmx__notify_open(int seg_fd) {
  int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) return -errno;
  /* The watch must be on the inode we mapped, not on whatever the name
   * means now: /proc/self/fd/N resolves to exactly that file. */
  char path[64];
  snprintf(path, sizeof path, "/proc/self/fd/%d", seg_fd);
  if (inotify_add_watch(fd, path, WATCH_MASK) < 0) {
    int e = -errno;
    close(fd);
    return e;
  }
  return fd;
}

int shmx__notify_drain(int fd) {
  /* Events are 16 bytes plus a name; a watch on a file never has a name. */
  _Alignas(struct inotify_event) char buf[4096];
  int got = 0;
  /* Bounded: a writer ringing without pause cannot keep us here. */
  for (int rounds = 0; rounds < 64; rounds++) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) return got;
      return -errno;
    }
    if (n == 0) return got;
    if (got == 0) got = 1;
    for (ssize_t p = 0; p + (ssize_t)sizeof(struct inotify_event) <= n;) {
      const struct inotify_event *ev = (const struct inotify_event *)(const void *)(buf + p);
      if (ev->mask & ~(uint32_t)IN_MODIFY) got = 2;
      p += (ssize_t)sizeof *ev + ev->len;
    }
    /* A read returns every queued event that fits; room left for the
     * largest one means the queue was empty: no second read (a system call
     * per arm) to learn so. A ring after this read leaves the fd readable,
     * as it would after the second read. */
    if ((size_t)n + sizeof(struct inotify_event) + NAME_MAX + 1 <= sizeof buf) return got;
  }
  return got;
}

void shmx__notify_ring(int seg_fd, uint64_t off) {
  static const char zero = 0;
  ssize_t n;
  do {
    n = pwrite(seg_fd, &zero, 1, (off_t)off);
  } while (n < 0 && errno == EINTR);
}

int shmx__dirwatch_open(void) {
  int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) return -errno;
  if (inotify_add_watch(fd, shmx__shm_dir(), IN_CREATE | IN_MODIFY | IN_CLOSE_WRITE |
                                               IN_MOVED_TO | IN_ATTRIB) < 0) {
    int e = -errno;
    close(fd);
    return e;
  }
  return fd;
}

int shmx__dirwatch_wait(int fd, int64_t timeout_ns) {
  if (timeout_ns < 0) timeout_ns = 0;
  if (fd < 0) {
    struct timespec ts = {(time_t)(timeout_ns / 1000000000), (long)(timeout_ns % 1000000000)};
    return nanosleep(&ts, NULL) == 0 || errno != EINTR ? 0 : -EINTR;
  }
  struct pollfd p = {fd, POLLIN, 0};
  int r = poll(&p, 1, (int)((timeout_ns + 999999) / 1000000));
  if (r < 0) return errno == EINTR ? -EINTR : 0;
  if (r > 0) shmx__notify_drain(fd); /* what happened does not matter: look */
  return 0;
}

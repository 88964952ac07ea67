/*
 * win/notify.c -- event fds and the directory watch on Win32.
 *
 * Event fds (shmx_client_fd) are POSIX descriptors for poll/epoll/asyncio
 * and have no Windows counterpart here: -ENOSYS, and readers use
 * shmx_client_wait. The directory watch (shmx_client_open_wait) is a change
 * notification on the channel directory.
 */
#include <errno.h>
#include <stdlib.h>

#include "win.h"

#include "../internal.h"

int shmx__notify_open(int seg_fd) {
  (void)seg_fd;
  return -ENOSYS;
}

int shmx__notify_drain(int fd) {
  (void)fd;
  return -ENOSYS;
}

void shmx__notify_ring(int seg_fd, uint64_t off) { (void)seg_fd, (void)off; }

int shmx__dirwatch_open(void) {
  wchar_t *w = shmx__win_wide(shmx__shm_dir());
  if (!w) return -ENOENT;
  HANDLE h = FindFirstChangeNotificationW(
      w, FALSE, FILE_NOTIFY_CHANGE_FILE_NAME | FILE_NOTIFY_CHANGE_SIZE |
                    FILE_NOTIFY_CHANGE_LAST_WRITE | FILE_NOTIFY_CHANGE_ATTRIBUTES);
  DWORD e = GetLastError();
  free(w);
  if (h == INVALID_HANDLE_VALUE) return shmx__win_errno(e);
  return shmx__hfd(h);
}

int shmx__dirwatch_wait(int fd, int64_t timeout_ns) {
  DWORD ms = timeout_ns < 0 ? INFINITE : (DWORD)(((uint64_t)timeout_ns + 999999u) / 1000000u);
  if (fd < 0) {
    Sleep(ms);
    return 0;
  }
  if (WaitForSingleObject(shmx__h(fd), ms) == WAIT_OBJECT_0)
    FindNextChangeNotification(shmx__h(fd)); /* re-arm */
  return 0;
}

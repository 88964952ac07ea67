/*
 * win/sync.c -- blocking waits, process liveness, clocks and randomness on
 * Win32 (the POSIX twin is posix/sync.c).
 *
 * Waits: WaitOnAddress only wakes threads of its own process, so a reader
 * sleeps on a named semaphore of the producer's session
 * ("Local\shmx.<session>.wake"), and the producer releases it once per
 * reader counted as waiting (header.waiters + header.sleepers). The
 * protocol around it is the futex one (docs/design.md, "Wake-ups"): a
 * reader counts itself and re-checks the frame sequence before it sleeps,
 * so a release is never needed before that check, and a release nobody
 * consumed only makes a later wait return early once (callers loop).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "win.h"

#include <bcrypt.h>

#include "../internal.h"

static void wake_name(uint64_t session_id, wchar_t *buf, size_t cap) {
  _snwprintf(buf, cap, L"Local\\shmx.%016llx.wake", (unsigned long long)session_id);
  buf[cap - 1] = 0;
}

int shmx__wake_open(uint64_t session_id, int create, unsigned mode, void **obj) {
  wchar_t name[64];
  wake_name(session_id, name, 64);
  HANDLE h;
  if (create) {
    /* Readers of the channel may wait on it and nothing else. */
    SECURITY_ATTRIBUTES sa = {sizeof sa, shmx__win_sd(shmx__win_others(mode, SYNCHRONIZE, 0)),
                              FALSE};
    h = CreateSemaphoreW(sa.lpSecurityDescriptor ? &sa : NULL, 0, LONG_MAX, name);
    DWORD e = GetLastError();
    if (sa.lpSecurityDescriptor) LocalFree(sa.lpSecurityDescriptor);
    if (h && e == ERROR_ALREADY_EXISTS) { /* someone squats the name: not ours */
      CloseHandle(h);
      return -EEXIST;
    }
    if (!h) return shmx__win_errno(e);
  } else {
    h = OpenSemaphoreW(SYNCHRONIZE, FALSE, name);
    if (!h) return shmx__win_errno(GetLastError());
  }
  *obj = h;
  return 0;
}

void shmx__wake_close(void *obj) {
  if (obj) CloseHandle(obj);
}

static DWORD ms_of(int64_t timeout_ns) {
  if (timeout_ns < 0) return INFINITE;
  uint64_t ms = ((uint64_t)timeout_ns + 999999u) / 1000000u;
  return ms >= INFINITE ? INFINITE - 1 : (DWORD)ms;
}

int shmx__futex_wait(void *obj, _Atomic uint32_t *addr, uint32_t val,
                     int64_t timeout_ns) {
  if (atomic_load(addr) != val) return 0;
  if (!obj) { /* no semaphore (not allowed to open it): nap and re-check */
    int64_t nap = timeout_ns < 0 || timeout_ns > 1000000 ? 1000000 : timeout_ns;
    Sleep(ms_of(nap));
    return atomic_load(addr) != val ? 0 : SHMX_E_TIMEOUT;
  }
  DWORD r = WaitForSingleObject((HANDLE)obj, ms_of(timeout_ns));
  if (r == WAIT_OBJECT_0) return 0;
  if (r == WAIT_TIMEOUT) return SHMX_E_TIMEOUT;
  return shmx__win_errno(GetLastError());
}

void shmx__futex_wake(void *obj, _Atomic uint32_t *addr, uint32_t count) {
  (void)addr;
  if (obj && count) ReleaseSemaphore((HANDLE)obj, (LONG)(count > 65536 ? 65536 : count), NULL);
}

int shmx__pid_alive(int32_t pid) {
  if (pid <= 0) return -1;
  HANDLE h = OpenProcess(SYNCHRONIZE | PROCESS_QUERY_LIMITED_INFORMATION, FALSE, (DWORD)pid);
  if (!h) {
    DWORD e = GetLastError();
    if (e == ERROR_INVALID_PARAMETER) return 0; /* no such process */
    return e == ERROR_ACCESS_DENIED ? 1 : -1;
  }
  DWORD r = WaitForSingleObject(h, 0);
  CloseHandle(h);
  return r == WAIT_OBJECT_0 ? 0 : r == WAIT_TIMEOUT ? 1 : -1;
}

uint64_t shmx__pid_start(int32_t pid) {
  if (pid <= 0) return 0;
  HANDLE h = OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, FALSE, (DWORD)pid);
  if (!h) return 0;
  FILETIME c, x, k, u;
  uint64_t v = 0;
  if (GetProcessTimes(h, &c, &x, &k, &u))
    v = ((uint64_t)c.dwHighDateTime << 32) | c.dwLowDateTime;
  CloseHandle(h);
  return v;
}

int32_t shmx__getpid(void) { return (int32_t)GetCurrentProcessId(); }

static uint64_t qpc_freq(void) {
  static _Atomic uint64_t f;
  uint64_t v = atomic_load_explicit(&f, memory_order_relaxed);
  if (!v) {
    LARGE_INTEGER q;
    QueryPerformanceFrequency(&q);
    v = q.QuadPart > 0 ? (uint64_t)q.QuadPart : 1;
    atomic_store_explicit(&f, v, memory_order_relaxed);
  }
  return v;
}

uint64_t shmx__mono_ns(void) {
  LARGE_INTEGER c;
  QueryPerformanceCounter(&c);
  uint64_t t = (uint64_t)c.QuadPart, f = qpc_freq();
  return t / f * 1000000000u + t % f * 1000000000u / f;
}

uint64_t shmx__mono_coarse_ns(void) { return shmx__mono_ns(); }

uint64_t shmx__real_ns(void) {
  FILETIME ft;
  GetSystemTimePreciseAsFileTime(&ft);
  uint64_t t = ((uint64_t)ft.dwHighDateTime << 32) | ft.dwLowDateTime;
  const uint64_t epoch = 116444736000000000ull; /* 1601 -> 1970, in 100 ns */
  return t > epoch ? (t - epoch) * 100u : 0;
}

uint64_t shmx__random64(void) {
  uint64_t v = 0;
  if (BCryptGenRandom(NULL, (PUCHAR)&v, sizeof v, BCRYPT_USE_SYSTEM_PREFERRED_RNG) != 0)
    v = shmx__real_ns() ^ ((uint64_t)GetCurrentProcessId() << 32) ^ shmx__mono_ns();
  return v ? v : 1;
}

void shmx__sleep_ns(uint64_t ns) { Sleep(ms_of((int64_t)(ns > INT64_MAX ? INT64_MAX : ns))); }

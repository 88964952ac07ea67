/*
 * internal.h -- declarations shared by libshmx's modules (not installed).
 * Internal names use the shmx__ prefix; public ones shmx_.
 */
#ifndef SHMX_INTERNAL_H
#define SHMX_INTERNAL_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shmx.h"

#if defined(__GNUC__)
#  define SHMX__LIKELY(x) __builtin_expect(!!(x), 1)
#  define SHMX__UNLIKELY(x) __builtin_expect(!!(x), 0)
#  if defined(__MINGW32__)
#    define SHMX__PRINTF(a, b) __attribute__((format(gnu_printf, a, b)))
#  else
#    define SHMX__PRINTF(a, b) __attribute__((format(printf, a, b)))
#  endif
#  define SHMX__ALWAYS_INLINE __attribute__((always_inline))
#else
#  define SHMX__ALWAYS_INLINE
#  define SHMX__LIKELY(x) (x)
#  define SHMX__UNLIKELY(x) (x)
#  define SHMX__PRINTF(a, b)
#endif

/* testcase(X): marks an edge path that tests must reach (SQLite's idea).
 * Compiled to nothing; grep for it to see the list. */
#define testcase(X) ((void)0)

/* ---- errors.c: thread-local detail message ----------------------------- */

/* Record err with a printf-style detail for shmx_errmsg(); returns err. */
int shmx__err(int err, const char *fmt, ...) SHMX__PRINTF(2, 3);
/* Record -errno_value with a detail; returns -errno_value. */
int shmx__syserr(int errno_value, const char *fmt, ...) SHMX__PRINTF(2, 3);

/* ---- client.c: for relays and recorders inside the library ----------- */

/* Generation of the schema the client holds (what its reads decode with). */
uint32_t shmx__client_schema_gen(const shmx_client *cl);
/* Session id of the producer the client is attached to. */
uint64_t shmx__client_session(const shmx_client *cl);

/* ---- util.c: checked arithmetic ---------------------------------------- */

/* *out = a + b / a * b; return false on overflow. */
static inline bool shmx__add_ok(uint64_t a, uint64_t b, uint64_t *out) {
  return !__builtin_add_overflow(a, b, out);
}
static inline bool shmx__mul_ok(uint64_t a, uint64_t b, uint64_t *out) {
  return !__builtin_mul_overflow(a, b, out);
}
/* Round v up to a multiple of the power of two a; false on overflow. */
static inline bool shmx__align_ok(uint64_t v, uint64_t a, uint64_t *out) {
  uint64_t t;
  if (!shmx__add_ok(v, a - 1, &t)) return false;
  *out = t & ~(a - 1);
  return true;
}
/* True if [off, off+len) lies inside [0, size), written so it cannot
 * overflow. */
static inline bool shmx__range_ok(uint64_t off, uint64_t len, uint64_t size) {
  return off <= size && len <= size - off;
}

/* ---- posix/shm.c, win/shm.c: channel files, mappings, byte locks -------- */

/* Identity and attributes of a file. */
typedef struct shmx__fid {
  uint64_t dev, ino, size;
  uint32_t uid, mode; /* owner; permission bits */
  int regular;
} shmx__fid;
static inline bool shmx__fid_same(const shmx__fid *a, const shmx__fid *b) {
  return a->dev == b->dev && a->ino == b->ino;
}
/* Open file `file` of the shared-memory directory (O_NOFOLLOW, O_NONBLOCK,
 * O_CLOEXEC; retries EINTR) and fill *id if not NULL. Returns the fd,
 * -errno, or SHMX_E_CORRUPT (detail set) for a symlink, FIFO, socket,
 * device or directory: never follows a link, never blocks. */
int shmx__shm_open(const char *file, int oflag, unsigned mode, shmx__fid *id);
/* lstat of `file` in the shared-memory directory. 0 or -errno. */
int shmx__shm_stat(const char *file, shmx__fid *id);
int shmx__shm_unlink(const char *file);
int shmx__fd_stat(int fd, shmx__fid *id);
int shmx__fd_chmod(int fd, unsigned mode);
/* Change the owner (only root can give a file away). */
int shmx__fd_chown(int fd, uint32_t uid);
uint32_t shmx__euid(void);
/* Size of an open file in bytes, or -errno. */
int shmx__fd_size(int fd, uint64_t *size);
int shmx__fd_truncate(int fd, uint64_t size);
/* pread of a channel file until len bytes or its end; bytes read or -errno. */
int64_t shmx__fd_pread(int fd, void *dst, uint64_t len, uint64_t off);
/* Allocate backing pages (tmpfs) so later writes cannot SIGBUS on ENOSPC. */
int shmx__fd_allocate(int fd, uint64_t size);
/* mmap; prot: 1 read, 2 write. populate pre-faults. Returns 0 or -errno. */
int shmx__map(int fd, uint64_t off, uint64_t len, int prot, bool populate,
              void **out);
void shmx__unmap(void *p, uint64_t len);
void shmx__close(int fd);
/* Open-file-description WRITE locks on one byte (fcntl F_OFD_*), the
 * evidence of liveness (see owner.h). They die with the process, ignore pid
 * namespaces and pid reuse, and need a descriptor open for writing.
 * Windows: LockFileEx byte locks, which also die with their process but are
 * mandatory and can be taken through any handle (win/shm.c).
 * Non-blocking: 0, -EAGAIN (held by another), or -errno. */
int shmx__byte_lock(int fd, uint64_t off);
void shmx__byte_unlock(int fd, uint64_t off);
/* 1 if another open file description holds a WRITE lock on the byte, 0 if
 * none (read locks, which read-only users can take, do not count), -errno
 * if it cannot be told. */
int shmx__byte_locked(int fd, uint64_t off);
/* The directory listing POSIX shared memory ("/dev/shm" on Linux). */
const char *shmx__shm_dir(void);
size_t shmx__page_size(void);

/* ---- posix/guard.c: survive truncation by another process (a no-op on
 * Windows, where a mapped file cannot be shrunk) ---------------------------- */

/* Guard [base, base + len), a shared mapping (prot: 1 read, 2 write) of a
 * file another process may truncate: a SIGBUS inside it maps private zero
 * pages over the rest of the range and sets *flag to 1, and the access
 * resumes (reads see zeros). Returns a handle, or -1 if unguarded (guard off
 * with SHMX_SIGBUS_GUARD=0, or 16384 ranges already guarded). Remove the
 * range (shmx__guard_del) before unmapping it. */
int shmx__guard_add(void *base, uint64_t len, int prot, _Atomic uint32_t *flag);
void shmx__guard_del(int handle);
/* 1 if the guard's handler is installed. */
int shmx__guard_on(void);

/* ---- posix/notify.c: the event fd of a reader (shmx_client_fd; -ENOSYS on
 * Windows) and the directory watch ------------------------------------------ */

/* A descriptor that becomes readable when the segment open as seg_fd is
 * written with write(2) (the bell), when a descriptor of it open for
 * writing is closed (a producer dying closes its own), or when it is
 * unlinked or its attributes change. Non-blocking, close-on-exec. Returns
 * the fd or -errno (-ENOENT if /proc is not mounted). */
int shmx__notify_open(int seg_fd);
/* Consume what made fd readable. Returns 0 if nothing was pending, 1 if only
 * bells were, 2 if something else was too (a close, an unlink, an event
 * queue overflow: liveness must be re-checked), or -errno. */
int shmx__notify_drain(int fd);
/* Ring the bell: one non-blocking pwrite(2) of a zero byte at off. */
void shmx__notify_ring(int seg_fd, uint64_t off);
/* A descriptor that becomes readable when an entry of the shared-memory
 * directory is created, written, closed after writing, renamed in or has
 * its attributes changed (a channel appearing or being re-created), or
 * -errno. Non-blocking, close-on-exec. */
int shmx__dirwatch_open(void);
/* Sleep until fd (from dirwatch_open, or -1: just sleep) is readable or
 * timeout_ns passes, then drain it. 0, or -EINTR. */
int shmx__dirwatch_wait(int fd, int64_t timeout_ns);

/* ---- posix/sync.c, win/sync.c: waits, processes, clocks, randomness ----- */

/* The object a segment's waits sleep on, beside its wake word: NULL on
 * Linux (the futex is the word itself); a named semaphore of the session
 * on Windows, created by the producer (create=1, readable by the users
 * `mode` lets read) and opened by readers. 0 or -errno. */
int shmx__wake_open(uint64_t session_id, int create, unsigned mode, void **obj);
void shmx__wake_close(void *obj);
/* Wait while *addr == val, up to timeout_ns (< 0 forever). 0 when woken or
 * the value differed (or spuriously: callers re-check), SHMX_E_TIMEOUT, or
 * -EINTR. Cross-process. */
int shmx__futex_wait(void *obj, _Atomic uint32_t *addr, uint32_t val,
                     int64_t timeout_ns);
/* Wake every waiter; `count` is how many the header counts as waiting
 * (Windows releases that many, Linux wakes all). */
void shmx__futex_wake(void *obj, _Atomic uint32_t *addr, uint32_t count);
/* 1 if process pid exists, 0 if not, -1 if it cannot be told. */
int shmx__pid_alive(int32_t pid);
/* Start time of process pid (opaque, stable for the process's life; 0 if
 * unknown), so that a reused pid is told apart from the original. */
uint64_t shmx__pid_start(int32_t pid);
int32_t shmx__getpid(void);
uint64_t shmx__mono_ns(void);
/* CLOCK_MONOTONIC_COARSE: same base, a few ms behind, a quarter the cost.
 * Used for heartbeats and probe intervals on the read path. */
uint64_t shmx__mono_coarse_ns(void);
uint64_t shmx__real_ns(void);

/* ---- stamp.c ----------------------------------------------------------- */

/* CLOCK_MONOTONIC for publish stamps: one RDTSC on a fitted line where the
 * TSC is a sound time base (within ~0.1 us of shmx__mono_ns(); see stamp.c),
 * else shmx__mono_ns(). Thread-safe. Not monotonic across re-anchors by
 * more than that error: callers that need it clamp. */
uint64_t shmx__stamp_ns(void);
/* 1 once stamps come from the TSC (for tests and diagnostics). */
int shmx__stamp_tsc(void);
/* ---- copy.c ------------------------------------------------------------ */

/* Copy n bytes with streaming stores where the CPU has them (else memcpy),
 * ending with a store fence. For large copies into memory that is probably
 * not cached; see copy.c. */
void shmx__copy_stream(void *dst, const void *src, size_t n);
/* Appends of at least this many bytes into a slot idle for SHMX__COLD_NS,
 * or with SHMX__COLD_BYTES of other frames written since, use
 * shmx__copy_stream. */
#define SHMX__STREAM_MIN ((uint64_t)256 * 1024)
#define SHMX__COLD_NS ((uint64_t)1000 * 1000)
#define SHMX__COLD_BYTES ((uint64_t)8 * 1024 * 1024)
/* SHMX_COPY=cached|stream in the environment forces one way (benchmarks);
 * read by each producer when it creates its channel. */
enum { SHMX__COPY_AUTO, SHMX__COPY_CACHED, SHMX__COPY_STREAM };
int shmx__copy_mode(void);

/* 64 random bits from the OS (getrandom), never 0. */
uint64_t shmx__random64(void);
/* Sleep for ns (used only in slow retry paths, never in publish/read). */
void shmx__sleep_ns(uint64_t ns);
/* Cache hints (no effect on results; never fault). */
#if defined(__GNUC__) || defined(__clang__)
#define SHMX__PREFETCH(p) __builtin_prefetch((p), 0)
#define SHMX__PREFETCH_W(p) __builtin_prefetch((p), 1)
#else
#define SHMX__PREFETCH(p) ((void)(p))
#define SHMX__PREFETCH_W(p) ((void)(p))
#endif
static inline void shmx__cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

/* ---- crc32c.c ---------------------------------------------------------- */

uint32_t shmx__crc32c(uint32_t crc, const void *data, size_t len);

#endif /* SHMX_INTERNAL_H */

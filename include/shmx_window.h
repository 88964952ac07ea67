/*
 * shmx_window.h -- sliding-window memory maps over large files.
 *
 * A window manager (shmx_wm_*) maps read-only regions ("windows") of files
 * on demand and hands them out through cursors (shmx_wc_*). A cursor points
 * at a byte range of one file; moving it maps the window it needs, reusing a
 * mapped region when one covers the offset. Regions no cursor (and no
 * exported buffer) uses stay mapped as a cache and are unmapped least
 * recently used first when a limit needs room, or by shmx_wm_collect().
 *
 * CONVENTIONS (as shmx.h)
 *   - Functions return 0 or a negative shmx error code (shmx_errmsg() has a
 *     detail), except where a count or a 1/0 answer is documented.
 *   - Files are identified by (device, inode), never by path string or fd
 *     number: two cursors on the same file share regions, and a reused fd
 *     number never serves another file's bytes.
 *   - Mappings are read-only (PROT_READ, MAP_SHARED): pointers returned by
 *     this API must never be written through.
 *
 * THREADS
 *   A manager is thread-safe: any number of threads may create and use
 *   cursors of one manager at once; counts and limits are kept under one
 *   mutex. A cursor is NOT thread-safe: use each cursor from one thread at a
 *   time (give every thread its own cursor, see shmx_wc_clone()).
 *
 * LIMITS
 *   max_handles: regions mapped at once never exceed it. Each mapped region
 *     counts as one handle (as in smmap, where each window is an mmap object
 *     holding a descriptor). The manager also keeps at most one descriptor
 *     open per file that has mapped regions, so it never holds more file
 *     descriptors than max_handles. When the limit is reached and every
 *     region is in use, mapping fails with SHMX_E_LIMIT.
 *   max_memory: mapped bytes never exceed it except by regions in active use:
 *     before mapping, unused regions are unmapped (least recently used first)
 *     until the new window fits. If it still does not fit because the rest
 *     is in use, the window is mapped anyway (a whole-file static window may
 *     alone exceed the limit). A failing mmap (ENOMEM) unmaps every unused
 *     region and retries once, then returns -ENOMEM.
 *   open() failing with EMFILE/ENFILE likewise unmaps unused regions (which
 *     closes idle descriptors) and retries once.
 *
 * FILES THAT SHRINK
 *   The size of a file is re-read (fstat) whenever a new window is mapped and
 *   when an offset at or past the known end is requested (so growth is seen).
 *   If the file became shorter than a region that is already mapped, unused
 *   regions past the new end are unmapped, and shmx_wc_check() reports
 *   SHMX_E_SHRUNK. shmx_wc_use() re-reads the size before it reuses any
 *   cached region (its own or another cursor's), so it clamps to the new
 *   end; only a cursor staying inside its own window takes no system call.
 *   Every mapped region is SIGBUS-guarded (docs/design.md, "Truncation"):
 *   touching bytes the file lost reads zeros instead of killing the process,
 *   marks the region lost (never handed out again, unmapped when unused),
 *   and from then on that cursor's use() clamps too. shmx_wc_read() checks
 *   that mark after copying from a region and then reads with pread(), so it
 *   returns exactly what the file holds now (0 bytes past the end). A raw
 *   pointer (shmx_wc_ptr, shmx_wm_region_data) into lost bytes reads zeros.
 */
#ifndef SHMX_WINDOW_H
#define SHMX_WINDOW_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifndef SHMX_API
#  if defined(__GNUC__)
#    define SHMX_API __attribute__((visibility("default")))
#  else
#    define SHMX_API
#  endif
#endif

typedef struct shmx_wm shmx_wm;               /* manager */
typedef struct shmx_wc shmx_wc;               /* cursor */
typedef struct shmx_wm_region shmx_wm_region; /* one mapped window */

/* ---- Manager ----------------------------------------------------------- */

enum shmx_wm_kind {
  SHMX_WM_SLIDING = 0, /* windows of at most window_size bytes */
  SHMX_WM_STATIC = 1   /* one region per file, mapping the whole file */
};

typedef struct shmx_wm_config {
  uint32_t kind;        /* enum shmx_wm_kind */
  uint64_t window_size; /* sliding: max bytes per window, capped at
                           max_memory, then rounded UP to whole allocation
                           granules (as smmap does); 0 = whole file.
                           Ignored by STATIC. */
  uint64_t max_memory;  /* 0 = default: 8 GiB (1 GiB on 32-bit) */
  uint64_t max_handles; /* 0 = default: half the RLIMIT_NOFILE soft limit
                           read at create time, between 1 and 32768 */
} shmx_wm_config;

/* Defaults for a manager of kind `kind`: window_size 1 GiB (64 MiB on
 * 32-bit) for SLIDING, 0 for STATIC; max_memory and max_handles 0. */
SHMX_API void shmx_wm_config_init(shmx_wm_config *cfg, uint32_t kind);

/* Create a manager. Errors: SHMX_E_ARG (NULL or unknown kind), -ENOMEM.
 * *out is NULL on error. */
SHMX_API int shmx_wm_create(const shmx_wm_config *cfg, shmx_wm **out);

/* Drop the creator's reference. The manager is freed once no cursor and no
 * region reference (shmx_wm_region_hold/use) is left; unused regions are
 * unmapped now. NULL is a no-op. */
SHMX_API void shmx_wm_destroy(shmx_wm *wm);

/* Unmap every region no cursor or buffer uses. Returns how many. */
SHMX_API int shmx_wm_collect(shmx_wm *wm);

typedef struct shmx_wm_stats {
  uint32_t kind;
  uint64_t window_size;  /* effective (rounded) window size, 0 = whole file */
  uint64_t max_memory;   /* effective limits */
  uint64_t max_handles;
  uint64_t mapped_bytes; /* bytes currently mapped */
  uint64_t regions;      /* regions currently mapped (= handles in use) */
  uint64_t regions_used; /* of which in use by a cursor or buffer */
  uint64_t open_files;   /* files with at least one mapped region */
  uint64_t open_fds;     /* descriptors the manager holds open */
  uint64_t maps;         /* windows mapped since create */
  uint64_t evictions;    /* regions unmapped to meet a limit */
} shmx_wm_stats;

/* Snapshot of counters, taken under the manager's lock. */
SHMX_API void shmx_wm_get_stats(shmx_wm *wm, shmx_wm_stats *out);

/* Allocation granularity: window offsets are multiples of it. */
SHMX_API uint64_t shmx_wm_granularity(void);

/* ---- Cursors ----------------------------------------------------------- */

/* A cursor on the file at `path`, opened O_RDONLY|O_CLOEXEC|extra_oflags
 * when a window must be mapped. The file is identified now (stat): if
 * `path` later names another file, mapping fails with -ENOENT. Errors:
 * -ENOENT, -EACCES, SHMX_E_ARG (not a regular file or block device), ... */
SHMX_API int shmx_wc_open_path(shmx_wm *wm, const char *path, int extra_oflags,
                               shmx_wc **out);

/* A cursor on the file open as `fd` (not duplicated, not closed: it must
 * stay open while new windows are needed). The file is identified now
 * (fstat); if `fd` is later closed and its number reused for another file,
 * mapping fails with -EBADF instead of serving the other file's bytes.
 * Windows already mapped stay readable after the fd is closed. */
SHMX_API int shmx_wc_open_fd(shmx_wm *wm, int fd, shmx_wc **out);

/* A new cursor on the same file, at the same window (sharing its region).
 * Errors: -ENOMEM. */
SHMX_API int shmx_wc_clone(const shmx_wc *src, shmx_wc **out);

/* Unuse the window and free the cursor. NULL is a no-op. */
SHMX_API void shmx_wc_close(shmx_wc *c);

/* Point the cursor at [offset, offset + size) of the file (size 0 = as much
 * as possible), mapping a window if the current one does not contain
 * `offset`. The cursor then covers [offset, offset + n) where
 * 1 <= n <= size: n is smaller when the window or the file ends first.
 * Returns 1 (valid), 0 if offset is at or past the end of the file (the
 * cursor is then invalid, not an error), or an error: SHMX_E_LIMIT (handle
 * limit reached, all regions in use), -ENOMEM, -EMFILE, -ENOENT/-EBADF
 * (the path or fd now names another file), SHMX_E_STATE (manager
 * destroyed). The end of the file is re-read before 0 is returned, so an
 * offset the file lost by shrinking also gives 0. */
SHMX_API int shmx_wc_use(shmx_wc *c, uint64_t offset, uint64_t size);

/* Copy len bytes at offset of the cursor's file into dst WITHOUT moving the
 * cursor or mapping a window: from a mapped region if one holds a small
 * range, else with pread() through the file's descriptor (opened for the
 * call if the manager has none open; closed again if no region needs it).
 * Cheaper than mapping when accesses are scattered and the limits keep
 * evicting windows. Returns the bytes copied (fewer than len only at the end
 * of the file; 0 past it) or an error (-EBADF/-ENOENT if the fd or path now
 * names another file, -EIO, SHMX_E_STATE). */
SHMX_API int64_t shmx_wc_read(shmx_wc *c, uint64_t offset, void *dst,
                              uint64_t len);

/* Release the cursor's window (it stays cached in the manager). */
SHMX_API void shmx_wc_unuse(shmx_wc *c);

/* 1 if the cursor points at a mapped window. */
SHMX_API int shmx_wc_valid(const shmx_wc *c);
/* First byte of the cursor's range (offset given to shmx_wc_use), or NULL
 * if invalid. Valid until the cursor moves, is unused or closed. */
SHMX_API const uint8_t *shmx_wc_ptr(const shmx_wc *c);
/* Absolute file offset of the cursor's first byte, and its byte count. */
SHMX_API uint64_t shmx_wc_offset(const shmx_wc *c);
SHMX_API uint64_t shmx_wc_size(const shmx_wc *c);
/* File size as last read by the manager. */
SHMX_API uint64_t shmx_wc_file_size(const shmx_wc *c);
/* The region the cursor uses, or NULL. Borrowed: valid while the cursor
 * stays on it; call shmx_wm_region_hold() to keep it. */
SHMX_API shmx_wm_region *shmx_wc_region(const shmx_wc *c);
/* The manager the cursor belongs to (borrowed). */
SHMX_API shmx_wm *shmx_wc_manager(const shmx_wc *c);

enum shmx_wc_advice {
  SHMX_WC_NORMAL = 0,
  SHMX_WC_SEQUENTIAL = 1, /* MADV_SEQUENTIAL on every window the cursor uses */
  SHMX_WC_RANDOM = 2,     /* MADV_RANDOM on every window the cursor uses */
  SHMX_WC_WILLNEED = 3    /* MADV_WILLNEED on the cursor's range at each use */
};
/* Set the cursor's access hint; applied to its current window now and to
 * every window it uses later. Hints never change results. SHMX_E_ARG for an
 * unknown advice; a failing madvise is ignored. */
SHMX_API int shmx_wc_advise(shmx_wc *c, int advice);

/* Re-read the file size. 0 if the cursor's range is still inside the file,
 * SHMX_E_SHRUNK if the file is now shorter than the cursor's end (reading
 * the lost bytes would raise SIGBUS), -ENOENT/-EBADF if the path or fd now
 * names another file, or another system error. */
SHMX_API int shmx_wc_check(shmx_wc *c);

/* ---- Regions ----------------------------------------------------------- */

/* Offset of the region in the file (a multiple of the granularity), its
 * mapped length, and its bytes. _data may be called only while you use the
 * region (a cursor on it or shmx_wm_region_use()); it does not lock. */
SHMX_API uint64_t shmx_wm_region_offset(const shmx_wm_region *r);
SHMX_API uint64_t shmx_wm_region_size(const shmx_wm_region *r);
SHMX_API const uint8_t *shmx_wm_region_data(const shmx_wm_region *r);
/* Number of users (cursors and shmx_wm_region_use() holders), and 1 if the
 * region is still mapped. Read under the manager lock. */
SHMX_API uint32_t shmx_wm_region_users(const shmx_wm_region *r);
SHMX_API int shmx_wm_region_mapped(const shmx_wm_region *r);
/* 1 once a read of the region touched bytes the file no longer has (it
 * shrank under the mapping): those bytes read as zeros from then on, so a
 * caller that read through shmx_wm_region_data/shmx_wc_ptr checks this
 * AFTER its read to know whether what it got is real. Lock-free (one atomic
 * load). NULL gives 0. */
SHMX_API int shmx_wm_region_lost(const shmx_wm_region *r);

/* Keep the region's struct alive (not its mapping): its offset and size stay
 * readable, and it can be compared by address. Pair with _unhold. */
SHMX_API void shmx_wm_region_hold(shmx_wm_region *r);
SHMX_API void shmx_wm_region_unhold(shmx_wm_region *r);
/* Count one more user: the mapping stays until the matching _unuse, whatever
 * the cursors do (this is how exported buffers keep their bytes). Errors:
 * SHMX_E_STATE if the region was already unmapped. */
SHMX_API int shmx_wm_region_use(shmx_wm_region *r);
SHMX_API void shmx_wm_region_unuse(shmx_wm_region *r);

#ifdef __cplusplus
}
#endif

#endif /* SHMX_WINDOW_H */

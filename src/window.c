/*
 * window.c -- sliding-window memory maps over files (shmx_window.h).
 *
 * A manager owns a list of files keyed by (dev, ino); each file owns its
 * mapped regions sorted by offset. Regions that no cursor or buffer uses sit
 * in one manager-wide LRU list (head = least recently used) and are unmapped
 * from the head when a limit needs room. Everything shared is guarded by the
 * manager's mutex; a cursor's own fields belong to the thread using it.
 *
 * Lifetimes (all counts under the mutex):
 *   region->refs: 1 while mapped (the manager's) + shmx_wm_region_hold()s.
 *                 The struct is freed at 0.
 *   region->users: cursors on it + shmx_wm_region_use()s. At 0 it goes to
 *                 the LRU list (or is unmapped if the manager is destroyed).
 *   file->refs:   cursors + live region structs. Freed at 0.
 *   wm->refs:     creator + cursors + live region structs. Freed at 0.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "platform_file.h"
#include "shmx_window.h"

typedef struct wm_file wm_file;

struct shmx_wm_region {
  shmx_wm *wm;
  wm_file *file;
  uint8_t *base;        /* NULL once unmapped */
  uint64_t ofs, size;   /* file offset (aligned) and mapped length */
  uint32_t users, refs;
  bool mapped, in_lru;
  int guard;              /* SIGBUS guard handle (posix/guard.c), -1 none */
  _Atomic uint32_t lost;  /* the file shrank under it: its pages past the
                             cut now read zeros (set by the guard) */
  shmx_wm_region *lru_prev, *lru_next;
};

struct wm_file {
  uint64_t dev, ino;
  _Atomic uint64_t size; /* written under the mutex, read lock-free */
  int fd;                /* owned descriptor, -1 if none */
  uint32_t refs;
  uint32_t busy;         /* a mapping is in progress: keep fd open */
  shmx_wm_region **regs; /* mapped regions sorted by ofs */
  size_t n, cap;
  wm_file *prev, *next;
};

struct shmx_wm {
  pthread_mutex_t mu;
  shmx_wm *all_prev, *all_next; /* every live manager (fork safety) */
  uint32_t refs;
  bool destroyed;
  uint32_t kind;
  uint64_t window, max_mem, max_handles, gran;
  uint64_t mapped, nregions, nused, nfds, maps, evictions;
  wm_file *files;
  shmx_wm_region *lru_head, *lru_tail;
};

struct shmx_wc {
  shmx_wm *wm;
  wm_file *file;
  char *path;          /* NULL for an fd cursor */
  int fd;              /* the user's fd, -1 for a path cursor */
  int oflags;
  shmx_wm_region *region;
  uint64_t ofs, size;
  int advice;
};

/* ---- helpers ------------------------------------------------------------ */

static inline uint64_t align_down(uint64_t v, uint64_t g) { return v - v % g; }

uint64_t shmx_wm_granularity(void) { return shmx__file_granularity(); }

static void lock(shmx_wm *wm) { pthread_mutex_lock(&wm->mu); }

/* fork() while another thread holds a manager's mutex would leave it locked
 * forever in the child. pthread_atfork handlers take every manager's mutex
 * (under all_mu, which guards the list) before fork and release them in
 * both processes after it, so the child starts with consistent managers. */
static pthread_mutex_t all_mu = PTHREAD_MUTEX_INITIALIZER;
static shmx_wm *all_head;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

#ifndef _WIN32 /* no fork() on Windows */
static void fork_prepare(void) {
  pthread_mutex_lock(&all_mu);
  for (shmx_wm *w = all_head; w; w = w->all_next) pthread_mutex_lock(&w->mu);
}
static void fork_after(void) {
  for (shmx_wm *w = all_head; w; w = w->all_next) pthread_mutex_unlock(&w->mu);
  pthread_mutex_unlock(&all_mu);
}
static void atfork_install(void) { pthread_atfork(fork_prepare, fork_after, fork_after); }
#else
static void atfork_install(void) {}
#endif

static void all_add(shmx_wm *wm) {
  pthread_once(&atfork_once, atfork_install);
  pthread_mutex_lock(&all_mu);
  wm->all_prev = NULL;
  wm->all_next = all_head;
  if (all_head) all_head->all_prev = wm;
  all_head = wm;
  pthread_mutex_unlock(&all_mu);
}
static void all_remove(shmx_wm *wm) {
  pthread_mutex_lock(&all_mu);
  if (wm->all_prev) wm->all_prev->all_next = wm->all_next;
  else all_head = wm->all_next;
  if (wm->all_next) wm->all_next->all_prev = wm->all_prev;
  pthread_mutex_unlock(&all_mu);
}

/* Unlock; free the manager if this released its last reference. Once refs
 * is 0 nothing else can reach wm, so freeing after unlock is safe (all_mu
 * is taken only after wm->mu is released: the fork handlers take all_mu
 * first). */
static void unlock(shmx_wm *wm) {
  bool dead = wm->refs == 0;
  pthread_mutex_unlock(&wm->mu);
  if (dead) {
    all_remove(wm);
    pthread_mutex_destroy(&wm->mu);
    free(wm);
  }
}

static void lru_remove(shmx_wm *wm, shmx_wm_region *r) {
  if (!r->in_lru) return;
  if (r->lru_prev) r->lru_prev->lru_next = r->lru_next;
  else wm->lru_head = r->lru_next;
  if (r->lru_next) r->lru_next->lru_prev = r->lru_prev;
  else wm->lru_tail = r->lru_prev;
  r->lru_prev = r->lru_next = NULL;
  r->in_lru = false;
}

static void lru_push(shmx_wm *wm, shmx_wm_region *r) {
  r->lru_next = NULL;
  r->lru_prev = wm->lru_tail;
  if (wm->lru_tail) wm->lru_tail->lru_next = r;
  else wm->lru_head = r;
  wm->lru_tail = r;
  r->in_lru = true;
}

static void file_close_fd_if_idle(shmx_wm *wm, wm_file *f) {
  if (f->fd >= 0 && f->n == 0 && f->busy == 0) {
    shmx__file_close(f->fd);
    f->fd = -1;
    wm->nfds--;
  }
}

static void file_unref(shmx_wm *wm, wm_file *f) {
  if (--f->refs) return;
  if (f->fd >= 0) {
    shmx__file_close(f->fd);
    wm->nfds--;
  }
  if (f->prev) f->prev->next = f->next;
  else wm->files = f->next;
  if (f->next) f->next->prev = f->prev;
  free(f->regs);
  free(f);
}

static void region_unref(shmx_wm *wm, shmx_wm_region *r) {
  if (--r->refs) return;
  file_unref(wm, r->file);
  free(r);
  wm->refs--;
}

/* Unmap r (it must have no users) and drop the manager's reference. */
static void region_unmap(shmx_wm *wm, shmx_wm_region *r) {
  wm_file *f = r->file;
  lru_remove(wm, r);
  for (size_t i = 0; i < f->n; i++) {
    if (f->regs[i] == r) {
      memmove(&f->regs[i], &f->regs[i + 1], (f->n - i - 1) * sizeof *f->regs);
      f->n--;
      break;
    }
  }
  shmx__guard_del(r->guard);
  r->guard = -1;
  shmx__file_unmap(r->base, r->size);
  r->base = NULL;
  r->mapped = false;
  wm->mapped -= r->size;
  wm->nregions--;
  file_close_fd_if_idle(wm, f);
  region_unref(wm, r);
}

static int evict_one(shmx_wm *wm) {
  shmx_wm_region *r = wm->lru_head;
  if (!r) return 0;
  region_unmap(wm, r);
  wm->evictions++;
  return 1;
}

static int collect_all(shmx_wm *wm) {
  int n = 0;
  while (wm->lru_head) {
    region_unmap(wm, wm->lru_head);
    n++;
  }
  return n;
}

static void region_use_locked(shmx_wm *wm, shmx_wm_region *r) {
  if (r->users++ == 0) {
    lru_remove(wm, r);
    wm->nused++;
  }
}

static void region_unuse_locked(shmx_wm *wm, shmx_wm_region *r) {
  if (--r->users) return;
  wm->nused--;
  /* lost: the file shrank under it; never hand it out again */
  if (wm->destroyed || atomic_load(&r->lost)) region_unmap(wm, r);
  else lru_push(wm, r);
}

/* Index of the first region with ofs > offset. */
static size_t upper_index(const wm_file *f, uint64_t offset) {
  size_t lo = 0, hi = f->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (f->regs[mid]->ofs <= offset) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

static inline bool region_has(const shmx_wm_region *r, uint64_t off) {
  return r->ofs <= off && off - r->ofs < r->size;
}

/* A mapped region of f containing offset, or NULL. Regions never overlap
 * except that one may start inside the last, partial page of its left
 * neighbour (after the file grew), so two candidates are checked. */
static shmx_wm_region *find_region(const wm_file *f, uint64_t offset) {
  size_t i = upper_index(f, offset);
  if (i > 0 && region_has(f->regs[i - 1], offset)) return f->regs[i - 1];
  if (i > 1 && region_has(f->regs[i - 2], offset)) return f->regs[i - 2];
  return NULL;
}

static inline bool region_lost(const shmx_wm_region *r) {
  return atomic_load_explicit(&r->lost, memory_order_acquire) != 0;
}

/* Record a fresh size for f. If it shrank, unused regions reaching past the
 * new end are unmapped at once (used ones are clamped by cursors). */
static void file_set_size(shmx_wm *wm, wm_file *f, uint64_t size) {
  uint64_t old = atomic_load_explicit(&f->size, memory_order_relaxed);
  atomic_store_explicit(&f->size, size, memory_order_relaxed);
  if (size >= old) return;
  for (size_t i = f->n; i-- > 0;) {
    shmx_wm_region *r = f->regs[i];
    if (r->users == 0 && r->ofs + r->size > size) region_unmap(wm, r);
  }
}

/* ---- manager ------------------------------------------------------------ */

void shmx_wm_config_init(shmx_wm_config *cfg, uint32_t kind) {
  if (!cfg) return;
  memset(cfg, 0, sizeof *cfg);
  cfg->kind = kind;
  if (kind == SHMX_WM_SLIDING)
    cfg->window_size = (sizeof(void *) >= 8 ? 1024u : 64u) * 1024u * 1024u;
}

int shmx_wm_create(const shmx_wm_config *cfg, shmx_wm **out) {
  if (!out) return shmx__err(SHMX_E_ARG, "shmx_wm_create: out is NULL");
  *out = NULL;
  if (!cfg) return shmx__err(SHMX_E_ARG, "shmx_wm_create: cfg is NULL");
  if (cfg->kind != SHMX_WM_SLIDING && cfg->kind != SHMX_WM_STATIC)
    return shmx__err(SHMX_E_ARG, "shmx_wm_create: unknown kind %u", cfg->kind);
  shmx_wm *wm = calloc(1, sizeof *wm);
  if (!wm) return shmx__err(SHMX_E_ENOMEM, "shmx_wm_create");
  if (pthread_mutex_init(&wm->mu, NULL) != 0) {
    free(wm);
    return shmx__err(SHMX_E_ENOMEM, "shmx_wm_create: mutex");
  }
  wm->refs = 1;
  wm->kind = cfg->kind;
  wm->gran = shmx__file_granularity();
  wm->max_mem = cfg->max_memory
                    ? cfg->max_memory
                    : (uint64_t)(sizeof(void *) >= 8 ? 8192u : 1024u) << 20;
  if (cfg->max_handles) {
    wm->max_handles = cfg->max_handles;
  } else {
    uint64_t lim = shmx__file_fd_limit();
    uint64_t h = lim == UINT64_MAX ? 32768u : lim / 2;
    if (h > 32768u) h = 32768u;
    wm->max_handles = h ? h : 1;
  }
  if (wm->kind == SHMX_WM_SLIDING && cfg->window_size) {
    /* A window is whole granules: window_size rounded UP, as smmap
     * rounds a window to whole pages (align_to_mmap(size, True)); capped
     * at the memory limit first. */
    uint64_t w = cfg->window_size;
    if (w > wm->max_mem) w = wm->max_mem;
    if (w > UINT64_MAX - wm->gran) w = UINT64_MAX - wm->gran;
    w = align_down(w + wm->gran - 1, wm->gran);
    wm->window = w ? w : wm->gran;
  }
  all_add(wm);
  *out = wm;
  return 0;
}

void shmx_wm_destroy(shmx_wm *wm) {
  if (!wm) return;
  lock(wm);
  if (!wm->destroyed) {
    wm->destroyed = true;
    collect_all(wm);
    wm->refs--;
  }
  unlock(wm);
}

int shmx_wm_collect(shmx_wm *wm) {
  if (!wm) return 0;
  lock(wm);
  int n = collect_all(wm);
  unlock(wm);
  return n;
}

void shmx_wm_get_stats(shmx_wm *wm, shmx_wm_stats *out) {
  if (!out) return;
  memset(out, 0, sizeof *out);
  if (!wm) return;
  lock(wm);
  out->kind = wm->kind;
  out->window_size = wm->window;
  out->max_memory = wm->max_mem;
  out->max_handles = wm->max_handles;
  out->mapped_bytes = wm->mapped;
  out->regions = wm->nregions;
  out->regions_used = wm->nused;
  uint64_t nf = 0;
  for (wm_file *f = wm->files; f; f = f->next) nf += f->n > 0;
  out->open_files = nf;
  out->open_fds = wm->nfds;
  out->maps = wm->maps;
  out->evictions = wm->evictions;
  unlock(wm);
}

/* ---- cursors ------------------------------------------------------------ */

/* Find or create the entry for info's file and take a reference. */
static int file_get(shmx_wm *wm, const shmx__file_info *info, wm_file **out) {
  for (wm_file *f = wm->files; f; f = f->next) {
    if (f->dev == info->dev && f->ino == info->ino) {
      f->refs++;
      file_set_size(wm, f, info->size);
      *out = f;
      return 0;
    }
  }
  wm_file *f = calloc(1, sizeof *f);
  if (!f) return shmx__err(SHMX_E_ENOMEM, "window cursor: file entry");
  f->dev = info->dev;
  f->ino = info->ino;
  atomic_init(&f->size, info->size);
  f->fd = -1;
  f->refs = 1;
  f->next = wm->files;
  if (wm->files) wm->files->prev = f;
  wm->files = f;
  *out = f;
  return 0;
}

static int cursor_new(shmx_wm *wm, const shmx__file_info *info, const char *path,
                      int fd, int oflags, shmx_wc **out) {
  shmx_wc *c = calloc(1, sizeof *c);
  if (!c) return shmx__err(SHMX_E_ENOMEM, "window cursor");
  if (path) {
    c->path = strdup(path);
    if (!c->path) {
      free(c);
      return shmx__err(SHMX_E_ENOMEM, "window cursor: path");
    }
  }
  c->fd = fd;
  c->oflags = oflags;
  c->wm = wm;
  lock(wm);
  int rc = wm->destroyed ? shmx__err(SHMX_E_STATE, "window manager destroyed")
                         : file_get(wm, info, &c->file);
  if (rc == 0) wm->refs++;
  unlock(wm);
  if (rc) {
    free(c->path);
    free(c);
    return rc;
  }
  *out = c;
  return 0;
}

int shmx_wc_open_path(shmx_wm *wm, const char *path, int extra_oflags,
                      shmx_wc **out) {
  if (!out) return shmx__err(SHMX_E_ARG, "shmx_wc_open_path: out is NULL");
  *out = NULL;
  if (!wm || !path) return shmx__err(SHMX_E_ARG, "shmx_wc_open_path: NULL");
  shmx__file_info info;
  int rc = shmx__file_stat(path, &info);
  if (rc) return shmx__err(rc, "cannot stat '%s'", path);
  if (!info.mappable)
    return shmx__err(SHMX_E_ARG, "'%s' is not a regular file", path);
  return cursor_new(wm, &info, path, -1, extra_oflags, out);
}

int shmx_wc_open_fd(shmx_wm *wm, int fd, shmx_wc **out) {
  if (!out) return shmx__err(SHMX_E_ARG, "shmx_wc_open_fd: out is NULL");
  *out = NULL;
  if (!wm || fd < 0) return shmx__err(SHMX_E_ARG, "shmx_wc_open_fd: bad argument");
  shmx__file_info info;
  int rc = shmx__file_fstat(fd, &info);
  if (rc) return shmx__err(rc, "cannot fstat fd %d", fd);
  if (!info.mappable)
    return shmx__err(SHMX_E_ARG, "fd %d is not a regular file", fd);
  return cursor_new(wm, &info, NULL, fd, 0, out);
}

int shmx_wc_clone(const shmx_wc *src, shmx_wc **out) {
  if (!out) return shmx__err(SHMX_E_ARG, "shmx_wc_clone: out is NULL");
  *out = NULL;
  if (!src) return shmx__err(SHMX_E_ARG, "shmx_wc_clone: NULL");
  shmx_wc *c = calloc(1, sizeof *c);
  if (!c) return shmx__err(SHMX_E_ENOMEM, "window cursor");
  *c = *src;
  if (src->path && !(c->path = strdup(src->path))) {
    free(c);
    return shmx__err(SHMX_E_ENOMEM, "window cursor: path");
  }
  shmx_wm *wm = src->wm;
  lock(wm);
  wm->refs++;
  c->file->refs++;
  if (c->region) region_use_locked(wm, c->region);
  unlock(wm);
  *out = c;
  return 0;
}

void shmx_wc_close(shmx_wc *c) {
  if (!c) return;
  shmx_wm *wm = c->wm;
  lock(wm);
  if (c->region) region_unuse_locked(wm, c->region);
  file_unref(wm, c->file);
  wm->refs--;
  unlock(wm);
  free(c->path);
  free(c);
}

void shmx_wc_unuse(shmx_wc *c) {
  if (!c || !c->region) return;
  shmx_wm *wm = c->wm;
  lock(wm);
  region_unuse_locked(wm, c->region);
  unlock(wm);
  c->region = NULL;
}

/* A descriptor for mapping c's file into *fd (not to be closed by the
 * caller), with the file's current size checked against its identity. */
static int cursor_fd(shmx_wm *wm, shmx_wc *c, int *fd, uint64_t *size) {
  wm_file *f = c->file;
  shmx__file_info info;
  int rc;
  if (c->fd >= 0) {
    rc = shmx__file_fstat(c->fd, &info);
    if (rc) return shmx__err(rc, "fd %d", c->fd);
    if (info.dev != f->dev || info.ino != f->ino)
      return shmx__err(SHMX_E_EBADF,
                       "fd %d now refers to another file than the cursor's",
                       c->fd);
    *fd = c->fd;
    *size = info.size;
    return 0;
  }
  if (f->fd < 0) {
    int nfd = shmx__file_open(c->path, c->oflags);
    if (nfd == SHMX_E_EMFILE || nfd == SHMX_E_ENFILE) {
      collect_all(wm); /* closes idle descriptors */
      nfd = shmx__file_open(c->path, c->oflags);
    }
    if (nfd < 0) return shmx__err(nfd, "cannot open '%s'", c->path);
    rc = shmx__file_fstat(nfd, &info);
    if (rc) {
      shmx__file_close(nfd);
      return shmx__err(rc, "cannot fstat '%s'", c->path);
    }
    if (info.dev != f->dev || info.ino != f->ino) {
      shmx__file_close(nfd);
      return shmx__err(SHMX_E_ENOENT, "'%s' now names another file", c->path);
    }
    f->fd = nfd;
    wm->nfds++;
  } else {
    rc = shmx__file_fstat(f->fd, &info);
    if (rc) return shmx__err(rc, "cannot fstat '%s'", c->path);
  }
  *fd = f->fd;
  *size = info.size;
  return 0;
}

/* Current identity-checked size of c's file, without opening it. */
static int cursor_stat(shmx_wc *c, shmx__file_info *info) {
  wm_file *f = c->file;
  int rc;
  if (c->fd >= 0) rc = shmx__file_fstat(c->fd, info);
  else if (f->fd >= 0) rc = shmx__file_fstat(f->fd, info);
  else rc = shmx__file_stat(c->path, info);
  if (rc) return shmx__err(rc, "cannot stat the cursor's file");
  if (info->dev != f->dev || info->ino != f->ino) {
    if (c->fd >= 0)
      return shmx__err(SHMX_E_EBADF, "fd %d now refers to another file", c->fd);
    return shmx__err(SHMX_E_ENOENT, "'%s' now names another file", c->path);
  }
  return 0;
}

/* Choose the window for offset in f and map it. Under the lock. */
static int map_window(shmx_wm *wm, shmx_wc *c, uint64_t offset,
                      shmx_wm_region **out) {
  wm_file *f = c->file;
  const uint64_t G = wm->gran;
  int rc;
  shmx_wm_region *r = calloc(1, sizeof *r);
  if (!r) return shmx__err(SHMX_E_ENOMEM, "window region");

  f->busy++;
  /* Limits first: room for one more handle and one window. Evicting may
   * remove neighbours, which only makes the window larger. */
  while (wm->nregions >= wm->max_handles && evict_one(wm)) {}
  if (wm->nregions >= wm->max_handles) {
    rc = shmx__err(SHMX_E_LIMIT,
                   "%llu regions mapped, all in use (max_open_handles)",
                   (unsigned long long)wm->max_handles);
    goto fail;
  }
  uint64_t fsz = atomic_load_explicit(&f->size, memory_order_relaxed);
  uint64_t want = wm->window ? wm->window : fsz;
  while (wm->mapped > wm->max_mem - (want < wm->max_mem ? want : wm->max_mem) &&
         evict_one(wm)) {}

  int fd = -1;
  uint64_t size = 0;
  rc = cursor_fd(wm, c, &fd, &size);
  if (rc) goto fail;
  file_set_size(wm, f, size);
  if (offset >= size) { /* it shrank meanwhile: past the end, as any */
    rc = 0;
    goto fail;
  }

  for (int attempt = 0;; attempt++) {
    /* Neighbours: [lo, hi) is free around offset. */
    size_t i = upper_index(f, offset);
    uint64_t start0 = align_down(offset, G);
    uint64_t lo = 0, hi = size;
    if (i > 0) {
      const shmx_wm_region *l = f->regs[i - 1];
      uint64_t lend = l->ofs + l->size;
      lo = lend % G ? lend - lend % G + G : lend;
      if (lo > start0) lo = start0; /* left ends in a partial page */
    }
    if (i < f->n && f->regs[i]->ofs < hi) hi = f->regs[i]->ofs;
    uint64_t start, end;
    if (wm->window == 0) {
      start = lo;
      end = hi;
    } else {
      /* Forward from the requested granule (snapping to the left neighbour
       * when the gap to it is small), then back toward the left neighbour
       * with what is left of the window. Never more than W bytes. */
      uint64_t W = wm->window;
      if (start0 - lo <= W / 8) start0 = lo; /* close the small gap to the
                                                 left neighbour (or file start) */
      end = hi - start0 > W ? start0 + W : hi;
      uint64_t back = align_down(W - (end - start0), G);
      if (back > start0 - lo) back = start0 - lo;
      start = start0 - back;
    }
    void *p;
    rc = shmx__file_map(fd, start, end - start, &p);
    if (rc == SHMX_E_ENOMEM && attempt == 0 && wm->lru_head) {
      collect_all(wm);
      continue;
    }
    if (rc) {
      rc = rc == SHMX_E_ENOMEM
               ? shmx__err(rc, "mmap of %llu bytes", (unsigned long long)(end - start))
               : shmx__err(rc, "mmap at %llu", (unsigned long long)start);
      goto fail;
    }
    if (f->n == f->cap) {
      size_t ncap = f->cap ? f->cap * 2 : 4;
      shmx_wm_region **nr = realloc(f->regs, ncap * sizeof *nr);
      if (!nr) {
        shmx__file_unmap(p, end - start);
        rc = shmx__err(SHMX_E_ENOMEM, "window region list");
        goto fail;
      }
      f->regs = nr;
      f->cap = ncap;
    }
    memmove(&f->regs[i + 1], &f->regs[i], (f->n - i) * sizeof *f->regs);
    f->regs[i] = r;
    f->n++;
    r->wm = wm;
    r->file = f;
    r->base = p;
    r->ofs = start;
    r->size = end - start;
    r->guard = shmx__guard_add(p, r->size, 1, &r->lost);
    r->refs = 1;
    r->mapped = true;
    f->refs++;
    wm->refs++;
    wm->mapped += r->size;
    wm->nregions++;
    wm->maps++;
    break;
  }
  f->busy--;
  *out = r;
  return 1;
fail:
  f->busy--;
  file_close_fd_if_idle(wm, f);
  free(r);
  return rc;
}

static void apply_advice(shmx_wc *c, bool new_region) {
  if (c->advice == SHMX_WC_NORMAL) return;
  shmx_wm_region *r = c->region;
  if (c->advice == SHMX_WC_WILLNEED)
    (void)shmx__file_advise(r->base + (c->ofs - r->ofs), c->size, c->advice);
  else if (new_region)
    (void)shmx__file_advise(r->base, r->size, c->advice);
}

int shmx_wc_use(shmx_wc *c, uint64_t offset, uint64_t size) {
  if (!c) return shmx__err(SHMX_E_ARG, "shmx_wc_use: NULL cursor");
  shmx_wm_region *r = c->region;
  uint64_t fsz = atomic_load_explicit(&c->file->size, memory_order_relaxed);
  if (r && offset < fsz && region_has(r, offset) && !region_lost(r)) {
    /* Fast path: the cursor's region is ours, no lock needed. */
    uint64_t end = r->ofs + r->size;
    if (end > fsz) end = fsz;
    uint64_t n = end - offset;
    c->ofs = offset;
    c->size = size && size < n ? size : n;
    if (c->advice == SHMX_WC_WILLNEED) apply_advice(c, false);
    return 1;
  }
  shmx_wm *wm = c->wm;
  int rc = 1;
  lock(wm);
  if (r) {
    region_unuse_locked(wm, r);
    c->region = NULL;
  }
  wm_file *f = c->file;
  if (wm->destroyed) {
    rc = shmx__err(SHMX_E_STATE, "window manager destroyed");
    goto out;
  }
  fsz = atomic_load_explicit(&f->size, memory_order_relaxed);
  if (offset >= fsz) {
    /* Past the known end: the file may have grown. */
    shmx__file_info info;
    rc = cursor_stat(c, &info);
    if (rc) goto out;
    file_set_size(wm, f, info.size);
    if (offset >= info.size) {
      rc = 0;
      goto out;
    }
    rc = 1;
    fsz = info.size;
  }
  r = find_region(f, offset);
  if (r) {
    /* A cached region (idle, or another cursor's): the file may have shrunk
     * since it was mapped. One fstat checks, so the cursor is clamped to
     * the end as it is now. */
    shmx__file_info info;
    rc = cursor_stat(c, &info);
    if (rc) goto out;
    file_set_size(wm, f, info.size); /* unmaps idle regions past the end */
    if (offset >= info.size) {
      rc = 0;
      goto out;
    }
    rc = 1;
    r = find_region(f, offset);
  }
  if (r) {
    region_use_locked(wm, r);
  } else {
    rc = map_window(wm, c, offset, &r); /* re-reads the size */
    if (rc <= 0) goto out;
    region_use_locked(wm, r);
  }
  fsz = atomic_load_explicit(&f->size, memory_order_relaxed);
  c->region = r;
  {
    uint64_t end = r->ofs + r->size;
    if (end > fsz) end = fsz;
    uint64_t n = end - offset;
    c->ofs = offset;
    c->size = size && size < n ? size : n;
  }
out:
  unlock(wm);
  if (rc == 1) apply_advice(c, true);
  return rc;
}

int64_t shmx_wc_read(shmx_wc *c, uint64_t offset, void *dst, uint64_t len) {
  if (!c || (!dst && len)) return shmx__err(SHMX_E_ARG, "shmx_wc_read: NULL");
  if (len > (uint64_t)INT64_MAX) len = (uint64_t)INT64_MAX;
  shmx_wm *wm = c->wm;
  wm_file *f = c->file;
  int64_t rc;
  lock(wm);
  if (wm->destroyed) {
    rc = shmx__err(SHMX_E_STATE, "window manager destroyed");
    goto out;
  }
  uint64_t fsz = atomic_load_explicit(&f->size, memory_order_relaxed);
  if (offset < fsz && len <= 65536) {
    /* Small and already mapped: copy under the lock (the region cannot go
     * away meanwhile). */
    shmx_wm_region *r = find_region(f, offset);
    if (r && r->users) { /* in use: its size was checked when taken */
      uint64_t end = r->ofs + r->size;
      if (end > fsz) end = fsz;
      if (end - offset >= len || end == fsz) {
        uint64_t n = end - offset < len ? end - offset : len;
        memcpy(dst, r->base + (offset - r->ofs), (size_t)n);
        rc = (int64_t)n;
        /* The file shrank under it (the copy read zeros past the cut, and
         * the guard flagged it): read again with pread, which stops at
         * the end as it is now. */
        if (!region_lost(r)) goto out;
      }
    }
  }
  int fd = -1;
  if (c->fd >= 0 || f->fd < 0) {
    uint64_t size;
    f->busy++;
    rc = cursor_fd(wm, c, &fd, &size);
    f->busy--;
    if (rc) {
      file_close_fd_if_idle(wm, f);
      goto out;
    }
    file_set_size(wm, f, size);
  } else {
    fd = f->fd;
  }
  /* Read without the lock; busy keeps the manager's descriptor open. */
  f->busy++;
  unlock(wm);
  rc = shmx__file_pread(fd, dst, len, offset);
  lock(wm);
  f->busy--;
  file_close_fd_if_idle(wm, f);
  if (rc < 0) rc = shmx__err((int)rc, "pread at %llu", (unsigned long long)offset);
out:
  unlock(wm);
  return rc;
}

int shmx_wc_valid(const shmx_wc *c) { return c && c->region ? 1 : 0; }

const uint8_t *shmx_wc_ptr(const shmx_wc *c) {
  if (!c || !c->region) return NULL;
  return c->region->base + (c->ofs - c->region->ofs);
}

uint64_t shmx_wc_offset(const shmx_wc *c) { return c ? c->ofs : 0; }
uint64_t shmx_wc_size(const shmx_wc *c) { return c && c->region ? c->size : 0; }

uint64_t shmx_wc_file_size(const shmx_wc *c) {
  return c ? atomic_load_explicit(&c->file->size, memory_order_relaxed) : 0;
}

shmx_wm_region *shmx_wc_region(const shmx_wc *c) { return c ? c->region : NULL; }
shmx_wm *shmx_wc_manager(const shmx_wc *c) { return c ? c->wm : NULL; }

int shmx_wc_advise(shmx_wc *c, int advice) {
  if (!c) return shmx__err(SHMX_E_ARG, "shmx_wc_advise: NULL cursor");
  if (advice < SHMX_WC_NORMAL || advice > SHMX_WC_WILLNEED)
    return shmx__err(SHMX_E_ARG, "shmx_wc_advise: unknown advice %d", advice);
  c->advice = advice;
  if (c->region) {
    if (advice == SHMX_WC_NORMAL)
      (void)shmx__file_advise(c->region->base, c->region->size, advice);
    else
      apply_advice(c, true);
  }
  return 0;
}

int shmx_wc_check(shmx_wc *c) {
  if (!c) return shmx__err(SHMX_E_ARG, "shmx_wc_check: NULL cursor");
  shmx_wm *wm = c->wm;
  shmx__file_info info;
  lock(wm);
  int rc = cursor_stat(c, &info);
  if (rc == 0) {
    file_set_size(wm, c->file, info.size);
    uint64_t end = c->region ? c->ofs + c->size : 0;
    if (end > info.size)
      rc = shmx__err(SHMX_E_SHRUNK, "file is %llu bytes, cursor ends at %llu",
                     (unsigned long long)info.size, (unsigned long long)end);
  }
  unlock(wm);
  return rc;
}

/* ---- regions ------------------------------------------------------------ */

uint64_t shmx_wm_region_offset(const shmx_wm_region *r) { return r ? r->ofs : 0; }
uint64_t shmx_wm_region_size(const shmx_wm_region *r) { return r ? r->size : 0; }

/* Lock-free: only meaningful while the caller uses the region (a cursor on
 * it or shmx_wm_region_use), which keeps base fixed. */
const uint8_t *shmx_wm_region_data(const shmx_wm_region *r) {
  return r ? r->base : NULL;
}

uint32_t shmx_wm_region_users(const shmx_wm_region *r) {
  if (!r) return 0;
  shmx_wm *wm = r->wm;
  lock(wm);
  uint32_t u = r->users;
  unlock(wm);
  return u;
}

int shmx_wm_region_lost(const shmx_wm_region *r) { return r && region_lost(r); }

int shmx_wm_region_mapped(const shmx_wm_region *r) {
  if (!r) return 0;
  shmx_wm *wm = r->wm;
  lock(wm);
  int m = r->mapped;
  unlock(wm);
  return m;
}

void shmx_wm_region_hold(shmx_wm_region *r) {
  if (!r) return;
  shmx_wm *wm = r->wm;
  lock(wm);
  r->refs++;
  unlock(wm);
}

void shmx_wm_region_unhold(shmx_wm_region *r) {
  if (!r) return;
  shmx_wm *wm = r->wm;
  lock(wm);
  region_unref(wm, r);
  unlock(wm);
}

int shmx_wm_region_use(shmx_wm_region *r) {
  if (!r) return shmx__err(SHMX_E_ARG, "shmx_wm_region_use: NULL");
  shmx_wm *wm = r->wm;
  int rc = 0;
  lock(wm);
  if (r->mapped) region_use_locked(wm, r);
  else rc = shmx__err(SHMX_E_STATE, "region was unmapped");
  unlock(wm);
  return rc;
}

void shmx_wm_region_unuse(shmx_wm_region *r) {
  if (!r) return;
  shmx_wm *wm = r->wm;
  lock(wm);
  if (r->users) region_unuse_locked(wm, r);
  unlock(wm);
}

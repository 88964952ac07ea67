/*
 * smmapmodule.c -- shmx.smmap._smmap: the window manager (shmx_window.h) with
 * the API of the Python package smmap 5.x.
 *
 * Types (heap types, multi-phase init, state in the module):
 *   StaticWindowMapManager, SlidingWindowMapManager(StaticWindowMapManager)
 *   WindowCursor       a shmx_wc plus a cached window for fast indexing
 *   MapRegion          a held shmx_wm_region, or a standalone mapping
 *   SlidingWindowMapBuffer  relative, clamped access; slices are memoryviews
 *                      (zero-copy inside the cursor's window)
 *   MapView            what map() returns (mmap-like: [i] -> int, [a:b] ->
 *                      bytes) and the buffer exporter behind every memoryview
 *                      handed out: it keeps one use of its region, so the
 *                      bytes stay mapped while any view (or slice) lives.
 * The GIL is released around calls that may map, unmap or stat files. A
 * cursor is marked busy meanwhile, so another thread touching the same cursor
 * gets RuntimeError instead of racing it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shmx.h"
#include <stdatomic.h>
/* libshmx internals (src/internal.h), linked statically into this module:
 * the SIGBUS guard for standalone MapRegion mappings. */
int shmx__guard_add(void *base, uint64_t len, int prot, _Atomic uint32_t *flag);
void shmx__guard_del(int handle);

/* Python 3.9/3.10: helpers this file uses that appeared later. */
#if PY_VERSION_HEX < 0x030A0000
static inline PyObject *Py_NewRef(PyObject *o) {
  Py_INCREF(o);
  return o;
}
static inline PyObject *Py_XNewRef(PyObject *o) {
  Py_XINCREF(o);
  return o;
}
static int PyModule_AddObjectRef(PyObject *m, const char *name, PyObject *v) {
  Py_INCREF(v);
  if (PyModule_AddObject(m, name, v) < 0) {
    Py_DECREF(v);
    return -1;
  }
  return 0;
}
#endif
#if PY_VERSION_HEX < 0x030B0000
static PyObject *compat_module_by_def(PyTypeObject *tp, PyModuleDef *def) {
  PyObject *mro = tp->tp_mro;
  for (Py_ssize_t i = 0; mro && i < PyTuple_GET_SIZE(mro); i++) {
    PyTypeObject *b = (PyTypeObject *)PyTuple_GET_ITEM(mro, i);
    if (!(b->tp_flags & Py_TPFLAGS_HEAPTYPE)) continue;
    PyObject *m = PyType_GetModule(b);
    if (!m) {
      PyErr_Clear();
      continue;
    }
    if (PyModule_GetDef(m) == def) return m;
  }
  PyErr_SetString(PyExc_TypeError, "shmx.smmap: module not found for type");
  return NULL;
}
#define PyType_GetModuleByDef compat_module_by_def
#endif

typedef struct {
  PyTypeObject *static_type, *sliding_type, *cursor_type, *region_type,
      *buffer_type, *view_type;
} smmap_state;

static struct PyModuleDef smmap_module;

static smmap_state *state_of_type(PyTypeObject *tp) {
  PyObject *m = PyType_GetModuleByDef(tp, &smmap_module);
  return m ? (smmap_state *)PyModule_GetState(m) : NULL;
}

/* ---- errors ------------------------------------------------------------- */

static PyObject *raise_shmx(int rc) {
  const char *msg = shmx_errmsg();
  if (rc == SHMX_E_ENOMEM) return PyErr_Format(PyExc_MemoryError, "%s", msg);
  if (rc == SHMX_E_ARG || rc == SHMX_E_STATE)
    return PyErr_Format(PyExc_ValueError, "%s", msg);
  int e = EIO;
  if (rc == SHMX_E_LIMIT) e = EMFILE;
  else if (rc > -4000 && rc < 0) e = -rc;
  PyObject *args = Py_BuildValue("(is)", e, msg);
  if (args) {
    PyErr_SetObject(PyExc_OSError, args);
    Py_DECREF(args);
  }
  return NULL;
}

/* ---- MapView: the exporter behind memoryviews -------------------------- */

typedef struct {
  PyObject_HEAD
  shmx_wm_region *region; /* used (shmx_wm_region_use) or NULL */
  PyObject *owner;        /* standalone MapRegion kept alive, or NULL */
  const uint8_t *ptr;
  Py_ssize_t len;
} ViewObject;

static int view_getbuffer(PyObject *self, Py_buffer *view, int flags) {
  ViewObject *v = (ViewObject *)self;
  return PyBuffer_FillInfo(view, self, (void *)v->ptr, v->len, 1, flags);
}

static void region_export_done(PyObject *owner);
static void region_export_begin(PyObject *owner);

static void view_dealloc(PyObject *self) {
  ViewObject *v = (ViewObject *)self;
  PyTypeObject *tp = Py_TYPE(self);
  if (v->region) shmx_wm_region_unuse(v->region);
  if (v->owner) region_export_done(v->owner);
  Py_XDECREF(v->owner);
  tp->tp_free(self);
  Py_DECREF(tp);
}

/* MapView is what map() returns: like smmap's mmap object, indexing gives an
 * int, slicing gives bytes, and it exports its bytes (memoryview, struct,
 * zlib, ...). It is read-only and keeps its region mapped while alive. */
static Py_ssize_t view_len(PyObject *self) { return ((ViewObject *)self)->len; }

static PyObject *view_subscript(PyObject *self, PyObject *key) {
  ViewObject *v = (ViewObject *)self;
  if (PyIndex_Check(key)) {
    Py_ssize_t i = PyNumber_AsSsize_t(key, PyExc_IndexError);
    if (i == -1 && PyErr_Occurred()) return NULL;
    if (i < 0) i += v->len;
    if (i < 0 || i >= v->len) {
      PyErr_SetString(PyExc_IndexError, "MapView index out of range");
      return NULL;
    }
    return PyLong_FromLong(v->ptr[i]);
  }
  if (!PySlice_Check(key)) {
    PyErr_Format(PyExc_TypeError, "MapView indices must be integers or slices, not %.200s",
                 Py_TYPE(key)->tp_name);
    return NULL;
  }
  Py_ssize_t start, stop, step;
  if (PySlice_Unpack(key, &start, &stop, &step) < 0) return NULL;
  Py_ssize_t n = PySlice_AdjustIndices(v->len, &start, &stop, step);
  if (step == 1) return PyBytes_FromStringAndSize((const char *)v->ptr + start, n);
  PyObject *out = PyBytes_FromStringAndSize(NULL, n);
  if (!out) return NULL;
  char *d = PyBytes_AS_STRING(out);
  for (Py_ssize_t k = 0, i = start; k < n; k++, i += step) d[k] = (char)v->ptr[i];
  return out;
}

/* find/rfind(sub[, start[, end]]) as mmap: lowest/highest index or -1. */
static PyObject *view_find_impl(PyObject *self, PyObject *args, int reverse) {
  ViewObject *v = (ViewObject *)self;
  Py_buffer sub;
  PyObject *so = Py_None, *eo = Py_None;
  if (!PyArg_ParseTuple(args, reverse ? "y*|OO:rfind" : "y*|OO:find", &sub, &so, &eo))
    return NULL;
  Py_ssize_t start = 0, end = v->len;
  if ((so != Py_None && (start = PyNumber_AsSsize_t(so, PyExc_OverflowError)) == -1 &&
       PyErr_Occurred()) ||
      (eo != Py_None && (end = PyNumber_AsSsize_t(eo, PyExc_OverflowError)) == -1 &&
       PyErr_Occurred())) {
    PyBuffer_Release(&sub);
    return NULL;
  }
  if (start < 0) start = start + v->len < 0 ? 0 : start + v->len;
  if (end < 0) end = end + v->len < 0 ? 0 : end + v->len;
  if (start > v->len) start = v->len;
  if (end > v->len) end = v->len;
  Py_ssize_t res = -1;
  if (end >= start && end - start >= sub.len) {
    if (!reverse) {
      const void *p = sub.len ? memmem(v->ptr + start, (size_t)(end - start), sub.buf,
                                       (size_t)sub.len)
                              : (const void *)(v->ptr + start);
      if (p) res = (const uint8_t *)p - v->ptr;
    } else {
      for (Py_ssize_t i = end - sub.len; i >= start; i--) {
        if (memcmp(v->ptr + i, sub.buf, (size_t)sub.len) == 0) {
          res = i;
          break;
        }
      }
    }
  }
  PyBuffer_Release(&sub);
  return PyLong_FromSsize_t(res);
}
static PyObject *view_find(PyObject *self, PyObject *args) { return view_find_impl(self, args, 0); }
static PyObject *view_rfind(PyObject *self, PyObject *args) { return view_find_impl(self, args, 1); }

static PyMethodDef view_methods[] = {
    {"find", view_find, METH_VARARGS, "find(sub[, start[, end]]) -> lowest index or -1"},
    {"rfind", view_rfind, METH_VARARGS, "rfind(sub[, start[, end]]) -> highest index or -1"},
    {NULL, NULL, 0, NULL}};

static PyType_Slot view_slots[] = {
    {Py_tp_dealloc, view_dealloc},
    {Py_bf_getbuffer, view_getbuffer},
    {Py_mp_subscript, view_subscript},
    {Py_mp_length, view_len},
    {Py_sq_length, view_len},
    {Py_tp_methods, view_methods},
    {Py_tp_doc, "MapView: read-only bytes of a mapped region, as returned by map(). "
                "Indexing gives int, slicing gives bytes; supports the buffer protocol. "
                "Keeps its region mapped while alive."},
    {0, NULL}};
static PyType_Spec view_spec = {"shmx.smmap.MapView", sizeof(ViewObject), 0,
                                Py_TPFLAGS_DEFAULT, view_slots};

/* A MapView of [ptr, ptr+len) keeping region (one more use) or owner; as a
 * memoryview if as_memoryview. */
static PyObject *make_view2(smmap_state *st, shmx_wm_region *region, PyObject *owner,
                            const uint8_t *ptr, uint64_t len, int as_memoryview) {
  if (len > (uint64_t)PY_SSIZE_T_MAX)
    return PyErr_Format(PyExc_OverflowError, "region too large for a memoryview");
  if (region) {
    int rc = shmx_wm_region_use(region);
    if (rc) return raise_shmx(rc);
  }
  ViewObject *v = PyObject_New(ViewObject, st->view_type);
  if (!v) {
    if (region) shmx_wm_region_unuse(region);
    return NULL;
  }
  v->region = region;
  v->owner = owner;
  if (owner) {
    Py_INCREF(owner);
    region_export_begin(owner);
  }
  v->ptr = ptr;
  v->len = (Py_ssize_t)len;
  if (!as_memoryview) return (PyObject *)v;
  PyObject *mv = PyMemoryView_FromObject((PyObject *)v);
  Py_DECREF(v);
  return mv;
}

static PyObject *make_view(smmap_state *st, shmx_wm_region *region, PyObject *owner,
                           const uint8_t *ptr, uint64_t len) {
  return make_view2(st, region, owner, ptr, len, 1);
}

/* ---- managers ----------------------------------------------------------- */

typedef struct {
  PyObject_HEAD
  shmx_wm *wm;
  long long window_size; /* as configured (smmap semantics) */
  unsigned long long max_memory;
  unsigned long long max_handles; /* effective */
} ManagerObject;

static const unsigned long long MiB = 1024ull * 1024ull;

static int manager_setup(ManagerObject *self, uint32_t kind, long long window,
                         long long max_memory, PyObject *max_handles_obj) {
  int is64 = sizeof(void *) >= 8;
  if (window < 0) window = (long long)((is64 ? 1024 : 64) * MiB);
  if (max_memory < 0) {
    PyErr_SetString(PyExc_ValueError, "max_memory_size must be >= 0");
    return -1;
  }
  if (max_memory == 0) max_memory = (long long)((is64 ? 8192 : 1024) * MiB);
  unsigned long long handles = 0;
  if (max_handles_obj && max_handles_obj != Py_None) {
    Py_ssize_t h = PyNumber_AsSsize_t(max_handles_obj, PyExc_OverflowError);
    if (h == -1 && PyErr_Occurred()) return -1;
    if (h < 1) {
      PyErr_SetString(PyExc_ValueError, "max_open_handles must be >= 1");
      return -1;
    }
    if (h != PY_SSIZE_T_MAX) handles = (unsigned long long)h;
  }
  shmx_wm_config cfg;
  shmx_wm_config_init(&cfg, kind);
  cfg.window_size = kind == SHMX_WM_SLIDING ? (uint64_t)window : 0;
  cfg.max_memory = (uint64_t)max_memory;
  cfg.max_handles = handles;
  shmx_wm *wm;
  int rc = shmx_wm_create(&cfg, &wm);
  if (rc) {
    raise_shmx(rc);
    return -1;
  }
  if (self->wm) {
    shmx_wm *old = self->wm;
    Py_BEGIN_ALLOW_THREADS
    shmx_wm_destroy(old);
    Py_END_ALLOW_THREADS
  }
  self->wm = wm;
  shmx_wm_stats s;
  shmx_wm_get_stats(wm, &s);
  self->window_size = window;
  self->max_memory = (unsigned long long)max_memory;
  self->max_handles = s.max_handles;
  return 0;
}

static int static_init(PyObject *op, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"window_size", "max_memory_size", "max_open_handles", NULL};
  long long window = 0, mem = 0;
  PyObject *handles = NULL;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "|LLO:StaticWindowMapManager", kwlist,
                                   &window, &mem, &handles))
    return -1;
  return manager_setup((ManagerObject *)op, SHMX_WM_STATIC, window, mem, handles);
}

static int sliding_init(PyObject *op, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"window_size", "max_memory_size", "max_open_handles", NULL};
  long long window = -1, mem = 0;
  PyObject *handles = NULL;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "|LLO:SlidingWindowMapManager", kwlist,
                                   &window, &mem, &handles))
    return -1;
  return manager_setup((ManagerObject *)op, SHMX_WM_SLIDING, window, mem, handles);
}

static void manager_dealloc(PyObject *op) {
  ManagerObject *self = (ManagerObject *)op;
  PyTypeObject *tp = Py_TYPE(op);
  if (self->wm) {
    shmx_wm *wm = self->wm;
    self->wm = NULL;
    Py_BEGIN_ALLOW_THREADS
    shmx_wm_destroy(wm);
    Py_END_ALLOW_THREADS
  }
  tp->tp_free(op);
  Py_DECREF(tp);
}

static int manager_ready(ManagerObject *self) {
  if (self->wm) return 1;
  PyErr_SetString(PyExc_ValueError, "manager not initialised (call __init__)");
  return 0;
}

static PyObject *manager_stats_obj(ManagerObject *self, shmx_wm_stats *s) {
  if (!manager_ready(self)) return NULL;
  shmx_wm_get_stats(self->wm, s);
  return Py_None; /* borrowed marker: success */
}

#define STAT_GETTER(name, expr)                                                \
  static PyObject *name(PyObject *op, PyObject *unused) {                      \
    (void)unused;                                                              \
    shmx_wm_stats s;                                                           \
    if (!manager_stats_obj((ManagerObject *)op, &s)) return NULL;              \
    return PyLong_FromUnsignedLongLong((unsigned long long)(expr));            \
  }
STAT_GETTER(manager_num_file_handles, s.regions)
STAT_GETTER(manager_num_open_files, s.open_files)
STAT_GETTER(manager_mapped_memory_size, s.mapped_bytes)

static PyObject *manager_window_size(PyObject *op, PyObject *unused) {
  (void)unused;
  return PyLong_FromLongLong(((ManagerObject *)op)->window_size);
}
static PyObject *manager_max_file_handles(PyObject *op, PyObject *unused) {
  (void)unused;
  if (!manager_ready((ManagerObject *)op)) return NULL;
  return PyLong_FromUnsignedLongLong(((ManagerObject *)op)->max_handles);
}
static PyObject *manager_max_mapped_memory_size(PyObject *op, PyObject *unused) {
  (void)unused;
  return PyLong_FromUnsignedLongLong(((ManagerObject *)op)->max_memory);
}

static PyObject *manager_collect(PyObject *op, PyObject *unused) {
  (void)unused;
  ManagerObject *self = (ManagerObject *)op;
  if (!manager_ready(self)) return NULL;
  int n;
  Py_BEGIN_ALLOW_THREADS
  n = shmx_wm_collect(self->wm);
  Py_END_ALLOW_THREADS
  return PyLong_FromLong(n);
}

/* smmap's internal hook, kept for code that calls it: size 0 frees every
 * unused region; any other size frees nothing here because limits are
 * enforced when a window is mapped. */
static PyObject *manager_collect_lru_region(PyObject *op, PyObject *arg) {
  Py_ssize_t size = PyNumber_AsSsize_t(arg, PyExc_OverflowError);
  if (size == -1 && PyErr_Occurred()) return NULL;
  if (size == 0) return manager_collect(op, NULL);
  return PyLong_FromLong(0);
}

static PyObject *manager_force_removal(PyObject *op, PyObject *arg) {
  (void)op;
  (void)arg;
  Py_RETURN_NONE; /* only meaningful on Windows, as in smmap */
}

static PyObject *manager_stats(PyObject *op, PyObject *unused) {
  (void)unused;
  shmx_wm_stats s;
  if (!manager_stats_obj((ManagerObject *)op, &s)) return NULL;
  return Py_BuildValue(
      "{s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K}", "window_size",
      (unsigned long long)s.window_size, "max_memory",
      (unsigned long long)s.max_memory, "max_handles",
      (unsigned long long)s.max_handles, "mapped_bytes",
      (unsigned long long)s.mapped_bytes, "regions",
      (unsigned long long)s.regions, "regions_used",
      (unsigned long long)s.regions_used, "open_files",
      (unsigned long long)s.open_files, "open_fds", (unsigned long long)s.open_fds,
      "maps", (unsigned long long)s.maps, "evictions",
      (unsigned long long)s.evictions);
}

/* ---- cursors ------------------------------------------------------------ */

typedef struct {
  PyObject_HEAD
  PyObject *manager;    /* ManagerObject or None/NULL */
  PyObject *path_or_fd; /* what make_cursor got, or NULL */
  shmx_wc *c;           /* NULL if not associated */
  int is_fd;
  int busy;             /* a call with the GIL released is using c */
  /* Cache of the current window: file offsets [wlo, whi) at wbase. whi is
   * clamped to the file size seen at the last use. Valid iff wbase. */
  const uint8_t *wbase;
  uint64_t wlo, whi;
  /* A memoryview of the whole cached window (it holds one use of the
   * region), made by the first zero-copy buffer slice in this window:
   * further slices are slices of it. Dropped whenever the window changes. */
  PyObject *wview;
  shmx_wm_region *wreg; /* the region of the cached window (borrowed) */
} CursorObject;

/* 1 if a read through the cached window touched bytes the file lost (the
 * guard then gave zeros): what was read must not be returned. */
static inline int cursor_window_lost(const CursorObject *self) {
  return self->wbase && shmx_wm_region_lost(self->wreg);
}

static void cursor_forget_window(CursorObject *self) {
  self->wbase = NULL;
  self->wreg = NULL;
  self->wlo = self->whi = 0;
  Py_CLEAR(self->wview);
}

static void cursor_refresh_cache(CursorObject *self) {
  shmx_wm_region *r = self->c ? shmx_wc_region(self->c) : NULL;
  if (!r) {
    cursor_forget_window(self);
    return;
  }
  uint64_t lo = shmx_wm_region_offset(r);
  uint64_t hi = lo + shmx_wm_region_size(r);
  uint64_t fs = shmx_wc_file_size(self->c);
  if (hi > fs) hi = fs;
  if (hi < lo) hi = lo;
  const uint8_t *base = shmx_wm_region_data(r);
  if (base != self->wbase || lo != self->wlo || hi != self->whi) Py_CLEAR(self->wview);
  self->wbase = base;
  self->wreg = r;
  self->wlo = lo;
  self->whi = hi;
}

static int cursor_enter(CursorObject *self) {
  if (self->busy) {
    PyErr_SetString(PyExc_RuntimeError,
                    "WindowCursor is in use by another thread (use one cursor "
                    "per thread, e.g. copy.copy(cursor))");
    return 0;
  }
  return 1;
}

static int cursor_associated(CursorObject *self) {
  if (!cursor_enter(self)) return 0;
  if (self->c) return 1;
  PyErr_SetString(PyExc_ValueError, "cursor is not associated with a file");
  return 0;
}

static int cursor_valid(CursorObject *self) {
  if (!cursor_enter(self)) return 0;
  if (self->c && self->wbase) return 1;
  PyErr_SetString(PyExc_ValueError, "cursor has no valid region (call use_region)");
  return 0;
}

static void cursor_unuse(CursorObject *self) {
  if (self->c && self->wbase) {
    shmx_wc *c = self->c;
    shmx_wc_unuse(c); /* never unmaps while the manager lives: no GIL dance */
  }
  cursor_forget_window(self);
}

static int64_t manager_window(CursorObject *self) {
  if (!self->manager || self->manager == Py_None) return 0;
  return ((ManagerObject *)self->manager)->window_size;
}

/* smmap's use_region: returns 1 valid, 0 invalid (offset past the end), -1
 * with an exception set. */
static int cursor_use(CursorObject *self, uint64_t offset, uint64_t size) {
  shmx_wc *c = self->c;
  uint64_t fsize = shmx_wc_file_size(c);
  int64_t ws = manager_window(self);
  if (size == 0) size = fsize;
  if (ws > 0 && (uint64_t)ws < size) size = (uint64_t)ws;
  int rc;
  if (self->wbase && offset >= self->wlo && offset < self->whi) {
    rc = shmx_wc_use(c, offset, size); /* lock-free, no system calls */
  } else {
    /* The C cursor drops its region before mapping: forget the cached
     * window first so no other thread reads through it meanwhile (and so
     * that our own view of it does not keep it from being evicted). */
    cursor_forget_window(self);
    self->busy = 1;
    Py_BEGIN_ALLOW_THREADS
    rc = shmx_wc_use(c, offset, size);
    Py_END_ALLOW_THREADS
    self->busy = 0;
  }
  cursor_refresh_cache(self);
  if (rc < 0) {
    raise_shmx(rc);
    return -1;
  }
  return rc;
}

static int parse_u64(PyObject *o, uint64_t *out, const char *what) {
  if (!o) return 1;
  unsigned long long v;
  if (!PyLong_Check(o)) {
    o = PyNumber_Index(o);
    if (!o) return 0;
  } else {
    Py_INCREF(o);
  }
  int neg = PyObject_RichCompareBool(o, Py_False, Py_LT);
  if (neg < 0) {
    Py_DECREF(o);
    return 0;
  }
  if (neg) {
    Py_DECREF(o);
    PyErr_Format(PyExc_ValueError, "%s must be >= 0", what);
    return 0;
  }
  v = PyLong_AsUnsignedLongLong(o);
  Py_DECREF(o);
  if (v == (unsigned long long)-1 && PyErr_Occurred()) {
    if (PyErr_ExceptionMatches(PyExc_OverflowError)) {
      PyErr_Clear();
      v = UINT64_MAX; /* sys.maxsize and beyond: "as much as possible" */
    } else {
      return 0;
    }
  }
  *out = v;
  return 1;
}

static PyObject *cursor_use_region(PyObject *op, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"offset", "size", "flags", NULL};
  CursorObject *self = (CursorObject *)op;
  PyObject *ofs_o = NULL, *size_o = NULL;
  int flags = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "|OOi:use_region", kwlist, &ofs_o,
                                   &size_o, &flags))
    return NULL;
  uint64_t offset = 0, size = 0;
  if (!parse_u64(ofs_o, &offset, "offset") || !parse_u64(size_o, &size, "size"))
    return NULL;
  if (!cursor_associated(self)) return NULL;
  if (cursor_use(self, offset, size) < 0) return NULL;
  return Py_NewRef(op);
}

static PyObject *cursor_unuse_region(PyObject *op, PyObject *unused) {
  (void)unused;
  CursorObject *self = (CursorObject *)op;
  if (!cursor_enter(self)) return NULL;
  cursor_unuse(self);
  Py_RETURN_NONE;
}

static PyObject *cursor_buffer(PyObject *op, PyObject *unused) {
  (void)unused;
  CursorObject *self = (CursorObject *)op;
  if (!cursor_valid(self)) return NULL;
  smmap_state *st = state_of_type(Py_TYPE(op));
  if (!st) return NULL;
  return make_view(st, shmx_wc_region(self->c), NULL, shmx_wc_ptr(self->c),
                   shmx_wc_size(self->c));
}

static PyObject *cursor_map(PyObject *op, PyObject *unused) {
  (void)unused;
  CursorObject *self = (CursorObject *)op;
  if (!cursor_valid(self)) return NULL;
  smmap_state *st = state_of_type(Py_TYPE(op));
  if (!st) return NULL;
  shmx_wm_region *r = shmx_wc_region(self->c);
  return make_view2(st, r, NULL, shmx_wm_region_data(r), shmx_wm_region_size(r), 0);
}

static PyObject *cursor_is_valid(PyObject *op, PyObject *unused) {
  (void)unused;
  return PyBool_FromLong(((CursorObject *)op)->wbase != NULL);
}
static PyObject *cursor_is_associated(PyObject *op, PyObject *unused) {
  (void)unused;
  return PyBool_FromLong(((CursorObject *)op)->c != NULL);
}
static PyObject *cursor_ofs_begin(PyObject *op, PyObject *unused) {
  (void)unused;
  CursorObject *self = (CursorObject *)op;
  if (!cursor_valid(self)) return NULL;
  return PyLong_FromUnsignedLongLong(shmx_wc_offset(self->c));
}
static PyObject *cursor_ofs_end(PyObject *op, PyObject *unused) {
  (void)unused;
  CursorObject *self = (CursorObject *)op;
  if (!cursor_valid(self)) return NULL;
  return PyLong_FromUnsignedLongLong(shmx_wc_offset(self->c) + shmx_wc_size(self->c));
}
static PyObject *cursor_size(PyObject *op, PyObject *unused) {
  (void)unused;
  CursorObject *self = (CursorObject *)op;
  return PyLong_FromUnsignedLongLong(self->c && self->wbase ? shmx_wc_size(self->c) : 0);
}
static PyObject *cursor_includes_ofs(PyObject *op, PyObject *arg) {
  CursorObject *self = (CursorObject *)op;
  if (!self->c || !self->wbase) Py_RETURN_FALSE;
  long long v = PyLong_AsLongLong(arg);
  if (v == -1 && PyErr_Occurred()) {
    if (!PyErr_ExceptionMatches(PyExc_OverflowError)) return NULL;
    PyErr_Clear();
    Py_RETURN_FALSE;
  }
  if (v < 0) Py_RETURN_FALSE;
  uint64_t b = shmx_wc_offset(self->c), n = shmx_wc_size(self->c);
  return PyBool_FromLong((uint64_t)v >= b && (uint64_t)v - b < n);
}
static PyObject *cursor_file_size(PyObject *op, PyObject *unused) {
  (void)unused;
  CursorObject *self = (CursorObject *)op;
  if (!cursor_associated(self)) return NULL;
  return PyLong_FromUnsignedLongLong(shmx_wc_file_size(self->c));
}
static PyObject *cursor_path_or_fd(PyObject *op, PyObject *unused) {
  (void)unused;
  CursorObject *self = (CursorObject *)op;
  if (!self->path_or_fd) Py_RETURN_NONE;
  return Py_NewRef(self->path_or_fd);
}
static PyObject *cursor_path(PyObject *op, PyObject *unused) {
  (void)unused;
  CursorObject *self = (CursorObject *)op;
  if (!self->path_or_fd || self->is_fd) {
    PyErr_SetString(PyExc_ValueError,
                    "Path queried although mapping was applied to a file descriptor");
    return NULL;
  }
  return Py_NewRef(self->path_or_fd);
}
static PyObject *cursor_fd(PyObject *op, PyObject *unused) {
  (void)unused;
  CursorObject *self = (CursorObject *)op;
  if (!self->path_or_fd || !self->is_fd) {
    PyErr_SetString(PyExc_ValueError,
                    "File descriptor queried although mapping was generated from path");
    return NULL;
  }
  return Py_NewRef(self->path_or_fd);
}

static PyObject *region_wrap(smmap_state *st, shmx_wm_region *r);

static PyObject *cursor_region(PyObject *op, PyObject *unused) {
  (void)unused;
  CursorObject *self = (CursorObject *)op;
  if (!self->c || !self->wbase) Py_RETURN_NONE;
  smmap_state *st = state_of_type(Py_TYPE(op));
  if (!st) return NULL;
  return region_wrap(st, shmx_wc_region(self->c));
}

static void cursor_clear_assoc(CursorObject *self) {
  cursor_forget_window(self);
  if (self->c) {
    shmx_wc *c = self->c;
    self->c = NULL;
    shmx_wc_close(c);
  }
  Py_CLEAR(self->path_or_fd);
}

static int cursor_copy_from(CursorObject *dst, CursorObject *src) {
  shmx_wc *nc = NULL;
  if (src->c) {
    int rc = shmx_wc_clone(src->c, &nc);
    if (rc) {
      raise_shmx(rc);
      return -1;
    }
  }
  cursor_clear_assoc(dst);
  Py_XSETREF(dst->manager, Py_XNewRef(src->manager));
  dst->path_or_fd = Py_XNewRef(src->path_or_fd);
  dst->is_fd = src->is_fd;
  dst->c = nc;
  cursor_refresh_cache(dst);
  return 0;
}

static PyObject *cursor_copy(PyObject *op, PyObject *unused) {
  (void)unused;
  CursorObject *self = (CursorObject *)op;
  if (!cursor_enter(self)) return NULL;
  PyTypeObject *tp = Py_TYPE(op);
  CursorObject *n = (CursorObject *)tp->tp_alloc(tp, 0);
  if (!n) return NULL;
  if (cursor_copy_from(n, self) < 0) {
    Py_DECREF(n);
    return NULL;
  }
  return (PyObject *)n;
}

static PyObject *cursor_assign(PyObject *op, PyObject *rhs) {
  CursorObject *self = (CursorObject *)op;
  smmap_state *st = state_of_type(Py_TYPE(op));
  if (!st) return NULL;
  if (!PyObject_TypeCheck(rhs, st->cursor_type)) {
    PyErr_SetString(PyExc_TypeError, "assign() needs a WindowCursor");
    return NULL;
  }
  if (!cursor_enter(self) || !cursor_enter((CursorObject *)rhs)) return NULL;
  if (rhs == op) Py_RETURN_NONE;
  if (cursor_copy_from(self, (CursorObject *)rhs) < 0) return NULL;
  Py_RETURN_NONE;
}

static PyObject *cursor_enter_cm(PyObject *op, PyObject *unused) {
  (void)unused;
  return Py_NewRef(op);
}
static PyObject *cursor_exit_cm(PyObject *op, PyObject *args) {
  (void)args;
  return cursor_unuse_region(op, NULL);
}

static PyObject *cursor_advise(PyObject *op, PyObject *arg) {
  CursorObject *self = (CursorObject *)op;
  int a = (int)PyLong_AsLong(arg);
  if (a == -1 && PyErr_Occurred()) return NULL;
  if (!cursor_associated(self)) return NULL;
  int rc = shmx_wc_advise(self->c, a);
  if (rc) return raise_shmx(rc);
  Py_RETURN_NONE;
}

static PyObject *cursor_check(PyObject *op, PyObject *unused) {
  (void)unused;
  CursorObject *self = (CursorObject *)op;
  if (!cursor_associated(self)) return NULL;
  int rc;
  self->busy = 1;
  Py_BEGIN_ALLOW_THREADS
  rc = shmx_wc_check(self->c);
  Py_END_ALLOW_THREADS
  self->busy = 0;
  if (rc) return raise_shmx(rc);
  Py_RETURN_NONE;
}

static int cursor_init(PyObject *op, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"manager", "regions", NULL};
  CursorObject *self = (CursorObject *)op;
  PyObject *man = Py_None, *regions = Py_None;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "|OO:WindowCursor", kwlist, &man, &regions))
    return -1;
  smmap_state *st = state_of_type(Py_TYPE(op));
  if (!st) return -1;
  if (man != Py_None && !PyObject_TypeCheck(man, st->static_type)) {
    PyErr_SetString(PyExc_TypeError, "manager must be a window map manager or None");
    return -1;
  }
  if (!cursor_enter(self)) return -1;
  cursor_clear_assoc(self);
  Py_XSETREF(self->manager, Py_NewRef(man));
  return 0;
}

static void cursor_dealloc(PyObject *op) {
  CursorObject *self = (CursorObject *)op;
  PyTypeObject *tp = Py_TYPE(op);
  cursor_clear_assoc(self);
  Py_CLEAR(self->manager);
  tp->tp_free(op);
  Py_DECREF(tp);
}

static PyObject *cursor_repr(PyObject *op) {
  CursorObject *self = (CursorObject *)op;
  if (!self->c) return PyUnicode_FromString("<WindowCursor (not associated)>");
  if (!self->wbase)
    return PyUnicode_FromFormat("<WindowCursor %R (no region)>", self->path_or_fd);
  return PyUnicode_FromFormat("<WindowCursor %R [%llu, %llu)>", self->path_or_fd,
                              (unsigned long long)shmx_wc_offset(self->c),
                              (unsigned long long)(shmx_wc_offset(self->c) +
                                                   shmx_wc_size(self->c)));
}

static PyObject *manager_make_cursor(PyObject *op, PyObject *arg) {
  ManagerObject *self = (ManagerObject *)op;
  if (!manager_ready(self)) return NULL;
  smmap_state *st = state_of_type(Py_TYPE(op));
  if (!st) return NULL;
  shmx_wc *c = NULL;
  int rc, is_fd = 0;
  if (PyLong_Check(arg)) {
    int fd = (int)PyLong_AsLong(arg);
    if (fd == -1 && PyErr_Occurred()) return NULL;
    if (fd < 0) {
      PyErr_SetString(PyExc_ValueError, "file descriptor must be >= 0");
      return NULL;
    }
    is_fd = 1;
    Py_BEGIN_ALLOW_THREADS
    rc = shmx_wc_open_fd(self->wm, fd, &c);
    Py_END_ALLOW_THREADS
  } else {
    PyObject *bytes = NULL;
    if (!PyUnicode_FSConverter(arg, &bytes)) return NULL;
    const char *path = PyBytes_AS_STRING(bytes);
    Py_BEGIN_ALLOW_THREADS
    rc = shmx_wc_open_path(self->wm, path, 0, &c);
    Py_END_ALLOW_THREADS
    Py_DECREF(bytes);
  }
  if (rc) return raise_shmx(rc);
  CursorObject *cur = (CursorObject *)st->cursor_type->tp_alloc(st->cursor_type, 0);
  if (!cur) {
    shmx_wc_close(c);
    return NULL;
  }
  cur->manager = Py_NewRef(op);
  cur->path_or_fd = Py_NewRef(arg);
  cur->is_fd = is_fd;
  cur->c = c;
  return (PyObject *)cur;
}

/* ---- MapRegion ---------------------------------------------------------- */

typedef struct {
  PyObject_HEAD
  shmx_wm_region *r;   /* held region of a manager, or NULL */
  Py_ssize_t extra;    /* uses taken by increment_client_count */
  /* standalone mapping (MapRegion(path_or_fd, ofs, size)) */
  uint8_t *base;
  uint64_t ofs, size;
  int guard;              /* SIGBUS guard of the standalone mapping */
  _Atomic uint32_t lost;  /* set by the guard if the file shrank under it */
  int standalone, released;
  Py_ssize_t exports;  /* live views of a standalone mapping */
} RegionObject;

static PyObject *region_wrap(smmap_state *st, shmx_wm_region *r) {
  RegionObject *o = (RegionObject *)st->region_type->tp_alloc(st->region_type, 0);
  if (!o) return NULL;
  shmx_wm_region_hold(r);
  o->r = r;
  o->ofs = shmx_wm_region_offset(r);
  o->size = shmx_wm_region_size(r);
  return (PyObject *)o;
}

static void region_standalone_unmap(RegionObject *self) {
  if (self->base) {
    shmx__guard_del(self->guard);
    munmap(self->base, (size_t)self->size);
    self->base = NULL;
  }
}

static int region_init(PyObject *op, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"path_or_fd", "ofs", "size", "flags", NULL};
  RegionObject *self = (RegionObject *)op;
  PyObject *pf, *ofs_o, *size_o;
  int flags = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "OOO|i:MapRegion", kwlist, &pf, &ofs_o,
                                   &size_o, &flags))
    return -1;
  if (self->r || self->standalone) {
    PyErr_SetString(PyExc_TypeError, "MapRegion is already initialised");
    return -1;
  }
  uint64_t ofs = 0, size = 0;
  if (!parse_u64(ofs_o, &ofs, "ofs") || !parse_u64(size_o, &size, "size")) return -1;
  long pg = sysconf(_SC_PAGESIZE);
  if (pg <= 0) pg = 4096;
  if (ofs % (uint64_t)pg) {
    PyErr_Format(PyExc_ValueError, "ofs %llu is not aligned to %ld",
                 (unsigned long long)ofs, pg);
    return -1;
  }
  int fd, own = 0;
  if (PyLong_Check(pf)) {
    fd = (int)PyLong_AsLong(pf);
    if (fd == -1 && PyErr_Occurred()) return -1;
  } else {
    PyObject *bytes = NULL;
    if (!PyUnicode_FSConverter(pf, &bytes)) return -1;
    Py_BEGIN_ALLOW_THREADS
    fd = open(PyBytes_AS_STRING(bytes), O_RDONLY | O_CLOEXEC | flags);
    Py_END_ALLOW_THREADS
    if (fd < 0) {
      PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, pf);
      Py_DECREF(bytes);
      return -1;
    }
    Py_DECREF(bytes);
    own = 1;
  }
  struct stat sb;
  void *p = MAP_FAILED;
  uint64_t len = 0;
  int err = 0;
  Py_BEGIN_ALLOW_THREADS
  if (fstat(fd, &sb) != 0) {
    err = errno;
  } else {
    uint64_t fs = sb.st_size > 0 ? (uint64_t)sb.st_size : 0;
    len = fs > ofs ? fs - ofs : 0;
    if (size < len) len = size;
    if (len == 0 || len > SIZE_MAX) err = len ? EOVERFLOW : EINVAL;
    else if ((p = mmap(NULL, (size_t)len, PROT_READ, MAP_SHARED, fd, (off_t)ofs)) ==
             MAP_FAILED)
      err = errno;
  }
  if (own) close(fd);
  Py_END_ALLOW_THREADS
  if (err) {
    errno = err;
    if (err == ENOMEM) PyErr_NoMemory();
    else PyErr_SetFromErrno(PyExc_OSError);
    return -1;
  }
  self->standalone = 1;
  self->base = p;
  self->ofs = ofs;
  self->size = len;
  /* a truncation by another process then reads zeros instead of killing
   * the interpreter with SIGBUS */
  self->guard = shmx__guard_add(p, len, 1, &self->lost);
  return 0;
}

static void region_dealloc(PyObject *op) {
  RegionObject *self = (RegionObject *)op;
  PyTypeObject *tp = Py_TYPE(op);
  if (self->r) {
    for (; self->extra > 0; self->extra--) shmx_wm_region_unuse(self->r);
    shmx_wm_region_unhold(self->r);
  }
  region_standalone_unmap(self);
  tp->tp_free(op);
  Py_DECREF(tp);
}

static PyObject *region_ofs_begin(PyObject *op, PyObject *u) {
  (void)u;
  return PyLong_FromUnsignedLongLong(((RegionObject *)op)->ofs);
}
static PyObject *region_size(PyObject *op, PyObject *u) {
  (void)u;
  return PyLong_FromUnsignedLongLong(((RegionObject *)op)->size);
}
static PyObject *region_ofs_end(PyObject *op, PyObject *u) {
  (void)u;
  RegionObject *self = (RegionObject *)op;
  return PyLong_FromUnsignedLongLong(self->ofs + self->size);
}
static PyObject *region_get_b(PyObject *op, void *closure) {
  (void)closure;
  return region_ofs_begin(op, NULL);
}
static PyObject *region_includes_ofs(PyObject *op, PyObject *arg) {
  RegionObject *self = (RegionObject *)op;
  long long v = PyLong_AsLongLong(arg);
  if (v == -1 && PyErr_Occurred()) {
    if (!PyErr_ExceptionMatches(PyExc_OverflowError)) return NULL;
    PyErr_Clear();
    Py_RETURN_FALSE;
  }
  if (v < 0) Py_RETURN_FALSE;
  return PyBool_FromLong((uint64_t)v >= self->ofs && (uint64_t)v - self->ofs < self->size);
}
static PyObject *region_client_count(PyObject *op, PyObject *u) {
  (void)u;
  RegionObject *self = (RegionObject *)op;
  if (self->r) {
    if (!shmx_wm_region_mapped(self->r)) return PyLong_FromLong(0);
    /* users + the manager's own reference, as smmap counts */
    return PyLong_FromUnsignedLong((unsigned long)shmx_wm_region_users(self->r) + 1);
  }
  return PyLong_FromLong(self->standalone && !self->released ? 1 : 0);
}

static PyObject *region_release(PyObject *op, PyObject *u) {
  (void)u;
  RegionObject *self = (RegionObject *)op;
  if (self->r) {
    for (; self->extra > 0; self->extra--) shmx_wm_region_unuse(self->r);
    Py_RETURN_NONE; /* the manager owns the mapping */
  }
  self->released = 1;
  if (self->exports == 0) region_standalone_unmap(self);
  Py_RETURN_NONE;
}

static PyObject *region_increment(PyObject *op, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"ofs", NULL};
  RegionObject *self = (RegionObject *)op;
  Py_ssize_t d = 1;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "|n:increment_client_count", kwlist, &d))
    return NULL;
  if (self->r) {
    if (d < 0 && -d > self->extra) {
      PyErr_SetString(PyExc_ValueError,
                      "cannot drop uses this MapRegion object did not take");
      return NULL;
    }
    for (; d > 0; d--) {
      int rc = shmx_wm_region_use(self->r);
      if (rc) return raise_shmx(rc);
      self->extra++;
    }
    for (; d < 0; d++) {
      shmx_wm_region_unuse(self->r);
      self->extra--;
    }
    Py_RETURN_FALSE;
  }
  if (d < 0 && !self->released) {
    region_release(op, NULL);
    Py_RETURN_TRUE;
  }
  Py_RETURN_FALSE;
}

/* Standalone views keep the object alive and count as exports. */
static PyObject *region_view(PyObject *op) {
  RegionObject *self = (RegionObject *)op;
  smmap_state *st = state_of_type(Py_TYPE(op));
  if (!st) return NULL;
  if (self->r) {
    if (!shmx_wm_region_mapped(self->r)) {
      PyErr_SetString(PyExc_ValueError, "region was unmapped");
      return NULL;
    }
    int rc = shmx_wm_region_use(self->r); /* keep base stable while reading */
    if (rc) return raise_shmx(rc);
    PyObject *mv = make_view2(st, self->r, NULL, shmx_wm_region_data(self->r), self->size, 0);
    shmx_wm_region_unuse(self->r);
    return mv;
  }
  if (!self->base || self->released) {
    PyErr_SetString(PyExc_ValueError, "region was released");
    return NULL;
  }
  return make_view2(st, NULL, op, self->base, self->size, 0);
}

static void region_export_begin(PyObject *owner) {
  ((RegionObject *)owner)->exports++;
}

/* The last view of a released standalone region unmaps it. */
static void region_export_done(PyObject *owner) {
  RegionObject *self = (RegionObject *)owner;
  if (--self->exports == 0 && self->released) region_standalone_unmap(self);
}
static PyObject *region_buffer(PyObject *op, PyObject *u) {
  (void)u;
  return region_view(op);
}

static PyObject *region_richcompare(PyObject *a, PyObject *b, int opid) {
  if ((opid != Py_EQ && opid != Py_NE) || Py_TYPE(a) != Py_TYPE(b))
    Py_RETURN_NOTIMPLEMENTED;
  RegionObject *x = (RegionObject *)a, *y = (RegionObject *)b;
  int eq = x == y || (x->r && x->r == y->r);
  return PyBool_FromLong(opid == Py_EQ ? eq : !eq);
}
static Py_hash_t region_hash(PyObject *op) {
  RegionObject *self = (RegionObject *)op;
  return _Py_HashPointer(self->r ? (void *)self->r : (void *)op);
}
static PyObject *region_repr(PyObject *op) {
  RegionObject *self = (RegionObject *)op;
  return PyUnicode_FromFormat("MapRegion<%llu, %llu>", (unsigned long long)self->ofs,
                              (unsigned long long)self->size);
}

/* ---- SlidingWindowMapBuffer --------------------------------------------- */

typedef struct {
  PyObject_HEAD
  CursorObject *cursor; /* or NULL */
  uint64_t ofs, size;
  /* Access pattern: of the last SCATTER_SPAN reads, how many fell in the
   * cursor's window. When few did (scattered reads under limits that keep
   * evicting windows), small misses are read with pread instead of mapping
   * a window, except every SCATTER_SAMPLE-th miss, which maps one to see
   * whether the pattern changed. */
  uint32_t acc, hits, misses;
  int scatter;
  int no_adaptive; /* adaptive_reads = False */
} BufferObject;

#define SCATTER_SPAN 64
#define SCATTER_MIN_HITS 16
#define SCATTER_SAMPLE 32
#define SCATTER_MAX_READ 65536

static inline void buffer_account(BufferObject *self, int hit) {
  self->hits += (uint32_t)hit;
  if (++self->acc == SCATTER_SPAN) {
    self->scatter = self->hits < SCATTER_MIN_HITS;
    self->acc = self->hits = 0;
  }
}

/* 1 if this miss should be served by shmx_wc_read rather than a window. */
static inline int buffer_use_read(BufferObject *self, uint64_t n) {
  return self->scatter && !self->no_adaptive && n <= SCATTER_MAX_READ &&
         (++self->misses % SCATTER_SAMPLE) != 0;
}

/* Copy n bytes at absolute pos without moving the cursor. */
static int buffer_read(BufferObject *self, uint64_t pos, void *dst, uint64_t n) {
  int64_t got = shmx_wc_read(self->cursor->c, pos, dst, n);
  if (got < 0) {
    raise_shmx((int)got);
    return -1;
  }
  if ((uint64_t)got < n) {
    PyErr_Format(PyExc_IndexError,
                 "offset %llu is beyond the end of the file (it shrank?)",
                 (unsigned long long)(pos + (uint64_t)got));
    return -1;
  }
  return 0;
}

static int buffer_begin(BufferObject *self, PyObject *cursor, uint64_t offset,
                        uint64_t size, smmap_state *st) {
  if (cursor && cursor != Py_None) {
    if (!PyObject_TypeCheck(cursor, st->cursor_type)) {
      PyErr_SetString(PyExc_TypeError, "cursor must be a WindowCursor");
      return -1;
    }
    Py_XSETREF(self->cursor, (CursorObject *)Py_NewRef(cursor));
  }
  CursorObject *c = self->cursor;
  if (!c || !c->c) return 0;
  if (!cursor_enter(c)) return -1;
  int rc = cursor_use(c, offset, size);
  if (rc <= 0) return rc;
  uint64_t fs = shmx_wc_file_size(c->c);
  uint64_t avail = fs > offset ? fs - offset : 0;
  self->ofs = offset;
  self->size = size < avail ? size : avail;
  return 1;
}

static int buffer_parse(PyObject *args, PyObject *kw, const char *fmt,
                        PyObject **cursor, uint64_t *offset, uint64_t *size) {
  static char *kwlist[] = {"cursor", "offset", "size", "flags", NULL};
  PyObject *ofs_o = NULL, *size_o = NULL;
  int flags = 0;
  *cursor = NULL;
  if (!PyArg_ParseTupleAndKeywords(args, kw, fmt, kwlist, cursor, &ofs_o, &size_o, &flags))
    return 0;
  *offset = 0;
  *size = UINT64_MAX;
  return parse_u64(ofs_o, offset, "offset") && parse_u64(size_o, size, "size");
}

static int buffer_init(PyObject *op, PyObject *args, PyObject *kw) {
  BufferObject *self = (BufferObject *)op;
  PyObject *cursor;
  uint64_t offset, size;
  if (!buffer_parse(args, kw, "|OOOi:SlidingWindowMapBuffer", &cursor, &offset, &size))
    return -1;
  smmap_state *st = state_of_type(Py_TYPE(op));
  if (!st) return -1;
  self->size = 0;
  if (!cursor || cursor == Py_None) return 0;
  int rc = buffer_begin(self, cursor, offset, size, st);
  if (rc < 0) return -1;
  if (rc == 0) {
    PyErr_SetString(PyExc_ValueError,
                    "Failed to allocate the buffer - the cursor is not associated "
                    "or the offset is beyond the end of the file");
    return -1;
  }
  return 0;
}

static PyObject *buffer_begin_access(PyObject *op, PyObject *args, PyObject *kw) {
  BufferObject *self = (BufferObject *)op;
  PyObject *cursor;
  uint64_t offset, size;
  if (!buffer_parse(args, kw, "|OOOi:begin_access", &cursor, &offset, &size)) return NULL;
  smmap_state *st = state_of_type(Py_TYPE(op));
  if (!st) return NULL;
  int rc = buffer_begin(self, cursor, offset, size, st);
  if (rc < 0) return NULL;
  return PyBool_FromLong(rc);
}

static PyObject *buffer_end_access(PyObject *op, PyObject *u) {
  (void)u;
  BufferObject *self = (BufferObject *)op;
  self->size = 0;
  if (self->cursor) {
    if (!cursor_enter(self->cursor)) return NULL;
    cursor_unuse(self->cursor);
  }
  Py_RETURN_NONE;
}

static PyObject *buffer_cursor(PyObject *op, PyObject *u) {
  (void)u;
  BufferObject *self = (BufferObject *)op;
  if (!self->cursor) Py_RETURN_NONE;
  return Py_NewRef((PyObject *)self->cursor);
}

static Py_ssize_t buffer_len(PyObject *op) {
  uint64_t n = ((BufferObject *)op)->size;
  return n > (uint64_t)PY_SSIZE_T_MAX ? PY_SSIZE_T_MAX : (Py_ssize_t)n;
}

/* Make the cursor's window cover absolute offset pos (asking for want
 * bytes); -1 with an exception if that fails. */
static int buffer_reach(BufferObject *self, uint64_t pos, uint64_t want) {
  CursorObject *c = self->cursor;
  if (c->wbase && pos >= c->wlo && pos < c->whi) return 0;
  if (!cursor_enter(c)) return -1;
  int rc = cursor_use(c, pos, want);
  if (rc < 0) return -1;
  if (rc == 0 || !(pos >= c->wlo && pos < c->whi)) {
    PyErr_Format(PyExc_IndexError,
                 "offset %llu is beyond the end of the file (it shrank?)",
                 (unsigned long long)pos);
    return -1;
  }
  return 0;
}

static int buffer_ready(BufferObject *self) {
  if (self->cursor && self->cursor->c) return 1;
  PyErr_SetString(PyExc_IndexError, "buffer has no access (call begin_access)");
  return 0;
}

/* A read-only memoryview over bytes object b (a new reference), or NULL;
 * steals b. */
static PyObject *bytes_view(PyObject *b) {
  if (!b) return NULL;
  PyObject *mv = PyMemoryView_FromObject(b);
  Py_DECREF(b);
  return mv;
}

/* The cursor's memoryview of its whole window (made on first use); NULL
 * with an exception if it cannot be made. */
static PyObject *cursor_window_view(smmap_state *st, CursorObject *c) {
  if (!c->wview) c->wview = make_view(st, shmx_wc_region(c->c), NULL, c->wbase, c->whi - c->wlo);
  return c->wview;
}

/* Zero-copy slice of the cursor's window: a memoryview of file bytes
 * from plo: n elements, strided by step from element rel, taken
 * from the cursor's memoryview of the whole window, so that it keeps the
 * region mapped while it (or any slice of it) lives. The caller checked that
 * the window covers the span. */
static PyObject *window_slice(smmap_state *st, CursorObject *c, uint64_t plo,
                              Py_ssize_t rel, Py_ssize_t n, Py_ssize_t step) {
  if (!cursor_window_view(st, c)) return NULL;
  Py_ssize_t start = (Py_ssize_t)(plo - c->wlo) + rel;
  Py_ssize_t end = start + (n - 1) * step + (step > 0 ? 1 : -1);
  PyObject *a = PyLong_FromSsize_t(start);
  PyObject *b = end < 0 ? Py_NewRef(Py_None) : PyLong_FromSsize_t(end);
  PyObject *sc = step == 1 ? Py_NewRef(Py_None) : PyLong_FromSsize_t(step);
  PyObject *sl = a && b && sc ? PySlice_New(a, b, sc) : NULL;
  Py_XDECREF(a);
  Py_XDECREF(b);
  Py_XDECREF(sc);
  PyObject *out = sl ? PyObject_GetItem(c->wview, sl) : NULL;
  Py_XDECREF(sl);
  return out;
}

static PyObject *buffer_subscript_once(PyObject *op, PyObject *key) {
  BufferObject *self = (BufferObject *)op;
  Py_ssize_t len = buffer_len(op);
  if (PyIndex_Check(key)) {
    Py_ssize_t i = PyNumber_AsSsize_t(key, PyExc_IndexError);
    if (i == -1 && PyErr_Occurred()) return NULL;
    if (i < 0) i += len;
    if (i < 0 || i >= len) {
      PyErr_SetString(PyExc_IndexError, "buffer index out of range");
      return NULL;
    }
    if (!buffer_ready(self)) return NULL;
    uint64_t pos = self->ofs + (uint64_t)i;
    CursorObject *c = self->cursor;
    if (c->wbase && pos >= c->wlo && pos < c->whi) {
      buffer_account(self, 1);
      return PyLong_FromLong(c->wbase[pos - c->wlo]);
    }
    buffer_account(self, 0);
    if (buffer_use_read(self, 1)) {
      uint8_t b;
      if (buffer_read(self, pos, &b, 1) < 0) return NULL;
      return PyLong_FromLong(b);
    }
    if (buffer_reach(self, pos, 1) < 0) return NULL;
    return PyLong_FromLong(c->wbase[pos - c->wlo]);
  }
  if (!PySlice_Check(key)) {
    PyErr_Format(PyExc_TypeError, "buffer indices must be integers or slices, not %.200s",
                 Py_TYPE(key)->tp_name);
    return NULL;
  }
  Py_ssize_t start, stop, step;
  if (PySlice_Unpack(key, &start, &stop, &step) < 0) return NULL;
  Py_ssize_t n = PySlice_AdjustIndices(len, &start, &stop, step);
  if (n <= 0) return bytes_view(PyBytes_FromStringAndSize(NULL, 0));
  if (!buffer_ready(self)) return NULL;
  smmap_state *st = state_of_type(Py_TYPE(op));
  if (!st) return NULL;
  CursorObject *c = self->cursor;
  /* The slice touches file bytes [plo, plo + span): element k is at
   * first + k * step, relative to the buffer's offset. */
  Py_ssize_t first = start, last = start + (n - 1) * step;
  Py_ssize_t lo = first < last ? first : last;
  uint64_t plo = self->ofs + (uint64_t)lo;
  uint64_t span = (uint64_t)(first < last ? last - first : first - last) + 1;
  int hit = c->wbase && plo >= c->wlo && plo < c->whi && c->whi - plo >= span;
  buffer_account(self, hit);
  if (hit && self->ofs == c->wlo && (uint64_t)len == c->whi - c->wlo) {
    /* the buffer is exactly the window (a whole-file mapping): the key
     * means the same on the window's view, clamping included */
    if (!cursor_window_view(st, c)) return NULL;
    return PyObject_GetItem(c->wview, key);
  }
  if (hit) return window_slice(st, c, plo, first - lo, n, step);
  if (step == 1) {
    if (buffer_use_read(self, span)) {
      PyObject *out = PyBytes_FromStringAndSize(NULL, n);
      if (!out) return NULL;
      if (buffer_read(self, plo, PyBytes_AS_STRING(out), span) < 0) {
        Py_DECREF(out);
        return NULL;
      }
      return bytes_view(out);
    }
    if (buffer_reach(self, plo, span) < 0) return NULL;
    if (c->whi - plo >= span) return window_slice(st, c, plo, 0, n, 1);
    /* wider than one window: assemble a copy */
    PyObject *out = PyBytes_FromStringAndSize(NULL, n);
    if (!out) return NULL;
    char *dst = PyBytes_AS_STRING(out);
    uint64_t pos = plo, left = span;
    while (left) {
      if (buffer_reach(self, pos, left) < 0) {
        Py_DECREF(out);
        return NULL;
      }
      uint64_t k = c->whi - pos;
      if (k > left) k = left;
      memcpy(dst, c->wbase + (pos - c->wlo), (size_t)k);
      dst += k;
      pos += k;
      left -= k;
    }
    return bytes_view(out);
  }
  /* a step slice outside the current window: gather the elements */
  PyObject *out = PyBytes_FromStringAndSize(NULL, n);
  if (!out) return NULL;
  char *dst = PyBytes_AS_STRING(out);
  Py_ssize_t i = start;
  for (Py_ssize_t k = 0; k < n; k++, i += step) {
    uint64_t pos = self->ofs + (uint64_t)i;
    int in = c->wbase && pos >= c->wlo && pos < c->whi;
    if (!in && buffer_use_read(self, 1)) {
      if (buffer_read(self, pos, dst + k, 1) < 0) {
        Py_DECREF(out);
        return NULL;
      }
      continue;
    }
    if (!in && buffer_reach(self, pos, 1) < 0) {
      Py_DECREF(out);
      return NULL;
    }
    dst[k] = (char)c->wbase[pos - c->wlo];
  }
  return bytes_view(out);
}

/* buf[i] / buf[a:b]. A read through the cached window that hit bytes the
 * file lost (it shrank under the mapping; the SIGBUS guard gave zeros) is
 * thrown away: the window is dropped and the read done again through
 * shmx_wc_use, which re-reads the file size, so the caller gets the real
 * bytes or IndexError, never the guard's zeros. */
static PyObject *buffer_subscript(PyObject *op, PyObject *key) {
  BufferObject *self = (BufferObject *)op;
  PyObject *out = buffer_subscript_once(op, key);
  CursorObject *c = self->cursor;
  if (!out || !c || !cursor_window_lost(c)) return out;
  Py_DECREF(out);
  if (!cursor_enter(c)) return NULL;
  cursor_unuse(c);
  out = buffer_subscript_once(op, key);
  if (out && cursor_window_lost(c)) {
    Py_DECREF(out);
    cursor_unuse(c);
    PyErr_SetString(PyExc_IndexError, "the file keeps shrinking under the buffer");
    return NULL;
  }
  return out;
}

static PyObject *buffer_enter_cm(PyObject *op, PyObject *u) {
  (void)u;
  return Py_NewRef(op);
}
static PyObject *buffer_exit_cm(PyObject *op, PyObject *args) {
  (void)args;
  return buffer_end_access(op, NULL);
}

static void buffer_dealloc(PyObject *op) {
  BufferObject *self = (BufferObject *)op;
  PyTypeObject *tp = Py_TYPE(op);
  if (self->cursor && !self->cursor->busy) cursor_unuse(self->cursor);
  Py_CLEAR(self->cursor);
  tp->tp_free(op);
  Py_DECREF(tp);
}

/* ---- type specs --------------------------------------------------------- */

static PyMethodDef manager_methods[] = {
    {"make_cursor", manager_make_cursor, METH_O,
     "make_cursor(path_or_fd) -> WindowCursor on a path (str, bytes, os.PathLike) or fd"},
    {"collect", manager_collect, METH_NOARGS, "Unmap every unused region; return how many."},
    {"num_file_handles", manager_num_file_handles, METH_NOARGS,
     "Regions currently mapped (each counts as one handle)."},
    {"num_open_files", manager_num_open_files, METH_NOARGS,
     "Files with at least one mapped region."},
    {"window_size", manager_window_size, METH_NOARGS, "Window size as configured."},
    {"mapped_memory_size", manager_mapped_memory_size, METH_NOARGS, "Bytes mapped now."},
    {"max_file_handles", manager_max_file_handles, METH_NOARGS,
     "Most regions mapped at once (default: half the fd limit)."},
    {"max_mapped_memory_size", manager_max_mapped_memory_size, METH_NOARGS,
     "Memory limit in bytes."},
    {"force_map_handle_removal_win", manager_force_removal, METH_O,
     "Windows only in smmap; returns None here."},
    {"_collect_lru_region", manager_collect_lru_region, METH_O, "smmap internal hook."},
    {"_stats", manager_stats, METH_NOARGS, "Counters of the C manager (dict)."},
    {NULL, NULL, 0, NULL}};

static PyType_Slot static_slots[] = {
    {Py_tp_init, static_init},
    {Py_tp_dealloc, manager_dealloc},
    {Py_tp_methods, manager_methods},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_doc, "StaticWindowMapManager(window_size=0, max_memory_size=0, "
                "max_open_handles=sys.maxsize)\n\nMaps whole files."},
    {0, NULL}};
static PyType_Spec static_spec = {"shmx.smmap.StaticWindowMapManager",
                                  sizeof(ManagerObject), 0,
                                  Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE, static_slots};

static PyType_Slot sliding_slots[] = {
    {Py_tp_init, sliding_init},
    {Py_tp_doc, "SlidingWindowMapManager(window_size=-1, max_memory_size=0, "
                "max_open_handles=sys.maxsize)\n\nMaps windows of files."},
    {0, NULL}};
static PyType_Spec sliding_spec = {"shmx.smmap.SlidingWindowMapManager",
                                   sizeof(ManagerObject), 0,
                                   Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE, sliding_slots};

static PyMethodDef cursor_methods[] = {
    {"use_region", (PyCFunction)(void (*)(void))cursor_use_region,
     METH_VARARGS | METH_KEYWORDS,
     "use_region(offset=0, size=0, flags=0) -> self; invalid if offset is past the end"},
    {"unuse_region", cursor_unuse_region, METH_NOARGS, "Release the current region."},
    {"_destroy", cursor_unuse_region, METH_NOARGS, "smmap compatibility: unuse_region()."},
    {"buffer", cursor_buffer, METH_NOARGS, "memoryview of the cursor's bytes."},
    {"map", cursor_map, METH_NOARGS,
     "The whole region as a MapView (like smmap's mmap: [i] -> int, [a:b] -> bytes)."},
    {"is_valid", cursor_is_valid, METH_NOARGS, NULL},
    {"is_associated", cursor_is_associated, METH_NOARGS, NULL},
    {"ofs_begin", cursor_ofs_begin, METH_NOARGS, NULL},
    {"ofs_end", cursor_ofs_end, METH_NOARGS, NULL},
    {"size", cursor_size, METH_NOARGS, NULL},
    {"region", cursor_region, METH_NOARGS, NULL},
    {"includes_ofs", cursor_includes_ofs, METH_O, NULL},
    {"file_size", cursor_file_size, METH_NOARGS, NULL},
    {"path_or_fd", cursor_path_or_fd, METH_NOARGS, NULL},
    {"path", cursor_path, METH_NOARGS, NULL},
    {"fd", cursor_fd, METH_NOARGS, NULL},
    {"assign", cursor_assign, METH_O, "Make this cursor a copy of another."},
    {"advise", cursor_advise, METH_O,
     "advise(ADVICE_*): madvise hint for this cursor's windows."},
    {"check", cursor_check, METH_NOARGS,
     "Re-read the file size; OSError if the file shrank below the cursor."},
    {"__copy__", cursor_copy, METH_NOARGS, NULL},
    {"__enter__", cursor_enter_cm, METH_NOARGS, NULL},
    {"__exit__", cursor_exit_cm, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL}};

static PyType_Slot cursor_slots[] = {
    {Py_tp_init, cursor_init},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_dealloc, cursor_dealloc},
    {Py_tp_methods, cursor_methods},
    {Py_tp_repr, cursor_repr},
    {Py_tp_doc, "WindowCursor(manager=None, regions=None): a pointer into a mapped "
                "file; made by manager.make_cursor()."},
    {0, NULL}};
static PyType_Spec cursor_spec = {"shmx.smmap.WindowCursor", sizeof(CursorObject), 0,
                                  Py_TPFLAGS_DEFAULT, cursor_slots};

static PyMethodDef region_methods[] = {
    {"buffer", region_buffer, METH_NOARGS, "The region as a MapView."},
    {"map", region_buffer, METH_NOARGS, "The region as a MapView."},
    {"ofs_begin", region_ofs_begin, METH_NOARGS, NULL},
    {"size", region_size, METH_NOARGS, NULL},
    {"ofs_end", region_ofs_end, METH_NOARGS, NULL},
    {"includes_ofs", region_includes_ofs, METH_O, NULL},
    {"client_count", region_client_count, METH_NOARGS, NULL},
    {"increment_client_count", (PyCFunction)(void (*)(void))region_increment,
     METH_VARARGS | METH_KEYWORDS, NULL},
    {"release", region_release, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL}};
static PyGetSetDef region_getset[] = {{"_b", region_get_b, NULL, NULL, NULL},
                                      {NULL, NULL, NULL, NULL, NULL}};

static PyType_Slot region_slots[] = {
    {Py_tp_init, region_init},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_dealloc, region_dealloc},
    {Py_tp_methods, region_methods},
    {Py_tp_getset, region_getset},
    {Py_tp_richcompare, region_richcompare},
    {Py_tp_hash, region_hash},
    {Py_tp_repr, region_repr},
    {Py_tp_doc, "MapRegion(path_or_fd, ofs, size, flags=0): a mapped region."},
    {0, NULL}};
static PyType_Spec region_spec = {"shmx.smmap.util.MapRegion", sizeof(RegionObject), 0,
                                  Py_TPFLAGS_DEFAULT, region_slots};

static PyMethodDef buffer_methods[] = {
    {"begin_access", (PyCFunction)(void (*)(void))buffer_begin_access,
     METH_VARARGS | METH_KEYWORDS,
     "begin_access(cursor=None, offset=0, size=sys.maxsize, flags=0) -> bool"},
    {"end_access", buffer_end_access, METH_NOARGS, NULL},
    {"cursor", buffer_cursor, METH_NOARGS, NULL},
    {"__enter__", buffer_enter_cm, METH_NOARGS, NULL},
    {"__exit__", buffer_exit_cm, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL}};

static PyObject *buffer_get_adaptive(PyObject *op, void *closure) {
  (void)closure;
  return PyBool_FromLong(!((BufferObject *)op)->no_adaptive);
}
static int buffer_set_adaptive(PyObject *op, PyObject *v, void *closure) {
  (void)closure;
  if (!v) {
    PyErr_SetString(PyExc_AttributeError, "cannot delete adaptive_reads");
    return -1;
  }
  int t = PyObject_IsTrue(v);
  if (t < 0) return -1;
  ((BufferObject *)op)->no_adaptive = !t;
  return 0;
}
static PyGetSetDef buffer_getset[] = {
    {"adaptive_reads", buffer_get_adaptive, buffer_set_adaptive,
     "True (default): when reads keep missing the cursor's window, serve small "
     "misses with pread() instead of mapping a window for each.",
     NULL},
    {NULL, NULL, NULL, NULL, NULL}};

static PyType_Slot buffer_slots[] = {
    {Py_tp_getset, buffer_getset},
    {Py_tp_init, buffer_init},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_dealloc, buffer_dealloc},
    {Py_tp_methods, buffer_methods},
    {Py_mp_subscript, buffer_subscript},
    {Py_mp_length, buffer_len},
    {Py_sq_length, buffer_len},
    {Py_tp_doc, "SlidingWindowMapBuffer(cursor=None, offset=0, size=sys.maxsize, "
                "flags=0): bytes of a file from offset; [i] -> int, [a:b:s] -> read-only "
                "memoryview (zero-copy inside the cursor's window)."},
    {0, NULL}};
static PyType_Spec buffer_spec = {"shmx.smmap.SlidingWindowMapBuffer",
                                  sizeof(BufferObject), 0, Py_TPFLAGS_DEFAULT,
                                  buffer_slots};

/* ---- module ------------------------------------------------------------- */

static int add_type(PyObject *m, PyType_Spec *spec, PyObject *base, PyTypeObject **out) {
  PyObject *bases = NULL;
  if (base && !(bases = PyTuple_Pack(1, base))) return -1; /* 3.9 wants a tuple */
  PyObject *t = PyType_FromModuleAndSpec(m, spec, bases);
  Py_XDECREF(bases);
  if (!t) return -1;
  *out = (PyTypeObject *)t;
  const char *dot = strrchr(spec->name, '.');
  return PyModule_AddObjectRef(m, dot ? dot + 1 : spec->name, t);
}

static int smmap_exec(PyObject *m) {
  smmap_state *st = PyModule_GetState(m);
  if (add_type(m, &view_spec, NULL, &st->view_type) < 0) return -1;
  if (add_type(m, &static_spec, NULL, &st->static_type) < 0) return -1;
  if (add_type(m, &sliding_spec, (PyObject *)st->static_type, &st->sliding_type) < 0)
    return -1;
  if (add_type(m, &cursor_spec, NULL, &st->cursor_type) < 0) return -1;
  if (add_type(m, &region_spec, NULL, &st->region_type) < 0) return -1;
  if (add_type(m, &buffer_spec, NULL, &st->buffer_type) < 0) return -1;
  if (PyModule_AddIntConstant(m, "ALLOCATIONGRANULARITY",
                              (long)shmx_wm_granularity()) < 0 ||
      PyModule_AddIntConstant(m, "ADVICE_NORMAL", SHMX_WC_NORMAL) < 0 ||
      PyModule_AddIntConstant(m, "ADVICE_SEQUENTIAL", SHMX_WC_SEQUENTIAL) < 0 ||
      PyModule_AddIntConstant(m, "ADVICE_RANDOM", SHMX_WC_RANDOM) < 0 ||
      PyModule_AddIntConstant(m, "ADVICE_WILLNEED", SHMX_WC_WILLNEED) < 0)
    return -1;
  return 0;
}

static int smmap_traverse(PyObject *m, visitproc visit, void *arg) {
  smmap_state *st = PyModule_GetState(m);
  if (!st) return 0;
  Py_VISIT(st->static_type);
  Py_VISIT(st->sliding_type);
  Py_VISIT(st->cursor_type);
  Py_VISIT(st->region_type);
  Py_VISIT(st->buffer_type);
  Py_VISIT(st->view_type);
  return 0;
}

static int smmap_clear(PyObject *m) {
  smmap_state *st = PyModule_GetState(m);
  if (!st) return 0;
  Py_CLEAR(st->static_type);
  Py_CLEAR(st->sliding_type);
  Py_CLEAR(st->cursor_type);
  Py_CLEAR(st->region_type);
  Py_CLEAR(st->buffer_type);
  Py_CLEAR(st->view_type);
  return 0;
}

static void smmap_free(void *m) { smmap_clear((PyObject *)m); }

static PyModuleDef_Slot smmap_slots[] = {{Py_mod_exec, smmap_exec}, {0, NULL}};

static struct PyModuleDef smmap_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "shmx.smmap._smmap",
    .m_doc = "Sliding-window memory maps (C core of shmx.smmap).",
    .m_size = sizeof(smmap_state),
    .m_slots = smmap_slots,
    .m_traverse = smmap_traverse,
    .m_clear = smmap_clear,
    .m_free = smmap_free,
};

PyMODINIT_FUNC PyInit__smmap(void);
PyMODINIT_FUNC PyInit__smmap(void) { return PyModuleDef_Init(&smmap_module); }

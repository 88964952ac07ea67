/*
 * shmxmodule.c -- shmx._shmx: the Python binding of libshmx.
 *
 * Objects (all heap types created with PyType_FromModuleAndSpec, module
 * state holds the types, exceptions and interned keys):
 *
 *   Server       producer; owns a shmx_server*. begin_frame() returns a
 *                FrameHandle; reserve_stream() returns writable views whose
 *                exports are counted (publish/abort/destroy refuse while any
 *                is alive, so no write can land in a published slot or in an
 *                unmapped segment).
 *   Client       reader; shares a refcounted `ccore` (the shmx_client*) with
 *                every Frame it produced. close() marks the Python object
 *                closed and drops its reference; shmx_client_close() runs when
 *                the last Frame is gone, so a view never outlives its mapping.
 *   Frame        one held frame (pinned in the core until the Frame dies or
 *                release() is called with no live exports).
 *   View         buffer exporter over one stream of a Frame (read-only; raw
 *                bytes or typed format+shape) or over reserved space of the
 *                Server's begun frame (writable).
 *   Inspector    read-only observer.
 *
 * Threads: libshmx handles are not thread-safe, and the GIL is released
 * around waits, creates and large copies. A `busy` flag makes a second
 * thread's call on the same handle raise RuntimeError instead of racing, and
 * frame releases requested while the client is busy are queued and done when
 * the call returns.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "shmx.h"

/* Copies at least this big release the GIL. */
#define SHMX_PY_NOGIL_BYTES (256u * 1024u)
/* A blocking wait runs in slices this long so Ctrl-C and close() act. */
#define SHMX_PY_WAIT_SLICE_NS (50u * 1000u * 1000u)
/* Upper bound for poll_control(max_messages). */
#define SHMX_PY_POLL_MAX 65536

/* ---- exceptions --------------------------------------------------------- */

enum exc_id {
  X_BASE, X_NOTFOUND, X_EXISTS, X_PERM, X_CORRUPT, X_VERSION, X_CHECKSUM,
  X_CLOSED, X_DEAD, X_RESTARTED, X_REAPED, X_FULL, X_TIMEOUT, X_EXPIRED,
  X_NOFRAME, X_INVALID, X_NAME, X_STREAM, X_SIZE, X_CAPACITY, X_DUPLICATE,
  X_STATE, X_NOTOPEN, X_RINGFULL, X_BUSY, X_OS, X__COUNT
};

/* name, parent (X__COUNT = none), builtin base (may be NULL), doc */
typedef struct exc_def {
  const char *name;
  int parent;
  int builtin; /* 0 none, 1 FileNotFoundError, 2 FileExistsError,
                  3 PermissionError, 4 TimeoutError, 5 ValueError, 6 OSError */
  const char *doc;
} exc_def;

static const exc_def exc_defs[X__COUNT] = {
  [X_BASE] = {"ShmxError", X__COUNT, 0,
              "Base of every shmx error. Attributes: code (negative shmx "
              "error code), name (e.g. 'SHMX_E_NOCHANNEL'), detail."},
  [X_NOTFOUND] = {"ChannelNotFoundError", X_BASE, 1, "No such channel."},
  [X_EXISTS] = {"ChannelExistsError", X_BASE, 2,
                "The channel is owned by a live producer."},
  [X_PERM] = {"PermissionDeniedError", X_BASE, 3, "Permission denied."},
  [X_CORRUPT] = {"CorruptedError", X_BASE, 0,
                 "Segment corrupted or not a shmx channel."},
  [X_VERSION] = {"VersionError", X_CORRUPT, 0,
                 "Incompatible segment format version."},
  [X_CHECKSUM] = {"ChecksumError", X_CORRUPT, 0,
                  "Frame payload checksum mismatch."},
  [X_CLOSED] = {"ClosedError", X_BASE, 0,
                "The channel was closed by its producer, or the handle is "
                "closed."},
  [X_DEAD] = {"ProducerDeadError", X_BASE, 0, "The producer process died."},
  [X_RESTARTED] = {"ProducerRestartedError", X_BASE, 0,
                   "A new producer owns the channel name now; reopen."},
  [X_REAPED] = {"ReapedError", X_BASE, 0,
                "This reader was reaped by the producer; reopen."},
  [X_FULL] = {"ReadersFullError", X_BASE, 0, "All reader slots are taken."},
  [X_TIMEOUT] = {"ShmxTimeoutError", X_BASE, 4, "Timed out."},
  [X_EXPIRED] = {"FrameExpiredError", X_BASE, 0,
                 "The frame was overwritten while held."},
  [X_NOFRAME] = {"NoFrameError", X_BASE, 0, "No frame available."},
  [X_INVALID] = {"InvalidArgumentError", X_BASE, 5, "Invalid argument."},
  [X_NAME] = {"InvalidNameError", X_INVALID, 0,
              "Invalid channel or stream name."},
  [X_STREAM] = {"UnknownStreamError", X_INVALID, 0, "Unknown stream id."},
  [X_SIZE] = {"SizeMismatchError", X_INVALID, 0,
              "Byte count does not match element count x element size."},
  [X_CAPACITY] = {"CapacityError", X_INVALID, 0,
                  "Frame or schema capacity exceeded."},
  [X_DUPLICATE] = {"DuplicateError", X_INVALID, 0,
                   "Duplicate stream id or name."},
  [X_STATE] = {"StateError", X_BASE, 5,
               "Call not valid in the handle's current state."},
  [X_NOTOPEN] = {"NotOpenError", X_STATE, 0,
                 "The handle is not open (never opened, closed or "
                 "destroyed). Also a ClosedError."},
  [X_RINGFULL] = {"RingFullError", X_BASE, 0,
                  "Control ring full; try again later."},
  [X_BUSY] = {"BusyError", X_BASE, 0,
              "Frame kept changing while being read; try again."},
  [X_OS] = {"ShmxOSError", X_BASE, 6, "System call failure."},
};

static int exc_for_code(int code) {
  switch (code) {
  case SHMX_E_NOCHANNEL: case SHMX_E_ENOENT: return X_NOTFOUND;
  case SHMX_E_EXISTS: case SHMX_E_EEXIST: return X_EXISTS;
  case SHMX_E_EACCES: case SHMX_E_EPERM: return X_PERM;
  case SHMX_E_CORRUPT: return X_CORRUPT;
  case SHMX_E_VERSION: return X_VERSION;
  case SHMX_E_CHECKSUM: return X_CHECKSUM;
  case SHMX_E_CLOSED: return X_CLOSED;
  case SHMX_E_DEAD: return X_DEAD;
  case SHMX_E_RESTARTED: return X_RESTARTED;
  case SHMX_E_REAPED: return X_REAPED;
  case SHMX_E_FULL: return X_FULL;
  case SHMX_E_TIMEOUT: case SHMX_E_ETIMEDOUT: return X_TIMEOUT;
  case SHMX_E_EXPIRED: return X_EXPIRED;
  case SHMX_E_NOFRAME: return X_NOFRAME;
  case SHMX_E_ARG: case SHMX_E_OVERFLOW: case SHMX_E_EINVAL:
    return X_INVALID;
  case SHMX_E_NAME: case SHMX_E_ENAMETOOLONG: return X_NAME;
  case SHMX_E_STREAM: return X_STREAM;
  case SHMX_E_SIZE: return X_SIZE;
  case SHMX_E_CAPACITY: return X_CAPACITY;
  case SHMX_E_DUPLICATE: return X_DUPLICATE;
  case SHMX_E_STATE: return X_STATE;
  case SHMX_E_RINGFULL: return X_RINGFULL;
  case SHMX_E_BUSY: return X_BUSY;
  default:
    if (code < 0 && code > -4000) return X_OS;
    return X_BASE;
  }
}

/* ---- module state ------------------------------------------------------- */

typedef struct shmx_state {
  PyTypeObject *Server_Type;
  PyTypeObject *Client_Type;
  PyTypeObject *Inspector_Type;
  PyTypeObject *Frame_Type;
  PyTypeObject *Handle_Type;
  PyTypeObject *View_Type;
  PyObject *exc[X__COUNT];
  /* interned dict keys */
  PyObject *k_data, *k_elem_count, *k_bytes, *k_array, *k_metadata,
      *k_frame_id, *k_sim_time, *k_payload_bytes, *k_tlv_count, *k_frame;
} shmx_state;

static struct PyModuleDef shmx_module_def;

static shmx_state *state_from_type(PyTypeObject *tp) {
  PyObject *m = PyType_GetModuleByDef(tp, &shmx_module_def);
  if (m == NULL) return NULL;
  return (shmx_state *)PyModule_GetState(m);
}

/* Build (not raise) an exception instance for code with a message. */
static PyObject *make_error(shmx_state *st, int code, const char *what,
                            const char *detail) {
  int x = exc_for_code(code);
  PyObject *cls = st->exc[x];
  const char *msg = shmx_strerror(code);
  PyObject *text;
  if (detail != NULL && detail[0] != '\0') {
    if (what != NULL)
      text = PyUnicode_FromFormat("%s: %s (%s)", what, detail,
                                  shmx_err_name(code));
    else
      text = PyUnicode_FromFormat("%s (%s)", detail, shmx_err_name(code));
  } else if (what != NULL) {
    text = PyUnicode_FromFormat("%s: %s (%s)", what, msg, shmx_err_name(code));
  } else {
    text = PyUnicode_FromFormat("%s (%s)", msg, shmx_err_name(code));
  }
  if (text == NULL) return NULL;
  PyObject *exc;
  if (x == X_OS)
    exc = PyObject_CallFunction(cls, "iO", -code, text);
  else
    exc = PyObject_CallOneArg(cls, text);
  Py_DECREF(text);
  if (exc == NULL) return NULL;
  PyObject *c = PyLong_FromLong(code);
  PyObject *dt = PyUnicode_FromString(detail ? detail : "");
  PyObject *nm = PyUnicode_FromString(shmx_err_name(code));
  int bad = c == NULL || dt == NULL || nm == NULL ||
            PyObject_SetAttrString(exc, "code", c) < 0 ||
            PyObject_SetAttrString(exc, "detail", dt) < 0 ||
            PyObject_SetAttrString(exc, "name", nm) < 0;
  Py_XDECREF(c);
  Py_XDECREF(dt);
  Py_XDECREF(nm);
  if (bad) {
    Py_DECREF(exc);
    return NULL;
  }
  return exc;
}

/* Raise for code; detail is typically shmx_errmsg() captured right after the
 * failing call. Returns NULL. */
static PyObject *raise_code(shmx_state *st, int code, const char *what,
                            const char *detail) {
  PyObject *exc = make_error(st, code, what, detail);
  if (exc == NULL) return NULL;
  PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
  Py_DECREF(exc);
  return NULL;
}

static PyObject *raise_last(shmx_state *st, int code, const char *what) {
  return raise_code(st, code, what, shmx_errmsg());
}

/* Misuse that is not a core error: raise the given class with code ARG. */
static PyObject *raise_misuse(shmx_state *st, int x, const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  PyObject *text = PyUnicode_FromString(buf);
  if (text == NULL) return NULL;
  PyObject *exc = PyObject_CallOneArg(st->exc[x], text);
  Py_DECREF(text);
  if (exc == NULL) return NULL;
  int code = x == X_NAME ? SHMX_E_NAME
           : x == X_STREAM ? SHMX_E_STREAM
           : x == X_SIZE ? SHMX_E_SIZE
           : x == X_DUPLICATE ? SHMX_E_DUPLICATE
           : x == X_STATE || x == X_NOTOPEN ? SHMX_E_STATE
           : x == X_CAPACITY ? SHMX_E_CAPACITY : SHMX_E_ARG;
  PyObject *c = PyLong_FromLong(code);
  PyObject *nm = PyUnicode_FromString(shmx_err_name(code));
  PyObject *dt = PyUnicode_FromString(buf);
  if (c && nm && dt) {
    PyObject_SetAttrString(exc, "code", c);
    PyObject_SetAttrString(exc, "name", nm);
    PyObject_SetAttrString(exc, "detail", dt);
  }
  Py_XDECREF(c);
  Py_XDECREF(nm);
  Py_XDECREF(dt);
  if (PyErr_Occurred()) {
    Py_DECREF(exc);
    return NULL;
  }
  PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
  Py_DECREF(exc);
  return NULL;
}

/* ---- argument helpers --------------------------------------------------- */

static int conv_u64(PyObject *o, const char *what, uint64_t *out) {
  if (PyBool_Check(o) || PyFloat_Check(o)) {
    PyErr_Format(PyExc_TypeError, "%s must be an int, not %.100s", what,
                 Py_TYPE(o)->tp_name);
    return -1;
  }
  PyObject *i = PyNumber_Index(o);
  if (i == NULL) {
    if (PyErr_ExceptionMatches(PyExc_TypeError)) {
      PyErr_Clear();
      PyErr_Format(PyExc_TypeError, "%s must be an int, not %.100s", what,
                   Py_TYPE(o)->tp_name);
    }
    return -1;
  }
  unsigned long long v = PyLong_AsUnsignedLongLong(i);
  if (v == (unsigned long long)-1 && PyErr_Occurred()) {
    PyErr_Clear();
    long long sv = PyLong_AsLongLong(i);
    Py_DECREF(i);
    if (sv < 0 && !PyErr_Occurred())
      PyErr_Format(PyExc_ValueError, "%s must be >= 0", what);
    else {
      PyErr_Clear();
      PyErr_Format(PyExc_ValueError, "%s is too large", what);
    }
    return -1;
  }
  Py_DECREF(i);
  *out = (uint64_t)v;
  return 0;
}

static int conv_u32(PyObject *o, const char *what, uint32_t *out) {
  uint64_t v;
  if (conv_u64(o, what, &v) < 0) return -1;
  if (v > UINT32_MAX) {
    PyErr_Format(PyExc_ValueError, "%s must be in 0..4294967295", what);
    return -1;
  }
  *out = (uint32_t)v;
  return 0;
}

/* Channel name: str without NUL; validated by the core too. */
static const char *conv_name(shmx_state *st, PyObject *o) {
  if (!PyUnicode_Check(o)) {
    PyErr_Format(PyExc_TypeError, "name must be str, not %.100s",
                 Py_TYPE(o)->tp_name);
    return NULL;
  }
  Py_ssize_t n;
  const char *s = PyUnicode_AsUTF8AndSize(o, &n);
  if (s == NULL) return NULL;
  if ((Py_ssize_t)strlen(s) != n || shmx_name_check(s) != 0) {
    PyObject *r = PyObject_Repr(o);
    if (r == NULL) return NULL;
    const char *rs = PyUnicode_AsUTF8(r);
    raise_misuse(st, X_NAME,
                 "invalid channel name %.300s: use 1-%d chars of [A-Za-z0-9._-]",
                 rs ? rs : "?", SHMX_NAME_MAX);
    Py_DECREF(r);
    return NULL;
  }
  return s;
}

/* Tiny vectorcall argument parser: positional then keywords by name.
 * out[] gets borrowed references (NULL when absent). */
static int parse_args(const char *fname, PyObject *const *args,
                      Py_ssize_t nargs, PyObject *kwnames,
                      const char *const *names, int nreq, int ntotal,
                      PyObject **out) {
  for (int i = 0; i < ntotal; i++) out[i] = NULL;
  if (nargs > ntotal) {
    PyErr_Format(PyExc_TypeError, "%s() takes at most %d arguments (%zd given)",
                 fname, ntotal, nargs);
    return -1;
  }
  for (Py_ssize_t i = 0; i < nargs; i++) out[i] = args[i];
  if (kwnames != NULL) {
    Py_ssize_t nk = PyTuple_GET_SIZE(kwnames);
    for (Py_ssize_t k = 0; k < nk; k++) {
      PyObject *key = PyTuple_GET_ITEM(kwnames, k);
      int found = 0;
      for (int i = 0; i < ntotal; i++) {
        if (PyUnicode_CompareWithASCIIString(key, names[i]) == 0) {
          if (out[i] != NULL) {
            PyErr_Format(PyExc_TypeError,
                         "%s() got multiple values for argument '%s'", fname,
                         names[i]);
            return -1;
          }
          out[i] = args[nargs + k];
          found = 1;
          break;
        }
      }
      if (!found) {
        PyErr_Format(PyExc_TypeError,
                     "%s() got an unexpected keyword argument '%U'", fname,
                     key);
        return -1;
      }
    }
  }
  for (int i = 0; i < nreq; i++) {
    if (out[i] == NULL) {
      PyErr_Format(PyExc_TypeError, "%s() missing required argument '%s'",
                   fname, names[i]);
      return -1;
    }
  }
  return 0;
}

/* ---- dict helpers ------------------------------------------------------- */

static int dset(PyObject *d, const char *k, PyObject *v) {
  if (v == NULL) return -1;
  int r = PyDict_SetItemString(d, k, v);
  Py_DECREF(v);
  return r;
}
#define DSET_U64(d, k, v) dset((d), (k), PyLong_FromUnsignedLongLong((v)))
#define DSET_I64(d, k, v) dset((d), (k), PyLong_FromLongLong((v)))

static PyObject *header_dict(const shmx_header_info *h) {
  PyObject *d = PyDict_New();
  if (d == NULL) return NULL;
  if (DSET_U64(d, "magic", h->magic) < 0 ||
      DSET_U64(d, "version_major", h->version_major) < 0 ||
      DSET_U64(d, "version_minor", h->version_minor) < 0 ||
      DSET_U64(d, "session_id", h->session_id) < 0 ||
      DSET_U64(d, "slots", h->slots) < 0 ||
      DSET_U64(d, "frame_bytes_cap", h->frame_bytes_cap) < 0 ||
      DSET_U64(d, "reader_slots", h->reader_slots) < 0 ||
      DSET_U64(d, "control_per_reader", h->control_per_reader) < 0 ||
      DSET_U64(d, "frame_seq", h->frame_seq) < 0 ||
      DSET_U64(d, "readers_connected", h->readers_connected) < 0 ||
      DSET_U64(d, "static_bytes_cap", h->static_bytes_cap) < 0 ||
      DSET_U64(d, "static_bytes_used", h->static_bytes_used) < 0 ||
      DSET_U64(d, "static_gen", h->static_gen) < 0 ||
      DSET_U64(d, "slot_bytes", h->slot_bytes) < 0 ||
      DSET_U64(d, "total_bytes", h->total_bytes) < 0 ||
      DSET_I64(d, "owner_pid", h->owner_pid) < 0 ||
      dset(d, "owner_alive",
           h->owner_alive < 0 ? Py_NewRef(Py_None)
                              : PyBool_FromLong(h->owner_alive)) < 0 ||
      dset(d, "closed", PyBool_FromLong(h->closed)) < 0 ||
      DSET_U64(d, "flags", h->flags) < 0 ||
      DSET_U64(d, "last_publish_ns", h->last_publish_ns) < 0 ||
      DSET_U64(d, "create_ns", h->create_ns) < 0) {
    Py_DECREF(d);
    return NULL;
  }
  return d;
}

static PyObject *streams_list(const shmx_stream_info *s, int n) {
  PyObject *l = PyList_New(0);
  if (l == NULL) return NULL;
  for (int i = 0; i < n; i++) {
    PyObject *d = PyDict_New();
    if (d == NULL) goto fail;
    if (DSET_U64(d, "id", s[i].id) < 0 ||
        dset(d, "name",
             PyUnicode_DecodeUTF8(s[i].name, (Py_ssize_t)strlen(s[i].name),
                                  "replace")) < 0 ||
        dset(d, "dtype", PyUnicode_FromString(shmx_dtype_name(s[i].dtype))) <
            0 ||
        DSET_U64(d, "dtype_code", s[i].dtype) < 0 ||
        DSET_U64(d, "components", s[i].components) < 0 ||
        dset(d, "layout",
             PyUnicode_FromString(shmx_layout_name(s[i].layout))) < 0 ||
        DSET_U64(d, "layout_code", s[i].layout) < 0 ||
        DSET_U64(d, "bytes_per_elem", s[i].bytes_per_elem) < 0 ||
        (s[i].extra_len > 0 &&
         dset(d, "extra",
              PyBytes_FromStringAndSize((const char *)s[i].extra,
                                        (Py_ssize_t)s[i].extra_len)) < 0) ||
        PyList_Append(l, d) < 0) {
      Py_DECREF(d);
      goto fail;
    }
    Py_DECREF(d);
  }
  return l;
fail:
  Py_DECREF(l);
  return NULL;
}

static PyObject *readers_list(const shmx_reader_info *r, int n) {
  PyObject *l = PyList_New(0);
  if (l == NULL) return NULL;
  for (int i = 0; i < n; i++) {
    PyObject *d = PyDict_New();
    if (d == NULL) goto fail;
    if (DSET_U64(d, "reader_id", r[i].reader_id) < 0 ||
        DSET_U64(d, "heartbeat", r[i].heartbeat_ns) < 0 ||
        DSET_U64(d, "last_frame_seen", r[i].last_frame_seen) < 0 ||
        dset(d, "in_use", PyBool_FromLong(r[i].in_use)) < 0 ||
        DSET_U64(d, "slot", r[i].slot) < 0 ||
        dset(d, "alive",
             r[i].alive < 0 ? Py_NewRef(Py_None) : PyBool_FromLong(r[i].alive)) <
            0 ||
        DSET_I64(d, "pid", r[i].pid) < 0 ||
        DSET_U64(d, "frames_read", r[i].frames_read) < 0 ||
        DSET_U64(d, "frames_dropped", r[i].frames_dropped) < 0 ||
        DSET_U64(d, "generation", r[i].generation) < 0 ||
        PyList_Append(l, d) < 0) {
      Py_DECREF(d);
      goto fail;
    }
    Py_DECREF(d);
  }
  return l;
fail:
  Py_DECREF(l);
  return NULL;
}

/* Struct format of one scalar of a dtype; NULL if none (bf16, unknown). */
static const char *dtype_format(uint32_t dtype) {
  switch (dtype) {
  case SHMX_DT_BOOL: return "?";
  case SHMX_DT_I8: return "b";
  case SHMX_DT_U8: return "B";
  case SHMX_DT_I16: return "h";
  case SHMX_DT_U16: return "H";
  case SHMX_DT_I32: return "i";
  case SHMX_DT_U32: return "I";
  case SHMX_DT_I64: return "q";
  case SHMX_DT_U64: return "Q";
  case SHMX_DT_F16: return "e";
  case SHMX_DT_BF16: return "H"; /* raw bits: no struct code for bfloat16 */
  case SHMX_DT_F32: return "f";
  case SHMX_DT_F64: return "d";
  default: return NULL;
  }
}

/* ---- fork guard -------------------------------------------------------- */

/* Bumped in the child after fork(). A handle made before the fork belongs to
 * the parent: in the child its methods raise and its destruction leaves the
 * channel alone (closing it there would release the parent's reader slot or
 * unlink the parent's channel). Checked with an integer compare, no syscall. */
static volatile unsigned long shmx_fork_gen = 0;
static void shmx_on_fork_child(void) { shmx_fork_gen++; }
#define FORKED(gen) ((gen) != shmx_fork_gen)

/* ========================================================================= */
/* Client core: the shmx_client* shared by a Client and its Frames.          */
/* ========================================================================= */

typedef struct ccore {
  shmx_client *cl;
  Py_ssize_t refs;
  int busy;             /* a call runs with the GIL released */
  shmx_frame *pending;  /* releases deferred while busy */
  int npending, cappending;
  unsigned long fork_gen; /* shmx_fork_gen when opened */
} ccore;

static ccore *ccore_new(shmx_client *cl) {
  ccore *c = PyMem_Calloc(1, sizeof *c);
  if (c == NULL) {
    PyErr_NoMemory();
    return NULL;
  }
  c->cl = cl;
  c->refs = 1;
  c->fork_gen = shmx_fork_gen;
  return c;
}

static void ccore_flush(ccore *c) {
  for (int i = 0; i < c->npending; i++)
    shmx_frame_release(c->cl, &c->pending[i]);
  c->npending = 0;
}

static void ccore_decref(ccore *c) {
  if (c == NULL) return;
  if (--c->refs > 0) return;
  if (!FORKED(c->fork_gen)) {
    ccore_flush(c);
    shmx_client_close(c->cl);
  } /* else: the parent's reader; leave it (the child's copy leaks) */
  PyMem_Free(c->pending);
  PyMem_Free(c);
}

/* Release f now or, if the core is busy in another thread, later. */
static void ccore_release_frame(ccore *c, shmx_frame *f) {
  if (FORKED(c->fork_gen)) return;
  if (!c->busy) {
    shmx_frame_release(c->cl, f);
    return;
  }
  if (c->npending == c->cappending) {
    int ncap = c->cappending ? c->cappending * 2 : 8;
    shmx_frame *p = PyMem_Realloc(c->pending, (size_t)ncap * sizeof *p);
    if (p == NULL) return; /* the pin leaks until close: no crash */
    c->pending = p;
    c->cappending = ncap;
  }
  c->pending[c->npending++] = *f;
}

/* ========================================================================= */
/* Frame                                                                     */
/* ========================================================================= */

typedef struct fstream {
  PyObject *name; /* str, owned */
  const uint8_t *data;
  uint64_t bytes, elem_count;
  uint32_t id, dtype, components, bytes_per_elem;
} fstream;

typedef struct FrameObject {
  PyObject_VAR_HEAD
  shmx_state *st;
  ccore *core;
  shmx_frame f;
  int held;
  Py_ssize_t exports;
  fstream s[1];
} FrameObject;

static void frame_release_pin(FrameObject *fr) {
  if (fr->held) {
    fr->held = 0;
    ccore_release_frame(fr->core, &fr->f);
  }
}

static void Frame_dealloc(FrameObject *self) {
  PyTypeObject *tp = Py_TYPE(self);
  frame_release_pin(self);
  for (Py_ssize_t i = 0; i < Py_SIZE(self); i++) Py_XDECREF(self->s[i].name);
  ccore_decref(self->core);
  tp->tp_free(self);
  Py_DECREF(tp);
}

/* View: buffer exporter over a stream of a Frame or reserved Server space. */
typedef struct ServerObject ServerObject;

typedef struct ViewObject {
  PyObject_HEAD
  PyObject *owner;    /* FrameObject* or ServerObject* */
  int is_server;
  uint64_t gen;       /* server frame generation the space belongs to */
  uint8_t *data;
  Py_ssize_t len;
  const char *format;
  Py_ssize_t itemsize;
  int ndim;
  Py_ssize_t shape[2];
  Py_ssize_t strides[2];
  int readonly;
  int raw_mode;       /* export as flat bytes (used while making 'data') */
  Py_ssize_t raw_shape[1], raw_strides[1];
  PyObject *name;     /* stream name or NULL */
} ViewObject;

static uint8_t empty_bytes[64];

static PyObject *view_new(shmx_state *st, PyObject *owner, int is_server,
                          const uint8_t *data, uint64_t bytes,
                          uint64_t elem_count, uint32_t dtype,
                          uint32_t components, uint32_t bpe, int typed,
                          int readonly, PyObject *name) {
  ViewObject *v = PyObject_New(ViewObject, st->View_Type);
  if (v == NULL) return NULL;
  v->owner = Py_NewRef(owner);
  v->is_server = is_server;
  v->gen = 0;
  v->data = data ? (uint8_t *)data : empty_bytes;
  v->len = (Py_ssize_t)bytes;
  v->readonly = readonly;
  v->raw_mode = 0;
  v->raw_shape[0] = (Py_ssize_t)bytes;
  v->raw_strides[0] = 1;
  v->name = Py_XNewRef(name);
  const char *fmt = typed ? dtype_format(dtype) : NULL;
  uint32_t isz = fmt ? shmx_dtype_size(dtype) : 0;
  if (fmt != NULL && components >= 1 && (uint64_t)isz * components == bpe &&
      (uint64_t)elem_count * bpe == bytes) {
    v->format = fmt;
    v->itemsize = isz;
    if (components == 1) {
      v->ndim = 1;
      v->shape[0] = (Py_ssize_t)elem_count;
      v->strides[0] = isz;
    } else {
      v->ndim = 2;
      v->shape[0] = (Py_ssize_t)elem_count;
      v->shape[1] = (Py_ssize_t)components;
      v->strides[0] = (Py_ssize_t)bpe;
      v->strides[1] = isz;
    }
  } else if (typed && bpe > 1 && (uint64_t)elem_count * bpe == bytes) {
    /* unknown dtype: one row of bytes per element */
    v->format = "B";
    v->itemsize = 1;
    v->ndim = 2;
    v->shape[0] = (Py_ssize_t)elem_count;
    v->shape[1] = (Py_ssize_t)bpe;
    v->strides[0] = (Py_ssize_t)bpe;
    v->strides[1] = 1;
  } else {
    v->format = "B";
    v->itemsize = 1;
    v->ndim = 1;
    v->shape[0] = (Py_ssize_t)bytes;
    v->strides[0] = 1;
  }
  return (PyObject *)v;
}

static void View_dealloc(ViewObject *self) {
  PyTypeObject *tp = Py_TYPE(self);
  Py_XDECREF(self->owner);
  Py_XDECREF(self->name);
  PyObject_Free(self);
  Py_DECREF(tp);
}

struct ServerObject {
  PyObject_HEAD
  shmx_state *st;
  shmx_server *srv;
  int busy;
  int in_frame;
  uint64_t gen;
  Py_ssize_t wexports;
  uint64_t last_frame_id;
  uint64_t corrupt_rings;
  PyObject *last_error;
  PyObject *name;
  unsigned long fork_gen; /* shmx_fork_gen when created */
};

static int View_getbuffer(ViewObject *self, Py_buffer *view, int flags) {
  if (self->is_server) {
    ServerObject *s = (ServerObject *)self->owner;
    if (s->srv == NULL || !s->in_frame || s->gen != self->gen) {
      PyErr_SetString(PyExc_BufferError,
                      "reserved space is gone: its frame was published, "
                      "aborted or the server destroyed");
      return -1;
    }
  } else {
    FrameObject *fr = (FrameObject *)self->owner;
    if (!fr->held) {
      PyErr_SetString(PyExc_BufferError, "frame was released");
      return -1;
    }
  }
  if ((flags & PyBUF_WRITABLE) && self->readonly) {
    PyErr_SetString(PyExc_BufferError, "shmx frame views are read-only");
    return -1;
  }
  view->buf = self->data;
  view->obj = Py_NewRef((PyObject *)self);
  view->len = self->len;
  view->readonly = self->readonly;
  view->itemsize = self->itemsize;
  view->format = (flags & PyBUF_FORMAT) ? (char *)self->format : NULL;
  view->suboffsets = NULL;
  view->internal = NULL;
  if (self->raw_mode) {
    /* flat bytes; these fields never change, so a memoryview made in this
       mode stays consistent after the mode flips back to typed */
    view->itemsize = 1;
    view->format = (flags & PyBUF_FORMAT) ? "B" : NULL;
    view->ndim = 1;
    view->shape = (flags & PyBUF_ND) ? self->raw_shape : NULL;
    view->strides = (flags & PyBUF_STRIDES) == PyBUF_STRIDES ? self->raw_strides : NULL;
  } else if (flags & PyBUF_ND) {
    view->ndim = self->ndim;
    view->shape = self->shape;
    view->strides = (flags & PyBUF_STRIDES) == PyBUF_STRIDES ? self->strides
                                                             : NULL;
  } else {
    /* PyBUF_SIMPLE: plain bytes */
    view->ndim = 1;
    view->shape = NULL;
    view->strides = NULL;
    view->itemsize = 1;
    view->format = NULL;
  }
  if (self->is_server)
    ((ServerObject *)self->owner)->wexports++;
  else
    ((FrameObject *)self->owner)->exports++;
  return 0;
}

static void View_releasebuffer(ViewObject *self, Py_buffer *view) {
  (void)view;
  if (self->is_server)
    ((ServerObject *)self->owner)->wexports--;
  else
    ((FrameObject *)self->owner)->exports--;
}

static PyObject *View_tobytes(ViewObject *self, PyObject *unused) {
  (void)unused;
  if (self->is_server) {
    ServerObject *s = (ServerObject *)self->owner;
    if (s->srv == NULL || !s->in_frame || s->gen != self->gen) {
      PyErr_SetString(PyExc_ValueError, "reserved space is gone");
      return NULL;
    }
  } else if (!((FrameObject *)self->owner)->held) {
    PyErr_SetString(PyExc_ValueError, "frame was released");
    return NULL;
  }
  if ((size_t)self->len < SHMX_PY_NOGIL_BYTES)
    return PyBytes_FromStringAndSize((const char *)self->data, self->len);
  /* big copy without the GIL; count it as an export meanwhile so the frame
     cannot be released nor the server destroyed under it */
  PyObject *b = PyBytes_FromStringAndSize(NULL, self->len);
  if (b == NULL) return NULL;
  Py_ssize_t *cnt = self->is_server ? &((ServerObject *)self->owner)->wexports
                                    : &((FrameObject *)self->owner)->exports;
  (*cnt)++;
  char *dst = PyBytes_AS_STRING(b);
  Py_BEGIN_ALLOW_THREADS
  memcpy(dst, self->data, (size_t)self->len);
  Py_END_ALLOW_THREADS
  (*cnt)--;
  return b;
}

static PyObject *View_memoryview(ViewObject *self, PyObject *unused) {
  (void)unused;
  return PyMemoryView_FromObject((PyObject *)self);
}

static PyObject *View_get_shape(ViewObject *self, void *c) {
  (void)c;
  if (self->ndim == 1) return Py_BuildValue("(n)", self->shape[0]);
  return Py_BuildValue("(nn)", self->shape[0], self->shape[1]);
}
static PyObject *View_get_format(ViewObject *self, void *c) {
  (void)c;
  return PyUnicode_FromString(self->format);
}
static PyObject *View_get_nbytes(ViewObject *self, void *c) {
  (void)c;
  return PyLong_FromSsize_t(self->len);
}
static PyObject *View_get_readonly(ViewObject *self, void *c) {
  (void)c;
  return PyBool_FromLong(self->readonly);
}
static PyObject *View_get_name(ViewObject *self, void *c) {
  (void)c;
  return Py_NewRef(self->name ? self->name : Py_None);
}
static Py_ssize_t View_len(ViewObject *self) { return self->shape[0]; }

static PyObject *View_repr(ViewObject *self) {
  PyObject *shape = View_get_shape(self, NULL);
  if (shape == NULL) return NULL;
  PyObject *r = PyUnicode_FromFormat(
      "<shmx.View %R format='%s' shape=%R%s>", self->name ? self->name : Py_None,
      self->format, shape, self->readonly ? " read-only" : " writable");
  Py_DECREF(shape);
  return r;
}

static PyMethodDef View_methods[] = {
  {"tobytes", (PyCFunction)View_tobytes, METH_NOARGS,
   "tobytes() -> bytes\n\nCopy the view's bytes."},
  {"memoryview", (PyCFunction)View_memoryview, METH_NOARGS,
   "memoryview() -> memoryview\n\nA typed memoryview (format and shape)."},
  {NULL, NULL, 0, NULL}
};
static PyGetSetDef View_getset[] = {
  {"shape", (getter)View_get_shape, NULL, "(elements,) or (elements, components)", NULL},
  {"format", (getter)View_get_format, NULL, "struct format of one scalar", NULL},
  {"nbytes", (getter)View_get_nbytes, NULL, "size in bytes", NULL},
  {"readonly", (getter)View_get_readonly, NULL, "True for reader views", NULL},
  {"name", (getter)View_get_name, NULL, "stream name", NULL},
  {NULL, NULL, NULL, NULL, NULL}
};

static PyType_Slot View_slots[] = {
  {Py_tp_dealloc, View_dealloc},
  {Py_tp_repr, View_repr},
  {Py_tp_methods, View_methods},
  {Py_tp_getset, View_getset},
  {Py_sq_length, View_len},
  {Py_bf_getbuffer, View_getbuffer},
  {Py_bf_releasebuffer, View_releasebuffer},
  {Py_tp_doc, "View(...)\n\nZero-copy buffer over one stream of a frame (read-only, "
              "typed: numpy.asarray(view) gives an array of the stream's dtype and "
              "shape) or over reserved space of a producer's frame (writable). "
              "Not constructible from Python."},
  {0, NULL}
};
static PyType_Spec View_spec = {
  "shmx.View", sizeof(ViewObject), 0,
  Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
  View_slots
};

/* -- Frame methods -- */

static Py_ssize_t frame_find(FrameObject *self, PyObject *key) {
  if (PyUnicode_Check(key)) {
    for (Py_ssize_t i = 0; i < Py_SIZE(self); i++) {
      int eq = PyUnicode_Compare(self->s[i].name, key);
      if (eq == 0) return i;
      if (eq == -1 && PyErr_Occurred()) return -2;
    }
  } else if (PyLong_Check(key)) {
    uint64_t id;
    if (conv_u64(key, "stream id", &id) < 0) {
      PyErr_Clear();
      return -1;
    }
    for (Py_ssize_t i = 0; i < Py_SIZE(self); i++)
      if (self->s[i].id == id) return i;
  }
  return -1;
}

static int frame_check_held(FrameObject *self) {
  if (!self->held) {
    raise_misuse(self->st, X_STATE, "frame was released");
    return -1;
  }
  return 0;
}

static PyObject *frame_stream_view(FrameObject *self, Py_ssize_t i, int typed) {
  fstream *s = &self->s[i];
  return view_new(self->st, (PyObject *)self, 0, s->data, s->bytes,
                  s->elem_count, s->dtype, s->components, s->bytes_per_elem,
                  typed, 1, s->name);
}

static PyObject *Frame_getitem(FrameObject *self, PyObject *key) {
  if (frame_check_held(self) < 0) return NULL;
  Py_ssize_t i = frame_find(self, key);
  if (i == -2) return NULL;
  if (i < 0) {
    PyErr_SetObject(PyExc_KeyError, key);
    return NULL;
  }
  return frame_stream_view(self, i, 1);
}

static int Frame_contains(FrameObject *self, PyObject *key) {
  Py_ssize_t i = frame_find(self, key);
  if (i == -2) return -1;
  return i >= 0;
}

static Py_ssize_t Frame_len(FrameObject *self) { return Py_SIZE(self); }

static PyObject *Frame_raw(FrameObject *self, PyObject *key) {
  if (frame_check_held(self) < 0) return NULL;
  Py_ssize_t i = frame_find(self, key);
  if (i == -2) return NULL;
  if (i < 0) {
    PyErr_SetObject(PyExc_KeyError, key);
    return NULL;
  }
  PyObject *v = frame_stream_view(self, i, 0);
  if (v == NULL) return NULL;
  PyObject *mv = PyMemoryView_FromObject(v);
  Py_DECREF(v);
  return mv;
}

/* ---- the shmx 1.0.1 dict shape ---------------------------------------- *
 *
 * {'__metadata__': {'frame_id', 'sim_time', 'payload_bytes', 'tlv_count',
 *                   'frame'},
 *  '<stream name>': {'data': memoryview, 'elem_count', 'bytes', 'array'}, ...}
 *
 * A result record keeps strong references to every object of one such dict,
 * in insertion order, so that Client.get_latest_frame() can tell whether a
 * dict it handed out is back (only the record holds it) and untouched, and
 * then recycle it instead of building a new one:
 *   o[0] outer, o[1] metadata dict, o[2..6] frame_id, sim_time,
 *   payload_bytes, tlv_count, frame; then per stream i at REC_HEAD +
 *   REC_STREAM * i: name, stream dict, data, elem_count, bytes, array. */
#define REC_HEAD 7
#define REC_STREAM 6

typedef struct result_rec {
  PyObject **o; /* REC_HEAD + REC_STREAM * n strong references, or NULL */
  Py_ssize_t n; /* streams */
  uint64_t *ver; /* with DICT_VERSION: version tags of outer, metadata and
                    stream dicts (n + 2) after we last wrote them */
} result_rec;

/* CPython up to 3.11 gives every dict a version tag that changes on every
 * modification (PEP 509; deprecated in 3.12): a dict we recycle is
 * unmodified iff its tag is the one we saw. Elsewhere the contents are
 * compared entry by entry. */
#if PY_VERSION_HEX < 0x030C0000 && !defined(SHMX_NO_DICT_VERSION)
#define DICT_VERSION(d) (((PyDictObject *)(d))->ma_version_tag)
#endif

/* Forget a record: detach first, then drop the references (a dict the user
 * modified may run arbitrary __del__ code, which may call back into us). */
static void rec_clear(result_rec *r) {
  PyObject **o = r->o;
  Py_ssize_t n = REC_HEAD + REC_STREAM * r->n;
  PyMem_Free(r->ver);
  r->ver = NULL;
  r->o = NULL;
  r->n = 0;
  if (o == NULL) return;
  for (Py_ssize_t i = 0; i < n; i++) Py_XDECREF(o[i]);
  PyMem_Free(o);
}

/* 'data' (a flat memoryview) and 'array' (the typed view) of stream i: one
 * exporter serves both, the memoryview is made while it exports raw bytes. */
static int frame_stream_pair(FrameObject *fr, Py_ssize_t i, PyObject **mv, PyObject **arr) {
  *mv = NULL;
  *arr = frame_stream_view(fr, i, 1);
  if (*arr == NULL) return -1;
  ((ViewObject *)*arr)->raw_mode = 1;
  *mv = PyMemoryView_FromObject(*arr);
  ((ViewObject *)*arr)->raw_mode = 0;
  if (*mv == NULL) {
    Py_CLEAR(*arr);
    return -1;
  }
  return 0;
}

/* Store v (a new reference, stolen) under key in d, recording it in *slot. */
static int rec_put(PyObject *d, PyObject *key, PyObject **slot, PyObject *v) {
  if (v == NULL) return -1;
  if (PyDict_SetItem(d, key, v) < 0) {
    Py_DECREF(v);
    return -1;
  }
  Py_XSETREF(*slot, v);
  return 0;
}

/* Remember the version tags of r's dicts (after we wrote them). */
static void rec_seal(result_rec *r) {
#ifdef DICT_VERSION
  r->ver[0] = DICT_VERSION(r->o[0]);
  r->ver[1] = DICT_VERSION(r->o[1]);
  for (Py_ssize_t i = 0; i < r->n; i++)
    r->ver[2 + i] = DICT_VERSION(r->o[REC_HEAD + REC_STREAM * i + 1]);
#else
  (void)r;
#endif
}

/* Build a new dict for fr into the empty record r. */
static int rec_build(FrameObject *fr, result_rec *r) {
  shmx_state *st = fr->st;
  Py_ssize_t n = Py_SIZE(fr);
  PyObject **o = PyMem_Calloc((size_t)(REC_HEAD + REC_STREAM * n), sizeof *o);
  uint64_t *ver = PyMem_Calloc((size_t)n + 2, sizeof *ver);
  if (o == NULL || ver == NULL) {
    PyMem_Free(o);
    PyMem_Free(ver);
    PyErr_NoMemory();
    return -1;
  }
  r->o = o;
  r->n = n;
  r->ver = ver;
  if ((o[0] = PyDict_New()) == NULL || (o[1] = PyDict_New()) == NULL ||
      PyDict_SetItem(o[0], st->k_metadata, o[1]) < 0 ||
      rec_put(o[1], st->k_frame_id, &o[2], PyLong_FromUnsignedLongLong(fr->f.frame_id)) < 0 ||
      rec_put(o[1], st->k_sim_time, &o[3], PyFloat_FromDouble(fr->f.sim_time)) < 0 ||
      rec_put(o[1], st->k_payload_bytes, &o[4],
              PyLong_FromUnsignedLongLong(fr->f.payload_bytes)) < 0 ||
      rec_put(o[1], st->k_tlv_count, &o[5], PyLong_FromUnsignedLong(fr->f.tlv_count)) < 0 ||
      rec_put(o[1], st->k_frame, &o[6], Py_NewRef((PyObject *)fr)) < 0)
    goto fail;
  for (Py_ssize_t i = 0; i < n; i++) {
    PyObject **so = o + REC_HEAD + REC_STREAM * i;
    PyObject *mv, *arr;
    so[0] = Py_NewRef(fr->s[i].name);
    if ((so[1] = PyDict_New()) == NULL || frame_stream_pair(fr, i, &mv, &arr) < 0)
      goto fail;
    if (rec_put(so[1], st->k_data, &so[2], mv) < 0) {
      Py_DECREF(arr);
      goto fail;
    }
    if (rec_put(so[1], st->k_elem_count, &so[3],
                PyLong_FromUnsignedLongLong(fr->s[i].elem_count)) < 0 ||
        rec_put(so[1], st->k_bytes, &so[4], PyLong_FromUnsignedLongLong(fr->s[i].bytes)) < 0) {
      Py_DECREF(arr);
      goto fail;
    }
    if (rec_put(so[1], st->k_array, &so[5], arr) < 0 ||
        PyDict_SetItem(o[0], so[0], so[1]) < 0)
      goto fail;
  }
  rec_seal(r);
  return 0;
fail:
  rec_clear(r);
  return -1;
}

static PyObject *frame_to_dict(FrameObject *self) {
  result_rec r = {NULL, 0, NULL};
  if (rec_build(self, &r) < 0) return NULL;
  PyObject *d = Py_NewRef(r.o[0]);
  rec_clear(&r);
  return d;
}

/* The next item of d (from *pos) is exactly (k, v), by identity. */
static int dict_next_is(PyObject *d, Py_ssize_t *pos, PyObject *k, PyObject *v) {
  PyObject *dk, *dv;
  return PyDict_Next(d, pos, &dk, &dv) && dk == k && dv == v;
}

/* 1 if only the record refers to r's dicts (whoever got the dict has let it
 * go, and kept none of its inner dicts) and every dict still holds exactly
 * what was put there, in the same order: it can be recycled unobserved. */
static int rec_idle(shmx_state *st, const result_rec *r) {
  PyObject **o = r->o;
  if (o == NULL || Py_REFCNT(o[0]) != 1 || Py_REFCNT(o[1]) != 2) return 0;
#ifdef DICT_VERSION
  (void)st;
  if (DICT_VERSION(o[0]) != r->ver[0] || DICT_VERSION(o[1]) != r->ver[1]) return 0;
  for (Py_ssize_t i = 0; i < r->n; i++) {
    PyObject *e = o[REC_HEAD + REC_STREAM * i + 1];
    if (Py_REFCNT(e) != 2 || DICT_VERSION(e) != r->ver[2 + i]) return 0;
  }
  return 1;
#else
  Py_ssize_t p = 0;
  if (PyDict_GET_SIZE(o[0]) != r->n + 1 || !dict_next_is(o[0], &p, st->k_metadata, o[1]))
    return 0;
  for (Py_ssize_t i = 0; i < r->n; i++) {
    PyObject **so = o + REC_HEAD + REC_STREAM * i;
    if (!dict_next_is(o[0], &p, so[0], so[1])) return 0;
  }
  p = 0;
  if (PyDict_GET_SIZE(o[1]) != 5 || !dict_next_is(o[1], &p, st->k_frame_id, o[2]) ||
      !dict_next_is(o[1], &p, st->k_sim_time, o[3]) ||
      !dict_next_is(o[1], &p, st->k_payload_bytes, o[4]) ||
      !dict_next_is(o[1], &p, st->k_tlv_count, o[5]) ||
      !dict_next_is(o[1], &p, st->k_frame, o[6]))
    return 0;
  for (Py_ssize_t i = 0; i < r->n; i++) {
    PyObject **so = o + REC_HEAD + REC_STREAM * i;
    p = 0;
    if (Py_REFCNT(so[1]) != 2 || PyDict_GET_SIZE(so[1]) != 4 ||
        !dict_next_is(so[1], &p, st->k_data, so[2]) ||
        !dict_next_is(so[1], &p, st->k_elem_count, so[3]) ||
        !dict_next_is(so[1], &p, st->k_bytes, so[4]) ||
        !dict_next_is(so[1], &p, st->k_array, so[5]))
      return 0;
  }
  return 1;
#endif
}

/* 1 if no 'data' memoryview of r was released by its holder. */
static int rec_views_live(const result_rec *r) {
#ifdef _Py_MEMORYVIEW_RELEASED
  for (Py_ssize_t i = 0; i < r->n; i++) {
    PyObject *mv = r->o[REC_HEAD + REC_STREAM * i + 2];
    if (((PyMemoryViewObject *)mv)->flags & _Py_MEMORYVIEW_RELEASED) return 0;
  }
  return 1;
#else
  (void)r;
  return 0;
#endif
}

/* Replace an int value unless it already holds v. */
static int rec_put_u64(PyObject *d, PyObject *key, PyObject **slot, uint64_t v) {
  unsigned long long cur = PyLong_AsUnsignedLongLong(*slot);
  if (cur == (unsigned long long)v && !PyErr_Occurred()) return 0;
  PyErr_Clear();
  return rec_put(d, key, slot, PyLong_FromUnsignedLongLong(v));
}

/* Refill the idle record r with frame fr, in place: the dicts keep their
 * keys and order, only values change. r must have fr's stream names in fr's
 * order. On failure r is cleared. */
static int rec_refill(FrameObject *fr, result_rec *r) {
  shmx_state *st = fr->st;
  PyObject **o = r->o;
  if (rec_put(o[1], st->k_frame_id, &o[2], PyLong_FromUnsignedLongLong(fr->f.frame_id)) < 0 ||
      rec_put(o[1], st->k_sim_time, &o[3], PyFloat_FromDouble(fr->f.sim_time)) < 0 ||
      rec_put_u64(o[1], st->k_payload_bytes, &o[4], fr->f.payload_bytes) < 0 ||
      rec_put_u64(o[1], st->k_tlv_count, &o[5], fr->f.tlv_count) < 0 ||
      rec_put(o[1], st->k_frame, &o[6], Py_NewRef((PyObject *)fr)) < 0)
    goto fail;
  for (Py_ssize_t i = 0; i < r->n; i++) {
    PyObject **so = o + REC_HEAD + REC_STREAM * i;
    PyObject *mv, *arr;
    if (frame_stream_pair(fr, i, &mv, &arr) < 0) goto fail;
    if (rec_put(so[1], st->k_data, &so[2], mv) < 0) {
      Py_DECREF(arr);
      goto fail;
    }
    if (rec_put(so[1], st->k_array, &so[5], arr) < 0 ||
        rec_put_u64(so[1], st->k_elem_count, &so[3], fr->s[i].elem_count) < 0 ||
        rec_put_u64(so[1], st->k_bytes, &so[4], fr->s[i].bytes) < 0)
      goto fail;
  }
  rec_seal(r);
  return 0;
fail:
  rec_clear(r);
  return -1;
}

/* r was built for a frame with fr's streams (same names, same order). */
static int rec_fits(const result_rec *r, const FrameObject *fr) {
  if (r->o == NULL || r->n != Py_SIZE(fr)) return 0;
  for (Py_ssize_t i = 0; i < r->n; i++)
    if (r->o[REC_HEAD + REC_STREAM * i] != fr->s[i].name) return 0;
  return 1;
}

static PyObject *Frame_to_dict(FrameObject *self, PyObject *unused) {
  (void)unused;
  if (frame_check_held(self) < 0) return NULL;
  return frame_to_dict(self);
}

static PyObject *Frame_release(FrameObject *self, PyObject *unused) {
  (void)unused;
  if (self->exports > 0) {
    PyErr_Format(PyExc_BufferError,
                 "cannot release frame %llu: %zd buffer export(s) still alive",
                 (unsigned long long)self->f.frame_id, self->exports);
    return NULL;
  }
  frame_release_pin(self);
  Py_RETURN_NONE;
}

static PyObject *Frame_enter(FrameObject *self, PyObject *unused) {
  (void)unused;
  return Py_NewRef(self);
}

static PyObject *Frame_exit(FrameObject *self, PyObject *args) {
  (void)args;
  if (self->exports == 0) frame_release_pin(self);
  Py_RETURN_FALSE;
}

static PyObject *Frame_keys(FrameObject *self, PyObject *unused) {
  (void)unused;
  PyObject *l = PyList_New(Py_SIZE(self));
  if (l == NULL) return NULL;
  for (Py_ssize_t i = 0; i < Py_SIZE(self); i++)
    PyList_SET_ITEM(l, i, Py_NewRef(self->s[i].name));
  return l;
}

static PyObject *Frame_iter(FrameObject *self) {
  PyObject *l = Frame_keys(self, NULL);
  if (l == NULL) return NULL;
  PyObject *it = PyObject_GetIter(l);
  Py_DECREF(l);
  return it;
}

static PyObject *Frame_get_valid(FrameObject *self, void *c) {
  (void)c;
  if (!self->held) Py_RETURN_FALSE;
  return PyBool_FromLong(shmx_frame_valid(self->core->cl, &self->f));
}
static PyObject *Frame_get_held(FrameObject *self, void *c) {
  (void)c;
  return PyBool_FromLong(self->held);
}
static PyObject *Frame_get_frame_id(FrameObject *self, void *c) {
  (void)c;
  return PyLong_FromUnsignedLongLong(self->f.frame_id);
}
static PyObject *Frame_get_sim_time(FrameObject *self, void *c) {
  (void)c;
  return PyFloat_FromDouble(self->f.sim_time);
}
static PyObject *Frame_get_publish_ns(FrameObject *self, void *c) {
  (void)c;
  return PyLong_FromUnsignedLongLong(self->f.publish_ns);
}
static PyObject *Frame_get_payload_bytes(FrameObject *self, void *c) {
  (void)c;
  return PyLong_FromUnsignedLongLong(self->f.payload_bytes);
}
static PyObject *Frame_get_dropped(FrameObject *self, void *c) {
  (void)c;
  return PyLong_FromUnsignedLongLong(self->f.dropped);
}
static PyObject *Frame_get_streams(FrameObject *self, void *c) {
  (void)c;
  PyObject *t = PyTuple_New(Py_SIZE(self));
  if (t == NULL) return NULL;
  for (Py_ssize_t i = 0; i < Py_SIZE(self); i++)
    PyTuple_SET_ITEM(t, i, Py_NewRef(self->s[i].name));
  return t;
}

static PyObject *Frame_repr(FrameObject *self) {
  PyObject *t = PyFloat_FromDouble(self->f.sim_time);
  if (t == NULL) return NULL;
  PyObject *r = PyUnicode_FromFormat(
      "<shmx.Frame id=%llu sim_time=%R streams=%zd dropped=%llu %s>",
      (unsigned long long)self->f.frame_id, t, Py_SIZE(self),
      (unsigned long long)self->f.dropped,
      !self->held ? "released"
      : shmx_frame_valid(self->core->cl, &self->f) ? "held" : "expired");
  Py_DECREF(t);
  return r;
}

static PyMethodDef Frame_methods[] = {
  {"to_dict", (PyCFunction)Frame_to_dict, METH_NOARGS,
   "to_dict() -> dict\n\nThe shmx 1.0.1 dict shape: '__metadata__' plus one "
   "entry per stream with 'data' (flat read-only memoryview), 'elem_count', "
   "'bytes' and 'array' (typed View)."},
  {"raw", (PyCFunction)Frame_raw, METH_O,
   "raw(name) -> memoryview\n\nFlat read-only byte view of a stream."},
  {"keys", (PyCFunction)Frame_keys, METH_NOARGS, "keys() -> list of stream names"},
  {"release", (PyCFunction)Frame_release, METH_NOARGS,
   "release()\n\nUnpin the frame now. Raises BufferError while views of it "
   "are exported. Dropping the last reference does the same."},
  {"__enter__", (PyCFunction)Frame_enter, METH_NOARGS, NULL},
  {"__exit__", (PyCFunction)Frame_exit, METH_VARARGS,
   "Release the frame if no view of it is exported."},
  {NULL, NULL, 0, NULL}
};
static PyGetSetDef Frame_getset[] = {
  {"frame_id", (getter)Frame_get_frame_id, NULL, "frame id (1, 2, ...)", NULL},
  {"sim_time", (getter)Frame_get_sim_time, NULL, "producer's sim_time", NULL},
  {"publish_ns", (getter)Frame_get_publish_ns, NULL,
   "CLOCK_MONOTONIC ns at publish (time.monotonic_ns units)", NULL},
  {"payload_bytes", (getter)Frame_get_payload_bytes, NULL, "sum of stream bytes", NULL},
  {"dropped", (getter)Frame_get_dropped, NULL,
   "frames skipped before this one (next_frame / wait_frame)", NULL},
  {"valid", (getter)Frame_get_valid, NULL,
   "True while the bytes are the ones published (False once released or "
   "overwritten because every slot was pinned)", NULL},
  {"held", (getter)Frame_get_held, NULL, "True until released", NULL},
  {"streams", (getter)Frame_get_streams, NULL, "tuple of stream names", NULL},
  {NULL, NULL, NULL, NULL, NULL}
};
static PyType_Slot Frame_slots[] = {
  {Py_tp_dealloc, Frame_dealloc},
  {Py_tp_repr, Frame_repr},
  {Py_tp_methods, Frame_methods},
  {Py_tp_getset, Frame_getset},
  {Py_tp_iter, Frame_iter},
  {Py_mp_subscript, Frame_getitem},
  {Py_mp_length, Frame_len},
  {Py_sq_contains, Frame_contains},
  {Py_tp_doc, "A frame held by a Client (its slot stays pinned until the Frame "
              "and every view of it are gone, or release()). frame['name'] is "
              "a typed read-only View; frame.raw('name') a flat memoryview."},
  {0, NULL}
};
static PyType_Spec Frame_spec = {
  "shmx.Frame", offsetof(FrameObject, s), sizeof(fstream),
  Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
  Frame_slots
};

/* ========================================================================= */
/* Client                                                                    */
/* ========================================================================= */

typedef struct sinfo {
  uint32_t id, dtype, components, bytes_per_elem;
} sinfo;

/* Two records: a loop `f = c.get_latest_frame()` still holds the previous
 * result while it asks for the next one. */
#define RESULT_POOL 2

typedef struct ClientObject {
  PyObject_HEAD
  shmx_state *st;
  ccore *core;        /* NULL when not open */
  PyObject *name;
  PyObject *names;    /* tuple of stream names, parallel to info */
  sinfo *info;
  Py_ssize_t ninfo;
  PyObject *last_error;
  PyObject *weakreflist;
  /* get_latest_frame(): the Frame of the last result, and the records of
     the last RESULT_POOL dicts handed out, recycled once their holder let
     them go (see client_result). Every call still goes through the core
     (heartbeat, reaped, closed and dead checks). */
  FrameObject *cache_frame;
  result_rec pool[RESULT_POOL];
  int pool_last; /* index of the record returned last */
} ClientObject;

static void client_set_error(ClientObject *self, int code, const char *what,
                             const char *detail) {
  PyObject *e = make_error(self->st, code, what, detail);
  if (e == NULL) {
    PyErr_Clear();
    return;
  }
  Py_XSETREF(self->last_error, e);
}

/* Rebuild the stream table from the core's schema. */
static int client_load_streams(ClientObject *self) {
  const shmx_stream_info *s = NULL;
  int n = 0;
  int rc = shmx_client_streams(self->core->cl, &s, &n);
  if (rc < 0) {
    raise_last(self->st, rc, "streams");
    return -1;
  }
  if (n < 0) n = 0;
  PyObject *names = PyTuple_New(n);
  if (names == NULL) return -1;
  sinfo *info = PyMem_Calloc((size_t)(n ? n : 1), sizeof *info);
  if (info == NULL) {
    Py_DECREF(names);
    PyErr_NoMemory();
    return -1;
  }
  for (int i = 0; i < n; i++) {
    PyObject *nm = PyUnicode_DecodeUTF8(s[i].name, (Py_ssize_t)strlen(s[i].name),
                                        "replace");
    if (nm == NULL) {
      Py_DECREF(names);
      PyMem_Free(info);
      return -1;
    }
    PyUnicode_InternInPlace(&nm);
    PyTuple_SET_ITEM(names, i, nm);
    info[i].id = s[i].id;
    info[i].dtype = s[i].dtype;
    info[i].components = s[i].components;
    info[i].bytes_per_elem = s[i].bytes_per_elem;
  }
  Py_XSETREF(self->names, names);
  PyMem_Free(self->info);
  self->info = info;
  self->ninfo = n;
  return 0;
}

static void client_drop_cache(ClientObject *self) {
  for (int k = 0; k < RESULT_POOL; k++) rec_clear(&self->pool[k]);
  Py_CLEAR(self->cache_frame);
}

static void client_drop(ClientObject *self) {
  client_drop_cache(self);
  ccore *c = self->core;
  self->core = NULL;
  Py_CLEAR(self->names);
  PyMem_Free(self->info);
  self->info = NULL;
  self->ninfo = 0;
  ccore_decref(c);
}

static int Client_traverse(ClientObject *self, visitproc visit, void *arg) {
  Py_VISIT(Py_TYPE(self));
  Py_VISIT(self->last_error);
  for (int k = 0; k < RESULT_POOL; k++) {
    result_rec *r = &self->pool[k];
    for (Py_ssize_t i = 0; r->o && i < REC_HEAD + REC_STREAM * r->n; i++) Py_VISIT(r->o[i]);
  }
  return 0;
}
static int Client_clear(ClientObject *self) {
  Py_CLEAR(self->last_error);
  for (int k = 0; k < RESULT_POOL; k++) rec_clear(&self->pool[k]);
  return 0;
}
static void Client_dealloc(ClientObject *self) {
  PyTypeObject *tp = Py_TYPE(self);
  PyObject_GC_UnTrack(self);
  if (self->weakreflist) PyObject_ClearWeakRefs((PyObject *)self);
  if (self->core && self->core->busy) {
    /* another thread is inside a call on it: that call holds a ref */
  }
  client_drop(self);
  Py_CLEAR(self->name);
  Client_clear(self);
  tp->tp_free(self);
  Py_DECREF(tp);
}

static PyObject *Client_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
  (void)args;
  (void)kw;
  shmx_state *st = state_from_type(type);
  if (st == NULL) return NULL;
  ClientObject *self = (ClientObject *)type->tp_alloc(type, 0);
  if (self == NULL) return NULL;
  self->st = st;
  return (PyObject *)self;
}

/* Returns the core for a call or NULL with NotOpenError / RuntimeError. */
static ccore *client_core(ClientObject *self, const char *what) {
  if (self->core == NULL) {
    raise_misuse(self->st, X_NOTOPEN, "%s: client is not open", what);
    return NULL;
  }
  if (FORKED(self->core->fork_gen)) {
    raise_misuse(self->st, X_STATE,
                 "%s: this Client was opened in the parent process before "
                 "fork(); open a new one in the child", what);
    return NULL;
  }
  if (self->core->busy) {
    PyErr_Format(PyExc_RuntimeError,
                 "%s: client is in use by another thread", what);
    return NULL;
  }
  return self->core;
}

/* open(name) -> bool.  raise_on_fail: used by the constructor. */
static int client_open_impl(ClientObject *self, PyObject *nameobj,
                            int raise_on_fail) {
  const char *name = conv_name(self->st, nameobj);
  if (name == NULL) return -1;
  if (self->core != NULL && self->core->busy && !FORKED(self->core->fork_gen)) {
    PyErr_SetString(PyExc_RuntimeError, "open: client is in use by another thread");
    return -1;
  }
  client_drop(self);
  shmx_client *cl = NULL;
  int rc = shmx_client_open(name, &cl);
  if (rc < 0) {
    char detail[512];
    snprintf(detail, sizeof detail, "%s", shmx_errmsg());
    if (rc == SHMX_E_NAME || rc == SHMX_E_ARG) {
      raise_code(self->st, rc, "open", detail);
      return -1;
    }
    if (raise_on_fail) {
      raise_code(self->st, rc, "open", detail);
      return -1;
    }
    client_set_error(self, rc, "open", detail);
    return 0;
  }
  self->core = ccore_new(cl);
  if (self->core == NULL) {
    shmx_client_close(cl);
    return -1;
  }
  if (client_load_streams(self) < 0) {
    client_drop(self);
    return -1;
  }
  Py_XSETREF(self->name, Py_NewRef(nameobj));
  Py_CLEAR(self->last_error);
  return 1;
}

static int Client_init(ClientObject *self, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"name", NULL};
  PyObject *name = NULL;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "|O:Client", kwlist, &name))
    return -1;
  if (name == NULL || name == Py_None) return 0;
  return client_open_impl(self, name, 1) < 0 ? -1 : 0;
}

static PyObject *Client_open(ClientObject *self, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"name", NULL};
  PyObject *name;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "O:open", kwlist, &name))
    return NULL;
  int r = client_open_impl(self, name, 0);
  if (r < 0) return NULL;
  return PyBool_FromLong(r);
}

static PyObject *Client_close(ClientObject *self, PyObject *unused) {
  (void)unused;
  /* If another thread waits on the core, it holds its own reference and
     notices the close at its next slice. */
  client_drop(self);
  Py_RETURN_NONE;
}

static PyObject *Client_is_open(ClientObject *self, PyObject *unused) {
  (void)unused;
  return PyBool_FromLong(self->core != NULL);
}

/* Wrap a held core frame into a FrameObject (takes over the pin). */
static PyObject *client_make_frame(ClientObject *self, shmx_frame *f) {
  ccore *c = self->core;
  uint32_t n = f->tlv_count;
  if (n > SHMX_FRAME_MAX_STREAMS) n = SHMX_FRAME_MAX_STREAMS;
  FrameObject *fr = (FrameObject *)self->st->Frame_Type->tp_alloc(
      self->st->Frame_Type, (Py_ssize_t)n);
  if (fr == NULL) {
    shmx_frame_release(c->cl, f);
    return NULL;
  }
  fr->st = self->st;
  fr->core = c;
  c->refs++;
  fr->f = *f;
  fr->held = 1;
  fr->exports = 0;
  int refreshed = 0;
  for (uint32_t i = 0; i < n; i++) {
    const shmx_frame_stream *fs = &f->streams[i];
    fstream *s = &fr->s[i];
    s->data = fs->data;
    s->bytes = fs->bytes;
    s->elem_count = fs->elem_count;
    s->id = fs->stream_id;
    Py_ssize_t k = -1;
    if (fs->index < (uint64_t)self->ninfo && self->info[fs->index].id == fs->stream_id) {
      k = (Py_ssize_t)fs->index;
    } else {
      for (Py_ssize_t j = 0; j < self->ninfo; j++)
        if (self->info[j].id == fs->stream_id) { k = j; break; }
      if (k < 0 && !refreshed) {
        /* new stream in the schema: re-read it (flaw of 1.0.1: never did) */
        refreshed = 1;
        (void)shmx_client_refresh(c->cl); /* reads may have refreshed already */
        if (client_load_streams(self) < 0) PyErr_Clear();
        for (Py_ssize_t j = 0; j < self->ninfo; j++)
          if (self->info[j].id == fs->stream_id) { k = j; break; }
      }
    }
    if (k >= 0) {
      s->name = Py_NewRef(PyTuple_GET_ITEM(self->names, k));
      s->dtype = self->info[k].dtype;
      s->components = self->info[k].components;
      s->bytes_per_elem = self->info[k].bytes_per_elem;
    } else {
      s->name = PyUnicode_FromFormat("stream_%u", (unsigned)fs->stream_id);
      s->dtype = 0;
      s->components = 1;
      s->bytes_per_elem = 1;
      if (s->name == NULL) {
        Py_DECREF(fr); /* releases the pin; names of later entries are NULL */
        return NULL;
      }
    }
  }
  return (PyObject *)fr;
}

/* The dict for frame fr. A record whose dict came back unmodified (only the
 * record refers to it) is recycled: handed out again as is if it already
 * shows fr, else refilled in place with fr's values. Nobody can observe the
 * difference from a new dict, since nobody else holds it. Otherwise a new
 * dict is built into a free record. Records of older frames are then
 * forgotten (their holders keep what they hold), so that, as before
 * recycling, the client itself pins no frame but the one it returned last. */
static PyObject *client_result(ClientObject *self, FrameObject *fr) {
  shmx_state *st = self->st;
  int pick = -1, idle = -1, empty = -1;
  for (int k = 0; k < RESULT_POOL; k++) {
    result_rec *r = &self->pool[k];
    if (r->o == NULL) {
      if (empty < 0) empty = k;
      continue;
    }
    if (!rec_idle(st, r)) continue;
    if (r->o[6] == (PyObject *)fr && rec_views_live(r)) {
      pick = k;
      break;
    }
    if (idle < 0) idle = k;
  }
  if (pick < 0 && idle >= 0 && rec_fits(&self->pool[idle], fr)) {
    if (rec_refill(fr, &self->pool[idle]) < 0) return NULL;
    pick = idle;
  }
  if (pick < 0) {
    result_rec fresh = {NULL, 0, NULL};
    if (rec_build(fr, &fresh) < 0) return NULL;
    pick = idle >= 0 ? idle : empty >= 0 ? empty : (self->pool_last + 1) % RESULT_POOL;
    result_rec old = self->pool[pick];
    self->pool[pick] = fresh;
    rec_clear(&old); /* may run a __del__ that calls us again: all in place */
  }
  PyObject *out = Py_NewRef(self->pool[pick].o[0]);
  self->pool_last = pick;
  for (int k = 0; k < RESULT_POOL; k++)
    if (self->pool[k].o && self->pool[k].o[0] != out && self->pool[k].o[6] != (PyObject *)fr)
      rec_clear(&self->pool[k]);
  return out;
}

static PyObject *Client_get_latest_frame(ClientObject *self, PyObject *unused) {
  (void)unused;
  ccore *c = client_core(self, "get_latest_frame");
  if (c == NULL) return NULL;
  shmx_frame f;
  int rc = shmx_client_latest(c->cl, &f);
  if (rc < 0) {
    /* 1.0.1 returned None for "no frame" and failed validation; keep it and
       record why. */
    client_drop_cache(self);
    if (rc == SHMX_E_NOFRAME) {
      Py_RETURN_NONE;
    }
    client_set_error(self, rc, "get_latest_frame", shmx_errmsg());
    Py_RETURN_NONE;
  }
  FrameObject *cf = self->cache_frame;
  if (cf != NULL && cf->held && cf->core == c && cf->f.frame_id == f.frame_id &&
      cf->f.slot == f.slot) {
    shmx_frame_release(c->cl, &f); /* the cached Frame already pins it */
  } else {
    Py_CLEAR(self->cache_frame);
    PyObject *fr = client_make_frame(self, &f);
    if (fr == NULL) return NULL;
    self->cache_frame = (FrameObject *)fr;
  }
  return client_result(self, self->cache_frame);
}

static PyObject *Client_latest_frame(ClientObject *self, PyObject *unused) {
  (void)unused;
  ccore *c = client_core(self, "latest_frame");
  if (c == NULL) return NULL;
  shmx_frame f;
  int rc = shmx_client_latest(c->cl, &f);
  if (rc == SHMX_E_NOFRAME) Py_RETURN_NONE;
  if (rc < 0) return raise_last(self->st, rc, "latest_frame");
  return client_make_frame(self, &f);
}

/* timeout: None = forever, number of seconds (0 = poll). Returns a Frame,
 * None on timeout, NULL on error. */
static PyObject *client_wait_impl(ClientObject *self, PyObject *timeout,
                                  int in_order, const char *what) {
  int64_t total_ns = -1;
  if (timeout != NULL && timeout != Py_None) {
    double t = PyFloat_AsDouble(timeout);
    if (t == -1.0 && PyErr_Occurred()) return NULL;
    if (!(t >= 0.0)) {
      PyErr_Format(PyExc_ValueError, "%s: timeout must be >= 0 or None", what);
      return NULL;
    }
    total_ns = t > 9.0e9 ? INT64_MAX : (int64_t)(t * 1e9);
  }
  ccore *c = client_core(self, what);
  if (c == NULL) return NULL;
  c->refs++; /* survive close() from another thread */
  uint64_t start = shmx_now_ns();
  shmx_frame f;
  PyObject *result = NULL;
  char detail[512];
  for (;;) {
    int64_t slice = SHMX_PY_WAIT_SLICE_NS;
    if (total_ns >= 0) {
      uint64_t el = shmx_now_ns() - start;
      int64_t left = (uint64_t)total_ns > el ? total_ns - (int64_t)el : 0;
      if (left < slice) slice = left;
    }
    int rc;
    if (slice == 0) {
      rc = shmx_client_wait(c->cl, &f, 0, in_order);
    } else {
      c->busy = 1;
      Py_BEGIN_ALLOW_THREADS
      rc = shmx_client_wait(c->cl, &f, slice, in_order);
      Py_END_ALLOW_THREADS
      c->busy = 0;
    }
    if (rc < 0) snprintf(detail, sizeof detail, "%s", shmx_errmsg());
    ccore_flush(c);
    if (rc == 0) {
      if (self->core != c) { /* closed meanwhile */
        shmx_frame_release(c->cl, &f);
        raise_misuse(self->st, X_NOTOPEN, "%s: client was closed", what);
        break;
      }
      result = client_make_frame(self, &f);
      break;
    }
    if (rc == SHMX_E_TIMEOUT || rc == SHMX_E_NOFRAME || rc == SHMX_E_EINTR) {
      if (PyErr_CheckSignals() < 0) break;
      if (self->core != c) {
        raise_misuse(self->st, X_NOTOPEN, "%s: client was closed", what);
        break;
      }
      if (total_ns >= 0 && shmx_now_ns() - start >= (uint64_t)total_ns) {
        result = Py_NewRef(Py_None);
        break;
      }
      continue;
    }
    raise_code(self->st, rc, what, detail);
    break;
  }
  ccore_decref(c);
  return result;
}

static PyObject *Client_wait_frame(ClientObject *self, PyObject *args,
                                   PyObject *kw) {
  static char *kwlist[] = {"timeout", NULL};
  PyObject *timeout = Py_None;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "|O:wait_frame", kwlist, &timeout))
    return NULL;
  return client_wait_impl(self, timeout, 0, "wait_frame");
}

static PyObject *Client_next_frame(ClientObject *self, PyObject *args,
                                   PyObject *kw) {
  static char *kwlist[] = {"timeout", NULL};
  PyObject *timeout = NULL;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "|O:next_frame", kwlist, &timeout))
    return NULL;
  if (timeout == NULL) { /* default: do not wait */
    ccore *c = client_core(self, "next_frame");
    if (c == NULL) return NULL;
    shmx_frame f;
    int rc = shmx_client_next(c->cl, &f);
    if (rc == SHMX_E_NOFRAME) Py_RETURN_NONE;
    if (rc < 0) return raise_last(self->st, rc, "next_frame");
    return client_make_frame(self, &f);
  }
  return client_wait_impl(self, timeout, 1, "next_frame");
}

static PyObject *Client_iter(ClientObject *self) { return Py_NewRef(self); }

static PyObject *Client_iternext(ClientObject *self) {
  PyObject *r = client_wait_impl(self, Py_None, 1, "__next__");
  if (r == NULL && PyErr_ExceptionMatches(self->st->exc[X_CLOSED]) &&
      !PyErr_ExceptionMatches(self->st->exc[X_NOTOPEN])) {
    PyErr_Clear(); /* channel closed by its producer: end of iteration */
    return NULL;
  }
  if (r == Py_None) { /* cannot happen with timeout None */
    Py_DECREF(r);
    return NULL;
  }
  return r;
}

static PyObject *Client_get_streams_info(ClientObject *self, PyObject *unused) {
  (void)unused;
  ccore *c = client_core(self, "get_streams_info");
  if (c == NULL) return NULL;
  const shmx_stream_info *s;
  int n;
  int rc = shmx_client_streams(c->cl, &s, &n);
  if (rc < 0) return raise_last(self->st, rc, "get_streams_info");
  return streams_list(s, n);
}

static PyObject *Client_get_header_info(ClientObject *self, PyObject *unused) {
  (void)unused;
  ccore *c = client_core(self, "get_header_info");
  if (c == NULL) return NULL;
  shmx_header_info h;
  int rc = shmx_client_header(c->cl, &h);
  if (rc < 0) return raise_last(self->st, rc, "get_header_info");
  return header_dict(&h);
}

static PyObject *Client_refresh_static(ClientObject *self, PyObject *unused) {
  (void)unused;
  ccore *c = client_core(self, "refresh_static");
  if (c == NULL) return NULL;
  client_drop_cache(self);
  int rc = shmx_client_refresh(c->cl);
  if (rc < 0) {
    client_set_error(self, rc, "refresh_static", shmx_errmsg());
    Py_RETURN_FALSE;
  }
  if (client_load_streams(self) < 0) return NULL;
  Py_RETURN_TRUE;
}

static PyObject *Client_refresh(ClientObject *self, PyObject *unused) {
  (void)unused;
  ccore *c = client_core(self, "refresh");
  if (c == NULL) return NULL;
  client_drop_cache(self);
  int rc = shmx_client_refresh(c->cl);
  if (rc < 0) return raise_last(self->st, rc, "refresh");
  if (client_load_streams(self) < 0) return NULL;
  return PyBool_FromLong(rc > 0);
}

static PyObject *client_send(ClientObject *self, PyObject *typeobj,
                             PyObject *data, const char *what) {
  uint32_t type;
  if (conv_u32(typeobj, "type", &type) < 0) return NULL;
  Py_buffer b = {0};
  if (data != NULL) {
    if (PyUnicode_Check(data)) {
      PyErr_SetString(PyExc_TypeError, "data must be a bytes-like object, not str");
      return NULL;
    }
    if (PyObject_GetBuffer(data, &b, PyBUF_SIMPLE) < 0) return NULL;
    if ((uint64_t)b.len > UINT32_MAX) {
      PyBuffer_Release(&b);
      return raise_misuse(self->st, X_INVALID, "%s: message too large", what);
    }
  }
  ccore *c = client_core(self, what); /* after conversion: may have closed */
  if (c == NULL) {
    if (data) PyBuffer_Release(&b);
    return NULL;
  }
  int rc = shmx_client_send(c->cl, type, data ? b.buf : NULL,
                            data ? (uint32_t)b.len : 0);
  if (data) PyBuffer_Release(&b);
  if (rc == SHMX_E_ARG) return raise_last(self->st, rc, what);
  if (rc < 0) {
    client_set_error(self, rc, what, shmx_errmsg());
    Py_RETURN_FALSE;
  }
  Py_RETURN_TRUE;
}

static PyObject *Client_send_control(ClientObject *self, PyObject *args,
                                     PyObject *kw) {
  static char *kwlist[] = {"type", "data", NULL};
  PyObject *t, *d;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "OO:send_control", kwlist, &t, &d))
    return NULL;
  return client_send(self, t, d, "send_control");
}

static PyObject *Client_send_control_empty(ClientObject *self, PyObject *args,
                                           PyObject *kw) {
  static char *kwlist[] = {"type", NULL};
  PyObject *t;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "O:send_control_empty", kwlist, &t))
    return NULL;
  return client_send(self, t, NULL, "send_control_empty");
}

static PyObject *Client_status(ClientObject *self, PyObject *unused) {
  (void)unused;
  ccore *c = client_core(self, "status");
  if (c == NULL) return NULL;
  int rc = shmx_client_status(c->cl);
  if (rc == 0) return PyUnicode_FromString("ok");
  return PyUnicode_FromString(shmx_err_name(rc));
}

static PyObject *Client_check(ClientObject *self, PyObject *unused) {
  (void)unused;
  ccore *c = client_core(self, "check");
  if (c == NULL) return NULL;
  int rc = shmx_client_status(c->cl);
  if (rc < 0) return raise_last(self->st, rc, "check");
  Py_RETURN_NONE;
}

static PyObject *Client_heartbeat(ClientObject *self, PyObject *unused) {
  (void)unused;
  ccore *c = client_core(self, "heartbeat");
  if (c == NULL) return NULL;
  int rc = shmx_client_heartbeat(c->cl);
  if (rc < 0) return raise_last(self->st, rc, "heartbeat");
  Py_RETURN_NONE;
}

static PyObject *Client_get_frame_seq(ClientObject *self, void *cl) {
  (void)cl;
  ccore *c = client_core(self, "frame_seq");
  if (c == NULL) return NULL;
  return PyLong_FromUnsignedLongLong(shmx_client_frame_seq(c->cl));
}
static PyObject *Client_get_reader_id(ClientObject *self, void *cl) {
  (void)cl;
  ccore *c = client_core(self, "reader_id");
  if (c == NULL) return NULL;
  return PyLong_FromUnsignedLongLong(shmx_client_reader_id(c->cl));
}
static PyObject *Client_get_name(ClientObject *self, void *cl) {
  (void)cl;
  return Py_NewRef(self->name ? self->name : Py_None);
}
static PyObject *Client_get_last_error(ClientObject *self, void *cl) {
  (void)cl;
  return Py_NewRef(self->last_error ? self->last_error : Py_None);
}
static PyObject *Client_get_stream_names(ClientObject *self, void *cl) {
  (void)cl;
  if (client_core(self, "stream_names") == NULL) return NULL;
  return Py_NewRef(self->names);
}

/* `with shmx.Client() as c: c.open(...)` is allowed: entering does not
   require an open client; leaving closes whatever is open. */
static PyObject *Client_enter(ClientObject *self, PyObject *unused) {
  (void)unused;
  return Py_NewRef(self);
}
static PyObject *Client_exit(ClientObject *self, PyObject *args) {
  (void)args;
  client_drop(self);
  Py_RETURN_FALSE;
}

static PyObject *Client_repr(ClientObject *self) {
  if (self->core == NULL)
    return PyUnicode_FromFormat("<shmx.Client name=%R closed>",
                                self->name ? self->name : Py_None);
  return PyUnicode_FromFormat(
      "<shmx.Client name=%R open reader_id=%llu frame_seq=%llu streams=%zd>",
      self->name, (unsigned long long)shmx_client_reader_id(self->core->cl),
      (unsigned long long)shmx_client_frame_seq(self->core->cl), self->ninfo);
}

static PyMethodDef Client_methods[] = {
  {"open", (PyCFunction)(void (*)(void))Client_open, METH_VARARGS | METH_KEYWORDS,
   "open(name) -> bool\n\nAttach as a reader. False if the channel cannot be "
   "opened (missing, closed, dead, all reader slots taken...; the reason is in "
   "last_error). Raises InvalidNameError for a bad name."},
  {"close", (PyCFunction)Client_close, METH_NOARGS,
   "close()\n\nDetach. Frames and views still alive keep the mapping (and "
   "the reader slot) until they are gone; reading them never crashes."},
  {"is_open", (PyCFunction)Client_is_open, METH_NOARGS, "is_open() -> bool"},
  {"get_latest_frame", (PyCFunction)Client_get_latest_frame, METH_NOARGS,
   "get_latest_frame() -> dict | None\n\nThe newest frame in the shmx 1.0.1 "
   "dict shape, or None if there is none (reason in last_error). The frame "
   "stays pinned (its bytes cannot change) while the dict or any view from "
   "it is alive."},
  {"latest_frame", (PyCFunction)Client_latest_frame, METH_NOARGS,
   "latest_frame() -> Frame | None\n\nNewest frame as a Frame object; None if "
   "no frame was published yet; raises on channel errors."},
  {"wait_frame", (PyCFunction)(void (*)(void))Client_wait_frame,
   METH_VARARGS | METH_KEYWORDS,
   "wait_frame(timeout=None) -> Frame | None\n\nBlock (GIL released, Ctrl-C "
   "works) until a frame newer than the last one returned is published, and "
   "return the newest. None on timeout. Raises ClosedError / "
   "ProducerDeadError when the channel ends."},
  {"next_frame", (PyCFunction)(void (*)(void))Client_next_frame,
   METH_VARARGS | METH_KEYWORDS,
   "next_frame(timeout=None) -> Frame | None\n\nThe next frame in order after "
   "the last one returned; Frame.dropped counts frames lost before it. "
   "Without timeout it does not wait; timeout=None is not the default here: "
   "pass a number of seconds to wait."},
  {"get_streams_info", (PyCFunction)Client_get_streams_info, METH_NOARGS,
   "get_streams_info() -> list[dict]"},
  {"get_header_info", (PyCFunction)Client_get_header_info, METH_NOARGS,
   "get_header_info() -> dict"},
  {"refresh_static", (PyCFunction)Client_refresh_static, METH_NOARGS,
   "refresh_static() -> bool\n\nRe-read the schema. True on success."},
  {"refresh", (PyCFunction)Client_refresh, METH_NOARGS,
   "refresh() -> bool\n\nRe-read the schema; True if it changed. Raises on "
   "errors."},
  {"send_control", (PyCFunction)(void (*)(void))Client_send_control,
   METH_VARARGS | METH_KEYWORDS,
   "send_control(type, data) -> bool\n\nSend a control message (any bytes-like "
   "data). False if the ring is full now; raises if it can never fit."},
  {"send_control_empty", (PyCFunction)(void (*)(void))Client_send_control_empty,
   METH_VARARGS | METH_KEYWORDS, "send_control_empty(type) -> bool"},
  {"status", (PyCFunction)Client_status, METH_NOARGS,
   "status() -> str\n\n'ok' or the error name (SHMX_E_CLOSED, SHMX_E_DEAD, "
   "SHMX_E_REAPED, SHMX_E_RESTARTED)."},
  {"check", (PyCFunction)Client_check, METH_NOARGS,
   "check()\n\nRaise the matching ShmxError if the channel is not live."},
  {"heartbeat", (PyCFunction)Client_heartbeat, METH_NOARGS, "heartbeat()"},
  {"__enter__", (PyCFunction)Client_enter, METH_NOARGS, NULL},
  {"__exit__", (PyCFunction)Client_exit, METH_VARARGS, "close()"},
  {NULL, NULL, 0, NULL}
};
static PyGetSetDef Client_getset[] = {
  {"frame_seq", (getter)Client_get_frame_seq, NULL, "newest published frame id", NULL},
  {"reader_id", (getter)Client_get_reader_id, NULL, "this reader's id", NULL},
  {"name", (getter)Client_get_name, NULL, "channel name", NULL},
  {"last_error", (getter)Client_get_last_error, NULL,
   "ShmxError instance explaining the last False/None result, or None", NULL},
  {"stream_names", (getter)Client_get_stream_names, NULL, "tuple of stream names", NULL},
  {NULL, NULL, NULL, NULL, NULL}
};
static PyMemberDef Client_members[] = {
  {"__weaklistoffset__", T_PYSSIZET, offsetof(ClientObject, weakreflist), READONLY, NULL},
  {NULL, 0, 0, 0, NULL}
};
static PyType_Slot Client_slots[] = {
  {Py_tp_new, Client_new},
  {Py_tp_init, Client_init},
  {Py_tp_dealloc, Client_dealloc},
  {Py_tp_traverse, Client_traverse},
  {Py_tp_clear, Client_clear},
  {Py_tp_repr, Client_repr},
  {Py_tp_methods, Client_methods},
  {Py_tp_getset, Client_getset},
  {Py_tp_members, Client_members},
  {Py_tp_iter, Client_iter},
  {Py_tp_iternext, Client_iternext},
  {Py_tp_doc, "Client(name=None)\n\nA reader. Client() makes a closed client "
              "(shmx 1.0.1 style: call open(name) -> bool); Client(name) opens "
              "and raises a ShmxError subclass on failure. Iterating yields "
              "frames in order, waiting for each, until the producer closes "
              "the channel."},
  {0, NULL}
};
static PyType_Spec Client_spec = {
  "shmx.Client", sizeof(ClientObject), 0,
  Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC, Client_slots
};

/* ========================================================================= */
/* Server                                                                    */
/* ========================================================================= */

typedef struct HandleObject {
  PyObject_HEAD
  ServerObject *server;
  uint64_t gen;
} HandleObject;

static void Handle_dealloc(HandleObject *self) {
  PyTypeObject *tp = Py_TYPE(self);
  Py_XDECREF(self->server);
  PyObject_Free(self);
  Py_DECREF(tp);
}
static PyObject *Handle_repr(HandleObject *self) {
  ServerObject *s = self->server;
  int cur = s->srv != NULL && s->in_frame && s->gen == self->gen;
  return PyUnicode_FromFormat("<shmx.FrameHandle #%llu %s>",
                              (unsigned long long)self->gen,
                              cur ? "open" : "finished");
}
static PyType_Slot Handle_slots[] = {
  {Py_tp_dealloc, Handle_dealloc},
  {Py_tp_repr, Handle_repr},
  {Py_tp_doc, "Opaque handle of a begun frame (Server.begin_frame())."},
  {0, NULL}
};
static PyType_Spec Handle_spec = {
  "shmx.FrameHandle", sizeof(HandleObject), 0,
  Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
  Handle_slots
};

static void server_set_error(ServerObject *self, int code, const char *what,
                             const char *detail) {
  PyObject *e = make_error(self->st, code, what, detail);
  if (e == NULL) {
    PyErr_Clear();
    return;
  }
  Py_XSETREF(self->last_error, e);
}

static int server_ok(ServerObject *self, const char *what) {
  if (self->srv == NULL) {
    raise_misuse(self->st, X_NOTOPEN, "%s: server is not created (or destroyed)", what);
    return -1;
  }
  if (FORKED(self->fork_gen)) {
    raise_misuse(self->st, X_STATE,
                 "%s: this Server was created in the parent process before "
                 "fork(); the child must not publish on it", what);
    return -1;
  }
  if (self->busy) {
    PyErr_Format(PyExc_RuntimeError, "%s: server is in use by another thread", what);
    return -1;
  }
  return 0;
}

static int server_no_exports(ServerObject *self, const char *what) {
  if (self->wexports > 0) {
    PyErr_Format(PyExc_BufferError,
                 "%s: %zd view(s) from reserve_stream() still exported; release "
                 "them (del, or 'with ... as mv:') first",
                 what, self->wexports);
    return -1;
  }
  return 0;
}

static int Server_traverse(ServerObject *self, visitproc visit, void *arg) {
  Py_VISIT(Py_TYPE(self));
  Py_VISIT(self->last_error);
  return 0;
}
static int Server_clear(ServerObject *self) {
  Py_CLEAR(self->last_error);
  return 0;
}
static void Server_dealloc(ServerObject *self) {
  PyTypeObject *tp = Py_TYPE(self);
  PyObject_GC_UnTrack(self);
  if (self->srv) {
    if (!FORKED(self->fork_gen)) shmx_server_destroy(self->srv);
    self->srv = NULL; /* in a forked child: leave the parent's channel be */
  }
  Py_CLEAR(self->name);
  Server_clear(self);
  tp->tp_free(self);
  Py_DECREF(tp);
}

static PyObject *Server_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
  (void)args;
  (void)kw;
  shmx_state *st = state_from_type(type);
  if (st == NULL) return NULL;
  ServerObject *self = (ServerObject *)type->tp_alloc(type, 0);
  if (self == NULL) return NULL;
  self->st = st;
  return (PyObject *)self;
}

/* Parse one stream spec dict into sp; keeps refs in keep (a list). */
static int parse_spec(shmx_state *st, PyObject *d, shmx_stream_spec *sp,
                      PyObject *keep) {
  if (!PyDict_Check(d)) {
    PyErr_Format(PyExc_TypeError,
                 "stream spec must be a dict (see create_stream_spec), not %.100s",
                 Py_TYPE(d)->tp_name);
    return -1;
  }
  memset(sp, 0, sizeof *sp);
  static const char *req[] = {"id", "name", "dtype_code", "components",
                              "bytes_per_elem"};
  PyObject *v[5];
  for (int i = 0; i < 5; i++) {
    v[i] = PyDict_GetItemString(d, req[i]);
    if (v[i] == NULL) {
      PyErr_Format(PyExc_KeyError, "stream spec is missing '%s'", req[i]);
      return -1;
    }
  }
  if (conv_u32(v[0], "stream id", &sp->id) < 0 ||
      conv_u32(v[2], "dtype_code", &sp->dtype) < 0 ||
      conv_u32(v[3], "components", &sp->components) < 0 ||
      conv_u32(v[4], "bytes_per_elem", &sp->bytes_per_elem) < 0)
    return -1;
  if (!PyUnicode_Check(v[1])) {
    PyErr_Format(PyExc_TypeError, "stream name must be str, not %.100s",
                 Py_TYPE(v[1])->tp_name);
    return -1;
  }
  Py_ssize_t nlen;
  const char *nm = PyUnicode_AsUTF8AndSize(v[1], &nlen);
  if (nm == NULL) return -1;
  if (nlen < 1 || nlen > SHMX_STREAM_NAME_MAX || (Py_ssize_t)strlen(nm) != nlen) {
    raise_misuse(st, X_NAME, "stream name must be 1-%d UTF-8 bytes without NUL",
                 SHMX_STREAM_NAME_MAX);
    return -1;
  }
  if (strcmp(nm, "__metadata__") == 0) {
    raise_misuse(st, X_NAME, "a stream may not be named '__metadata__'");
    return -1;
  }
  if (PyList_Append(keep, v[1]) < 0) return -1;
  sp->name = nm;
  if (sp->components < 1) {
    raise_misuse(st, X_INVALID, "stream '%s': components must be >= 1", nm);
    return -1;
  }
  if (sp->bytes_per_elem < 1) {
    raise_misuse(st, X_INVALID, "stream '%s': bytes_per_elem must be >= 1", nm);
    return -1;
  }
  PyObject *lay = PyDict_GetItemString(d, "layout_code");
  if (lay != NULL && lay != Py_None) {
    if (conv_u32(lay, "layout_code", &sp->layout) < 0) return -1;
  } else {
    sp->layout = SHMX_LAYOUT_SOA_SCALAR;
  }
  PyObject *ex = PyDict_GetItemString(d, "extra");
  if (ex != NULL && ex != Py_None) {
    PyObject *b = PyBytes_FromObject(ex);
    if (b == NULL) return -1;
    if (PyList_Append(keep, b) < 0) {
      Py_DECREF(b);
      return -1;
    }
    Py_DECREF(b);
    if (PyBytes_GET_SIZE(b) > SHMX_EXTRA_MAX) {
      raise_misuse(st, X_INVALID, "stream '%s': extra is longer than %d bytes",
                   nm, SHMX_EXTRA_MAX);
      return -1;
    }
    sp->extra = PyBytes_AS_STRING(b);
    sp->extra_len = (uint32_t)PyBytes_GET_SIZE(b);
  }
  return 0;
}

static int server_create_impl(ServerObject *self, PyObject *args, PyObject *kw,
                              int raise_on_fail) {
  static char *kwlist[] = {"name", "slots", "reader_slots", "static_bytes_cap",
                           "frame_bytes_cap", "control_per_reader", "streams",
                           "mode", "checksum", "prefault", NULL};
  PyObject *nameobj, *slots = NULL, *rslots = NULL, *sbc = NULL, *fbc = NULL,
                     *cpr = NULL, *streams = NULL, *mode = NULL;
  int checksum = 0, prefault = 1;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "O|OOOOOO$Opp:create", kwlist,
                                   &nameobj, &slots, &rslots, &sbc, &fbc, &cpr,
                                   &streams, &mode, &checksum, &prefault))
    return -1;
  const char *name = conv_name(self->st, nameobj);
  if (name == NULL) return -1;
  shmx_server_config cfg;
  shmx_server_config_init(&cfg);
  cfg.slots = 3;
  cfg.reader_slots = 16;
  cfg.static_bytes_cap = 4096;
  cfg.frame_bytes_cap = 65536;
  cfg.control_per_reader = 4096;
  if ((slots && conv_u32(slots, "slots", &cfg.slots) < 0) ||
      (rslots && conv_u32(rslots, "reader_slots", &cfg.reader_slots) < 0) ||
      (sbc && conv_u64(sbc, "static_bytes_cap", &cfg.static_bytes_cap) < 0) ||
      (fbc && conv_u64(fbc, "frame_bytes_cap", &cfg.frame_bytes_cap) < 0) ||
      (cpr && conv_u64(cpr, "control_per_reader", &cfg.control_per_reader) < 0) ||
      (mode && mode != Py_None && conv_u32(mode, "mode", &cfg.mode) < 0))
    return -1;
  /* 0 would mean "default" to the core: refuse it as the misuse it is */
  if (cfg.slots < 2 || cfg.reader_slots < 1 || cfg.frame_bytes_cap < 1 ||
      cfg.static_bytes_cap < 1 || cfg.control_per_reader < 1) {
    raise_misuse(self->st, X_INVALID,
                 "create: slots must be >= 2 and reader_slots, static_bytes_cap, "
                 "frame_bytes_cap, control_per_reader >= 1");
    return -1;
  }
  if (checksum) cfg.flags |= SHMX_CREATE_CRC32C;
  if (!prefault) cfg.flags |= SHMX_CREATE_NO_PREFAULT;
  PyObject *keep = PyList_New(0);
  if (keep == NULL) return -1;
  shmx_stream_spec *specs = NULL;
  Py_ssize_t n = 0;
  PyObject *seq = NULL;
  int result = -1;
  if (streams != NULL && streams != Py_None) {
    seq = PySequence_Fast(streams, "streams must be a list of stream specs");
    if (seq == NULL) goto done;
    n = PySequence_Fast_GET_SIZE(seq);
    if (n > 65536) {
      raise_misuse(self->st, X_INVALID, "create: too many streams");
      goto done;
    }
    specs = PyMem_Calloc((size_t)(n ? n : 1), sizeof *specs);
    if (specs == NULL) {
      PyErr_NoMemory();
      goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
      if (parse_spec(self->st, PySequence_Fast_GET_ITEM(seq, i), &specs[i], keep) < 0)
        goto done;
      for (Py_ssize_t j = 0; j < i; j++) {
        if (specs[j].id == specs[i].id) {
          raise_misuse(self->st, X_DUPLICATE, "create: duplicate stream id %u",
                       (unsigned)specs[i].id);
          goto done;
        }
        if (strcmp(specs[j].name, specs[i].name) == 0) {
          raise_misuse(self->st, X_DUPLICATE, "create: duplicate stream name '%s'",
                       specs[i].name);
          goto done;
        }
      }
    }
  }
  cfg.streams = specs;
  cfg.n_streams = (uint32_t)n;
  /* argument conversion may have run Python code: re-check state */
  if (self->busy) {
    PyErr_SetString(PyExc_RuntimeError, "create: server is in use by another thread");
    goto done;
  }
  if (self->srv != NULL) {
    if (server_no_exports(self, "create") < 0) goto done;
    if (!FORKED(self->fork_gen))
      shmx_server_destroy(self->srv); /* 1.0.1 re-created on a second create() */
    self->srv = NULL;
    self->in_frame = 0;
  }
  {
    shmx_server *srv = NULL;
    int rc;
    char detail[512];
    self->busy = 1;
    Py_BEGIN_ALLOW_THREADS
    rc = shmx_server_create(name, &cfg, &srv);
    if (rc < 0) snprintf(detail, sizeof detail, "%s", shmx_errmsg());
    Py_END_ALLOW_THREADS
    self->busy = 0;
    if (rc < 0) {
      int expected = rc == SHMX_E_EXISTS || rc == SHMX_E_EACCES ||
                     rc == SHMX_E_EPERM || rc == SHMX_E_ENOSPC ||
                     rc == SHMX_E_ENOMEM || rc == SHMX_E_EMFILE ||
                     rc == SHMX_E_ENFILE || rc == SHMX_E_EEXIST;
      if (!expected || raise_on_fail) {
        raise_code(self->st, rc, "create", detail);
        goto done;
      }
      server_set_error(self, rc, "create", detail);
      result = 0;
      goto done;
    }
    self->srv = srv;
    self->fork_gen = shmx_fork_gen;
    self->in_frame = 0;
    self->gen++;
    self->last_frame_id = 0;
    Py_XSETREF(self->name, Py_NewRef(nameobj));
    Py_CLEAR(self->last_error);
    result = 1;
  }
done:
  PyMem_Free(specs);
  Py_XDECREF(seq);
  Py_DECREF(keep);
  return result;
}

static int Server_init(ServerObject *self, PyObject *args, PyObject *kw) {
  if (PyTuple_GET_SIZE(args) == 0 && (kw == NULL || PyDict_GET_SIZE(kw) == 0))
    return 0;
  return server_create_impl(self, args, kw, 1) < 0 ? -1 : 0;
}

static PyObject *Server_create(ServerObject *self, PyObject *args, PyObject *kw) {
  int r = server_create_impl(self, args, kw, 0);
  if (r < 0) return NULL;
  return PyBool_FromLong(r);
}

static int server_destroy_impl(ServerObject *self) {
  if (self->srv == NULL) return 0;
  if (FORKED(self->fork_gen)) {
    /* a forked child detaches without closing the parent's channel */
    self->srv = NULL;
    self->in_frame = 0;
    self->gen++;
    return 0;
  }
  if (self->busy) {
    PyErr_SetString(PyExc_RuntimeError, "destroy: server is in use by another thread");
    return -1;
  }
  if (server_no_exports(self, "destroy") < 0) return -1;
  shmx_server *srv = self->srv;
  self->srv = NULL;
  self->in_frame = 0;
  self->gen++;
  shmx_server_destroy(srv);
  return 0;
}

static PyObject *Server_destroy(ServerObject *self, PyObject *unused) {
  (void)unused;
  if (server_destroy_impl(self) < 0) return NULL;
  Py_RETURN_NONE;
}

static PyObject *Server_is_open(ServerObject *self, PyObject *unused) {
  (void)unused;
  return PyBool_FromLong(self->srv != NULL);
}

static PyObject *Server_begin_frame(ServerObject *self, PyObject *unused) {
  (void)unused;
  if (server_ok(self, "begin_frame") < 0) return NULL;
  if (self->in_frame) {
    /* the previous frame was never published: drop it (1.0.1 allowed this) */
    if (server_no_exports(self, "begin_frame") < 0) return NULL;
    shmx_server_abort(self->srv);
    self->in_frame = 0;
  }
  int rc = shmx_server_begin(self->srv);
  if (rc < 0) return raise_last(self->st, rc, "begin_frame");
  HandleObject *h = PyObject_New(HandleObject, self->st->Handle_Type);
  if (h == NULL) {
    shmx_server_abort(self->srv);
    return NULL;
  }
  self->gen++;
  self->in_frame = 1;
  h->server = (ServerObject *)Py_NewRef(self);
  h->gen = self->gen;
  return (PyObject *)h;
}

static int server_check_handle(ServerObject *self, PyObject *h, const char *what) {
  if (!PyObject_TypeCheck(h, self->st->Handle_Type)) {
    PyErr_Format(PyExc_TypeError,
                 "%s: frame_handle must be a handle from begin_frame(), not %.100s",
                 what, Py_TYPE(h)->tp_name);
    return -1;
  }
  HandleObject *hd = (HandleObject *)h;
  if (hd->server != self) {
    raise_misuse(self->st, X_STATE, "%s: frame handle belongs to another server", what);
    return -1;
  }
  if (!self->in_frame || hd->gen != self->gen) {
    raise_misuse(self->st, X_STATE,
                 "%s: frame handle is finished (published, aborted or replaced)",
                 what);
    return -1;
  }
  return 0;
}

static PyObject *Server_append_stream(ServerObject *self, PyObject *const *args,
                                      Py_ssize_t nargs, PyObject *kwnames) {
  static const char *const names[] = {"frame_handle", "stream_id", "data",
                                      "elem_count"};
  PyObject *a[4];
  if (parse_args("append_stream", args, nargs, kwnames, names, 4, 4, a) < 0)
    return NULL;
  uint32_t sid;
  uint64_t count;
  if (conv_u32(a[1], "stream_id", &sid) < 0 ||
      conv_u64(a[3], "elem_count", &count) < 0)
    return NULL;
  if (PyUnicode_Check(a[2])) {
    PyErr_SetString(PyExc_TypeError,
                    "append_stream: data must be a bytes-like object, not str");
    return NULL;
  }
  Py_buffer b;
  if (PyObject_GetBuffer(a[2], &b, PyBUF_C_CONTIGUOUS) < 0) return NULL;
  /* re-check after conversion (GetBuffer may run Python code) */
  if (server_ok(self, "append_stream") < 0 ||
      server_check_handle(self, a[0], "append_stream") < 0) {
    PyBuffer_Release(&b);
    return NULL;
  }
  int rc;
  if ((size_t)b.len >= SHMX_PY_NOGIL_BYTES) {
    char detail[512];
    self->busy = 1;
    Py_BEGIN_ALLOW_THREADS
    rc = shmx_server_append(self->srv, sid, b.buf, (uint64_t)b.len, count);
    if (rc < 0) snprintf(detail, sizeof detail, "%s", shmx_errmsg());
    Py_END_ALLOW_THREADS
    self->busy = 0;
    PyBuffer_Release(&b);
    if (rc < 0) return raise_code(self->st, rc, "append_stream", detail);
  } else {
    rc = shmx_server_append(self->srv, sid, b.buf, (uint64_t)b.len, count);
    PyBuffer_Release(&b);
    if (rc < 0) return raise_last(self->st, rc, "append_stream");
  }
  Py_RETURN_TRUE;
}

static PyObject *Server_reserve_stream(ServerObject *self, PyObject *args,
                                       PyObject *kw) {
  static char *kwlist[] = {"frame_handle", "stream_id", "elem_count", "typed", NULL};
  PyObject *h, *sido, *cnto;
  int typed = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "OOO|$p:reserve_stream", kwlist, &h,
                                   &sido, &cnto, &typed))
    return NULL;
  uint32_t sid;
  uint64_t count;
  if (conv_u32(sido, "stream_id", &sid) < 0 ||
      conv_u64(cnto, "elem_count", &count) < 0)
    return NULL;
  if (server_ok(self, "reserve_stream") < 0 ||
      server_check_handle(self, h, "reserve_stream") < 0)
    return NULL;
  const shmx_stream_info *si = NULL;
  int ns = 0;
  int rc = shmx_server_streams(self->srv, &si, &ns);
  if (rc < 0) return raise_last(self->st, rc, "reserve_stream");
  const shmx_stream_info *found = NULL;
  for (int i = 0; i < ns; i++)
    if (si[i].id == sid) { found = &si[i]; break; }
  if (found == NULL)
    return raise_misuse(self->st, X_STREAM, "reserve_stream: unknown stream id %u",
                        (unsigned)sid);
  uint32_t dtype = found->dtype, comps = found->components, bpe = found->bytes_per_elem;
  PyObject *nm = PyUnicode_DecodeUTF8(found->name, (Py_ssize_t)strlen(found->name),
                                      "replace");
  if (nm == NULL) return NULL;
  uint64_t bytes;
  if (__builtin_mul_overflow(count, (uint64_t)bpe, &bytes) ||
      bytes > (uint64_t)PY_SSIZE_T_MAX) {
    Py_DECREF(nm);
    return raise_misuse(self->st, X_CAPACITY, "reserve_stream: too many elements");
  }
  void *ptr = NULL;
  rc = shmx_server_reserve(self->srv, sid, count, &ptr);
  if (rc < 0) {
    Py_DECREF(nm);
    return raise_last(self->st, rc, "reserve_stream");
  }
  ViewObject *v = (ViewObject *)view_new(self->st, (PyObject *)self, 1, ptr, bytes,
                                         count, dtype, comps, bpe, typed, 0, nm);
  Py_DECREF(nm);
  if (v == NULL) return NULL;
  v->gen = self->gen;
  PyObject *mv = PyMemoryView_FromObject((PyObject *)v);
  Py_DECREF(v);
  return mv;
}

static PyObject *Server_publish_frame(ServerObject *self, PyObject *const *args,
                                      Py_ssize_t nargs, PyObject *kwnames) {
  static const char *const names[] = {"frame_handle", "sim_time"};
  PyObject *a[2];
  if (parse_args("publish_frame", args, nargs, kwnames, names, 1, 2, a) < 0)
    return NULL;
  double t = 0.0;
  if (a[1] != NULL) {
    t = PyFloat_AsDouble(a[1]);
    if (t == -1.0 && PyErr_Occurred()) return NULL;
  }
  if (server_ok(self, "publish_frame") < 0 ||
      server_check_handle(self, a[0], "publish_frame") < 0 ||
      server_no_exports(self, "publish_frame") < 0)
    return NULL;
  uint64_t id = 0;
  int rc = shmx_server_publish(self->srv, t, &id);
  if (rc < 0) return raise_last(self->st, rc, "publish_frame");
  self->in_frame = 0;
  self->last_frame_id = id;
  Py_RETURN_TRUE;
}

static PyObject *Server_abort_frame(ServerObject *self, PyObject *h) {
  if (server_ok(self, "abort_frame") < 0 ||
      server_check_handle(self, h, "abort_frame") < 0 ||
      server_no_exports(self, "abort_frame") < 0)
    return NULL;
  int rc = shmx_server_abort(self->srv);
  self->in_frame = 0;
  if (rc < 0) return raise_last(self->st, rc, "abort_frame");
  Py_RETURN_NONE;
}

static PyObject *Server_add_stream(ServerObject *self, PyObject *spec) {
  PyObject *keep = PyList_New(0);
  if (keep == NULL) return NULL;
  shmx_stream_spec sp;
  if (parse_spec(self->st, spec, &sp, keep) < 0 || server_ok(self, "add_stream") < 0) {
    Py_DECREF(keep);
    return NULL;
  }
  int rc = shmx_server_add_stream(self->srv, &sp);
  Py_DECREF(keep);
  if (rc < 0) return raise_last(self->st, rc, "add_stream");
  Py_RETURN_TRUE;
}

static PyObject *Server_write_static_append(ServerObject *self, PyObject *args,
                                            PyObject *kw) {
  static char *kwlist[] = {"data", "size", NULL};
  PyObject *data, *sizeo = NULL;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "O|O:write_static_append", kwlist,
                                   &data, &sizeo))
    return NULL;
  if (PyUnicode_Check(data)) {
    PyErr_SetString(PyExc_TypeError, "data must be a bytes-like object, not str");
    return NULL;
  }
  Py_buffer b;
  if (PyObject_GetBuffer(data, &b, PyBUF_SIMPLE) < 0) return NULL;
  uint64_t size = (uint64_t)b.len;
  if (sizeo != NULL && sizeo != Py_None) {
    if (conv_u64(sizeo, "size", &size) < 0) {
      PyBuffer_Release(&b);
      return NULL;
    }
    if (size > (uint64_t)b.len) {
      PyBuffer_Release(&b);
      return raise_misuse(self->st, X_SIZE,
                          "write_static_append: size %llu > len(data) %zd",
                          (unsigned long long)size, b.len);
    }
  }
  if (size > UINT32_MAX) {
    PyBuffer_Release(&b);
    return raise_misuse(self->st, X_CAPACITY, "write_static_append: too large");
  }
  if (server_ok(self, "write_static_append") < 0) {
    PyBuffer_Release(&b);
    return NULL;
  }
  int rc = shmx_server_static_append(self->srv, b.buf, (uint32_t)size);
  PyBuffer_Release(&b);
  if (rc < 0) return raise_last(self->st, rc, "write_static_append");
  Py_RETURN_TRUE;
}

static PyObject *Server_poll_control(ServerObject *self, PyObject *args,
                                     PyObject *kw) {
  static char *kwlist[] = {"max_messages", NULL};
  PyObject *mo = NULL;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "|O:poll_control", kwlist, &mo))
    return NULL;
  uint32_t max = 256;
  if (mo != NULL && conv_u32(mo, "max_messages", &max) < 0) return NULL;
  if (max > SHMX_PY_POLL_MAX) max = SHMX_PY_POLL_MAX;
  if (server_ok(self, "poll_control") < 0) return NULL;
  if (max == 0) return PyList_New(0);
  shmx_control_msg *msgs = PyMem_Malloc((size_t)max * sizeof *msgs);
  if (msgs == NULL) return PyErr_NoMemory();
  int corrupt = 0;
  int n = shmx_server_poll_control(self->srv, msgs, (int)max, &corrupt);
  if (n < 0) {
    PyMem_Free(msgs);
    return raise_last(self->st, n, "poll_control");
  }
  if (corrupt > 0) self->corrupt_rings += (uint64_t)corrupt;
  PyObject *l = PyList_New(n);
  if (l == NULL) goto fail;
  for (int i = 0; i < n; i++) {
    PyObject *d = PyDict_New();
    if (d == NULL) goto fail;
    PyList_SET_ITEM(l, i, d);
    if (DSET_U64(d, "reader_id", msgs[i].reader_id) < 0 ||
        DSET_U64(d, "type", msgs[i].type) < 0 ||
        dset(d, "data", PyBytes_FromStringAndSize((const char *)msgs[i].data,
                                                  (Py_ssize_t)msgs[i].len)) < 0)
      goto fail;
  }
  PyMem_Free(msgs);
  return l;
fail:
  PyMem_Free(msgs);
  Py_XDECREF(l);
  return NULL;
}

static PyObject *Server_snapshot_readers(ServerObject *self, PyObject *unused) {
  (void)unused;
  if (server_ok(self, "snapshot_readers") < 0) return NULL;
  shmx_header_info h;
  int rc = shmx_server_header(self->srv, &h);
  if (rc < 0) return raise_last(self->st, rc, "snapshot_readers");
  int max = (int)(h.reader_slots ? h.reader_slots : 1);
  shmx_reader_info *r = PyMem_Calloc((size_t)max, sizeof *r);
  if (r == NULL) return PyErr_NoMemory();
  int n = shmx_server_readers(self->srv, r, max);
  if (n < 0) {
    PyMem_Free(r);
    return raise_last(self->st, n, "snapshot_readers");
  }
  PyObject *l = readers_list(r, n);
  PyMem_Free(r);
  return l;
}

static PyObject *Server_reap_stale_readers(ServerObject *self, PyObject *args,
                                           PyObject *kw) {
  static char *kwlist[] = {"now_ticks", "timeout_ticks", NULL};
  PyObject *no, *to;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "OO:reap_stale_readers", kwlist, &no, &to))
    return NULL;
  uint64_t now, timeout;
  if (conv_u64(no, "now_ticks", &now) < 0 || conv_u64(to, "timeout_ticks", &timeout) < 0)
    return NULL;
  if (server_ok(self, "reap_stale_readers") < 0) return NULL;
  int n = shmx_server_reap(self->srv, now, timeout);
  if (n < 0) return raise_last(self->st, n, "reap_stale_readers");
  return PyLong_FromLong(n);
}

static PyObject *Server_get_header_info(ServerObject *self, PyObject *unused) {
  (void)unused;
  if (server_ok(self, "get_header_info") < 0) return NULL;
  shmx_header_info h;
  int rc = shmx_server_header(self->srv, &h);
  if (rc < 0) return raise_last(self->st, rc, "get_header_info");
  return header_dict(&h);
}

static PyObject *Server_get_streams_info(ServerObject *self, PyObject *unused) {
  (void)unused;
  if (server_ok(self, "get_streams_info") < 0) return NULL;
  const shmx_stream_info *s;
  int n;
  int rc = shmx_server_streams(self->srv, &s, &n);
  if (rc < 0) return raise_last(self->st, rc, "get_streams_info");
  return streams_list(s, n);
}

static PyObject *Server_enter(ServerObject *self, PyObject *unused) {
  (void)unused;
  return Py_NewRef(self); /* `with shmx.Server() as s: s.create(...)` works */
}
static PyObject *Server_exit(ServerObject *self, PyObject *args) {
  (void)args;
  if (server_destroy_impl(self) < 0) return NULL;
  Py_RETURN_FALSE;
}

static PyObject *Server_get_last_error(ServerObject *self, void *c) {
  (void)c;
  return Py_NewRef(self->last_error ? self->last_error : Py_None);
}
static PyObject *Server_get_name(ServerObject *self, void *c) {
  (void)c;
  return Py_NewRef(self->name ? self->name : Py_None);
}
static PyObject *Server_get_last_frame_id(ServerObject *self, void *c) {
  (void)c;
  return PyLong_FromUnsignedLongLong(self->last_frame_id);
}
static PyObject *Server_get_corrupt_rings(ServerObject *self, void *c) {
  (void)c;
  return PyLong_FromUnsignedLongLong(self->corrupt_rings);
}

static PyObject *Server_repr(ServerObject *self) {
  if (self->srv == NULL)
    return PyUnicode_FromFormat("<shmx.Server name=%R not created>",
                                self->name ? self->name : Py_None);
  return PyUnicode_FromFormat("<shmx.Server name=%R live last_frame_id=%llu%s>",
                              self->name,
                              (unsigned long long)self->last_frame_id,
                              self->in_frame ? " frame-begun" : "");
}

static PyMethodDef Server_methods[] = {
  {"create", (PyCFunction)(void (*)(void))Server_create, METH_VARARGS | METH_KEYWORDS,
   "create(name, slots=3, reader_slots=16, static_bytes_cap=4096, "
   "frame_bytes_cap=65536, control_per_reader=4096, streams=[], *, mode=None, "
   "checksum=False, prefault=True) -> bool\n\nCreate the channel exclusively. "
   "False if a live producer owns the name or the system refuses (reason in "
   "last_error); raises on invalid arguments."},
  {"destroy", (PyCFunction)Server_destroy, METH_NOARGS,
   "destroy()\n\nClose the channel (readers see it closed) and unlink it."},
  {"is_open", (PyCFunction)Server_is_open, METH_NOARGS, "is_open() -> bool"},
  {"begin_frame", (PyCFunction)Server_begin_frame, METH_NOARGS,
   "begin_frame() -> FrameHandle\n\nStart a frame (an unpublished previous one "
   "is dropped)."},
  {"append_stream", (PyCFunction)(void (*)(void))Server_append_stream,
   METH_FASTCALL | METH_KEYWORDS,
   "append_stream(frame_handle, stream_id, data, elem_count) -> bool\n\nCopy "
   "any C-contiguous buffer into the frame, once. len(data) in bytes must be "
   "elem_count * bytes_per_elem. Returns True; raises on misuse."},
  {"reserve_stream", (PyCFunction)(void (*)(void))Server_reserve_stream,
   METH_VARARGS | METH_KEYWORDS,
   "reserve_stream(frame_handle, stream_id, elem_count, *, typed=False) -> "
   "memoryview\n\nWritable view of the stream's space in the frame, to fill in "
   "place. Release it (del / with) before publish_frame()."},
  {"publish_frame", (PyCFunction)(void (*)(void))Server_publish_frame,
   METH_FASTCALL | METH_KEYWORDS,
   "publish_frame(frame_handle, sim_time) -> bool"},
  {"abort_frame", (PyCFunction)Server_abort_frame, METH_O,
   "abort_frame(frame_handle)\n\nDrop the begun frame."},
  {"add_stream", (PyCFunction)Server_add_stream, METH_O,
   "add_stream(spec) -> bool\n\nAdd a stream to the schema (readers see it "
   "after refresh_static(); frames carrying it refresh automatically)."},
  {"write_static_append", (PyCFunction)(void (*)(void))Server_write_static_append,
   METH_VARARGS | METH_KEYWORDS,
   "write_static_append(data, size=None) -> bool\n\nAppend opaque bytes to the "
   "schema area."},
  {"poll_control", (PyCFunction)(void (*)(void))Server_poll_control,
   METH_VARARGS | METH_KEYWORDS,
   "poll_control(max_messages=256) -> list[dict]"},
  {"snapshot_readers", (PyCFunction)Server_snapshot_readers, METH_NOARGS,
   "snapshot_readers() -> list[dict]\n\nOne dict per reader slot."},
  {"reap_stale_readers", (PyCFunction)(void (*)(void))Server_reap_stale_readers,
   METH_VARARGS | METH_KEYWORDS,
   "reap_stale_readers(now_ticks, timeout_ticks) -> int\n\nTicks are "
   "CLOCK_MONOTONIC ns (time.monotonic_ns(); now_ticks=0 means now). Returns "
   "how many readers were reaped."},
  {"get_header_info", (PyCFunction)Server_get_header_info, METH_NOARGS,
   "get_header_info() -> dict"},
  {"get_streams_info", (PyCFunction)Server_get_streams_info, METH_NOARGS,
   "get_streams_info() -> list[dict]"},
  {"__enter__", (PyCFunction)Server_enter, METH_NOARGS, NULL},
  {"__exit__", (PyCFunction)Server_exit, METH_VARARGS, "destroy()"},
  {NULL, NULL, 0, NULL}
};
static PyGetSetDef Server_getset[] = {
  {"last_error", (getter)Server_get_last_error, NULL,
   "ShmxError instance explaining the last False result, or None", NULL},
  {"name", (getter)Server_get_name, NULL, "channel name", NULL},
  {"last_frame_id", (getter)Server_get_last_frame_id, NULL,
   "id of the last published frame", NULL},
  {"corrupt_rings", (getter)Server_get_corrupt_rings, NULL,
   "control rings reset because a reader wrote garbage", NULL},
  {NULL, NULL, NULL, NULL, NULL}
};
static PyType_Slot Server_slots[] = {
  {Py_tp_new, Server_new},
  {Py_tp_init, Server_init},
  {Py_tp_dealloc, Server_dealloc},
  {Py_tp_traverse, Server_traverse},
  {Py_tp_clear, Server_clear},
  {Py_tp_repr, Server_repr},
  {Py_tp_methods, Server_methods},
  {Py_tp_getset, Server_getset},
  {Py_tp_doc, "Server(name=None, **create_args)\n\nA producer. Server() is "
              "not created yet (shmx 1.0.1 style: create(...) -> bool); "
              "Server(name, ...) creates and raises on failure. As a context "
              "manager it destroys the channel on exit."},
  {0, NULL}
};
static PyType_Spec Server_spec = {
  "shmx.Server", sizeof(ServerObject), 0,
  Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC, Server_slots
};

/* ========================================================================= */
/* Inspector                                                                 */
/* ========================================================================= */

typedef struct InspectorObject {
  PyObject_HEAD
  shmx_state *st;
  shmx_inspector *in;
  PyObject *name;
  PyObject *last_error;
} InspectorObject;

static int Inspector_traverse(InspectorObject *self, visitproc visit, void *arg) {
  Py_VISIT(Py_TYPE(self));
  Py_VISIT(self->last_error);
  return 0;
}
static int Inspector_clear(InspectorObject *self) {
  Py_CLEAR(self->last_error);
  return 0;
}
static void Inspector_dealloc(InspectorObject *self) {
  PyTypeObject *tp = Py_TYPE(self);
  PyObject_GC_UnTrack(self);
  shmx_inspector_close(self->in);
  self->in = NULL;
  Py_CLEAR(self->name);
  Inspector_clear(self);
  tp->tp_free(self);
  Py_DECREF(tp);
}
static PyObject *Inspector_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
  (void)args;
  (void)kw;
  shmx_state *st = state_from_type(type);
  if (st == NULL) return NULL;
  InspectorObject *self = (InspectorObject *)type->tp_alloc(type, 0);
  if (self == NULL) return NULL;
  self->st = st;
  return (PyObject *)self;
}

static int inspector_open_impl(InspectorObject *self, PyObject *nameobj, int raise) {
  const char *name = conv_name(self->st, nameobj);
  if (name == NULL) return -1;
  shmx_inspector_close(self->in);
  self->in = NULL;
  int rc = shmx_inspector_open(name, &self->in);
  if (rc < 0) {
    self->in = NULL;
    if (raise || rc == SHMX_E_NAME || rc == SHMX_E_ARG) {
      raise_last(self->st, rc, "open");
      return -1;
    }
    PyObject *e = make_error(self->st, rc, "open", shmx_errmsg());
    if (e == NULL) return -1;
    Py_XSETREF(self->last_error, e);
    return 0;
  }
  Py_XSETREF(self->name, Py_NewRef(nameobj));
  Py_CLEAR(self->last_error);
  return 1;
}

static int Inspector_init(InspectorObject *self, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"name", NULL};
  PyObject *name = NULL;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "|O:Inspector", kwlist, &name))
    return -1;
  if (name == NULL || name == Py_None) return 0;
  return inspector_open_impl(self, name, 1) < 0 ? -1 : 0;
}

static PyObject *Inspector_open(InspectorObject *self, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"name", NULL};
  PyObject *name;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "O:open", kwlist, &name)) return NULL;
  int r = inspector_open_impl(self, name, 0);
  if (r < 0) return NULL;
  return PyBool_FromLong(r);
}

static PyObject *Inspector_close(InspectorObject *self, PyObject *unused) {
  (void)unused;
  shmx_inspector_close(self->in);
  self->in = NULL;
  Py_RETURN_NONE;
}

static PyObject *Inspector_is_open(InspectorObject *self, PyObject *unused) {
  (void)unused;
  return PyBool_FromLong(self->in != NULL);
}

static int inspector_ok(InspectorObject *self, const char *what) {
  if (self->in == NULL) {
    raise_misuse(self->st, X_NOTOPEN, "%s: inspector is not open", what);
    return -1;
  }
  return 0;
}

static PyObject *Inspector_get_header_info(InspectorObject *self, PyObject *unused) {
  (void)unused;
  if (inspector_ok(self, "get_header_info") < 0) return NULL;
  shmx_header_info h;
  int rc = shmx_inspector_header(self->in, &h);
  if (rc < 0) return raise_last(self->st, rc, "get_header_info");
  return header_dict(&h);
}

static PyObject *Inspector_get_streams_info(InspectorObject *self, PyObject *unused) {
  (void)unused;
  if (inspector_ok(self, "get_streams_info") < 0) return NULL;
  int rc = shmx_inspector_refresh(self->in);
  if (rc < 0) return raise_last(self->st, rc, "get_streams_info");
  const shmx_stream_info *s;
  int n;
  rc = shmx_inspector_streams(self->in, &s, &n);
  if (rc < 0) return raise_last(self->st, rc, "get_streams_info");
  return streams_list(s, n);
}

static PyObject *Inspector_get_readers_info(InspectorObject *self, PyObject *unused) {
  (void)unused;
  if (inspector_ok(self, "get_readers_info") < 0) return NULL;
  shmx_header_info h;
  int rc = shmx_inspector_header(self->in, &h);
  if (rc < 0) return raise_last(self->st, rc, "get_readers_info");
  int max = (int)(h.reader_slots ? (h.reader_slots > 1024 ? 1024 : h.reader_slots) : 1);
  shmx_reader_info *r = PyMem_Calloc((size_t)max, sizeof *r);
  if (r == NULL) return PyErr_NoMemory();
  int n = shmx_inspector_readers(self->in, r, max);
  if (n < 0) {
    PyMem_Free(r);
    return raise_last(self->st, n, "get_readers_info");
  }
  PyObject *l = readers_list(r, n);
  PyMem_Free(r);
  return l;
}

static PyObject *Inspector_get_slots_info(InspectorObject *self, PyObject *unused) {
  (void)unused;
  if (inspector_ok(self, "get_slots_info") < 0) return NULL;
  shmx_header_info h;
  int rc = shmx_inspector_header(self->in, &h);
  if (rc < 0) return raise_last(self->st, rc, "get_slots_info");
  int max = (int)(h.slots ? (h.slots > 1024 ? 1024 : h.slots) : 1);
  shmx_slot_info *s = PyMem_Calloc((size_t)max, sizeof *s);
  if (s == NULL) return PyErr_NoMemory();
  int n = shmx_inspector_slots(self->in, s, max);
  if (n < 0) {
    PyMem_Free(s);
    return raise_last(self->st, n, "get_slots_info");
  }
  PyObject *l = PyList_New(0);
  for (int i = 0; l && i < n; i++) {
    static const char *states[] = {"empty", "writing", "published"};
    PyObject *d = PyDict_New();
    if (d == NULL ||
        DSET_U64(d, "index", s[i].index) < 0 ||
        dset(d, "state", PyUnicode_FromString(s[i].state < 3 ? states[s[i].state]
                                                             : "unknown")) < 0 ||
        DSET_U64(d, "frame_id", s[i].frame_id) < 0 ||
        DSET_U64(d, "pins", s[i].pins) < 0 ||
        DSET_U64(d, "payload_bytes", s[i].payload_bytes) < 0 ||
        dset(d, "latest", PyBool_FromLong(s[i].latest)) < 0 ||
        PyList_Append(l, d) < 0) {
      Py_XDECREF(d);
      Py_CLEAR(l);
      break;
    }
    Py_DECREF(d);
  }
  PyMem_Free(s);
  return l;
}

static PyObject *Inspector_inspect(InspectorObject *self, PyObject *unused) {
  (void)unused;
  if (inspector_ok(self, "inspect") < 0) return NULL;
  shmx_header_info h;
  int rc = shmx_inspector_header(self->in, &h);
  if (rc < 0) return raise_last(self->st, rc, "inspect");
  PyObject *d = PyDict_New();
  if (d == NULL) return NULL;
  if (DSET_U64(d, "session_id", h.session_id) < 0 ||
      DSET_U64(d, "static_gen", h.static_gen) < 0 ||
      DSET_U64(d, "frame_seq", h.frame_seq) < 0 ||
      DSET_U64(d, "readers_connected", h.readers_connected) < 0 ||
      DSET_I64(d, "owner_pid", h.owner_pid) < 0 ||
      dset(d, "owner_alive", h.owner_alive < 0 ? Py_NewRef(Py_None)
                                               : PyBool_FromLong(h.owner_alive)) < 0 ||
      dset(d, "closed", PyBool_FromLong(h.closed)) < 0 ||
      dset(d, "header", header_dict(&h)) < 0 ||
      dset(d, "streams", Inspector_get_streams_info(self, NULL)) < 0 ||
      dset(d, "readers", Inspector_get_readers_info(self, NULL)) < 0 ||
      dset(d, "slots", Inspector_get_slots_info(self, NULL)) < 0) {
    Py_DECREF(d);
    return NULL;
  }
  return d;
}

static PyObject *Inspector_enter(InspectorObject *self, PyObject *unused) {
  (void)unused;
  return Py_NewRef(self);
}
static PyObject *Inspector_exit(InspectorObject *self, PyObject *args) {
  (void)args;
  shmx_inspector_close(self->in);
  self->in = NULL;
  Py_RETURN_FALSE;
}
static PyObject *Inspector_get_last_error(InspectorObject *self, void *c) {
  (void)c;
  return Py_NewRef(self->last_error ? self->last_error : Py_None);
}
static PyObject *Inspector_repr(InspectorObject *self) {
  return PyUnicode_FromFormat("<shmx.Inspector name=%R %s>",
                              self->name ? self->name : Py_None,
                              self->in ? "open" : "closed");
}

static PyMethodDef Inspector_methods[] = {
  {"open", (PyCFunction)(void (*)(void))Inspector_open, METH_VARARGS | METH_KEYWORDS,
   "open(name) -> bool\n\nMap the channel read-only (works on dead/closed "
   "channels). False with last_error on failure."},
  {"close", (PyCFunction)Inspector_close, METH_NOARGS, "close()"},
  {"is_open", (PyCFunction)Inspector_is_open, METH_NOARGS, "is_open() -> bool"},
  {"inspect", (PyCFunction)Inspector_inspect, METH_NOARGS,
   "inspect() -> dict\n\nsession_id, static_gen, frame_seq, readers_connected, "
   "streams, readers (plus owner_pid, owner_alive, closed, header, slots)."},
  {"get_header_info", (PyCFunction)Inspector_get_header_info, METH_NOARGS,
   "get_header_info() -> dict"},
  {"get_streams_info", (PyCFunction)Inspector_get_streams_info, METH_NOARGS,
   "get_streams_info() -> list[dict]"},
  {"get_readers_info", (PyCFunction)Inspector_get_readers_info, METH_NOARGS,
   "get_readers_info() -> list[dict]"},
  {"get_slots_info", (PyCFunction)Inspector_get_slots_info, METH_NOARGS,
   "get_slots_info() -> list[dict]"},
  {"__enter__", (PyCFunction)Inspector_enter, METH_NOARGS, NULL},
  {"__exit__", (PyCFunction)Inspector_exit, METH_VARARGS, "close()"},
  {NULL, NULL, 0, NULL}
};
static PyGetSetDef Inspector_getset[] = {
  {"last_error", (getter)Inspector_get_last_error, NULL, "reason of the last False", NULL},
  {NULL, NULL, NULL, NULL, NULL}
};
static PyType_Slot Inspector_slots[] = {
  {Py_tp_new, Inspector_new},
  {Py_tp_init, Inspector_init},
  {Py_tp_dealloc, Inspector_dealloc},
  {Py_tp_traverse, Inspector_traverse},
  {Py_tp_clear, Inspector_clear},
  {Py_tp_repr, Inspector_repr},
  {Py_tp_methods, Inspector_methods},
  {Py_tp_getset, Inspector_getset},
  {Py_tp_doc, "Inspector(name=None)\n\nRead-only observer of a channel."},
  {0, NULL}
};
static PyType_Spec Inspector_spec = {
  "shmx.Inspector", sizeof(InspectorObject), 0,
  Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC, Inspector_slots
};

/* ========================================================================= */
/* Module functions                                                          */
/* ========================================================================= */

static PyObject *mod_dtype_to_string(PyObject *m, PyObject *o) {
  (void)m;
  uint64_t v;
  if (conv_u64(o, "dtype_code", &v) < 0) {
    if (!PyErr_ExceptionMatches(PyExc_ValueError)) return NULL;
    PyErr_Clear();
    return PyUnicode_FromString("unknown");
  }
  return PyUnicode_FromString(v > UINT32_MAX ? "unknown" : shmx_dtype_name((uint32_t)v));
}
static PyObject *mod_layout_to_string(PyObject *m, PyObject *o) {
  (void)m;
  uint64_t v;
  if (conv_u64(o, "layout_code", &v) < 0) {
    if (!PyErr_ExceptionMatches(PyExc_ValueError)) return NULL;
    PyErr_Clear();
    return PyUnicode_FromString("unknown");
  }
  return PyUnicode_FromString(v > UINT32_MAX ? "unknown" : shmx_layout_name((uint32_t)v));
}
static PyObject *mod_dtype_size(PyObject *m, PyObject *o) {
  (void)m;
  uint32_t v;
  if (conv_u32(o, "dtype_code", &v) < 0) return NULL;
  return PyLong_FromUnsignedLong(shmx_dtype_size(v));
}
static PyObject *mod_dtype_format(PyObject *m, PyObject *o) {
  (void)m;
  uint32_t v;
  if (conv_u32(o, "dtype_code", &v) < 0) return NULL;
  const char *f = dtype_format(v);
  if (f == NULL) Py_RETURN_NONE;
  return PyUnicode_FromString(f);
}
static int conv_int(PyObject *o, int *out) {
  long v = PyLong_AsLong(o);
  if (v == -1 && PyErr_Occurred()) return -1;
  if (v < INT32_MIN || v > INT32_MAX) {
    PyErr_SetString(PyExc_OverflowError, "code out of range");
    return -1;
  }
  *out = (int)v;
  return 0;
}
static PyObject *mod_strerror(PyObject *m, PyObject *o) {
  (void)m;
  int v;
  if (conv_int(o, &v) < 0) return NULL;
  return PyUnicode_FromString(shmx_strerror(v));
}
static PyObject *mod_err_name(PyObject *m, PyObject *o) {
  (void)m;
  int v;
  if (conv_int(o, &v) < 0) return NULL;
  return PyUnicode_FromString(shmx_err_name(v));
}
static PyObject *mod_error_for_code(PyObject *m, PyObject *o) {
  int v;
  if (conv_int(o, &v) < 0) return NULL;
  shmx_state *st = PyModule_GetState(m);
  return Py_NewRef(st->exc[exc_for_code(v)]);
}
static PyObject *mod_now_ns(PyObject *m, PyObject *unused) {
  (void)m;
  (void)unused;
  return PyLong_FromUnsignedLongLong(shmx_now_ns());
}

static int list_cb(const char *name, void *arg) {
  PyObject *s = PyUnicode_FromString(name);
  if (s == NULL) return -1;
  int r = PyList_Append((PyObject *)arg, s);
  Py_DECREF(s);
  return r < 0 ? -1 : 0;
}
static PyObject *mod_list_channels(PyObject *m, PyObject *unused) {
  (void)unused;
  PyObject *l = PyList_New(0);
  if (l == NULL) return NULL;
  int rc = shmx_channel_list(list_cb, l);
  if (PyErr_Occurred()) {
    Py_DECREF(l);
    return NULL;
  }
  if (rc < 0) {
    Py_DECREF(l);
    return raise_last(PyModule_GetState(m), rc, "list_channels");
  }
  if (PyList_Sort(l) < 0) {
    Py_DECREF(l);
    return NULL;
  }
  return l;
}
static PyObject *mod_remove_channel(PyObject *m, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"name", "force", NULL};
  PyObject *nameobj;
  int force = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "O|p:remove_channel", kwlist, &nameobj,
                                   &force))
    return NULL;
  shmx_state *st = PyModule_GetState(m);
  const char *name = conv_name(st, nameobj);
  if (name == NULL) return NULL;
  int rc = shmx_channel_remove(name, force);
  if (rc < 0) return raise_last(st, rc, "remove_channel");
  Py_RETURN_NONE;
}
static PyObject *mod_channel_owner_alive(PyObject *m, PyObject *nameobj) {
  shmx_state *st = PyModule_GetState(m);
  const char *name = conv_name(st, nameobj);
  if (name == NULL) return NULL;
  int rc = shmx_channel_owner_alive(name);
  if (rc < 0) return raise_last(st, rc, "channel_owner_alive");
  return PyBool_FromLong(rc);
}

static PyMethodDef module_methods[] = {
  {"dtype_to_string", mod_dtype_to_string, METH_O,
   "dtype_to_string(dtype_code) -> str ('float32', ..., 'unknown')"},
  {"layout_to_string", mod_layout_to_string, METH_O,
   "layout_to_string(layout_code) -> str ('scalar', 'vector', 'unknown')"},
  {"dtype_size", mod_dtype_size, METH_O, "dtype_size(dtype_code) -> int (0 if unknown)"},
  {"dtype_format", mod_dtype_format, METH_O,
   "dtype_format(dtype_code) -> str | None: struct format used by typed views"},
  {"strerror", mod_strerror, METH_O, "strerror(code) -> str"},
  {"err_name", mod_err_name, METH_O, "err_name(code) -> str"},
  {"error_for_code", mod_error_for_code, METH_O,
   "error_for_code(code) -> type: the ShmxError subclass raised for code"},
  {"now_ns", mod_now_ns, METH_NOARGS,
   "now_ns() -> int: CLOCK_MONOTONIC ns (heartbeat ticks, Frame.publish_ns)"},
  {"list_channels", mod_list_channels, METH_NOARGS, "list_channels() -> list[str]"},
  {"remove_channel", (PyCFunction)(void (*)(void))mod_remove_channel,
   METH_VARARGS | METH_KEYWORDS,
   "remove_channel(name, force=False)\n\nUnlink a channel. Raises "
   "ChannelExistsError if a live producer owns it (unless force)."},
  {"channel_owner_alive", mod_channel_owner_alive, METH_O,
   "channel_owner_alive(name) -> bool"},
  {NULL, NULL, 0, NULL}
};

/* ========================================================================= */
/* Module init                                                               */
/* ========================================================================= */

static PyObject *builtin_exc(int b) {
  switch (b) {
  case 1: return PyExc_FileNotFoundError;
  case 2: return PyExc_FileExistsError;
  case 3: return PyExc_PermissionError;
  case 4: return PyExc_TimeoutError;
  case 5: return PyExc_ValueError;
  case 6: return PyExc_OSError;
  default: return NULL;
  }
}

static int add_type(PyObject *m, PyTypeObject **slot, PyType_Spec *spec,
                    const char *attr) {
  *slot = (PyTypeObject *)PyType_FromModuleAndSpec(m, spec, NULL);
  if (*slot == NULL) return -1;
  if (attr != NULL && PyModule_AddObjectRef(m, attr, (PyObject *)*slot) < 0)
    return -1;
  return 0;
}

static int module_exec(PyObject *m) {
  shmx_state *st = PyModule_GetState(m);
  static int atfork_done = 0;
  if (!atfork_done) {
    if (pthread_atfork(NULL, NULL, shmx_on_fork_child) != 0) {
      PyErr_SetString(PyExc_OSError, "pthread_atfork failed");
      return -1;
    }
    atfork_done = 1;
  }
  if (add_type(m, &st->View_Type, &View_spec, "View") < 0 ||
      add_type(m, &st->Frame_Type, &Frame_spec, "Frame") < 0 ||
      add_type(m, &st->Handle_Type, &Handle_spec, "FrameHandle") < 0 ||
      add_type(m, &st->Server_Type, &Server_spec, "Server") < 0 ||
      add_type(m, &st->Client_Type, &Client_spec, "Client") < 0 ||
      add_type(m, &st->Inspector_Type, &Inspector_spec, "Inspector") < 0)
    return -1;

  for (int i = 0; i < X__COUNT; i++) {
    const exc_def *d = &exc_defs[i];
    char qual[128];
    snprintf(qual, sizeof qual, "shmx.%s", d->name);
    PyObject *bases;
    PyObject *b = builtin_exc(d->builtin);
    PyObject *parent = d->parent == X__COUNT ? PyExc_Exception : st->exc[d->parent];
    if (i == X_NOTOPEN)
      bases = PyTuple_Pack(2, st->exc[X_STATE], st->exc[X_CLOSED]);
    else if (b != NULL)
      bases = PyTuple_Pack(2, parent, b);
    else
      bases = PyTuple_Pack(1, parent);
    if (bases == NULL) return -1;
    st->exc[i] = PyErr_NewExceptionWithDoc(qual, d->doc, bases, NULL);
    Py_DECREF(bases);
    if (st->exc[i] == NULL) return -1;
    if (PyModule_AddObjectRef(m, d->name, st->exc[i]) < 0) return -1;
  }

#define INTERN(f, s) if ((st->f = PyUnicode_InternFromString(s)) == NULL) return -1
  INTERN(k_data, "data");
  INTERN(k_elem_count, "elem_count");
  INTERN(k_bytes, "bytes");
  INTERN(k_array, "array");
  INTERN(k_metadata, "__metadata__");
  INTERN(k_frame_id, "frame_id");
  INTERN(k_sim_time, "sim_time");
  INTERN(k_payload_bytes, "payload_bytes");
  INTERN(k_tlv_count, "tlv_count");
  INTERN(k_frame, "frame");
#undef INTERN

#define ADDINT(n, v) if (PyModule_AddIntConstant(m, n, (long)(v)) < 0) return -1
  ADDINT("DT_BOOL", SHMX_DT_BOOL); ADDINT("DT_I8", SHMX_DT_I8);
  ADDINT("DT_U8", SHMX_DT_U8); ADDINT("DT_I16", SHMX_DT_I16);
  ADDINT("DT_U16", SHMX_DT_U16); ADDINT("DT_I32", SHMX_DT_I32);
  ADDINT("DT_U32", SHMX_DT_U32); ADDINT("DT_I64", SHMX_DT_I64);
  ADDINT("DT_U64", SHMX_DT_U64); ADDINT("DT_F16", SHMX_DT_F16);
  ADDINT("DT_BF16", SHMX_DT_BF16); ADDINT("DT_F32", SHMX_DT_F32);
  ADDINT("DT_F64", SHMX_DT_F64);
  ADDINT("LAYOUT_SOA_SCALAR", SHMX_LAYOUT_SOA_SCALAR);
  ADDINT("LAYOUT_AOS_VECTOR", SHMX_LAYOUT_AOS_VECTOR);
  ADDINT("TLV_STATIC_DIR", SHMX_TLV_STATIC_DIR);
  ADDINT("TLV_STATIC_USER", SHMX_TLV_STATIC_USER);
  ADDINT("TLV_FRAME_STREAM", SHMX_TLV_FRAME_STREAM);
  ADDINT("TLV_CONTROL_USER", SHMX_TLV_CONTROL_USER);
  ADDINT("VERSION_MAJOR", SHMX_FORMAT_MAJOR);
  ADDINT("VERSION_MINOR", SHMX_FORMAT_MINOR);
  ADDINT("NAME_MAX", SHMX_NAME_MAX);
  ADDINT("STREAM_NAME_MAX", SHMX_STREAM_NAME_MAX);
#define XX_SYS(name, msg) ADDINT("E_" #name, SHMX_E_##name);
#define XX_OWN(name, val, msg) ADDINT("E_" #name, SHMX_E_##name);
  SHMX_SYS_ERRNO_MAP(XX_SYS)
  SHMX_ERRNO_MAP(XX_OWN)
#undef XX_SYS
#undef XX_OWN
#undef ADDINT
  if (PyModule_AddStringConstant(m, "LIB_VERSION", shmx_version_string()) < 0)
    return -1;
  return 0;
}

static int module_traverse(PyObject *m, visitproc visit, void *arg) {
  shmx_state *st = PyModule_GetState(m);
  Py_VISIT(st->Server_Type);
  Py_VISIT(st->Client_Type);
  Py_VISIT(st->Inspector_Type);
  Py_VISIT(st->Frame_Type);
  Py_VISIT(st->Handle_Type);
  Py_VISIT(st->View_Type);
  for (int i = 0; i < X__COUNT; i++) Py_VISIT(st->exc[i]);
  return 0;
}

static int module_clear(PyObject *m) {
  shmx_state *st = PyModule_GetState(m);
  Py_CLEAR(st->Server_Type);
  Py_CLEAR(st->Client_Type);
  Py_CLEAR(st->Inspector_Type);
  Py_CLEAR(st->Frame_Type);
  Py_CLEAR(st->Handle_Type);
  Py_CLEAR(st->View_Type);
  for (int i = 0; i < X__COUNT; i++) Py_CLEAR(st->exc[i]);
  Py_CLEAR(st->k_data);
  Py_CLEAR(st->k_elem_count);
  Py_CLEAR(st->k_bytes);
  Py_CLEAR(st->k_array);
  Py_CLEAR(st->k_metadata);
  Py_CLEAR(st->k_frame_id);
  Py_CLEAR(st->k_sim_time);
  Py_CLEAR(st->k_payload_bytes);
  Py_CLEAR(st->k_tlv_count);
  Py_CLEAR(st->k_frame);
  return 0;
}

static void module_free(void *m) { module_clear((PyObject *)m); }

static PyModuleDef_Slot module_slots[] = {
  {Py_mod_exec, module_exec},
  {0, NULL}
};

static struct PyModuleDef shmx_module_def = {
  PyModuleDef_HEAD_INIT,
  "_shmx",
  "shmx._shmx: shared-memory frame streaming (C binding of libshmx).",
  sizeof(shmx_state),
  module_methods,
  module_slots,
  module_traverse,
  module_clear,
  module_free,
};

PyMODINIT_FUNC PyInit__shmx(void);
PyMODINIT_FUNC PyInit__shmx(void) { return PyModuleDef_Init(&shmx_module_def); }

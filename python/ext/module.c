/*
 * module.c -- shmx._shmx: the Python binding of libshmx. This file holds
 * the argument helpers, the fork guard, the module functions and module
 * init; each type has its own file (shmxpy.h lists what they share):
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
 *   Recording    an MCAP recording read at random; its frames are Frames
 *                whose bytes the recording's mapping or chunk buffer holds.
 *   Recorder     records channels into an MCAP file (recording.c).
 *
 * Threads: libshmx handles are not thread-safe, and the GIL is released
 * around waits, creates and large copies. A `busy` flag makes a second
 * thread's call on the same handle raise RuntimeError instead of racing, and
 * frame releases requested while the client is busy are queued and done when
 * the call returns.
 */
#include "shmxpy.h"

/* ---- argument helpers --------------------------------------------------- */

int conv_u64(PyObject *o, const char *what, uint64_t *out) {
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

int conv_u32(PyObject *o, const char *what, uint32_t *out) {
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
const char *conv_name(shmx_state *st, PyObject *o) {
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
int parse_args(const char *fname, PyObject *const *args,
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

/* ---- fork guard -------------------------------------------------------- */

/* Bumped in the child after fork(). A handle made before the fork belongs to
 * the parent: in the child its methods raise and its destruction leaves the
 * channel alone (closing it there would release the parent's reader slot or
 * unlink the parent's channel). Checked with an integer compare, no syscall. */
volatile unsigned long shmx_fork_gen = 0;
static void shmx_on_fork_child(void) { shmx_fork_gen++; }

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
      add_type(m, &st->Inspector_Type, &Inspector_spec, "Inspector") < 0 ||
      add_type(m, &st->Recording_Type, &Recording_spec, "Recording") < 0 ||
      add_type(m, &st->Recorder_Type, &Recorder_spec, "Recorder") < 0)
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
  Py_VISIT(st->Recording_Type);
  Py_VISIT(st->Recorder_Type);
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
  Py_CLEAR(st->Recording_Type);
  Py_CLEAR(st->Recorder_Type);
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

struct PyModuleDef shmx_module_def = {
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

/*
 * inspector.c -- shmx._shmx: Inspector, the read-only observer behind `shmx inspect`.
 */
#include "shmxpy.h"

/* ========================================================================= */
/* Inspector                                                                 */
/* ========================================================================= */

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
PyType_Spec Inspector_spec = {
  "shmx.Inspector", sizeof(InspectorObject), 0,
  Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC, Inspector_slots
};

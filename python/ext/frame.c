/*
 * frame.c -- shmx._shmx: Frame (one pinned frame), View (buffer exporter over a stream
 * or over reserved producer space) and the client core (ccore) they share
 * with their Client.
 */
#include "shmxpy.h"

/* ========================================================================= */
/* Client core: the shmx_client* shared by a Client and its Frames.          */
/* ========================================================================= */

ccore *ccore_new(shmx_client *cl) {
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

void ccore_flush(ccore *c) {
  for (int i = 0; i < c->npending; i++)
    shmx_frame_release(c->cl, &c->pending[i]);
  c->npending = 0;
}

void ccore_decref(ccore *c) {
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

static void frame_release_pin(FrameObject *fr) {
  if (fr->held) {
    fr->held = 0;
    if (fr->core) ccore_release_frame(fr->core, &fr->f);
    else shmx_rec_frame_release(fr->rec);
  }
}

static void Frame_dealloc(FrameObject *self) {
  PyTypeObject *tp = Py_TYPE(self);
  frame_release_pin(self);
  for (Py_ssize_t i = 0; i < Py_SIZE(self); i++) Py_XDECREF(self->s[i].name);
  ccore_decref(self->core);
  PyMem_Free(self->rec);
  Py_XDECREF(self->channel);
  tp->tp_free(self);
  Py_DECREF(tp);
}

/* View: buffer exporter over a stream of a Frame or reserved Server space. */

static uint8_t empty_bytes[64];

PyObject *view_new(shmx_state *st, PyObject *owner, int is_server,
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
PyType_Spec View_spec = {
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

PyObject *frame_stream_view(FrameObject *self, Py_ssize_t i, int typed) {
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

/* A recorded frame's bytes never change while held. */
static int frame_valid(FrameObject *self) {
  return self->held && (!self->core || shmx_frame_valid(self->core->cl, &self->f));
}

static PyObject *Frame_get_valid(FrameObject *self, void *c) {
  (void)c;
  return PyBool_FromLong(frame_valid(self));
}
static PyObject *Frame_get_channel(FrameObject *self, void *c) {
  (void)c;
  return Py_NewRef(self->channel ? self->channel : Py_None);
}
static PyObject *Frame_get_log_ns(FrameObject *self, void *c) {
  (void)c;
  if (!self->rec) Py_RETURN_NONE;
  return PyLong_FromUnsignedLongLong(self->rec->log_ns);
}
static PyObject *Frame_get_position(FrameObject *self, void *c) {
  (void)c;
  if (!self->rec) Py_RETURN_NONE;
  return PyLong_FromUnsignedLongLong(self->rec->pos);
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
      !self->held ? "released" : frame_valid(self) ? "held" : "expired");
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
  {"channel", (getter)Frame_get_channel, NULL,
   "recorded frames: the channel it was recorded from (None for live frames)", NULL},
  {"log_ns", (getter)Frame_get_log_ns, NULL,
   "recorded frames: when the recorder read it (MCAP log_time, CLOCK_REALTIME "
   "ns); None for live frames", NULL},
  {"position", (getter)Frame_get_position, NULL,
   "recorded frames: its index in the recording (None for live frames)", NULL},
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
              "and every view of it are gone, or release()) or read from a "
              "Recording (its bytes stay mapped likewise). frame['name'] is "
              "a typed read-only View; frame.raw('name') a flat memoryview."},
  {0, NULL}
};
PyType_Spec Frame_spec = {
  "shmx.Frame", offsetof(FrameObject, s), sizeof(fstream),
  Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
  Frame_slots
};

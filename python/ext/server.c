/*
 * server.c -- shmx._shmx: Server, the producer, and FrameHandle: create/destroy, begin/
 * append/reserve/publish frames, control polling, reaping.
 */
#include "shmxpy.h"

/* ========================================================================= */
/* Server                                                                    */
/* ========================================================================= */

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
PyType_Spec Handle_spec = {
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
  if (parse_args("append_stream", args, nargs, kwnames, names, 3, 4, a) < 0)
    return NULL;
  uint32_t sid;
  uint64_t count = 0;
  int given = a[3] != NULL && a[3] != Py_None;
  if (conv_u32(a[1], "stream_id", &sid) < 0 ||
      (given && conv_u64(a[3], "elem_count", &count) < 0))
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
  if (!given) { /* elem_count follows from the size and bytes_per_elem */
    const shmx_stream_info *si = NULL;
    int ns = 0;
    shmx_server_streams(self->srv, &si, &ns);
    int k = 0;
    while (k < ns && si[k].id != sid) k++;
    if (k == ns) {
      PyBuffer_Release(&b);
      return raise_misuse(self->st, X_STREAM, "append_stream: unknown stream id %u",
                          (unsigned)sid);
    }
    if ((uint64_t)b.len % si[k].bytes_per_elem) {
      PyBuffer_Release(&b);
      return raise_misuse(self->st, X_SIZE, "append_stream: %zd bytes is not a whole "
                          "number of %u-byte elements of stream '%s'", b.len,
                          si[k].bytes_per_elem, si[k].name);
    }
    count = (uint64_t)b.len / si[k].bytes_per_elem;
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
  static const char *const names[] = {"frame_handle", "sim_time", "frame_id"};
  PyObject *a[3];
  if (parse_args("publish_frame", args, nargs, kwnames, names, 1, 3, a) < 0)
    return NULL;
  double t = 0.0;
  if (a[1] != NULL) {
    t = PyFloat_AsDouble(a[1]);
    if (t == -1.0 && PyErr_Occurred()) return NULL;
  }
  uint64_t want = 0;
  int given = a[2] != NULL && a[2] != Py_None;
  if (given && conv_u64(a[2], "frame_id", &want) < 0) return NULL;
  if (server_ok(self, "publish_frame") < 0 ||
      server_check_handle(self, a[0], "publish_frame") < 0 ||
      server_no_exports(self, "publish_frame") < 0)
    return NULL;
  uint64_t id = want;
  int rc = given ? shmx_server_publish_id(self->srv, want, t)
                 : shmx_server_publish(self->srv, t, &id);
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
   "append_stream(frame_handle, stream_id, data, elem_count=None) -> bool\n\n"
   "Copy any C-contiguous buffer into the frame, once. Its size in bytes must be "
   "elem_count * bytes_per_elem; without elem_count it is computed from the size "
   "(SizeMismatchError if not a whole number of elements). Returns True; raises "
   "on misuse."},
  {"reserve_stream", (PyCFunction)(void (*)(void))Server_reserve_stream,
   METH_VARARGS | METH_KEYWORDS,
   "reserve_stream(frame_handle, stream_id, elem_count, *, typed=False) -> "
   "memoryview\n\nWritable view of the stream's space in the frame, to fill in "
   "place. Release it (del / with) before publish_frame()."},
  {"publish_frame", (PyCFunction)(void (*)(void))Server_publish_frame,
   METH_FASTCALL | METH_KEYWORDS,
   "publish_frame(frame_handle, sim_time=0.0, frame_id=None) -> bool\n\n"
   "Publish the begun frame. frame_id (optional) publishes it under that id\n"
   "instead of the next one: it must exceed every id published before\n"
   "(gaps count as drops for in-order readers); for relays and replays."},
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
PyType_Spec Server_spec = {
  "shmx.Server", sizeof(ServerObject), 0,
  Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC, Server_slots
};

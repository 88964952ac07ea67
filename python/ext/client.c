/*
 * client.c -- shmx._shmx: Client, the reader: open/close, latest/next/wait, control
 * messages, status.
 */
#include "shmxpy.h"

/* ========================================================================= */
/* Client                                                                    */
/* ========================================================================= */

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
/* Seconds (None: forever) -> ns, -1 forever; -2 with an exception set. */
int64_t conv_timeout_ns(PyObject *timeout, const char *what) {
  if (timeout == NULL || timeout == Py_None) return -1;
  double t = PyFloat_AsDouble(timeout);
  if (t == -1.0 && PyErr_Occurred()) return -2;
  if (!(t >= 0.0)) {
    PyErr_Format(PyExc_ValueError, "%s: timeout must be >= 0 or None", what);
    return -2;
  }
  return t > 9.0e9 ? INT64_MAX : (int64_t)(t * 1e9);
}

/* The next wait slice of a wait that started at start and may last total_ns
 * (< 0 forever): SHMX_PY_WAIT_SLICE_NS or what is left, 0 when it is over. */
static int64_t wait_slice(uint64_t start, int64_t total_ns) {
  int64_t slice = SHMX_PY_WAIT_SLICE_NS;
  if (total_ns >= 0) {
    uint64_t el = shmx_now_ns() - start;
    int64_t left = (uint64_t)total_ns > el ? total_ns - (int64_t)el : 0;
    if (left < slice) slice = left;
  }
  return slice;
}

/* shmx_client_open, or with wait_ns != 0 shmx_client_open_wait in slices
 * with the GIL released, checking for signals (Ctrl-C) between them. */
static int open_waiting(const char *name, int64_t wait_ns, shmx_client **cl) {
  if (wait_ns == 0) return shmx_client_open(name, cl);
  uint64_t start = shmx_now_ns();
  for (;;) {
    int64_t slice = wait_slice(start, wait_ns);
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = shmx_client_open_wait(name, slice, cl);
    Py_END_ALLOW_THREADS
    int more = wait_ns < 0 || shmx_now_ns() - start < (uint64_t)wait_ns;
    if ((rc != SHMX_E_TIMEOUT && rc != SHMX_E_EINTR) || !more) return rc;
    if (PyErr_CheckSignals() < 0) return SHMX_E_EINTR; /* exception set */
  }
}

static int client_open_impl(ClientObject *self, PyObject *nameobj,
                            int raise_on_fail, int64_t wait_ns) {
  const char *name = conv_name(self->st, nameobj);
  if (name == NULL) return -1;
  if (self->core != NULL && self->core->busy && !FORKED(self->core->fork_gen)) {
    PyErr_SetString(PyExc_RuntimeError, "open: client is in use by another thread");
    return -1;
  }
  client_drop(self);
  shmx_client *cl = NULL;
  int rc = open_waiting(name, wait_ns, &cl);
  if (rc < 0 && PyErr_Occurred()) return -1; /* KeyboardInterrupt... */
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
  static char *kwlist[] = {"name", "timeout", NULL};
  PyObject *name = NULL, *timeout = NULL;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "|O$O:Client", kwlist, &name, &timeout))
    return -1;
  int64_t wait_ns = timeout ? conv_timeout_ns(timeout, "Client") : 0;
  if (wait_ns == -2) return -1;
  if (name == NULL || name == Py_None) {
    if (timeout) {
      PyErr_SetString(PyExc_TypeError, "Client: timeout needs a name");
      return -1;
    }
    return 0;
  }
  return client_open_impl(self, name, 1, wait_ns) < 0 ? -1 : 0;
}

static PyObject *Client_open(ClientObject *self, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"name", "timeout", NULL};
  PyObject *name, *timeout = NULL;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "O|$O:open", kwlist, &name, &timeout))
    return NULL;
  int64_t wait_ns = timeout ? conv_timeout_ns(timeout, "open") : 0;
  if (wait_ns == -2) return NULL;
  int r = client_open_impl(self, name, 0, wait_ns);
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
  int64_t total_ns = conv_timeout_ns(timeout, what);
  if (total_ns == -2) return NULL;
  ccore *c = client_core(self, what);
  if (c == NULL) return NULL;
  c->refs++; /* survive close() from another thread */
  uint64_t start = shmx_now_ns();
  shmx_frame f;
  PyObject *result = NULL;
  char detail[512];
  for (;;) {
    int64_t slice = wait_slice(start, total_ns);
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

static PyObject *Client_fileno(ClientObject *self, PyObject *unused) {
  (void)unused;
  ccore *c = client_core(self, "fileno");
  if (c == NULL) return NULL;
  int fd = shmx_client_fd(c->cl);
  if (fd < 0) return raise_last(self->st, fd, "fileno");
  return PyLong_FromLong(fd);
}

static PyObject *Client_arm(ClientObject *self, PyObject *unused) {
  (void)unused;
  ccore *c = client_core(self, "arm");
  if (c == NULL) return NULL;
  int rc = shmx_client_arm(c->cl);
  if (rc < 0) return raise_last(self->st, rc, "arm");
  return PyBool_FromLong(rc);
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
   "open(name, *, timeout=0) -> bool\n\nAttach as a reader. False if the channel "
   "cannot be opened (missing, closed, dead, all reader slots taken...; the "
   "reason is in last_error). Raises InvalidNameError for a bad name.\n"
   "timeout (seconds, None = forever): wait that long for the channel to appear "
   "or be re-created by a live producer (no spinning: a watch on /dev/shm); "
   "Client(name, timeout=...) does the same and raises ShmxTimeoutError."},
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
  {"fileno", (PyCFunction)Client_fileno, METH_NOARGS,
   "fileno() -> int\n\nThe client's event fd, for select/poll/epoll/asyncio "
   "(loop.add_reader). Readable means 'call arm()', not 'a frame is there'. "
   "Owned by the client: do not read or close it. Raises VersionError if the "
   "producer predates event fds (format 2.0)."},
  {"arm", (PyCFunction)Client_arm, METH_NOARGS,
   "arm() -> bool\n\nTrue if a frame newer than the last one returned is "
   "there (read it now; the event fd may stay readable until the next arm), "
   "False if not: the fd is drained and the producer rings it at its next "
   "publish (sleep until fileno() is readable). Raises "
   "ClosedError, ProducerDeadError, ProducerRestartedError, ReapedError "
   "like the reads. Call it before every sleep; never loses a wake-up."},
  {"__enter__", (PyCFunction)Client_enter, METH_NOARGS, NULL},
  {"__exit__", (PyCFunction)Client_exit, METH_VARARGS, "close()"},
  {NULL, NULL, 0, NULL}
};
static PyGetSetDef Client_getset[] = {
  {"frame_seq", (getter)Client_get_frame_seq, NULL,
   "Id of the newest published frame (0 if none): one atomic load, no frame "
   "built, no pin. The fast way to ask 'is there a newer frame?' in a polling "
   "loop: read a frame (latest_frame) only when it exceeds the id you last "
   "read.", NULL},
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
PyType_Spec Client_spec = {
  "shmx.Client", sizeof(ClientObject), 0,
  Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC, Client_slots
};

/*
 * recording.c -- shmx._shmx: Recording (read an MCAP recording at random,
 * frames as the same Frame/View objects a live Client returns) and Recorder
 * (record channels from Python). Over include/shmx_record.h.
 *
 * Reads keep the GIL: they are index look-ups and, for compressed chunks,
 * one decompression; frames hold their bytes by reference (a mapped window
 * or a decompressed chunk), so a Frame stays valid after close(). A
 * Recorder's run() releases the GIL and runs in slices so Ctrl-C and stop()
 * act within 100 ms.
 */
#include "shmxpy.h"

#include <stdatomic.h>

typedef struct RecordingObject {
  PyObject_HEAD
  shmx_state *st;
  shmx_recording *r;
  PyObject *path;
  PyObject **names;   /* per channel: tuple of stream names */
  PyObject **topics;  /* per channel: str */
  uint32_t n;
  PyObject *weakreflist;
} RecordingObject;

static void recording_free(RecordingObject *self) {
  for (uint32_t i = 0; i < self->n; i++) {
    Py_XDECREF(self->names[i]);
    Py_XDECREF(self->topics[i]);
  }
  PyMem_Free(self->names);
  PyMem_Free(self->topics);
  self->names = self->topics = NULL;
  self->n = 0;
  shmx_recording_close(self->r);
  self->r = NULL;
}

static void Recording_dealloc(RecordingObject *self) {
  PyTypeObject *tp = Py_TYPE(self);
  if (self->weakreflist) PyObject_ClearWeakRefs((PyObject *)self);
  recording_free(self);
  Py_XDECREF(self->path);
  tp->tp_free(self);
  Py_DECREF(tp);
}

static PyObject *Recording_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"path", NULL};
  PyObject *path;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "O&:Recording", kwlist, PyUnicode_FSConverter,
                                   &path))
    return NULL;
  shmx_state *st = state_from_type(type);
  if (st == NULL) {
    Py_DECREF(path);
    return NULL;
  }
  RecordingObject *self = (RecordingObject *)type->tp_alloc(type, 0);
  if (self == NULL) {
    Py_DECREF(path);
    return NULL;
  }
  self->st = st;
  self->path = path;
  int rc = shmx_recording_open(PyBytes_AS_STRING(path), &self->r);
  if (rc) {
    raise_last(st, rc, "Recording");
    Py_DECREF(self);
    return NULL;
  }
  shmx_rec_info in;
  shmx_recording_info(self->r, &in);
  self->names = PyMem_Calloc(in.channels ? in.channels : 1, sizeof *self->names);
  self->topics = PyMem_Calloc(in.channels ? in.channels : 1, sizeof *self->topics);
  if (!self->names || !self->topics) {
    PyErr_NoMemory();
    Py_DECREF(self);
    return NULL;
  }
  self->n = in.channels;
  for (uint32_t i = 0; i < in.channels; i++) {
    const shmx_rec_channel *c = shmx_recording_channel(self->r, i);
    self->topics[i] = PyUnicode_DecodeUTF8(c->topic, (Py_ssize_t)strlen(c->topic), "replace");
    self->names[i] = PyTuple_New(c->n_streams);
    if (!self->topics[i] || !self->names[i]) {
      Py_DECREF(self);
      return NULL;
    }
    for (int s = 0; s < c->n_streams; s++) {
      PyObject *nm = PyUnicode_DecodeUTF8(c->streams[s].name,
                                          (Py_ssize_t)strlen(c->streams[s].name), "replace");
      if (!nm) {
        Py_DECREF(self);
        return NULL;
      }
      PyTuple_SET_ITEM(self->names[i], s, nm);
    }
  }
  return (PyObject *)self;
}

static int check_open(RecordingObject *self, const char *what) {
  if (self->r) return 0;
  raise_misuse(self->st, X_NOTOPEN, "%s: recording is closed", what);
  return -1;
}

/* A Frame for the frame at pos. */
static PyObject *make_frame(RecordingObject *self, uint64_t pos) {
  shmx_rec_frame *rf = PyMem_Malloc(sizeof *rf);
  if (!rf) return PyErr_NoMemory();
  int rc = shmx_recording_read_at(self->r, pos, rf);
  if (rc) {
    PyMem_Free(rf);
    return raise_last(self->st, rc, "Recording");
  }
  uint32_t n = rf->tlv_count;
  FrameObject *fr = (FrameObject *)self->st->Frame_Type->tp_alloc(self->st->Frame_Type,
                                                                  (Py_ssize_t)n);
  if (fr == NULL) {
    shmx_rec_frame_release(rf);
    PyMem_Free(rf);
    return NULL;
  }
  fr->st = self->st;
  fr->core = NULL;
  fr->rec = rf;
  fr->held = 1;
  fr->channel = Py_NewRef(self->topics[rf->channel]);
  fr->f.frame_id = rf->frame_id;
  fr->f.sim_time = rf->sim_time;
  fr->f.publish_ns = rf->publish_ns;
  fr->f.payload_bytes = rf->payload_bytes;
  fr->f.tlv_count = n;
  fr->f.dropped = rf->dropped;
  fr->f.streams = rf->streams;
  const shmx_rec_channel *c = shmx_recording_channel(self->r, rf->channel);
  for (uint32_t i = 0; i < n; i++) {
    const shmx_frame_stream *fs = &rf->streams[i];
    fstream *s = &fr->s[i];
    s->data = fs->data;
    s->bytes = fs->bytes;
    s->elem_count = fs->elem_count;
    s->id = fs->stream_id;
    if (fs->index < (uint32_t)c->n_streams) {
      const shmx_stream_info *si = &c->streams[fs->index];
      s->name = Py_NewRef(PyTuple_GET_ITEM(self->names[rf->channel], fs->index));
      s->dtype = si->dtype;
      s->components = si->components;
      s->bytes_per_elem = si->bytes_per_elem;
    } else {
      s->name = PyUnicode_FromFormat("stream_%u", (unsigned)fs->stream_id);
      s->dtype = 0;
      s->components = 1;
      s->bytes_per_elem = 1;
      if (s->name == NULL) {
        Py_DECREF(fr);
        return NULL;
      }
    }
  }
  return (PyObject *)fr;
}

/* channel=None or a str: the topic, as UTF-8 (NULL: any). */
static int conv_topic(PyObject *o, const char **out) {
  *out = NULL;
  if (o == NULL || o == Py_None) return 0;
  if (!PyUnicode_Check(o)) {
    PyErr_Format(PyExc_TypeError, "channel must be a str or None, not %.100s",
                 Py_TYPE(o)->tp_name);
    return -1;
  }
  Py_ssize_t n;
  *out = PyUnicode_AsUTF8AndSize(o, &n);
  if (*out == NULL) return -1;
  if ((size_t)n != strlen(*out)) {
    PyErr_SetString(PyExc_ValueError, "channel name contains NUL");
    return -1;
  }
  return 0;
}

static uint64_t info_frames(RecordingObject *self) {
  shmx_rec_info in;
  shmx_recording_info(self->r, &in);
  return in.frames;
}

static Py_ssize_t Recording_len(RecordingObject *self) {
  if (check_open(self, "len") < 0) return -1;
  return (Py_ssize_t)info_frames(self);
}

static PyObject *Recording_item(RecordingObject *self, Py_ssize_t i) {
  if (check_open(self, "Recording[i]") < 0) return NULL;
  Py_ssize_t n = (Py_ssize_t)info_frames(self);
  if (i < 0 || i >= n) { /* (negative indexes arrive already offset by len) */
    PyErr_SetString(PyExc_IndexError, "recording position out of range");
    return NULL;
  }
  return make_frame(self, (uint64_t)i);
}

static PyObject *Recording_read(RecordingObject *self, PyObject *arg) {
  uint64_t pos;
  if (check_open(self, "read") < 0 || conv_u64(arg, "position", &pos) < 0) return NULL;
  return make_frame(self, pos);
}

static PyObject *Recording_find(RecordingObject *self, PyObject *const *args, Py_ssize_t nargs,
                                PyObject *kwnames) {
  static const char *const names[] = {"frame_id", "channel"};
  PyObject *a[2];
  uint64_t id, pos;
  const char *topic;
  if (parse_args("find", args, nargs, kwnames, names, 1, 2, a) < 0 ||
      check_open(self, "find") < 0 || conv_u64(a[0], "frame_id", &id) < 0 ||
      conv_topic(a[1], &topic) < 0)
    return NULL;
  int rc = shmx_recording_find_id(self->r, topic, id, &pos);
  if (rc) return raise_last(self->st, rc, "find");
  return PyLong_FromUnsignedLongLong(pos);
}

static PyObject *Recording_frame(RecordingObject *self, PyObject *const *args, Py_ssize_t nargs,
                                 PyObject *kwnames) {
  PyObject *pos = Recording_find(self, args, nargs, kwnames);
  if (pos == NULL) return NULL;
  PyObject *f = make_frame(self, PyLong_AsUnsignedLongLong(pos));
  Py_DECREF(pos);
  return f;
}

/* seconds from the first frame -> position of the last frame at or before */
static PyObject *Recording_find_time(RecordingObject *self, PyObject *const *args,
                                     Py_ssize_t nargs, PyObject *kwnames) {
  static const char *const names[] = {"seconds", "channel"};
  PyObject *a[2];
  const char *topic;
  if (parse_args("find_time", args, nargs, kwnames, names, 1, 2, a) < 0 ||
      check_open(self, "find_time") < 0 || conv_topic(a[1], &topic) < 0)
    return NULL;
  double s = PyFloat_AsDouble(a[0]);
  if (s == -1.0 && PyErr_Occurred()) return NULL;
  if (s != s) {
    PyErr_SetString(PyExc_ValueError, "seconds is NaN");
    return NULL;
  }
  shmx_rec_info in;
  shmx_recording_info(self->r, &in);
  uint64_t t = s <= 0 ? in.start_ns
             : s >= 1.8e10 ? UINT64_MAX
             : in.start_ns + (uint64_t)(s * 1e9 + 0.5);
  if (t < in.start_ns) t = UINT64_MAX; /* wrapped */
  uint64_t pos;
  int rc = shmx_recording_find_time(self->r, topic, t, &pos);
  if (rc) return raise_last(self->st, rc, "find_time");
  return PyLong_FromUnsignedLongLong(pos);
}

static PyObject *Recording_at(RecordingObject *self, PyObject *const *args, Py_ssize_t nargs,
                              PyObject *kwnames) {
  PyObject *pos = Recording_find_time(self, args, nargs, kwnames);
  if (pos == NULL) return NULL;
  PyObject *f = make_frame(self, PyLong_AsUnsignedLongLong(pos));
  Py_DECREF(pos);
  return f;
}

/* step(position, direction, channel=None) -> position or None at an end */
static PyObject *Recording_step(RecordingObject *self, PyObject *const *args, Py_ssize_t nargs,
                                PyObject *kwnames) {
  static const char *const names[] = {"position", "direction", "channel"};
  PyObject *a[3];
  uint64_t pos;
  const char *topic;
  if (parse_args("step", args, nargs, kwnames, names, 2, 3, a) < 0 ||
      check_open(self, "step") < 0 || conv_u64(a[0], "position", &pos) < 0 ||
      conv_topic(a[2], &topic) < 0)
    return NULL;
  long dir = PyLong_AsLong(a[1]);
  if (dir == -1 && PyErr_Occurred()) return NULL;
  if (dir == 0) {
    PyErr_SetString(PyExc_ValueError, "direction must be 1 or -1");
    return NULL;
  }
  int rc = shmx_recording_step(self->r, topic, dir > 0 ? 1 : -1, &pos);
  if (rc == SHMX_E_NOFRAME) Py_RETURN_NONE;
  if (rc) return raise_last(self->st, rc, "step");
  return PyLong_FromUnsignedLongLong(pos);
}

static PyObject *Recording_close(RecordingObject *self, PyObject *unused) {
  (void)unused;
  recording_free(self);
  Py_RETURN_NONE;
}

static PyObject *Recording_enter(RecordingObject *self, PyObject *unused) {
  (void)unused;
  if (check_open(self, "with") < 0) return NULL;
  return Py_NewRef(self);
}

static PyObject *Recording_exit(RecordingObject *self, PyObject *args) {
  (void)args;
  recording_free(self);
  Py_RETURN_FALSE;
}

static PyObject *Recording_count_dropped(RecordingObject *self, PyObject *unused) {
  (void)unused;
  uint64_t d;
  if (check_open(self, "count_dropped") < 0) return NULL;
  int rc = shmx_recording_count_dropped(self->r, &d);
  if (rc) return raise_last(self->st, rc, "count_dropped");
  return PyLong_FromUnsignedLongLong(d);
}

static PyObject *Recording_get_info(RecordingObject *self, void *c) {
  (void)c;
  if (check_open(self, "info") < 0) return NULL;
  shmx_rec_info in;
  shmx_recording_info(self->r, &in);
  PyObject *d = PyDict_New();
  if (d == NULL) return NULL;
  if (DSET_U64(d, "frames", in.frames) < 0 || DSET_U64(d, "chunks", in.chunks) < 0 ||
      DSET_U64(d, "start_ns", in.start_ns) < 0 || DSET_U64(d, "end_ns", in.end_ns) < 0 ||
      DSET_U64(d, "file_bytes", in.file_bytes) < 0 ||
      dset(d, "library", PyUnicode_DecodeUTF8(in.library, (Py_ssize_t)strlen(in.library),
                                              "replace")) < 0 ||
      dset(d, "compression", PyUnicode_FromString(in.compression)) < 0) {
    Py_DECREF(d);
    return NULL;
  }
  return d;
}

static PyObject *Recording_get_channels(RecordingObject *self, void *c) {
  (void)c;
  if (check_open(self, "channels") < 0) return NULL;
  PyObject *l = PyList_New(0);
  if (l == NULL) return NULL;
  for (uint32_t i = 0; i < self->n; i++) {
    const shmx_rec_channel *ch = shmx_recording_channel(self->r, i);
    PyObject *d = PyDict_New();
    if (d == NULL) goto fail;
    if (DSET_U64(d, "id", ch->id) < 0 || dset(d, "name", Py_NewRef(self->topics[i])) < 0 ||
        DSET_U64(d, "session_id", ch->session) < 0 ||
        DSET_U64(d, "schema_gen", ch->schema_gen) < 0 || DSET_U64(d, "frames", ch->frames) < 0 ||
        DSET_U64(d, "slots", ch->slots) < 0 || DSET_U64(d, "reader_slots", ch->reader_slots) < 0 ||
        DSET_U64(d, "frame_bytes_cap", ch->frame_bytes_cap) < 0 ||
        dset(d, "streams", streams_list(ch->streams, ch->n_streams)) < 0 ||
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

static PyObject *Recording_get_path(RecordingObject *self, void *c) {
  (void)c;
  return PyUnicode_DecodeFSDefault(PyBytes_AS_STRING(self->path));
}

static PyObject *Recording_get_closed(RecordingObject *self, void *c) {
  (void)c;
  return PyBool_FromLong(self->r == NULL);
}

static PyObject *Recording_repr(RecordingObject *self) {
  if (!self->r) return PyUnicode_FromFormat("<shmx.Recording %R closed>", self->path);
  shmx_rec_info in;
  shmx_recording_info(self->r, &in);
  return PyUnicode_FromFormat("<shmx.Recording %R frames=%llu channels=%u>", self->path,
                              (unsigned long long)in.frames, in.channels);
}

static PyMethodDef Recording_methods[] = {
  {"read", (PyCFunction)Recording_read, METH_O,
   "read(position) -> Frame\n\nThe frame at a position (0 .. len - 1: log time order)."},
  {"find", (PyCFunction)(void (*)(void))Recording_find, METH_FASTCALL | METH_KEYWORDS,
   "find(frame_id, channel=None) -> int\n\nPosition of the frame with this id (binary "
   "search over the chunk indexes). NoFrameError if the recording lacks it (the "
   "recorder missed it, or it is outside the file)."},
  {"frame", (PyCFunction)(void (*)(void))Recording_frame, METH_FASTCALL | METH_KEYWORDS,
   "frame(frame_id, channel=None) -> Frame\n\nThe frame with this id (see find)."},
  {"find_time", (PyCFunction)(void (*)(void))Recording_find_time,
   METH_FASTCALL | METH_KEYWORDS,
   "find_time(seconds, channel=None) -> int\n\nPosition of the last frame logged at or "
   "before `seconds` after the first frame (the first frame if earlier)."},
  {"at", (PyCFunction)(void (*)(void))Recording_at, METH_FASTCALL | METH_KEYWORDS,
   "at(seconds, channel=None) -> Frame\n\nThe frame find_time() finds."},
  {"step", (PyCFunction)(void (*)(void))Recording_step, METH_FASTCALL | METH_KEYWORDS,
   "step(position, direction, channel=None) -> int or None\n\nThe position of the next "
   "(direction 1) or previous (-1) frame, of `channel` if given; None at either end."},
  {"count_dropped", (PyCFunction)Recording_count_dropped, METH_NOARGS,
   "count_dropped() -> int\n\nFrames the recorder missed, summed over every frame's own "
   "count (reads every chunk once)."},
  {"close", (PyCFunction)Recording_close, METH_NOARGS,
   "close()\n\nRelease the file. Frames already read stay valid until released."},
  {"__enter__", (PyCFunction)Recording_enter, METH_NOARGS, NULL},
  {"__exit__", (PyCFunction)Recording_exit, METH_VARARGS, NULL},
  {NULL, NULL, 0, NULL}
};

static PyGetSetDef Recording_getset[] = {
  {"info", (getter)Recording_get_info, NULL,
   "dict: frames, chunks, start_ns, end_ns (log times, CLOCK_REALTIME ns), "
   "file_bytes, library, compression", NULL},
  {"channels", (getter)Recording_get_channels, NULL,
   "list of dicts, one per recorded channel session and schema: id, name, "
   "session_id, schema_gen, frames, slots, reader_slots, frame_bytes_cap, streams", NULL},
  {"path", (getter)Recording_get_path, NULL, "the file's path", NULL},
  {"closed", (getter)Recording_get_closed, NULL, "True after close()", NULL},
  {NULL, NULL, NULL, NULL, NULL}
};

static PyMemberDef Recording_members[] = {
  {"__weaklistoffset__", T_PYSSIZET, offsetof(RecordingObject, weakreflist), READONLY, NULL},
  {NULL, 0, 0, 0, NULL}
};

static PyType_Slot Recording_slots[] = {
  {Py_tp_new, Recording_new},
  {Py_tp_dealloc, Recording_dealloc},
  {Py_tp_repr, Recording_repr},
  {Py_tp_methods, Recording_methods},
  {Py_tp_getset, Recording_getset},
  {Py_tp_members, Recording_members},
  {Py_sq_length, Recording_len},
  {Py_sq_item, Recording_item},
  {Py_tp_doc, "Recording(path)\n\nAn MCAP recording made by shmx record / Recorder, "
              "opened for random access: only its summary is read; frames come back "
              "as Frame objects (zero copy for uncompressed chunks). rec[i], len(rec), "
              "rec.frame(frame_id), rec.at(seconds), iteration both ways "
              "(rec.frames(...), reversed(rec))."},
  {0, NULL}
};

/* Mutable: shmx/__init__.py adds the iteration helpers written in Python. */
PyType_Spec Recording_spec = {
  "shmx.Recording", sizeof(RecordingObject), 0, Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
  Recording_slots
};

/* ========================================================================= */
/* Recorder                                                                  */
/* ========================================================================= */

typedef struct RecorderObject {
  PyObject_HEAD
  shmx_state *st;
  shmx_recorder *r;
  _Atomic int stop;   /* set by stop() in any thread */
  int busy;
  PyObject *path;
} RecorderObject;

static void Recorder_dealloc(RecorderObject *self) {
  PyTypeObject *tp = Py_TYPE(self);
  if (self->r) shmx_recorder_close(self->r); /* finishes the file */
  Py_XDECREF(self->path);
  tp->tp_free(self);
  Py_DECREF(tp);
}

static int opt_u64(PyObject *o, const char *what, uint64_t *out) {
  return o == NULL || o == Py_None ? 0 : conv_u64(o, what, out);
}

static PyObject *Recorder_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"path", "channels", "compression", "level", "chunk_bytes",
                           "chunk_ms", "split_bytes", "split_seconds", "crc", "sync",
                           "mode", "foxglove", NULL};
  PyObject *path, *channels, *level = NULL, *chunk_bytes = NULL, *chunk_ms = NULL,
           *split_bytes = NULL, *mode = NULL;
  const char *comp = "none";
  double split_s = 0;
  int crc = 1, sync = 0, fox = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "O&O|$sOOOOdppOp:Recorder", kwlist,
                                   PyUnicode_FSConverter, &path, &channels, &comp, &level,
                                   &chunk_bytes, &chunk_ms, &split_bytes, &split_s, &crc,
                                   &sync, &mode, &fox))
    return NULL;
  shmx_state *st = state_from_type(type);
  RecorderObject *self = st ? (RecorderObject *)type->tp_alloc(type, 0) : NULL;
  if (self == NULL) {
    Py_DECREF(path);
    return NULL;
  }
  self->st = st;
  self->path = path;
  shmx_rec_config cfg;
  shmx_rec_config_init(&cfg);
  uint64_t v = 0;
  if (!strcmp(comp, "zstd")) cfg.compression = SHMX_REC_ZSTD;
  else if (!strcmp(comp, "lz4")) cfg.compression = SHMX_REC_LZ4;
  else if (strcmp(comp, "none")) {
    PyErr_Format(PyExc_ValueError, "compression must be 'none', 'zstd' or 'lz4', not '%s'", comp);
    goto fail;
  }
  if (opt_u64(level, "level", &v) < 0) goto fail;
  cfg.level = (int)(v > 22 ? 22 : v);
  if (opt_u64(chunk_bytes, "chunk_bytes", &cfg.chunk_bytes) < 0) goto fail;
  v = 0;
  if (opt_u64(chunk_ms, "chunk_ms", &v) < 0) goto fail;
  if (v) cfg.chunk_ns = v * 1000000;
  if (opt_u64(split_bytes, "split_bytes", &cfg.split_bytes) < 0) goto fail;
  if (!(split_s >= 0) || split_s > 1e9) {
    PyErr_SetString(PyExc_ValueError, "split_seconds must be >= 0");
    goto fail;
  }
  cfg.split_ns = (uint64_t)(split_s * 1e9);
  cfg.no_crc = !crc;
  cfg.sync = sync;
  cfg.foxglove = fox;
  v = 0600;
  if (opt_u64(mode, "mode", &v) < 0) goto fail;
  cfg.mode = (uint32_t)(v > 07777 ? 0 : v);
  if (v > 0777) {
    PyErr_SetString(PyExc_ValueError, "mode must be permission bits (e.g. 0o640)");
    goto fail;
  }
  /* Names checked before the file is created: nothing to clean up after. */
  PyObject *seq = PySequence_Fast(channels, "channels must be a sequence of names");
  if (seq == NULL) goto fail;
  Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
  int rc = 0;
  if (n < 1 || n > 64) {
    PyErr_SetString(PyExc_ValueError, "channels: 1 to 64 channel names");
    Py_DECREF(seq);
    goto fail;
  }
  for (Py_ssize_t i = 0; i < n; i++) {
    const char *name = conv_name(st, PySequence_Fast_GET_ITEM(seq, i));
    if (name == NULL) {
      Py_DECREF(seq);
      goto fail;
    }
    for (Py_ssize_t j = 0; j < i; j++) {
      int eq = PyObject_RichCompareBool(PySequence_Fast_GET_ITEM(seq, i),
                                        PySequence_Fast_GET_ITEM(seq, j), Py_EQ);
      if (eq) {
        if (eq > 0) raise_misuse(st, X_DUPLICATE, "channel '%s' given twice", name);
        Py_DECREF(seq);
        goto fail;
      }
    }
  }
  rc = shmx_recorder_open(PyBytes_AS_STRING(path), &cfg, &self->r);
  if (rc) {
    Py_DECREF(seq);
    raise_last(st, rc, "Recorder");
    goto fail;
  }
  for (Py_ssize_t i = 0; i < n && !rc; i++)
    rc = shmx_recorder_add(self->r, PyUnicode_AsUTF8(PySequence_Fast_GET_ITEM(seq, i)));
  Py_DECREF(seq);
  if (rc) { /* cannot happen: checked above */
    raise_last(st, rc, "Recorder");
    goto fail;
  }
  return (PyObject *)self;
fail:
  Py_DECREF(self);
  return NULL;
}

static int rec_ready(RecorderObject *self, const char *what) {
  if (self->r == NULL) {
    raise_misuse(self->st, X_NOTOPEN, "%s: recorder is closed", what);
    return -1;
  }
  if (self->busy) {
    PyErr_Format(PyExc_RuntimeError, "%s: recorder is running in another thread", what);
    return -1;
  }
  return 0;
}

/* run(timeout=None, max_frames=0): record until timeout seconds pass (None:
 * until stop()), max_frames are recorded in all, or stop() is called. */
static PyObject *Recorder_run(RecorderObject *self, PyObject *const *args, Py_ssize_t nargs,
                              PyObject *kwnames) {
  static const char *const names[] = {"timeout", "max_frames"};
  PyObject *a[2];
  uint64_t maxf = 0;
  if (parse_args("run", args, nargs, kwnames, names, 0, 2, a) < 0 ||
      rec_ready(self, "run") < 0 || opt_u64(a[1], "max_frames", &maxf) < 0)
    return NULL;
  int64_t t = conv_timeout_ns(a[0], "run");
  if (t == -2) return NULL;
  atomic_store(&self->stop, 0);
  self->busy = 1;
  uint64_t start = shmx_now_ns();
  int rc = 0;
  for (;;) {
    int64_t slice = 100 * 1000 * 1000;
    if (t >= 0) {
      uint64_t spent = shmx_now_ns() - start;
      if (spent >= (uint64_t)t) break;
      if ((uint64_t)t - spent < (uint64_t)slice) slice = (int64_t)((uint64_t)t - spent);
    }
    shmx_recorder *r = self->r;
    Py_BEGIN_ALLOW_THREADS
    rc = shmx_recorder_run(r, slice, maxf, NULL);
    Py_END_ALLOW_THREADS
    if (rc || atomic_load(&self->stop)) break;
    shmx_rec_stats s;
    shmx_recorder_stats(self->r, &s);
    if (maxf && s.frames >= maxf) break;
    if (PyErr_CheckSignals() < 0) {
      self->busy = 0;
      return NULL;
    }
  }
  self->busy = 0;
  if (rc) return raise_last(self->st, rc, "run");
  Py_RETURN_NONE;
}

static PyObject *Recorder_stop(RecorderObject *self, PyObject *unused) {
  (void)unused;
  atomic_store(&self->stop, 1); /* the running run() returns after its slice */
  if (self->r) shmx_recorder_stop(self->r); /* ... which ends at once */
  Py_RETURN_NONE;
}

static PyObject *Recorder_stats(RecorderObject *self, PyObject *unused) {
  (void)unused;
  if (self->r == NULL) return raise_misuse(self->st, X_NOTOPEN, "stats: recorder is closed");
  shmx_rec_stats s;
  shmx_recorder_stats(self->r, &s);
  PyObject *d = PyDict_New();
  if (d == NULL) return NULL;
  if (DSET_U64(d, "frames", s.frames) < 0 || DSET_U64(d, "bytes", s.bytes) < 0 ||
      DSET_U64(d, "dropped", s.dropped) < 0 || DSET_U64(d, "file_bytes", s.file_bytes) < 0 ||
      DSET_U64(d, "chunks", s.chunks) < 0 || DSET_U64(d, "files", s.files) < 0 ||
      DSET_U64(d, "attached", s.attached) < 0 || DSET_U64(d, "sessions", s.sessions) < 0) {
    Py_DECREF(d);
    return NULL;
  }
  return d;
}

static PyObject *Recorder_close(RecorderObject *self, PyObject *unused) {
  (void)unused;
  if (self->r == NULL) Py_RETURN_NONE;
  if (self->busy) {
    PyErr_SetString(PyExc_RuntimeError, "close: recorder is running in another thread "
                                        "(stop() it and wait for run() to return)");
    return NULL;
  }
  int rc = shmx_recorder_close(self->r);
  self->r = NULL;
  if (rc) return raise_last(self->st, rc, "close");
  Py_RETURN_NONE;
}

static PyObject *Recorder_enter(RecorderObject *self, PyObject *unused) {
  (void)unused;
  if (rec_ready(self, "with") < 0) return NULL;
  return Py_NewRef(self);
}

static PyObject *Recorder_exit(RecorderObject *self, PyObject *args) {
  (void)args;
  PyObject *r = Recorder_close(self, NULL);
  if (r == NULL) return NULL;
  Py_DECREF(r);
  Py_RETURN_FALSE;
}

static PyObject *Recorder_get_path(RecorderObject *self, void *c) {
  (void)c;
  if (self->r == NULL) Py_RETURN_NONE;
  if (self->busy) { /* it changes at a split: only between runs */
    PyErr_SetString(PyExc_RuntimeError, "path: recorder is running in another thread");
    return NULL;
  }
  return PyUnicode_DecodeFSDefault(shmx_recorder_path(self->r));
}

static PyMethodDef Recorder_methods[] = {
  {"run", (PyCFunction)(void (*)(void))Recorder_run, METH_FASTCALL | METH_KEYWORDS,
   "run(timeout=None, max_frames=0)\n\nRecord (GIL released) until `timeout` seconds "
   "pass (None: until stop()), max_frames frames were recorded in all, or stop() "
   "is called from another thread. Ctrl-C raises KeyboardInterrupt within 0.1 s."},
  {"stop", (PyCFunction)Recorder_stop, METH_NOARGS,
   "stop()\n\nMake a run() in another thread return at once (thread-safe)."},
  {"stats", (PyCFunction)Recorder_stats, METH_NOARGS,
   "stats() -> dict\n\nframes, bytes, dropped (frames missed), file_bytes, chunks, "
   "files, attached (channels read now), sessions (producer sessions seen)."},
  {"close", (PyCFunction)Recorder_close, METH_NOARGS,
   "close()\n\nFinish the file (summary, footer) and rename it from .part."},
  {"__enter__", (PyCFunction)Recorder_enter, METH_NOARGS, NULL},
  {"__exit__", (PyCFunction)Recorder_exit, METH_VARARGS, NULL},
  {NULL, NULL, 0, NULL}
};

static PyGetSetDef Recorder_getset[] = {
  {"path", (getter)Recorder_get_path, NULL,
   "the file being written now (ends in .part); None once closed; RuntimeError "
   "while run() runs in another thread (stats() works then)", NULL},
  {NULL, NULL, NULL, NULL, NULL}
};

static PyType_Slot Recorder_slots[] = {
  {Py_tp_new, Recorder_new},
  {Py_tp_dealloc, Recorder_dealloc},
  {Py_tp_methods, Recorder_methods},
  {Py_tp_getset, Recorder_getset},
  {Py_tp_doc, "Recorder(path, channels, *, compression='none', level=0, "
              "chunk_bytes=4 MiB, chunk_ms=1000, split_bytes=0, split_seconds=0, "
              "crc=True, sync=False, mode=0o600, foxglove=False)\n\nRecord channels into "
              "an MCAP file (as `shmx record`). run() records; close() finishes the file."},
  {0, NULL}
};

PyType_Spec Recorder_spec = {
  "shmx.Recorder", sizeof(RecorderObject), 0,
  Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE, Recorder_slots
};

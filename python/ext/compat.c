/*
 * compat.c -- shmx._shmx: the shmx 1.0.1 dict shapes: header/stream/reader info dicts and
 * the recycled get_latest_frame() result records.
 */
#include "shmxpy.h"

/* ---- dict helpers ------------------------------------------------------- */

int dset(PyObject *d, const char *k, PyObject *v) {
  if (v == NULL) return -1;
  int r = PyDict_SetItemString(d, k, v);
  Py_DECREF(v);
  return r;
}

PyObject *header_dict(const shmx_header_info *h) {
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
      DSET_U64(d, "waiters", h->waiters) < 0 ||
      DSET_U64(d, "fd_armed", h->fd_armed) < 0 ||
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

PyObject *streams_list(const shmx_stream_info *s, int n) {
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

PyObject *readers_list(const shmx_reader_info *r, int n) {
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
const char *dtype_format(uint32_t dtype) {
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

/* CPython up to 3.11 gives every dict a version tag that changes on every
 * modification (PEP 509; deprecated in 3.12): a dict we recycle is
 * unmodified iff its tag is the one we saw. Elsewhere the contents are
 * compared entry by entry. */

/* Forget a record: detach first, then drop the references (a dict the user
 * modified may run arbitrary __del__ code, which may call back into us). */
void rec_clear(result_rec *r) {
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
int rec_build(FrameObject *fr, result_rec *r) {
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

PyObject *frame_to_dict(FrameObject *self) {
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
int rec_idle(shmx_state *st, const result_rec *r) {
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
int rec_views_live(const result_rec *r) {
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
int rec_refill(FrameObject *fr, result_rec *r) {
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
int rec_fits(const result_rec *r, const FrameObject *fr) {
  if (r->o == NULL || r->n != Py_SIZE(fr)) return 0;
  for (Py_ssize_t i = 0; i < r->n; i++)
    if (r->o[REC_HEAD + REC_STREAM * i] != fr->s[i].name) return 0;
  return 1;
}

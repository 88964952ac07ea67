/*
 * shmxpy.h -- what the files of shmx._shmx share: the module state, the
 * object structs, and the functions one file defines for another.
 * Internal to the extension; nothing here is exported from the .so.
 */
#ifndef SHMXPY_H
#define SHMXPY_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "shmx.h"
#include "shmx_record.h"

/* Copies at least this big release the GIL. */
#define SHMX_PY_NOGIL_BYTES (256u * 1024u)
/* A blocking wait runs in slices this long so Ctrl-C and close() act. */
#define SHMX_PY_WAIT_SLICE_NS (50u * 1000u * 1000u)
/* Upper bound for poll_control(max_messages). */
#define SHMX_PY_POLL_MAX 65536

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

typedef struct shmx_state {
  PyTypeObject *Server_Type;
  PyTypeObject *Client_Type;
  PyTypeObject *Inspector_Type;
  PyTypeObject *Frame_Type;
  PyTypeObject *Handle_Type;
  PyTypeObject *View_Type;
  PyTypeObject *Recording_Type;
  PyTypeObject *Recorder_Type;
  PyObject *exc[X__COUNT];
  /* interned dict keys */
  PyObject *k_data, *k_elem_count, *k_bytes, *k_array, *k_metadata,
      *k_frame_id, *k_sim_time, *k_payload_bytes, *k_tlv_count, *k_frame;
} shmx_state;

extern struct PyModuleDef shmx_module_def;

static inline shmx_state *state_from_type(PyTypeObject *tp) {
  PyObject *m = PyType_GetModuleByDef(tp, &shmx_module_def);
  if (m == NULL) return NULL;
  return (shmx_state *)PyModule_GetState(m);
}

#define DSET_U64(d, k, v) dset((d), (k), PyLong_FromUnsignedLongLong((v)))
#define DSET_I64(d, k, v) dset((d), (k), PyLong_FromLongLong((v)))

#define FORKED(gen) ((gen) != shmx_fork_gen)

typedef struct ccore {
  shmx_client *cl;
  Py_ssize_t refs;
  int busy;             /* a call runs with the GIL released */
  shmx_frame *pending;  /* releases deferred while busy */
  int npending, cappending;
  unsigned long fork_gen; /* shmx_fork_gen when opened */
} ccore;

typedef struct fstream {
  PyObject *name; /* str, owned */
  const uint8_t *data;
  uint64_t bytes, elem_count;
  uint32_t id, dtype, components, bytes_per_elem;
} fstream;

typedef struct FrameObject {
  PyObject_VAR_HEAD
  shmx_state *st;
  ccore *core;          /* the live reader's core, or NULL for a frame read
                           from a recording (then rec holds it) */
  shmx_rec_frame *rec;  /* recorded frame (malloc'd), or NULL */
  PyObject *channel;    /* recorded frame: its channel name (str); NULL */
  shmx_frame f;
  int held;
  Py_ssize_t exports;
  fstream s[1];
} FrameObject;

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

#if PY_VERSION_HEX < 0x030C0000 && !defined(SHMX_NO_DICT_VERSION)
#define DICT_VERSION(d) (((PyDictObject *)(d))->ma_version_tag)
#endif

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

typedef struct HandleObject {
  PyObject_HEAD
  ServerObject *server;
  uint64_t gen;
} HandleObject;

typedef struct InspectorObject {
  PyObject_HEAD
  shmx_state *st;
  shmx_inspector *in;
  PyObject *name;
  PyObject *last_error;
} InspectorObject;

/* ---- errors.c ---- */
extern const exc_def exc_defs[X__COUNT];
int exc_for_code(int code);
PyObject *make_error(shmx_state *st, int code, const char *what,
                            const char *detail);
PyObject *raise_code(shmx_state *st, int code, const char *what,
                            const char *detail);
PyObject *raise_last(shmx_state *st, int code, const char *what);
PyObject *raise_misuse(shmx_state *st, int x, const char *fmt, ...);

/* ---- compat.c ---- */
int dset(PyObject *d, const char *k, PyObject *v);
PyObject *header_dict(const shmx_header_info *h);
PyObject *streams_list(const shmx_stream_info *s, int n);
PyObject *readers_list(const shmx_reader_info *r, int n);
const char *dtype_format(uint32_t dtype);
void rec_clear(result_rec *r);
int rec_build(FrameObject *fr, result_rec *r);
PyObject *frame_to_dict(FrameObject *self);
int rec_idle(shmx_state *st, const result_rec *r);
int rec_views_live(const result_rec *r);
int rec_refill(FrameObject *fr, result_rec *r);
int rec_fits(const result_rec *r, const FrameObject *fr);

/* ---- frame.c ---- */
ccore *ccore_new(shmx_client *cl);
void ccore_flush(ccore *c);
void ccore_decref(ccore *c);
PyObject *view_new(shmx_state *st, PyObject *owner, int is_server,
                          const uint8_t *data, uint64_t bytes,
                          uint64_t elem_count, uint32_t dtype,
                          uint32_t components, uint32_t bpe, int typed,
                          int readonly, PyObject *name);
extern PyType_Spec View_spec;
PyObject *frame_stream_view(FrameObject *self, Py_ssize_t i, int typed);
extern PyType_Spec Frame_spec;

/* ---- client.c ---- */
extern PyType_Spec Client_spec;

/* ---- server.c ---- */
extern PyType_Spec Handle_spec;
extern PyType_Spec Server_spec;

/* Seconds (None: forever) -> ns, -1 forever; -2 with an exception set. */
int64_t conv_timeout_ns(PyObject *timeout, const char *what);

/* ---- recording.c ---- */
extern PyType_Spec Recording_spec;
extern PyType_Spec Recorder_spec;

/* ---- inspector.c ---- */
extern PyType_Spec Inspector_spec;

/* ---- module.c ---- */
int conv_u64(PyObject *o, const char *what, uint64_t *out);
int conv_u32(PyObject *o, const char *what, uint32_t *out);
const char *conv_name(shmx_state *st, PyObject *o);
int parse_args(const char *fname, PyObject *const *args,
                      Py_ssize_t nargs, PyObject *kwnames,
                      const char *const *names, int nreq, int ntotal,
                      PyObject **out);
extern volatile unsigned long shmx_fork_gen;

#endif /* SHMXPY_H */

/*
 * errors.c -- shmx._shmx: the exception hierarchy (ShmxError and its subclasses) and the
 * mapping of libshmx error codes onto it.
 */
#include "shmxpy.h"

/* ---- exceptions --------------------------------------------------------- */

const exc_def exc_defs[X__COUNT] = {
  [X_BASE] = {"ShmxError", X__COUNT, 0,
              "Base of every shmx error. Attributes: code (negative shmx "
              "error code), name (e.g. 'SHMX_E_NOCHANNEL'), detail."},
  [X_NOTFOUND] = {"ChannelNotFoundError", X_BASE, 1, "No such channel."},
  [X_EXISTS] = {"ChannelExistsError", X_BASE, 2,
                "The channel is owned by a live producer."},
  [X_PERM] = {"PermissionDeniedError", X_BASE, 3, "Permission denied."},
  [X_CORRUPT] = {"CorruptedError", X_BASE, 0,
                 "Segment or recording corrupted, or not a shmx channel or recording."},
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

int exc_for_code(int code) {
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

/* Build (not raise) an exception instance for code with a message. */
PyObject *make_error(shmx_state *st, int code, const char *what,
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
PyObject *raise_code(shmx_state *st, int code, const char *what,
                            const char *detail) {
  PyObject *exc = make_error(st, code, what, detail);
  if (exc == NULL) return NULL;
  PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
  Py_DECREF(exc);
  return NULL;
}

PyObject *raise_last(shmx_state *st, int code, const char *what) {
  return raise_code(st, code, what, shmx_errmsg());
}

/* Misuse that is not a core error: raise the given class with code ARG. */
PyObject *raise_misuse(shmx_state *st, int x, const char *fmt, ...) {
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

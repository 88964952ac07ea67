/*
 * foxglove.c -- Foxglove-readable copies of image and point-cloud streams
 * (`shmx record --foxglove`, shmx_rec_config.foxglove).
 *
 * Foxglove shows MCAP channels whose messages are protobuf with a known
 * schema; it cannot decode shmx.frame/1. With --foxglove the recorder adds,
 * next to each channel, one protobuf channel per stream that is an image or
 * a point cloud:
 *   - image: extra bytes "image:WxH" or "image:WxH:ENCODING" (ASCII), dtype
 *     U8 or U16, elem_count = W x H; ENCODING defaults from dtype and
 *     components (mono8, rgb8, rgba8, mono16) -> foxglove.RawImage;
 *   - point cloud: dtype F32, 3 components, 12 bytes per element ->
 *     foxglove.PointCloud with fields x, y, z.
 * The schemas are protobuf FileDescriptorSets built here field by field
 * (the message layouts are Foxglove's published schemas); messages are
 * encoded here too, their data field taken straight from the slot.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "mcap.h"

/* ---- protobuf wire format ---------------------------------------------------- */

typedef struct pb {
  uint8_t *p;
  size_t n, cap;
  int bad;
} pb;

static void pb_raw(pb *b, const void *s, size_t n) {
  if (b->bad) return;
  if (b->cap - b->n < n) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->n < n) cap *= 2;
    uint8_t *q = realloc(b->p, cap);
    if (!q) {
      b->bad = 1;
      return;
    }
    b->p = q;
    b->cap = cap;
  }
  memcpy(b->p + b->n, s, n);
  b->n += n;
}
static void pb_varint(pb *b, uint64_t v) {
  uint8_t t[10];
  int k = 0;
  do {
    t[k] = (uint8_t)(v & 0x7f);
    v >>= 7;
    if (v) t[k] |= 0x80;
    k++;
  } while (v);
  pb_raw(b, t, (size_t)k);
}
static void pb_tag(pb *b, int field, int wire) { pb_varint(b, (uint64_t)field << 3 | (uint64_t)wire); }
static void pb_bytes(pb *b, int field, const void *s, size_t n) {
  pb_tag(b, field, 2);
  pb_varint(b, n);
  pb_raw(b, s, n);
}
static void pb_str(pb *b, int field, const char *s) { pb_bytes(b, field, s, strlen(s)); }
static void pb_uint(pb *b, int field, uint64_t v) {
  pb_tag(b, field, 0);
  pb_varint(b, v);
}
static void pb_fixed32(pb *b, int field, uint32_t v) {
  uint8_t t[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
  pb_tag(b, field, 5);
  pb_raw(b, t, 4);
}
static void pb_double(pb *b, int field, double d) {
  uint64_t v;
  memcpy(&v, &d, 8);
  uint8_t t[8];
  for (int i = 0; i < 8; i++) t[i] = (uint8_t)(v >> (8 * i));
  pb_tag(b, field, 1);
  pb_raw(b, t, 8);
}
/* A nested message: build it in its own buffer, then add it. */
static void pb_sub(pb *b, int field, pb *sub) {
  if (sub->bad) b->bad = 1;
  pb_bytes(b, field, sub->p ? sub->p : (uint8_t *)"", sub->n);
  free(sub->p);
  memset(sub, 0, sizeof *sub);
}

/* ---- descriptors (google/protobuf/descriptor.proto field numbers) ----------- */

enum { T_DOUBLE = 1, T_INT64 = 3, T_INT32 = 5, T_FIXED32 = 7, T_STRING = 9, T_MESSAGE = 11,
       T_BYTES = 12, T_ENUM = 14 };

typedef struct fdesc {
  const char *name;
  int number, type, repeated;
  const char *type_name; /* ".pkg.Type" for messages and enums */
} fdesc;

static void put_message(pb *file, const char *name, const fdesc *f, int nf, const char *enum_name,
                        const char *const *enum_vals, int nev) {
  pb m = {0};
  pb_str(&m, 1, name);
  for (int i = 0; i < nf; i++) {
    pb fd = {0};
    pb_str(&fd, 1, f[i].name);
    pb_uint(&fd, 3, (uint64_t)f[i].number);
    pb_uint(&fd, 4, f[i].repeated ? 3 : 1);
    pb_uint(&fd, 5, (uint64_t)f[i].type);
    if (f[i].type_name) pb_str(&fd, 6, f[i].type_name);
    pb_str(&fd, 10, f[i].name); /* json_name */
    pb_sub(&m, 2, &fd);
  }
  if (enum_name) {
    pb e = {0};
    pb_str(&e, 1, enum_name);
    for (int i = 0; i < nev; i++) {
      pb v = {0};
      pb_str(&v, 1, enum_vals[i]);
      pb_uint(&v, 2, (uint64_t)i);
      pb_sub(&e, 2, &v);
    }
    pb_sub(&m, 4, &e);
  }
  pb_sub(file, 4, &m);
}

/* One FileDescriptorProto as field 1 of the FileDescriptorSet. */
static void put_file(pb *set, const char *fname, const char *pkg, const char *const *deps,
                     int ndeps, const char *msg, const fdesc *f, int nf, const char *enum_name,
                     const char *const *enum_vals, int nev) {
  pb file = {0};
  pb_str(&file, 1, fname);
  pb_str(&file, 2, pkg);
  for (int i = 0; i < ndeps; i++) pb_str(&file, 3, deps[i]);
  put_message(&file, msg, f, nf, enum_name, enum_vals, nev);
  pb_str(&file, 12, "proto3");
  pb_sub(set, 1, &file);
}

static void put_timestamp(pb *set) {
  static const fdesc f[] = {{"seconds", 1, T_INT64, 0, NULL}, {"nanos", 2, T_INT32, 0, NULL}};
  put_file(set, "google/protobuf/timestamp.proto", "google.protobuf", NULL, 0, "Timestamp", f, 2,
           NULL, NULL, 0);
}

int shmx__fox_schema(int kind, uint8_t **out, size_t *len, const char **name) {
  pb set = {0};
  static const char *const ts[] = {"google/protobuf/timestamp.proto"};
  put_timestamp(&set);
  if (kind == SHMX__FOX_IMAGE) {
    static const fdesc f[] = {
        {"timestamp", 1, T_MESSAGE, 0, ".google.protobuf.Timestamp"},
        {"frame_id", 7, T_STRING, 0, NULL},
        {"width", 2, T_FIXED32, 0, NULL},
        {"height", 3, T_FIXED32, 0, NULL},
        {"encoding", 4, T_STRING, 0, NULL},
        {"step", 5, T_FIXED32, 0, NULL},
        {"data", 6, T_BYTES, 0, NULL}};
    put_file(&set, "foxglove/RawImage.proto", "foxglove", ts, 1, "RawImage", f, 7, NULL, NULL, 0);
    *name = "foxglove.RawImage";
  } else {
    static const fdesc v3[] = {{"x", 1, T_DOUBLE, 0, NULL}, {"y", 2, T_DOUBLE, 0, NULL},
                               {"z", 3, T_DOUBLE, 0, NULL}};
    static const fdesc q[] = {{"x", 1, T_DOUBLE, 0, NULL}, {"y", 2, T_DOUBLE, 0, NULL},
                              {"z", 3, T_DOUBLE, 0, NULL}, {"w", 4, T_DOUBLE, 0, NULL}};
    static const fdesc pose[] = {{"position", 1, T_MESSAGE, 0, ".foxglove.Vector3"},
                                 {"orientation", 2, T_MESSAGE, 0, ".foxglove.Quaternion"}};
    static const fdesc pef[] = {
        {"name", 1, T_STRING, 0, NULL},
        {"offset", 2, T_FIXED32, 0, NULL},
        {"type", 3, T_ENUM, 0, ".foxglove.PackedElementField.NumericType"}};
    static const char *const types[] = {"UNKNOWN", "UINT8",  "INT8",    "UINT16", "INT16",
                                        "UINT32",  "INT32",  "FLOAT32", "FLOAT64"};
    static const fdesc pc[] = {
        {"timestamp", 1, T_MESSAGE, 0, ".google.protobuf.Timestamp"},
        {"frame_id", 2, T_STRING, 0, NULL},
        {"pose", 3, T_MESSAGE, 0, ".foxglove.Pose"},
        {"point_stride", 4, T_FIXED32, 0, NULL},
        {"fields", 5, T_MESSAGE, 1, ".foxglove.PackedElementField"},
        {"data", 6, T_BYTES, 0, NULL}};
    static const char *const pose_deps[] = {"foxglove/Quaternion.proto", "foxglove/Vector3.proto"};
    static const char *const pc_deps[] = {"foxglove/PackedElementField.proto", "foxglove/Pose.proto",
                                          "google/protobuf/timestamp.proto"};
    put_file(&set, "foxglove/Vector3.proto", "foxglove", NULL, 0, "Vector3", v3, 3, NULL, NULL, 0);
    put_file(&set, "foxglove/Quaternion.proto", "foxglove", NULL, 0, "Quaternion", q, 4, NULL,
             NULL, 0);
    put_file(&set, "foxglove/Pose.proto", "foxglove", pose_deps, 2, "Pose", pose, 2, NULL, NULL, 0);
    put_file(&set, "foxglove/PackedElementField.proto", "foxglove", NULL, 0, "PackedElementField",
             pef, 3, "NumericType", types, 9);
    put_file(&set, "foxglove/PointCloud.proto", "foxglove", pc_deps, 3, "PointCloud", pc, 6, NULL,
             NULL, 0);
    *name = "foxglove.PointCloud";
  }
  if (set.bad) {
    free(set.p);
    return shmx__syserr(ENOMEM, "foxglove schema");
  }
  *out = set.p;
  *len = set.n;
  return 0;
}

/* ---- which streams ---------------------------------------------------------------- */

int shmx__fox_kind(const shmx_stream_info *si, shmx__fox *fx) {
  memset(fx, 0, sizeof *fx);
  if (si->dtype == SHMX_DT_F32 && si->components == 3 && si->bytes_per_elem == 12) {
    fx->kind = SHMX__FOX_POINTS;
    return fx->kind;
  }
  if (si->extra_len < 6 || si->extra_len > 64 || memcmp(si->extra, "image:", 6)) return 0;
  char s[65], enc[33] = "";
  memcpy(s, si->extra, si->extra_len);
  s[si->extra_len] = 0;
  unsigned w, h;
  int used = 0;
  if (sscanf(s, "image:%ux%u%n", &w, &h, &used) != 2 || w == 0 || h == 0 || w > 1u << 16 ||
      h > 1u << 16)
    return 0;
  if (s[used] == ':' && sscanf(s + used + 1, "%32[A-Za-z0-9_]", enc) != 1) return 0;
  uint32_t sz = shmx_dtype_size(si->dtype);
  if ((si->dtype != SHMX_DT_U8 && si->dtype != SHMX_DT_U16) || si->bytes_per_elem != sz * si->components)
    return 0;
  if (!enc[0]) {
    static const char *const u8[] = {NULL, "mono8", NULL, "rgb8", "rgba8"};
    const char *e = si->dtype == SHMX_DT_U8 && si->components <= 4 ? u8[si->components]
                  : si->dtype == SHMX_DT_U16 && si->components == 1 ? "mono16" : NULL;
    if (!e) return 0;
    snprintf(enc, sizeof enc, "%s", e);
  }
  fx->kind = SHMX__FOX_IMAGE;
  fx->width = w;
  fx->height = h;
  fx->step = w * si->bytes_per_elem;
  snprintf(fx->encoding, sizeof fx->encoding, "%s", enc);
  return fx->kind;
}

/* ---- messages ---------------------------------------------------------------------- */

size_t shmx__fox_head(const shmx__fox *fx, const char *frame_id, uint64_t time_ns,
                      uint64_t data_len, uint8_t *out, size_t cap) {
  pb b = {0};
  pb t = {0};
  if (time_ns / 1000000000u) pb_uint(&t, 1, time_ns / 1000000000u);
  if (time_ns % 1000000000u) pb_uint(&t, 2, time_ns % 1000000000u);
  pb_sub(&b, 1, &t);
  if (fx->kind == SHMX__FOX_IMAGE) {
    pb_str(&b, 7, frame_id);
    pb_fixed32(&b, 2, fx->width);
    pb_fixed32(&b, 3, fx->height);
    pb_str(&b, 4, fx->encoding);
    pb_fixed32(&b, 5, fx->step);
  } else {
    static const char *const xyz[] = {"x", "y", "z"};
    pb_str(&b, 2, frame_id);
    pb pose = {0}, q = {0};
    pb_double(&q, 4, 1.0); /* identity orientation */
    pb_sub(&pose, 2, &q);
    pb_sub(&b, 3, &pose);
    pb_fixed32(&b, 4, 12);
    for (int i = 0; i < 3; i++) {
      pb f = {0};
      pb_str(&f, 1, xyz[i]);
      if (i) pb_fixed32(&f, 2, (uint32_t)(4 * i));
      pb_uint(&f, 3, 7); /* FLOAT32 */
      pb_sub(&b, 5, &f);
    }
  }
  pb_tag(&b, 6, 2); /* data: its length here, its bytes follow as they are */
  pb_varint(&b, data_len);
  size_t n = b.bad || b.n > cap ? 0 : b.n;
  if (n) memcpy(out, b.p, n);
  free(b.p);
  return n;
}

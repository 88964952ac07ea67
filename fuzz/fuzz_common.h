/*
 * fuzz_common.h -- helpers shared by the libFuzzer targets: a channel name
 * unique to the fuzzing process, a raw read-write mapping of a segment (what
 * a hostile process can do), and a small reader over the fuzzer's input.
 */
#ifndef SHMX_FUZZ_COMMON_H
#define SHMX_FUZZ_COMMON_H

#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "format.h"
#include "shmx.h"

static inline const char *fz_name(void) {
  static char name[64];
  if (!name[0]) snprintf(name, sizeof name, "fz-%d", (int)getpid());
  return name;
}

static inline void fz_path(char *buf, size_t cap) {
  snprintf(buf, cap, "/dev/shm/%s%s", SHMX_SEGMENT_PREFIX, fz_name());
}

/* Map the whole segment read-write through its file, as a scribbler would. */
static inline uint8_t *fz_map_rw(size_t *size) {
  char path[128];
  fz_path(path, sizeof path);
  int fd = open(path, O_RDWR | O_CLOEXEC);
  if (fd < 0) return NULL;
  struct stat st;
  if (fstat(fd, &st) != 0 || st.st_size <= 0) {
    close(fd);
    return NULL;
  }
  void *p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED,
                 fd, 0);
  close(fd);
  if (p == MAP_FAILED) return NULL;
  *size = (size_t)st.st_size;
  return p;
}

/* Input reader: bytes run out as zeros. */
typedef struct fz_in {
  const uint8_t *p;
  size_t n, pos;
} fz_in;

static inline uint8_t fz_u8(fz_in *in) { return in->pos < in->n ? in->p[in->pos++] : 0; }
static inline uint16_t fz_u16(fz_in *in) {
  uint16_t v = fz_u8(in);
  return (uint16_t)(v | (uint16_t)fz_u8(in) << 8);
}
static inline uint64_t fz_u64(fz_in *in) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v |= (uint64_t)fz_u8(in) << (8 * i);
  return v;
}
static inline size_t fz_left(const fz_in *in) { return in->n - in->pos; }

/* Touch every byte of every stream of a frame the library handed out (an
 * out-of-bounds pointer faults here under ASan or plainly). */
static inline unsigned fz_touch(const shmx_frame *f) {
  unsigned x = 0;
  if (f->tlv_count > SHMX_FRAME_MAX_STREAMS) abort();
  for (uint32_t i = 0; i < f->tlv_count; i++)
    for (uint64_t b = 0; b < f->streams[i].bytes; b++)
      x += f->streams[i].data[b];
  return x;
}

static const shmx_stream_spec fz_specs[2] = {
    {.id = 1, .name = "a", .dtype = SHMX_DT_U8, .components = 1,
     .layout = SHMX_LAYOUT_SOA_SCALAR, .bytes_per_elem = 1},
    {.id = 7, .name = "vec3", .dtype = SHMX_DT_F32, .components = 3,
     .layout = SHMX_LAYOUT_AOS_VECTOR, .bytes_per_elem = 12, .extra = "xyz",
     .extra_len = 3},
};

/* A small channel: 3 slots, 2 reader slots, 1 KiB schema, 4 KiB frames. */
static inline shmx_server *fz_server(uint64_t ring, uint32_t flags) {
  shmx_server_config cfg;
  shmx_server_config_init(&cfg);
  cfg.slots = 3;
  cfg.reader_slots = 2;
  cfg.static_bytes_cap = 1024;
  cfg.frame_bytes_cap = 4096;
  cfg.control_per_reader = ring;
  cfg.flags = flags | SHMX_CREATE_NO_PREFAULT;
  cfg.streams = fz_specs;
  cfg.n_streams = 2;
  shmx_server *srv = NULL;
  if (shmx_server_create(fz_name(), &cfg, &srv) != 0) {
    /* a crashed earlier run of this pid cannot exist; anything else is a bug */
    fprintf(stderr, "fuzz: create: %s\n", shmx_errmsg());
    abort();
  }
  return srv;
}

static inline int fz_publish(shmx_server *srv, uint64_t k) {
  uint8_t a[200];
  float v[30];
  for (unsigned i = 0; i < sizeof a; i++) a[i] = (uint8_t)(k * 31 + i);
  for (unsigned i = 0; i < 30; i++) v[i] = (float)(k + i);
  int rc = shmx_server_begin(srv);
  if (rc) return rc;
  uint64_t na = 1 + k % 200;
  rc = shmx_server_append(srv, 1, a, na, na);
  if (rc == 0 && (k & 1)) rc = shmx_server_append(srv, 7, v, 120, 10);
  if (rc == 0) return shmx_server_publish(srv, (double)k, NULL);
  shmx_server_abort(srv);
  return rc;
}

#endif

/*
 * demo_stream.c -- the demo's synthetic frames: generation and verification.
 * Producer and readers run the same functions, so a reader recomputes the
 * exact bytes (floats included) a frame id must carry.
 */
#include <stdio.h>
#include <string.h>

#include "demo.h"
#include "util.h"

const shmx_stream_spec demo_streams[4] = {
    {DEMO_ST_IMAGE, "image", SHMX_DT_U8, 3, SHMX_LAYOUT_AOS_VECTOR, 3, NULL, 0},
    {DEMO_ST_POS, "positions", SHMX_DT_F32, 3, SHMX_LAYOUT_AOS_VECTOR, 12, NULL, 0},
    {DEMO_ST_VEL, "velocities", SHMX_DT_F32, 3, SHMX_LAYOUT_AOS_VECTOR, 12, NULL, 0},
    {DEMO_ST_IDS, "ids", SHMX_DT_U32, 1, SHMX_LAYOUT_SOA_SCALAR, 4, NULL, 0},
};

uint64_t demo_payload_bytes(uint32_t particles) {
  return (uint64_t)DEMO_W * DEMO_H * 3u + (uint64_t)particles * (12u + 12u + 4u);
}

void demo_image_row(uint64_t fid, uint32_t y, uint8_t *row) {
  uint32_t f = (uint32_t)fid;
  for (uint32_t x = 0; x < DEMO_W; x++) {
    /* A diagonal colour ramp drifting right, over a scrolling checkerboard. */
    row[3 * x + 0] = (uint8_t)(x + 2u * f);
    row[3 * x + 1] = (uint8_t)(y + f);
    row[3 * x + 2] = ((((x + f) >> 5) ^ (y >> 5)) & 1u) ? 200 : 40;
  }
}

static uint32_t hash32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352du;
  x ^= x >> 15;
  x *= 0x846ca68bu;
  x ^= x >> 16;
  return x;
}

static float unit(uint32_t h) { return (float)(h >> 8) / 16777216.0f; }

void demo_particle(uint64_t fid, uint32_t i, float pos[3], float vel[3]) {
  double t = (double)fid * 0.01;
  for (uint32_t k = 0; k < 3; k++) {
    float p0 = unit(hash32(i * 3u + k + 0x9e3779b9u));
    float v = unit(hash32(i * 3u + k + 0x85ebca6bu)) * 2.0f - 1.0f;
    double p = (double)p0 + (double)v * t;
    double fl = (double)(long long)p; /* floor without libm */
    if (fl > p) fl -= 1.0;
    pos[k] = (float)(p - fl);
    vel[k] = v;
  }
}

uint32_t demo_particle_id(uint32_t i) { return 1000u + i; }

static const shmx_frame_stream *find(const shmx_frame *f, uint32_t id) {
  for (uint32_t i = 0; i < f->tlv_count; i++)
    if (f->streams[i].stream_id == id) return &f->streams[i];
  return NULL;
}

int demo_verify(const shmx_frame *f, char *why, size_t cap) {
  const shmx_frame_stream *img = find(f, DEMO_ST_IMAGE);
  const shmx_frame_stream *pos = find(f, DEMO_ST_POS);
  const shmx_frame_stream *vel = find(f, DEMO_ST_VEL);
  const shmx_frame_stream *ids = find(f, DEMO_ST_IDS);
  if (!img || !pos || !vel || !ids) {
    snprintf(why, cap, "frame %llu: a stream is missing",
             (unsigned long long)f->frame_id);
    return -1;
  }
  if (img->elem_count != (uint64_t)DEMO_W * DEMO_H ||
      img->bytes != (uint64_t)DEMO_W * DEMO_H * 3u) {
    snprintf(why, cap, "frame %llu: image has %llu elements",
             (unsigned long long)f->frame_id,
             (unsigned long long)img->elem_count);
    return -1;
  }
  uint8_t row[DEMO_W * 3];
  for (uint32_t y = 0; y < DEMO_H; y++) {
    demo_image_row(f->frame_id, y, row);
    if (memcmp(img->data + (size_t)y * sizeof row, row, sizeof row) != 0) {
      snprintf(why, cap, "frame %llu: image row %u differs",
               (unsigned long long)f->frame_id, y);
      return -1;
    }
  }
  uint64_t n = ids->elem_count;
  if (n > DEMO_MAX_PARTICLES || ids->bytes != n * 4u || pos->elem_count != n ||
      pos->bytes != n * 12u || vel->elem_count != n || vel->bytes != n * 12u) {
    snprintf(why, cap, "frame %llu: particle streams disagree on the count",
             (unsigned long long)f->frame_id);
    return -1;
  }
  for (uint32_t i = 0; i < (uint32_t)n; i++) {
    float p[3], v[3];
    uint32_t id = demo_particle_id(i);
    demo_particle(f->frame_id, i, p, v);
    if (memcmp(pos->data + (size_t)i * 12u, p, 12) != 0 ||
        memcmp(vel->data + (size_t)i * 12u, v, 12) != 0 ||
        memcmp(ids->data + (size_t)i * 4u, &id, 4) != 0) {
      snprintf(why, cap, "frame %llu: particle %u differs",
               (unsigned long long)f->frame_id, i);
      return -1;
    }
  }
  return 0;
}

int demo_check_schema(shmx_client *cl, char *why, size_t cap) {
  const shmx_stream_info *st = NULL;
  int n = 0;
  int rc = shmx_client_streams(cl, &st, &n);
  if (rc < 0) {
    snprintf(why, cap, "cannot read the schema: %s", shmx_strerror(rc));
    return -1;
  }
  for (size_t k = 0; k < 4; k++) {
    const shmx_stream_spec *want = &demo_streams[k];
    int found = 0;
    for (int i = 0; i < n && !found; i++) {
      if (st[i].id != want->id) continue;
      found = 1;
      if (strcmp(st[i].name, want->name) != 0 || st[i].dtype != want->dtype ||
          st[i].components != want->components ||
          st[i].bytes_per_elem != want->bytes_per_elem) {
        char nm[64];
        cli_printable(st[i].name, nm, sizeof nm);
        snprintf(why, cap, "stream %u is '%s' %s x%u, not the demo's '%s'",
                 st[i].id, nm, shmx_dtype_name(st[i].dtype),
                 st[i].components, want->name);
        return -1;
      }
    }
    if (!found) {
      snprintf(why, cap, "not a demo stream (no stream '%s')", want->name);
      return -1;
    }
  }
  return 0;
}

/*
 * gen_seeds.c -- regenerate the seed corpus in fuzz/corpus/ (not built by
 * meson; the seeds are committed). Build and run from the repository root:
 *   cc -std=c11 -D_GNU_SOURCE -Iinclude -Isrc fuzz/gen_seeds.c \
 *      build-rel/src/libshmx.a -lpthread -o /tmp/gen_seeds && /tmp/gen_seeds
 * Seeds: whole segment images of the fuzzers' channel (mode byte odd), patch
 * lists over a live channel (mode byte even), control-ring states.
 */
#include "../fuzz/fuzz_common.h"

static void put(const char *path, const void *a, size_t na, const void *b,
                size_t nb) {
  FILE *f = fopen(path, "wb");
  if (!f) {
    perror(path);
    exit(1);
  }
  fwrite(a, 1, na, f);
  if (nb) fwrite(b, 1, nb, f);
  fclose(f);
}

int main(void) {
  /* whole images: fresh channel, and one with frames, schema and a reader */
  for (int variant = 0; variant < 2; variant++) {
    shmx_server *srv = fz_server(variant ? 256 : 4096, variant ? SHMX_CREATE_CRC32C : 0);
    shmx_client *cl = NULL;
    if (variant) {
      for (uint64_t k = 1; k <= 4; k++) fz_publish(srv, k);
      shmx_server_static_append(srv, "user-record", 11);
      shmx_client_open(fz_name(), &cl);
      shmx_frame f;
      if (shmx_client_latest(cl, &f) == 0) { /* keep it pinned */ }
      shmx_client_send(cl, 0x3000, "hello", 5);
    }
    size_t n = 0;
    uint8_t *seg = fz_map_rw(&n);
    uint8_t mode = variant ? 3 : 1; /* odd: image; 2: a live owner */
    char path[128];
    snprintf(path, sizeof path, "fuzz/corpus/segment/image-%d", variant);
    put(path, &mode, 1, seg, n);
    munmap(seg, n);
    shmx_client_close(cl);
    shmx_server_destroy(srv);
  }
  /* patch lists: {region, off16, len-1, bytes} */
  static const uint8_t p0[] = {0x30, 0, 0x88, 0, 7, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0};
  static const uint8_t p1[] = {0x14, 2, 0x00, 0, 7, 0x01, 0, 0, 0, 0, 0, 0, 0,
                               5, 0x10, 0, 7, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f};
  static const uint8_t p2[] = {0x38, 1, 0x00, 0, 7, 0x00, 0x10, 0, 0, 0xff, 0xff, 0, 0,
                               3, 0x40, 0, 7, 0xf0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  put("fuzz/corpus/segment/patch-0", p0, sizeof p0, NULL, 0);
  put("fuzz/corpus/segment/patch-1", p1, sizeof p1, NULL, 0);
  put("fuzz/corpus/segment/patch-2", p2, sizeof p2, NULL, 0);
  /* control: flags, nreal, [tail], [head], start, ring bytes */
  static const uint8_t c0[] = {0x00, 5};
  static const uint8_t c1[] = {0x0a, 4, 0xfe, 0x10, 0x00, 0, 0x20, 0, 0, 0, 1, 0, 0, 0};
  static const uint8_t c2[] = {0x1e, 2, 1, 2, 3, 4, 5, 6, 7, 8, 0xf8, 0xff, 0xff,
                               0xff, 0xff, 0xff, 0xff, 0xff, 0, 0xf0, 0xff, 0xff, 0xff};
  static const uint8_t c3[] = {0x09, 7, 0x40, 0x00, 0x38, 0x08, 0, 0, 0, 9, 0, 0, 0};
  put("fuzz/corpus/control/c0", c0, sizeof c0, NULL, 0);
  put("fuzz/corpus/control/c1", c1, sizeof c1, NULL, 0);
  put("fuzz/corpus/control/c2", c2, sizeof c2, NULL, 0);
  put("fuzz/corpus/control/c3", c3, sizeof c3, NULL, 0);
  return 0;
}

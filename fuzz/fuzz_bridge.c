/*
 * fuzz_bridge.c -- hostile network input against the bridge receiver.
 *
 * Each run resets one receiver (a BYE from the current origin closes its
 * channel), gives it a valid schema (sender 5, session 77, generation 1:
 * streams 1 "seq" u64 and 2 "blob" u8) and then feeds it the fuzzer's
 * messages exactly as they would come off the socket (shmx__bridge_feed).
 * Input: records of [u8 kind][u16 len1][u16 len2][len1 bytes][len2 bytes]
 * (little-endian; kind bit 0 set = two parts). Afterwards a reader reads
 * every frame of the channel and touches every byte: nothing may crash,
 * read out of bounds or leak, and each frame must be within its schema.
 * Seeds: fuzz/gen_bridge_seeds.py.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bridge.h"
#include "wire.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static shmx_bridge *rx;
static char name[64];
static uint8_t *schema;
static size_t schema_len;
static unsigned sink;

static void feed_ctl(uint32_t type, uint64_t sender, uint32_t gen, const uint8_t *body,
                     size_t len) {
  uint8_t h[SHMX__BR_HDR];
  shmx__br_hdr hd = {0};
  hd.type = type;
  hd.sender_id = sender;
  hd.session = 77;
  hd.schema_gen = gen;
  shmx__br_hdr_put(h, &hd);
  shmx__bridge_feed(rx, h, sizeof h, body, len, 2);
}

static void cleanup(void) { shmx_bridge_close(rx); } /* removes the channel */

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  snprintf(name, sizeof name, "fz-%d", (int)getpid());
  shmx_bridge_opts o = {0};
  o.endpoint = "inproc://fuzz";
  o.channel = name;
  o.quiet = 1;
  if (shmx_bridge_open(0, &o, &rx)) {
    fprintf(stderr, "fuzz_bridge: %s\n", shmx_errmsg());
    abort();
  }
  shmx_header_info g = {0};
  g.slots = 4;
  g.reader_slots = 4;
  g.static_bytes_cap = 4096;
  g.frame_bytes_cap = 4096;
  g.control_per_reader = 4096;
  shmx_stream_info si[2] = {{1, SHMX_DT_U64, 1, 0, 8, 0, "seq", NULL},
                            {2, SHMX_DT_U8, 1, 0, 1, 3, "blob", (const uint8_t *)"xyz"}};
  if (shmx__sb_encode("origin", &g, si, 2, NULL, NULL, 0, &schema, &schema_len))
    abort();
  atexit(cleanup);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  feed_ctl(SHMX__BR_BYE, 5, 1, NULL, 0); /* reset: closes the last run's channel */
  feed_ctl(SHMX__BR_BYE, 6, 1, NULL, 0);
  feed_ctl(SHMX__BR_SCHEMA, 5, 1, schema, schema_len);
  shmx_client *c = NULL;
  shmx_client_open(name, &c);
  size_t off = 0;
  while (size - off >= 5) {
    uint8_t kind = data[off];
    size_t l1 = (size_t)data[off + 1] | (size_t)data[off + 2] << 8;
    size_t l2 = (size_t)data[off + 3] | (size_t)data[off + 4] << 8;
    off += 5;
    if (l1 > size - off) l1 = size - off;
    if (l2 > size - off - l1) l2 = size - off - l1;
    /* copies of exact length, so ASan sees any read past a part */
    uint8_t *p1 = malloc(l1 ? l1 : 1), *p2 = malloc(l2 ? l2 : 1);
    memcpy(p1, data + off, l1);
    memcpy(p2, data + off + l1, l2);
    shmx__bridge_feed(rx, p1, l1, p2, l2, (kind & 1) ? 2 : 1);
    free(p1);
    free(p2);
    off += l1 + l2;
  }
  if (c) {
    shmx_frame f;
    while (shmx_client_next(c, &f) == 0) {
      for (uint32_t i = 0; i < f.tlv_count; i++) {
        if (f.streams[i].stream_id == 1 && f.streams[i].bytes != 8 * f.streams[i].elem_count)
          abort(); /* republished outside its schema */
        for (uint64_t k = 0; k < f.streams[i].bytes; k++) sink += f.streams[i].data[k];
      }
      shmx_frame_release(c, &f);
    }
    shmx_client_close(c);
  }
  return 0;
}

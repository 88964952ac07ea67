/*
 * fuzz_control.c -- hostile control rings against the producer's poll.
 *
 * A channel and one attached reader are created; the reader sends a few
 * real messages. The fuzzer then overwrites the reader slot's ring head and
 * tail (near their real values or anywhere) and any of the ring's bytes,
 * through a raw mapping (format.h offsets). shmx_server_poll_control() must
 * not crash, and must agree with a reference model of the ring format
 * (control.h: {u32 len, u32 type, payload padded to 8}, head/tail count
 * bytes): it returns exactly the well-formed messages in order and reports
 * a corrupt ring exactly when the model finds one. The ring must be usable
 * again afterwards.
 */
#include "fuzz_common.h"

static unsigned sink;

typedef struct model_msg {
  uint32_t type, len;
  uint64_t at; /* ring position of the payload */
} model_msg;

/* Walk [tail, head) like a correct consumer. Returns the number of good
 * messages (up to max) and sets *corrupt if the walk hit garbage. */
static int model(const uint8_t *ring, uint64_t cap, uint64_t head,
                 uint64_t tail, model_msg *out, int max, int *corrupt) {
  int n = 0;
  *corrupt = 0;
  while (n < max) {
    uint64_t avail = head - tail;
    if (avail == 0) break;
    if (avail > cap || (avail & 7) || avail < 8) {
      *corrupt = 1;
      break;
    }
    uint8_t hb[8];
    uint32_t hdr[2];
    for (int i = 0; i < 8; i++) hb[i] = ring[(tail + (uint64_t)i) & (cap - 1)];
    memcpy(hdr, hb, 8); /* a scribbled tail need not be aligned */
    uint64_t need = 8 + (((uint64_t)hdr[0] + 7) & ~7ull);
    if (need > avail) {
      *corrupt = 1;
      break;
    }
    out[n].len = hdr[0];
    out[n].type = hdr[1];
    out[n].at = tail + 8;
    n++;
    tail += need;
  }
  return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fz_in in = {data, size, 0};
  uint8_t flags = fz_u8(&in);
  uint64_t ring_bytes = (flags & 1) ? 64 : 256;
  shmx_server *srv = fz_server(ring_bytes, 0);
  shmx_client *cl = NULL;
  if (shmx_client_open(fz_name(), &cl) != 0) abort();
  /* a few real messages (some consumed, so head/tail are not 0) */
  unsigned nreal = fz_u8(&in) % 8;
  uint8_t payload[40];
  memset(payload, 0xA5, sizeof payload);
  for (unsigned i = 0; i < nreal; i++) {
    (void)shmx_client_send(cl, 0x3000 + i, payload, i * 5);
    if (i == 2) {
      shmx_control_msg m[4];
      (void)shmx_server_poll_control(srv, m, 4, NULL);
    }
  }
  size_t segsize = 0;
  uint8_t *seg = fz_map_rw(&segsize);
  if (!seg) abort();
  struct shmx__hdr h;
  memcpy(&h, seg, sizeof h);
  uint64_t cap = h.control_per_reader;
  if (cap != ring_bytes) abort();
  uint32_t slot = 0;
  shmx_reader_info ri[2];
  int nr = shmx_server_readers(srv, ri, 2);
  for (int i = 0; i < nr; i++)
    if (ri[i].in_use && ri[i].reader_id == shmx_client_reader_id(cl)) slot = (uint32_t)i;
  struct shmx__reader *rd =
      (struct shmx__reader *)(void *)(seg + h.readers_off + slot * SHMX__READER_STRIDE);
  uint8_t *ring = seg + h.control_off + slot * cap;
  uint64_t head = atomic_load(&rd->ring_head), tail = atomic_load(&rd->ring_tail);
  /* head/tail: near the real values (deep paths) or arbitrary */
  if (flags & 2) tail = (flags & 4) ? fz_u64(&in) : tail + (int8_t)fz_u8(&in) * 8;
  if (flags & 8) head = (flags & 16) ? fz_u64(&in) : tail + fz_u16(&in) % (2 * cap + 16);
  atomic_store(&rd->ring_tail, tail);
  atomic_store(&rd->ring_head, head);
  /* ring bytes: the rest of the input, written from a fuzzer-chosen start */
  uint64_t at = fz_u8(&in);
  while (fz_left(&in)) ring[at++ & (cap - 1)] = fz_u8(&in);

  uint8_t snapshot[256];
  memcpy(snapshot, ring, (size_t)cap);
  model_msg want[64];
  int want_corrupt = 0;
  int nwant = model(snapshot, cap, head, tail, want, 64, &want_corrupt);

  shmx_control_msg got[64];
  int corrupt = -1;
  int n = shmx_server_poll_control(srv, got, 64, &corrupt);
  if (n < 0) abort(); /* poll itself must not fail on a bad ring */
  if (n != nwant || corrupt != want_corrupt) {
    fprintf(stderr, "poll: %d msgs corrupt=%d; model: %d msgs corrupt=%d "
            "(head %llu tail %llu cap %llu)\n", n, corrupt, nwant, want_corrupt,
            (unsigned long long)head, (unsigned long long)tail,
            (unsigned long long)cap);
    abort();
  }
  for (int i = 0; i < n; i++) {
    if (got[i].type != want[i].type || got[i].len != want[i].len ||
        got[i].reader_id != shmx_client_reader_id(cl))
      abort();
    for (uint32_t b = 0; b < got[i].len; b++) {
      if (got[i].data[b] != snapshot[(want[i].at + b) & (cap - 1)]) abort();
      sink += got[i].data[b];
    }
  }
  /* after a reset (or a clean drain) the ring is empty and works again */
  if (want_corrupt) {
    if (atomic_load(&rd->ring_tail) != atomic_load(&rd->ring_head)) abort();
  }
  int s = shmx_client_send(cl, 0x3001, "again", 5);
  if (s == 0) {
    n = shmx_server_poll_control(srv, got, 64, &corrupt);
    if (n != 1 || corrupt || got[0].len != 5 || memcmp(got[0].data, "again", 5))
      abort();
  } else if (s != SHMX_E_RINGFULL && s != SHMX_E_CORRUPT) {
    abort();
  }
  munmap(seg, segsize);
  shmx_client_close(cl);
  shmx_server_destroy(srv);
  return 0;
}

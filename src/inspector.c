/*
 * inspector.c -- read-only view of a channel: the whole segment is mapped
 * PROT_READ, nothing is written, no reader slot is taken.
 */
#include <stdlib.h>
#include <string.h>

#include "registry.h"
#include "schema.h"
#include "segment.h"

struct shmx_inspector {
  shmx__seg seg;
  shmx__schema schema;
};

int shmx_inspector_open(const char *name, shmx_inspector **out) {
  if (!out) return shmx__err(SHMX_E_ARG, "out is NULL");
  *out = NULL;
  shmx_inspector *in = calloc(1, sizeof *in);
  if (!in) return shmx__err(SHMX_E_ENOMEM, "inspector");
  int rc = shmx__seg_attach(name, SHMX__ATTACH_RO, &in->seg);
  if (rc) {
    free(in);
    return rc;
  }
  if ((rc = shmx_inspector_refresh(in)) < 0) {
    shmx_inspector_close(in);
    return rc;
  }
  *out = in;
  return 0;
}

void shmx_inspector_close(shmx_inspector *in) {
  if (!in) return;
  shmx__schema_free(&in->schema);
  shmx__seg_detach(&in->seg);
  free(in);
}

int shmx_inspector_header(shmx_inspector *in, shmx_header_info *out) {
  if (!in || !out) return shmx__err(SHMX_E_ARG, "bad arguments");
  shmx__header_info(&in->seg, out);
  SHMX__TRUNCATED_CHECK(&in->seg); /* what was read may be zeros */
  return 0;
}

int shmx_inspector_refresh(shmx_inspector *in) {
  if (!in) return shmx__err(SHMX_E_ARG, "inspector is NULL");
  /* Refresh is the inspector's slow path: a cut of pages it has not touched
   * (it reads only the control part) is seen by the size. */
  shmx__seg_check_size(&in->seg);
  SHMX__TRUNCATED_CHECK(&in->seg);
  struct shmx__hdr *h = shmx__hdr(&in->seg);
  uint32_t gen = atomic_load_explicit(&h->static_gen, memory_order_acquire);
  if (in->schema.buf && gen == in->schema.gen) return 0;
  uint64_t used = atomic_load_explicit(&h->static_used, memory_order_acquire);
  shmx__schema fresh;
  int rc = shmx__schema_parse(shmx__static_area(&in->seg), used,
                              in->seg.g.static_cap, gen, &fresh);
  if (rc) return shmx__err(rc, "channel '%s': %s", in->seg.name, shmx_errmsg());
  shmx__schema_free(&in->schema);
  in->schema = fresh;
  return 1;
}

int shmx_inspector_streams(shmx_inspector *in, const shmx_stream_info **streams,
                           int *n) {
  if (!in || !streams || !n) return shmx__err(SHMX_E_ARG, "bad arguments");
  *streams = in->schema.streams;
  *n = in->schema.n;
  return 0;
}

int shmx_inspector_readers(shmx_inspector *in, shmx_reader_info *out, int max) {
  if (!in || (max > 0 && !out)) return shmx__err(SHMX_E_ARG, "bad arguments");
  int n = 0;
  for (uint32_t i = 0; i < in->seg.g.reader_slots && n < max; i++) {
    shmx__reader_info(&in->seg, i, &out[n]);
    if (out[n].in_use) out[n].alive = shmx__reg_alive(&in->seg, i);
    n++;
  }
  SHMX__TRUNCATED_CHECK(&in->seg);
  return n;
}

int shmx_inspector_slots(shmx_inspector *in, shmx_slot_info *out, int max) {
  if (!in || (max > 0 && !out)) return shmx__err(SHMX_E_ARG, "bad arguments");
  const shmx__seg *s = &in->seg;
  struct shmx__hdr *h = shmx__hdr(s);
  uint64_t top = atomic_load(&h->frame_seq);
  uint32_t latest = atomic_load(&h->latest_slot);
  int n = 0;
  for (uint32_t i = 0; i < s->g.slots && n < max; i++, n++) {
    struct shmx__slotdesc *d = shmx__slot(s, i);
    uint64_t q = atomic_load(&d->seq);
    shmx_slot_info *o = &out[n];
    memset(o, 0, sizeof *o);
    o->index = i;
    o->state = q == 0 ? SHMX_SLOT_EMPTY : (q & 1) ? SHMX_SLOT_WRITING
                                                  : SHMX_SLOT_PUBLISHED;
    o->frame_id = (q + 1) / 2;
    o->pins = shmx__slot_pins(s, i);
    o->payload_bytes = SHMX__LD(d->payload_bytes);
    o->latest = latest == i && q == 2 * top && top != 0;
  }
  SHMX__TRUNCATED_CHECK(s);
  return n;
}

/*
 * control.c -- control rings. The consumer trusts nothing: head may be any
 * value and the bytes any garbage; bad input resets the ring, never more.
 */
#include <string.h>

#include "control.h"

static void ring_copy_out(const uint8_t *ring, uint64_t cap, uint64_t pos,
                          uint8_t *dst, uint64_t n) {
  uint64_t off = pos & (cap - 1), first = cap - off < n ? cap - off : n;
  memcpy(dst, ring + off, (size_t)first);
  if (n > first) memcpy(dst + first, ring, (size_t)(n - first));
}

static void ring_copy_in(uint8_t *ring, uint64_t cap, uint64_t pos,
                         const uint8_t *src, uint64_t n) {
  uint64_t off = pos & (cap - 1), first = cap - off < n ? cap - off : n;
  memcpy(ring + off, src, (size_t)first);
  if (n > first) memcpy(ring, src + first, (size_t)(n - first));
}

int shmx__ring_send(const shmx__seg *s, uint32_t slot, uint32_t type,
                    const void *data, uint32_t len) {
  struct shmx__reader *r = shmx__rdr(s, slot);
  uint64_t cap = s->g.ring_bytes;
  uint64_t need = SHMX__RING_MSG_HDR + (((uint64_t)len + 7) & ~7ull);
  if (need > cap)
    return shmx__err(SHMX_E_ARG, "control message of %u bytes never fits a "
                     "%llu-byte ring", len, (unsigned long long)cap);
  uint64_t head = atomic_load_explicit(&r->ring_head, memory_order_relaxed);
  uint64_t tail = atomic_load_explicit(&r->ring_tail, memory_order_acquire);
  uint64_t used = head - tail;
  if (used > cap || (used & 7))
    return shmx__err(SHMX_E_CORRUPT, "control ring state head=%llu tail=%llu",
                     (unsigned long long)head, (unsigned long long)tail);
  if (cap - used < need) {
    testcase(cap - used < need);
    return shmx__err(SHMX_E_RINGFULL, "control ring (%llu of %llu bytes used)",
                     (unsigned long long)used, (unsigned long long)cap);
  }
  uint8_t *ring = shmx__ring(s, slot);
  struct shmx__cmsg m = {len, type};
  ring_copy_in(ring, cap, head, (const uint8_t *)&m, sizeof m);
  if (len) ring_copy_in(ring, cap, head + sizeof m, data, len);
  atomic_store_explicit(&r->ring_head, head + need, memory_order_release);
  return 0;
}

int shmx__ring_pop(const shmx__seg *s, uint32_t slot, uint8_t *buf,
                   uint64_t cap_buf, uint32_t *type, uint32_t *len) {
  struct shmx__reader *r = shmx__rdr(s, slot);
  uint64_t cap = s->g.ring_bytes;
  uint64_t head = atomic_load_explicit(&r->ring_head, memory_order_acquire);
  uint64_t tail = atomic_load_explicit(&r->ring_tail, memory_order_relaxed);
  uint64_t avail = head - tail;
  if (avail == 0) return 0;
  struct shmx__cmsg m;
  if (avail > cap || (avail & 7) || avail < sizeof m) goto corrupt;
  const uint8_t *ring = shmx__ring(s, slot);
  ring_copy_out(ring, cap, tail, (uint8_t *)&m, sizeof m);
  uint64_t need = sizeof m + (((uint64_t)m.len + 7) & ~7ull);
  if (need > avail) goto corrupt;
  if (m.len > cap_buf) goto corrupt; /* cannot happen: cap_buf >= cap */
  if (m.len) ring_copy_out(ring, cap, tail + sizeof m, buf, m.len);
  atomic_store_explicit(&r->ring_tail, tail + need, memory_order_release);
  *type = m.type;
  *len = m.len;
  return 1;
corrupt:
  testcase(1);
  atomic_store_explicit(&r->ring_tail, head, memory_order_release);
  atomic_fetch_add(&r->ring_resets, 1);
  return shmx__err(SHMX_E_CORRUPT, "control ring of reader slot %u: "
                   "head=%llu tail=%llu; ring reset", slot,
                   (unsigned long long)head, (unsigned long long)tail);
}

void shmx__ring_reset(const shmx__seg *s, uint32_t slot) {
  struct shmx__reader *r = shmx__rdr(s, slot);
  atomic_store(&r->ring_head, 0);
  atomic_store(&r->ring_tail, 0);
}

/*
 * copy.c -- copying a caller's bytes into a frame slot.
 *
 * A slot that has not been written for a while is usually no longer in this
 * core's caches (other processes, other guests on the host, evict it within
 * a millisecond or two). Ordinary stores into such a line first read it from
 * memory (read-for-ownership) and later write it back: twice the traffic of
 * the copy itself. Streaming (non-temporal) stores write whole lines without
 * reading them. They lose when the destination is still cached, so the
 * producer uses them only for large copies into a slot it has not touched
 * for SHMX__COLD_NS, or with SHMX__COLD_BYTES of other frames written since
 * (server.c decides; measured in docs/design.md and docs/benchmarks.md).
 *
 * Streaming stores are weakly ordered: shmx__copy_stream ends with a store
 * fence, so the release store that publishes the frame comes after them.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <emmintrin.h>

void shmx__copy_stream(void *dst, const void *src, size_t n) {
  uint8_t *d = dst;
  const uint8_t *s = src;
  /* head: up to the next 16-byte boundary of the destination */
  size_t head = (size_t)(-(uintptr_t)d & 15);
  if (head > n) head = n;
  memcpy(d, s, head);
  d += head, s += head, n -= head;
  for (; n >= 64; d += 64, s += 64, n -= 64) {
    __m128i a = _mm_loadu_si128((const __m128i *)s);
    __m128i b = _mm_loadu_si128((const __m128i *)(s + 16));
    __m128i c = _mm_loadu_si128((const __m128i *)(s + 32));
    __m128i e = _mm_loadu_si128((const __m128i *)(s + 48));
    _mm_stream_si128((__m128i *)d, a);
    _mm_stream_si128((__m128i *)(d + 16), b);
    _mm_stream_si128((__m128i *)(d + 32), c);
    _mm_stream_si128((__m128i *)(d + 48), e);
  }
  memcpy(d, s, n);
  _mm_sfence();
}

#else

void shmx__copy_stream(void *dst, const void *src, size_t n) {
  memcpy(dst, src, n);
}

#endif

int shmx__copy_mode(void) {
  const char *e = getenv("SHMX_COPY");
  return !e ? SHMX__COPY_AUTO : !strcmp(e, "cached") ? SHMX__COPY_CACHED
       : !strcmp(e, "stream") ? SHMX__COPY_STREAM : SHMX__COPY_AUTO;
}

/*
 * crc32.c -- CRC32 (IEEE 802.3, reflected, as zlib and MCAP) of recordings.
 *
 * Recording stored chunks computes a CRC over every byte, so its speed is
 * the recorder's: zlib's table code runs near 2 GB/s here, a memcpy's
 * speed, which would halve the recorder's throughput. On x86-64 with
 * PCLMULQDQ the bulk is folded 64 bytes at a time with carry-less
 * multiplications (the method of Gopal et al., "Fast CRC Computation for
 * Generic Polynomials Using PCLMULQDQ", Intel 2009): four 128-bit lanes
 * folded forward by x^512, merged, then reduced to 32 bits by Barrett
 * reduction. The constants are powers of x modulo the polynomial
 * 0x104C11DB7 in bit-reflected form. Tails under 64 bytes use a byte-wise
 * table; other CPUs use zlib (or the table without it). tests/record checks all paths against the
 * table for every length 0..4096 and misalignment.
 */
#include <stddef.h>
#include <stdint.h>

#ifdef SHMX_HAVE_ZLIB
#include <zlib.h>
#endif

#include "mcap.h"

/* ---- portable: byte-wise table (reference) ------------------------------- */

static uint32_t table[256];
static _Atomic int table_ready;

static void table_init(void) {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    table[i] = c;
  }
  table_ready = 1;
}

uint32_t shmx__crc32_table(uint32_t crc, const void *p, uint64_t n) {
  if (!table_ready) table_init();
  const uint8_t *b = p;
  crc = ~crc;
  while (n--) crc = table[(crc ^ *b++) & 0xff] ^ (crc >> 8);
  return ~crc;
}

/* zlib's (or the table's): crc continues a previous result, as zlib's. */
static uint32_t crc_soft(uint32_t crc, const uint8_t *b, uint64_t n) {
#ifdef SHMX_HAVE_ZLIB
  while (n) { /* zlib takes uInt lengths */
    uInt k = n > (1u << 30) ? (1u << 30) : (uInt)n;
    crc = (uint32_t)crc32(crc, b, k);
    b += k;
    n -= k;
  }
  return crc;
#else
  return shmx__crc32_table(crc, b, n);
#endif
}

/* ---- x86-64: PCLMULQDQ folding -------------------------------------------- */

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define CLMUL_TARGET __attribute__((target("pclmul,sse4.1")))

/* raw: the CRC register without zlib's pre/post inversion. n >= 64, n % 16
 * == 0. */
CLMUL_TARGET static uint32_t crc_clmul(uint32_t raw, const uint8_t *p, size_t n) {
  const __m128i k12 = _mm_set_epi64x(0x1c6e41596, 0x154442bd4); /* fold by 512 bits */
  const __m128i k34 = _mm_set_epi64x(0x0ccaa009e, 0x1751997d0); /* fold by 128 bits */
  const __m128i k5 = _mm_set_epi64x(0, 0x163cd6124);            /* 64 -> 32 bits */
  const __m128i pu = _mm_set_epi64x(0x1f7011641, 0x1db710641);  /* P, Barrett mu */
  const __m128i mask32 = _mm_set_epi32(0, 0, 0, -1);
  __m128i x1 = _mm_loadu_si128((const __m128i *)p);
  __m128i x2 = _mm_loadu_si128((const __m128i *)(p + 16));
  __m128i x3 = _mm_loadu_si128((const __m128i *)(p + 32));
  __m128i x4 = _mm_loadu_si128((const __m128i *)(p + 48));
  x1 = _mm_xor_si128(x1, _mm_cvtsi32_si128((int)raw));
  p += 64;
  n -= 64;
#define FOLD(x, k, next)                                                          \
  _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128((x), (k), 0x00),              \
                              _mm_clmulepi64_si128((x), (k), 0x11)),             \
                (next))
  while (n >= 64) {
    x1 = FOLD(x1, k12, _mm_loadu_si128((const __m128i *)p));
    x2 = FOLD(x2, k12, _mm_loadu_si128((const __m128i *)(p + 16)));
    x3 = FOLD(x3, k12, _mm_loadu_si128((const __m128i *)(p + 32)));
    x4 = FOLD(x4, k12, _mm_loadu_si128((const __m128i *)(p + 48)));
    p += 64;
    n -= 64;
  }
  x1 = FOLD(x1, k34, x2);
  x1 = FOLD(x1, k34, x3);
  x1 = FOLD(x1, k34, x4);
  while (n >= 16) {
    x1 = FOLD(x1, k34, _mm_loadu_si128((const __m128i *)p));
    p += 16;
    n -= 16;
  }
#undef FOLD
  /* 128 -> 64 bits */
  x1 = _mm_xor_si128(_mm_clmulepi64_si128(x1, k34, 0x10), _mm_srli_si128(x1, 8));
  /* 64 -> 32 bits */
  x1 = _mm_xor_si128(_mm_clmulepi64_si128(_mm_and_si128(x1, mask32), k5, 0x00),
                     _mm_srli_si128(x1, 4));
  /* Barrett reduction */
  __m128i t = _mm_clmulepi64_si128(_mm_and_si128(x1, mask32), pu, 0x10);
  t = _mm_clmulepi64_si128(_mm_and_si128(t, mask32), pu, 0x00);
  x1 = _mm_xor_si128(x1, t);
  return (uint32_t)_mm_extract_epi32(x1, 1);
}

static int clmul_ok(void) {
  static int ok = -1; /* racy but idempotent */
  if (ok < 0) {
    __builtin_cpu_init();
    ok = __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1");
  }
  return ok;
}

uint32_t shmx__crc32(uint32_t crc, const void *buf, uint64_t n) {
  const uint8_t *p = buf;
  if (!clmul_ok()) return crc_soft(crc, p, n);
  if (n >= 64) {
    size_t bulk = (size_t)(n & ~(uint64_t)15);
    crc = ~crc_clmul(~crc, p, bulk);
    p += bulk;
    n -= bulk;
  }
  /* < 64 bytes: the table (zlib's per-call cost is several times more) */
  return n ? shmx__crc32_table(crc, p, n) : crc;
}

int shmx__crc32_fast(void) { return clmul_ok(); }

#else

uint32_t shmx__crc32(uint32_t crc, const void *buf, uint64_t n) { return crc_soft(crc, buf, n); }
int shmx__crc32_fast(void) { return 0; }

#endif

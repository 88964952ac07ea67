/*
 * bench_stats.c -- samples and nearest-rank percentiles (every platform).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bench_internal.h"

/* ---- samples ------------------------------------------------------------ */

int bench_samples_reserve(bench_samples *s, size_t extra) {
  if (s->cap - s->n >= extra)
    return 0;
  if (extra > (SIZE_MAX / sizeof(uint64_t)) - s->n)
    return -1;
  size_t cap = s->n + extra;
  uint64_t *v = realloc(s->v, cap * sizeof(uint64_t));
  if (!v)
    return -1;
  s->v = v;
  s->cap = cap;
  return 0;
}

void bench_samples_push(bench_samples *s, uint64_t v) {
  if (s->n < s->cap)
    s->v[s->n++] = v;
}

void bench_samples_free(bench_samples *s) {
  free(s->v);
  s->v = NULL;
  s->n = s->cap = 0;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return (x > y) - (x < y);
}

/* Nearest rank: the smallest sample with at least q of them <= it. */
static uint64_t rank(const uint64_t *v, size_t n, double q) {
  double r = q * (double)n;
  size_t i = (size_t)r;
  if ((double)i < r)
    i++;
  if (i == 0)
    i = 1;
  if (i > n)
    i = n;
  return v[i - 1];
}

void bench_stats_compute(bench_samples *s, bench_stats *st) {
  memset(st, 0, sizeof *st);
  if (s->n == 0)
    return;
  qsort(s->v, s->n, sizeof(uint64_t), cmp_u64);
  double sum = 0;
  for (size_t i = 0; i < s->n; i++)
    sum += (double)s->v[i];
  st->n = s->n;
  st->min = s->v[0];
  st->max = s->v[s->n - 1];
  st->p50 = rank(s->v, s->n, 0.50);
  st->p99 = rank(s->v, s->n, 0.99);
  st->p999 = rank(s->v, s->n, 0.999);
  st->mean = sum / (double)s->n;
}

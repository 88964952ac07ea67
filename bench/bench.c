/*
 * bench.c -- shmx_bench_main(): options, the case table, rounds, targets and
 * the two output formats (table, JSON lines).
 *
 * Every case is compared with a baseline measured in the same run. Cases of
 * one group run interleaved in rounds (baseline, case, case, ..., then again)
 * and each case pools its samples over the rounds, so that a slow spell of
 * the machine hits the baseline and the case alike.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "bench_internal.h"
#include "shmx.h"

enum { K_BASE, K_CASE, K_REF }; /* K_REF: a reference protocol, not shmx */
enum { T_NONE, T_LAT, T_FLAT, T_WAIT, T_SPEED, T_APART };
enum { R_PINGPONG, R_SEQLOCK, R_FUTEX, R_PIPE, R_MEMCPY, R_SPIN, R_NOTIFY, R_COPY, R_WAIT, R_FD,
       R_PUBLISH, R_PUBLISH_ARMED };

typedef struct mdef {
  const char *name;
  int group;
  const char *base; /* name of the baseline in defs[], or NULL */
  int kind;    /* K_BASE / K_CASE */
  int target;  /* T_* */
  int run;     /* R_* */
  size_t bytes, batch;
  int readers;
  size_t iters, iters_quick; /* samples per round */
} mdef;

#define KiB ((size_t)1024)
#define MiB ((size_t)1024 * 1024)

static const mdef defs[] = {
    {"pingpong_cacheline", 0, NULL, K_BASE, T_NONE, R_PINGPONG, 64, 1, 0, 30000, 1000},
    {"seqlock_64B_spin", 0, "pingpong_cacheline", K_REF, T_NONE, R_SEQLOCK, 64, 1, 1, 30000, 1000},
    {"latency_64B_spin", 0, "pingpong_cacheline", K_CASE, T_LAT, R_SPIN, 64, 1, 1, 30000, 1000},
    {"notify_64B_spin", 0, "pingpong_cacheline", K_CASE, T_NONE, R_NOTIFY, 64, 1, 1, 30000, 1000},
    {"latency_64B_copy_spin", 0, "pingpong_cacheline", K_CASE, T_NONE, R_COPY, 64, 1, 1, 30000, 1000},
    {"latency_64KiB_spin", 0, "latency_64B_spin", K_CASE, T_FLAT, R_SPIN, 64 * KiB, 1, 1, 30000, 1000},
    {"latency_1MiB_spin", 0, "latency_64B_spin", K_CASE, T_FLAT, R_SPIN, 1 * MiB, 1, 1, 30000, 1000},
    {"latency_8MiB_spin", 0, "latency_64B_spin", K_CASE, T_FLAT, R_SPIN, 8 * MiB, 1, 1, 30000, 1000},
    {"futex_pingpong", 1, NULL, K_BASE, T_NONE, R_FUTEX, 64, 1, 0, 3000, 100},
    {"latency_64B_wait", 1, "futex_pingpong", K_CASE, T_WAIT, R_WAIT, 64, 1, 1, 3000, 100},
    {"pipe_pingpong", 1, NULL, K_BASE, T_NONE, R_PIPE, 64, 1, 0, 3000, 100},
    {"latency_64B_fd", 1, "pipe_pingpong", K_CASE, T_WAIT, R_FD, 64, 1, 1, 3000, 100},
    {"memcpy_1MiB", 2, NULL, K_BASE, T_NONE, R_MEMCPY, 1 * MiB, 1, 0, 2500, 100},
    {"publish_1MiB_copy", 2, "memcpy_1MiB", K_CASE, T_SPEED, R_PUBLISH, 1 * MiB, 1, 0, 2500, 100},
    {"memcpy_64B", 3, NULL, K_BASE, T_NONE, R_MEMCPY, 64, 16, 0, 20000, 1000},
    {"publish_64B_1reader", 3, "memcpy_64B", K_CASE, T_NONE, R_PUBLISH, 64, 16, 1, 20000, 1000},
    {"publish_64B_16readers", 3, "publish_64B_1reader", K_CASE, T_APART, R_PUBLISH, 64, 16, 16, 20000, 1000},
    {"publish_64B_16evloop", 3, "publish_64B_16readers", K_CASE, T_NONE, R_PUBLISH_ARMED, 64, 16, 16, 20000, 1000},
};
#define NDEFS ((int)(sizeof defs / sizeof defs[0]))
#define NGROUPS 4

/* Index of defs[i]'s baseline, or -1. Baselines precede their cases. */
static int base_index(int i) {
  for (int k = 0; defs[i].base && k < i; k++)
    if (!strcmp(defs[k].name, defs[i].base))
      return k;
  return -1;
}
#define ROUNDS_FULL 10

static const char *target_text(int t) {
  switch (t) {
  case T_LAT: return "p50 <= 2x and p99 <= 4x baseline p50";
  case T_FLAT: return "p50 <= 3x baseline p50";
  case T_WAIT: return "p50 <= 1.5x baseline p50";
  case T_SPEED: return "speed >= 85% of baseline (p50 <= 1.176x)";
  case T_APART: return "p50 within 1.2x of baseline p50";
  default: return NULL;
  }
}

/* What each figure measures, for the table's legend. */
static const char *unit_text(int run) {
  switch (run) {
  case R_PINGPONG: case R_SEQLOCK: case R_FUTEX: case R_PIPE: case R_SPIN: case R_NOTIFY:
  case R_COPY: case R_WAIT: case R_FD:
    return "one-way latency";
  default:
    return "time per operation";
  }
}

#define MAX_ROUNDS 100

typedef struct result {
  int ran, failed;
  bench_samples s;
  bench_stats st;                /* all rounds pooled */
  int rounds;                    /* rounds completed */
  uint64_t rp50[MAX_ROUNDS], rp99[MAX_ROUNDS]; /* per round */
} result;

typedef struct opts {
  int json, quick, list, rounds;
  const char *filter;
} opts;

static int run_one(const mdef *d, size_t iters, bench_samples *out) {
  switch (d->run) {
  case R_PINGPONG: return bench_base_pingpong(iters, out);
  case R_SEQLOCK: return bench_base_seqlock(iters, out);
  case R_FUTEX: return bench_base_futex(iters, out);
  case R_PIPE: return bench_base_pipe(iters, out);
  case R_MEMCPY: return bench_base_memcpy(d->bytes, d->batch, iters, out);
  case R_SPIN: return bench_core_latency_spin(d->bytes, iters, out);
  case R_NOTIFY: return bench_core_latency_notify(iters, out);
  case R_COPY: return bench_core_latency_copy(iters, out);
  case R_WAIT: return bench_core_latency_wait(iters, out);
  case R_FD: return bench_core_latency_fd(iters, out);
  case R_PUBLISH:
  case R_PUBLISH_ARMED:
    return bench_core_publish_copy(d->bytes, d->batch, d->readers,
                                   d->run == R_PUBLISH_ARMED, iters, out);
  default: return -1;
  }
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/*
 * Ratios to the baseline: the median over rounds of the same-round ratios
 * (case p50 / baseline p50, case p99 / baseline p50). On a VM the cost of a
 * cache-line transfer changes when the host moves the vCPUs, so only figures
 * taken a moment apart are compared. met: 1, 0, or -1 (no target/figures).
 */
static int judge(const mdef *d, const result *r, const result *base,
                 double *ratio_p50, double *ratio_p99) {
  double q50[MAX_ROUNDS], q99[MAX_ROUNDS];
  int n = 0;
  *ratio_p50 = *ratio_p99 = 0;
  if (!base)
    return -1;
  for (int k = 0; k < r->rounds && k < base->rounds; k++)
    if (base->rp50[k] > 0 && r->rp50[k] > 0) {
      q50[n] = (double)r->rp50[k] / (double)base->rp50[k];
      q99[n] = (double)r->rp99[k] / (double)base->rp50[k];
      n++;
    }
  if (n == 0)
    return -1;
  *ratio_p50 = median(q50, n);
  *ratio_p99 = median(q99, n);
  switch (d->target) {
  case T_LAT: return *ratio_p50 <= 2.0 && *ratio_p99 <= 4.0;
  case T_FLAT: return *ratio_p50 <= 3.0;
  case T_WAIT: return *ratio_p50 <= 1.5;
  case T_SPEED: return 1.0 / *ratio_p50 >= 0.85;
  case T_APART: {
    double x = *ratio_p50 >= 1.0 ? *ratio_p50 : 1.0 / *ratio_p50;
    return x <= 1.2;
  }
  default: return -1;
  }
}

static void print_json(const mdef *d, const result *r, const result *base) {
  const bench_stats *st = &r->st;
  printf("{\"name\":\"%s\",\"kind\":\"%s\",\"p50_ns\":%llu,\"p99_ns\":%llu,"
         "\"p999_ns\":%llu,\"min_ns\":%llu,\"max_ns\":%llu,\"mean_ns\":%.1f,"
         "\"samples\":%zu,\"bytes\":%zu,\"measures\":\"%s\",",
         d->name,
         d->kind == K_BASE ? "baseline" : d->kind == K_REF ? "reference" : "case",
         (unsigned long long)st->p50, (unsigned long long)st->p99,
         (unsigned long long)st->p999, (unsigned long long)st->min,
         (unsigned long long)st->max, st->mean, st->n, d->bytes,
         unit_text(d->run));
  if (!d->base || !base) {
    printf("\"baseline\":null,\"baseline_p50_ns\":null,\"target\":null,"
           "\"met\":null}\n");
    return;
  }
  double r50, r99;
  int met = judge(d, r, base, &r50, &r99);
  const char *t = target_text(d->target);
  printf("\"baseline\":\"%s\",\"baseline_p50_ns\":%llu,\"ratio_p50\":%.3f,"
         "\"ratio_p99\":%.3f,\"rounds\":%d,",
         d->base, (unsigned long long)base->st.p50, r50, r99, r->rounds);
  if (d->target == T_SPEED && r50 > 0)
    printf("\"speed_vs_baseline\":%.3f,", 1.0 / r50);
  if (t)
    printf("\"target\":\"%s\",\"met\":%s}\n", t,
           met < 0 ? "null" : met ? "true" : "false");
  else
    printf("\"target\":null,\"met\":null}\n");
}

static void print_table_header(void) {
  printf("%-22s %9s %9s %9s  %-20s %9s %7s %7s  %s\n", "case", "p50 ns",
         "p99 ns", "p99.9 ns", "baseline", "base p50", "x p50", "x p99",
         "target");
}

static void print_row(const mdef *d, const result *r, const result *base,
                      int *n_targets, int *n_met) {
  const bench_stats *st = &r->st;
  printf("%-22s %9llu %9llu %9llu  ", d->name, (unsigned long long)st->p50,
         (unsigned long long)st->p99, (unsigned long long)st->p999);
  if (!d->base || !base) {
    printf("%-20s\n", d->base ? "(its baseline failed)" : "(baseline)");
    return;
  }
  double r50, r99;
  int met = judge(d, r, base, &r50, &r99);
  printf("%-20s %9llu %7.2f %7.2f  ", d->base,
         (unsigned long long)base->st.p50, r50, r99);
  const char *t = target_text(d->target);
  if (!t) {
    printf("-\n");
    return;
  }
  (*n_targets)++;
  if (met > 0)
    (*n_met)++;
  printf("%s: %s", t, met < 0 ? "n/a" : met ? "MET" : "MISSED");
  if (d->target == T_SPEED && r50 > 0)
    printf(" (%.0f%%)", 100.0 / r50);
  printf("\n");
}

static void usage(FILE *f, const char *prog) {
  fprintf(f,
          "usage: %s [--json] [--quick] [--filter SUBSTR] [--rounds N] "
          "[--list]\n"
          "  --json           one JSON object per line\n"
          "  --quick          short run (smoke test; figures not meaningful)\n"
          "  --filter SUBSTR  only cases containing SUBSTR (plus baselines)\n"
          "  --rounds N       interleaved rounds per group (default %d)\n"
          "  --list           list cases and exit\n",
          prog, ROUNDS_FULL);
}

static int parse(int argc, char **argv, opts *o) {
  const char *prog = argc > 0 && argv[0] ? argv[0] : "shmx-bench";
  memset(o, 0, sizeof *o);
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!a || !strcmp(a, "--"))
      continue;
    if (!strcmp(a, "--json")) {
      o->json = 1;
    } else if (!strcmp(a, "--quick")) {
      o->quick = 1;
    } else if (!strcmp(a, "--list")) {
      o->list = 1;
    } else if (!strcmp(a, "--filter") || !strncmp(a, "--filter=", 9)) {
      if (a[8] == '=')
        o->filter = a + 9;
      else if (i + 1 < argc && argv[i + 1])
        o->filter = argv[++i];
      else
        goto bad;
    } else if (!strcmp(a, "--rounds") || !strncmp(a, "--rounds=", 9)) {
      const char *v = a[8] == '=' ? a + 9 : (i + 1 < argc ? argv[++i] : NULL);
      char *end = NULL;
      long n = v ? strtol(v, &end, 10) : 0;
      if (!v || !*v || *end || n < 1 || n > MAX_ROUNDS)
        goto bad;
      o->rounds = (int)n;
    } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      usage(stdout, prog);
      return 1;
    } else {
      fprintf(stderr, "%s: unknown option '%s'\n", prog, a);
      goto bad;
    }
  }
  return 0;
bad:
  usage(stderr, prog);
  return 2;
}

static int bench_run(int argc, char **argv) {
  opts o;
  int prc = parse(argc, argv, &o);
  if (prc)
    return prc == 1 ? 0 : 2;
  if (o.list) {
    for (int i = 0; i < NDEFS; i++)
      printf("%s%s\n", defs[i].name,
             defs[i].kind == K_BASE  ? " (baseline)"
             : defs[i].kind == K_REF ? " (reference protocol, not shmx)"
                                     : "");
    return 0;
  }
  int rounds = o.rounds ? o.rounds : o.quick ? 1 : ROUNDS_FULL;

  /* Selected cases, then their baselines (transitively). */
  int need[NDEFS] = {0}, any = 0;
  for (int i = 0; i < NDEFS; i++)
    if (!o.filter || strstr(defs[i].name, o.filter))
      need[i] = any = 1;
  if (!any) {
    fprintf(stderr, "shmx-bench: no case matches '%s' (see --list)\n",
            o.filter);
    return 2;
  }
  for (int i = NDEFS - 1; i >= 0; i--)
    if (need[i] && base_index(i) >= 0)
      need[base_index(i)] = 1; /* bases come earlier in the table */

  bench_remove_stale_channels();
  bench_cpu_setup();
  if (!o.json) {
    printf("shmx-bench %s: %s run, %d round(s) per group, %s, "
           "CLOCK_MONOTONIC ns\n",
           shmx_version_string(), o.quick ? "quick" : "full", rounds,
           bench_cpu_desc());
    printf("latency = one-way (stamp before publish -> reader holds frame); "
           "publish/memcpy = time per operation;\n"
           "x p50, x p99 = median over rounds of (case p50 or p99) / "
           "(baseline p50) in the same round\n\n");
    print_table_header();
  }
  fflush(stdout);

  result res[NDEFS];
  memset(res, 0, sizeof res);
  int failures = 0, n_targets = 0, n_met = 0;
  for (int g = 0; g < NGROUPS; g++) {
    for (int r = 0; r < rounds; r++)
      for (int i = 0; i < NDEFS; i++) {
        if (!need[i] || defs[i].group != g || res[i].failed)
          continue;
        size_t iters = o.quick ? defs[i].iters_quick : defs[i].iters;
        result *ri = &res[i];
        size_t start = ri->s.n;
        ri->ran = 1;
        if (run_one(&defs[i], iters, &ri->s) != 0) {
          fprintf(stderr, "shmx-bench: %s failed\n", defs[i].name);
          ri->failed = 1;
          failures++;
          continue;
        }
        bench_samples round = {ri->s.v + start, ri->s.n - start, 0};
        bench_stats rs;
        bench_stats_compute(&round, &rs); /* sorts this round's samples */
        ri->rp50[ri->rounds] = rs.p50;
        ri->rp99[ri->rounds] = rs.p99;
        ri->rounds++;
      }
    for (int i = 0; i < NDEFS; i++) {
      if (!need[i] || defs[i].group != g)
        continue;
      bench_stats_compute(&res[i].s, &res[i].st);
      if (res[i].failed) {
        if (!o.json)
          printf("%-22s FAILED (see stderr)\n", defs[i].name);
        continue;
      }
      const result *base = NULL;
      int b = base_index(i);
      if (b >= 0 && !res[b].failed)
        base = &res[b];
      if (o.json)
        print_json(&defs[i], &res[i], base);
      else
        print_row(&defs[i], &res[i], base, &n_targets, &n_met);
      fflush(stdout);
    }
  }
  if (!o.json)
    printf("\ntargets met: %d of %d%s\n", n_met, n_targets,
           o.quick ? " (quick run: not meaningful)" : "");
  for (int i = 0; i < NDEFS; i++)
    bench_samples_free(&res[i].s);
  bench_cpu_restore();
  fflush(stdout);
  return failures ? 1 : 0;
}

int shmx_bench_main(int argc, char **argv) {
  int rc = bench_run(argc, argv);
  fflush(stdout); /* callers may _exit() */
  fflush(stderr);
  return rc;
}

/*
 * bench_win.c -- shmx_bench_main() on Windows: the core cases that mean
 * something there, each against a baseline measured in the same run.
 *
 *   event_pingpong      two named auto-reset events between two processes
 *                       (SetEvent + WaitForSingleObject each way): the
 *                       floor of a blocking hand-off
 *   latency_64B_wait    shmx: publish, the reader wakes in shmx_client_wait
 *   pingpong_cacheline  a cache line bounced between two processes through
 *                       a shared section, both spinning: the floor of a
 *                       spinning hand-off
 *   latency_64B_spin    shmx: publish, the reader spins on shmx_client_next
 *   latency_1MiB_spin   the same with 1 MiB frames, against one 1 MiB copy
 *   memcpy_1MiB / publish_1MiB_copy, memcpy_64B / publish_64B_1reader:
 *                       one copy vs begin + append + publish with a reader
 *                       attached (in one process)
 *
 * shmx latencies are one-way: from a stamp taken before begin() to the
 * reader holding the frame, on QueryPerformanceCounter (one clock for every
 * process); the baselines' are half a round trip. The reader is this
 * program started again (`--child ROLE ...`); it sends each measurement
 * back in a frame on a second channel. Rounds interleave each baseline with its cases. Figures under
 * Wine are Wine's, not Windows': say so when quoting them.
 */
#define WIN32_LEAN_AND_MEAN
#include <windows.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "bench_internal.h"
#include "shmx.h"

#define KiB ((size_t)1024)
#define MiB (KiB * 1024)

enum { R_EVENT, R_WAIT, R_CACHELINE, R_SPIN, R_MEMCPY, R_PUBLISH };

typedef struct wdef {
  const char *name, *base;
  int run;
  size_t bytes, iters, iters_quick;
} wdef;

static const wdef defs[] = {
    {"event_pingpong", NULL, R_EVENT, 64, 2000, 100},
    {"latency_64B_wait", "event_pingpong", R_WAIT, 64, 2000, 100},
    {"pingpong_cacheline", NULL, R_CACHELINE, 64, 20000, 500},
    {"latency_64B_spin", "pingpong_cacheline", R_SPIN, 64, 20000, 500},
    {"memcpy_1MiB", NULL, R_MEMCPY, 1 * MiB, 2000, 50},
    {"latency_1MiB_spin", "memcpy_1MiB", R_SPIN, 1 * MiB, 2000, 50},
    {"publish_1MiB_copy", "memcpy_1MiB", R_PUBLISH, 1 * MiB, 2000, 50},
    {"memcpy_64B", NULL, R_MEMCPY, 64, 20000, 500},
    {"publish_64B_1reader", "memcpy_64B", R_PUBLISH, 64, 20000, 500},
};
#define NDEFS ((int)(sizeof defs / sizeof defs[0]))

static char self_path[MAX_PATH];
static const char *child_prefix = ""; /* "bench " when run as `shmx bench` */

/* ---- the other process ---------------------------------------------------- */

static HANDLE spawn(const char *args) {
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "\"%s\" %s--child %s", self_path, child_prefix, args);
  STARTUPINFOA si;
  PROCESS_INFORMATION pi;
  memset(&si, 0, sizeof si);
  si.cb = sizeof si;
  if (!CreateProcessA(NULL, cmd, NULL, NULL, FALSE, 0, NULL, NULL, &si, &pi)) return NULL;
  CloseHandle(pi.hThread);
  return pi.hProcess;
}

static int reap(HANDLE p) {
  DWORD code = 99;
  if (WaitForSingleObject(p, 20000) != WAIT_OBJECT_0) TerminateProcess(p, 99);
  else GetExitCodeProcess(p, &code);
  CloseHandle(p);
  return (int)code;
}

static void names(char *a, char *b, size_t cap, const char *tag) {
  snprintf(a, cap, "shmxbench-%lu-%s-a", GetCurrentProcessId(), tag);
  snprintf(b, cap, "shmxbench-%lu-%s-b", GetCurrentProcessId(), tag);
}

static shmx_server *mk(const char *name, size_t bytes) {
  shmx_stream_spec sp = {1, "data", SHMX_DT_U8, 1, SHMX_LAYOUT_SOA_SCALAR, 1, NULL, 0};
  shmx_server_config c;
  shmx_server_config_init(&c);
  c.slots = 4;
  c.frame_bytes_cap = bytes + 64;
  c.streams = &sp;
  c.n_streams = 1;
  shmx_server *s = NULL;
  return shmx_server_create(name, &c, &s) == 0 ? s : NULL;
}

static int pub(shmx_server *s, const void *data, size_t bytes) {
  int rc = shmx_server_begin(s);
  if (!rc) rc = shmx_server_append(s, 1, data, bytes, bytes);
  return rc ? rc : shmx_server_publish(s, 0, NULL);
}

/* Next frame of cl: spinning or sleeping in the wait. 0 or an error. */
static int take(shmx_client *cl, int spin, shmx_frame *f) {
  if (!spin) return shmx_client_wait(cl, f, BENCH_STEP_TIMEOUT_NS, 1);
  bench_spin sp;
  bench_spin_init(&sp, BENCH_STEP_TIMEOUT_NS);
  for (;;) {
    int rc = shmx_client_next(cl, f);
    if (rc != SHMX_E_NOFRAME) return rc;
    if (bench_spin_wait(&sp)) return SHMX_E_TIMEOUT;
  }
}

/* Child "echo A B spin N": mirror N frames of channel A on channel B. */
static int child_echo(const char *a, const char *b, int spin, long n) {
  shmx_server *s = mk(b, 64);
  if (!s) return 10;
  shmx_client *cl;
  if (shmx_client_open_wait(a, BENCH_STEP_TIMEOUT_NS, &cl)) return 11;
  uint8_t small[64] = {0};
  for (long i = 0; i < n; i++) {
    shmx_frame f;
    if (take(cl, spin, &f)) return 12;
    /* One-way latency: from the stamp the producer took before it began
     * the frame to now (QueryPerformanceCounter: one clock for all
     * processes); sent back in the echo. */
    uint64_t t0, lat;
    memcpy(&t0, f.streams[0].data, 8);
    lat = bench_now() - t0;
    shmx_frame_release(cl, &f);
    memcpy(small, &lat, 8);
    if (pub(s, small, sizeof small)) return 13;
  }
  /* Stay until the parent has read the last echo and left. */
  shmx_header_info hi;
  uint64_t end = bench_now() + BENCH_STEP_TIMEOUT_NS;
  while (shmx_server_header(s, &hi) == 0 && hi.readers_connected > 0 && bench_now() < end)
    Sleep(1);
  shmx_client_close(cl);
  shmx_server_destroy(s);
  return 0;
}

/* Child "events E1 E2 N": wait on E1, set E2, N times. */
static int child_events(const char *e1, const char *e2, long n) {
  HANDLE a = OpenEventA(SYNCHRONIZE | EVENT_MODIFY_STATE, FALSE, e1);
  HANDLE b = OpenEventA(SYNCHRONIZE | EVENT_MODIFY_STATE, FALSE, e2);
  if (!a || !b) return 10;
  for (long i = 0; i < n; i++) {
    if (WaitForSingleObject(a, 10000) != WAIT_OBJECT_0) return 11;
    SetEvent(b);
  }
  return 0;
}

typedef struct line {
  _Alignas(64) _Atomic uint64_t ping;
  _Alignas(64) _Atomic uint64_t pong;
} line;

static line *map_line(const char *name, HANDLE *h, int create) {
  *h = create ? CreateFileMappingA(INVALID_HANDLE_VALUE, NULL, PAGE_READWRITE, 0, 4096, name)
              : OpenFileMappingA(FILE_MAP_ALL_ACCESS, FALSE, name);
  if (!*h) return NULL;
  return MapViewOfFile(*h, FILE_MAP_ALL_ACCESS, 0, 0, 4096);
}

/* Child "line SECTION N": answer each ping with the same pong. */
static int child_line(const char *sec, long n) {
  HANDLE h;
  line *l = map_line(sec, &h, 0);
  if (!l) return 10;
  for (long i = 1; i <= n; i++) {
    bench_spin sp;
    bench_spin_init(&sp, BENCH_STEP_TIMEOUT_NS);
    while (atomic_load_explicit(&l->ping, memory_order_acquire) != (uint64_t)i)
      if (bench_spin_wait(&sp)) return 11;
    atomic_store_explicit(&l->pong, (uint64_t)i, memory_order_release);
  }
  return 0;
}

/* ---- measurements --------------------------------------------------------- */

static int run_events(size_t iters, bench_samples *out) {
  char e1[96], e2[96];
  names(e1, e2, sizeof e1, "ev");
  HANDLE a = CreateEventA(NULL, FALSE, FALSE, e1), b = CreateEventA(NULL, FALSE, FALSE, e2);
  size_t warm = iters / 10 + 10;
  char args[300];
  snprintf(args, sizeof args, "events %s %s %zu", e1, e2, iters + warm);
  HANDLE p = spawn(args);
  if (!a || !b || !p) return -1;
  for (size_t i = 0; i < iters + warm; i++) {
    uint64_t t0 = bench_now();
    SetEvent(a);
    if (WaitForSingleObject(b, 10000) != WAIT_OBJECT_0) return -1;
    if (i >= warm) bench_samples_push(out, (bench_now() - t0) / 2);
  }
  CloseHandle(a);
  CloseHandle(b);
  return reap(p) == 0 ? 0 : -1;
}

static int run_cacheline(size_t iters, bench_samples *out) {
  char sec[96], unused[96];
  names(sec, unused, sizeof sec, "line");
  HANDLE h;
  line *l = map_line(sec, &h, 1);
  if (!l) return -1;
  size_t warm = iters / 10 + 10;
  char args[300];
  snprintf(args, sizeof args, "line %s %zu", sec, iters + warm);
  HANDLE p = spawn(args);
  if (!p) return -1;
  int rc = 0;
  for (size_t i = 1; i <= iters + warm && !rc; i++) {
    uint64_t t0 = bench_now();
    atomic_store_explicit(&l->ping, i, memory_order_release);
    bench_spin sp;
    bench_spin_init(&sp, BENCH_STEP_TIMEOUT_NS);
    while (atomic_load_explicit(&l->pong, memory_order_acquire) != i)
      if (bench_spin_wait(&sp)) {
        rc = -1;
        break;
      }
    if (i > warm) bench_samples_push(out, (bench_now() - t0) / 2);
  }
  if (reap(p) != 0) rc = -1;
  UnmapViewOfFile(l);
  CloseHandle(h);
  return rc;
}

/* Publish on A (the stamp in its first bytes), the echo on B brings back
 * the one-way latency the reader measured. */
static int run_echo(size_t bytes, int spin, size_t iters, bench_samples *out) {
  char a[96], b[96];
  names(a, b, sizeof a, spin ? "spin" : "wait");
  shmx_server *s = mk(a, bytes);
  uint8_t *buf = calloc(1, bytes < 8 ? 8 : bytes);
  if (!s || !buf || bytes < 8) return -1;
  size_t warm = iters / 10 + 10;
  char args[300];
  snprintf(args, sizeof args, "echo %s %s %d %zu", a, b, spin, iters + warm);
  HANDLE p = spawn(args);
  shmx_client *cl = NULL;
  int rc = p && shmx_client_open_wait(b, BENCH_STEP_TIMEOUT_NS, &cl) == 0 ? 0 : -1;
  /* The echo attaches to A before it can answer anything. */
  shmx_header_info hi;
  uint64_t end = bench_now() + BENCH_STEP_TIMEOUT_NS;
  while (!rc && shmx_server_header(s, &hi) == 0 && hi.readers_connected == 0)
    if (bench_now() > end) rc = -1;
    else Sleep(1);
  for (size_t i = 0; i < iters + warm && !rc; i++) {
    uint64_t t0 = bench_now(), lat;
    memcpy(buf, &t0, 8);
    shmx_frame f;
    if (pub(s, buf, bytes) || take(cl, spin, &f)) {
      rc = -1;
      break;
    }
    memcpy(&lat, f.streams[0].data, 8);
    shmx_frame_release(cl, &f);
    if (i >= warm) bench_samples_push(out, lat);
  }
  shmx_client_close(cl);
  if (p && reap(p) != 0) rc = -1;
  shmx_server_destroy(s);
  free(buf);
  return rc;
}

static int run_memcpy(size_t bytes, size_t iters, bench_samples *out) {
  uint8_t *src = malloc(bytes), *dst = malloc(bytes);
  if (!src || !dst) return -1;
  memset(src, 1, bytes);
  memset(dst, 0, bytes);
  size_t batch = bytes < 4096 ? 16 : 1;
  for (size_t i = 0; i < iters; i++) {
    uint64_t t0 = bench_now();
    for (size_t k = 0; k < batch; k++) {
      src[0] = (uint8_t)k;
      memcpy(dst, src, bytes);
      BENCH_BARRIER();
    }
    bench_samples_push(out, (bench_now() - t0) / batch);
  }
  free(src);
  free(dst);
  return 0;
}

static int run_publish(size_t bytes, size_t iters, bench_samples *out) {
  char a[96], unused[96];
  names(a, unused, sizeof a, "pub");
  shmx_server *s = mk(a, bytes);
  uint8_t *buf = calloc(1, bytes);
  shmx_client *cl;
  if (!s || !buf || shmx_client_open(a, &cl)) return -1;
  size_t batch = bytes < 4096 ? 16 : 1;
  for (size_t i = 0; i < iters; i++) {
    uint64_t t0 = bench_now();
    for (size_t k = 0; k < batch; k++)
      if (pub(s, buf, bytes)) return -1;
    bench_samples_push(out, (bench_now() - t0) / batch);
  }
  shmx_client_close(cl);
  shmx_server_destroy(s);
  free(buf);
  return 0;
}

static int run(const wdef *d, size_t iters, bench_samples *out) {
  if (bench_samples_reserve(out, iters)) return -1;
  switch (d->run) {
  case R_EVENT: return run_events(iters, out);
  case R_WAIT: return run_echo(d->bytes, 0, iters, out);
  case R_CACHELINE: return run_cacheline(iters, out);
  case R_SPIN: return run_echo(d->bytes, 1, iters, out);
  case R_MEMCPY: return run_memcpy(d->bytes, iters, out);
  default: return run_publish(d->bytes, iters, out);
  }
}

/* ---- the suite ---------------------------------------------------------------- */

static int base_of(int i) {
  for (int k = 0; k < NDEFS; k++)
    if (defs[i].base && strcmp(defs[k].name, defs[i].base) == 0) return k;
  return -1;
}

int shmx_bench_main(int argc, char **argv) {
  GetModuleFileNameA(NULL, self_path, sizeof self_path);
  if (argc > 0 && strcmp(argv[0], "shmx bench") == 0) child_prefix = "bench ";
  if (argc >= 4 && strcmp(argv[1], "--child") == 0) {
    const char *role = argv[2];
    if (!strcmp(role, "echo") && argc >= 7)
      return child_echo(argv[3], argv[4], atoi(argv[5]), atol(argv[6]));
    if (!strcmp(role, "events") && argc >= 6) return child_events(argv[3], argv[4], atol(argv[5]));
    if (!strcmp(role, "line") && argc >= 5) return child_line(argv[3], atol(argv[4]));
    return 2;
  }
  int json = 0, quick = 0, rounds = 3;
  const char *filter = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--json")) json = 1;
    else if (!strcmp(argv[i], "--quick")) quick = 1;
    else if (!strcmp(argv[i], "--filter") && i + 1 < argc) filter = argv[++i];
    else if (!strcmp(argv[i], "--rounds") && i + 1 < argc) {
      rounds = atoi(argv[++i]);
      if (rounds < 1 || rounds > 100) {
        fprintf(stderr, "shmx bench: --rounds: expected 1..100\n");
        return 2;
      }
    } else if (!strcmp(argv[i], "--list")) {
      for (int k = 0; k < NDEFS; k++) printf("%s\n", defs[k].name);
      return 0;
    } else {
      fprintf(stderr, "shmx bench: unknown option '%s'\n", argv[i]);
      return 2;
    }
  }
  if (quick) rounds = 1;
  int sel[NDEFS];
  for (int i = 0; i < NDEFS; i++) sel[i] = !filter || strstr(defs[i].name, filter);
  for (int i = 0; i < NDEFS; i++)
    if (sel[i] && base_of(i) >= 0) sel[base_of(i)] = 1; /* and its baseline */
  bench_samples s[NDEFS];
  memset(s, 0, sizeof s);
  double ratio_sum[NDEFS] = {0};
  int failed = 0;
  for (int r = 0; r < rounds; r++)
    for (int i = 0; i < NDEFS; i++) {
      if (!sel[i]) continue;
      size_t it = quick ? defs[i].iters_quick : defs[i].iters;
      bench_samples one = {0};
      if (run(&defs[i], it, &one) != 0) {
        fprintf(stderr, "shmx bench: %s could not run\n", defs[i].name);
        failed = 1;
        sel[i] = 0;
      } else {
        /* per-round ratio of p50s, against this round's baseline */
        bench_stats st;
        bench_samples copy = {0};
        if (bench_samples_reserve(&copy, one.n) == 0) {
          for (size_t k = 0; k < one.n; k++) bench_samples_push(&copy, one.v[k]);
          bench_stats_compute(&copy, &st);
          int b = base_of(i);
          if (b >= 0 && s[b].n) {
            bench_samples bcopy = {0};
            bench_stats bst;
            /* the baseline ran just before in this round: its last it samples */
            size_t bit = quick ? defs[b].iters_quick : defs[b].iters;
            size_t from = s[b].n >= bit ? s[b].n - bit : 0;
            if (bench_samples_reserve(&bcopy, s[b].n - from) == 0) {
              for (size_t k = from; k < s[b].n; k++) bench_samples_push(&bcopy, s[b].v[k]);
              bench_stats_compute(&bcopy, &bst);
              if (bst.p50) ratio_sum[i] += (double)st.p50 / (double)bst.p50;
            }
            bench_samples_free(&bcopy);
          }
        }
        bench_samples_free(&copy);
        if (bench_samples_reserve(&s[i], one.n) == 0)
          for (size_t k = 0; k < one.n; k++) bench_samples_push(&s[i], one.v[k]);
      }
      bench_samples_free(&one);
    }
  if (!json)
    printf("shmx bench (Windows build%s): %d round(s); shmx latencies one-way, baselines half a round trip\n"
           "%-22s %10s %10s %10s %10s  %s\n",
           GetProcAddress(GetModuleHandleA("ntdll.dll"), "wine_get_version") ? ", under Wine" : "",
           rounds, "case", "p50 ns", "p99 ns", "p99.9 ns", "samples", "vs baseline (p50, per round)");
  for (int i = 0; i < NDEFS; i++) {
    if (!sel[i] || !s[i].n) continue;
    bench_stats st;
    bench_stats_compute(&s[i], &st);
    int b = base_of(i);
    double ratio = b >= 0 ? ratio_sum[i] / rounds : 0;
    if (json)
    {
      char rs[32] = "null";
      if (b >= 0) snprintf(rs, sizeof rs, "%.3f", ratio);
      printf("{\"case\":\"%s\",\"platform\":\"windows\",\"p50_ns\":%llu,\"p99_ns\":%llu,"
             "\"p999_ns\":%llu,\"samples\":%zu,\"baseline\":%s%s%s,\"ratio_p50\":%s}\n",
             defs[i].name, (unsigned long long)st.p50, (unsigned long long)st.p99,
             (unsigned long long)st.p999, st.n, b >= 0 ? "\"" : "", b >= 0 ? defs[b].name : "null",
             b >= 0 ? "\"" : "", rs);
    }
    else if (b >= 0)
      printf("%-22s %10llu %10llu %10llu %10zu  %.2fx %s\n", defs[i].name,
             (unsigned long long)st.p50, (unsigned long long)st.p99,
             (unsigned long long)st.p999, st.n, ratio, defs[b].name);
    else
      printf("%-22s %10llu %10llu %10llu %10zu  (baseline)\n", defs[i].name,
             (unsigned long long)st.p50, (unsigned long long)st.p99,
             (unsigned long long)st.p999, st.n);
    bench_samples_free(&s[i]);
  }
  return failed;
}

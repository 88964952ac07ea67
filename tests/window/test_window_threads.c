/* test_window_threads.c -- one manager shared by threads: every byte read
 * matches the file and the counts add up (also run under ThreadSanitizer). */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#ifndef _WIN32
#include <sys/wait.h>
#endif
#include <unistd.h>

#include "common.h"
#include "shmx.h"

#define NFILES 3
#define NTHREADS 4
#define ITERS 3000

static const char *paths[NFILES];
static uint8_t *datas[NFILES];
static size_t fsize;
static shmx_wm *wm;
static atomic_int failures;
static const char *fail_what;

static void *worker(void *arg) {
  uint64_t s = (uint64_t)(uintptr_t)arg * 0x9E3779B97F4A7C15ull + 1;
  shmx_wc *cur[NFILES] = {0};
  for (int i = 0; i < NFILES; i++) {
    if (shmx_wc_open_path(wm, paths[i], 0, &cur[i]) != 0) {
      fail_what = "open";
      atomic_fetch_add(&failures, 1);
      goto out;
    }
    shmx_wc_advise(cur[i], (int)(s % 4));
  }
  for (int it = 0; it < ITERS; it++) {
    s ^= s >> 12; s ^= s << 25; s ^= s >> 27;
    uint64_t r = s * 2685821657736338717ull;
    int f = (int)(r % NFILES);
    uint64_t off = (r >> 8) % fsize;
    int rc = shmx_wc_use(cur[f], off, 4096);
    if (rc == SHMX_E_LIMIT) { /* others hold every region: let go, retry */
      for (int i = 0; i < NFILES; i++) shmx_wc_unuse(cur[i]);
      continue;
    }
    if (rc != 1 || memcmp(shmx_wc_ptr(cur[f]), datas[f] + off, shmx_wc_size(cur[f]))) {
      fail_what = rc != 1 ? "use" : "bytes";
      atomic_fetch_add(&failures, 1);
      break;
    }
    if (it % 5 == 0) { /* copies without mapping, racing evictions */
      uint8_t tmp[5000];
      uint64_t o2 = (r >> 20) % fsize;
      int64_t n = shmx_wc_read(cur[(f + 1) % NFILES], o2, tmp, sizeof tmp);
      uint64_t want = fsize - o2 < sizeof tmp ? fsize - o2 : sizeof tmp;
      if (n != (int64_t)want || memcmp(tmp, datas[(f + 1) % NFILES] + o2, want)) {
        fail_what = "read";
        atomic_fetch_add(&failures, 1);
        break;
      }
    }
    if (it % 7 == 0) shmx_wc_unuse(cur[f]);
    if (it % 500 == 0) shmx_wm_collect(wm);
    if (it % 300 == 0) { /* clones share regions correctly too */
      shmx_wc *cl;
      if (shmx_wc_clone(cur[f], &cl) == 0) {
        if (shmx_wc_valid(cl) && memcmp(shmx_wc_ptr(cl), datas[f] + shmx_wc_offset(cl),
                                        shmx_wc_size(cl))) {
          fail_what = "clone";
          atomic_fetch_add(&failures, 1);
        }
        shmx_wc_close(cl);
      }
    }
  }
out:
  for (int i = 0; i < NFILES; i++) shmx_wc_close(cur[i]);
  return NULL;
}

static void run_with(uint32_t kind, uint64_t window, uint64_t mem, uint64_t handles) {
  shmx_wm_config cfg;
  shmx_wm_config_init(&cfg, kind);
  if (window) cfg.window_size = window;
  cfg.max_memory = mem;
  cfg.max_handles = handles;
  if (shmx_wm_create(&cfg, &wm) != 0) abort();
  pthread_t th[NTHREADS];
  for (int i = 0; i < NTHREADS; i++)
    pthread_create(&th[i], NULL, worker, (void *)(uintptr_t)(i + 1));
  for (int i = 0; i < NTHREADS; i++) pthread_join(th[i], NULL);
}

TEST(sliding_small_windows) {
  uint64_t G = shmx_wm_granularity();
  run_with(SHMX_WM_SLIDING, 8 * G, 64 * G, 12);
  CHECK_EQ(atomic_load(&failures), 0);
  shmx_wm_stats st;
  shmx_wm_get_stats(wm, &st);
  CHECK_EQ(st.regions_used, 0);
  CHECK_LE(st.regions, 12);
  CHECK_LE(st.mapped_bytes, 64 * G);
  CHECK_GT(st.evictions, 0);
  shmx_wm_collect(wm);
  shmx_wm_get_stats(wm, &st);
  CHECK_EQ(st.regions, 0);
  CHECK_EQ(st.mapped_bytes, 0);
  CHECK_EQ(st.open_fds, 0);
  shmx_wm_destroy(wm);
}

TEST(static_whole_files) {
  run_with(SHMX_WM_STATIC, 0, fsize * 2, NFILES);
  if (fail_what) fprintf(stderr, "failed at %s\n", fail_what);
  CHECK_EQ(atomic_load(&failures), 0);
  shmx_wm_stats st;
  shmx_wm_get_stats(wm, &st);
  CHECK_EQ(st.regions_used, 0);
  CHECK_LE(st.regions, NFILES);
  shmx_wm_destroy(wm);
}

/* fork() while NTHREADS threads hammer one manager (issue 11, item 7): every
 * child must map and read through the same manager at once (before, 11 of 40
 * children hung on a mutex a thread held at fork time). Each child has a
 * deadline; a hung one is killed and counted. */
#ifndef _WIN32
static atomic_int stop_forkers;
static void *forker_worker(void *arg) {
  uint64_t s = (uint64_t)(uintptr_t)arg + 7;
  shmx_wc *c = NULL;
  if (shmx_wc_open_path(wm, paths[0], 0, &c) != 0) return NULL;
  while (!atomic_load(&stop_forkers)) {
    s ^= s << 13; s ^= s >> 7; s ^= s << 17;
    (void)shmx_wc_use(c, s % fsize, 4096);
    if (s % 3 == 0) shmx_wm_collect(wm);
  }
  shmx_wc_close(c);
  return NULL;
}
#endif

TEST(fork_with_threads_running) {
  SKIP_WITHOUT_FORK();
#ifndef _WIN32
  uint64_t G = shmx_wm_granularity();
  shmx_wm_config cfg;
  shmx_wm_config_init(&cfg, SHMX_WM_SLIDING);
  cfg.window_size = 2 * G;
  cfg.max_memory = 16 * G;
  CHECK_OK(shmx_wm_create(&cfg, &wm));
  pthread_t th[NTHREADS];
  atomic_store(&stop_forkers, 0);
  for (int i = 0; i < NTHREADS; i++)
    pthread_create(&th[i], NULL, forker_worker, (void *)(uintptr_t)i);
  int hung = 0, bad = 0, rounds = 40;
  for (int r = 0; r < rounds; r++) {
    pid_t p = fork();
    if (p == 0) {
      alarm(5);
      shmx_wc *c = NULL;
      if (shmx_wc_open_path(wm, paths[1], 0, &c) != 0) _exit(2);
      if (shmx_wc_use(c, 1000, 100) != 1 || memcmp(shmx_wc_ptr(c), datas[1] + 1000, 100))
        _exit(3);
      uint8_t b[64];
      if (shmx_wc_read(c, 5000, b, 64) != 64 || memcmp(b, datas[1] + 5000, 64)) _exit(4);
      shmx_wc_close(c);
      shmx_wm_collect(wm);
      _exit(0);
    }
    int st = 0;
    waitpid(p, &st, 0);
    if (WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM) hung++;
    else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) bad++;
  }
  atomic_store(&stop_forkers, 1);
  for (int i = 0; i < NTHREADS; i++) pthread_join(th[i], NULL);
  printf("# fork with %d threads running: %d children, hung %d, failed %d\n",
         NTHREADS, rounds, hung, bad);
  CHECK_EQ(hung, 0);
  CHECK_EQ(bad, 0);
  shmx_wm_destroy(wm);
#endif
}

int main(void) {
  fsize = 256 * shmx_wm_granularity() + 333; /* 1 MiB with 4 KiB pages */
  for (int i = 0; i < NFILES; i++) paths[i] = tmp_file(fsize, &datas[i]);
  RUN(sliding_small_windows);
  RUN(static_whole_files);
  RUN(fork_with_threads_running);
  for (int i = 0; i < NFILES; i++) free(datas[i]);
  return harness_done();
}

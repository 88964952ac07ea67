/* test_window_basic.c -- the window manager's C API (shmx_window.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#ifndef _WIN32
#include <sys/resource.h>
#endif
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "shmx.h"

static uint64_t G;

static shmx_wm *mk(uint32_t kind, uint64_t window, uint64_t mem, uint64_t handles) {
  shmx_wm_config cfg;
  shmx_wm_config_init(&cfg, kind);
  if (window != UINT64_MAX) cfg.window_size = window;
  cfg.max_memory = mem;
  cfg.max_handles = handles;
  shmx_wm *wm = NULL;
  if (shmx_wm_create(&cfg, &wm) != 0) return NULL;
  return wm;
}

TEST(config_and_args) {
  shmx_wm_config cfg;
  shmx_wm_config_init(&cfg, SHMX_WM_SLIDING);
  CHECK_EQ(cfg.window_size, (uint64_t)1024 << 20);
  shmx_wm_config_init(&cfg, SHMX_WM_STATIC);
  CHECK_EQ(cfg.window_size, 0);
  shmx_wm *wm = NULL;
  CHECK_ERR(shmx_wm_create(NULL, &wm), SHMX_E_ARG);
  cfg.kind = 7;
  CHECK_ERR(shmx_wm_create(&cfg, &wm), SHMX_E_ARG);
  CHECK(wm == NULL);
  wm = mk(SHMX_WM_SLIDING, 1000, 0, 0); /* window rounds to one granule */
  CHECK(wm != NULL);
  shmx_wm_stats st;
  shmx_wm_get_stats(wm, &st);
  CHECK_EQ(st.window_size, G);
  CHECK_EQ(st.max_memory, (uint64_t)8192 << 20);
  CHECK_GE(st.max_handles, 1);
  shmx_wm_destroy(wm);
  wm = mk(SHMX_WM_SLIDING, G + 1, 0, 0); /* rounded up, as smmap does */
  shmx_wm_get_stats(wm, &st);
  CHECK_EQ(st.window_size, 2 * G);
  shmx_wm_destroy(wm);
  wm = mk(SHMX_WM_SLIDING, 3 * G, 0, 0); /* whole granules stay as they are */
  shmx_wm_get_stats(wm, &st);
  CHECK_EQ(st.window_size, 3 * G);
  shmx_wc *c = NULL;
  CHECK_ERR(shmx_wc_open_path(wm, "/nonexistent/shmx", 0, &c), SHMX_E_ENOENT);
  CHECK_ERR(shmx_wc_open_path(wm, "/tmp", 0, &c), SHMX_E_ARG);
  CHECK_ERR(shmx_wc_open_fd(wm, -1, &c), SHMX_E_ARG);
  CHECK_ERR(shmx_wc_use(NULL, 0, 0), SHMX_E_ARG);
  CHECK(shmx_wc_ptr(NULL) == NULL);
  shmx_wc_close(NULL);
  shmx_wm_destroy(NULL);
  shmx_wm_destroy(wm);
}

/* Random windows from path and fd cursors of both kinds match the file. */
TEST(random_access) {
  size_t size = 3 * 1024 * 1024 + 777;
  uint8_t *data;
  const char *path = tmp_file(size, &data);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  CHECK_GE(fd, 0);
  struct {
    uint32_t kind;
    uint64_t window, mem, handles;
  } cfgs[] = {{SHMX_WM_SLIDING, UINT64_MAX, 0, 0},
              {SHMX_WM_SLIDING, 16 * G + 5, 64 * G, 6},
              {SHMX_WM_STATIC, UINT64_MAX, 0, 0},
              {SHMX_WM_STATIC, UINT64_MAX, size / 3, 2}};
  for (int k = 0; k < 4; k++) {
    shmx_wm *wm = mk(cfgs[k].kind, cfgs[k].window, cfgs[k].mem, cfgs[k].handles);
    CHECK(wm != NULL);
    for (int which = 0; which < 2; which++) {
      shmx_wc *c = NULL;
      if (which == 0) CHECK_OK(shmx_wc_open_path(wm, path, 0, &c));
      else CHECK_OK(shmx_wc_open_fd(wm, fd, &c));
      CHECK_EQ(shmx_wc_file_size(c), size);
      CHECK_EQ(shmx_wc_valid(c), 0);
      for (int i = 0; i < 3000; i++) {
        uint64_t off = rng() % size, want = rng() % 100000;
        CHECK_EQ(shmx_wc_use(c, off, want), 1);
        uint64_t n = shmx_wc_size(c);
        CHECK_GE(n, 1);
        if (want) CHECK_LE(n, want);
        CHECK_LE(off + n, size);
        CHECK_EQ(shmx_wc_offset(c), off);
        CHECK_MEM(shmx_wc_ptr(c), data + off, n);
        shmx_wm_region *r = shmx_wc_region(c);
        CHECK_EQ(shmx_wm_region_offset(r) % G, 0);
        shmx_wm_stats st;
        shmx_wm_get_stats(wm, &st);
        CHECK_LE(st.regions, st.max_handles);
        CHECK_LE(st.open_fds, st.max_handles);
        if (cfgs[k].kind == SHMX_WM_SLIDING && cfgs[k].window != UINT64_MAX) {
          CHECK_LE(shmx_wm_region_size(r), 17 * G); /* 16 G + 5 rounds up */
          CHECK_LE(st.mapped_bytes, st.max_memory + shmx_wm_region_size(r));
        }
      }
      /* past the end: invalid, not an error */
      CHECK_EQ(shmx_wc_use(c, size, 1), 0);
      CHECK_EQ(shmx_wc_valid(c), 0);
      CHECK_EQ(shmx_wc_use(c, UINT64_MAX, 0), 0);
      CHECK_EQ(shmx_wc_use(c, size - 1, 0), 1);
      CHECK_EQ(shmx_wc_size(c), 1);
      shmx_wc_close(c);
    }
    CHECK_GE(shmx_wm_collect(wm), 1);
    shmx_wm_stats st;
    shmx_wm_get_stats(wm, &st);
    CHECK_EQ(st.regions, 0);
    CHECK_EQ(st.mapped_bytes, 0);
    CHECK_EQ(st.open_fds, 0);
    shmx_wm_destroy(wm);
  }
  close(fd);
  free(data);
}

/* A small request starts its window at the request, not behind it. */
TEST(window_placement) {
  uint8_t *data;
  const char *path = tmp_file(64 * G, &data);
  shmx_wm *wm = mk(SHMX_WM_SLIDING, 8 * G, 0, 0);
  shmx_wc *c;
  CHECK_OK(shmx_wc_open_path(wm, path, 0, &c));
  CHECK_EQ(shmx_wc_use(c, 20 * G + 5, 1), 1);
  shmx_wm_region *r = shmx_wc_region(c);
  CHECK_EQ(shmx_wm_region_offset(r), 20 * G);
  CHECK_EQ(shmx_wm_region_size(r), 8 * G);
  /* next to the end of the file, the window extends backwards */
  CHECK_EQ(shmx_wc_use(c, 63 * G + 3, 1), 1);
  r = shmx_wc_region(c);
  CHECK_EQ(shmx_wm_region_offset(r), 56 * G);
  CHECK_EQ(shmx_wm_region_size(r), 8 * G);
  /* with room on both sides it goes forward from the request */
  CHECK_EQ(shmx_wc_use(c, 30 * G, 1), 1);
  r = shmx_wc_region(c);
  CHECK_EQ(shmx_wm_region_offset(r), 30 * G);
  CHECK_EQ(shmx_wm_region_size(r), 8 * G);
  /* up against a right neighbour it fills back toward the left one and
   * never overlaps either: free room is [38G, 56G) */
  CHECK_EQ(shmx_wc_use(c, 53 * G, 1), 1);
  r = shmx_wc_region(c);
  CHECK_EQ(shmx_wm_region_offset(r), 48 * G);
  CHECK_EQ(shmx_wm_region_size(r), 8 * G);
  CHECK_EQ(shmx_wc_use(c, 37 * G, 1), 1); /* inside [30G, 38G) */
  CHECK_EQ(shmx_wm_region_offset(shmx_wc_region(c)), 30 * G);
  CHECK_EQ(shmx_wc_use(c, 40 * G, 1), 1); /* room [38G, 48G): 8G from 40G */
  r = shmx_wc_region(c);
  CHECK_EQ(shmx_wm_region_offset(r), 40 * G);
  CHECK_EQ(shmx_wm_region_size(r), 8 * G);
  CHECK_EQ(shmx_wc_use(c, 39 * G, 1), 1); /* room [38G, 40G) only */
  r = shmx_wc_region(c);
  CHECK_EQ(shmx_wm_region_offset(r), 38 * G);
  CHECK_EQ(shmx_wm_region_size(r), 2 * G);
  shmx_wm_stats st;
  shmx_wm_get_stats(wm, &st);
  CHECK_EQ(st.regions, 6);
  CHECK_EQ(st.mapped_bytes, 42 * G);
  shmx_wc_close(c);
  shmx_wm_destroy(wm);
  free(data);
}

TEST(lru_order_and_limits) {
  uint8_t *data;
  const char *path = tmp_file(64 * G, &data);
  shmx_wm *wm = mk(SHMX_WM_SLIDING, G, 0, 3);
  shmx_wc *c;
  CHECK_OK(shmx_wc_open_path(wm, path, 0, &c));
  shmx_wm_region *reg[3];
  for (int i = 0; i < 3; i++) {
    CHECK_EQ(shmx_wc_use(c, (uint64_t)i * 10 * G, 1), 1);
    reg[i] = shmx_wc_region(c);
    shmx_wm_region_hold(reg[i]);
  }
  shmx_wc_unuse(c);
  CHECK_EQ(shmx_wc_use(c, 0, 1), 1); /* touch A: B is least recent */
  shmx_wc_unuse(c);
  CHECK_EQ(shmx_wc_use(c, 30 * G, 1), 1);
  CHECK_EQ(shmx_wm_region_mapped(reg[1]), 0);
  CHECK_EQ(shmx_wm_region_mapped(reg[0]), 1);
  CHECK_EQ(shmx_wm_region_mapped(reg[2]), 1);
  CHECK_EQ(shmx_wm_region_offset(reg[1]), 10 * G); /* held: still readable */
  /* all three in use: a fourth window fails with SHMX_E_LIMIT */
  shmx_wc *c2, *c3, *c4;
  CHECK_OK(shmx_wc_open_path(wm, path, 0, &c2));
  CHECK_OK(shmx_wc_open_path(wm, path, 0, &c3));
  CHECK_OK(shmx_wc_open_path(wm, path, 0, &c4));
  CHECK_EQ(shmx_wc_use(c2, 0, 1), 1);
  CHECK_EQ(shmx_wc_use(c3, 20 * G, 1), 1);
  CHECK_ERR(shmx_wc_use(c4, 50 * G, 1), SHMX_E_LIMIT);
  shmx_wm_stats st;
  shmx_wm_get_stats(wm, &st);
  CHECK_EQ(st.regions, 3);
  CHECK_EQ(st.regions_used, 3);
  CHECK_EQ(shmx_wm_collect(wm), 0);
  shmx_wc_unuse(c3);
  CHECK_EQ(shmx_wc_use(c4, 50 * G, 1), 1);
  CHECK_MEM(shmx_wc_ptr(c4), data + 50 * G, 1);
  for (int i = 0; i < 3; i++) shmx_wm_region_unhold(reg[i]);
  shmx_wc_close(c);
  shmx_wc_close(c2);
  shmx_wc_close(c3);
  shmx_wc_close(c4);
  shmx_wm_destroy(wm);
  free(data);
}

/* A used region outlives collect(), its cursor and the manager's creator. */
TEST(region_use_and_destroy) {
  uint8_t *data;
  const char *path = tmp_file(32 * G, &data);
  shmx_wm *wm = mk(SHMX_WM_SLIDING, 4 * G, 0, 0);
  shmx_wc *c, *c2;
  CHECK_OK(shmx_wc_open_path(wm, path, 0, &c));
  CHECK_EQ(shmx_wc_use(c, 5 * G, 0), 1);
  shmx_wm_region *r = shmx_wc_region(c);
  CHECK_OK(shmx_wm_region_use(r));
  CHECK_EQ(shmx_wm_region_users(r), 2);
  CHECK_OK(shmx_wc_clone(c, &c2));
  CHECK_EQ(shmx_wm_region_users(r), 3);
  CHECK_MEM(shmx_wc_ptr(c2), data + 5 * G, shmx_wc_size(c2));
  shmx_wc_close(c);
  shmx_wc_close(c2);
  CHECK_EQ(shmx_wm_collect(wm), 0);
  const uint8_t *p = shmx_wm_region_data(r);
  shmx_wm_destroy(wm); /* region still used: stays mapped */
  CHECK_MEM(p, data + shmx_wm_region_offset(r), shmx_wm_region_size(r));
  shmx_wm_region_unuse(r); /* last user: unmapped, manager freed (ASan) */
  free(data);
}

TEST(cursor_after_destroy) {
  uint8_t *data;
  const char *path = tmp_file(8 * G, &data);
  shmx_wm *wm = mk(SHMX_WM_SLIDING, G, 0, 0);
  shmx_wc *c;
  CHECK_OK(shmx_wc_open_path(wm, path, 0, &c));
  CHECK_EQ(shmx_wc_use(c, 0, 1), 1);
  shmx_wm_destroy(wm);
  CHECK_EQ(shmx_wc_use(c, 10, 1), 1); /* same window: still fine */
  CHECK_MEM(shmx_wc_ptr(c), data + 10, 1);
  CHECK_ERR(shmx_wc_use(c, 5 * G, 1), SHMX_E_STATE);
  shmx_wc_close(c);
  free(data);
}

TEST(reused_fd_and_replaced_path) {
  uint8_t *da, *db;
  const char *pa = tmp_file(16 * G, &da);
  const char *pb = tmp_file(16 * G, &db);
  shmx_wm *wm = mk(SHMX_WM_SLIDING, G, 0, 0);
  int fd = open(pa, O_RDONLY | O_CLOEXEC);
  shmx_wc *ca, *cb, *cp;
  CHECK_OK(shmx_wc_open_fd(wm, fd, &ca));
  CHECK_EQ(shmx_wc_use(ca, 0, 10), 1);
  close(fd);
  int fd2 = open(pb, O_RDONLY | O_CLOEXEC);
  CHECK_EQ(fd2, fd);
  CHECK_OK(shmx_wc_open_fd(wm, fd2, &cb));
  CHECK_EQ(shmx_wc_use(cb, 5 * G, 10), 1);
  CHECK_MEM(shmx_wc_ptr(cb), db + 5 * G, 10);
  CHECK_EQ(shmx_wc_use(ca, 3, 5), 1); /* still its own mapped window */
  CHECK_MEM(shmx_wc_ptr(ca), da + 3, 5);
  CHECK_ERR(shmx_wc_use(ca, 5 * G, 10), SHMX_E_EBADF);
  CHECK_ERR(shmx_wc_check(ca), SHMX_E_EBADF);
  /* a path replaced by another file: no bytes of the other file */
  CHECK_OK(shmx_wc_open_path(wm, pa, 0, &cp));
  CHECK_OK(shmx_wm_collect(wm) >= 0 ? 0 : -1);
  shmx_wc_close(ca);
  shmx_wm_collect(wm);
#ifndef _WIN32 /* Windows does not replace a file that is open or mapped */
  CHECK_EQ(rename(pb, pa), 0);
  CHECK_ERR(shmx_wc_use(cp, 0, 1), SHMX_E_ENOENT);
#endif
  shmx_wc_close(cp);
  shmx_wc_close(cb);
  close(fd2);
  shmx_wm_destroy(wm);
  free(da);
  free(db);
}

TEST(shrink_and_grow) {
#ifdef _WIN32
  SKIP("shrinks a mapped file: Windows refuses that (ERROR_USER_MAPPED_FILE)");
#endif
  uint8_t *data;
  const char *path = tmp_file(8 * G, &data);
  shmx_wm *wm = mk(SHMX_WM_SLIDING, 2 * G, 0, 0);
  shmx_wc *c;
  CHECK_OK(shmx_wc_open_path(wm, path, 0, &c));
  CHECK_EQ(shmx_wc_use(c, 6 * G, G), 1);
  CHECK_OK(shmx_wc_check(c));
  CHECK_EQ(truncate(path, 3 * G), 0);
  CHECK_ERR(shmx_wc_check(c), SHMX_E_SHRUNK);
  CHECK_EQ(shmx_wc_file_size(c), 3 * G);
  CHECK_EQ(shmx_wc_use(c, 6 * G + 1, 1), 0);
  CHECK_EQ(shmx_wc_use(c, G, 5), 1);
  CHECK_MEM(shmx_wc_ptr(c), data + G, 5);
  CHECK_OK(shmx_wc_check(c));
  /* grows back: the new end is seen without a new cursor */
  int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
  CHECK_EQ(write(fd, data + 3 * G, 2 * G), (ssize_t)(2 * G));
  close(fd);
  CHECK_EQ(shmx_wc_use(c, 4 * G + 7, 3), 1);
  CHECK_MEM(shmx_wc_ptr(c), data + 4 * G + 7, 3);
  CHECK_EQ(shmx_wc_file_size(c), 5 * G);
  shmx_wc_close(c);
  shmx_wm_destroy(wm);
  free(data);
}

TEST(advice) {
  uint8_t *data;
  const char *path = tmp_file(40 * G + 3, &data);
  shmx_wm *wm = mk(SHMX_WM_SLIDING, 8 * G, 0, 0);
  shmx_wc *c;
  CHECK_OK(shmx_wc_open_path(wm, path, 0, &c));
  CHECK_ERR(shmx_wc_advise(c, 99), SHMX_E_ARG);
  CHECK_ERR(shmx_wc_advise(c, -1), SHMX_E_ARG);
  int adv[] = {SHMX_WC_SEQUENTIAL, SHMX_WC_RANDOM, SHMX_WC_WILLNEED, SHMX_WC_NORMAL};
  for (int a = 0; a < 4; a++) {
    CHECK_OK(shmx_wc_advise(c, adv[a]));
    for (uint64_t off = 1; off < 40 * G; off += 3 * G + 11) {
      CHECK_EQ(shmx_wc_use(c, off, 100), 1);
      CHECK_MEM(shmx_wc_ptr(c), data + off, shmx_wc_size(c));
    }
  }
  shmx_wc_close(c);
  shmx_wm_destroy(wm);
  free(data);
}

/* shmx_wc_read copies without moving the cursor or mapping windows. */
TEST(read_without_mapping) {
  size_t size = 40 * G + 123;
  uint8_t *data;
  const char *path = tmp_file(size, &data);
  shmx_wm *wm = mk(SHMX_WM_SLIDING, 4 * G, 0, 0);
  shmx_wc *c, *cf;
  CHECK_OK(shmx_wc_open_path(wm, path, 0, &c));
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  CHECK_OK(shmx_wc_open_fd(wm, fd, &cf));
  uint8_t buf[70000];
  shmx_wc *cs[2] = {c, cf};
  for (int k = 0; k < 2; k++) {
    for (int i = 0; i < 500; i++) {
      uint64_t off = rng() % size, len = rng() % sizeof buf;
      int64_t n = shmx_wc_read(cs[k], off, buf, len);
      uint64_t want = size - off < len ? size - off : len;
      CHECK_EQ(n, (int64_t)want);
      CHECK_MEM(buf, data + off, want);
    }
    CHECK_EQ(shmx_wc_read(cs[k], size, buf, 10), 0);
  }
  shmx_wm_stats st;
  shmx_wm_get_stats(wm, &st);
  CHECK_EQ(st.maps, 0);
  CHECK_EQ(st.open_fds, 0); /* the path cursor's descriptor was closed again */
  CHECK_EQ(shmx_wc_valid(c), 0);
  /* with a window in use, small reads inside it are copied from it */
  CHECK_EQ(shmx_wc_use(c, 8 * G, 0), 1);
  CHECK_EQ(shmx_wc_read(cf, 8 * G + 5, buf, 100), 100);
  CHECK_MEM(buf, data + 8 * G + 5, 100);
  CHECK_EQ(shmx_wc_read(c, 0, buf, 10), 10); /* does not move c */
  CHECK_EQ(shmx_wc_offset(c), 8 * G);
  CHECK_ERR((int)shmx_wc_read(NULL, 0, buf, 1), SHMX_E_ARG);
  shmx_wc_close(c);
  shmx_wc_close(cf);
  close(fd);
  shmx_wm_destroy(wm);
  free(data);
}

/* open() failing with EMFILE unmaps idle regions (closing their files'
 * descriptors) and retries; with every region in use the caller gets
 * -EMFILE. Runs in a child with a tiny RLIMIT_NOFILE. */
static const char *emfile_paths[8];
#ifndef _WIN32
static int emfile_child(void *arg) {
  (void)arg;
  int probe = open("/dev/null", O_RDONLY | O_CLOEXEC); /* lowest free fd */
  if (probe < 0) return 10;
  close(probe);
  struct rlimit rl = {(rlim_t)probe + 2, (rlim_t)probe + 2};
  if (setrlimit(RLIMIT_NOFILE, &rl) != 0) return 11;
  shmx_wm_config cfg;
  shmx_wm_config_init(&cfg, SHMX_WM_SLIDING);
  cfg.max_handles = 100; /* more than the process can open */
  shmx_wm *wm;
  if (shmx_wm_create(&cfg, &wm)) return 12;
  shmx_wc *c[8];
  for (int i = 0; i < 8; i++)
    if (shmx_wc_open_path(wm, emfile_paths[i], 0, &c[i])) return 13;
  for (int round = 0; round < 3; round++) {
    for (int i = 0; i < 8; i++) {
      if (shmx_wc_use(c[i], 0, 1) != 1) return 20 + i; /* evict + retry */
      shmx_wc_unuse(c[i]);
    }
  }
  shmx_wm_stats st;
  shmx_wm_get_stats(wm, &st);
  if (st.open_fds > 2) return 30;
  /* two files in use hold the two descriptors: the third cannot open */
  if (shmx_wc_use(c[0], 0, 1) != 1 || shmx_wc_use(c[1], 0, 1) != 1) return 31;
  if (shmx_wc_use(c[2], 0, 1) != SHMX_E_EMFILE) return 32;
  shmx_wc_unuse(c[1]);
  if (shmx_wc_use(c[2], 0, 1) != 1) return 33;
  for (int i = 0; i < 8; i++) shmx_wc_close(c[i]);
  shmx_wm_destroy(wm);
  return 0;
}
#else
static int emfile_child(void *arg) {
  (void)arg;
  return 1;
}
#endif

TEST(emfile_retry) {
  SKIP_WITHOUT_FORK(); /* and RLIMIT_NOFILE */
  for (int i = 0; i < 8; i++) emfile_paths[i] = tmp_file(3 * G, NULL);
  pid_t p = harness_spawn(emfile_child, NULL);
  CHECK_EQ(harness_wait(p, 30000), 0);
}

TEST(empty_file) {
  const char *path = tmp_file(0, NULL);
  shmx_wm *wm = mk(SHMX_WM_STATIC, UINT64_MAX, 0, 0);
  shmx_wc *c;
  CHECK_OK(shmx_wc_open_path(wm, path, 0, &c));
  CHECK_EQ(shmx_wc_use(c, 0, 0), 0);
  CHECK(shmx_wc_ptr(c) == NULL);
  shmx_wc_close(c);
  shmx_wm_destroy(wm);
}

/* The file shrinks while a window over the lost part is in use (issue 11,
 * item 6): copying reads return what the file holds now (0 past the end),
 * never SIGBUS; another cursor's use() past the new end is invalid; the raw
 * pointer of the cursor in use reads zeros instead of killing us, and once
 * that has happened the cursor itself clamps on its next use(). */
TEST(shrink_under_a_window_in_use) {
#ifdef _WIN32
  SKIP("shrinks a mapped file: Windows refuses that (ERROR_USER_MAPPED_FILE)");
#endif
  const char *guard = getenv("SHMX_SIGBUS_GUARD");
  if (guard && strcmp(guard, "0") == 0) {
    printf("# skip shrink_under_a_window_in_use: SHMX_SIGBUS_GUARD=0 (it would die of SIGBUS)\n");
    return;
  }
  uint8_t *data;
  const char *path = tmp_file(8 * G, &data);
  shmx_wm *wm = mk(SHMX_WM_SLIDING, 8 * G, 0, 0);
  shmx_wc *a, *b;
  CHECK_OK(shmx_wc_open_path(wm, path, 0, &a));
  CHECK_OK(shmx_wc_open_path(wm, path, 0, &b));
  CHECK_EQ(shmx_wc_use(a, 0, 0), 1);
  CHECK_EQ(shmx_wc_size(a), 8 * G);
  CHECK_EQ(truncate(path, (off_t)(2 * G + 10)), 0);
  shmx_wm_region *ra = shmx_wc_region(a);
  CHECK_EQ(shmx_wm_region_lost(ra), 0);
  CHECK_EQ(shmx_wm_region_lost(NULL), 0);
  uint8_t buf[200];
  CHECK_EQ(shmx_wc_read(b, 5 * G, buf, 100), 0);       /* past the new end */
  /* that read copied from a's region first and touched lost bytes */
  CHECK_EQ(shmx_wm_region_lost(ra), 1);
  CHECK_EQ(shmx_wc_read(b, 2 * G, buf, 100), 10);      /* up to it */
  CHECK_MEM(buf, data + 2 * G, 10);
  CHECK_EQ(shmx_wc_read(a, 2 * G - 50, buf, 200), 60); /* through a's window */
  CHECK_MEM(buf, data + 2 * G - 50, 60);
  CHECK_EQ(shmx_wc_use(b, 5 * G, 1), 0);               /* clamped: invalid */
  CHECK_EQ(shmx_wc_use(b, 2 * G + 9, 0), 1);
  CHECK_EQ(shmx_wc_size(b), 1);
  CHECK_ERR(shmx_wc_check(a), SHMX_E_SHRUNK);
  volatile const uint8_t *p = shmx_wc_ptr(a);
  CHECK_EQ(p[G], data[G]);                            /* kept bytes: real */
  CHECK_EQ(p[6 * G], 0);                              /* zeros, no SIGBUS */
  CHECK_EQ(shmx_wc_use(a, 6 * G, 1), 0);              /* a sees the cut now */
  CHECK_EQ(shmx_wc_read(a, 6 * G, buf, 10), 0);
  shmx_wc_close(a);
  shmx_wc_close(b);
  shmx_wm_destroy(wm);
  free(data);
}

int main(void) {
  G = shmx_wm_granularity();
  RUN(config_and_args);
  RUN(random_access);
  RUN(window_placement);
  RUN(lru_order_and_limits);
  RUN(region_use_and_destroy);
  RUN(cursor_after_destroy);
  RUN(reused_fd_and_replaced_path);
  RUN(shrink_and_grow);
  RUN(advice);
  RUN(read_without_mapping);
  RUN(emfile_retry);
  RUN(empty_file);
  RUN(shrink_under_a_window_in_use);
  return harness_done();
}

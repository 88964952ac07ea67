/* Channel lifecycle: names, exclusive create, stale reclaim, destroy,
 * modes, errors list, >4 GiB segments, C++ header check lives elsewhere. */
#include <fcntl.h>
#include <sys/stat.h>

#include "harness.h"

static shmx_server *mk(const char *name) {
  shmx_stream_spec sp = {1, "x", SHMX_DT_U32, 1, 0, 4, NULL, 0};
  shmx_server_config c;
  shmx_server_config_init(&c);
  c.streams = &sp;
  c.n_streams = 1;
  shmx_server *s = NULL;
  shmx_server_create(name, &c, &s);
  return s;
}

static int seg_exists(const char *name) {
  char p[700];
  return access(harness_chan_path(name, 0, p, sizeof p), F_OK) == 0;
}

TEST(names) {
  CHECK_OK(shmx_name_check("cam0.left_eye-1"));
  CHECK_ERR(shmx_name_check(""), SHMX_E_NAME);
  CHECK_ERR(shmx_name_check("a/b"), SHMX_E_NAME);
  CHECK_ERR(shmx_name_check("../etc"), SHMX_E_NAME);
  CHECK_ERR(shmx_name_check(".."), SHMX_E_NAME);
  CHECK_ERR(shmx_name_check("sp ace"), SHMX_E_NAME);
  CHECK_ERR(shmx_name_check(NULL), SHMX_E_NAME);
  char longn[202];
  memset(longn, 'a', 200);
  longn[200] = 0;
  CHECK_OK(shmx_name_check(longn));
  longn[200] = 'a';
  longn[201] = 0;
  CHECK_ERR(shmx_name_check(longn), SHMX_E_NAME);
  shmx_server *s = NULL;
  CHECK_ERR(shmx_server_create("bad/name", NULL, &s), SHMX_E_NAME);
  CHECK(s == NULL);
  shmx_client *c = NULL;
  CHECK_ERR(shmx_client_open("no-such-channel-xyz", &c), SHMX_E_NOCHANNEL);
}

TEST(errors_list) {
  CHECK(strcmp(shmx_err_name(SHMX_E_FULL), "SHMX_E_FULL") == 0);
  CHECK(strcmp(shmx_err_name(SHMX_E_ENOENT), "ENOENT") == 0);
  CHECK_EQ(SHMX_E_ENOENT, -ENOENT);
  CHECK(strcmp(shmx_strerror(SHMX_E_FULL), "all reader slots are taken") == 0);
  CHECK(strcmp(shmx_strerror(12345), "unknown error") == 0);
  CHECK(strcmp(shmx_err_name(-4098), "UNKNOWN") == 0);
  CHECK(strcmp(shmx_strerror(0), "success") == 0);
  CHECK(shmx_errmsg() != NULL);
  CHECK_EQ(shmx_version() >> 16, SHMX_VERSION_MAJOR);
  CHECK(strcmp(shmx_dtype_name(SHMX_DT_F32), "float32") == 0);
  CHECK(strcmp(shmx_dtype_name(99), "unknown") == 0);
  CHECK(strcmp(shmx_layout_name(1), "vector") == 0);
  CHECK_EQ(shmx_dtype_size(SHMX_DT_F64), 8);
}

static const char *child_name;
static int hold_then_exit(void *arg) {
  int fd = *(int *)arg;
  shmx_server *s = mk(child_name);
  char b = s ? 'y' : 'n';
  if (write(fd, &b, 1) != 1) return 3;
  if (!s) return 2;
  pause(); /* killed by the parent */
  return 0;
}

TEST(exclusive_create_names_pid) {
  SKIP_WITHOUT_FORK();
  const char *n = harness_name("excl");
  child_name = n;
  int pfd[2];
  CHECK_EQ(pipe(pfd), 0);
  pid_t p = harness_spawn(hold_then_exit, &pfd[1]);
  char b = 0;
  CHECK_EQ(read(pfd[0], &b, 1), 1);
  CHECK_EQ(b, 'y');
  shmx_server *s = NULL;
  CHECK_ERR(shmx_server_create(n, NULL, &s), SHMX_E_EXISTS);
  char want[32];
  snprintf(want, sizeof want, "pid %d", (int)p);
  CHECK(strstr(shmx_errmsg(), want) != NULL);
  CHECK_EQ(shmx_channel_owner_alive(n), 1);
  CHECK_ERR(shmx_channel_remove(n, 0), SHMX_E_EXISTS);
  /* The owner dies without destroy: the name is reclaimed. */
  kill(p, SIGKILL);
  CHECK_EQ(harness_wait(p, 5000), 128 + SIGKILL);
  CHECK(seg_exists(n));
  CHECK_EQ(shmx_channel_owner_alive(n), 0);
  shmx_client *c = NULL;
  CHECK_ERR(shmx_client_open(n, &c), SHMX_E_DEAD);
  s = mk(n);
  CHECK(s != NULL);
  CHECK_EQ(shmx_channel_owner_alive(n), 1);
  shmx_server_destroy(s);
  CHECK(!seg_exists(n));
  close(pfd[0]);
  close(pfd[1]);
}

TEST(destroy_unlinks_and_closes) {
  const char *n = harness_name("dest");
  shmx_server *s = mk(n);
  CHECK(s);
  CHECK(seg_exists(n));
  shmx_client *c;
  CHECK_OK(shmx_client_open(n, &c));
  shmx_server_destroy(s);
  CHECK(!seg_exists(n));
  shmx_frame f;
  CHECK_ERR(shmx_client_latest(c, &f), SHMX_E_CLOSED);
  CHECK_ERR(shmx_client_wait(c, &f, 1000000000, 0), SHMX_E_CLOSED);
  CHECK_ERR(shmx_client_status(c), SHMX_E_CLOSED);
  shmx_client_close(c);
  CHECK_ERR(shmx_client_open(n, &c), SHMX_E_NOCHANNEL);
}

TEST(mode) {
#ifdef _WIN32
  SKIP("POSIX permission bits; tests/win checks the DACLs modes become");
#endif
  const char *n = harness_name("mode");
  char p[300];
  snprintf(p, sizeof p, "/dev/shm/shmx.%s", n);
  shmx_server *s = mk(n);
  CHECK(s);
  struct stat st;
  CHECK_EQ(stat(p, &st), 0);
  CHECK_EQ(st.st_mode & 0777, 0600);
  shmx_server_destroy(s);
  shmx_server_config c;
  shmx_server_config_init(&c);
  c.mode = 0644;
  CHECK_OK(shmx_server_create(n, &c, &s));
  CHECK_EQ(stat(p, &st), 0);
  CHECK_EQ(st.st_mode & 0777, 0644);
  shmx_server_destroy(s);
  c.mode = 01777;
  CHECK_ERR(shmx_server_create(n, &c, &s), SHMX_E_ARG);
}

TEST(config_errors) {
  const char *n = harness_name("cfg");
  shmx_server *s = NULL;
  shmx_server_config c;
  shmx_server_config_init(&c);
  c.slots = 1;
  CHECK_ERR(shmx_server_create(n, &c, &s), SHMX_E_ARG);
  shmx_server_config_init(&c);
  c.reader_slots = 5000;
  CHECK_ERR(shmx_server_create(n, &c, &s), SHMX_E_ARG);
  shmx_stream_spec dup[2] = {{1, "a", 1, 1, 0, 1, NULL, 0},
                             {1, "b", 1, 1, 0, 1, NULL, 0}};
  shmx_server_config_init(&c);
  c.streams = dup;
  c.n_streams = 2;
  CHECK_ERR(shmx_server_create(n, &c, &s), SHMX_E_DUPLICATE);
  dup[1].id = 2;
  dup[1].name = "a";
  CHECK_ERR(shmx_server_create(n, &c, &s), SHMX_E_DUPLICATE);
  dup[1].name = "__metadata__";
  CHECK_ERR(shmx_server_create(n, &c, &s), SHMX_E_ARG);
  dup[1].name = "b";
  dup[1].components = 0;
  CHECK_ERR(shmx_server_create(n, &c, &s), SHMX_E_ARG);
  CHECK(!seg_exists(n));
}

/* 64-bit offsets: a segment over 4 GiB (sparse: no prefault). */
TEST(segment_over_4gib) {
  const char *n = harness_name("big");
  shmx_stream_spec sp = {1, "blob", SHMX_DT_U8, 1, 0, 1, NULL, 0};
  shmx_server_config c;
  shmx_server_config_init(&c);
  c.slots = 2;
  c.frame_bytes_cap = 3ull << 30;
  c.flags = SHMX_CREATE_NO_PREFAULT;
  c.streams = &sp;
  c.n_streams = 1;
  shmx_server *s;
  CHECK_OK(shmx_server_create(n, &c, &s));
  shmx_header_info hi;
  CHECK_OK(shmx_server_header(s, &hi));
  CHECK_GT(hi.total_bytes, 4ull << 30);
  shmx_client *cl;
  CHECK_OK(shmx_client_open(n, &cl));
  /* Two frames so the second lands in slot 1, past 4 GiB. */
  for (int k = 0; k < 2; k++) {
    void *p;
    CHECK_OK(shmx_server_begin(s));
    CHECK_OK(shmx_server_reserve(s, 1, (3ull << 30) - 64, &p));
    uint8_t *b = p;
    b[0] = (uint8_t)(0x10 + k);
    b[(3ull << 30) - 65] = (uint8_t)(0x20 + k);
    CHECK_OK(shmx_server_publish(s, 0, NULL));
  }
  shmx_frame f;
  CHECK_OK(shmx_client_latest(cl, &f));
  CHECK_EQ(f.slot, 1);
  CHECK_EQ(f.streams[0].bytes, (3ull << 30) - 64);
  CHECK_EQ(f.streams[0].data[0], 0x11);
  CHECK_EQ(f.streams[0].data[(3ull << 30) - 65], 0x21);
  shmx_frame_release(cl, &f);
  shmx_client_close(cl);
  shmx_server_destroy(s);
}

struct list_ctx {
  const char *want;
  int seen;
};
static int list_fn(const char *name, void *arg) {
  struct list_ctx *c = arg;
  if (strcmp(name, c->want) == 0) c->seen++;
  return 0;
}

TEST(list_and_remove) {
  const char *n = harness_name("list");
  shmx_server *s = mk(n);
  CHECK(s);
  struct list_ctx ctx = {n, 0};
  CHECK_OK(shmx_channel_list(list_fn, &ctx));
  CHECK_EQ(ctx.seen, 1);
  CHECK_OK(shmx_channel_remove(n, 1));
  CHECK(!seg_exists(n));
  CHECK_ERR(shmx_channel_remove(n, 1), SHMX_E_NOCHANNEL);
  shmx_server_destroy(s); /* must not fail after a forced remove */
}

/* Racing creators: exactly one wins; the others get SHMX_E_EXISTS. */
static int g_go[2], g_res[2];
static int racer(void *arg) {
  (void)arg;
  char b;
  if (read(g_go[0], &b, 1) != 1) return 9;
  shmx_server *s = mk(child_name);
  char r = s ? 'W' : (strstr(shmx_errmsg(), "live producer") ? 'E' : '?');
  if (write(g_res[1], &r, 1) != 1) return 8;
  if (s) pause(); /* hold the name until killed */
  return 0;
}

TEST(racing_creators_one_winner) {
  SKIP_WITHOUT_FORK();
  for (int round = 0; round < 10; round++) {
    child_name = harness_name("race");
    CHECK_EQ(pipe(g_go), 0);
    CHECK_EQ(pipe(g_res), 0);
    enum { N = 5 };
    pid_t k[N];
    for (int i = 0; i < N; i++) k[i] = harness_spawn(racer, NULL);
    char go[N];
    memset(go, 'g', N);
    CHECK_EQ(write(g_go[1], go, N), N);
    int wins = 0, exists = 0;
    for (int i = 0; i < N; i++) {
      char r;
      CHECK_EQ(read(g_res[0], &r, 1), 1);
      wins += r == 'W';
      exists += r == 'E';
    }
    CHECK_EQ(wins, 1);
    CHECK_EQ(exists, N - 1);
    CHECK_EQ(shmx_channel_owner_alive(child_name), 1);
    for (int i = 0; i < N; i++) kill(k[i], SIGKILL);
    for (int i = 0; i < N; i++) harness_wait(k[i], 5000);
    CHECK_OK(shmx_channel_remove(child_name, 0)); /* stale now */
    close(g_go[0]); close(g_go[1]); close(g_res[0]); close(g_res[1]);
  }
}

/* shmx_client_open_wait: a reader started before its producer, or across a
 * producer's death and restart, gets the channel as soon as it is live; a
 * wait with nothing coming times out; errors waiting cannot cure return at
 * once. */
static const char *g_wname;
static int late_creator(void *arg) {
  int ms = (int)(intptr_t)arg;
  usleep((useconds_t)ms * 1000);
  shmx_server *s = mk(g_wname);
  if (!s) return 10;
  uint64_t v = 42;
  shmx_server_begin(s);
  shmx_server_append(s, 1, &v, 8, 1);
  shmx_server_publish(s, 0, NULL);
  usleep(3000 * 1000); /* stay live while the parent reads */
  shmx_server_destroy(s);
  return 0;
}

static int dying_creator(void *arg) {
  (void)arg;
  return mk(g_wname) ? 0 : 10; /* exits without destroy: a dead producer */
}

TEST(open_wait) {
  SKIP_WITHOUT_FORK();
  g_wname = harness_name("ow");
  shmx_client *c = NULL;
  /* nothing there: times out after about the timeout */
  uint64_t t0 = harness_now_ms();
  CHECK_ERR(shmx_client_open_wait(g_wname, 300 * 1000000ll, &c), SHMX_E_TIMEOUT);
  uint64_t el = harness_now_ms() - t0;
  CHECK_GE(el, 290);
  CHECK_LT(el, 5000);
  CHECK(strstr(shmx_errmsg(), "no such channel") || strstr(shmx_errmsg(), "not ready"));
  CHECK(c == NULL);
  /* created 300 ms from now: open_wait returns with it, well before 10 s */
  pid_t k = harness_spawn(late_creator, (void *)(intptr_t)300);
  t0 = harness_now_ms();
  CHECK_OK(shmx_client_open_wait(g_wname, 10000 * 1000000ll, &c));
  el = harness_now_ms() - t0;
  CHECK_LT(el, 2500);
  shmx_frame f;
  CHECK(WAIT_UNTIL(shmx_client_latest(c, &f) == 0, 2000));
  CHECK_EQ(f.frame_id, 1);
  shmx_frame_release(c, &f);
  shmx_client_close(c);
  CHECK_EQ(harness_wait(k, 10000), 0);
  /* a producer that died leaves its segment: wait for the one that
   * reclaims the name */
  k = harness_spawn(dying_creator, NULL);
  CHECK_EQ(harness_wait(k, 5000), 0);
  CHECK_ERR(shmx_client_open(g_wname, &c), SHMX_E_DEAD);
  k = harness_spawn(late_creator, (void *)(intptr_t)300);
  CHECK_OK(shmx_client_open_wait(g_wname, 10000 * 1000000ll, &c));
  CHECK_OK(shmx_client_status(c));
  shmx_client_close(c);
  CHECK_EQ(harness_wait(k, 10000), 0);
  /* errors that waiting cannot cure return at once */
  t0 = harness_now_ms();
  CHECK_ERR(shmx_client_open_wait("bad/name", 5000 * 1000000ll, &c), SHMX_E_NAME);
  CHECK_LT(harness_now_ms() - t0, 1000);
  CHECK_ERR(shmx_client_open_wait(g_wname, 0, &c), SHMX_E_NOCHANNEL); /* 0: no wait */
  CHECK_ERR(shmx_client_open_wait(g_wname, 0, NULL), SHMX_E_ARG);
}

int main(void) {
  RUN(names);
  RUN(errors_list);
  RUN(exclusive_create_names_pid);
  RUN(destroy_unlinks_and_closes);
  RUN(mode);
  RUN(config_errors);
  RUN(segment_over_4gib);
  RUN(list_and_remove);
  RUN(racing_creators_one_winner);
  RUN(open_wait);
  return harness_done();
}

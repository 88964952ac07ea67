/*
 * test_names.c -- channel names, ownership and liveness against racing
 * processes and hostile users (issue 11, items 1-4). Real processes; the
 * "other users" are the uids of the accounts `make test` creates with
 * useradd (shmx-mon, shmx-other; raw uids 65534/65533 if they are missing).
 * Tests that need another uid are skipped (and say so) when not root.
 *
 *   remove_vs_restart   rm of a stale name racing a producer restart never
 *                       removes the new, live segment (SHMX_REL_ROUNDS, 100)
 *   creators_race       of 4 concurrent creators of a stale name exactly one
 *                       wins, and the name names the winner's segment
 *   monitor_cannot_forge_or_block
 *                       a read-only user holding flock(LOCK_EX) and read
 *                       locks over the whole segment neither keeps a dead
 *                       producer alive, nor blocks a restart, nor fills the
 *                       reader slots; it cannot open the lock file; it sees
 *                       liveness correctly itself (modes 0644 and 0640)
 *   planted_files       a FIFO, a symlink or another user's lock file under
 *                       a channel's name: every call returns at once with a
 *                       clear error, nothing hangs, nothing is followed
 *   emfile              with RLIMIT_NOFILE exhausted, create and open say
 *                       -EMFILE, not "owned by a live producer"
 */
#include <grp.h>
#include <sched.h>
#include <pwd.h>
#include <sys/file.h>
#include <sys/resource.h>

#include "rel.h"

static int ROUNDS = 100;

static int root(void) { return geteuid() == 0; }

static uid_t user_uid(const char *name, uid_t fallback) {
  struct passwd *pw = getpwnam(name);
  return pw ? pw->pw_uid : fallback;
}

/* Become uid (and its own gid), optionally also in group 0 (root's, the
 * group of the test's channels) as a supplementary group. */
static int become(uid_t uid, int in_group0) {
  gid_t g0 = 0;
  struct passwd *pw = getpwuid(uid);
  gid_t gid = pw ? pw->pw_gid : (gid_t)uid;
  if (setgroups(in_group0 ? 1 : 0, &g0) != 0 || setgid(gid) != 0 ||
      setuid(uid) != 0)
    return -1;
  return geteuid() == uid ? 0 : -1;
}

static void seg_path(const char *name, char *buf, size_t cap) {
  snprintf(buf, cap, "/dev/shm/%s%s", SHMX_SEGMENT_PREFIX, name);
}
static void lock_path(const char *name, char *buf, size_t cap) {
  snprintf(buf, cap, "/dev/shm/.%s%s.lock", SHMX_SEGMENT_PREFIX, name);
}

/* Leave a stale channel behind: a child creates it, publishes, and exits
 * without destroy (as a crash would). */
static int mk_stale_child(void *arg) {
  shmx_server_config cfg;
  rel_config(&cfg, 0, 4);
  shmx_server *srv = NULL;
  if (shmx_server_create((const char *)arg, &cfg, &srv) != 0) return 1;
  if (rel_publish(srv, 0, 1) != 0) return 2;
  return 0; /* _exit: locks drop, files stay */
}

static int make_stale(const char *name) {
  return harness_wait(harness_spawn(mk_stale_child, (void *)name), 10000);
}

static void spin_until(_Atomic int *flag, int v) {
  uint64_t end = harness_now_ms() + 20000;
  while (atomic_load(flag) < v && harness_now_ms() < end) sched_yield();
}

/* ---- 1. remove racing a restart ---------------------------------------- */

typedef struct race_page {
  _Atomic int go, created, checked, ready;
  int create_rc, remove_rc;
  uint64_t session;
} race_page;
static race_page *RP;
static const char *g_name;

static int remover(void *arg) {
  (void)arg;
  atomic_fetch_add(&RP->ready, 1);
  spin_until(&RP->go, 1);
  RP->remove_rc = shmx_channel_remove(g_name, 0);
  return 0;
}

static int restarter(void *arg) {
  (void)arg;
  shmx_server_config cfg;
  rel_config(&cfg, 0, 4);
  shmx_server *srv = NULL;
  atomic_fetch_add(&RP->ready, 1);
  spin_until(&RP->go, 1);
  RP->create_rc = shmx_server_create(g_name, &cfg, &srv);
  if (RP->create_rc == 0) {
    shmx_header_info h;
    shmx_server_header(srv, &h);
    RP->session = h.session_id;
  }
  atomic_store(&RP->created, 1);
  spin_until(&RP->checked, 1);
  if (srv) shmx_server_destroy(srv);
  return 0;
}

/* Session id of the segment the name names now, 0 if none/unreadable. */
static uint64_t named_session(const char *name) {
  shmx_inspector *in = NULL;
  if (shmx_inspector_open(name, &in) != 0) return 0;
  shmx_header_info h;
  shmx_inspector_header(in, &h);
  shmx_inspector_close(in);
  return h.session_id;
}

TEST(remove_vs_restart) {
  RP = rel_shared(sizeof *RP);
  int lost = 0, removed_stale = 0, saw_live = 0, restart_failed = 0;
  for (int round = 0; round < ROUNDS; round++) {
    g_name = rel_name("rmrace");
    CHECK_EQ(make_stale(g_name), 0);
    CHECK_EQ(shmx_channel_owner_alive(g_name), 0);
    memset(RP, 0, sizeof *RP);
    pid_t a = harness_spawn(remover, NULL), b = harness_spawn(restarter, NULL);
    spin_until(&RP->ready, 2);
    atomic_store(&RP->go, 1);
    CHECK_EQ(harness_wait(a, 20000), 0);
    spin_until(&RP->created, 1);
    if (RP->create_rc == 0) {
      /* The new producer is alive: its segment must still be the name's. */
      if (shmx_channel_owner_alive(g_name) != 1 || named_session(g_name) != RP->session)
        lost++;
    } else {
      restart_failed++;
    }
    removed_stale += RP->remove_rc == 0;
    saw_live += RP->remove_rc == SHMX_E_EXISTS;
    atomic_store(&RP->checked, 1);
    CHECK_EQ(harness_wait(b, 20000), 0);
    CHECK(!rel_seg_exists(g_name));
    rel_cleanup_all();
  }
  printf("# remove_vs_restart: %d rounds; rm removed the stale segment first %d, "
         "found the new live one %d; restarts failed %d; live segments lost %d\n",
         ROUNDS, removed_stale, saw_live, restart_failed, lost);
  CHECK_EQ(restart_failed, 0);
  CHECK_EQ(lost, 0);
}

/* ---- 2. concurrent creators ----------------------------------------------- */

#define NCREATORS 4
typedef struct cr_page {
  _Atomic int go, ready, done, checked;
  int rc[NCREATORS];
  uint64_t session[NCREATORS];
} cr_page;
static cr_page *CP;

static int creator(void *arg) {
  int k = (int)(intptr_t)arg;
  shmx_server_config cfg;
  rel_config(&cfg, 0, 4);
  shmx_server *srv = NULL;
  atomic_fetch_add(&CP->ready, 1);
  spin_until(&CP->go, 1);
  CP->rc[k] = shmx_server_create(g_name, &cfg, &srv);
  if (srv) {
    shmx_header_info h;
    shmx_server_header(srv, &h);
    CP->session[k] = h.session_id;
  }
  atomic_fetch_add(&CP->done, 1);
  spin_until(&CP->checked, 1);
  if (srv) shmx_server_destroy(srv);
  return 0;
}

TEST(creators_race) {
  CP = rel_shared(sizeof *CP);
  int bad = 0, other_errors = 0;
  for (int round = 0; round < ROUNDS; round++) {
    g_name = rel_name("crrace");
    CHECK_EQ(make_stale(g_name), 0);
    memset(CP, 0, sizeof *CP);
    pid_t kids[NCREATORS];
    for (int k = 0; k < NCREATORS; k++) kids[k] = harness_spawn(creator, (void *)(intptr_t)k);
    spin_until(&CP->ready, NCREATORS);
    atomic_store(&CP->go, 1);
    spin_until(&CP->done, NCREATORS);
    int wins = 0, winner = -1;
    for (int k = 0; k < NCREATORS; k++) {
      if (CP->rc[k] == 0) wins++, winner = k;
      else if (CP->rc[k] != SHMX_E_EXISTS) other_errors++;
    }
    if (wins != 1 || named_session(g_name) != CP->session[winner]) bad++;
    atomic_store(&CP->checked, 1);
    for (int k = 0; k < NCREATORS; k++) CHECK_EQ(harness_wait(kids[k], 20000), 0);
    rel_cleanup_all();
  }
  printf("# creators_race: %d rounds x %d creators of a stale name: rounds "
         "without exactly one findable winner %d, errors other than EXISTS %d\n",
         ROUNDS, NCREATORS, bad, other_errors);
  CHECK_EQ(bad, 0);
  CHECK_EQ(other_errors, 0);
}

/* ---- 3. a read-only monitor ------------------------------------------------ */

typedef struct mon_page {
  _Atomic int producer_up, holding, release, kill_seen, monitor_done;
  int lock_open_rdonly, lock_open_wronly; /* -errno of opening the lock file */
  int flock_rc, rdlck_rc, rdlck0_rc;
  int alive_before, alive_after;
  int inspect_rc, reader_alive_seen;
} mon_page;
static mon_page *MP;
static unsigned g_mode;
static uid_t g_mon;

static int mon_producer(void *arg) {
  (void)arg;
  shmx_server_config cfg;
  rel_config(&cfg, 0, 4);
  cfg.mode = g_mode;
  shmx_server *srv = NULL;
  if (shmx_server_create(g_name, &cfg, &srv) != 0) return 1;
  if (rel_publish(srv, 0, 1) != 0) return 2;
  atomic_store(&MP->producer_up, 1);
  for (;;) pause(); /* SIGKILLed by the test */
}

static int monitor(void *arg) {
  (void)arg;
  if (become(g_mon, g_mode == 0640) != 0) return 60;
  char p[200];
  seg_path(g_name, p, sizeof p);
  int fd = open(p, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 61;
  /* the attacks: the old liveness lock, and read locks over everything */
  MP->flock_rc = flock(fd, LOCK_EX | LOCK_NB) == 0 ? 0 : -errno;
  /* everything but byte 0, which the live producer's write lock covers */
  struct flock fl = {.l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 1, .l_len = 0};
  MP->rdlck_rc = fcntl(fd, F_OFD_SETLK, &fl) == 0 ? 0 : -errno;
  lock_path(g_name, p, sizeof p);
  int l = open(p, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  MP->lock_open_rdonly = l >= 0 ? 0 : -errno;
  if (l >= 0) close(l);
  l = open(p, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
  MP->lock_open_wronly = l >= 0 ? 0 : -errno;
  if (l >= 0) close(l);
  MP->alive_before = shmx_channel_owner_alive(g_name);
  /* the monitor's own view of the (root) reader attached by the test */
  shmx_inspector *in = NULL;
  MP->inspect_rc = shmx_inspector_open(g_name, &in);
  if (in) {
    shmx_reader_info ri[4];
    int n = shmx_inspector_readers(in, ri, 4);
    for (int i = 0; i < n; i++)
      if (ri[i].in_use) MP->reader_alive_seen = ri[i].alive;
    shmx_inspector_close(in);
  }
  atomic_store(&MP->holding, 1);
  spin_until(&MP->kill_seen, 1);
  /* the producer is dead: take byte 0 too, the moment it is free */
  fl.l_start = 0;
  MP->rdlck0_rc = fcntl(fd, F_OFD_SETLK, &fl) == 0 ? 0 : -errno;
  MP->alive_after = shmx_channel_owner_alive(g_name);
  atomic_store(&MP->monitor_done, 1);
  spin_until(&MP->release, 1); /* keeps every lock until told */
  close(fd);
  return 0;
}

static void monitor_round(unsigned mode, int *failures) {
  g_mode = mode;
  g_name = rel_name("mon");
  memset(MP, 0, sizeof *MP);
  pid_t prod = harness_spawn(mon_producer, NULL);
  spin_until(&MP->producer_up, 1);
  /* a reader attached before the monitor arrives; the rest after */
  shmx_client *cl[4] = {0};
  int rc = shmx_client_open(g_name, &cl[0]);
  pid_t mon = harness_spawn(monitor, NULL);
  spin_until(&MP->holding, 1);
  int full = 0;
  for (int i = 1; i < 4; i++) {
    int r = shmx_client_open(g_name, &cl[i]);
    full += r != 0;
  }
  rel_kill_reap(prod);
  atomic_store(&MP->kill_seen, 1);
  spin_until(&MP->monitor_done, 1); /* it now holds every lock it can take */
  int status = cl[0] ? shmx_client_status(cl[0]) : rc;
  int alive = shmx_channel_owner_alive(g_name);
  shmx_server_config cfg;
  rel_config(&cfg, 0, 4);
  shmx_server *srv = NULL;
  int restart = shmx_server_create(g_name, &cfg, &srv); /* monitor still holding */
  atomic_store(&MP->release, 1);
  int mon_exit = harness_wait(mon, 20000);
  for (int i = 0; i < 4; i++) shmx_client_close(cl[i]);
  if (srv) shmx_server_destroy(srv);
  int bad = rc != 0 || full != 0 || status != SHMX_E_DEAD || alive != 0 || restart != 0 ||
            mon_exit != 0 || MP->rdlck_rc != 0 || MP->rdlck0_rc != 0 ||
            MP->lock_open_rdonly != -EACCES ||
            MP->lock_open_wronly != -EACCES || MP->alive_before != 1 ||
            MP->alive_after != 0 || MP->inspect_rc != 0 || MP->reader_alive_seen != 1;
  if (bad)
    fprintf(stderr, "mode %o: open %s, readers refused %d, status %s, alive %d, "
            "restart %s (%s), monitor exit %d flock %d rdlck %d lockfile ro %d wo %d, "
            "monitor saw alive %d then %d, inspect %s, reader alive %d\n", mode,
            shmx_err_name(rc), full, shmx_err_name(status), alive,
            shmx_err_name(restart), shmx_errmsg(), mon_exit, MP->flock_rc,
            MP->rdlck_rc, MP->lock_open_rdonly, MP->lock_open_wronly,
            MP->alive_before, MP->alive_after, shmx_err_name(MP->inspect_rc),
            MP->reader_alive_seen);
  *failures += bad;
  rel_cleanup_all();
}

TEST(monitor_cannot_forge_or_block) {
  if (!root()) {
    printf("# skipped: monitor_cannot_forge_or_block needs root (setuid)\n");
    return;
  }
  MP = rel_shared(sizeof *MP);
  g_mon = user_uid("shmx-mon", 65534);
  int failures = 0, rounds = ROUNDS / 5 > 4 ? ROUNDS / 5 : 4;
  for (int r = 0; r < rounds; r++) monitor_round(r & 1 ? 0640 : 0644, &failures);
  printf("# monitor: %d rounds (modes 0644/0640), monitor uid %u: failures %d\n",
         rounds, (unsigned)g_mon, failures);
  CHECK_EQ(failures, 0);
}

/* ---- 4. planted files --------------------------------------------------------- */

typedef struct plant_page { int rc; } plant_page;
static plant_page *PP;
static int g_plant_kind; /* 0 fifo segment, 1 symlink segment, 2 fifo lock file,
                            3 regular lock file 0666 */
static uid_t g_other;

static int planter(void *arg) {
  (void)arg;
  if (root() && become(g_other, 0) != 0) return 60;
  char p[200];
  if (g_plant_kind <= 1) seg_path(g_name, p, sizeof p);
  else lock_path(g_name, p, sizeof p);
  switch (g_plant_kind) {
  case 0: case 2: PP->rc = mkfifo(p, 0666); break;
  case 1: PP->rc = symlink("/etc/passwd", p); break;
  default: {
    int fd = open(p, O_RDWR | O_CREAT | O_EXCL, 0666);
    PP->rc = fd < 0 ? -1 : fchmod(fd, 0666);
    if (fd >= 0) close(fd);
  }
  }
  return PP->rc ? 61 : 0;
}

typedef struct plant_calls { int alive, inspect, open, rm, create, list_seen; } plant_calls;

static int list_cb(const char *name, void *arg) {
  if (strcmp(name, g_name) == 0) ((plant_calls *)arg)->list_seen = 1;
  return 0;
}

static int calls(void *arg) {
  plant_calls *c = arg;
  shmx_inspector *in = NULL;
  shmx_client *cl = NULL;
  shmx_server *srv = NULL;
  c->alive = shmx_channel_owner_alive(g_name);
  c->inspect = shmx_inspector_open(g_name, &in);
  c->open = shmx_client_open(g_name, &cl);
  c->rm = shmx_channel_remove(g_name, 0);
  shmx_server_config cfg;
  rel_config(&cfg, 0, 4);
  c->create = shmx_server_create(g_name, &cfg, &srv);
  shmx_channel_list(list_cb, c);
  shmx_inspector_close(in);
  shmx_client_close(cl);
  shmx_server_destroy(srv);
  return 0;
}

TEST(planted_files) {
  PP = rel_shared(sizeof *PP);
  plant_calls *c = rel_shared(sizeof *c);
  g_other = user_uid("shmx-other", 65533);
  for (g_plant_kind = 0; g_plant_kind < 4; g_plant_kind++) {
    if (g_plant_kind == 3 && !root()) {
      printf("# skipped: another user's lock file needs root (setuid)\n");
      continue;
    }
    g_name = rel_name("plant");
    CHECK_EQ(harness_wait(harness_spawn(planter, NULL), 10000), 0);
    memset(c, 0, sizeof *c);
    uint64_t t0 = harness_now_ms();
    /* in a child with a deadline: a hang fails the test instead of it */
    CHECK_EQ(harness_wait(harness_spawn(calls, c), 10000), 0);
    uint64_t ms = harness_now_ms() - t0;
    printf("# planted kind %d: alive %s, inspect %s, open %s, rm %s, create %s, "
           "%llu ms\n", g_plant_kind, shmx_err_name(c->alive),
           shmx_err_name(c->inspect), shmx_err_name(c->open), shmx_err_name(c->rm),
           shmx_err_name(c->create), (unsigned long long)ms);
    CHECK_LT(ms, 5000);
    if (g_plant_kind <= 1) { /* the segment's name is taken by a non-file */
      CHECK_EQ(c->alive, SHMX_E_CORRUPT);
      CHECK_EQ(c->inspect, SHMX_E_CORRUPT);
      CHECK_EQ(c->open, SHMX_E_CORRUPT);
      CHECK_EQ(c->rm, SHMX_E_CORRUPT);
      CHECK_EQ(c->create, SHMX_E_EXISTS);
      CHECK_EQ(c->list_seen, 1); /* listed, so `shmx ls` can say "not a channel" */
    } else if (g_plant_kind == 2) { /* FIFO as lock file */
      CHECK_EQ(c->alive, SHMX_E_NOCHANNEL);
      CHECK_EQ(c->create, SHMX_E_CORRUPT);
    } else { /* another user's lock file */
      CHECK_EQ(c->create, SHMX_E_EACCES);
    }
    char p[200];
    seg_path(g_name, p, sizeof p);
    struct stat st;
    if (g_plant_kind <= 1) CHECK_EQ(lstat(p, &st), 0); /* never removed by us */
    rel_cleanup_all();
  }
}

/* ---- 5. file descriptors exhausted ------------------------------------------ */

typedef struct fd_page { int create, create_stale, open; } fd_page;
static fd_page *FP;
static const char *g_live, *g_stale;

static int fd_starved(void *arg) {
  (void)arg;
  struct rlimit rl = {32, 32};
  if (setrlimit(RLIMIT_NOFILE, &rl) != 0) return 60;
  while (dup(0) >= 0) {
  }
  if (errno != EMFILE) return 61;
  shmx_server_config cfg;
  rel_config(&cfg, 0, 4);
  shmx_server *srv = NULL;
  shmx_client *cl = NULL;
  FP->create = shmx_server_create(g_name, &cfg, &srv);
  FP->create_stale = shmx_server_create(g_stale, &cfg, &srv);
  FP->open = shmx_client_open(g_live, &cl);
  return 0;
}

TEST(emfile) {
  FP = rel_shared(sizeof *FP);
  g_name = rel_name("emfile");
  g_stale = rel_name("emstale");
  g_live = rel_name("emlive");
  CHECK_EQ(make_stale(g_stale), 0);
  shmx_server_config cfg;
  rel_config(&cfg, 0, 4);
  shmx_server *live = NULL;
  CHECK_OK(shmx_server_create(g_live, &cfg, &live));
  CHECK_EQ(harness_wait(harness_spawn(fd_starved, NULL), 10000), 0);
  shmx_server_destroy(live);
  CHECK_ERR(FP->create, -EMFILE);
  CHECK_ERR(FP->create_stale, -EMFILE);
  CHECK_ERR(FP->open, -EMFILE);
  rel_cleanup_all();
}

int main(void) {
  const char *r = getenv("SHMX_REL_ROUNDS");
  if (r && atoi(r) > 0) ROUNDS = atoi(r);
  printf("# seed %llu, rounds %d\n", (unsigned long long)rel_seed(), ROUNDS);
  RUN(remove_vs_restart);
  RUN(creators_race);
  RUN(monitor_cannot_forge_or_block);
  RUN(planted_files);
  RUN(emfile);
  return harness_done();
}

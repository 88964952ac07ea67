/*
 * test_perms.c -- a channel is opened by another user only if its mode
 * allows. Needs root (to setuid() a child to nobody, uid 65534); skipped
 * otherwise.
 *   mode 0600: nobody gets -EACCES from client_open and inspector_open
 *   mode 0644: nobody may inspect (read-only) but not attach (needs write)
 *   mode 0666: nobody attaches and reads a frame
 * The segment file's mode is exactly the requested one (umask ignored).
 */
#include <grp.h>

#include "rel.h"

#define NOBODY 65534

typedef struct pm_result {
  int client_rc, inspector_rc, read_rc, frame_bad;
} pm_result;

static pm_result *RES;
static const char *g_name;

static int as_nobody(void *arg) {
  (void)arg;
  if (setgroups(0, NULL) != 0 || setgid(NOBODY) != 0 || setuid(NOBODY) != 0)
    return 60;
  if (getuid() != NOBODY || geteuid() != NOBODY) return 61;
  shmx_client *cl = NULL;
  RES->client_rc = shmx_client_open(g_name, &cl);
  if (RES->client_rc == 0) {
    shmx_frame fr;
    RES->read_rc = shmx_client_latest(cl, &fr);
    if (RES->read_rc == 0) {
      RES->frame_bad = rel_frame_bad(&fr, 0) != NULL;
      shmx_frame_release(cl, &fr);
    }
    shmx_client_close(cl);
  }
  shmx_inspector *in = NULL;
  RES->inspector_rc = shmx_inspector_open(g_name, &in);
  if (RES->inspector_rc == 0) {
    shmx_header_info h;
    RES->inspector_rc = shmx_inspector_header(in, &h);
    shmx_inspector_close(in);
  }
  return 0;
}

static int try_mode(unsigned mode, pm_result *out, unsigned *file_mode) {
  shmx_server_config cfg;
  rel_config(&cfg, 0, 2);
  cfg.mode = mode;
  shmx_server *srv = NULL;
  g_name = rel_name("perm");
  int rc = shmx_server_create(g_name, &cfg, &srv);
  if (rc) return rc;
  rc = rel_publish(srv, 0, 1);
  char path[160];
  snprintf(path, sizeof path, "/dev/shm/%s%s", SHMX_SEGMENT_PREFIX, g_name);
  struct stat sb;
  *file_mode = stat(path, &sb) == 0 ? (unsigned)(sb.st_mode & 0777) : 0xFFFF;
  memset(RES, 0, sizeof *RES);
  pid_t kid = harness_spawn(as_nobody, NULL);
  int ex = harness_wait(kid, 10000);
  *out = *RES;
  shmx_server_destroy(srv);
  if (rc) return rc;
  return ex == 0 ? 0 : -1000 - ex;
}

TEST(mode_0600_refuses_other_user) {
  pm_result r;
  unsigned fm;
  CHECK_OK(try_mode(0600, &r, &fm));
  CHECK_EQ(fm, 0600);
  CHECK_ERR(r.client_rc, -EACCES);
  CHECK_ERR(r.inspector_rc, -EACCES);
}

TEST(mode_0644_allows_inspect_not_attach) {
  pm_result r;
  unsigned fm;
  CHECK_OK(try_mode(0644, &r, &fm));
  CHECK_EQ(fm, 0644);
  CHECK_ERR(r.client_rc, -EACCES);
  CHECK_OK(r.inspector_rc);
}

TEST(mode_0666_allows_other_user) {
  pm_result r;
  unsigned fm;
  mode_t old = umask(022); /* the requested mode wins over the umask */
  int rc = try_mode(0666, &r, &fm);
  umask(old);
  CHECK_OK(rc);
  CHECK_EQ(fm, 0666);
  CHECK_OK(r.client_rc);
  CHECK_OK(r.read_rc);
  CHECK_EQ(r.frame_bad, 0);
  CHECK_OK(r.inspector_rc);
}

int main(void) {
  if (geteuid() != 0) {
    printf("ok - # SKIP permissions: needs root to switch to uid %d\n", NOBODY);
    return 77; /* meson: skipped */
  }
  RES = rel_shared(sizeof *RES);
  RUN(mode_0600_refuses_other_user);
  RUN(mode_0644_allows_inspect_not_attach);
  RUN(mode_0666_allows_other_user);
  rel_cleanup_all();
  return harness_done();
}

/*
 * test_win_procs.c -- shmx across real Windows processes (run under Wine by
 * `make test-windows`). The POSIX suites fork; here the test program starts
 * copies of itself with CreateProcess (`--role ROLE NAME ...`) and kills
 * them with TerminateProcess, the Windows SIGKILL. Every wait is on state
 * (a channel appearing, a reader count) with a deadline.
 *
 * Covers: frames and blocking waits across processes (the session
 * semaphore), a killed producer seen as dead and its name reclaimed while
 * a reader still holds the old segment, exclusive create naming the owner's
 * pid, a killed reader reaped, racing creators (one winner), waiting for a
 * channel that appears later (directory change notification), and the
 * DACLs that modes become.
 */
#include <aclapi.h>
#include <sddl.h>

#include "harness.h"

#define W 4096 /* bytes per frame of the "blob" stream */

/* ---- child processes ------------------------------------------------------ */

static char self_path[MAX_PATH];

/* Start this program as `--role role name extra`. NULL on failure. */
static HANDLE spawn(const char *role, const char *name, const char *extra) {
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "\"%s\" --role %s %s %s", self_path, role, name,
           extra ? extra : "");
  STARTUPINFOA si;
  PROCESS_INFORMATION pi;
  memset(&si, 0, sizeof si);
  si.cb = sizeof si;
  fflush(stdout);
  fflush(stderr);
  if (!CreateProcessA(NULL, cmd, NULL, NULL, FALSE, 0, NULL, NULL, &si, &pi))
    return NULL;
  CloseHandle(pi.hThread);
  return pi.hProcess;
}

/* Exit code of p within ms, or -1 (then it is killed). Closes p. */
static int reap(HANDLE p, DWORD ms) {
  int code = -1;
  if (WaitForSingleObject(p, ms) == WAIT_OBJECT_0) {
    DWORD c;
    if (GetExitCodeProcess(p, &c)) code = (int)c;
  } else {
    TerminateProcess(p, 99);
    WaitForSingleObject(p, 5000);
  }
  CloseHandle(p);
  return code;
}

/* Kill p the hard way (no cleanup runs in it) and wait until it is gone. */
static void kill_hard(HANDLE p) {
  TerminateProcess(p, 137);
  WaitForSingleObject(p, 10000);
  CloseHandle(p);
}

static int mk_rc; /* what the last mk_server's create returned */
static shmx_server *mk_server(const char *name, unsigned mode) {
  shmx_stream_spec sp[2] = {{1, "id", SHMX_DT_U64, 1, 0, 8, NULL, 0},
                            {2, "blob", SHMX_DT_U8, 1, 0, 1, NULL, 0}};
  shmx_server_config c;
  shmx_server_config_init(&c);
  c.slots = 8;
  c.frame_bytes_cap = W + 256;
  c.streams = sp;
  c.n_streams = 2;
  if (mode) c.mode = mode;
  shmx_server *s = NULL;
  mk_rc = shmx_server_create(name, &c, &s);
  return mk_rc == 0 ? s : NULL;
}

static void pattern(uint8_t *p, uint64_t fid) {
  for (int i = 0; i < W; i++) p[i] = (uint8_t)(fid * 31 + (uint64_t)i * 7);
}

static int publish(shmx_server *s, uint64_t fid) {
  uint8_t blob[W];
  pattern(blob, fid);
  int rc;
  if ((rc = shmx_server_begin(s)) || (rc = shmx_server_append(s, 1, &fid, 8, 1)) ||
      (rc = shmx_server_append(s, 2, blob, W, W)))
    return rc;
  return shmx_server_publish(s, (double)fid * 0.5, NULL);
}

/* Readers attached to s (also reaps dead ones, which is what we test). */
static int readers(shmx_server *s) {
  shmx_reader_info ri[64];
  int n = shmx_server_readers(s, ri, 64), k = 0;
  for (int i = 0; i < n; i++) k += ri[i].in_use;
  return k;
}

/* produce NAME N: wait for a reader, publish N frames 1 ms apart, wait for
 * the reader to leave, destroy. */
static int role_produce(const char *name, int n) {
  shmx_server *s = mk_server(name, 0);
  if (!s) return 10;
  uint64_t end = harness_now_ms() + 20000;
  while (readers(s) < 1)
    if (harness_now_ms() > end) return 11;
    else Sleep(1);
  for (int i = 1; i <= n; i++) {
    if (publish(s, (uint64_t)i)) return 12;
    Sleep(1);
  }
  while (readers(s) > 0)
    if (harness_now_ms() > end) return 13;
    else Sleep(1);
  shmx_server_destroy(s);
  return 0;
}

/* hold NAME: create, publish frame 1, then live until killed. */
static int role_hold(const char *name) {
  shmx_server *s = mk_server(name, 0);
  if (!s) return 10;
  if (publish(s, 1)) return 11;
  for (;;) Sleep(1000);
}

/* read NAME: attach, read a frame and keep it pinned until killed. */
static int role_read(const char *name) {
  shmx_client *c;
  if (shmx_client_open_wait(name, 10000 * 1000000ll, &c)) return 10;
  shmx_frame f;
  if (shmx_client_wait(c, &f, 10000 * 1000000ll, 0)) return 11;
  for (;;) Sleep(1000);
}

/* race NAME EVENT: wait for the start event, try to create. 0 if won (then
 * hold the channel 2 s so every loser meets it), 1 if SHMX_E_EXISTS. */
static int role_race(const char *name, const char *event) {
  HANDLE go = OpenEventA(SYNCHRONIZE, FALSE, event);
  if (!go || WaitForSingleObject(go, 20000) != WAIT_OBJECT_0) return 10;
  shmx_server *s = mk_server(name, 0);
  if (!s && mk_rc != SHMX_E_EXISTS)
    fprintf(stderr, "race: %s (%s)\n", shmx_err_name(mk_rc), shmx_errmsg());
  if (!s) return mk_rc == SHMX_E_EXISTS ? 1 : 11;
  Sleep(2000);
  shmx_server_destroy(s);
  return 0;
}

/* late NAME MS: create the channel after MS ms, publish one frame, hold it
 * until a reader has come and gone (or 20 s). */
static int role_late(const char *name, int ms) {
  Sleep((DWORD)ms);
  shmx_server *s = mk_server(name, 0);
  if (!s) return 10;
  if (publish(s, 1)) return 11;
  uint64_t end = harness_now_ms() + 20000;
  while (readers(s) < 1 && harness_now_ms() < end) Sleep(1);
  while (readers(s) > 0 && harness_now_ms() < end) Sleep(1);
  shmx_server_destroy(s);
  return 0;
}

/* ---- tests ------------------------------------------------------------------ */

/* Frames cross processes; the reader sleeps in shmx_client_wait (the
 * session semaphore) and is woken for each one. Every byte is checked. */
TEST(frames_and_waits_across_processes) {
  const char *n = harness_name("xp");
  HANDLE p = spawn("produce", n, "300");
  CHECK(p);
  shmx_client *c;
  CHECK_OK(shmx_client_open_wait(n, 20000 * 1000000ll, &c));
  uint64_t got = 0, dropped = 0, last = 0;
  uint8_t want[W];
  while (last < 300) {
    shmx_frame f;
    CHECK_OK(shmx_client_wait(c, &f, 10000 * 1000000ll, 1));
    CHECK_GT(f.frame_id, last);
    CHECK_EQ(f.tlv_count, 2);
    uint64_t id;
    memcpy(&id, f.streams[0].data, 8);
    CHECK_EQ(id, f.frame_id);
    CHECK_EQ(f.streams[1].bytes, W);
    pattern(want, f.frame_id);
    CHECK_MEM(f.streams[1].data, want, W);
    dropped += f.dropped;
    last = f.frame_id;
    got++;
    shmx_frame_release(c, &f);
  }
  CHECK_EQ(got + dropped, 300);
  shmx_client_close(c);
  CHECK_EQ(reap(p, 20000), 0);
}

/* A producer killed outright: its byte lock dies with it, so the reader
 * learns it is dead (from a wait and from status), and a new producer
 * takes the name while the old reader still maps the old segment. */
TEST(killed_producer_is_dead_and_its_name_reclaimed) {
  const char *n = harness_name("kill");
  HANDLE p = spawn("hold", n, NULL);
  CHECK(p);
  shmx_client *c;
  CHECK_OK(shmx_client_open_wait(n, 20000 * 1000000ll, &c));
  shmx_frame f;
  CHECK_OK(shmx_client_wait(c, &f, 10000 * 1000000ll, 1));
  CHECK_EQ(f.frame_id, 1);
  CHECK_OK(shmx_client_status(c));
  kill_hard(p);
  CHECK(shmx_frame_valid(c, &f)); /* held bytes survive their producer */
  shmx_frame_release(c, &f);
  CHECK_ERR(shmx_client_status(c), SHMX_E_DEAD);
  CHECK_ERR(shmx_client_wait(c, &f, 2000 * 1000000ll, 1), SHMX_E_DEAD);
  shmx_client *c2;
  CHECK_ERR(shmx_client_open(n, &c2), SHMX_E_DEAD);
  shmx_server *s = mk_server(n, 0); /* stale: reclaimed */
  if (!s) HARNESS_FAIL("create: %s (%s)", shmx_err_name(mk_rc), shmx_errmsg());
  CHECK(s);
  CHECK_ERR(shmx_client_status(c), SHMX_E_RESTARTED);
  CHECK_OK(publish(s, 1));
  CHECK_OK(shmx_client_open(n, &c2));
  CHECK_OK(shmx_client_latest(c2, &f));
  CHECK_EQ(f.frame_id, 1);
  shmx_frame_release(c2, &f);
  shmx_client_close(c2);
  shmx_client_close(c);
  shmx_server_destroy(s);
}

TEST(exclusive_create_names_the_owner) {
  const char *n = harness_name("excl");
  HANDLE p = spawn("hold", n, NULL);
  CHECK(p);
  shmx_client *c;
  CHECK_OK(shmx_client_open_wait(n, 20000 * 1000000ll, &c));
  shmx_header_info hi;
  CHECK_OK(shmx_client_header(c, &hi));
  CHECK_EQ(hi.owner_pid, (int32_t)GetProcessId(p));
  CHECK_EQ(hi.owner_alive, 1);
  shmx_server *s = NULL;
  shmx_server_config cfg;
  shmx_server_config_init(&cfg);
  CHECK_ERR(shmx_server_create(n, &cfg, &s), SHMX_E_EXISTS);
  char pid[32];
  snprintf(pid, sizeof pid, "pid %d", (int)GetProcessId(p));
  CHECK(strstr(shmx_errmsg(), pid) != NULL);
  CHECK_ERR(shmx_channel_remove(n, 0), SHMX_E_EXISTS); /* live: not removed */
  kill_hard(p);
  CHECK_OK(shmx_client_header(c, &hi));
  CHECK_EQ(hi.owner_alive, 0);
  shmx_client_close(c);
  CHECK_OK(shmx_channel_remove(n, 0)); /* stale now */
}

static int pins(shmx_inspector *in) {
  shmx_slot_info si[8];
  int n = shmx_inspector_slots(in, si, 8), k = 0;
  for (int i = 0; i < n; i++) k += (int)si[i].pins;
  return k;
}

/* A reader killed while holding a frame: its lock byte dies with it, the
 * producer reaps the slot and its pin. */
TEST(killed_reader_is_reaped) {
  const char *n = harness_name("rk");
  shmx_server *s = mk_server(n, 0);
  CHECK(s);
  CHECK_OK(publish(s, 1));
  HANDLE p = spawn("read", n, NULL);
  CHECK(p);
  CHECK(WAIT_UNTIL(readers(s) == 1, 20000));
  shmx_inspector *in;
  CHECK_OK(shmx_inspector_open(n, &in));
  CHECK(WAIT_UNTIL(pins(in) == 1, 10000));
  kill_hard(p);
  CHECK(WAIT_UNTIL(readers(s) == 0, 10000)); /* readers() reaps the dead */
  CHECK_EQ(pins(in), 0);
  shmx_inspector_close(in);
  shmx_server_destroy(s);
}

TEST(racing_creators_one_winner) {
  for (int round = 0; round < 3; round++) {
    const char *n = harness_name("race");
    char ev[96];
    snprintf(ev, sizeof ev, "Local\\shmxtest.go.%lu.%d", GetCurrentProcessId(), round);
    HANDLE go = CreateEventA(NULL, TRUE, FALSE, ev);
    CHECK(go);
    HANDLE k[4];
    for (int i = 0; i < 4; i++) CHECK((k[i] = spawn("race", n, ev)) != NULL);
    Sleep(300); /* let them reach the event; correctness does not depend on it */
    SetEvent(go);
    int won = 0, lost = 0;
    for (int i = 0; i < 4; i++) {
      int rc = reap(k[i], 30000);
      won += rc == 0;
      lost += rc == 1;
    }
    CloseHandle(go);
    CHECK_EQ(won, 1);
    CHECK_EQ(lost, 3);
  }
}

/* shmx_client_open_wait sleeps on a change notification of the channel
 * directory until the channel appears. */
TEST(open_wait_for_a_late_channel) {
  const char *n = harness_name("late");
  HANDLE p = spawn("late", n, "400");
  CHECK(p);
  uint64_t t0 = harness_now_ms();
  shmx_client *c;
  CHECK_OK(shmx_client_open_wait(n, 20000 * 1000000ll, &c));
  CHECK_GE(harness_now_ms() - t0, 300);
  shmx_frame f;
  CHECK_OK(shmx_client_wait(c, &f, 10000 * 1000000ll, 1));
  CHECK_EQ(f.frame_id, 1);
  shmx_frame_release(c, &f);
  shmx_client_close(c);
  CHECK_EQ(reap(p, 20000), 0);
  shmx_client *c2;
  CHECK_ERR(shmx_client_open_wait("never-there-xyz", 300 * 1000000ll, &c2),
            SHMX_E_TIMEOUT);
}

/* What access a DACL gives Everyone (S-1-1-0), and whether the current
 * user has an entry. */
static void scan_dacl(PACL dacl, DWORD *world, int *user_entry) {
  PSID wd = NULL;
  ConvertStringSidToSidA("S-1-1-0", &wd);
  HANDLE t;
  union { TOKEN_USER u; BYTE b[512]; } tu;
  DWORD len;
  OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &t);
  GetTokenInformation(t, TokenUser, &tu, sizeof tu, &len);
  CloseHandle(t);
  *world = 0;
  *user_entry = 0;
  for (DWORD i = 0; dacl && i < dacl->AceCount; i++) {
    ACCESS_ALLOWED_ACE *ace;
    if (!GetAce(dacl, i, (void **)&ace) || ace->Header.AceType != ACCESS_ALLOWED_ACE_TYPE)
      continue;
    PSID sid = (PSID)&ace->SidStart;
    if (EqualSid(sid, wd)) *world |= ace->Mask;
    if (EqualSid(sid, tu.u.User.Sid)) *user_entry = 1;
  }
  LocalFree(wd);
}

static int obj_dacl(HANDLE h, SE_OBJECT_TYPE type, DWORD *world, int *mine) {
  PACL dacl = NULL;
  PSECURITY_DESCRIPTOR sd = NULL;
  if (GetSecurityInfo(h, type, DACL_SECURITY_INFORMATION, NULL, NULL, &dacl, NULL,
                      &sd) != ERROR_SUCCESS)
    return -1;
  scan_dacl(dacl, world, mine);
  LocalFree(sd);
  return 0;
}

static int file_dacl(const char *path, DWORD *world, int *mine) {
  HANDLE h = CreateFileA(path, READ_CONTROL, 7, NULL, OPEN_EXISTING, 0, NULL);
  if (h == INVALID_HANDLE_VALUE) return -1;
  int rc = obj_dacl(h, SE_FILE_OBJECT, world, mine);
  CloseHandle(h);
  return rc;
}

/* The section behind channel n (its name is in the segment file's record:
 * 8 bytes of magic, the size, then the UTF-16 name) and its semaphore. */
static HANDLE section_of(const char *n) {
  char path[700];
  FILE *f = fopen(harness_chan_path(n, 0, path, sizeof path), "rb");
  if (!f) return NULL;
  uint8_t rec[96];
  size_t got = fread(rec, 1, sizeof rec, f);
  fclose(f);
  if (got != sizeof rec || memcmp(rec, "shmxsec1", 8) != 0) return NULL;
  wchar_t name[40];
  memcpy(name, rec + 16, sizeof name);
  name[39] = 0;
  return OpenFileMappingW(READ_CONTROL, FALSE, name);
}

static HANDLE semaphore_of(uint64_t session) {
  wchar_t name[64];
  _snwprintf(name, 64, L"Local\\shmx.%016llx.wake", (unsigned long long)session);
  return OpenSemaphoreW(READ_CONTROL, FALSE, name);
}

static int on_wine(void) {
  return GetProcAddress(GetModuleHandleA("ntdll.dll"), "wine_get_version") != NULL;
}

/* Modes become DACLs: the section (the segment's memory) and the wake-up
 * semaphore grant Everyone what the mode's group/other bits allow, and
 * nothing for 0600. The files too, on Windows: Wine keeps no file DACLs
 * (it reports its Unix permission bits), so there they are not checked. */
TEST(modes_become_dacls) {
  const char *n = harness_name("mode");
  char seg[700], lock[700];
  harness_chan_path(n, 0, seg, sizeof seg);
  harness_chan_path(n, 1, lock, sizeof lock);
  static const unsigned modes[3] = {0600, 0644, 0666};
  for (int k = 0; k < 3; k++) {
    shmx_server *s = mk_server(n, modes[k]);
    CHECK(s);
    shmx_header_info hi;
    CHECK_OK(shmx_server_header(s, &hi));
    HANDLE sec = section_of(n), sem = semaphore_of(hi.session_id);
    CHECK(sec != NULL);
    CHECK(sem != NULL);
    DWORD w;
    int mine;
    CHECK_EQ(obj_dacl(sec, SE_KERNEL_OBJECT, &w, &mine), 0);
    CHECK_EQ(mine, 1);
    DWORD want = modes[k] == 0600 ? 0
                 : modes[k] == 0644 ? (SECTION_MAP_READ | SECTION_QUERY)
                                    : (SECTION_MAP_READ | SECTION_QUERY | SECTION_MAP_WRITE);
    CHECK_EQ(w, want);
    CHECK_EQ(obj_dacl(sem, SE_KERNEL_OBJECT, &w, &mine), 0);
    CHECK_EQ(w, modes[k] == 0600 ? 0 : SYNCHRONIZE);
    CloseHandle(sec);
    CloseHandle(sem);
    if (!on_wine()) {
      CHECK_EQ(file_dacl(seg, &w, &mine), 0);
      CHECK_EQ(mine, 1);
      CHECK_EQ(w & FILE_READ_DATA, modes[k] == 0600 ? 0 : FILE_READ_DATA);
      CHECK_EQ(w & FILE_WRITE_DATA, modes[k] == 0666 ? FILE_WRITE_DATA : 0);
      CHECK_EQ(file_dacl(lock, &w, &mine), 0); /* 0600 / 0600 / 0622 */
      CHECK_EQ(w & FILE_READ_DATA, 0);
      CHECK_EQ(w & FILE_WRITE_DATA, modes[k] == 0666 ? FILE_WRITE_DATA : 0);
    } else if (k == 0) {
      printf("# Wine keeps no file DACLs: file modes not checked here\n");
    }
    shmx_server_destroy(s);
  }
}

/* Event fds are POSIX; on Windows the call fails and says what to use. */
TEST(event_fd_is_posix_only) {
  const char *n = harness_name("evfd");
  shmx_server *s = mk_server(n, 0);
  CHECK(s);
  shmx_client *c;
  CHECK_OK(shmx_client_open(n, &c));
  CHECK_ERR(shmx_client_fd(c), SHMX_E_SYS(ENOSYS));
  CHECK(strstr(shmx_errmsg(), "shmx_client_wait") != NULL);
  shmx_client_close(c);
  shmx_server_destroy(s);
}

int main(int argc, char **argv) {
  GetModuleFileNameA(NULL, self_path, sizeof self_path);
  if (argc >= 4 && strcmp(argv[1], "--role") == 0) {
    const char *role = argv[2], *name = argv[3];
    const char *x = argc >= 5 ? argv[4] : "0";
    if (!strcmp(role, "produce")) return role_produce(name, atoi(x));
    if (!strcmp(role, "hold")) return role_hold(name);
    if (!strcmp(role, "read")) return role_read(name);
    if (!strcmp(role, "race")) return role_race(name, x);
    if (!strcmp(role, "late")) return role_late(name, atoi(x));
    return 2;
  }
  RUN(frames_and_waits_across_processes);
  RUN(killed_producer_is_dead_and_its_name_reclaimed);
  RUN(exclusive_create_names_the_owner);
  RUN(killed_reader_is_reaped);
  RUN(racing_creators_one_winner);
  RUN(open_wait_for_a_late_channel);
  RUN(modes_become_dacls);
  RUN(event_fd_is_posix_only);
  return harness_done();
}

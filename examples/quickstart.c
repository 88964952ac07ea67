/*
 * quickstart.c -- the README's C quick start as a program: a producer and a
 * reader in two processes. Build against an installed shmx:
 *   cc quickstart.c $(pkg-config --cflags --libs shmx) -o quickstart
 * On Windows the reader is this program started again (`--read NAME`).
 */
#define _DEFAULT_SOURCE /* usleep */
#include <shmx.h>

#include <stdio.h>
#include <string.h>
#include <unistd.h>
#ifdef _WIN32
#include <windows.h>
#else
#include <sys/wait.h>
#endif

static int reader(const char *name) {
  shmx_client *cl;
  int rc;
  for (int tries = 0; (rc = shmx_client_open(name, &cl)) == SHMX_E_NOCHANNEL && tries < 500; tries++)
    usleep(2000); /* the producer may not have created it yet */
  if (rc) {
    fprintf(stderr, "open: %s (%s)\n", shmx_err_name(rc), shmx_errmsg());
    return 1;
  }
  shmx_frame f;
  uint64_t frames = 0;
  double sum = 0;
  while ((rc = shmx_client_wait(cl, &f, 2000000000, /*in_order=*/1)) == 0) {
    const float *p = (const float *)(const void *)f.streams[0].data; /* zero copy */
    for (uint64_t i = 0; i < f.streams[0].elem_count * 3; i++) sum += p[i];
    frames++;
    shmx_frame_release(cl, &f);
  }
  shmx_client_close(cl);
  printf("reader: %llu frames, checksum %.0f, ended with %s\n",
         (unsigned long long)frames, sum, shmx_err_name(rc));
  fflush(stdout);
  return rc == SHMX_E_CLOSED && frames > 0 ? 0 : 1;
}

/* Run reader(name) in another process; returns its exit code when asked. */
#ifdef _WIN32
static HANDLE kid;
static void start_reader(const char *name) {
  char self[MAX_PATH], cmd[MAX_PATH + 100];
  GetModuleFileNameA(NULL, self, sizeof self);
  snprintf(cmd, sizeof cmd, "\"%s\" --read %s", self, name);
  STARTUPINFOA si;
  PROCESS_INFORMATION pi;
  memset(&si, 0, sizeof si);
  si.cb = sizeof si;
  if (CreateProcessA(NULL, cmd, NULL, NULL, FALSE, 0, NULL, NULL, &si, &pi)) {
    CloseHandle(pi.hThread);
    kid = pi.hProcess;
  }
}
static int reader_status(void) {
  DWORD code = 1;
  if (kid && WaitForSingleObject(kid, 10000) == WAIT_OBJECT_0) GetExitCodeProcess(kid, &code);
  return (int)code;
}
#else
static pid_t kid;
static void start_reader(const char *name) {
  fflush(stdout);
  kid = fork();
  if (kid == 0) _exit(reader(name));
}
static int reader_status(void) {
  int st;
  waitpid(kid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
}
#endif

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "--read") == 0) return reader(argv[2]);
  char name[64];
  snprintf(name, sizeof name, "quickstart-%d", (int)getpid());
  shmx_stream_spec specs[] = {
      {.id = 1, .name = "pos", .dtype = SHMX_DT_F32, .components = 3,
       .layout = SHMX_LAYOUT_AOS_VECTOR, .bytes_per_elem = 12},
  };
  shmx_server_config cfg;
  shmx_server_config_init(&cfg); /* 3 slots, 16 readers, 64 KiB frames */
  cfg.slots = 8;
  cfg.streams = specs;
  cfg.n_streams = 1;
  shmx_server *srv;
  int rc = shmx_server_create(name, &cfg, &srv);
  if (rc) {
    fprintf(stderr, "%s: %s\n", shmx_err_name(rc), shmx_errmsg());
    return 1;
  }
  start_reader(name);
  shmx_header_info hi;
  int waited = 0;
  do { /* wait (up to 10 s) for the reader to attach */
    usleep(1000);
    shmx_server_header(srv, &hi);
  } while (hi.readers_connected == 0 && ++waited < 10000);
  float xyz[100][3];
  for (int i = 0; i < 100; i++) xyz[i][0] = xyz[i][1] = xyz[i][2] = 1.0f;
  for (int k = 0; k < 100; k++) {
    shmx_server_begin(srv);
    shmx_server_append(srv, 1, xyz, sizeof xyz, 100); /* one copy */
    shmx_server_publish(srv, k * 0.01, NULL);
    usleep(1000);
  }
  shmx_server_destroy(srv); /* readers see SHMX_E_CLOSED */
  return reader_status();
}

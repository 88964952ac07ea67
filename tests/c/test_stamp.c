/* Publish stamps (src/stamp.c): the TSC-derived clock agrees with
 * CLOCK_MONOTONIC, frames carry stamps taken inside publish and never
 * falling, and SHMX_CLOCK=system turns the TSC path off. */
#include "harness.h"
#include "internal.h"

/* Largest disagreement tolerated between a stamp and the CLOCK_MONOTONIC
 * readings around it. The expected figure is tens of ns (printed); the
 * margin is for an NTP slew of the kernel clock during the run. Typical
 * stamps must be much closer: at most 1 in 100 may be off by FAR_NS. */
#define TOL_NS 20000
#define FAR_NS 200

/* 1 if the kernel keeps time with an invariant TSC: then stamps must come
 * from the TSC (x86-64). */
static int tsc_expected(void) {
#if defined(__x86_64__) && defined(__linux__)
  if (getenv("SHMX_CLOCK")) return 0;
  FILE *f = fopen("/sys/devices/system/clocksource/clocksource0/current_clocksource", "r");
  if (!f) return 0;
  char src[32] = {0};
  int tsc = fgets(src, sizeof src, f) && strcmp(src, "tsc\n") == 0;
  fclose(f);
  if (!tsc) return 0;
  f = fopen("/proc/cpuinfo", "r");
  if (!f) return 0;
  char line[4096];
  int constant = 0, nonstop = 0;
  while (fgets(line, sizeof line, f))
    if (strncmp(line, "flags", 5) == 0) {
      constant = strstr(line, " constant_tsc") != NULL;
      nonstop = strstr(line, " nonstop_tsc") != NULL;
      break;
    }
  fclose(f);
  return constant && nonstop;
#else
  return 0;
#endif
}

/* Stamps for about `ms` milliseconds (through many re-anchors), each
 * between two clock readings; returns the worst disagreement in ns. */
static uint64_t worst_error(int ms, int *non_monotonic_large, uint64_t *n, uint64_t *far) {
  uint64_t worst = 0, end = shmx__mono_ns() + (uint64_t)ms * 1000000u, prev = 0;
  *non_monotonic_large = 0;
  *n = *far = 0;
  while (shmx__mono_ns() < end) {
    for (int i = 0; i < 1000; i++) {
      uint64_t a = shmx__mono_ns();
      uint64_t s = shmx__stamp_ns();
      uint64_t b = shmx__mono_ns();
      uint64_t e = s < a ? a - s : s > b ? s - b : 0;
      if (e > worst) worst = e;
      *far += e > FAR_NS;
      ++*n;
      if (prev > s + TOL_NS) *non_monotonic_large = 1;
      prev = s;
    }
    shmx__sleep_ns(100000); /* let intervals run out between bursts */
  }
  return worst;
}

TEST(stamps_follow_the_monotonic_clock) {
  int back = 0;
  uint64_t n, far;
  uint64_t worst = worst_error(400, &back, &n, &far);
  printf("# stamps from the %s: worst disagreement with clock_gettime %llu ns, "
         "%llu of %llu over %d ns\n", shmx__stamp_tsc() ? "TSC" : "system clock",
         (unsigned long long)worst, (unsigned long long)far, (unsigned long long)n, FAR_NS);
  CHECK_LE(worst, TOL_NS);
  CHECK_LE(far * 100, n);
  CHECK_EQ(back, 0);
  if (tsc_expected())
    CHECK(shmx__stamp_tsc()); /* the fast path is really in use */
}

TEST(system_clock_when_asked) {
  pid_t pid = fork();
  CHECK_GE(pid, 0);
  if (pid == 0) {
    /* A fresh process (no calibration inherited from this one's tests). */
    setenv("SHMX_CLOCK", "system", 1);
    execl("/proc/self/exe", "test_stamp", "--child-system", (char *)NULL);
    _exit(99);
  }
  int st = 0;
  CHECK_EQ(waitpid(pid, &st, 0), pid);
  CHECK(WIFEXITED(st));
  CHECK_EQ(WEXITSTATUS(st), 0);
}

static int child_system(void) {
  for (int i = 0; i < 100000; i++) {
    uint64_t a = shmx__mono_ns(), s = shmx__stamp_ns(), b = shmx__mono_ns();
    if (s < a || s > b) return 1; /* must be the clock itself */
  }
  return shmx__stamp_tsc() ? 2 : 0;
}

TEST(frames_carry_publish_stamps) {
  shmx_stream_spec spec = {1, "v", SHMX_DT_U64, 1, SHMX_LAYOUT_SOA_SCALAR, 8, NULL, 0};
  shmx_server_config c;
  shmx_server_config_init(&c);
  c.streams = &spec;
  c.n_streams = 1;
  const char *n = harness_name("stamp");
  shmx_server *s = NULL;
  CHECK_OK(shmx_server_create(n, &c, &s));
  shmx_client *cl;
  CHECK_OK(shmx_client_open(n, &cl));
  uint64_t prev = 0;
  for (uint64_t v = 1; v <= 3000; v++) {
    CHECK_OK(shmx_server_begin(s));
    CHECK_OK(shmx_server_append(s, 1, &v, 8, 1));
    uint64_t a = shmx_now_ns();
    CHECK_OK(shmx_server_publish(s, 0.0, NULL));
    uint64_t b = shmx_now_ns();
    shmx_frame f;
    CHECK_OK(shmx_client_latest(cl, &f));
    CHECK_EQ(f.frame_id, v);
    CHECK_GE(f.publish_ns + TOL_NS, a);
    CHECK_LE(f.publish_ns, b + TOL_NS);
    CHECK_GE(f.publish_ns, prev); /* never falls within a channel */
    prev = f.publish_ns;
    shmx_header_info h;
    CHECK_OK(shmx_client_header(cl, &h));
    CHECK_EQ(h.last_publish_ns, f.publish_ns);
    shmx_frame_release(cl, &f);
    if (v % 100 == 0) shmx__sleep_ns(1000000); /* cross re-anchors */
  }
  shmx_client_close(cl);
  shmx_server_destroy(s);
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--child-system") == 0) return child_system();
  RUN(system_clock_when_asked);
  RUN(stamps_follow_the_monotonic_clock);
  RUN(frames_carry_publish_stamps);
  return harness_done();
}

/*
 * test_bench_smoke.c -- the benchmark suite runs and speaks its format.
 *
 * Runs shmx_bench_main("--quick --json") in a child process with stdout in
 * a file, then checks every line: a flat JSON object with the documented
 * keys, sane percentiles (p50 <= p99 <= p99.9), a baseline name with its p50
 * exactly when the row is a case, and every case name present once. Timings
 * are not judged. Also checks --filter, --list and a bad option. Channels a
 * killed run might leave behind are removed at the end.
 */
#include <ctype.h>
#include <fcntl.h>

#include "../tests/c/harness.h"
#include "bench.h"

/* ---- a minimal parser for flat JSON objects ----------------------------- */

enum { J_STR, J_NUM, J_BOOL, J_NULL };
typedef struct jfield {
  char key[32];
  int type;
  double num;
  char str[128];
} jfield;
typedef struct jobj {
  int n;
  jfield f[40];
} jobj;

static const char *ws(const char *p) {
  while (*p == ' ' || *p == '\t')
    p++;
  return p;
}

/* Parse a string at p (which points at '"'); copy up to cap-1 bytes. */
static const char *jstring(const char *p, char *out, size_t cap) {
  if (*p != '"')
    return NULL;
  p++;
  size_t n = 0;
  while (*p && *p != '"') {
    if ((unsigned char)*p < 0x20)
      return NULL;
    if (*p == '\\') {
      p++;
      if (!*p || !strchr("\"\\/bfnrtu", *p))
        return NULL;
    }
    if (n + 1 < cap)
      out[n++] = *p;
    p++;
  }
  if (*p != '"')
    return NULL;
  out[n] = '\0';
  return p + 1;
}

static const char *jvalue(const char *p, jfield *f) {
  if (*p == '"') {
    f->type = J_STR;
    return jstring(p, f->str, sizeof f->str);
  }
  if (!strncmp(p, "true", 4) || !strncmp(p, "null", 4)) {
    f->type = p[0] == 't' ? J_BOOL : J_NULL;
    f->num = p[0] == 't';
    return p + 4;
  }
  if (!strncmp(p, "false", 5)) {
    f->type = J_BOOL;
    f->num = 0;
    return p + 5;
  }
  if (*p == '-' || isdigit((unsigned char)*p)) {
    char *end = NULL;
    f->type = J_NUM;
    f->num = strtod(p, &end);
    return end && end != p ? end : NULL;
  }
  return NULL;
}

/* 0 if line is exactly one flat JSON object. */
static int jparse(const char *line, jobj *o) {
  o->n = 0;
  const char *p = ws(line);
  if (*p++ != '{')
    return -1;
  p = ws(p);
  if (*p == '}')
    return *ws(p + 1) ? -1 : 0;
  for (;;) {
    if (o->n == (int)(sizeof o->f / sizeof o->f[0]))
      return -1;
    jfield *f = &o->f[o->n++];
    p = jstring(ws(p), f->key, sizeof f->key);
    if (!p)
      return -1;
    p = ws(p);
    if (*p++ != ':')
      return -1;
    p = jvalue(ws(p), f);
    if (!p)
      return -1;
    p = ws(p);
    if (*p == ',') {
      p++;
      continue;
    }
    if (*p != '}')
      return -1;
    return *ws(p + 1) ? -1 : 0;
  }
}

static const jfield *jget(const jobj *o, const char *key) {
  for (int i = 0; i < o->n; i++)
    if (!strcmp(o->f[i].key, key))
      return &o->f[i];
  return NULL;
}

/* ---- running the suite in a child --------------------------------------- */

typedef struct run_args {
  int fd;
  int argc;
  char **argv;
} run_args;

static int bench_child(void *arg) {
  run_args *a = arg;
  if (dup2(a->fd, 1) < 0)
    return 99;
  return shmx_bench_main(a->argc, a->argv);
}

static int remove_cb(const char *name, void *arg) {
  const char *prefix = arg;
  if (!strncmp(name, prefix, strlen(prefix)))
    shmx_channel_remove(name, 1);
  return 0;
}

/* Run with args; output (NUL-terminated, malloc'd) in *out. Returns the exit
 * status from harness_wait. */
static int run_bench(char **argv, int argc, char **out) {
  char path[] = "/tmp/shmx-bench-smoke-XXXXXX";
  int fd = mkstemp(path);
  *out = NULL;
  if (fd < 0)
    return -2;
  unlink(path);
  run_args a = {fd, argc, argv};
  pid_t pid = harness_spawn(bench_child, &a);
  int st = pid > 0 ? harness_wait(pid, 100000) : -2;
  char prefix[64];
  snprintf(prefix, sizeof prefix, "shmxbench-%d-", (int)pid);
  shmx_channel_list(remove_cb, prefix);
  off_t len = lseek(fd, 0, SEEK_END);
  if (len >= 0 && len < (1 << 24)) {
    *out = calloc(1, (size_t)len + 1);
    if (*out && pread(fd, *out, (size_t)len, 0) != len) {
      free(*out);
      *out = NULL;
    }
  }
  close(fd);
  return st;
}

static const char *const all_names[] = {
    "pingpong_cacheline", "latency_64B_spin",  "seqlock_64B_spin",
    "notify_64B_spin",    "latency_64B_copy_spin",
    "latency_64KiB_spin",
    "latency_1MiB_spin",  "latency_8MiB_spin", "futex_pingpong",
    "latency_64B_wait",   "pipe_pingpong",     "latency_64B_fd",
    "memcpy_1MiB",        "publish_1MiB_copy",
    "memcpy_64B",         "publish_64B_1reader", "publish_64B_16readers",
    "publish_64B_16evloop"};
#define N_NAMES (sizeof all_names / sizeof all_names[0])

/* Check every line; count[i] += 1 for each all_names[i] seen. */
static int check_lines(char *text, int *count, int *lines) {
  *lines = 0;
  for (char *save = NULL, *line = strtok_r(text, "\n", &save); line;
       line = strtok_r(NULL, "\n", &save)) {
    jobj o;
    (*lines)++;
    if (jparse(line, &o) != 0) {
      fprintf(stderr, "not a JSON object: %s\n", line);
      return -1;
    }
    const jfield *name = jget(&o, "name"), *p50 = jget(&o, "p50_ns"),
                 *p99 = jget(&o, "p99_ns"), *p999 = jget(&o, "p999_ns"),
                 *base = jget(&o, "baseline"),
                 *bp50 = jget(&o, "baseline_p50_ns");
    if (!name || name->type != J_STR || !p50 || p50->type != J_NUM || !p99 ||
        p99->type != J_NUM || !p999 || p999->type != J_NUM || !base ||
        !bp50) {
      fprintf(stderr, "missing or mistyped key: %s\n", line);
      return -1;
    }
    if (!(p50->num > 0 && p50->num <= p99->num && p99->num <= p999->num)) {
      fprintf(stderr, "percentiles out of order: %s\n", line);
      return -1;
    }
    int is_base = !strcmp(name->str, "pingpong_cacheline") ||
                  !strcmp(name->str, "futex_pingpong") ||
                  !strcmp(name->str, "pipe_pingpong") ||
                  !strncmp(name->str, "memcpy_", 7);
    int ok_base = is_base ? base->type == J_NULL && bp50->type == J_NULL
                          : base->type == J_STR && bp50->type == J_NUM &&
                                bp50->num > 0;
    if (!ok_base) {
      fprintf(stderr, "baseline fields wrong: %s\n", line);
      return -1;
    }
    const jfield *met = jget(&o, "met");
    if (met && met->type != J_BOOL && met->type != J_NULL) {
      fprintf(stderr, "met must be a boolean or null: %s\n", line);
      return -1;
    }
    int known = 0;
    for (size_t i = 0; i < N_NAMES; i++)
      if (!strcmp(name->str, all_names[i])) {
        count[i]++;
        known = 1;
      }
    if (!known) {
      fprintf(stderr, "unknown case name: %s\n", line);
      return -1;
    }
  }
  return 0;
}

TEST(quick_json_all_cases) {
  char *argv[] = {"shmx-bench", "--quick", "--json", NULL};
  char *out = NULL;
  int st = run_bench(argv, 3, &out);
  CHECK(out != NULL);
  int count[N_NAMES] = {0}, lines = 0;
  int rc = check_lines(out, count, &lines);
  free(out);
  CHECK_EQ(st, 0);
  CHECK_EQ(rc, 0);
  CHECK_EQ(lines, (int)N_NAMES);
  for (size_t i = 0; i < N_NAMES; i++)
    if (count[i] != 1)
      HARNESS_FAIL("case %s seen %d times", all_names[i], count[i]);
}

TEST(filter_selects_case_and_its_baseline) {
  char *argv[] = {"shmx-bench", "--quick", "--json", "--filter", "64B_wait",
                  NULL};
  char *out = NULL;
  int st = run_bench(argv, 5, &out);
  CHECK(out != NULL);
  int count[N_NAMES] = {0}, lines = 0;
  int rc = check_lines(out, count, &lines);
  free(out);
  CHECK_EQ(st, 0);
  CHECK_EQ(rc, 0);
  CHECK_EQ(lines, 2);
  for (size_t i = 0; i < N_NAMES; i++) {
    int want = !strcmp(all_names[i], "futex_pingpong") ||
               !strcmp(all_names[i], "latency_64B_wait");
    CHECK_EQ(count[i], want);
  }
}

TEST(list_and_usage_errors) {
  char *list[] = {"shmx-bench", "--list", NULL};
  char *out = NULL;
  CHECK_EQ(run_bench(list, 2, &out), 0);
  CHECK(out != NULL);
  int has_all = 1;
  for (size_t i = 0; i < N_NAMES; i++)
    if (!strstr(out, all_names[i]))
      has_all = 0;
  free(out);
  CHECK(has_all);

  char *bad[] = {"shmx-bench", "--bogus", NULL};
  CHECK_EQ(run_bench(bad, 2, &out), 2);
  free(out);
  char *nomatch[] = {"shmx-bench", "--filter", "no-such-case", NULL};
  CHECK_EQ(run_bench(nomatch, 3, &out), 2);
  free(out);
  char *missing[] = {"shmx-bench", "--filter", NULL};
  CHECK_EQ(run_bench(missing, 2, &out), 2);
  free(out);
}

int main(void) {
  RUN(list_and_usage_errors);
  RUN(filter_selects_case_and_its_baseline);
  RUN(quick_json_all_cases);
  return harness_done();
}

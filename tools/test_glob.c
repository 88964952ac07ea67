/*
 * test_glob.c -- cli_glob_match (shmx rm --stale PATTERN) agrees with
 * fnmatch(3) without flags: every pattern and name over a small alphabet
 * that includes every special character, up to 4 and 5 characters, plus
 * channel-like cases. (Windows has no fnmatch: that is why ours exists.)
 */
#include <fnmatch.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

static const char pat_alpha[] = "ab*?[]!-\\";
static const char str_alpha[] = "ab-]![";

static int check(const char *p, const char *s, int *bad) {
  int want = fnmatch(p, s, 0) == 0, got = cli_glob_match(p, s);
  if (want != got && (*bad)++ < 20)
    printf("pattern '%s' name '%s': fnmatch %d, ours %d\n", p, s, want, got);
  return want;
}

/* Every string of length <= max over alpha, through fn. */
static void each(const char *alpha, int max, char *buf, int len,
                 void (*fn)(const char *, void *), void *arg) {
  buf[len] = 0;
  fn(buf, arg);
  if (len == max) return;
  for (const char *a = alpha; *a; a++) {
    buf[len] = *a;
    each(alpha, max, buf, len + 1, fn, arg);
  }
}

typedef struct ctx { const char *pat; int bad, matches; long pairs; } ctx;

static void per_name(const char *s, void *arg) {
  ctx *c = arg;
  c->matches += check(c->pat, s, &c->bad);
  c->pairs++;
}

static void per_pattern(const char *p, void *arg) {
  ctx *c = arg;
  char buf[8];
  c->pat = p;
  each(str_alpha, 4, buf, 0, per_name, c);
}

int main(void) {
  ctx c = {NULL, 0, 0, 0};
  char buf[8];
  each(pat_alpha, 4, buf, 0, per_pattern, &c);
  static const char *const extra[][2] = {
      {"cam*", "cam0.left"}, {"cam?", "cam10"}, {"t-*-[0-9]", "t-x-5"},
      {"*.[!a-c]*", "x.dy"}, {"[[]x", "[x"}, {"a*b*c*d", "aXbYcZdd"},
      {"**a", "ba"}, {"\\", "\\"}, {"[a-]", "-"}, {"[]-a]", "^"}};
  for (size_t i = 0; i < sizeof extra / sizeof extra[0]; i++) {
    c.matches += check(extra[i][0], extra[i][1], &c.bad);
    c.pairs++;
  }
  printf("%ld pattern/name pairs, %d matches, %d disagreements\n", c.pairs, c.matches, c.bad);
  return c.bad != 0 || c.matches == 0;
}

/* skip.c -- stands in for a test that cannot run on this system: prints why
 * and exits 77, which meson counts as SKIP (listed, never silent). */
#include <stdio.h>

int main(int argc, char **argv) {
  printf("skip: %s\n", argc > 1 ? argv[1] : "not on this system");
  return 77;
}

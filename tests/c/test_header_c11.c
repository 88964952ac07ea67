/* The public header compiles as strict C11 (-pedantic -Werror). */
#include "shmx.h"

#include <stdio.h>
#include <string.h>

int main(void) {
  if (strcmp(shmx_version_string(), SHMX_VERSION_STRING) != 0) return 1;
  printf("1 passed, 0 failed\n");
  return 0;
}

// The public header must compile cleanly as C++17 and be usable from C++.
#include "shmx.h"

#include <cstdio>
#include <cstring>

int main() {
  shmx_server_config cfg;
  shmx_server_config_init(&cfg);
  shmx_server *s = nullptr;
  int rc = shmx_server_create("bad/name", &cfg, &s);
  if (rc != SHMX_E_NAME || s != nullptr) return 1;
  if (std::strcmp(shmx_err_name(SHMX_E_NAME), "SHMX_E_NAME") != 0) return 2;
  std::printf("1 passed, 0 failed\n");
  return 0;
}

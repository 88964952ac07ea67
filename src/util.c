/*
 * util.c -- version, dtype/layout names, channel-name rules, clock.
 */
#include <string.h>

#include "internal.h"

unsigned shmx_version(void) {
  return (SHMX_VERSION_MAJOR << 16) | (SHMX_VERSION_MINOR << 8) |
         SHMX_VERSION_PATCH;
}

const char *shmx_version_string(void) { return SHMX_VERSION_STRING; }

static const struct { const char *name; uint32_t size; } dtypes[] = {
  [SHMX_DT_BOOL] = {"bool", 1},     [SHMX_DT_I8] = {"int8", 1},
  [SHMX_DT_U8] = {"uint8", 1},      [SHMX_DT_I16] = {"int16", 2},
  [SHMX_DT_U16] = {"uint16", 2},    [SHMX_DT_I32] = {"int32", 4},
  [SHMX_DT_U32] = {"uint32", 4},    [SHMX_DT_I64] = {"int64", 8},
  [SHMX_DT_U64] = {"uint64", 8},    [SHMX_DT_F16] = {"float16", 2},
  [SHMX_DT_BF16] = {"bfloat16", 2}, [SHMX_DT_F32] = {"float32", 4},
  [SHMX_DT_F64] = {"float64", 8},
};

const char *shmx_dtype_name(uint32_t dtype) {
  if (dtype >= sizeof dtypes / sizeof dtypes[0] || !dtypes[dtype].name)
    return "unknown";
  return dtypes[dtype].name;
}

uint32_t shmx_dtype_size(uint32_t dtype) {
  if (dtype >= sizeof dtypes / sizeof dtypes[0]) return 0;
  return dtypes[dtype].size;
}

const char *shmx_layout_name(uint32_t layout) {
  switch (layout) {
  case SHMX_LAYOUT_SOA_SCALAR: return "scalar";
  case SHMX_LAYOUT_AOS_VECTOR: return "vector";
  default: return "unknown";
  }
}

int shmx_name_check(const char *name) {
  if (!name) return shmx__err(SHMX_E_NAME, "channel name is NULL");
  size_t n = 0;
  for (const char *p = name; *p; p++, n++) {
    char c = *p;
    int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
             (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    if (!ok || n >= SHMX_NAME_MAX)
      return shmx__err(SHMX_E_NAME, "channel name '%.40s%s'", name,
                       n >= 40 ? "..." : "");
  }
  if (n == 0) return shmx__err(SHMX_E_NAME, "channel name is empty");
  /* "." and ".." would be directory names in /dev/shm listings. */
  if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
    return shmx__err(SHMX_E_NAME, "channel name '%s'", name);
  return 0;
}

uint64_t shmx_now_ns(void) { return shmx__mono_ns(); }

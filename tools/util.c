/*
 * util.c -- see util.h.
 */
#include "util.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "os.h"

/* ---- errors ------------------------------------------------------------- */

const char *cli_cause(int err) {
  switch (err) {
  case SHMX_E_NOCHANNEL:
  case SHMX_E_ENOENT:
    return "not found";
  case SHMX_E_EACCES:
  case SHMX_E_EPERM:
    return "permission denied";
  case SHMX_E_CORRUPT:
    return "corrupted";
  case SHMX_E_VERSION:
    return "corrupted or incompatible (segment format version)";
  case SHMX_E_DEAD:
    return "stale (producer died)";
  case SHMX_E_EXISTS:
  case SHMX_E_EBUSY:
    return "in use";
  case SHMX_E_CLOSED:
    return "closed by its producer";
  case SHMX_E_NAME:
    return "invalid name";
  default:
    return shmx_strerror(err);
  }
}

void cli_chan_error(const char *cmd, const char *name, int err) {
  /* shmx_errmsg() reads "channel 'NAME': detail: <strerror>": keep only
   * the detail, since the line names the channel and the cause already. */
  char detail[512];
  snprintf(detail, sizeof detail, "%s", shmx_errmsg());
  char *d = detail;
  char prefix[SHMX_NAME_MAX + 16];
  snprintf(prefix, sizeof prefix, "channel '%s'", name);
  size_t pl = strlen(prefix);
  while (strncmp(d, prefix, pl) == 0) {
    d += pl;
    while (*d == ':' || *d == ' ') d++;
  }
  const char *msg = shmx_strerror(err);
  size_t dl = strlen(d), ml = strlen(msg);
  if (dl >= ml && strcmp(d + dl - ml, msg) == 0) {
    dl -= ml;
    while (dl > 0 && (d[dl - 1] == ':' || d[dl - 1] == ' ')) dl--;
    d[dl] = 0;
  }
  if (strcmp(d, "no error detail") == 0) d[0] = 0;
  const char *cause = cli_cause(err);
  fprintf(stderr, "shmx %s: channel '%s': %s", cmd, name, cause);
  if (d[0]) fprintf(stderr, ": %s", d);
  fprintf(stderr, " [%s]\n", shmx_err_name(err));
}

void cli_error(const char *cmd, const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "shmx %s: ", cmd);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
}

int cli_usage(const char *cmd, const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "shmx %s: ", cmd);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\nTry 'shmx %s --help'.\n", cmd);
  return CLI_USAGE;
}

/* ---- arguments ---------------------------------------------------------- */

int cli_is_help(const char *arg) {
  return arg && (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0);
}

int cli_parse_double(const char *s, double lo, double hi, double *out) {
  if (!s || !*s) return -1;
  char *end = NULL;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || !end || *end || !isfinite(v) || v < lo || v > hi) return -1;
  *out = v;
  return 0;
}

int cli_parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out) {
  if (!s || *s < '0' || *s > '9') return -1;
  char *end = NULL;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || !end || *end || v < lo || v > hi) return -1;
  *out = (uint64_t)v;
  return 0;
}

/* ---- patterns ------------------------------------------------------------ */

/* One bracket expression at p (just past '['): does c match it? Sets *end
 * past the closing ']', or returns -1 if there is none (then '[' is an
 * ordinary character), -2 if a range runs into the end of the pattern. */
static int glob_set(const char *p, char c, const char **end) {
  int neg = *p == '!' || *p == '^', hit = 0, first = 1, saw_open = 0;
  if (neg) p++;
  while (first || *p != ']') { /* a ']' first in the set is literal */
    first = 0;
    if (!*p) return -1;
    unsigned char lo = (unsigned char)*p++;
    if (lo == '\\' && *p) lo = (unsigned char)*p++;
    if (lo == '[') saw_open = 1;
    unsigned char hi = lo;
    /* A range cut by the end of the pattern: no match at all (glibc's
     * fnmatch; but with a '[' in the set, the first '[' is ordinary). */
    if (*p == '-' && !p[1]) return saw_open ? -1 : -2;
    if (*p == '-' && p[1] && p[1] != ']') {
      p++;
      hi = (unsigned char)*p++;
      if (hi == '\\' && *p) hi = (unsigned char)*p++;
    }
    if (lo <= (unsigned char)c && (unsigned char)c <= hi) hit = 1;
  }
  *end = p + 1;
  return hit != neg;
}

int cli_glob_match(const char *pat, const char *s) {
  const char *star_p = NULL, *star_s = NULL;
  for (;;) {
    if (*pat == '*') {
      while (*pat == '*') pat++;
      star_p = pat;
      star_s = s;
      continue;
    }
    if (*s) {
      const char *next = pat + 1;
      int ok = *pat == '?' ? 1 : *pat == '[' ? glob_set(pat + 1, *s, &next) : -1;
      if (ok == -2) return 0;
      if (ok == -1) { /* an ordinary character (maybe quoted) */
        if (*pat == '\\' && !pat[1]) return 0; /* a dangling '\\': invalid */
        if (*pat == '\\') next = ++pat + 1;
        ok = *pat && *pat == *s;
      }
      if (ok) {
        pat = next;
        s++;
        continue;
      }
    } else if (!*pat) {
      return 1;
    }
    if (!star_p || !*star_s) return 0; /* no '*' to stretch */
    pat = star_p;
    s = ++star_s;
  }
}

/* ---- formatting --------------------------------------------------------- */

const char *cli_fmt_bytes(uint64_t bytes, char *buf, size_t cap) {
  static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  if (bytes < 1024) {
    snprintf(buf, cap, "%llu B", (unsigned long long)bytes);
    return buf;
  }
  double v = (double)bytes;
  int u = 0;
  while (v >= 1024.0 && u < 5) {
    v /= 1024.0;
    u++;
  }
  snprintf(buf, cap, v < 10 ? "%.1f %s" : "%.0f %s", v, unit[u]);
  return buf;
}

const char *cli_fmt_ns(uint64_t ns, char *buf, size_t cap) {
  double v = (double)ns;
  if (ns < 1000)
    snprintf(buf, cap, "%llu ns", (unsigned long long)ns);
  else if (ns < 1000000)
    snprintf(buf, cap, "%.0f us", v / 1e3);
  else if (ns < 1000000000)
    snprintf(buf, cap, v < 1e7 ? "%.1f ms" : "%.0f ms", v / 1e6);
  else if (ns < 120000000000ull)
    snprintf(buf, cap, "%.1f s", v / 1e9);
  else if (ns < 7200000000000ull)
    snprintf(buf, cap, "%.0f min", v / 60e9);
  else
    snprintf(buf, cap, "%.0f h", v / 3600e9);
  return buf;
}

uint64_t cli_age_ns(uint64_t now, uint64_t ts) {
  return now > ts ? now - ts : 0;
}

uint64_t cli_segment_resident(const char *name) { return os_segment_resident(name); }

const char *cli_not_channel(const char *name) { return os_not_channel(name); }

const char *cli_printable(const char *s, char *buf, size_t cap) {
  size_t o = 0;
  if (cap == 0) return buf;
  for (const unsigned char *p = (const unsigned char *)(s ? s : "");
       *p && o + 1 < cap; p++)
    buf[o++] = (*p < 0x20 || *p == 0x7f) ? '?' : (char)*p;
  buf[o] = 0;
  return buf;
}

int cli_term_cols(int fd) { return os_term_cols(fd); }

void cli_write_fitted(FILE *out, const char *text, size_t len, int cols) {
  if (cols <= 0) {
    fwrite(text, 1, len, out);
    return;
  }
  int col = 0;
  size_t i = 0;
  while (i < len) {
    unsigned char c = (unsigned char)text[i];
    if (c == '\033' && i + 1 < len && text[i + 1] == '[') {
      size_t j = i + 2; /* parameters, then one final byte in 0x40..0x7e */
      while (j < len && ((unsigned char)text[j] < 0x40 || (unsigned char)text[j] > 0x7e))
        j++;
      if (j < len) j++;
      fwrite(text + i, 1, j - i, out);
      i = j;
    } else if (c == '\n' || c == '\r') {
      fputc(c, out);
      if (c == '\n') col = 0;
      i++;
    } else {
      /* UTF-8 continuation bytes do not take a column. */
      if ((c & 0xc0) != 0x80) col++;
      if (col < cols) fputc(c, out);
      i++;
    }
  }
}

double cli_now_s(void) { return os_now_s(); }

void cli_sleep_ns(uint64_t ns, volatile int *stop) { os_sleep_ns(ns, stop); }

/* ---- JSON --------------------------------------------------------------- */

void cli_json_write_string(FILE *f, const char *s) {
  const unsigned char *p = (const unsigned char *)(s ? s : "");
  fputc('"', f);
  while (*p) {
    unsigned c = *p;
    if (c == '"' || c == '\\') {
      fputc('\\', f);
      fputc((int)c, f);
      p++;
    } else if (c == '\n') {
      fputs("\\n", f);
      p++;
    } else if (c == '\t') {
      fputs("\\t", f);
      p++;
    } else if (c == '\r') {
      fputs("\\r", f);
      p++;
    } else if (c < 0x20 || c == 0x7f) {
      fprintf(f, "\\u%04x", c);
      p++;
    } else if (c < 0x80) {
      fputc((int)c, f);
      p++;
    } else {
      /* Validate one UTF-8 sequence; replace invalid bytes by U+FFFD. */
      int len = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 ? 2 : 0;
      if (c >= 0xf5) len = 0;
      int ok = len > 0;
      for (int i = 1; ok && i < len; i++)
        if ((p[i] & 0xc0) != 0x80) ok = 0;
      if (ok && len == 3) {
        if ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] >= 0xa0)) ok = 0;
      } else if (ok && len == 4) {
        if ((c == 0xf0 && p[1] < 0x90) || (c == 0xf4 && p[1] >= 0x90)) ok = 0;
      }
      if (ok) {
        fwrite(p, 1, (size_t)len, f);
        p += len;
      } else {
        fputs("\\ufffd", f);
        p++;
      }
    }
  }
  fputc('"', f);
}

void cli_json_init(cli_json *j, FILE *f) {
  memset(j, 0, sizeof *j);
  j->f = f;
}

static void json_indent(cli_json *j) {
  fputc('\n', j->f);
  for (int i = 0; i < j->depth; i++) fputs("  ", j->f);
}

/* Separator, indent and key before a value. */
static void json_pre(cli_json *j, const char *key) {
  if (j->depth > 0) {
    if (j->count[j->depth]++) fputc(',', j->f);
    json_indent(j);
  }
  if (key && j->depth > 0 && j->close[j->depth] == '}') {
    cli_json_write_string(j->f, key);
    fputs(": ", j->f);
  }
}

static void json_open(cli_json *j, const char *key, char open, char close) {
  json_pre(j, key);
  fputc(open, j->f);
  if (j->depth + 1 < CLI_JSON_DEPTH) {
    j->depth++;
    j->count[j->depth] = 0;
    j->close[j->depth] = close;
  }
}

void cli_json_obj(cli_json *j, const char *key) { json_open(j, key, '{', '}'); }
void cli_json_arr(cli_json *j, const char *key) { json_open(j, key, '[', ']'); }

void cli_json_end(cli_json *j) {
  if (j->depth <= 0) return;
  char c = j->close[j->depth];
  int had = j->count[j->depth];
  j->depth--;
  if (had) json_indent(j);
  fputc(c, j->f);
  if (j->depth == 0) fputc('\n', j->f);
}

void cli_json_str(cli_json *j, const char *key, const char *v) {
  json_pre(j, key);
  if (v)
    cli_json_write_string(j->f, v);
  else
    fputs("null", j->f);
}

void cli_json_u64(cli_json *j, const char *key, uint64_t v) {
  json_pre(j, key);
  fprintf(j->f, "%llu", (unsigned long long)v);
}

void cli_json_i64(cli_json *j, const char *key, int64_t v) {
  json_pre(j, key);
  fprintf(j->f, "%lld", (long long)v);
}

void cli_json_dbl(cli_json *j, const char *key, double v) {
  json_pre(j, key);
  if (isfinite(v))
    fprintf(j->f, "%.17g", v);
  else
    fputs("null", j->f);
}

void cli_json_bool(cli_json *j, const char *key, int v) {
  json_pre(j, key);
  fputs(v ? "true" : "false", j->f);
}

void cli_json_null(cli_json *j, const char *key) {
  json_pre(j, key);
  fputs("null", j->f);
}

/* ---- channel names ------------------------------------------------------ */

static int names_add(const char *name, void *arg) {
  cli_names *ns = arg;
  if (ns->n == ns->cap) {
    size_t cap = ns->cap ? ns->cap * 2 : 16;
    char **v = realloc(ns->v, cap * sizeof *v);
    if (!v) return SHMX_E_ENOMEM;
    ns->v = v;
    ns->cap = cap;
  }
  char *copy = strdup(name);
  if (!copy) return SHMX_E_ENOMEM;
  ns->v[ns->n++] = copy;
  return 0;
}

static int names_cmp(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

int cli_names_collect(cli_names *out) {
  memset(out, 0, sizeof *out);
  int rc = shmx_channel_list(names_add, out);
  if (rc < 0) {
    cli_names_free(out);
    return rc;
  }
  if (out->n > 1) qsort(out->v, out->n, sizeof *out->v, names_cmp);
  return 0;
}

void cli_names_free(cli_names *names) {
  for (size_t i = 0; i < names->n; i++) free(names->v[i]);
  free(names->v);
  memset(names, 0, sizeof *names);
}

int cli_pid_alive(int32_t pid) { return os_pid_alive(pid); }

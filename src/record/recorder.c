/*
 * recorder.c -- record channels into MCAP files (shmx_record.h).
 *
 * One thread reads every channel in order (shmx_client_next) and sleeps on
 * their event fds when none has anything new. Each frame becomes one
 * message whose stream bytes are copied once, from the slot to the file
 * (mcap_write.c); its drop count says how many frames of the channel went
 * by unread just before it. A channel whose producer goes away is
 * re-attached when it comes back; a new session or schema gets a new MCAP
 * Channel. Files split between two frames, so a split loses nothing.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "le.h"
#include "mcap.h"
#include "schemablob.h"
#include "shmx_record.h"

#define MAX_CHANNELS 64 /* (+1 poll slot for the directory watch) */
#define RETRY_NS (100u * 1000u * 1000u)   /* re-attach attempts */
#define SLEEP_MAX_NS (500u * 1000u * 1000u) /* heartbeat while idle */
#define BURST 4096                          /* frames per channel per turn */
#define POLL_NOFD_NS (1000u * 1000u)        /* a channel without an event fd, or
                                               stuck on a bad frame: look again */

typedef struct rch {
  char name[SHMX_NAME_MAX + 1];
  shmx_client *cl;
  uint16_t mcap_ch;    /* MCAP channel of the current schema, 0 none yet */
  uint32_t gen;        /* client schema generation it encodes */
  uint64_t session;
  uint32_t n_gen;      /* MCAP channels written for this session */
  uint64_t retry_ns;
  uint64_t frames, dropped;
  int fresh;           /* attached again since the last frame written */
  uint64_t last_id;    /* last frame written, of session last_session */
  uint64_t last_session;
  shmx__fox *fox;      /* --foxglove: per stream of the schema written */
  int n_fox;
  int stuck;           /* the next frame is bad (checksum, corrupt record):
                          wait for the producer to overwrite it */
} rch;

struct shmx_recorder {
  shmx_rec_config cfg;
  char *base;          /* the path asked for */
  char *final;         /* the current file's name */
  char *part;          /* ... and its name while written */
  int fd;
  shmx__mw *w;
  uint32_t file_no;
  uint64_t file_start_ns;
  int64_t mono_to_real; /* log/publish times: CLOCK_MONOTONIC + this */
  rch ch[MAX_CHANNELS];
  int n;
  int err;
  shmx_rec_stats st;
  uint64_t bytes_before; /* file bytes of finished files */
  uint8_t *head;       /* scratch: message header + directory */
  int dw;              /* watch on the shared-memory directory (-1 none):
                          a channel that appears is attached at once */
  _Atomic int stop_req; /* shmx_recorder_stop */
  pthread_mutex_t snap_mu; /* shmx_recorder_stats from any thread reads */
  shmx_rec_stats snap;     /* ... this copy, refreshed every pass of run() */
  uint16_t fox_schema[3]; /* --foxglove: schema ids in this file by kind */
};

void shmx_rec_config_init(shmx_rec_config *c) {
  memset(c, 0, sizeof *c);
  c->chunk_bytes = 4u << 20;
  c->chunk_ns = 1000u * 1000u * 1000u;
  c->mode = 0600;
}

/* ---- files ----------------------------------------------------------------- */

/* base "a/rec.mcap", split: "a/rec-0003.mcap" (the number before the
 * extension, or at the end if there is none). */
static char *file_name(const shmx_recorder *r, uint32_t no) {
  size_t n = strlen(r->base) + 16;
  char *s = malloc(n);
  if (!s) return NULL;
  if (!r->cfg.split_bytes && !r->cfg.split_ns) {
    snprintf(s, n, "%s", r->base);
    return s;
  }
  const char *slash = strrchr(r->base, '/');
  const char *dot = strrchr(r->base, '.');
  if (!dot || (slash && dot < slash) || dot == (slash ? slash + 1 : r->base))
    dot = r->base + strlen(r->base);
  snprintf(s, n, "%.*s-%04" PRIu32 "%s", (int)(dot - r->base), r->base, no, dot);
  return s;
}

static int file_start(shmx_recorder *r) {
  free(r->final);
  free(r->part);
  r->part = NULL;
  r->final = file_name(r, r->file_no);
  if (!r->final || !(r->part = malloc(strlen(r->final) + 6)))
    return shmx__syserr(ENOMEM, "recording path");
  sprintf(r->part, "%s.part", r->final);
  struct stat sb;
  if (lstat(r->final, &sb) == 0)
    return shmx__syserr(EEXIST, "recording '%s' exists: not overwritten", r->final);
  r->fd = open(r->part, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, r->cfg.mode);
  if (r->fd < 0) return shmx__syserr(errno, "recording '%s'", r->part);
  (void)fchmod(r->fd, r->cfg.mode); /* whatever the umask said */
  shmx__mw_opts o = {r->cfg.compression, r->cfg.level, r->cfg.chunk_bytes, r->cfg.no_crc,
                     r->cfg.sync};
  int rc = shmx__mw_open(r->fd, &o, &r->w);
  if (rc) {
    close(r->fd);
    r->fd = -1;
    unlink(r->part);
    return rc;
  }
  r->file_start_ns = shmx__mono_ns();
  r->st.files++;
  for (int i = 0; i < r->n; i++) r->ch[i].mcap_ch = 0; /* schemas again in each file */
  memset(r->fox_schema, 0, sizeof r->fox_schema);
  return 0;
}

static int rename_noreplace(const char *from, const char *to) {
#ifdef SYS_renameat2
  if (syscall(SYS_renameat2, AT_FDCWD, from, AT_FDCWD, to, 1 /* RENAME_NOREPLACE */) == 0)
    return 0;
  if (errno != EINVAL && errno != ENOSYS) return -errno;
#endif
  if (link(from, to)) return -errno;
  unlink(from);
  return 0;
}

/* Finish the current file: a metadata record with the counts, the summary,
 * then the rename from .part. */
static int file_finish(shmx_recorder *r) {
  if (!r->w) return 0;
  char frames[24], dropped[24], chans[24];
  uint64_t fr = 0, dr = 0;
  for (int i = 0; i < r->n; i++) {
    fr += r->ch[i].frames;
    dr += r->ch[i].dropped;
  }
  snprintf(frames, sizeof frames, "%" PRIu64, fr);
  snprintf(dropped, sizeof dropped, "%" PRIu64, dr);
  snprintf(chans, sizeof chans, "%d", r->n);
  const char *kv[] = {"frames_total", frames, "dropped_total", dropped, "channels", chans};
  int rc = shmx__mw_metadata(r->w, "shmx.recorder", kv, 3);
  if (!rc) rc = shmx__mw_finish(r->w);
  r->st.chunks += shmx__mw_chunks(r->w);
  r->bytes_before += shmx__mw_size(r->w);
  shmx__mw_free(r->w);
  r->w = NULL;
  if (close(r->fd) && !rc) rc = shmx__syserr(errno, "close '%s'", r->part);
  r->fd = -1;
  if (!rc && (rc = rename_noreplace(r->part, r->final)))
    rc = shmx__syserr(-rc, "rename '%s' to '%s'", r->part, r->final);
  return rc;
}

/* ---- open, add, close -------------------------------------------------------- */

/* The counters as of now, in the thread that records. */
static void stats_now(const shmx_recorder *r, shmx_rec_stats *st) {
  *st = r->st;
  st->file_bytes = r->bytes_before + (r->w ? shmx__mw_size(r->w) : 0);
  st->chunks = r->st.chunks + (r->w ? shmx__mw_chunks(r->w) : 0);
}

static void snap_update(shmx_recorder *r) {
  shmx_rec_stats st;
  stats_now(r, &st);
  pthread_mutex_lock(&r->snap_mu);
  r->snap = st;
  pthread_mutex_unlock(&r->snap_mu);
}


static void recorder_free(shmx_recorder *r) {
  for (int i = 0; i < r->n; i++) {
    if (r->ch[i].cl) shmx_client_close(r->ch[i].cl);
    free(r->ch[i].fox);
  }
  if (r->dw >= 0) close(r->dw);
  pthread_mutex_destroy(&r->snap_mu);
  free(r->head);
  free(r->base);
  free(r->final);
  free(r->part);
  free(r);
}

int shmx_recorder_open(const char *path, const shmx_rec_config *cfg, shmx_recorder **out) {
  *out = NULL;
  shmx_rec_config c;
  shmx_rec_config_init(&c);
  if (cfg) c = *cfg;
  if (!c.chunk_bytes) c.chunk_bytes = 4u << 20;
  if (!c.chunk_ns) c.chunk_ns = 1000u * 1000u * 1000u;
  if (!c.mode) c.mode = 0600;
  if (!path || !*path || c.chunk_bytes < (64u << 10) || c.chunk_bytes > (1u << 30) ||
      c.compression > SHMX_REC_LZ4 || c.mode > 07777)
    return shmx__err(SHMX_E_ARG, "recorder: bad path or configuration");
  if (!shmx__mw_codec_ok(c.compression))
    return shmx__err(SHMX_E_ENOSYS, "recorder: compression %s is not built in",
                     c.compression == SHMX_REC_ZSTD ? "zstd" : "lz4");
  shmx_recorder *r = calloc(1, sizeof *r);
  if (!r || !(r->base = strdup(path)) ||
      !(r->head = malloc(SHMX__FRAME_HEAD + SHMX__FRAME_DIRENT * SHMX_FRAME_MAX_STREAMS))) {
    if (r) free(r->base);
    free(r);
    return shmx__syserr(ENOMEM, "recorder");
  }
  r->cfg = c;
  r->fd = -1;
  pthread_mutex_init(&r->snap_mu, NULL);
  r->dw = shmx__dirwatch_open();
  r->mono_to_real = (int64_t)(shmx__real_ns() - shmx__mono_ns());
  int rc = file_start(r);
  if (rc) {
    recorder_free(r);
    return rc;
  }
  snap_update(r);
  *out = r;
  return 0;
}

int shmx_recorder_add(shmx_recorder *r, const char *name) {
  int rc;
  if (!r) return shmx__err(SHMX_E_ARG, "recorder is NULL");
  if ((rc = shmx_name_check(name))) return shmx__err(rc, "recorder: invalid channel name");
  for (int i = 0; i < r->n; i++)
    if (!strcmp(r->ch[i].name, name))
      return shmx__err(SHMX_E_DUPLICATE, "recorder: channel '%s' added twice", name);
  if (r->n == MAX_CHANNELS)
    return shmx__err(SHMX_E_LIMIT, "recorder: %d channels at most", MAX_CHANNELS);
  rch *c = &r->ch[r->n++];
  memset(c, 0, sizeof *c);
  snprintf(c->name, sizeof c->name, "%s", name);
  return 0;
}

static void detach(shmx_recorder *r, rch *c) {
  shmx_client_close(c->cl);
  c->cl = NULL;
  c->mcap_ch = 0;
  c->retry_ns = 0; /* try again at once: a restart may be there already */
  c->stuck = 0;
  r->st.attached--;
}

int shmx_recorder_close(shmx_recorder *r) {
  if (!r) return 0;
  int rc = r->err ? r->err : file_finish(r);
  if (r->w) { /* broken: leave the .part for recovery */
    shmx__mw_free(r->w);
    close(r->fd);
  }
  recorder_free(r);
  return rc;
}

void shmx_recorder_stats(const shmx_recorder *r, shmx_rec_stats *st) {
  shmx_recorder *w = (shmx_recorder *)r; /* the lock only */
  pthread_mutex_lock(&w->snap_mu);
  *st = r->snap;
  pthread_mutex_unlock(&w->snap_mu);
}

const char *shmx_recorder_path(const shmx_recorder *r) { return r->part; }

void shmx_recorder_stop(shmx_recorder *r) {
  if (r) atomic_store(&r->stop_req, 1);
}

/* ---- frames ---------------------------------------------------------------------- */

/* --foxglove: a protobuf channel "NAME/STREAM" per image or point-cloud
 * stream of the schema just written (its schema once per file). */
static int fox_channels(shmx_recorder *r, rch *c) {
  const shmx_stream_info *si;
  int n, rc = shmx_client_streams(c->cl, &si, &n);
  if (rc) return rc;
  shmx__fox *f = realloc(c->fox, (size_t)(n ? n : 1) * sizeof *f);
  if (!f) return shmx__syserr(ENOMEM, "foxglove channels");
  c->fox = f;
  c->n_fox = n;
  for (int i = 0; i < n && !rc; i++) {
    int kind = shmx__fox_kind(&si[i], &f[i]);
    if (!kind) continue;
    if (!r->fox_schema[kind]) {
      uint8_t *fds;
      size_t len;
      const char *name;
      if ((rc = shmx__fox_schema(kind, &fds, &len, &name))) break;
      rc = shmx__mw_schema(r->w, name, "protobuf", fds, len, &r->fox_schema[kind]);
      free(fds);
      if (rc) break;
    }
    char topic[SHMX_NAME_MAX + SHMX_STREAM_NAME_MAX + 2];
    snprintf(topic, sizeof topic, "%s/%s", c->name, si[i].name);
    const char *kv[] = {"shmx.channel", c->name, "shmx.stream", si[i].name};
    rc = shmx__mw_channel(r->w, r->fox_schema[kind], topic, "protobuf", kv, 2, &f[i].ch);
  }
  return rc;
}

/* The Foxglove copies of frame f's image and point-cloud streams. */
static int fox_messages(shmx_recorder *r, rch *c, const shmx_frame *f, uint64_t log_ns,
                        uint64_t pub_ns) {
  uint8_t head[512];
  for (uint32_t i = 0; i < f->tlv_count; i++) {
    const shmx_frame_stream *s = &f->streams[i];
    if (s->index >= (uint32_t)c->n_fox || !c->fox[s->index].ch) continue;
    const shmx__fox *fx = &c->fox[s->index];
    if (fx->kind == SHMX__FOX_IMAGE && s->elem_count != (uint64_t)fx->width * fx->height)
      continue; /* not the declared size: no image this frame */
    size_t hl = shmx__fox_head(fx, c->name, pub_ns, s->bytes, head, sizeof head);
    if (!hl) continue;
    shmx__piece pc[2] = {{head, hl}, {s->data, s->bytes}};
    int rc = shmx__mw_message(r->w, fx->ch, (uint32_t)f->frame_id, log_ns, pub_ns, pc, 2);
    if (rc) return rc;
  }
  return 0;
}

static int write_schema(shmx_recorder *r, rch *c) {
  uint8_t *blob;
  size_t len;
  uint16_t sid;
  int rc = shmx__sb_encode_client(c->cl, &blob, &len, NULL, NULL);
  if (rc) return rc;
  rc = shmx__mw_schema(r->w, SHMX__MCAP_SCHEMA_NAME, SHMX__MCAP_SCHEMA_ENC, blob, len, &sid);
  free(blob);
  if (rc) return rc;
  uint64_t session = shmx__client_session(c->cl);
  if (session != c->session) {
    c->session = session;
    c->n_gen = 0;
  }
  char ses[24], gen[16], off[24];
  snprintf(ses, sizeof ses, "0x%016" PRIx64, session);
  snprintf(gen, sizeof gen, "%" PRIu32, ++c->n_gen);
  snprintf(off, sizeof off, "%" PRId64, r->mono_to_real);
  const char *kv[] = {"shmx.session", ses, "shmx.schema_gen", gen, "shmx.clock_offset_ns", off};
  if ((rc = shmx__mw_channel(r->w, sid, c->name, SHMX__MCAP_MSG_ENC, kv, 3, &c->mcap_ch)))
    return rc;
  c->gen = shmx__client_schema_gen(c->cl);
  return r->cfg.foxglove ? fox_channels(r, c) : 0;
}

int shmx__rec_put_frame(shmx__mw *w, uint16_t ch, uint8_t *h, const shmx_frame *f,
                        uint64_t log_ns, uint64_t pub_ns) {
  shmx__piece pc[1 + 2 * SHMX_FRAME_MAX_STREAMS];
  int np = 0;
  uint32_t n = f->tlv_count;
  uint64_t t;
  if (n > SHMX_FRAME_MAX_STREAMS) return shmx__err(SHMX_E_ARG, "frame of %u streams", n);
  memcpy(&t, &f->sim_time, 8);
  shmx__put64(h, f->frame_id);
  shmx__put64(h + 8, t);
  shmx__put64(h + 16, f->publish_ns);
  shmx__put64(h + 24, f->dropped);
  shmx__put32(h + 32, n);
  shmx__put32(h + 36, 0);
  uint64_t head = SHMX__FRAME_HEAD + (uint64_t)n * SHMX__FRAME_DIRENT;
  pc[np++] = (shmx__piece){h, head};
  uint64_t ref = shmx__mw_data_ref(w), off = head;
  for (uint32_t i = 0; i < n; i++) {
    const shmx_frame_stream *s = &f->streams[i];
    /* 64-byte aligned (a cache line, any SIMD load); small streams 8. */
    uint64_t align = s->bytes >= 256 ? SHMX__REC_ALIGN : 8;
    uint64_t pad = (align - (ref + off) % align) % align;
    if (pad) pc[np++] = (shmx__piece){NULL, pad};
    off += pad;
    uint8_t *d = h + SHMX__FRAME_HEAD + (size_t)i * SHMX__FRAME_DIRENT;
    shmx__put32(d, s->stream_id);
    shmx__put32(d + 4, 0);
    shmx__put64(d + 8, s->elem_count);
    shmx__put64(d + 16, s->bytes);
    shmx__put64(d + 24, off);
    if (s->bytes) pc[np++] = (shmx__piece){s->data, s->bytes};
    off += s->bytes;
  }
  return shmx__mw_message(w, ch, (uint32_t)f->frame_id, log_ns, pub_ns, pc, np);
}

static int maybe_split(shmx_recorder *r);

static int write_frame(shmx_recorder *r, rch *c, const shmx_frame *fr) {
  int rc;
  if ((rc = maybe_split(r))) return rc;
  /* A reader's first frame says it missed nothing (it cannot know). After
   * a re-attach the recorder knows better: the frames since the last one
   * it wrote of this session, or since the start of a new session. */
  shmx_frame fixed = *fr;
  const shmx_frame *f = &fixed;
  if (c->fresh && c->last_id) {
    uint64_t s = shmx__client_session(c->cl);
    fixed.dropped = s == c->last_session && fr->frame_id > c->last_id
                        ? fr->frame_id - c->last_id - 1
                        : fr->frame_id - 1;
  }
  c->fresh = 0;
  c->last_id = fr->frame_id;
  c->last_session = shmx__client_session(c->cl);
  if (!c->mcap_ch || shmx__client_schema_gen(c->cl) != c->gen) {
    if ((rc = write_schema(r, c))) return rc;
  }
  uint64_t now = shmx__mono_ns();
  uint64_t log_ns = (uint64_t)((int64_t)now + r->mono_to_real);
  uint64_t pub_ns = (uint64_t)((int64_t)f->publish_ns + r->mono_to_real);
  if ((rc = shmx__rec_put_frame(r->w, c->mcap_ch, r->head, f, log_ns, pub_ns))) return rc;
  if (r->cfg.foxglove && (rc = fox_messages(r, c, f, log_ns, pub_ns))) return rc;
  c->frames++;
  c->dropped += f->dropped;
  r->st.frames++;
  r->st.bytes += f->payload_bytes;
  r->st.dropped += f->dropped;
  if (shmx__mw_chunk_bytes(r->w, NULL) >= r->cfg.chunk_bytes) rc = shmx__mw_chunk_close(r->w);
  return rc;
}

/* Close a chunk once it is chunk_ns old. */
static int housekeeping(shmx_recorder *r, uint64_t now) {
  uint64_t first;
  if (shmx__mw_chunk_bytes(r->w, &first) &&
      (uint64_t)((int64_t)now + r->mono_to_real) - first >= r->cfg.chunk_ns)
    return shmx__mw_chunk_close(r->w);
  return 0;
}

/* Before a frame: start the next file if this one is full or old enough.
 * Splitting only when a frame comes leaves no empty file behind and puts
 * every frame in exactly one file. */
static int maybe_split(shmx_recorder *r) {
  if (!((r->cfg.split_bytes && shmx__mw_size(r->w) >= r->cfg.split_bytes) ||
        (r->cfg.split_ns && shmx__mono_ns() - r->file_start_ns >= r->cfg.split_ns)))
    return 0;
  int rc = file_finish(r);
  if (!rc) {
    r->file_no++;
    rc = file_start(r);
  }
  return rc;
}

static int attach(shmx_recorder *r, rch *c, uint64_t now) {
  if (c->cl || now < c->retry_ns) return 0;
  if (shmx_client_open(c->name, &c->cl)) {
    c->cl = NULL;
    c->retry_ns = now + RETRY_NS;
    return 0;
  }
  r->st.attached++;
  r->st.sessions++;
  c->fresh = 1;
  return 1;
}

int shmx_recorder_run(shmx_recorder *r, int64_t timeout_ns, uint64_t max_frames,
                      volatile sig_atomic_t *stop) {
  if (!r) return shmx__err(SHMX_E_ARG, "recorder is NULL");
  if (r->err) return r->err;
  uint64_t start = shmx__mono_ns();
  uint64_t end = timeout_ns < 0 ? UINT64_MAX : start + (uint64_t)timeout_ns;
  int rc = 0;
  while (!rc && !(stop && *stop) && !atomic_exchange(&r->stop_req, 0)) {
    uint64_t now = shmx__mono_ns();
    int progress = 0;
    if (r->dw >= 0 && r->st.attached < (uint32_t)r->n) {
      struct pollfd d = {r->dw, POLLIN, 0};
      if (poll(&d, 1, 0) > 0) { /* something changed in the directory */
        shmx__notify_drain(r->dw);
        for (int i = 0; i < r->n; i++) r->ch[i].retry_ns = 0;
      }
    }
    for (int i = 0; i < r->n && !rc; i++) {
      rch *c = &r->ch[i];
      attach(r, c, now);
      for (int k = 0; c->cl && k < BURST && !rc; k++) {
        shmx_frame f;
        int e = shmx_client_next(c->cl, &f);
        if (e == SHMX_E_NOFRAME) break;
        if (e == SHMX_E_BUSY) continue;
        if ((e == SHMX_E_CHECKSUM || e == SHMX_E_CORRUPT) && shmx_client_status(c->cl) == 0) {
          c->stuck = 1; /* a bad frame in a live channel: it will be overwritten */
          break;
        }
        if (e) { /* closed, dead, restarted, reaped, truncated: attach again */
          detach(r, c);
          break;
        }
        c->stuck = 0;
        rc = write_frame(r, c, &f);
        shmx_frame_release(c->cl, &f);
        progress++;
        if (max_frames && r->st.frames >= max_frames) break;
      }
    }
    if (!rc) rc = housekeeping(r, shmx__mono_ns());
    snap_update(r);
    if (rc || (max_frames && r->st.frames >= max_frames)) break;
    now = shmx__mono_ns();
    if (now >= end) break;
    if (progress) continue;
    /* Nothing new: arm every channel's event fd and sleep. */
    struct pollfd pfd[MAX_CHANNELS + 1];
    int np = 0, ready = 0, detached = 0, nofd = 0;
    for (int i = 0; i < r->n; i++) {
      rch *c = &r->ch[i];
      if (!c->cl) {
        detached = 1;
        continue;
      }
      int fd = shmx_client_fd(c->cl);
      if (fd < 0) { /* no event fd (inotify limit...): look again soon */
        nofd = 1;
        continue;
      }
      int a = shmx_client_arm(c->cl);
      if (a == 1 && c->stuck) nofd = 1; /* "newer" is the bad frame: look again soon */
      else if (a == 1) ready = 1;
      else if (a < 0) detach(r, c);
      else pfd[np++] = (struct pollfd){fd, POLLIN, 0};
    }
    if (ready) continue;
    uint64_t wait = nofd ? POLL_NOFD_NS : SLEEP_MAX_NS, first;
    if (detached && r->dw >= 0) pfd[np++] = (struct pollfd){r->dw, POLLIN, 0};
    else if (detached && wait > RETRY_NS) wait = RETRY_NS;
    if (end - now < wait) wait = end - now;
    if (shmx__mw_chunk_bytes(r->w, &first)) {
      uint64_t due = (uint64_t)(first - (uint64_t)r->mono_to_real) + r->cfg.chunk_ns;
      uint64_t left = due > now ? due - now : 0;
      if (left < wait) wait = left;
    }
    int ms = (int)((wait + 999999) / 1000000);
    if (poll(pfd, (nfds_t)np, ms) < 0 && errno != EINTR) {
      rc = shmx__syserr(errno, "recorder: poll");
      break;
    }
  }
  if (rc) r->err = rc;
  snap_update(r);
  return rc;
}

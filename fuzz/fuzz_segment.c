/*
 * fuzz_segment.c -- hostile segment bytes against open/read/inspect.
 *
 * Input byte 0 picks the mode:
 *   odd:  the rest of the input is a whole segment image. It is written to
 *         a fresh shm segment (sized by its own total_bytes field when that
 *         is plausible, so a small input can describe a full segment), with
 *         or without a live "owner" holding the lock, then the inspector and
 *         a client open it and make every read call.
 *   even: a valid channel is created (frames published, a reader attached
 *         and holding a frame, a user schema record), then the rest of the
 *         input is a list of patches {region, offset, length, bytes} written
 *         over its header, schema, slot descriptors, reader slots, control
 *         rings or frame data through a raw read-write mapping. Then the
 *         attached reader, a newly opening reader, the inspector and the
 *         producer itself all keep working: errors are fine, crashes,
 *         out-of-bounds reads and leaks are not.
 * A header whose state field is 0 (still initialising) is set to LIVE: the
 * library would otherwise wait 200 ms for the producer to finish create.
 */
#include <sys/file.h>
#include <sys/stat.h>

#include "fuzz_common.h"

static unsigned sink;

static void read_calls(shmx_client *cl, int full) {
  shmx_frame f;
  for (int k = 0; k < 3; k++) {
    if (shmx_client_latest(cl, &f) != 0) break;
    sink += fz_touch(&f);
    sink += (unsigned)shmx_frame_valid(cl, &f);
    shmx_frame_release(cl, &f);
  }
  static uint8_t copy[1 << 16];
  if (shmx_client_copy_latest(cl, copy, 256, &f) == 0) sink += fz_touch(&f);
  if (shmx_client_copy_latest(cl, copy, sizeof copy, &f) == 0) {
    sink += fz_touch(&f);
    sink += (unsigned)shmx_frame_valid(cl, &f);
  }
  for (int k = 0; k < 5; k++) {
    if (shmx_client_next(cl, &f) != 0) break;
    sink += fz_touch(&f);
    shmx_frame_release(cl, &f);
  }
  if (shmx_client_wait(cl, &f, 0, 1) == 0) {
    sink += fz_touch(&f);
    shmx_frame_release(cl, &f);
  }
  (void)shmx_client_refresh(cl);
  const shmx_stream_info *st = NULL;
  int n = 0;
  if (shmx_client_streams(cl, &st, &n) == 0)
    for (int i = 0; i < n; i++) {
      sink += (unsigned)strlen(st[i].name);
      for (uint32_t b = 0; b < st[i].extra_len; b++) sink += st[i].extra[b];
    }
  for (int i = 0; i < 8; i++) {
    const uint8_t *d;
    uint32_t len;
    if (shmx_client_static_user(cl, i, &d, &len) != 0) break;
    for (uint32_t b = 0; b < len; b++) sink += d[b];
  }
  shmx_header_info h;
  (void)shmx_client_header(cl, &h);
  if (full) (void)shmx_client_status(cl); /* system calls: once per client */
  (void)shmx_client_send(cl, SHMX_TLV_CONTROL_USER, "ping", 4);
  (void)shmx_client_heartbeat(cl);
  sink += (unsigned)shmx_client_frame_seq(cl);
}

static void inspect_calls(void) {
  shmx_inspector *in = NULL;
  if (shmx_inspector_open(fz_name(), &in) != 0) return;
  shmx_header_info h;
  shmx_reader_info ri[4];
  shmx_slot_info si[4];
  const shmx_stream_info *st;
  int n;
  (void)shmx_inspector_header(in, &h);
  (void)shmx_inspector_refresh(in);
  if (shmx_inspector_streams(in, &st, &n) == 0)
    for (int i = 0; i < n; i++) sink += (unsigned)strlen(st[i].name);
  sink += (unsigned)shmx_inspector_readers(in, ri, 4);
  sink += (unsigned)shmx_inspector_slots(in, si, 4);
  shmx_inspector_close(in);
}

static void force_live(uint8_t *seg, size_t size) {
  if (size >= 256) {
    uint32_t st;
    memcpy(&st, seg + offsetof(struct shmx__hdr, state), 4);
    if (st == SHMX__ST_INIT) {
      st = SHMX__ST_LIVE;
      memcpy(seg + offsetof(struct shmx__hdr, state), &st, 4);
    }
  }
}

static void whole_image(fz_in *in, uint8_t mode) {
  const uint8_t *img = in->p + in->pos;
  size_t len = fz_left(in);
  size_t size = len < 4096 ? 4096 : len;
  if (len >= 32) {
    uint64_t total;
    memcpy(&total, img + 24, 8);
    if (total >= size && total <= (4u << 20)) size = (size_t)total;
  }
  char path[128];
  fz_path(path, sizeof path);
  int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) abort();
  if (ftruncate(fd, (off_t)size) != 0) abort();
  uint8_t *seg = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (seg == MAP_FAILED) abort();
  memcpy(seg, img, len);
  force_live(seg, size);
  /* The session's lock file, recorded in the header as create would, so a
   * client gets past attach to the read calls. */
  char lpath[160];
  snprintf(lpath, sizeof lpath, "/dev/shm/.%s%s.lock", SHMX_SEGMENT_PREFIX, fz_name());
  int lfd = open(lpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  struct stat lst;
  if (lfd < 0 || fstat(lfd, &lst) != 0) abort();
  if (mode & 4) {
    uint64_t v = (uint64_t)lst.st_dev;
    memcpy(seg + offsetof(struct shmx__hdr, lock_dev), &v, 8);
    v = (uint64_t)lst.st_ino;
    memcpy(seg + offsetof(struct shmx__hdr, lock_ino), &v, 8);
  }
  if (mode & 2) { /* a live owner: the producer's write lock on byte 0 */
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};
    (void)fcntl(fd, F_OFD_SETLK, &fl);
  }
  inspect_calls();
  shmx_client *cl = NULL;
  if (shmx_client_open(fz_name(), &cl) == 0) {
    read_calls(cl, 1);
    shmx_client_close(cl);
  }
  sink += (unsigned)shmx_channel_owner_alive(fz_name());
  munmap(seg, size);
  unlink(path);
  unlink(lpath);
  close(lfd);
  close(fd);
}

static void patch_live(fz_in *in, uint8_t mode) {
  shmx_server *srv = fz_server((mode & 4) ? 256 : 4096,
                               (mode & 8) ? SHMX_CREATE_CRC32C : 0);
  uint64_t k = 0;
  for (unsigned i = 0; i < 1u + ((mode >> 4) & 3); i++) fz_publish(srv, ++k);
  (void)shmx_server_static_append(srv, "user-record", 11);
  shmx_client *a = NULL;
  if (shmx_client_open(fz_name(), &a) != 0) abort();
  shmx_frame held;
  int holding = shmx_client_latest(a, &held) == 0;
  (void)shmx_client_send(a, 0x3000, "before", 6);

  size_t size = 0;
  uint8_t *seg = fz_map_rw(&size);
  if (!seg) abort();
  struct shmx__hdr h;
  memcpy(&h, seg, sizeof h);
  uint64_t reg[6][2] = {
      {0, SHMX__HDR_BYTES},
      {h.static_off, h.static_bytes_cap},
      {h.slotdesc_off, h.readers_off - h.slotdesc_off},
      {h.readers_off, h.control_off - h.readers_off},
      {h.control_off, (uint64_t)h.reader_slots * h.control_per_reader},
      {h.frames_off, h.total_bytes - h.frames_off},
  };
  while (fz_left(in) >= 4) {
    uint8_t r = fz_u8(in) % 6;
    uint64_t off = reg[r][0] + fz_u16(in) % reg[r][1];
    size_t len = 1 + fz_u8(in) % 32;
    for (size_t i = 0; i < len && off + i < size; i++) seg[off + i] = fz_u8(in);
  }
  force_live(seg, size);

  /* the attached reader */
  read_calls(a, 1);
  if (holding) {
    sink += (unsigned)shmx_frame_valid(a, &held);
    sink += fz_touch(&held);
    shmx_frame_release(a, &held);
  }
  /* a reader opening now */
  shmx_client *b = NULL;
  if (shmx_client_open(fz_name(), &b) == 0) read_calls(b, 1);
  inspect_calls();
  /* the producer keeps going */
  shmx_control_msg msgs[16];
  int corrupt = 0;
  int n = shmx_server_poll_control(srv, msgs, 16, &corrupt);
  for (int i = 0; i < n; i++)
    for (uint32_t j = 0; j < msgs[i].len; j++) sink += msgs[i].data[j];
  shmx_reader_info ri[4];
  sink += (unsigned)shmx_server_readers(srv, ri, 4);
  for (int i = 0; i < 3; i++) fz_publish(srv, ++k);
  shmx_header_info hi;
  (void)shmx_server_header(srv, &hi);
  (void)shmx_server_static_append(srv, "more", 4);
  shmx_stream_spec sp = {.id = 9, .name = "late", .dtype = SHMX_DT_U16,
                         .components = 1, .bytes_per_elem = 2};
  (void)shmx_server_add_stream(srv, &sp);
  const shmx_stream_info *st;
  int ns;
  (void)shmx_server_streams(srv, &st, &ns);
  read_calls(a, 0);
  if (b) read_calls(b, 0);
  (void)shmx_server_reap(srv, 0, 1); /* everyone is stale by now */
  read_calls(a, 0);
  shmx_client_close(b);
  shmx_client_close(a);
  munmap(seg, size);
  shmx_server_destroy(srv);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fz_in in = {data, size, 0};
  uint8_t mode = fz_u8(&in);
  if (mode & 1) whole_image(&in, mode);
  else patch_live(&in, mode);
  return 0;
}

/*
 * fuzz_mcap.c -- libFuzzer target: hostile recordings (issue 12).
 *
 * The input is a file. It is opened as a recording (footer, summary, chunk
 * indexes, message indexes, chunks, frame messages: every parser), every
 * frame is read and each stream byte touched, ids and times are looked up
 * and stepped through; then shmx_recording_recover scans it record by record
 * and the recovered file is read the same way. Any outcome but a crash,
 * leak, hang or sanitizer report is fine. Seeds: fuzz/corpus/mcap (made by
 * fuzz/gen_mcap_seeds.py).
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "shmx.h"
#include "shmx_record.h"

static void read_everything(const char *path) {
  shmx_recording *r;
  if (shmx_recording_open(path, &r)) return;
  shmx_rec_info in;
  shmx_recording_info(r, &in);
  volatile uint8_t sink = 0;
  uint64_t n = in.frames < 4096 ? in.frames : 4096;
  for (uint64_t k = 0; k < n; k++) {
    shmx_rec_frame f;
    if (shmx_recording_read_at(r, k, &f)) continue;
    for (uint32_t i = 0; i < f.tlv_count; i++)
      for (uint64_t j = 0; j < f.streams[i].bytes; j++) sink ^= f.streams[i].data[j];
    shmx_rec_frame_release(&f);
  }
  for (uint32_t c = 0; c < in.channels; c++) {
    const shmx_rec_channel *ch = shmx_recording_channel(r, c);
    for (int s = 0; s < ch->n_streams; s++) sink ^= (uint8_t)ch->streams[s].name[0];
  }
  uint64_t pos, d;
  for (uint64_t id = 1; id < 6; id++) (void)shmx_recording_find_id(r, NULL, id, &pos);
  if (in.channels)
    (void)shmx_recording_find_id(r, shmx_recording_channel(r, 0)->topic, 3, &pos);
  if (shmx_recording_find_time(r, NULL, in.start_ns + (in.end_ns - in.start_ns) / 2, &pos) == 0) {
    for (int i = 0; i < 8 && shmx_recording_step(r, NULL, -1, &pos) == 0; i++) {
    }
    for (int i = 0; i < 8 && shmx_recording_step(r, NULL, 1, &pos) == 0; i++) {
    }
  }
  (void)shmx_recording_count_dropped(r, &d);
  shmx_recording_close(r);
  (void)sink;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int fd = -1;
  static char in_path[64], out_path[96];
  if (fd < 0) {
    fd = memfd_create("fuzz-mcap", MFD_CLOEXEC);
    snprintf(in_path, sizeof in_path, "/proc/self/fd/%d", fd);
    snprintf(out_path, sizeof out_path, "/dev/shm/shmx-fuzz-recovered-%d.mcap", (int)getpid());
  }
  if (fd < 0 || ftruncate(fd, 0) || pwrite(fd, data, size, 0) != (ssize_t)size) return 0;
  read_everything(in_path);
  unlink(out_path);
  if (shmx_recording_recover(in_path, out_path, NULL) == 0) read_everything(out_path);
  unlink(out_path);
  return 0;
}

/*
 * le.h -- little-endian loads and stores at any alignment, for the byte
 * formats that leave the process (bridge messages, schema blobs, MCAP
 * recordings). Byte by byte: correct on any host, folded by the compiler
 * into single moves on little-endian ones.
 */
#ifndef SHMX_LE_H
#define SHMX_LE_H

#include <stdint.h>

static inline void shmx__put16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
}
static inline void shmx__put32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline void shmx__put64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint16_t shmx__get16(const uint8_t *p) {
  return (uint16_t)(p[0] | p[1] << 8);
}
static inline uint32_t shmx__get32(const uint8_t *p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; i++) v |= (uint32_t)p[i] << (8 * i);
  return v;
}
static inline uint64_t shmx__get64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
  return v;
}

#endif /* SHMX_LE_H */

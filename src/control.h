/*
 * control.h -- per-reader control rings (reader -> producer).
 *
 * Single producer (the reader), single consumer (the channel's producer).
 * head and tail count bytes ever written/consumed; the ring holds
 * messages { u32 len, u32 type, payload padded to 8 }. Capacity is a power
 * of two >= 64, so a message header never wraps; payloads may.
 */
#ifndef SHMX_CONTROL_H
#define SHMX_CONTROL_H

#include "segment.h"

/* Reader side: append one message. SHMX_E_RINGFULL, SHMX_E_ARG (can never
 * fit), SHMX_E_CORRUPT (tail is not plausible). */
int shmx__ring_send(const shmx__seg *s, uint32_t slot, uint32_t type,
                    const void *data, uint32_t len);

/* Producer side: pop one message of reader slot `slot` into buf (cap bytes
 * available). Returns 1 with type and len set, 0 if empty, SHMX_E_CORRUPT if
 * the ring held garbage (it has been reset: tail = head). */
int shmx__ring_pop(const shmx__seg *s, uint32_t slot, uint8_t *buf,
                   uint64_t cap, uint32_t *type, uint32_t *len);

/* Reset a ring to empty (reader at attach, before it becomes ACTIVE). */
void shmx__ring_reset(const shmx__seg *s, uint32_t slot);

#endif

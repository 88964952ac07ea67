/*
 * registry.h -- reader slots: claim, heartbeat, release, reap.
 *
 * A slot is claimed by CAS(owner: 0 -> reader_id), where reader_id comes
 * from header.next_reader_id (never reused within a session). The producer
 * reaps by CAS(owner: id -> SHMX__REAPING), clears the reader's pin bits,
 * bumps generation, then stores owner = 0. A reader whose owner no longer
 * equals its id has been reaped (SHMX_E_REAPED).
 */
#ifndef SHMX_REGISTRY_H
#define SHMX_REGISTRY_H

#include "segment.h"

#define SHMX__REAPING UINT64_MAX

/* Lock identity k (0..7) of a reader slot: a byte of the session's lock
 * file that an attached reader holds an OFD write lock on (its liveness
 * signal; users who may only read the channel cannot open that file). Eight
 * per slot, so a reaped reader that is still alive (and still holds its
 * byte) never blocks the slot for a newcomer nor speaks for it. */
static inline uint64_t shmx__reg_lock_off(const shmx__seg *s, uint32_t slot,
                                          uint32_t k) {
  return SHMX__RLOCK_BASE + (s->session_id & 0x3FFFFFFFu) * SHMX__RLOCK_SPAN +
         (uint64_t)slot * SHMX__LOCK_BYTES + k;
}
/* Claim a free reader slot: lock a free identity of it first, then CAS
 * owner 0 -> id, then record the identity. SHMX_E_FULL if none. */
int shmx__reg_claim(const shmx__seg *s, uint32_t *slot, uint64_t *id,
                    uint32_t *lock_k);
/* Release our own slot (clears our pins) if we still own it; always drops
 * our lock identity k. */
void shmx__reg_release(const shmx__seg *s, uint32_t slot, uint64_t id,
                       uint32_t k);
/* 1 if the reader attached to slot is alive (holds its byte lock), 0 if
 * not, -1 if unknown. Checked through s->lock_fd, which must not be the
 * reader's; without one (a monitor) by pid and process start time. */
int shmx__reg_alive(const shmx__seg *s, uint32_t slot);
/* Producer: reap slot if still owned by id. Returns 1 if reaped. */
int shmx__reg_reap(const shmx__seg *s, uint32_t slot, uint64_t id);
/* Producer: a slot whose owner reads REAPING outside a reap in progress
 * (only the producer sets it, and finishes within one call) is garbage, left
 * by a writer that should not have written it: free it. Returns 1 if freed. */
int shmx__reg_reap_stuck(const shmx__seg *s, uint32_t slot);
/* Clear reader slot's pin bit in every frame slot. */
void shmx__reg_clear_pins(const shmx__seg *s, uint32_t slot);

#endif

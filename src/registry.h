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

/* Claim a free reader slot; fills *slot and *id. SHMX_E_FULL if none. */
int shmx__reg_claim(const shmx__seg *s, uint32_t *slot, uint64_t *id);
/* Release our own slot (clears our pins). No-op if we were reaped. */
void shmx__reg_release(const shmx__seg *s, uint32_t slot, uint64_t id);
/* Producer: reap slot if still owned by id. Returns 1 if reaped. */
int shmx__reg_reap(const shmx__seg *s, uint32_t slot, uint64_t id);
/* Clear reader slot's pin bit in every frame slot. */
void shmx__reg_clear_pins(const shmx__seg *s, uint32_t slot);

#endif

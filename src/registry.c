/*
 * registry.c -- the reader registry (see registry.h for the protocol).
 */
#include "registry.h"
#include "control.h"

void shmx__reg_clear_pins(const shmx__seg *s, uint32_t slot) {
  uint64_t mask = ~(1ull << (slot & 63));
  for (uint32_t i = 0; i < s->g.slots; i++)
    atomic_fetch_and(shmx__pin_word(s, i, slot >> 6), mask);
}

int shmx__reg_claim(const shmx__seg *s, uint32_t *slot, uint64_t *id,
                    uint32_t *lock_k) {
  struct shmx__hdr *h = shmx__hdr(s);
  uint64_t me = atomic_fetch_add(&h->next_reader_id, 1) + 1;
  if (me == 0 || me == SHMX__REAPING) me = atomic_fetch_add(&h->next_reader_id, 1) + 1;
  for (uint32_t i = 0; i < s->g.reader_slots; i++) {
    struct shmx__reader *r = shmx__rdr(s, i);
    if (atomic_load_explicit(&r->owner, memory_order_relaxed) != 0) continue;
    /* Take a lock identity nobody holds (a reaped reader may still hold
     * the one it had). */
    uint32_t k = 0;
    while (k < SHMX__LOCK_BYTES &&
           shmx__byte_lock(s->lock_fd, shmx__reg_lock_off(s, i, k)) != 0)
      k++;
    if (k == SHMX__LOCK_BYTES) continue;
    uint64_t zero = 0;
    if (!atomic_compare_exchange_strong(&r->owner, &zero, me)) {
      shmx__byte_unlock(s->lock_fd, shmx__reg_lock_off(s, i, k));
      continue;
    }
    atomic_store(&r->lock_byte, k);
    atomic_store(&r->state, SHMX__RD_CLAIMING);
    atomic_fetch_add(&r->generation, 1);
    SHMX__ST(r->pid, shmx__getpid());
    SHMX__ST(r->pid_start, shmx__pid_start(shmx__getpid()));
    uint64_t now = shmx__mono_ns();
    atomic_store(&r->heartbeat_ns, now);
    atomic_store(&r->last_frame_seen, 0);
    atomic_store(&r->frames_read, 0);
    atomic_store(&r->frames_dropped, 0);
    atomic_store(&r->ring_resets, 0);
    SHMX__ST(r->attach_ns, now);
    shmx__reg_clear_pins(s, i); /* leftovers of a crashed predecessor */
    shmx__ring_reset(s, i);
    atomic_fetch_add(&h->readers_connected, 1);
    atomic_store_explicit(&r->state, SHMX__RD_ACTIVE, memory_order_release);
    *slot = i;
    *id = me;
    *lock_k = k;
    return 0;
  }
  return shmx__err(SHMX_E_FULL, "channel '%s': all %u reader slots are taken",
                   s->name, s->g.reader_slots);
}

/* Empty a slot we own (as its reader, or as the reaper): pins, waiter
 * count, state, generation, connected count. Safe to run twice on one slot
 * (a reader dying in its release, then reaped): the exchanges decide who
 * decrements waiters and readers_connected. The caller then stores owner. */
static void slot_vacate(const shmx__seg *s, uint32_t slot) {
  struct shmx__reader *r = shmx__rdr(s, slot);
  struct shmx__hdr *h = shmx__hdr(s);
  shmx__reg_clear_pins(s, slot);
  /* A reader killed (or reaped) inside a futex wait is still counted. */
  shmx__unwait(s, r);
  uint32_t was = atomic_exchange(&r->state, SHMX__RD_FREE);
  atomic_fetch_add(&r->generation, 1);
  if (was != SHMX__RD_FREE) {
    /* Never underflow, even if the counter was scribbled on. */
    uint32_t c = atomic_load(&h->readers_connected);
    while (c > 0 && !atomic_compare_exchange_weak(&h->readers_connected, &c, c - 1)) {
    }
  }
}

/* Reaper's tail, once owner is REAPING: vacate and hand the slot back. */
static void slot_free(const shmx__seg *s, uint32_t slot) {
  slot_vacate(s, slot);
  atomic_store_explicit(&shmx__rdr(s, slot)->owner, 0, memory_order_release);
}

/* The reader's own release does not take the reaper's REAPING marker: a
 * reader may die anywhere in here, and then owner must still be its id so
 * the producer reaps the slot as usual. */
void shmx__reg_release(const shmx__seg *s, uint32_t slot, uint64_t id,
                       uint32_t k) {
  struct shmx__reader *r = shmx__rdr(s, slot);
  if (atomic_load(&r->owner) == id) {
    slot_vacate(s, slot);
    uint64_t expect = id; /* fails harmlessly if the reaper got here first */
    atomic_compare_exchange_strong(&r->owner, &expect, 0);
  }
  shmx__byte_unlock(s->lock_fd, shmx__reg_lock_off(s, slot, k));
}

int shmx__reg_alive(const shmx__seg *s, uint32_t slot) {
  struct shmx__reader *r = shmx__rdr(s, slot);
  /* Until the claimer records its identity (state CLAIMING/ACTIVE) the
   * slot's lock_byte is the previous owner's. A claimer holds one of the
   * slot's lock bytes from before its CAS on owner until it lets go, so if
   * owner is set and no byte of the slot is locked, it died between its CAS
   * and its state store (a few instructions, but a SIGKILL lands there too);
   * any byte held (by it, or by a reaped reader that lives on): unknown. */
  if (atomic_load_explicit(&r->state, memory_order_acquire) == SHMX__RD_FREE) {
    if (s->lock_fd < 0 || atomic_load(&r->owner) == 0) return -1;
    for (uint32_t k = 0; k < SHMX__LOCK_BYTES; k++)
      if (shmx__byte_locked(s->lock_fd, shmx__reg_lock_off(s, slot, k)) != 0) return -1;
    return 0;
  }
  if (s->lock_fd >= 0) {
    uint32_t k = atomic_load(&r->lock_byte);
    if (k >= SHMX__LOCK_BYTES) return -1; /* scribbled */
    int held = shmx__byte_locked(s->lock_fd, shmx__reg_lock_off(s, slot, k));
    if (held >= 0) return held;
  }
  /* A monitor (no lock file): the pid, told apart from a reused one by its
   * start time. Only reported, never acted on: the producer reaps by locks.
   * A reader in another pid namespace reads as unknown or gone here. */
  int32_t pid = SHMX__LD(r->pid);
  int alive = shmx__pid_alive(pid);
  if (alive != 1) return alive;
  uint64_t want = SHMX__LD(r->pid_start), now = shmx__pid_start(pid);
  if (want == 0 || now == 0) return -1;
  return want == now;
}

int shmx__reg_reap_stuck(const shmx__seg *s, uint32_t slot) {
  struct shmx__reader *r = shmx__rdr(s, slot);
  if (atomic_load(&r->owner) != SHMX__REAPING) return 0;
  testcase(1);
  slot_free(s, slot);
  return 1;
}

int shmx__reg_reap(const shmx__seg *s, uint32_t slot, uint64_t id) {
  struct shmx__reader *r = shmx__rdr(s, slot);
  uint64_t expect = id;
  if (id == 0 || !atomic_compare_exchange_strong(&r->owner, &expect, SHMX__REAPING))
    return 0;
  slot_free(s, slot);
  return 1;
}

/*
 * owner.h -- who owns a channel's name, and the evidence that a producer or
 * a reader is alive (docs/design.md, "Names, ownership and liveness").
 *
 * Each channel NAME has two files in the shared-memory directory:
 *   shmx.NAME         the segment, with the mode the producer asked for;
 *   .shmx.NAME.lock   its lock file: owner read-write plus the segment's
 *                     WRITE bits only (0660 -> 0620, 0640/0644 -> 0600), so
 *                     exactly the users who may attach as readers can open
 *                     it, and only for writing; monitors cannot open it.
 * Evidence is an open-file-description write lock on one byte, which dies
 * with its process and needs a descriptor open for writing:
 *   segment byte SHMX__OWNER_LOCK_OFF   the producer, for the session's life;
 *   lock file byte SHMX__NAME_LOCK_OFF  the name lock: create (probe, unlink
 *                     a stale segment, create the new one, take the producer
 *                     lock), remove and destroy's unlink run under it, so they
 *                     are atomic with respect to each other;
 *   lock file bytes shmx__reg_lock_off() a reader slot's lock identities.
 */
#ifndef SHMX_OWNER_H
#define SHMX_OWNER_H

#include "internal.h"

#ifdef _WIN32
/* Windows byte locks are mandatory (a locked byte cannot be read through
 * another handle): the producer's byte lies far past any segment's data. */
#define SHMX__OWNER_LOCK_OFF (UINT64_C(1) << 62)
#else
#define SHMX__OWNER_LOCK_OFF 0u /* segment byte: the producer's lock */
#endif
#define SHMX__NAME_LOCK_OFF 0u  /* lock file byte: the name lock */
#define SHMX__LOCKFILE_SUFFIX ".lock"

/* File names (in the shared-memory directory) of channel name's segment
 * and lock file. name must be valid (shmx_name_check). */
void shmx__seg_file(const char *name, char *buf, size_t cap);
void shmx__lock_file(const char *name, char *buf, size_t cap);
#define SHMX__FILE_CAP (SHMX_NAME_MAX + 32)

/* Mode of the lock file for a segment of mode m. */
static inline unsigned shmx__lock_mode(unsigned m) { return 0600u | (m & 0022u); }

typedef struct shmx__namelock {
  int fd;         /* the lock file, open read-write; -1 if none */
  shmx__fid id;   /* its identity */
} shmx__namelock;

/* Take the name lock of `name`: open (create=1: or create, mode 0600) the
 * lock file, which must be a regular file owned by uid (root gives one it
 * has just created to uid), write-lock its name byte, and make sure the
 * path still names the locked file (a remover may have unlinked it). Waits
 * up to ~5 s for a holder. Errors: SHMX_E_NOCHANNEL (no lock file and
 * create=0), SHMX_E_EACCES (owned by another user), SHMX_E_CORRUPT (not a
 * regular file), SHMX_E_TIMEOUT (held all that time), -errno. */
int shmx__name_lock(const char *name, uint32_t uid, int create,
                    shmx__namelock *nl);
/* Take the name byte again on an open lock file (destroy). 1 if the path
 * still names it, 0 if it no longer does (then the byte is not taken), or
 * an error. */
int shmx__name_relock(const char *name, shmx__namelock *nl);
/* Release the name byte; the descriptor stays open. */
void shmx__name_release(shmx__namelock *nl);
void shmx__name_close(shmx__namelock *nl);

/* 1 if a live producer holds seg_fd's segment, 0 if not, -errno if it
 * cannot be told. Works through any descriptor of the segment, read-only
 * included, but not the producer's own (its own lock does not conflict). */
int shmx__owner_alive_fd(int seg_fd);

#endif /* SHMX_OWNER_H */

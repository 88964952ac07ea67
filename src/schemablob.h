/*
 * schemablob.h -- a channel's schema as one byte string (schemablob.c):
 * the bridge's SCHEMA message body and a recording's MCAP Schema data
 * (encoding "shmx.schema/1"; docs/format.md, "Schema blob").
 */
#ifndef SHMX_SCHEMABLOB_H
#define SHMX_SCHEMABLOB_H

#include <stddef.h>
#include <stdint.h>

#include "shmx.h"

#define SHMX__SB_GEOM 48
#define SHMX__SB_SPEC 24
#define SHMX__SB_MAX_STREAMS 1024 /* streams a decoder accepts */
#define SHMX__SB_MAX_USER 1024    /* user records a decoder accepts */

/* A decoded schema. Strings and extra bytes point into the blob. */
typedef struct shmx__sb {
  char name[SHMX_NAME_MAX + 1]; /* origin channel name (valid) */
  uint32_t slots, reader_slots, flags;
  uint64_t static_cap, frame_cap, control_per_reader;
  uint32_t n_streams, n_user;
  shmx_stream_spec *streams; /* n_streams, malloc'd (names: see names) */
  char *names;               /* NUL-terminated names, malloc'd */
  const uint8_t **user;      /* n_user pointers into the blob, malloc'd */
  uint32_t *user_len;
} shmx__sb;

/* Encode a schema; *out is malloc'd (*len bytes). The caller passes the
 * geometry and the record lists. */
int shmx__sb_encode(const char *name, const shmx_header_info *geom,
                    const shmx_stream_info *st, int n_streams,
                    const uint8_t *const *user, const uint32_t *user_len, int n_user,
                    uint8_t **out, size_t *len);
/* Encode the schema a reader holds now (geometry, streams, user records);
 * *n_streams and *n_user (if non-NULL) get the record counts encoded. */
int shmx__sb_encode_client(shmx_client *cl, uint8_t **out, size_t *len, int *n_streams,
                           int *n_user);
/* Decode (and check) a blob; free with shmx__sb_free. Each spec passes the
 * same checks as shmx_server_create's, so a decoded schema is one a
 * producer accepts. Errors: SHMX_E_CORRUPT, -ENOMEM. */
int shmx__sb_decode(const uint8_t *p, size_t n, shmx__sb *s);
void shmx__sb_free(shmx__sb *s);
/* Create channel `name` (NULL: the schema's own name) from s, with its
 * user records; slots 0 = the schema's, mode 0 = 0600. */
int shmx__sb_create(const char *name, const shmx__sb *s, uint32_t slots, uint32_t mode,
                    shmx_server **out);
/* 1 if s has every stream and user record of old (same specs, same order)
 * and the same name and geometry: a producer can grow old into s in place
 * with shmx__sb_grow. */
int shmx__sb_extends(const shmx__sb *old, const shmx__sb *s);
int shmx__sb_grow(shmx_server *srv, const shmx__sb *old, const shmx__sb *s);
/* Bytes a channel of this geometry takes (slots x frame cap + control
 * rings + schema area); UINT64_MAX on overflow. */
uint64_t shmx__sb_bytes(const shmx__sb *s);

#endif /* SHMX_SCHEMABLOB_H */

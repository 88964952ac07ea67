/*
 * schema.h -- the static directory: stream specs and user records, encoded
 * as 8-byte aligned TLV records in the segment's schema area.
 */
#ifndef SHMX_SCHEMA_H
#define SHMX_SCHEMA_H

#include "format.h"
#include "internal.h"

typedef struct shmx__user_rec {
  const uint8_t *data;
  uint32_t len;
} shmx__user_rec;

/* A parsed schema; everything points into memory the schema owns. */
typedef struct shmx__schema {
  uint8_t *buf;              /* private copy of the records + names */
  shmx_stream_info *streams;
  int n;
  shmx__user_rec *user;
  int n_user;
  uint64_t used;             /* record bytes parsed */
  uint32_t gen;
} shmx__schema;

/* Check a spec a producer wants to declare (names, sizes, reserved names). */
int shmx__spec_check(const shmx_stream_spec *spec);
/* Encoded size of a spec record (header + payload + padding). */
uint64_t shmx__spec_record_size(const shmx_stream_spec *spec);
/* Encode one record of `type` with payload parts into dst (room bytes);
 * returns bytes written or 0 if it does not fit. */
uint64_t shmx__record_encode(uint8_t *dst, uint64_t room, uint32_t type,
                             const void *a, uint32_t alen, const void *b,
                             uint32_t blen, const void *c, uint32_t clen);
/* Parse `used` bytes of records copied from area (cap = area size). The
 * bytes are copied first, so concurrent writers cannot change what is
 * validated. SHMX_E_CORRUPT on malformed records. */
int shmx__schema_parse(const uint8_t *area, uint64_t used, uint64_t cap,
                       uint32_t gen, shmx__schema *out);
void shmx__schema_free(shmx__schema *s);
/* Index of stream id, or -1. */
int shmx__schema_find(const shmx__schema *s, uint32_t id);

#endif

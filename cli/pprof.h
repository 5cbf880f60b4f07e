/*
 * pprof.h — profile.proto (github.com/google/pprof/proto/profile.proto)
 * encoding of a symbolized profile, written by hand, and gzip output.
 *
 * Design: the protobuf wire format needs only varints (wire type 0) and
 * length-delimited fields (wire type 2); a nested message is encoded into
 * its own buffer and then appended as bytes. The profile has Go's heap
 * sample types in Go's order (alloc_objects/count, alloc_space/bytes,
 * inuse_objects/count, inuse_space/bytes; default inuse_space), period type
 * space/bytes with the sampling rate as period, one Mapping per recorded
 * segment (with its build id), one Location per distinct frame address
 * (address = return address - 1, inside the call; inlined frames as several
 * Lines, innermost first, as pprof wants), one Function per (name, file),
 * and one Sample per bucket (labels: "tid", and "thread" when named).
 */
#ifndef AP_CLI_PPROF_H
#define AP_CLI_PPROF_H

#include <stdint.h>

#include "profile.h"
#include "util.h"

/* Low-level encoders (exposed for the unit tests). */
void ap_pb_varint(ap_buf *b, uint64_t v);
void ap_pb_uint(ap_buf *b, int field, uint64_t v); /* omitted when 0 */
void ap_pb_bytes(ap_buf *b, int field, const void *data, size_t n);
void ap_pb_packed(ap_buf *b, int field, const uint64_t *v, size_t n);

/* Encodes a symbolized profile (after ap_sym_profile). */
void ap_pprof_encode(const ap_profile *p, ap_buf *out);

/* Writes data gzip-compressed to path ("-" = stdout). Returns 0, or -1 with
 * errno set. */
int ap_gzip_write(const char *path, const void *data, size_t n);

#endif

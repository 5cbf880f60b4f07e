/*
 * frames.h — what a stack's frame addresses may hold besides return
 * addresses (schema/schema.sql, table stack; docs/schema.md). Shared by the
 * writer (profiler/) and the reader (cli/).
 */
#ifndef AP_SCHEMA_FRAMES_H
#define AP_SCHEMA_FRAMES_H

/* The outermost frame of a stack cut at the depth limit (ALLOCPROF_DEPTH):
 * no code lives at address 1, so it can mean nothing else. Reports show it
 * as the frame "[truncated]", the root under which every cut stack hangs,
 * so a cut stack is never taken for one that starts where it was cut. */
#define AP_FRAME_TRUNCATED 1u

#endif

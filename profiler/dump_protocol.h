/*
 * dump_protocol.h — how `allocprof dump PID` (cli/cmd_dump.c) asks a
 * profiled process for a dump (profiler/dump.c). One place for both sides.
 *
 * The CLI sends the dump signal (ALLOCPROF_SIGNAL in the target's
 * environment, default SIGRTMIN+6) with sigqueue-style data: si_code
 * SI_QUEUE and si_value.sival_int AP_DUMP_TOKEN, so the library can tell a
 * request from the same signal sent for the program's own use. Once the
 * library's dump thread exists (named AP_DUMP_THREAD_NAME in
 * /proc/PID/task/TID/comm), the signal goes to that thread alone
 * (rt_tgsigqueueinfo), so no thread of the program is interrupted; before,
 * it goes to the process, and whichever thread takes it starts the dump
 * thread. The request is answered when a dump with reason 'request'
 * appears in the profile.
 */
#ifndef AP_DUMP_PROTOCOL_H
#define AP_DUMP_PROTOCOL_H

#define AP_DUMP_TOKEN 0x61706470 /* "apdp" */
#define AP_DUMP_THREAD_NAME "allocprof-dump"
#define AP_DUMP_SIGNAL_DEFAULT (SIGRTMIN + 6)

#endif

// Small libc helpers that Swift 6 cannot call cleanly: C's stdio streams are global mutable state, prctl is
// variadic, and glibc declares posix_spawn_file_actions_addclosefrom_np only under _GNU_SOURCE.
#ifndef TURNKEEPER_SYSTEM_SHIMS_H
#define TURNKEEPER_SYSTEM_SHIMS_H

#include <spawn.h>

// Makes stdout line-buffered, so log lines reach a pipe or the journal as they are printed.
void turnkeeper_stdout_line_buffered(void);

// Marks the process non-dumpable: no core file, and no other process of the same user may read its memory
// or environment through /proc or ptrace. Returns 0, or -1 with errno set.
int turnkeeper_make_undumpable(void);

// Adds "close every descriptor from `lowest` up" to a spawn's file actions, so a child keeps only the
// descriptors below it. Returns 0 or an error number, as posix_spawn_file_actions_* do.
int turnkeeper_spawn_close_from(posix_spawn_file_actions_t *actions, int lowest);

// The Swift runtime's hook for jobs on the global concurrent executor (nil: Dispatch). A static-stdlib binary
// keeps the symbol local, so dlsym cannot find it, but a reference linked in can. NULL when the runtime has
// no such symbol (the reference is weak).
void **turnkeeper_global_enqueue_hook(void);

#endif

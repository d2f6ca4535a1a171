// Small libc helpers that Swift 6 cannot call cleanly: C's stdio streams are global mutable state.
#ifndef TURNKEEPER_SYSTEM_SHIMS_H
#define TURNKEEPER_SYSTEM_SHIMS_H

// Makes stdout line-buffered, so log lines reach a pipe or the journal as they are printed.
void turnkeeper_stdout_line_buffered(void);

#endif

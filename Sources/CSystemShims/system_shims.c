// Must come before any system header: it makes glibc declare posix_spawn_file_actions_addclosefrom_np.
#define _GNU_SOURCE
#include "system_shims.h"

#include <spawn.h>
#include <stdio.h>
#include <sys/prctl.h>

void turnkeeper_stdout_line_buffered(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
}

int turnkeeper_make_undumpable(void) {
    return prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

int turnkeeper_spawn_close_from(posix_spawn_file_actions_t *actions, int lowest) {
    // glibc 2.34 and later: close_range(2) in the child, or a walk of /proc/self/fd where that is refused.
    return posix_spawn_file_actions_addclosefrom_np(actions, lowest);
}

// Weak: a runtime without the hook (a later Swift may drop it) still links, and jobs stay on Dispatch.
extern void *swift_task_enqueueGlobal_hook __attribute__((weak));

void **turnkeeper_global_enqueue_hook(void) {
    // NULL when the runtime lacks the symbol: that is what a weak reference resolves to.
    return &swift_task_enqueueGlobal_hook;
}

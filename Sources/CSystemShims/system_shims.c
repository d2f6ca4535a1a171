#include "system_shims.h"

#include <stdio.h>

void turnkeeper_stdout_line_buffered(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
}

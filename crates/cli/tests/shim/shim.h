/* What the shim's test programs share. */
#include <stdio.h>

/* Says what failed (with errno's text) and gives the exit status of a failure. */
static int fail(const char *what) {
    perror(what);
    return 1;
}

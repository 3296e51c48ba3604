/* Issue #22 (second review): duplicated_udp.c built with -D_FILE_OFFSET_BITS=64, where
 * glibc's header makes fcntl the symbol fcntl64: its duplicates are followed too. */
#define _FILE_OFFSET_BITS 64
#include "duplicated_udp.c"

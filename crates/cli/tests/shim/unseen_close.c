/* Issue #22 (review): the program closes the shim's control connection by a way no hook
 * sees (a raw syscall instruction, as io_uring or a libc-internal close would) and opens a
 * file that gets the same number; when it then closes its UDP socket, the shim must not
 * close that file, which is the program's now. Before, the shim closed the number it still
 * thought its own, and the program's file was gone. argv: echo port. Prints "ok". */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "shim.h"

#if !defined(__x86_64__)
#error "this test closes a descriptor with the x86-64 syscall instruction"
#endif

/* The lowest open descriptor at or above `from` that `seen` does not mark. */
static int new_descriptor(const char *seen, int from) {
    for (int fd = from; fd < 1024; fd++)
        if (!seen[fd] && fcntl(fd, F_GETFD) >= 0)
            return fd;
    return -1;
}

int main(int argc, char **argv) {
    if (argc != 2)
        return 2;
    struct sockaddr_in echo = ipv4("127.0.0.1", argv[1]);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    char seen[1024] = {0};
    for (int other = 0; other < 1024; other++)
        seen[other] = fcntl(other, F_GETFD) >= 0;
    if (sendto(fd, "one", 3, 0, (struct sockaddr *)&echo, sizeof echo) != 3)
        return fail("sendto");
    /* The association's control connection: the one descriptor the send opened. */
    int control = new_descriptor(seen, 3);
    if (control < 0) {
        fputs("no control connection appeared\n", stderr);
        return 1;
    }
    if (unseen_close(control) != 0)
        return fail("raw close");
    int file = open("/dev/null", O_RDONLY);
    if (file != control) {
        fprintf(stderr, "the file got %d, not the control's %d\n", file, control);
        return 1;
    }
    if (close(fd) != 0)
        return fail("close");
    if (fcntl(file, F_GETFD) < 0) {
        fprintf(stderr, "the program's file %d was closed by the shim\n", file);
        return 1;
    }
    puts("ok");
    return 0;
}

/* Issue #22 (second review): a second connect on a socket already connected through the
 * proxy fails with EISCONN, as the kernel's does, and leaves the connection alone: it still
 * carries data. Before, the shim's cleanup of the failed attempt cut the connection.
 * argv: echo port. Prints "ok". */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "shim.h"

int main(int argc, char **argv) {
    if (argc != 2)
        return 2;
    struct sockaddr_in echo = ipv4("127.0.0.1", argv[1]);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(fd, (struct sockaddr *)&echo, sizeof echo) != 0)
        return fail("connect");
    errno = 0;
    if (connect(fd, (struct sockaddr *)&echo, sizeof echo) != -1 || errno != EISCONN) {
        fprintf(stderr, "second connect: errno %d\n", errno);
        return 1;
    }
    if (write(fd, "ping", 4) != 4)
        return fail("write");
    if (echo_of(fd, "ping", "after the second connect"))
        return 1;
    puts("ok");
    return 0;
}

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
    struct sockaddr_in echo = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[1]))};
    inet_pton(AF_INET, "127.0.0.1", &echo.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(fd, (struct sockaddr *)&echo, sizeof echo) != 0)
        return fail("connect");
    errno = 0;
    if (connect(fd, (struct sockaddr *)&echo, sizeof echo) != -1 || errno != EISCONN) {
        fprintf(stderr, "second connect: errno %d\n", errno);
        return 1;
    }
    char buffer[5] = {0};
    if (write(fd, "ping", 4) != 4)
        return fail("write");
    size_t got = 0;
    while (got < 4) {
        ssize_t n = read(fd, buffer + got, 4 - got);
        if (n <= 0) {
            fprintf(stderr, "the connection was cut (%zd)\n", n);
            return 1;
        }
        got += (size_t)n;
    }
    if (memcmp(buffer, "ping", 4) != 0)
        return 1;
    puts("ok");
    return 0;
}

/* Issue #22 (Build: never a half-handshaked socket): a connect the proxy refuses (the target
 * port is closed) fails with ECONNREFUSED and leaves the socket unconnected, as the kernel's
 * refused connect does: getpeername says ENOTCONN, and the same socket then connects
 * through the proxy to the echo and carries data. Before, the socket stayed connected to the
 * proxy, mid-handshake (getpeername named the proxy, the second connect said EISCONN).
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
    /* A port nobody listens on: bound once, then let go. */
    struct sockaddr_in closed = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &closed.sin_addr);
    socklen_t length = sizeof closed;
    int probe = socket(AF_INET, SOCK_STREAM, 0);
    if (bind(probe, (struct sockaddr *)&closed, sizeof closed) != 0 ||
        getsockname(probe, (struct sockaddr *)&closed, &length) != 0)
        return fail("probe");
    close(probe);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    errno = 0;
    if (connect(fd, (struct sockaddr *)&closed, sizeof closed) != -1 || errno != ECONNREFUSED) {
        fprintf(stderr, "connect to a closed port: errno %d\n", errno);
        return 1;
    }
    struct sockaddr_in peer;
    length = sizeof peer;
    errno = 0;
    if (getpeername(fd, (struct sockaddr *)&peer, &length) != -1 || errno != ENOTCONN) {
        fprintf(stderr, "getpeername after the refusal: errno %d, port %d\n", errno, ntohs(peer.sin_port));
        return 1;
    }
    struct sockaddr_in echo = ipv4("127.0.0.1", argv[1]);
    if (connect(fd, (struct sockaddr *)&echo, sizeof echo) != 0)
        return fail("connect again");
    char buffer[5] = {0};
    if (write(fd, "ping", 4) != 4 || read(fd, buffer, 4) != 4 || memcmp(buffer, "ping", 4) != 0) {
        fprintf(stderr, "echoed %s\n", buffer);
        return 1;
    }
    puts("ok");
    return 0;
}

/* Issue #22 (review): a UDP socket connected through the relay, then disconnected
 * (connect with AF_UNSPEC): its sends without an address fail as the kernel's do
 * (EDESTADDRREQ) and getpeername says it is not connected — before, the shim kept sending
 * to the old destination and naming it. argv: echo port. Prints "ok". */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
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
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (connect(fd, (struct sockaddr *)&echo, sizeof echo) != 0)
        return fail("connect");
    char buffer[8] = {0};
    if (send(fd, "one", 3, 0) != 3)
        return fail("send");
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 5000) != 1 || recv(fd, buffer, sizeof buffer, 0) != 3)
        return fail("echo");
    struct sockaddr unspecified = {.sa_family = AF_UNSPEC};
    if (connect(fd, &unspecified, sizeof unspecified) != 0)
        return fail("disconnect");
    errno = 0;
    if (send(fd, "two", 3, 0) != -1 || errno != EDESTADDRREQ) {
        fprintf(stderr, "send after disconnecting: errno %d\n", errno);
        return 1;
    }
    struct sockaddr_in peer;
    socklen_t length = sizeof peer;
    errno = 0;
    if (getpeername(fd, (struct sockaddr *)&peer, &length) != -1 || errno != ENOTCONN) {
        fprintf(stderr, "getpeername after disconnecting: errno %d\n", errno);
        return 1;
    }
    puts("ok");
    return 0;
}

/* Issue #22 (Build): a TCP connection through the proxy, duplicated with
 * fcntl(F_DUPFD_CLOEXEC): getpeername on the duplicate names the target the program asked
 * for, as on the original, not the proxy. argv: echo port. Prints "ok". */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "shim.h"

int main(int argc, char **argv) {
    if (argc != 2)
        return 2;
    struct sockaddr_in echo = ipv4("127.0.0.1", argv[1]);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(fd, (struct sockaddr *)&echo, sizeof echo) != 0) {
        perror("connect");
        return 1;
    }
    int copy = fcntl(fd, F_DUPFD_CLOEXEC, 100);
    if (copy < 100) {
        perror("fcntl");
        return 1;
    }
    struct sockaddr_in peer;
    socklen_t length = sizeof peer;
    if (getpeername(copy, (struct sockaddr *)&peer, &length) != 0) {
        perror("getpeername");
        return 1;
    }
    if (peer.sin_port != echo.sin_port) {
        fprintf(stderr, "the duplicate's peer is port %d, not the target's\n", ntohs(peer.sin_port));
        return 1;
    }
    puts("ok");
    return 0;
}

/* Issue #22 (second review): a program built as Debian builds its packages
 * (_FORTIFY_SOURCE=2), whose recv, recvfrom and read become __recv_chk, __recvfrom_chk and
 * __read_chk, and one that uses writev and readv, on a UDP socket connected through the
 * relay: every datagram comes back whole, without the relay's SOCKS header. Before, those
 * calls went around the shim and handed the program the header. argv: echo port, buffer
 * room (64: a run-time length, so that the checked functions are called). Prints "ok". */
#undef _FORTIFY_SOURCE
#define _FORTIFY_SOURCE 2
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "shim.h"

static int wait_readable(int fd) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, 5000) == 1;
}

static int check(const char *how, ssize_t n, const char *got, const char *want) {
    if (n != (ssize_t)strlen(want) || memcmp(got, want, strlen(want)) != 0) {
        fprintf(stderr, "%s: %zd bytes\n", how, n);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 3)
        return 2;
    struct sockaddr_in echo = ipv4("127.0.0.1", argv[1]);
    size_t room = (size_t)atoi(argv[2]);
    char buffer[64];
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (connect(fd, (struct sockaddr *)&echo, sizeof echo) != 0)
        return fail("connect");
    send(fd, "one", 3, 0);
    if (!wait_readable(fd) || check("recv", recv(fd, buffer, room, 0), buffer, "one"))
        return 1;
    send(fd, "two", 3, 0);
    struct sockaddr_in from;
    socklen_t from_length = sizeof from;
    if (!wait_readable(fd) ||
        check("recvfrom", recvfrom(fd, buffer, room, 0, (struct sockaddr *)&from, &from_length), buffer, "two"))
        return 1;
    send(fd, "three", 5, 0);
    if (!wait_readable(fd) || check("read", read(fd, buffer, room), buffer, "three"))
        return 1;
    struct iovec out[2] = {{.iov_base = "fo", .iov_len = 2}, {.iov_base = "ur", .iov_len = 2}};
    if (writev(fd, out, 2) != 4)
        return fail("writev");
    struct iovec in = {.iov_base = buffer, .iov_len = room};
    if (!wait_readable(fd) || check("readv", readv(fd, &in, 1), buffer, "four"))
        return 1;
    puts("ok");
    return 0;
}

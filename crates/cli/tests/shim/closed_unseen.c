/* Issue #22 (second review): a UDP socket with an association is closed where the close
 * hook does not see it — fclose of an fdopen'ed stream (libc closes inside), then a raw
 * close system call — and the number comes back as a TCP connection through the proxy:
 * its bytes are its own, not wrapped in a SOCKS UDP header or dropped as the relay's, and
 * before it connects it has no peer (not the old socket's).
 * Before, write() on the new connection went out as a datagram for the old association.
 * argv: UDP echo port, TCP echo port. Prints "ok". */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
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

/* A UDP socket connected through the relay, one echo seen. */
static int associated(struct sockaddr_in *udp_echo) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (connect(fd, (struct sockaddr *)udp_echo, sizeof *udp_echo) != 0 || send(fd, "u", 1, 0) != 1)
        return -1;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    char byte;
    if (poll(&p, 1, 5000) != 1 || recv(fd, &byte, 1, 0) != 1)
        return -1;
    return fd;
}

/* A TCP connection through the proxy at number `expected`; its bytes come back as sent. */
static int stream_is_its_own(struct sockaddr_in *tcp_echo, int expected, const char *how) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd != expected) {
        fprintf(stderr, "%s: the stream got %d, not %d\n", how, fd, expected);
        return 1;
    }
    /* Not connected yet: it has no peer (not the old socket's). */
    struct sockaddr_in peer;
    socklen_t length = sizeof peer;
    errno = 0;
    if (getpeername(fd, (struct sockaddr *)&peer, &length) != -1 || errno != ENOTCONN) {
        fprintf(stderr, "%s: getpeername of a new socket: errno %d\n", how, errno);
        return 1;
    }
    if (connect(fd, (struct sockaddr *)tcp_echo, sizeof *tcp_echo) != 0)
        return fail("connect");
    if (write(fd, "stream", 6) != 6)
        return fail("write");
    if (echo_of(fd, "stream", how))
        return 1;
    close(fd);
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 3)
        return 2;
    struct sockaddr_in udp_echo = ipv4("127.0.0.1", argv[1]);
    struct sockaddr_in tcp_echo = ipv4("127.0.0.1", argv[2]);
    int fd = associated(&udp_echo);
    if (fd < 0)
        return fail("udp");
    FILE *stream = fdopen(fd, "r+");
    if (stream == NULL || fclose(stream) != 0)
        return fail("fdopen/fclose");
    if (stream_is_its_own(&tcp_echo, fd, "after fclose"))
        return 1;
    fd = associated(&udp_echo);
    if (fd < 0)
        return fail("udp again");
    if (unseen_close(fd) != 0)
        return fail("raw close");
    if (stream_is_its_own(&tcp_echo, fd, "after a raw close"))
        return 1;
    puts("ok");
    return 0;
}

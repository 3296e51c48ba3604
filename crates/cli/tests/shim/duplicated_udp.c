/* Issue #22 (review): duplicates of a UDP socket connected through the relay (dup, dup2,
 * fcntl F_DUPFD, and dup through syscall) are the same socket: each one's datagrams reach
 * the echo through the one association, also after the original is closed; once the last
 * is closed the shim's control connection goes too (the process has the descriptors it
 * started with). Before, a duplicate sent its datagrams to the relay without a SOCKS header
 * and got no answer. argv: echo port. Prints "ok". */
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "shim.h"

/* One datagram out on `fd`, its echo back on `fd`. */
static int echoes(int fd, const char *word) {
    char buffer[16] = {0};
    size_t length = strlen(word);
    if (send(fd, word, length, 0) != (ssize_t)length)
        return fail("send");
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 5000) != 1) {
        fprintf(stderr, "no echo of %s on descriptor %d\n", word, fd);
        return 1;
    }
    if (recv(fd, buffer, sizeof buffer, 0) != (ssize_t)length || memcmp(buffer, word, length) != 0) {
        fprintf(stderr, "descriptor %d: echoed %s for %s\n", fd, buffer, word);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 2)
        return 2;
    struct sockaddr_in echo = ipv4("127.0.0.1", argv[1]);
    int before = open_descriptors();
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (connect(fd, (struct sockaddr *)&echo, sizeof echo) != 0)
        return fail("connect");
    if (echoes(fd, "original"))
        return 1;
    int copies[4] = {dup(fd), dup2(fd, 700), fcntl(fd, F_DUPFD_CLOEXEC, 800), (int)syscall(SYS_dup, fd)};
    for (int i = 0; i < 4; i++) {
        if (copies[i] < 0)
            return fail("duplicate");
        if (echoes(copies[i], "copy"))
            return 1;
    }
    close(fd);
    for (int i = 0; i < 4; i++) {
        if (echoes(copies[i], "after"))
            return 1;
        close(copies[i]);
    }
    int after = open_descriptors();
    if (after != before) {
        fprintf(stderr, "%d descriptors open before, %d after closing every copy\n", before, after);
        return 1;
    }
    puts("ok");
    return 0;
}

/* Issue #22, finding 2: a daemon-style program closes every descriptor from 3 to 1023 but
 * its UDP socket (the shim's control connection among them), opens files that take those
 * numbers, dup2s over others, and sends again. Its datagrams must still reach the echo, and
 * the shim must never close or use a descriptor that is now the program's. argv: echo port.
 * Prints "ok". */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shim.h"

static int round_trip(int fd, struct sockaddr_in *echo, const char *text) {
    /* A connected socket (echo NULL) writes; the other sends to the echo. */
    ssize_t sent = echo ? sendto(fd, text, strlen(text), 0, (struct sockaddr *)echo, sizeof *echo)
                        : write(fd, text, strlen(text));
    if (sent != (ssize_t)strlen(text))
        return fail("send");
    char buffer[32] = {0};
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 5000) != 1) {
        fprintf(stderr, "no echo for %s\n", text);
        return 1;
    }
    if (recv(fd, buffer, sizeof buffer, 0) != (ssize_t)strlen(text) || strcmp(buffer, text) != 0)
        return fail("recv");
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 2)
        return 2;
    alarm(20);
    struct sockaddr_in echo = ipv4("127.0.0.1", argv[1]);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (round_trip(fd, &echo, "first"))
        return 1;
    /* And a connected one: its association must come back, connected to the new relay. */
    int connected = socket(AF_INET, SOCK_DGRAM, 0);
    if (connect(connected, (struct sockaddr *)&echo, sizeof echo) != 0)
        return fail("connect");
    if (round_trip(connected, NULL, "c-first"))
        return 1;
    /* Daemonize: close everything but the sockets (the shim's control connections too). */
    for (int other = 3; other < 1024; other++)
        if (other != fd && other != connected)
            close(other);
    /* Files take the freed numbers. */
    int files[8];
    for (int i = 0; i < 8; i++)
        if ((files[i] = open("/dev/null", O_RDONLY)) < 0)
            return fail("open");
    if (round_trip(fd, &echo, "second") || round_trip(connected, NULL, "c-second"))
        return 1;
    /* dup2 over every number above the files: the new control connection among them. */
    for (int other = files[7] + 1; other < files[7] + 16; other++)
        if (other != fd && other != connected)
            dup2(files[0], other);
    if (round_trip(fd, &echo, "third"))
        return 1;
    close_range(files[7] + 16, 1023, 0);
    if (round_trip(fd, &echo, "fourth"))
        return 1;
    /* closefrom, as OpenSSH and sudo close (glibc's does not go through close_range). */
    closefrom(files[7] + 16);
    if (round_trip(fd, &echo, "fifth"))
        return 1;
    close(fd);
    /* Every file is still open: the shim closed none of them with the socket. */
    for (int i = 0; i < 8; i++) {
        struct stat status;
        if (fstat(files[i], &status) != 0) {
            fprintf(stderr, "file %d (descriptor %d) was closed\n", i, files[i]);
            return 1;
        }
    }
    for (int other = files[7] + 1; other < files[7] + 16; other++) {
        struct stat status;
        if (other != fd && other != connected && fstat(other, &status) != 0) {
            fprintf(stderr, "descriptor %d was closed\n", other);
            return 1;
        }
    }
    puts("ok");
    return 0;
}

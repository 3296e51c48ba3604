/* Issue #22, finding 7: a redirected UDP socket gets a stranger's datagram (not from the
 * relay), then the echo's answer; recvfrom with MSG_PEEK must skip the stranger's and show
 * the answer — before, it peeked at the stranger's datagram forever. argv: echo port.
 * Prints "ok". */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "shim.h"

int main(int argc, char **argv) {
    if (argc != 2)
        return 2;
    alarm(10); /* a spinning peek ends the test, not the machine */
    struct sockaddr_in silent = {.sin_family = AF_INET, .sin_port = htons(9)};
    inet_pton(AF_INET, "127.0.0.1", &silent.sin_addr);
    struct sockaddr_in echo = silent;
    echo.sin_port = htons((unsigned short)atoi(argv[1]));

    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    /* Opens the association; nothing answers on port 9. */
    if (sendto(fd, "x", 1, 0, (struct sockaddr *)&silent, sizeof silent) != 1)
        return fail("sendto 9");
    struct sockaddr_in local;
    socklen_t length = sizeof local;
    if (getsockname(fd, (struct sockaddr *)&local, &length) != 0)
        return fail("getsockname");
    local.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    /* A stranger's datagram, sent past the shim (a raw system call). */
    int stranger = socket(AF_INET, SOCK_DGRAM, 0);
    if (syscall(SYS_sendto, stranger, "junk", 4, 0, &local, sizeof local) != 4)
        return fail("stranger");
    usleep(100 * 1000);
    if (sendto(fd, "hi", 2, 0, (struct sockaddr *)&echo, sizeof echo) != 2)
        return fail("sendto echo");
    char buffer[16] = {0};
    ssize_t n = recvfrom(fd, buffer, sizeof buffer, MSG_PEEK, NULL, NULL);
    if (n != 2 || memcmp(buffer, "hi", 2) != 0)
        return fail("peek");
    memset(buffer, 0, sizeof buffer);
    n = recv(fd, buffer, sizeof buffer, 0);
    if (n != 2 || memcmp(buffer, "hi", 2) != 0)
        return fail("recv after peek");
    puts("ok");
    return 0;
}

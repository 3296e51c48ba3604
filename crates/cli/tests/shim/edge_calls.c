/* Issue #22 (third review): calls at the kernel's edges on sockets the shim follows.
 * read() of nothing on a UDP socket through the relay returns 0 at once and leaves the
 * datagram queued (recv then gets it); sendto(MSG_FASTOPEN) with an AF_UNSPEC address on
 * a connection through the proxy fails as the kernel's does and leaves the connection
 * working (before, the shim's connect hook took AF_UNSPEC for a disconnect and cut it).
 * argv: UDP echo port, TCP echo port. Prints "ok". */
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
    if (argc != 3)
        return 2;
    struct sockaddr_in udp_echo = ipv4("127.0.0.1", argv[1]);
    struct sockaddr_in tcp_echo = ipv4("127.0.0.1", argv[2]);
    int udp = socket(AF_INET, SOCK_DGRAM, 0);
    if (connect(udp, (struct sockaddr *)&udp_echo, sizeof udp_echo) != 0 || send(udp, "kept", 4, 0) != 4)
        return fail("udp");
    struct pollfd ready = {.fd = udp, .events = POLLIN};
    if (poll(&ready, 1, 5000) != 1)
        return fail("no echo");
    char buffer[8] = {0};
    if (read(udp, buffer, 0) != 0)
        return fail("read of nothing");
    if (recv(udp, buffer, sizeof buffer, MSG_DONTWAIT) != 4 || memcmp(buffer, "kept", 4) != 0) {
        fputs("the datagram did not stay queued\n", stderr);
        return 1;
    }
    int tcp = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(tcp, (struct sockaddr *)&tcp_echo, sizeof tcp_echo) != 0)
        return fail("tcp connect");
    struct sockaddr unspecified = {.sa_family = AF_UNSPEC};
    if (sendto(tcp, "x", 1, MSG_FASTOPEN | MSG_NOSIGNAL, &unspecified, sizeof unspecified) != -1) {
        fputs("sendto(MSG_FASTOPEN, AF_UNSPEC) succeeded\n", stderr);
        return 1;
    }
    if (write(tcp, "live", 4) != 4 || read(tcp, buffer, 4) != 4 || memcmp(buffer, "live", 4) != 0) {
        fputs("the connection was cut\n", stderr);
        return 1;
    }
    puts("ok");
    return 0;
}

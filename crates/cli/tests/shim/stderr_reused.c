/* Issue #22 (third review): a daemon closes its standard error and the number comes back
 * as a data file; a connect through a proxy that is down fails, and the shim's message
 * about it is not written into the file. Before, "socksgate socksify: hop 1 …" landed in
 * the program's data. With "keep", descriptor 2 is left as it is (a pipe whose reader is
 * gone, in the test): the program must not die of SIGPIPE. argv: a file path, ["keep"].
 * Prints "ok". */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 2 && argc != 3)
        return 2;
    /* With "keep", descriptor 2 stays what it was (the test makes it a pipe nobody reads). */
    int keep = argc == 3;
    if (!keep)
        close(2);
    int data = open(argv[1], O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (!keep && data != 2) {
        printf("the file got %d, not 2\n", data);
        return 1;
    }
    struct sockaddr_in target = {.sin_family = AF_INET, .sin_port = htons(80)};
    inet_pton(AF_INET, "10.1.2.3", &target.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(fd, (struct sockaddr *)&target, sizeof target) == 0) {
        puts("connected through a proxy that is down");
        return 1;
    }
    struct stat status;
    fstat(data, &status);
    if (status.st_size != 0) {
        printf("%lld bytes in the program's file\n", (long long)status.st_size);
        return 1;
    }
    puts("ok");
    return 0;
}

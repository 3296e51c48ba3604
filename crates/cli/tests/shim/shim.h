/* What the shim's test programs share. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Says what failed (with errno's text) and gives the exit status of a failure. */
static inline int fail(const char *what) {
    perror(what);
    return 1;
}

/* An IPv4 address and a port given as the programs get it, in decimal text. */
static inline struct sockaddr_in ipv4(const char *ip, const char *port) {
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(port))};
    inet_pton(AF_INET, ip, &address.sin_addr);
    return address;
}

/* Reads the echo of `word` from `fd` (retrying reads a signal interrupts): 0 when the same
   bytes came back, else 1, said on stderr after `context`. */
static inline int echo_of(int fd, const char *word, const char *context) {
    char buffer[64] = {0};
    size_t length = strlen(word), got = 0;
    if (length > sizeof buffer)
        return 1;
    while (got < length) {
        ssize_t n = read(fd, buffer + got, length - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            fprintf(stderr, "%s: no echo (%zd)\n", context, n);
            return 1;
        }
        got += (size_t)n;
    }
    if (memcmp(buffer, word, length) != 0) {
        fprintf(stderr, "%s: echoed %.*s\n", context, (int)length, buffer);
        return 1;
    }
    return 0;
}

/* How many descriptors the process has open. */
static inline int open_descriptors(void) {
    DIR *dir = opendir("/proc/self/fd");
    int count = 0;
    for (struct dirent *entry; (entry = readdir(dir)) != NULL;)
        count += entry->d_name[0] != '.';
    closedir(dir);
    return count - 1; /* the directory's own */
}

#if defined(__x86_64__)
/* close(2) by the instruction itself: no libc function, no hook sees it. */
static inline long unseen_close(int fd) {
    long result;
    __asm__ volatile("syscall" : "=a"(result) : "a"((long)SYS_close), "D"((long)fd) : "rcx", "r11", "memory");
    return result;
}
#endif

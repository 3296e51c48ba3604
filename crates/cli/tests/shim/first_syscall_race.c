/* Issue #22, finding 4: many threads make the process's first syscall(2) calls at the
 * same moment. The shim replaces syscall; before, threads waiting for the first one to
 * find the real function waited on a futex through syscall itself, and recursed until
 * their stacks overflowed. Prints "ok" when every thread got its answer. */
#include <pthread.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

#define THREADS 64

static pthread_barrier_t start;
static long answers[THREADS];

static void *call(void *slot) {
    pthread_barrier_wait(&start);
    *(long *)slot = syscall(SYS_getpid);
    return NULL;
}

int main(void) {
    pthread_t threads[THREADS];
    pthread_barrier_init(&start, NULL, THREADS);
    for (int i = 0; i < THREADS; i++)
        pthread_create(&threads[i], NULL, call, &answers[i]);
    for (int i = 0; i < THREADS; i++)
        pthread_join(threads[i], NULL);
    for (int i = 0; i < THREADS; i++)
        if (answers[i] != getpid()) {
            fprintf(stderr, "thread %d got %ld\n", i, answers[i]);
            return 1;
        }
    puts("ok");
    return 0;
}

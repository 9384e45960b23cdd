/* The C reference poller of rows 2 and 5: what a minimal waiter costs at the same interval.
 * One blocking connect per attempt, attempts INTERVAL_MS apart start to start (an absolute
 * clock_nanosleep), then exec.
 * usage: c-poll-tcp IPV4 PORT INTERVAL_MS TIMEOUT_MS CMD [ARG]...  (exit 124 at the timeout) */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static long long ns(const struct timespec *t) { return t->tv_sec * 1000000000LL + t->tv_nsec; }

int main(int argc, char **argv) {
    if (argc < 6) return 2;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
    if (inet_pton(AF_INET, argv[1], &a.sin_addr) != 1) return 2;
    long long interval = atoll(argv[3]) * 1000000LL, timeout = atoll(argv[4]) * 1000000LL;
    struct timespec start, next;
    clock_gettime(CLOCK_MONOTONIC, &start);
    next = start;
    for (;;) {
        int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (s >= 0) {
            int ok = connect(s, (struct sockaddr *)&a, sizeof a) == 0;
            close(s);
            if (ok) {
                execv(argv[5], argv + 5);
                return 127;
            }
        }
        long long at = ns(&next) + interval;
        if (at - ns(&start) >= timeout) return 124;
        next.tv_sec = at / 1000000000LL;
        next.tv_nsec = at % 1000000000LL;
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
    }
}

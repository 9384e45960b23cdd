/* The C reference file waiter of row 3: inotify on the folder, then exec. The inotify fd is
 * left open (not close-on-exec): closing an instance that held a watch waits for an fsnotify
 * grace period of several ms, which would land in the measured exec.
 * usage: c-wait-file PATH CMD [ARG]... */
#define _GNU_SOURCE
#include <libgen.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    char dir[4096];
    strncpy(dir, argv[1], sizeof dir - 1);
    dir[sizeof dir - 1] = 0;
    int fd = inotify_init();
    if (fd < 0 || inotify_add_watch(fd, dirname(dir), IN_CREATE | IN_MOVED_TO) < 0) return 1;
    char buf[4096];
    while (access(argv[1], F_OK) != 0)
        if (read(fd, buf, sizeof buf) < 0) return 1;
    execv(argv[2], argv + 2);
    return 127;
}

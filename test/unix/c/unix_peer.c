/* The C side of ipcbox's Unix IPC interop tests: plain POSIX calls, blocking,
 * as an existing C program would make them. Prints what it did on stdout,
 * one line each, and flushes before every blocking call ("ready" lines tell
 * the test it is about to block).
 *
 *   mq-send NAME PRIO MSG [PRIO MSG]...   mq_open(O_WRONLY) an existing queue, send each
 *   mq-recv NAME COUNT                    blocking mq_receive COUNT times: "PRIO MSG"
 *   sem-post NAME                         sem_post once
 *   sem-wait NAME                         "ready", blocking sem_wait, "acquired"
 *   fifo-write PATH MSG                   blocking open(O_WRONLY), write MSG, close
 *   fifo-read PATH                        blocking open(O_RDONLY), "ready", read to EOF: "got N MSG"
 *   fd-read FD                            read fd FD to EOF: "got N MSG"
 *   fd-write FD MSG                       write MSG to fd FD
 *   map-read PATH SIZE                    mmap the file, print "sum S" of its SIZE bytes
 *   map-write PATH SIZE                   mmap the file, byte i = (i*7+3)&255, msync
 */
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static int fail(const char *what) {
  printf("error %s %s\n", what, strerror(errno));
  return 1;
}

static int read_all(int fd) {
  static char buf[1 << 20];
  size_t n = 0;
  for (;;) {
    ssize_t r = read(fd, buf + n, sizeof buf - 1 - n);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return fail("read");
    if (r == 0) break;
    n += (size_t)r;
  }
  buf[n] = 0;
  printf("got %zu %s\n", n, buf);
  return 0;
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc < 3) return 2;
  const char *cmd = argv[1];
  if (strcmp(cmd, "mq-send") == 0) {
    mqd_t q = mq_open(argv[2], O_WRONLY);
    if (q == (mqd_t)-1) return fail("mq_open");
    for (int i = 3; i + 1 < argc; i += 2) {
      if (mq_send(q, argv[i + 1], strlen(argv[i + 1]), (unsigned)atoi(argv[i])) != 0) return fail("mq_send");
    }
    printf("sent\n");
    return 0;
  }
  if (strcmp(cmd, "mq-recv") == 0) {
    mqd_t q = mq_open(argv[2], O_RDONLY);
    if (q == (mqd_t)-1) return fail("mq_open");
    struct mq_attr attr;
    mq_getattr(q, &attr);
    char *buf = malloc((size_t)attr.mq_msgsize + 1);
    int count = atoi(argv[3]);
    printf("ready\n");
    for (int i = 0; i < count; i++) {
      unsigned prio;
      ssize_t n = mq_receive(q, buf, (size_t)attr.mq_msgsize, &prio);
      if (n < 0) return fail("mq_receive");
      buf[n] = 0;
      printf("%u %s\n", prio, buf);
    }
    return 0;
  }
  if (strcmp(cmd, "sem-post") == 0 || strcmp(cmd, "sem-wait") == 0) {
    sem_t *s = sem_open(argv[2], 0);
    if (s == SEM_FAILED) return fail("sem_open");
    if (cmd[4] == 'p') {
      if (sem_post(s) != 0) return fail("sem_post");
      printf("posted\n");
      return 0;
    }
    printf("ready\n");
    while (sem_wait(s) != 0) {
      if (errno != EINTR) return fail("sem_wait");
    }
    printf("acquired\n");
    return 0;
  }
  if (strcmp(cmd, "fifo-write") == 0) {
    int fd = open(argv[2], O_WRONLY);
    if (fd < 0) return fail("open");
    if (write(fd, argv[3], strlen(argv[3])) < 0) return fail("write");
    close(fd);
    printf("written\n");
    return 0;
  }
  if (strcmp(cmd, "fifo-read") == 0) {
    int fd = open(argv[2], O_RDONLY);
    if (fd < 0) return fail("open");
    printf("ready\n");
    return read_all(fd);
  }
  if (strcmp(cmd, "fd-read") == 0) return read_all(atoi(argv[2]));
  if (strcmp(cmd, "fd-write") == 0) {
    if (write(atoi(argv[2]), argv[3], strlen(argv[3])) < 0) return fail("write");
    printf("written\n");
    return 0;
  }
  if (strcmp(cmd, "map-read") == 0 || strcmp(cmd, "map-write") == 0) {
    size_t size = (size_t)atol(argv[3]);
    int fd = open(argv[2], O_RDWR);
    if (fd < 0) return fail("open");
    unsigned char *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) return fail("mmap");
    if (cmd[4] == 'w') {
      for (size_t i = 0; i < size; i++) p[i] = (unsigned char)((i * 7 + 3) & 255);
      if (msync(p, size, MS_SYNC) != 0) return fail("msync");
      printf("mapped-written\n");
      return 0;
    }
    unsigned long sum = 0;
    for (size_t i = 0; i < size; i++) sum += p[i];
    printf("sum %lu\n", sum);
    return 0;
  }
  return 2;
}

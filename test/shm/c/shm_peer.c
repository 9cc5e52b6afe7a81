/*
 * Test peer for C interop: a plain C program using shm_open + mmap.
 *   shm_peer write NAME SIZE   create NAME (O_EXCL), size it, fill byte i with (i * 7 + 3) & 0xff
 *   shm_peer read NAME SIZE    open NAME and print the sum of the first SIZE bytes
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc != 4) return 2;
  size_t size = (size_t)strtoul(argv[3], NULL, 10);
  int writing = strcmp(argv[1], "write") == 0;
  int fd = shm_open(argv[2], writing ? O_CREAT | O_EXCL | O_RDWR : O_RDWR, 0600);
  if (fd < 0) { perror("shm_open"); return 1; }
  if (writing && ftruncate(fd, (off_t)size) != 0) { perror("ftruncate"); return 1; }
  unsigned char *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) { perror("mmap"); return 1; }
  unsigned long sum = 0;
  for (size_t i = 0; i < size; i++) {
    if (writing) p[i] = (unsigned char)((i * 7 + 3) & 0xff);
    sum += p[i];
  }
  printf("%lu\n", sum);
  munmap(p, size);
  close(fd);
  return 0;
}

/*
 * Spawn loop for bench/spawn.bench.ts: posix_spawn's a command RUNS (+WARMUP) times, one at a
 * time, with its stdout on a pipe, and prints one line per measured run:
 *
 *   <entry ns> <done ns>
 *
 * entry: the CLOCK_MONOTONIC value the command's entrypoint (spawn-probe) wrote, minus the
 * clock read just before posix_spawn ("-1" in mode "done", where the command prints nothing);
 * done: from that same clock read to waitpid() returning and the pipe at EOF. A last line
 * "# total <ns>" is the wall time of the measured runs together. A run that exits non-zero or
 * (mode entry) prints no timestamp ends the loop with status 1.
 *
 *   spawn-driver entry|done RUNS WARMUP program [args...]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static long long now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

int main(int argc, char **argv) {
  if (argc < 5 || (strcmp(argv[1], "entry") && strcmp(argv[1], "done"))) {
    fprintf(stderr, "usage: %s entry|done RUNS WARMUP program [args...]\n", argv[0]);
    return 2;
  }
  int entry = strcmp(argv[1], "entry") == 0;
  long runs = atol(argv[2]), warmup = atol(argv[3]);
  char **cmd = argv + 4;
  long long started = 0;
  for (long i = 0; i < warmup + runs; i++) {
    if (i == warmup) started = now_ns();
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) {
      perror("pipe2");
      return 1;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, p[1], 1);
    pid_t pid;
    long long t0 = now_ns();
    int rc = posix_spawnp(&pid, cmd[0], &fa, NULL, cmd, environ);
    close(p[1]);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
      fprintf(stderr, "posix_spawn %s: %s\n", cmd[0], strerror(rc));
      return 1;
    }
    char buf[256];
    size_t len = 0;
    for (;;) {
      ssize_t n = read(p[0], buf + len, sizeof buf - 1 - len);
      if (n > 0) {
        len += (size_t)n;
        if (len == sizeof buf - 1) len = 0; /* only a short timestamp is expected */
      } else if (n == 0 || errno != EINTR) {
        break;
      }
    }
    close(p[0]);
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    long long t1 = now_ns();
    buf[len] = 0;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
      fprintf(stderr, "run %ld: %s exited with %s %d\n", i, cmd[0], WIFEXITED(st) ? "status" : "signal",
              WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
      return 1;
    }
    long long e = -1;
    if (entry) {
      char *end;
      e = strtoll(buf, &end, 10);
      if (end == buf || e <= 0) {
        fprintf(stderr, "run %ld: no timestamp on stdout (got \"%.40s\")\n", i, buf);
        return 1;
      }
      e -= t0;
    }
    if (i >= warmup) printf("%lld %lld\n", e, t1 - t0);
  }
  printf("# total %lld\n", now_ns() - started);
  return 0;
}

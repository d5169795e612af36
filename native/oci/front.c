// stratoswarm-oci: the OCI runtime binary engines run. A small native front end: it
// connects to the resident Node server of its --root (src/oci/server.ts, started here on
// first use), forwards argv, cwd, its pid (the server opens the caller's stdio through
// /proc/<pid>/fd) and the environment the runtime reads, prints what the server prints,
// starts the keepers the server asks for (they must descend from this process so that
// they are reparented to the engine), and exits with the server's code. No Node start is on
// an engine's path but the first.
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "io.h"

#ifndef NODE_BINARY
#define NODE_BINARY "node"
#endif

extern char** environ;

static char gDir[PATH_MAX];  // the directory of this executable (build/Release)

struct buf {
  char* p;
  size_t n, cap;
};

static void put(struct buf* b, const void* d, size_t n) {
  if (b->n + n > b->cap) {
    b->cap = (b->n + n) * 2 + 256;
    b->p = realloc(b->p, b->cap);
    if (!b->p) _exit(111);
  }
  memcpy(b->p + b->n, d, n);
  b->n += n;
}

static void putU32(struct buf* b, uint32_t v) {
  unsigned char x[4] = {v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, (v >> 24) & 0xff};
  put(b, x, 4);
}

static void field(struct buf* b, const char* s, size_t n) {
  putU32(b, (uint32_t)n);
  put(b, s, n);
}

static void fieldStr(struct buf* b, const char* s) { field(b, s, strlen(s)); }

// Reads exactly n bytes; -1 on end of file or failure.
static int readAll(int fd, char* p, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, p + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    got += (size_t)r;
  }
  return 0;
}

static int sendFrame(int s, struct buf* body) {
  struct buf f = {0};
  putU32(&f, (uint32_t)body->n);
  put(&f, body->p, body->n);
  int rc = writeAll(s, f.p, f.n);
  free(f.p);
  return rc;
}

#define MAX_FIELDS 8
struct frame {
  unsigned char* body;
  const char* f[MAX_FIELDS];
  uint32_t len[MAX_FIELDS];
  int n;
};

// Reads one frame; each field a NUL-terminated copy (the caller frees them and the body).
static int readFrame(int s, struct frame* fr) {
  unsigned char hdr[4];
  if (readAll(s, (char*)hdr, 4) < 0) return -1;
  uint32_t len = u32(hdr);
  if (len > (8u << 20)) return -1;
  fr->body = malloc(len + 1);
  if (!fr->body || readAll(s, (char*)fr->body, len) < 0) return -1;
  fr->n = 0;
  for (uint32_t off = 0; off + 4 <= len && fr->n < MAX_FIELDS;) {
    uint32_t l = u32(fr->body + off);
    off += 4;
    if (l > len - off) return -1;
    char* copy = malloc(l + 1);
    if (!copy) return -1;
    memcpy(copy, fr->body + off, l);
    copy[l] = '\0';
    fr->f[fr->n] = copy;
    fr->len[fr->n++] = l;
    off += l;
  }
  return 0;
}

static const char* rootOf(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (strcmp(argv[i], "--root") == 0 && i + 1 < argc) return argv[i + 1];
    if (strncmp(argv[i], "--root=", 7) == 0) return argv[i] + 7;
    if (argv[i][0] != '-') break;  // the verb: globals are before it
    if (strcmp(argv[i], "--log") == 0 || strcmp(argv[i], "--log-format") == 0 || strcmp(argv[i], "--criu") == 0) ++i;
  }
  const char* env = getenv("STRATOSWARM_OCI_ROOT");
  return env && *env ? env : "/run/stratoswarm-oci";
}

static int connectTo(const char* path) {
  struct sockaddr_un a;
  memset(&a, 0, sizeof a);
  a.sun_family = AF_UNIX;
  if (strlen(path) >= sizeof a.sun_path) {
    errno = ENAMETOOLONG;
    return -1;
  }
  strcpy(a.sun_path, path);
  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) return -1;
  if (connect(s, (struct sockaddr*)&a, sizeof a) < 0) {
    int e = errno;
    close(s);
    errno = e;
    return -1;
  }
  return s;
}

// Starts the server of `root`, detached: its own session, stdio on /dev/null (an engine or
// a test waiting on our pipes must not wait on it).
static void startServer(const char* root) {
  char js[PATH_MAX + 64];
  snprintf(js, sizeof js, "%s/../../dist/src/oci/server.js", gDir);
  pid_t pid = fork();
  if (pid != 0) {
    if (pid > 0) waitpid(pid, NULL, 0);
    return;
  }
  if (fork() != 0) _exit(0);  // the server is nobody's child here: no zombie left to us
  setsid();
  int null = open("/dev/null", O_RDWR);
  for (int fd = 0; fd < 3; ++fd) dup2(null, fd);
  mkdir(root, 0700);
  execl(NODE_BINARY, "node", js, root, (char*)NULL);
  execlp("node", "node", js, root, (char*)NULL);
  _exit(127);
}

static int connectOrStart(const char* root) {
  char path[PATH_MAX + 16];
  snprintf(path, sizeof path, "%s/oci.sock", root);
  int s = connectTo(path);
  if (s >= 0) return s;
  startServer(root);
  for (int i = 0; i < 2000; ++i) {  // Node's start: up to 10 s on a loaded machine
    s = connectTo(path);
    if (s >= 0) return s;
    struct timespec ts = {0, 5000000};
    nanosleep(&ts, NULL);
  }
  fprintf(stderr, "stratoswarm-oci: the server for `%s` did not start (connect %s: %s)\n", root, path, strerror(errno));
  return -1;
}

static void quiet(int fd) {
  int null = open("/dev/null", O_RDWR);
  if (null >= 0) {
    dup2(null, fd);
    close(null);
  }
}

static char gKeeper[PATH_MAX + 64];

static pid_t keeperWait(const char* pid, const char* exitJson) {
  pid_t k = fork();
  if (k == 0) {
    setsid();
    for (int fd = 0; fd < 3; ++fd) quiet(fd);
    execl(gKeeper, "stratoswarm-oci-keeper", "wait", pid, exitJson, (char*)NULL);
    _exit(127);
  }
  return k;
}

// Starts an exec keeper with the frame on its fd 3; returns its pid and its report in out.
static pid_t keeperExec(const char* socket, const char* frame, size_t frameLen, int detach, const char* tty, char* out, size_t cap) {
  int in[2], st[2];
  if (pipe(in) < 0 || pipe(st) < 0) return -1;
  pid_t k = fork();
  if (k == 0) {
    if (detach) setsid();
    if (*tty) {
      int t = open(tty, O_RDWR | O_NOCTTY);
      if (t < 0) _exit(126);
      for (int fd = 0; fd < 3; ++fd) dup2(t, fd);
    }
    dup2(in[0], 3);
    dup2(st[1], 4);
    for (int fd = 5; fd < 1024; ++fd) close(fd);
    execl(gKeeper, "stratoswarm-oci-keeper", "exec", socket, (char*)NULL);
    _exit(127);
  }
  close(in[0]);
  close(st[1]);
  writeAll(in[1], frame, frameLen);
  close(in[1]);
  size_t n = 0;
  for (;;) {
    ssize_t r = read(st[0], out + n, cap - 1 - n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0 || n + (size_t)r >= cap - 1) break;
    n += (size_t)r;
  }
  out[n] = '\0';
  close(st[0]);
  return k;
}

int main(int argc, char** argv) {
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n < 0) return 1;
  self[n] = '\0';
  snprintf(gDir, sizeof gDir, "%s", dirname(self));
  snprintf(gKeeper, sizeof gKeeper, "%s/stratoswarm-oci-keeper", gDir);
  signal(SIGPIPE, SIG_IGN);
  const char* root = rootOf(argc, argv);
  int s = connectOrStart(root);
  if (s < 0) return 1;
  struct buf b = {0};
  char num[32], cwd[PATH_MAX];
  fieldStr(&b, "run");
  snprintf(num, sizeof num, "%d", getpid());
  fieldStr(&b, num);
  fieldStr(&b, getcwd(cwd, sizeof cwd) ? cwd : "/");
  int nEnv = 0;
  for (char** e = environ; *e; ++e)
    if (strncmp(*e, "STRATOSWARM_", 12) == 0) ++nEnv;
  snprintf(num, sizeof num, "%d", nEnv);
  fieldStr(&b, num);
  for (char** e = environ; *e; ++e)
    if (strncmp(*e, "STRATOSWARM_", 12) == 0) fieldStr(&b, *e);
  for (int i = 1; i < argc; ++i) fieldStr(&b, argv[i]);
  if (sendFrame(s, &b) < 0) {
    fprintf(stderr, "stratoswarm-oci: send to the server: %s\n", strerror(errno));
    return 1;
  }
  pid_t execKeeper = -1;
  for (;;) {
    struct frame fr;
    if (readFrame(s, &fr) < 0 || fr.n == 0) {
      fprintf(stderr, "stratoswarm-oci: the server closed the connection\n");
      return 1;
    }
    const char* k = fr.f[0];
    if (strcmp(k, "out") == 0 && fr.n > 1) writeAll(1, fr.f[1], fr.len[1]);
    else if (strcmp(k, "err") == 0 && fr.n > 1) writeAll(2, fr.f[1], fr.len[1]);
    else if (strcmp(k, "exit") == 0) return fr.n > 1 ? atoi(fr.f[1]) : 1;
    else if (strcmp(k, "exit-keeper") == 0) {
      int st = 0;
      while (waitpid(execKeeper, &st, 0) < 0 && errno == EINTR) {
      }
      if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
      return WEXITSTATUS(st);
    } else if (strcmp(k, "keeper-wait") == 0 && fr.n > 2) {
      pid_t p = keeperWait(fr.f[1], fr.f[2]);
      struct buf r = {0};
      fieldStr(&r, "pid");
      snprintf(num, sizeof num, "%d", p);
      fieldStr(&r, num);
      sendFrame(s, &r);
      free(r.p);
    } else if (strcmp(k, "keeper-exec") == 0 && fr.n > 4) {
      static char status[8192];
      execKeeper = keeperExec(fr.f[1], fr.f[2], fr.len[2], atoi(fr.f[3]), fr.f[4], status, sizeof status);
      struct buf r = {0};
      fieldStr(&r, "status");
      snprintf(num, sizeof num, "%d", execKeeper);
      fieldStr(&r, num);
      fieldStr(&r, status);
      sendFrame(s, &r);
      free(r.p);
    }
    for (int i = 0; i < fr.n; ++i) free((void*)fr.f[i]);
    free(fr.body);
  }
}

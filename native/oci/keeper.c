// stratoswarm-oci-keeper: the process an OCI engine waits for. Engines (conmon, the
// containerd shim) are subreapers that expect the container's process to become their child
// when the runtime's `create` (or `exec`) exits, and take its exit status from waitpid().
// Here the spawner is the parent of every container process, so `create` leaves this small
// process behind instead: it is reparented to the engine, ends when the container's process
// ends, with the same exit code (or by the same signal), and passes on the signals an engine
// sends it directly.
//
//   keeper wait PID EXIT_JSON     wait for PID (a pidfd), then exit as EXIT_JSON says
//   keeper exec SOCKET            send the frame read from fd 3 to the spawner at SOCKET with
//                                 stdin, stdout, stderr attached; write its reply's pid (or
//                                 its error) to fd 4; then exit as the exec's exit frame says
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "io.h"

static int gPidfd = -1;
static pid_t gTarget = 0;

static void forward(int sig) {
  // SAFETY: pidfd_send_signal is async-signal-safe (a plain syscall); a pidfd never names a
  // reused pid, so a late signal cannot reach another process.
  if (gPidfd >= 0) syscall(SYS_pidfd_send_signal, gPidfd, sig, NULL, 0);
}

static void forwardSignals(void) {
  const int sigs[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH, SIGCONT};
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = forward;
  sa.sa_flags = SA_RESTART;
  for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; ++i) sigaction(sigs[i], &sa, NULL);
}

// Ends this process the way the container's process ended: a signal death is one here
// too, so the engine reports 128+N as it would for runc.
static void exitAs(int code, int sig) {
  if (sig > 0) {
    signal(sig, SIG_DFL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    raise(sig);
    _exit(128 + sig);
  }
  _exit(code & 0xff);
}

static void quietStdio(void) {
  // The engine's pipes are the container's: holding them would keep its log open.
  int null = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null < 0) return;
  for (int fd = 0; fd < 3; ++fd) dup2(null, fd);
  if (null > 2) close(null);
}

static int readAll(int fd, char* buf, size_t cap) {
  size_t n = 0;
  while (n < cap) {
    ssize_t r = read(fd, buf + n, cap - n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    n += (size_t)r;
  }
  return (int)n;
}

static long jsonNumber(const char* text, const char* key, long dflt) {
  char pat[32];
  snprintf(pat, sizeof pat, "\"%s\":", key);
  const char* p = strstr(text, pat);
  return p ? strtol(p + strlen(pat), NULL, 10) : dflt;
}

static int waitMode(pid_t pid, const char* exitJson) {
  gTarget = pid;
  gPidfd = (int)syscall(SYS_pidfd_open, pid, 0);
  if (gPidfd < 0) {
    fprintf(stderr, "stratoswarm-oci-keeper: pidfd_open %d: %s\n", pid, strerror(errno));
    return 1;
  }
  // Engines take the pid this process has as the container's and join its namespaces by
  // /proc/<pid>/ns/* (podman's --network container:, --ipc container:): this process is
  // in the container's network, IPC and UTS namespaces, so those paths name the container's.
  if (setns(gPidfd, CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS) < 0) {
    fprintf(stderr, "stratoswarm-oci-keeper: warning: joining the namespaces of %d: %s\n", pid, strerror(errno));
  }
  forwardSignals();
  quietStdio();
  struct pollfd p = {gPidfd, POLLIN, 0};
  while (poll(&p, 1, -1) < 0 && errno == EINTR) {
  }
  // The spawner reaps the process and then writes its exit record: wait for it (10 s at most).
  char buf[512];
  for (int i = 0; i < 10000; ++i) {
    int fd = open(exitJson, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      int n = readAll(fd, buf, sizeof buf - 1);
      close(fd);
      buf[n < 0 ? 0 : n] = '\0';
      if (jsonNumber(buf, "pid", -1) == pid) exitAs((int)jsonNumber(buf, "exitCode", 255), (int)jsonNumber(buf, "signal", 0));
    }
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
  }
  return 255;
}

// Reads one frame; returns its body (malloc'd) and length, or NULL.
static unsigned char* readFrame(int fd, uint32_t* len) {
  unsigned char hdr[4];
  if (readAll(fd, (char*)hdr, 4) != 4) return NULL;
  *len = u32(hdr);
  if (*len > (4u << 20)) return NULL;
  unsigned char* body = malloc(*len + 1);
  if (!body || readAll(fd, (char*)body, *len) != (int)*len) {
    free(body);
    return NULL;
  }
  body[*len] = '\0';
  return body;
}

// The n-th field of a frame body, NUL-terminated in place of the next length (fields are
// short text here); NULL past the end.
static const char* field(unsigned char* body, uint32_t len, int n, char* out, size_t cap) {
  uint32_t off = 0;
  for (int i = 0; off + 4 <= len; ++i) {
    uint32_t l = u32(body + off);
    off += 4;
    if (l > len - off) return NULL;
    if (i == n) {
      size_t c = l < cap - 1 ? l : cap - 1;
      memcpy(out, body + off, c);
      out[c] = '\0';
      return out;
    }
    off += l;
  }
  return NULL;
}

static int execMode(const char* socketPath) {
  static char frame[4u << 20];
  int n = readAll(3, frame, sizeof frame);
  close(3);
  FILE* status = fdopen(4, "w");
  if (n < 4 || !status) return 1;
  struct sockaddr_un addr;
  memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  if (strlen(socketPath) >= sizeof addr.sun_path) {
    fprintf(status, "error spawner socket path too long\n");
    return 1;
  }
  strcpy(addr.sun_path, socketPath);
  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0 || connect(s, (struct sockaddr*)&addr, sizeof addr) < 0) {
    fprintf(status, "error connect %s: %s\n", socketPath, strerror(errno));
    return 1;
  }
  // stdin, stdout, stderr go with the frame's first byte, as the addon sends them.
  int fds[3] = {0, 1, 2};
  char cbuf[CMSG_SPACE(sizeof fds)];
  memset(cbuf, 0, sizeof cbuf);
  struct iovec iov = {frame, (size_t)n};
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = cbuf;
  msg.msg_controllen = sizeof cbuf;
  struct cmsghdr* cm = CMSG_FIRSTHDR(&msg);
  cm->cmsg_level = SOL_SOCKET;
  cm->cmsg_type = SCM_RIGHTS;
  cm->cmsg_len = CMSG_LEN(sizeof fds);
  memcpy(CMSG_DATA(cm), fds, sizeof fds);
  ssize_t sent = sendmsg(s, &msg, MSG_NOSIGNAL);
  if (sent < 0 || (sent < n && writeAll(s, frame + sent, (size_t)(n - sent)) < 0)) {
    fprintf(status, "error sendmsg: %s\n", strerror(errno));
    return 1;
  }
  quietStdio();
  uint32_t len;
  unsigned char* reply = readFrame(s, &len);
  char a[64], b[4096];
  if (!reply || !field(reply, len, 0, a, sizeof a)) {
    fprintf(status, "error the spawner closed the connection\n");
    return 1;
  }
  if (strcmp(a, "ok") != 0) {
    // An error reply, every field as it came (separated by 0x1f) for the runtime to read
    // as it reads the spawner's errors.
    fputs("reply", status);
    for (int i = 0; field(reply, len, i, b, sizeof b); ++i) fprintf(status, "\x1f%s", b);
    fputc('\n', status);
    return 1;
  }
  gTarget = (pid_t)atoi(field(reply, len, 1, b, sizeof b) ? b : "0");
  gPidfd = (int)syscall(SYS_pidfd_open, gTarget, 0);
  forwardSignals();
  fprintf(status, "pid %d\n", gTarget);
  fclose(status);
  free(reply);
  reply = readFrame(s, &len);
  if (!reply || !field(reply, len, 0, a, sizeof a) || strcmp(a, "exit") != 0) return 255;
  int code = atoi(field(reply, len, 1, b, sizeof b) ? b : "255");
  int sig = atoi(field(reply, len, 2, b, sizeof b) ? b : "0");
  exitAs(code < 0 ? 255 : code, sig);
  return 255;
}

int main(int argc, char** argv) {
  if (argc == 4 && strcmp(argv[1], "wait") == 0) return waitMode((pid_t)atoi(argv[2]), argv[3]);
  if (argc == 3 && strcmp(argv[1], "exec") == 0) return execMode(argv[2]);
  fprintf(stderr, "usage: stratoswarm-oci-keeper wait PID EXIT_JSON | exec SOCKET\n");
  return 2;
}

// stratoswarm-tty: holds the master side of a container's terminal.
//
// A terminal must outlive whoever attached to it (a detached `run -it`, a host agent that
// restarts), and its output must keep reaching the container's log while nobody is attached,
// as docker's shim and podman's conmon do. So the runtime hands the pty master to this small
// process, which lives exactly as long as the terminal: it copies everything the container
// writes to the log (when given one) and to every attached client, passes the clients'
// input and window sizes to the master, and exits once no process holds the slave any more
// (read() on the master returns EIO), after the last output is written and each attached
// client has taken it.
//
//   stratoswarm-tty --socket PATH [--log PATH]
//   fd 3: the pty master; fd 1: "ready\n" is written once PATH accepts clients, then closed.
//
// Clients connect to PATH (a unix socket, mode 0600) and send frames
//   'd' <u32 length, big-endian> <bytes>      input for the terminal
//   'w' <u32 4> <u16 cols> <u16 rows>         window size (TIOCSWINSZ on the master)
// and read the terminal's output as plain bytes.
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define MASTER_FD 3
#define MAX_CLIENTS 32
// A client that does not read its output is dropped past this much, and input past this
// much is refused: the relay never blocks on one side.
#define MAX_QUEUE (1u << 20)
#define FRAME_MAX (1u << 16)

struct buf {
  char *data;
  size_t len;
};

struct client {
  int fd;
  struct buf out;
  unsigned char in[5 + FRAME_MAX];
  size_t inLen;
};

static struct client clients[MAX_CLIENTS];
static int nclients;
static struct buf toMaster;
static int logFd = -1;
static const char *sockPath;

static int append(struct buf *b, const char *p, size_t n) {
  if (b->len + n > MAX_QUEUE) return -1;
  char *d = realloc(b->data, b->len + n);
  if (d == NULL) return -1;
  memcpy(d + b->len, p, n);
  b->data = d;
  b->len += n;
  return 0;
}

static void consume(struct buf *b, size_t n) {
  memmove(b->data, b->data + n, b->len - n);
  b->len -= n;
}

static void dropClient(int i) {
  close(clients[i].fd);
  free(clients[i].out.data);
  clients[i] = clients[--nclients];
  memset(&clients[nclients], 0, sizeof clients[nclients]);
}

// Writes what it can of `b` to `fd` without blocking; -1 when the peer is gone.
static int flush(int fd, struct buf *b) {
  while (b->len > 0) {
    ssize_t n = write(fd, b->data, b->len);
    if (n < 0) return errno == EAGAIN || errno == EINTR ? 0 : -1;
    consume(b, (size_t)n);
  }
  return 0;
}

static void writeAll(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return;  // a full disk loses log output, never the terminal
    }
    p += w;
    n -= (size_t)w;
  }
}

static void output(const char *p, size_t n) {
  if (logFd >= 0) writeAll(logFd, p, n);
  for (int i = 0; i < nclients;) {
    struct client *c = &clients[i];
    if (append(&c->out, p, n) < 0 || flush(c->fd, &c->out) < 0) dropClient(i);
    else ++i;
  }
}

// Handles the complete frames in a client's input; -1 drops the client (a bad frame).
static int frames(struct client *c) {
  size_t off = 0;
  while (c->inLen - off >= 5) {
    unsigned char *h = c->in + off;
    uint32_t len = (uint32_t)h[1] << 24 | (uint32_t)h[2] << 16 | (uint32_t)h[3] << 8 | h[4];
    if (len > FRAME_MAX) return -1;
    if (c->inLen - off - 5 < len) break;
    if (h[0] == 'd') {
      if (append(&toMaster, (const char *)h + 5, len) < 0) return -1;
    } else if (h[0] == 'w' && len == 4) {
      struct winsize ws;
      memset(&ws, 0, sizeof ws);
      ws.ws_col = (unsigned short)(h[5] << 8 | h[6]);
      ws.ws_row = (unsigned short)(h[7] << 8 | h[8]);
      // The kernel sends SIGWINCH to the terminal's foreground group.
      ioctl(MASTER_FD, TIOCSWINSZ, &ws);
    } else {
      return -1;
    }
    off += 5 + len;
  }
  memmove(c->in, c->in + off, c->inLen - off);
  c->inLen -= off;
  return 0;
}

// How long a client that was attached when the terminal closed gets to take the rest of its
// output and close its end.
#define LINGER_MS 2000

// The terminal is gone. Each client gets what is still queued for it, then the end of its
// output (SHUT_WR), and the relay waits for it to close its side. Closing at once would make
// a client's late write (a window size sent as the process exits) fail with EPIPE, and a
// client whose socket a failed write tears down loses the output it had not read yet.
static void finishClients(void) {
  for (int i = 0; i < nclients;) {
    if (clients[i].out.len == 0 && shutdown(clients[i].fd, SHUT_WR) < 0) dropClient(i);
    else ++i;
  }
  struct timespec start;
  clock_gettime(CLOCK_MONOTONIC, &start);
  static char sink[4096];
  while (nclients > 0) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long waited = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
    if (waited >= LINGER_MS) break;
    struct pollfd p[MAX_CLIENTS];
    for (int i = 0; i < nclients; ++i) {
      p[i].fd = clients[i].fd;
      p[i].events = POLLIN | (clients[i].out.len > 0 ? POLLOUT : 0);
    }
    int n = nclients;
    if (poll(p, (nfds_t)n, (int)(LINGER_MS - waited)) < 0 && errno != EINTR) break;
    for (int i = n - 1; i >= 0; --i) {
      if (i >= nclients || p[i].fd != clients[i].fd) continue;
      struct client *c = &clients[i];
      if (p[i].revents & POLLOUT) {
        if (flush(c->fd, &c->out) < 0) {
          dropClient(i);
          continue;
        }
        if (c->out.len == 0 && shutdown(c->fd, SHUT_WR) < 0) {
          dropClient(i);
          continue;
        }
      }
      if (p[i].revents & (POLLIN | POLLHUP | POLLERR)) {
        // Input for a terminal that is gone is read and dropped; the client's end closes it.
        ssize_t r = read(c->fd, sink, sizeof sink);
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) dropClient(i);
      }
    }
  }
  while (nclients > 0) dropClient(nclients - 1);
}

static int listenOn(const char *path) {
  struct sockaddr_un addr;
  memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  if (strlen(path) >= sizeof addr.sun_path) {
    errno = ENAMETOOLONG;
    return -1;
  }
  strcpy(addr.sun_path, path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return -1;
  unlink(path);
  mode_t old = umask(0177);
  int rc = bind(fd, (struct sockaddr *)&addr, sizeof addr);
  umask(old);
  if (rc < 0 || listen(fd, 16) < 0) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

int main(int argc, char **argv) {
  const char *logPath = NULL;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--socket") == 0) sockPath = argv[i + 1];
    else if (strcmp(argv[i], "--log") == 0) logPath = argv[i + 1];
  }
  if (sockPath == NULL || fcntl(MASTER_FD, F_GETFD) < 0) {
    dprintf(2, "usage: stratoswarm-tty --socket PATH [--log PATH] (pty master on fd 3)\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  setsid();
  if (chdir("/") < 0) return 1;
  fcntl(MASTER_FD, F_SETFD, FD_CLOEXEC);
  fcntl(MASTER_FD, F_SETFL, fcntl(MASTER_FD, F_GETFL) | O_NONBLOCK);
  if (logPath != NULL) {
    logFd = open(logPath, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
    if (logFd < 0) {
      dprintf(2, "stratoswarm-tty: open `%s`: %s\n", logPath, strerror(errno));
      return 1;
    }
  }
  int lfd = listenOn(sockPath);
  if (lfd < 0) {
    dprintf(2, "stratoswarm-tty: listen on `%s`: %s\n", sockPath, strerror(errno));
    return 1;
  }
  writeAll(1, "ready\n", 6);
  int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (devnull >= 0) {
    dup2(devnull, 0);
    dup2(devnull, 1);
    dup2(devnull, 2);
    if (devnull > 2) close(devnull);
  }

  static char chunk[65536];
  for (;;) {
    struct pollfd p[2 + MAX_CLIENTS];
    p[0].fd = MASTER_FD;
    p[0].events = POLLIN | (toMaster.len > 0 ? POLLOUT : 0);
    p[1].fd = lfd;
    p[1].events = nclients < MAX_CLIENTS ? POLLIN : 0;
    for (int i = 0; i < nclients; ++i) {
      p[2 + i].fd = clients[i].fd;
      p[2 + i].events = POLLIN | (clients[i].out.len > 0 ? POLLOUT : 0);
    }
    int n = nclients;
    if (poll(p, (nfds_t)(2 + n), -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    // New clients first: one that connected before this output was written gets all of it.
    if (p[1].revents & POLLIN) {
      int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (fd >= 0 && nclients < MAX_CLIENTS) {
        memset(&clients[nclients], 0, sizeof clients[nclients]);
        clients[nclients++].fd = fd;
      } else if (fd >= 0) {
        close(fd);
      }
    }
    if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t r = read(MASTER_FD, chunk, sizeof chunk);
      if (r > 0) output(chunk, (size_t)r);
      // EIO: no process holds the slave any more. The output it left was read first.
      else if (r == 0 || (errno != EAGAIN && errno != EINTR)) break;
    }
    if ((p[0].revents & POLLOUT) && flush(MASTER_FD, &toMaster) < 0) break;
    // Clients from the last poll, newest last; a drop moves the last one into the gap, so
    // walk down.
    for (int i = n - 1; i >= 0; --i) {
      if (i >= nclients || p[2 + i].fd != clients[i].fd) continue;
      struct client *c = &clients[i];
      if (p[2 + i].revents & POLLOUT && flush(c->fd, &c->out) < 0) {
        dropClient(i);
        continue;
      }
      if (p[2 + i].revents & (POLLIN | POLLHUP | POLLERR)) {
        ssize_t r = read(c->fd, c->in + c->inLen, sizeof c->in - c->inLen);
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR) || (r > 0 && (c->inLen += (size_t)r, frames(c) < 0))) {
          dropClient(i);
          continue;
        }
      }
    }
    if (toMaster.len > 0) flush(MASTER_FD, &toMaster);
  }
  // No one attaches to a terminal that has closed.
  unlink(sockPath);
  close(lfd);
  finishClients();
  return 0;
}

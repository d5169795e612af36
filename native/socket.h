// Unix-socket calls the addon makes for the spawner connection: connect, and sendmsg with
// fds (SCM_RIGHTS). Plain C++, no napi.h; errors are errno values.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <string>

namespace ss::sock {

// At most this many fds go with one frame (the spawner's own bound, kMaxClientFds).
constexpr size_t kMaxFds = 16;

// A connected, close-on-exec AF_UNIX stream socket, or -1 with *err and *syscall set
// ("connect" when nothing listens there). connect() on a unix socket waits while the
// listener's backlog is full: call it off the event loop.
int connectUnix(const std::string& path, int* err, const char** syscall);

// One sendmsg() of data[0..len) with `nfds` fds attached to its first byte. `wait`: the
// socket is polled for room (at most timeoutMs) until some bytes go; otherwise it never
// waits. Returns the bytes sent (> 0), 0 when the socket had no room (nothing sent, the fds
// neither), or -1 with *err set.
ssize_t sendWithFds(int fd, const void* data, size_t len, const int* fds, size_t nfds, bool wait, int timeoutMs,
                    int* err);

// Whether the other end of a connected socket has gone (closed, or its process died), seen
// without reading or waiting: poll() with no timeout. Replies still unread do not hide it.
bool peerGone(int fd);

}  // namespace ss::sock

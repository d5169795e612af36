// Pseudo-terminals for containers run with a terminal: the pair is opened on the host, the
// slave becomes the container process's stdio and controlling terminal, the master goes
// to the terminal's relay (native/tty/relay.c).
#pragma once

#include <string>

namespace ss {

struct PtyPair {
  int master = -1;
  int slave = -1;
  std::string path;  // the slave's name, /dev/pts/N
};

// Opens a new pty (posix_openpt, grantpt, unlockpt) and its slave, both O_CLOEXEC and
// O_NOCTTY, the slave owned by uid:gid (the container's user as the host sees it, so that
// the terminal is the process's own inside a user namespace) with mode 0620. Returns 0, or
// -1 with errno and the failing call in *what; nothing stays open on failure.
int openPty(PtyPair* out, unsigned uid, unsigned gid, const char** what);

// The same in the devpts instance of a container whose root is `root` (/proc/<init>/root):
// the slave then has a name inside the container (/dev/pts/N), so ttyname() and `tty` work
// there. The path is resolved inside that root without following any symlink, the master is
// checked to be a ptmx node, and the slave is opened from the master (TIOCGPTPEER), never
// through a path the container could change.
int openPtyIn(const char* root, PtyPair* out, unsigned uid, unsigned gid, const char** what);

}  // namespace ss

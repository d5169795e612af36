// The container init's side of the spawner: everything between clone() and execve().
#pragma once

#include <cstddef>
#include <cstdint>

#include "plan.h"

namespace ss {

// Fixed-size messages on the sync socket, child to spawner. The spawner's side of the same
// socket sends one byte, kGo, once the cgroups and id maps are in place, and to a parked
// init the start message (start_image.h).
enum ReportType : uint32_t { kReady = 1, kError = 2, kPid = 3 };
constexpr char kGo = 'g';

struct ChildReport {
  uint32_t type;
  uint32_t step;
  int32_t err;
  int32_t value;
  char path[240];
};

// The fds the spawner opened for the child before clone(): the sync socket, the container's
// stdio, and for an exec the pidfd of the container's init. All are O_CLOEXEC.
struct ChildFds {
  int sync = -1;
  int stdio[3] = {-1, -1, -1};
  int targetPidfd = -1;
  // A user namespace (and a network namespace it owns) prepared by the spawner before the
  // container's init exists: the init mounts as real root, then joins them.
  int userns = -1;
  int netns = -1;
  // Existing IPC and UTS namespaces the init joins (the network one it joins is netns).
  int ipcns = -1;
  int utsns = -1;
  // Existing mount and cgroup namespaces the init joins in place of new ones.
  int mntns = -1;
  int cgroupns = -1;
  // An existing pid namespace the init is cloned into (the spawner's own use, not the child's).
  int pidns = -1;
};

// The spawner holds a pidfd for every container and a socket for every client, so thousands
// of containers need more fds than the soft limit a host agent commonly runs with (1024).
// Called once at the spawner's start: raises its soft RLIMIT_NOFILE to the hard limit and
// keeps the limit it was started with, which every container process gets back in its child
// (a start's or an exec's own rlimits are applied after that).
void raiseFdLimit();

// In a freshly cloned child: closes every fd from 3 up except those in `keep` (at most 10;
// negative entries are ignored). The child is a copy of the spawner and holds all of its
// fds (the listening socket, epoll, signalfd, clients, inotify, index files, other
// containers' pidfds and sync sockets); CLOEXEC would close them only at execve, and every
// step before it (a mount, a chdir, a failing execve) would run with them open. Returns 0,
// or -1 with errno from close_range. Allocates nothing.
int closeFdsExcept(const int* keep, size_t n);

// The region a parked init receives its start image into (start_image.h), mapped by the
// spawner once, before any clone(), so that every init has it without allocating.
extern char* gStartRegion;
bool mapStartRegion();

// Runs the plan's ops in order and ends in execve(); never returns. Allocates nothing.
[[noreturn]] void runChild(const Plan& plan, const ChildFds& fds);

}  // namespace ss

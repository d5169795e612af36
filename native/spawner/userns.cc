#include "userns.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "launch.h"
#include "state_files.h"

namespace ss {

bool startUsernsHelper(const Plan& plan, int joined, UsernsHelper* h, Error* e) {
  int sv[2];
  long pid = cloneWithSync(joined >= 0 ? 0 : CLONE_NEWUSER, sv, Step::id_map, e);
  if (pid < 0) return false;
  if (pid == 0) {
    // Holds no fd of the spawner, and no process in the new user namespace may ptrace it.
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    // A failed setns is sent negated: it is not the network setup's.
    int err = joined >= 0 && setns(joined, CLONE_NEWUSER) < 0 ? -errno : 0;
    if (closeFdsExcept(&sv[1], 1) < 0) _exit(1);
    char c;
    if (recv(sv[1], &c, 1, 0) != 1) _exit(0);
    if (err == 0 && plan.usernsOwnsNet) {
      if (unshare(CLONE_NEWNET) < 0) err = errno;
      else {
        int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        struct ifreq ifr;
        memset(&ifr, 0, sizeof ifr);
        memcpy(ifr.ifr_name, "lo", 3);
        if (sock < 0 || ioctl(sock, SIOCGIFFLAGS, &ifr) < 0) err = errno;
        ifr.ifr_flags = short(ifr.ifr_flags | IFF_UP);
        if (err == 0 && ioctl(sock, SIOCSIFFLAGS, &ifr) < 0) err = errno;
      }
    }
    (void)send(sv[1], &err, sizeof err, MSG_NOSIGNAL);
    if (recv(sv[1], &c, 1, 0) < 0) _exit(1);  // EOF: the spawner has what it needs
    _exit(0);
  }
  // Unreaped (reaping happens only in the loop): the pid still names the helper here.
  h->pid = pid_t(pid);
  h->pidfd = int(syscall(SYS_pidfd_open, pid_t(pid), 0));
  h->sync = sv[0];
  if (h->pidfd < 0) {
    *e = {"ESYSCALL", Step::id_map, errno, "pidfd_open", "", "user namespace helper"};
    ::kill(pid_t(pid), SIGKILL);  // reaped as an orphan; the caller closes the socket
    return false;
  }
  std::string base = "/proc/" + std::to_string(pid);
  char go = kGo;
  if (joined < 0 && (!writeFileAll(base + "/uid_map", plan.uidMap, e, Step::id_map) ||
                     !writeFileAll(base + "/gid_map", plan.gidMap, e, Step::id_map))) {
    return false;
  }
  // One byte on a fresh socketpair always fits: this never waits.
  if (send(sv[0], &go, 1, MSG_NOSIGNAL | MSG_DONTWAIT) != 1) {
    *e = {"ESYSCALL", Step::id_map, errno, "send", "", "user namespace helper"};
    return false;
  }
  return true;
}

bool finishUsernsHelper(const Plan& plan, const UsernsHelper& h, int err, ChildFds* fds, Error* e) {
  if (err < 0) {
    *e = {"ESYSCALL", Step::setns, -err, "setns", plan.joinUser, "the user namespace to join"};
    return false;
  }
  if (err != 0) {
    *e = {"ESYSCALL", Step::loopback, err, "", "lo", "network namespace of the user namespace"};
    return false;
  }
  // The helper is unreaped and waits for EOF on its socket, so its namespaces are still there.
  std::string base = "/proc/" + std::to_string(h.pid);
  // A joined user namespace: its fd is open already (the helper entered it).
  if (fds->userns < 0) fds->userns = open((base + "/ns/user").c_str(), O_RDONLY | O_CLOEXEC);
  if (fds->userns < 0) {
    *e = {"ESYSCALL", Step::id_map, errno, "open", base + "/ns/user", ""};
    return false;
  }
  if (plan.usernsOwnsNet) {
    fds->netns = open((base + "/ns/net").c_str(), O_RDONLY | O_CLOEXEC);
    if (fds->netns < 0) {
      *e = {"ESYSCALL", Step::id_map, errno, "open", base + "/ns/net", ""};
      return false;
    }
  }
  return true;
}

}  // namespace ss

#include "spawner.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace ss {

// A container whose spawner died: its init was reparented, so no waitpid() will ever report
// it here. A pidfd still names exactly that process (never a later one with the same pid)
// and becomes readable when it exits; the exit code itself is lost with the old parent.
wire::Fields Spawner::adopt(const wire::Fields& f) {
  const std::string& id = f[1];
  int64_t pid64 = 0;
  if (!parseInt(f[2], 1, INT32_MAX, &pid64)) return errorReply({"EPROTO", Step::spawner, EINVAL, "", "", "adopt: bad pid \"" + f[2] + "\""});
  for (size_t i = 4; i < f.size(); ++i) {
    if (f[i].find('\0') != std::string::npos) return errorReply({"EPROTO", Step::spawner, EINVAL, "", "", "adopt: a path contains a NUL byte"});
    if (i >= 5 && (i - 5) % 2 == 0 && f[i] != "stdout" && f[i] != "stderr") {
      return errorReply({"EPROTO", Step::spawner, EINVAL, "", "", "adopt: unknown option \"" + f[i].substr(0, 64) + "\""});
    }
  }
  if (containers_.count(id)) return {"ok", "known"};
  pid_t pid = pid_t(pid64);
  int pidfd = int(syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) return errorReply({"ESTATE", Step::spawner, errno, "pidfd_open", "", "container init is gone"});
  // The pidfd is taken first, then the start time checked: if it matches, the pidfd names the
  // recorded process, even if that exits and its pid is reused a moment later.
  std::string startTime = procStatField(pid, 22);
  if (startTime != f[3]) {
    close(pidfd);
    return errorReply({"ESTATE", Step::spawner, ESRCH, "", "/proc/" + f[2] + "/stat", "pid " + f[2] + " is another process now"});
  }
  Container ct;
  ct.id = id;
  ct.pid = pid;
  ct.pidfd = pidfd;
  ct.adopted = true;
  ct.stateDir = f[4];
  containers_[id] = ct;
  adopted_[pidfd] = id;
  // Optional "stdout <path>" / "stderr <path>" after the state dir: without them (what the
  // runtime sends today) an adopted container's logs get no further index records.
  for (size_t i = 5; i + 1 < f.size(); i += 2)
    if (f[i] == "stdout" || f[i] == "stderr") logIndex_.watch(id, f[i + 1]);
  struct epoll_event ev;
  memset(&ev, 0, sizeof ev);
  ev.events = EPOLLIN;
  ev.data.fd = pidfd;
  epoll_ctl(epfd_, EPOLL_CTL_ADD, pidfd, &ev);
  logf("adopted container %s (pid %d)", id.c_str(), pid);
  return {"ok", "adopted"};
}

void Spawner::adoptedExit(int pidfd) {
  auto it = adopted_.find(pidfd);
  std::string id = it->second;
  adopted_.erase(it);
  epoll_ctl(epfd_, EPOLL_CTL_DEL, pidfd, nullptr);
  auto ci = containers_.find(id);
  if (ci != containers_.end()) recordExit(ci->second, 0, false);
}

}  // namespace ss

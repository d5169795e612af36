#include "launch.h"

#include <fcntl.h>
#include <poll.h>
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

#include "spawner.h"
#include "state_files.h"

namespace ss {

long cloneWithSync(unsigned long flags, int sv[2], Step step, Error* e) {
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
    *e = {"ESYSCALL", step, errno, "socketpair", "", ""};
    return -1;
  }
  long pid = syscall(SYS_clone, flags | SIGCHLD, nullptr, nullptr, nullptr, 0);
  if (pid < 0) {
    *e = {"ESYSCALL", step, int(errno), "clone", "", ""};
    close(sv[0]);
    close(sv[1]);
    return -1;
  }
  close(pid == 0 ? sv[0] : sv[1]);
  return pid;
}

bool openStdio(const Plan& plan, ChildFds* fds, Error* e) {
  const std::string* paths[3] = {&plan.stdinPath, &plan.stdoutPath, &plan.stderrPath};
  for (int i = 0; i < 3; ++i) {
    if (paths[i]->empty()) continue;
    int flags = i == 0 ? O_RDONLY : O_WRONLY | O_APPEND | O_CREAT;
    fds->stdio[i] = open(paths[i]->c_str(), flags | O_CLOEXEC | O_NOCTTY, 0640);
    if (fds->stdio[i] < 0) {
      *e = {"ESYSCALL", Step::stdio, errno, "open", *paths[i], ""};
      return false;
    }
  }
  return true;
}

void closeStdio(ChildFds* fds) {
  for (int& x : fds->stdio)
    if (x >= 0) {
      close(x);
      x = -1;
    }
  for (int* x : {&fds->userns, &fds->netns})
    if (*x >= 0) {
      close(*x);
      *x = -1;
    }
}

bool Spawner::awaitReport(int sync, pid_t pid, ChildReport* r, bool* eof, Error* e) {
  struct pollfd p = {sync, POLLIN, 0};
  int rc;
  do rc = poll(&p, 1, kSetupTimeoutMs);
  while (rc < 0 && errno == EINTR);
  if (rc == 0) {
    *e = {"ETIMEDOUT", Step::spawner, ETIMEDOUT, "", "", "container init did not report within " +
                                                              std::to_string(kSetupTimeoutMs) + " ms"};
    (void)pid;
    return false;
  }
  ssize_t n;
  do n = recv(sync, r, sizeof *r, 0);
  while (n < 0 && errno == EINTR);
  *eof = n == 0;
  if (n == 0) return true;
  if (n != ssize_t(sizeof *r)) {
    *e = {"EPROTO", Step::spawner, n < 0 ? errno : EPROTO, "recv", "", "short report from container init"};
    return false;
  }
  if (r->type == kError) {
    r->path[sizeof r->path - 1] = '\0';
    Step s = r->step < unsigned(Step::count_) ? Step(r->step) : Step::none;
    *e = {"ESPAWN", s, r->err, "", r->path, ""};
    return false;
  }
  return true;
}

bool Spawner::launch(Plan& plan, const ChildFds& childFds, unsigned long flags, pid_t* pidOut, int* pidfdOut,
                     int* syncOut, Error* e, pid_t* workload, int* workloadPidfd) {
  int sv[2];
  long pid = cloneWithSync(flags, sv, Step::clone, e);
  if (pid < 0) return false;
  if (pid == 0) {
    ChildFds fds = childFds;
    fds.sync = sv[1];
    runChild(plan, fds);
  }
  // The child is ours and unreaped (reaping happens only in the loop), so its pid names it
  // until then and the pidfd taken now names it for good.
  int pidfd = int(syscall(SYS_pidfd_open, pid_t(pid), 0));
  auto abandon = [&]() {
    ::kill(pid_t(pid), SIGKILL);
    waitpid(pid_t(pid), nullptr, 0);
    close(sv[0]);
    if (pidfd >= 0) close(pidfd);
  };
  if (pidfd < 0) {
    *e = {"ESYSCALL", Step::clone, errno, "pidfd_open", "", ""};
    abandon();
    return false;
  }
  std::string spid = std::to_string(pid);
  for (const auto& procs : plan.cgroupProcs) {
    if (!writeFileAll(procs, spid, e, Step::cgroup)) {
      abandon();
      return false;
    }
  }
  if ((flags & CLONE_NEWUSER) && (!plan.uidMap.empty() || !plan.gidMap.empty())) {
    std::string base = "/proc/" + spid;
    if ((!plan.uidMap.empty() && !writeFileAll(base + "/uid_map", plan.uidMap, e, Step::id_map)) ||
        (!plan.gidMap.empty() && !writeFileAll(base + "/gid_map", plan.gidMap, e, Step::id_map))) {
      abandon();
      return false;
    }
  }
  char go = kGo;
  if (send(sv[0], &go, 1, MSG_NOSIGNAL) != 1) {
    *e = {"ESYSCALL", Step::sync, errno, "send", "", ""};
    abandon();
    return false;
  }
  ChildReport r;
  bool eof = false;
  if (workload != nullptr) {
    // An exec's first child reports the pid of the process it forked inside the pid
    // namespace, then exits; that process carries on with the plan.
    *workload = 0;
    if (!awaitReport(sv[0], pid_t(pid), &r, &eof, e) || eof || r.type != kPid) {
      if (eof) *e = {"EPROTO", Step::setns, EPROTO, "", "", "exec helper exited without a report"};
      abandon();
      return false;
    }
    *workload = r.value;
    // The workload is this process's child too (CLONE_PARENT) and not reaped yet: the pid
    // still names it here, and from now on only the pidfd is used.
    *workloadPidfd = r.value > 0 ? int(syscall(SYS_pidfd_open, pid_t(r.value), 0)) : -1;
    if (*workloadPidfd < 0) {
      *e = {"ESYSCALL", Step::setns, r.value > 0 ? errno : EPROTO, "pidfd_open", "", "exec workload"};
      if (r.value > 0) ::kill(pid_t(r.value), SIGKILL);
      abandon();
      return false;
    }
    waitpid(pid_t(pid), nullptr, 0);
    close(pidfd);
    pidfd = -1;
  }
  if (!awaitReport(sv[0], pid_t(pid), &r, &eof, e)) {
    if (workload != nullptr && *workload > 0) {
      syscall(SYS_pidfd_send_signal, *workloadPidfd, SIGKILL, nullptr, 0);
      waitid(kPidfd, id_t(*workloadPidfd), nullptr, WEXITED);
      close(*workloadPidfd);
      close(sv[0]);
    } else {
      abandon();
    }
    return false;
  }
  *pidOut = pid_t(pid);
  *pidfdOut = pidfd;
  if (eof) {
    close(sv[0]);
    *syncOut = -1;
  } else {
    *syncOut = sv[0];
  }
  return true;
}

}  // namespace ss

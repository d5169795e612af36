#include "launch.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <linux/nsfs.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
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
#include "start_image.h"
#include "userns.h"

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

bool openJoinedNamespaces(const Plan& plan, ChildFds* fds, Error* e) {
  const struct {
    const std::string* path;
    int* fd;
    int type;
    const char* name;
  } want[] = {{&plan.joinNet, &fds->netns, CLONE_NEWNET, "net"}, {&plan.joinIpc, &fds->ipcns, CLONE_NEWIPC, "ipc"}, {&plan.joinUts, &fds->utsns, CLONE_NEWUTS, "uts"}, {&plan.joinPid, &fds->pidns, CLONE_NEWPID, "pid"}, {&plan.joinUser, &fds->userns, CLONE_NEWUSER, "user"}, {&plan.joinMnt, &fds->mntns, CLONE_NEWNS, "mnt"}, {&plan.joinCgroup, &fds->cgroupns, CLONE_NEWCGROUP, "cgroup"}};
  for (const auto& w : want) {
    if (w.path->empty()) continue;
    *w.fd = open(w.path->c_str(), O_RDONLY | O_CLOEXEC);
    if (*w.fd < 0) {
      *e = {"ESYSCALL", Step::setns, errno, "open", *w.path, std::string("the ") + w.name + " namespace to join"};
      return false;
    }
    // The file must be a namespace of that type (nsfs), not any file the path names.
    int type = ioctl(*w.fd, NS_GET_NSTYPE);
    if (type != w.type) {
      *e = {"EINVAL", Step::setns, type < 0 ? errno : EINVAL, "ioctl", *w.path, std::string("not a ") + w.name + " namespace"};
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
  for (int* x : {&fds->userns, &fds->netns, &fds->ipcns, &fds->utsns, &fds->pidns, &fds->mntns, &fds->cgroupns})
    if (*x >= 0) {
      close(*x);
      *x = -1;
    }
}

bool sendStart(int sync, const std::string& image, const std::vector<int>& stdio, Error* e) {
  StartWire w;
  memset(&w, 0, sizeof w);
  w.magic = kStartMagic;
  w.size = uint32_t(image.size());
  w.inlined = image.size() <= kStartInline ? 1 : 0;
  int fds[4];
  size_t nfds = 0;
  int memfd = -1;
  if (!w.inlined) {
    memfd = int(syscall(SYS_memfd_create, "stratoswarm-start", MFD_CLOEXEC | MFD_ALLOW_SEALING));
    if (memfd < 0) {
      *e = {"ESYSCALL", Step::ready, errno, "memfd_create", "", ""};
      return false;
    }
    size_t off = 0;
    while (off < image.size()) {
      ssize_t n = write(memfd, image.data() + off, image.size() - off);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        *e = {"ESYSCALL", Step::ready, n < 0 ? errno : EIO, "write", "", "start image"};
        close(memfd);
        return false;
      }
      off += size_t(n);
    }
    fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL);
    fds[nfds++] = memfd;
  }
  for (int fd : stdio) fds[nfds++] = fd;  // at most 3: the mask has three bits
  struct iovec iov[2] = {{&w, sizeof w}, {const_cast<char*>(image.data()), w.inlined ? image.size() : 0}};
  union {
    char buf[CMSG_SPACE(4 * sizeof(int))];
    struct cmsghdr align;
  } ctl;
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = iov;
  msg.msg_iovlen = w.inlined ? 2 : 1;
  if (nfds > 0) {
    memset(ctl.buf, 0, sizeof ctl.buf);
    msg.msg_control = ctl.buf;
    msg.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
    struct cmsghdr* cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(nfds * sizeof(int));
    memcpy(CMSG_DATA(cm), fds, nfds * sizeof(int));
  }
  ssize_t n;
  do n = sendmsg(sync, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  while (n < 0 && errno == EINTR);
  int err = errno;
  if (memfd >= 0) close(memfd);
  if (n != ssize_t(sizeof w + (w.inlined ? image.size() : 0))) {
    *e = {"ESYSCALL", Step::ready, n < 0 ? err : EPROTO, "sendmsg", "", "start message"};
    return false;
  }
  return true;
}

// Sets a parked container's hostname from outside: its UTS namespace belongs to the host's
// user namespace, so the init, already in the container's, could not.
bool Spawner::setHostname(const Container& ct, const std::string& name, Error* e) {
  if (selfUts_ < 0) selfUts_ = open("/proc/self/ns/uts", O_RDONLY | O_CLOEXEC);
  if (selfUts_ < 0) {
    *e = {"ESYSCALL", Step::hostname, errno, "open", "/proc/self/ns/uts", ""};
    return false;
  }
  if (setns(ct.pidfd, CLONE_NEWUTS) < 0) {
    *e = {"ESYSCALL", Step::hostname, errno, "setns", "", "container UTS namespace"};
    return false;
  }
  bool ok = sethostname(name.c_str(), name.size()) == 0;
  int err = errno;
  if (setns(selfUts_, CLONE_NEWUTS) < 0) {
    // This process would go on in a container's UTS namespace: nothing it does later
    // depends on it, but say so.
    logf("setns back to own UTS namespace: %s", strerror(errno));
  }
  if (!ok) *e = {"ESYSCALL", Step::hostname, err, "sethostname", "", name};
  return ok;
}

namespace {

enum class Got { report, eof, nothing, error };

// Reads the child's next report without waiting. eof: every copy of the child's end is
// closed (it exec'd, which closes the CLOEXEC socket, or it died).
Got readReport(int sync, ChildReport* r, Error* e) {
  ssize_t n;
  do n = recv(sync, r, sizeof *r, MSG_DONTWAIT);
  while (n < 0 && errno == EINTR);
  if (n < 0 && errno == EAGAIN) return Got::nothing;
  if (n == 0) return Got::eof;
  if (n != ssize_t(sizeof *r)) {
    *e = {"EPROTO", Step::spawner, n < 0 ? errno : EPROTO, "recv", "", "short report from container init"};
    return Got::error;
  }
  if (r->type == kError) {
    r->path[sizeof r->path - 1] = '\0';
    Step s = r->step < unsigned(Step::count_) ? Step(r->step) : Step::none;
    *e = {"ESPAWN", s, r->err, "", r->path, ""};
    return Got::error;
  }
  return Got::report;
}

}  // namespace

// The child is signalled through its pidfd and reaped through it once it has gone.
void Spawner::killChild(int* pidfd) {
  if (*pidfd < 0) return;
  syscall(SYS_pidfd_send_signal, *pidfd, SIGKILL, nullptr, 0);
  zombies_.push_back(*pidfd);
  *pidfd = -1;
}

bool Spawner::execLaunchPending() const {
  for (const auto& [fd, l] : launches_)
    if (l->kind == Launch::Kind::exec || l->kind == Launch::Kind::restore) return true;
  return false;
}

// Clones the init (create) or the exec helper, joins its cgroups, writes its id maps and
// lets it go. What it reports next arrives on l.sync.
bool Spawner::cloneInit(Launch& l, Error* e) {
  Plan& plan = *l.plan;
  unsigned long flags = l.kind == Launch::Kind::create ? plan.cloneFlags : 0;
  int sv[2];
  // An existing pid namespace: the spawner's children are made in it for this one clone
  // (setns CLONE_NEWPID changes only where children go), then back in the spawner's own.
  int ownPidns = -1;
  if (l.kind == Launch::Kind::create && l.fds.pidns >= 0) {
    ownPidns = open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC);
    if (ownPidns < 0 || setns(l.fds.pidns, CLONE_NEWPID) < 0) {
      *e = {"ESYSCALL", Step::setns, errno, "setns", plan.joinPid, "the pid namespace to join"};
      if (ownPidns >= 0) close(ownPidns);
      return false;
    }
  }
  long pid = cloneWithSync(flags, sv, Step::clone, e);
  if (ownPidns >= 0) {
    if (pid != 0 && setns(ownPidns, CLONE_NEWPID) < 0) abort();  // children of another namespace from here on
    if (pid != 0) close(ownPidns);
  }
  if (pid < 0) return false;
  if (pid == 0) {
    ChildFds fds = l.fds;
    fds.sync = sv[1];
    runChild(plan, fds);
  }
  // The child is ours and unreaped (reaping happens only in the loop), so its pid names it
  // until then and the pidfd taken now names it for good.
  l.pid = pid_t(pid);
  l.pidfd = int(syscall(SYS_pidfd_open, pid_t(pid), 0));
  l.sync = sv[0];
  if (l.pidfd < 0) {
    *e = {"ESYSCALL", Step::clone, errno, "pidfd_open", "", ""};
    ::kill(pid_t(pid), SIGKILL);  // reaped as an orphan
    return false;
  }
  std::string spid = std::to_string(pid);
  for (const auto& procs : plan.cgroupProcs)
    if (!writeFileAll(procs, spid, e, Step::cgroup)) return false;
  if ((flags & CLONE_NEWUSER) && (!plan.uidMap.empty() || !plan.gidMap.empty())) {
    std::string base = "/proc/" + spid;
    if ((!plan.uidMap.empty() && !writeFileAll(base + "/uid_map", plan.uidMap, e, Step::id_map)) ||
        (!plan.gidMap.empty() && !writeFileAll(base + "/gid_map", plan.gidMap, e, Step::id_map))) {
      return false;
    }
  }
  char go = kGo;
  // One byte on a fresh socketpair always fits: this never waits.
  if (send(sv[0], &go, 1, MSG_NOSIGNAL | MSG_DONTWAIT) != 1) {
    *e = {"ESYSCALL", Step::sync, errno, "send", "", ""};
    return false;
  }
  // The child has its own copies now. An exec's stdio belongs to its request (closed with
  // it) and its target pidfd to the container.
  if (l.kind == Launch::Kind::create) closeStdio(&l.fds);
  l.fds = ChildFds();
  l.plan.reset();
  return true;
}

bool Spawner::watchLaunch(std::unique_ptr<Launch>& l, Error* e) {
  struct epoll_event ev;
  memset(&ev, 0, sizeof ev);
  ev.events = EPOLLIN;
  ev.data.fd = l->sync;
  if (epoll_ctl(epfd_, EPOLL_CTL_ADD, l->sync, &ev) < 0) {
    *e = {"ESYSCALL", Step::spawner, errno, "epoll_ctl", "", "sync socket"};
    return false;
  }
  int fd = l->sync;
  launches_[fd] = std::move(l);
  return true;
}

// Undoes whatever a launch still holds: its socket, its children, the fds opened for it.
void Spawner::abandon(Launch& l) {
  if (l.sync >= 0) close(l.sync);
  l.sync = -1;
  if (l.kind != Launch::Kind::start) {
    killChild(&l.pidfd);
    killChild(&l.workloadPidfd);
    if (l.kind == Launch::Kind::create) closeStdio(&l.fds);
  } else {
    auto ci = containers_.find(l.id);
    if (ci != containers_.end()) ci->second.starting = false;
  }
}

void Spawner::finishLaunch(std::unique_ptr<Launch> l, const wire::Fields& out) {
  ReplyTo to = l->to;
  l.reset();
  auto it = clients_.find(to.fd);
  if (it == clients_.end() || it->second.serial != to.serial) return;
  Client& c = it->second;
  reply(c, out, to.tag);
  if (!to.tag.empty()) return;
  c.busy = false;
  processInput(c);  // plain requests that arrived meanwhile, in order
}

void Spawner::failLaunch(std::unique_ptr<Launch> l, const Error& e) {
  abandon(*l);
  bool exec = l->kind == Launch::Kind::exec || l->kind == Launch::Kind::restore;
  finishLaunch(std::move(l), errorReply(e));
  if (exec) reap();  // blind reaping waited for this launch (see reap)
}

void Spawner::expireLaunches() {
  int64_t now = nowMs();
  std::vector<int> expired;
  for (const auto& [fd, l] : launches_)
    if (l->deadline <= now) expired.push_back(fd);
  for (int fd : expired) {
    auto it = launches_.find(fd);
    if (it == launches_.end()) continue;
    std::unique_ptr<Launch> l = std::move(it->second);
    launches_.erase(it);
    epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr);
    failLaunch(std::move(l), {"ETIMEDOUT", Step::spawner, ETIMEDOUT, "", "",
                              "container init did not report within " + std::to_string(kSetupTimeoutMs) + " ms"});
  }
}

void Spawner::onLaunchReadable(int sync) {
  auto it = launches_.find(sync);
  std::unique_ptr<Launch> l = std::move(it->second);
  launches_.erase(it);
  epoll_ctl(epfd_, EPOLL_CTL_DEL, sync, nullptr);
  Error e;
  auto rewatch = [&]() {
    if (!watchLaunch(l, &e)) failLaunch(std::move(l), e);
  };
  if (l->kind == Launch::Kind::restore) return finishRestore(std::move(l));
  if (l->phase == Launch::Phase::userns) {
    int err = 0;
    ssize_t n = recv(sync, &err, sizeof err, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return rewatch();
    UsernsHelper h{l->pid, l->pidfd, sync};
    bool ok = n == ssize_t(sizeof err);
    if (!ok) e = {"ESYSCALL", Step::id_map, n < 0 ? errno : EPROTO, "recv", "", "user namespace helper exited"};
    ok = ok && finishUsernsHelper(*l->plan, h, err, &l->fds, &e);
    // The helper's work is done either way; the namespaces live on in the fds.
    close(sync);
    l->sync = -1;
    killChild(&l->pidfd);
    if (!ok || !cloneInit(*l, &e)) return failLaunch(std::move(l), e);
    l->phase = Launch::Phase::report;
    return rewatch();
  }
  ChildReport r;
  Got got = readReport(sync, &r, &e);
  if (got == Got::nothing) return rewatch();
  if (l->phase == Launch::Phase::report && l->kind == Launch::Kind::create) {
    if (got == Got::report && r.type == kReady) {
      // Parked before execve: the socket stays open for start, unwatched until then (the
      // init's exit, if it comes first, is seen by the reaper).
      Container ct;
      ct.id = l->id;
      ct.stateDir = l->stateDir;
      ct.pid = l->pid;
      ct.pidfd = l->pidfd;
      ct.sync = sync;
      l->pidfd = -1;
      l->sync = -1;
      containers_[ct.id] = ct;
      // Before start: the init writes nothing until then, so no line predates the watch.
      logIndex_.watch(ct.id, l->stdoutPath);
      logIndex_.watch(ct.id, l->stderrPath);
      return finishLaunch(std::move(l), {"ok", std::to_string(ct.pid)});
    }
    if (got == Got::eof) e = {"ESPAWN", Step::spawner, ECHILD, "", "", "container init exited before it reported"};
    else if (got == Got::report) e = {"EPROTO", Step::spawner, EPROTO, "", "", "unexpected report from container init"};
    return failLaunch(std::move(l), e);
  }
  if (l->phase == Launch::Phase::report) {  // an exec's helper
    if (got == Got::report && r.type == kPid && r.value > 0) {
      // The workload is this process's child too (CLONE_PARENT) and not reaped: nothing
      // is reaped blind while this launch exists (see reap), so the pid names it here, and
      // from now on only the pidfd is used.
      l->workload = r.value;
      l->workloadPidfd = int(syscall(SYS_pidfd_open, pid_t(r.value), 0));
      if (l->workloadPidfd < 0) {
        e = {"ESYSCALL", Step::setns, errno, "pidfd_open", "", "exec workload"};
        ::kill(pid_t(r.value), SIGKILL);
        return failLaunch(std::move(l), e);
      }
      // The helper exits by itself after this report.
      zombies_.push_back(l->pidfd);
      l->pidfd = -1;
      l->phase = Launch::Phase::execve;
      return rewatch();
    }
    if (got == Got::eof) e = {"EPROTO", Step::setns, EPROTO, "", "", "exec helper exited without a report"};
    else if (got == Got::report) e = {"EPROTO", Step::setns, EPROTO, "", "", "unexpected report from exec helper"};
    return failLaunch(std::move(l), e);
  }
  // Phase execve: EOF is the execve (or a death the reaper reports as the exit).
  if (got != Got::eof) {
    if (got == Got::report) e = {"EPROTO", Step::execve, EPROTO, "", "", "unexpected report before execve"};
    return failLaunch(std::move(l), e);
  }
  close(sync);
  l->sync = -1;
  if (l->kind == Launch::Kind::start) {
    auto ci = containers_.find(l->id);
    if (ci != containers_.end()) ci->second.starting = false;
    wire::Fields ok = {"ok", std::to_string(l->pid)};
    return finishLaunch(std::move(l), ok);
  }
  auto ci = containers_.find(l->id);
  execs_[l->workloadPidfd] = {l->workload, l->to, ci != containers_.end() ? ci->second.id : l->id};
  l->workloadPidfd = -1;
  wire::Fields ok = {"ok", std::to_string(l->workload)};
  finishLaunch(std::move(l), ok);
  reap();  // the workload may have exited already; and blind reaping may go on again
}

}  // namespace ss

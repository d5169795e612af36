// Request dispatch and the verbs of the protocol (wire.h framing; replies are "ok" or an
// "error" with code, step, errno, syscall, path and message).
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

#include "launch.h"
#include "userns.h"

namespace ss {

void Spawner::handle(Client& c, const wire::Fields& f) {
  const std::string& verb = f[0];
  int fd = c.fd;
  wire::Fields out;
  bool deferred = false;
  if (verb == "ping") out = {"ok", std::to_string(getpid())};
  else if (verb == "create") out = create(c, f);
  else if (verb == "start") out = start(f);
  else if (verb == "kill") out = kill(f);
  else if (verb == "exec-kill") out = execKill(f);
  else if (verb == "forget") out = forget(f);
  else if (verb == "exec") out = exec(c, f, &deferred);
  else if (verb == "status") out = status(f);
  else if (verb == "adopt") out = adopt(f);
  else if (verb == "subscribe") {
    c.subscriber = true;
    out = {"ok"};
  } else if (verb == "shutdown") {
    // Exits once no container is left; "force" kills what is left first.
    if (f.size() > 1 && f[1] == "force") {
      for (auto& [id, ct] : containers_)
        if (!ct.exited) syscall(SYS_pidfd_send_signal, ct.pidfd, SIGKILL, nullptr, 0);
    }
    stopping_ = true;
    out = {"ok", std::to_string(containers_.size())};
  } else out = errorReply({"EPROTO", Step::spawner, EPROTO, "", "", "unknown request \"" + verb + "\""});
  // Fds a request did not use are not kept for the next one.
  for (int x : c.fds) close(x);
  c.fds.clear();
  if (!deferred) reply(fd, out);
}

wire::Fields Spawner::create(Client&, const wire::Fields& f) {
  if (f.size() < 2) return errorReply({"EPROTO", Step::spawner, EPROTO, "", "", "create needs an id"});
  const std::string& id = f[1];
  if (stopping_) return errorReply({"EBUSY", Step::spawner, ESHUTDOWN, "", "", "spawner is shutting down"});
  if (containers_.count(id)) return errorReply({"EEXIST", Step::spawner, EEXIST, "", "", "container " + id + " exists"});
  Plan plan;
  std::string err;
  if (!parsePlan(f, 2, &plan, &err)) return errorReply({"EPROTO", Step::config, EINVAL, "", "", err});
  ChildFds fds;
  Error e;
  if (!openStdio(plan, &fds, &e) || (!plan.uidMap.empty() && !prepareUserns(plan, &fds, &e))) {
    closeStdio(&fds);
    return errorReply(e);
  }
  pid_t pid = 0;
  int sync = -1;
  bool ok = launch(plan, fds, plan.cloneFlags, &pid, &sync, &e, nullptr);
  closeStdio(&fds);
  if (!ok) return errorReply(e);
  Container ct;
  ct.id = id;
  ct.stateDir = plan.stateDir;
  ct.pid = pid;
  ct.pidfd = int(syscall(SYS_pidfd_open, pid, 0));
  ct.sync = sync;
  containers_[id] = ct;
  pidToId_[pid] = id;
  // Before start: the init writes nothing until then, so no line predates the watch.
  logIndex_.watch(id, plan.stdoutPath);
  logIndex_.watch(id, plan.stderrPath);
  return {"ok", std::to_string(pid)};
}

wire::Fields Spawner::start(const wire::Fields& f) {
  if (f.size() < 2) return errorReply({"EPROTO", Step::spawner, EPROTO, "", "", "start needs an id"});
  auto it = containers_.find(f[1]);
  if (it == containers_.end()) return errorReply({"ENOTFOUND", Step::spawner, ESRCH, "", "", "no container " + f[1]});
  Container& ct = it->second;
  if (ct.exited) return errorReply({"ESTATE", Step::spawner, ESRCH, "", "", "container init has exited"});
  if (ct.sync < 0) return errorReply({"ESTATE", Step::spawner, EALREADY, "", "", "container was started already"});
  char s = kStart;
  Error e;
  if (send(ct.sync, &s, 1, MSG_NOSIGNAL) != 1) {
    e = {"ESYSCALL", Step::ready, errno, "send", "", ""};
  } else {
    ChildReport r;
    bool eof = false;
    if (awaitReport(ct.sync, ct.pid, &r, &eof, &e) && eof) {
      close(ct.sync);
      ct.sync = -1;
      return {"ok", std::to_string(ct.pid)};
    }
  }
  close(ct.sync);
  ct.sync = -1;
  return errorReply(e);
}

wire::Fields Spawner::kill(const wire::Fields& f) {
  if (f.size() < 3) return errorReply({"EPROTO", Step::spawner, EPROTO, "", "", "kill needs an id and a signal"});
  auto it = containers_.find(f[1]);
  if (it == containers_.end()) return errorReply({"ENOTFOUND", Step::signal, ESRCH, "", "", "no container " + f[1]});
  Container& ct = it->second;
  if (ct.exited) return errorReply({"ESTATE", Step::signal, ESRCH, "", "", "container has exited"});
  int sig = atoi(f[2].c_str());
  // This process is the init's parent and has not reaped it, so the pid (and the pidfd)
  // cannot name any other process.
  if (syscall(SYS_pidfd_send_signal, ct.pidfd, sig, nullptr, 0) < 0) {
    return errorReply({"ESYSCALL", Step::signal, errno, "pidfd_send_signal", "", ""});
  }
  return {"ok"};
}

// Signals an exec's workload. Its pid is safe to use while it is in execs_: this process
// reaps it and erases the entry in the same step, so until then the pid cannot be reused.
wire::Fields Spawner::execKill(const wire::Fields& f) {
  if (f.size() < 4) return errorReply({"EPROTO", Step::spawner, EPROTO, "", "", "exec-kill needs an id, a pid and a signal"});
  char* end = nullptr;
  long pid = strtol(f[2].c_str(), &end, 10);
  int sig = atoi(f[3].c_str());
  auto it = pid > 0 && end && *end == 0 ? execs_.find(pid_t(pid)) : execs_.end();
  if (it == execs_.end() || it->second.containerId != f[1]) {
    return errorReply({"ESTATE", Step::signal, ESRCH, "", "", "no such exec running in container " + f[1]});
  }
  if (sig < 1 || sig > 64) return errorReply({"EPROTO", Step::signal, EINVAL, "", "", "bad signal " + f[3]});
  if (::kill(pid_t(pid), sig) < 0) return errorReply({"ESYSCALL", Step::signal, errno, "kill", "", ""});
  return {"ok"};
}

wire::Fields Spawner::status(const wire::Fields& f) {
  if (f.size() < 2) return errorReply({"EPROTO", Step::spawner, EPROTO, "", "", "status needs an id"});
  auto it = containers_.find(f[1]);
  if (it == containers_.end()) return {"ok", "unknown"};
  const Container& ct = it->second;
  if (!ct.exited) return {"ok", ct.sync >= 0 ? "created" : "running", std::to_string(ct.pid)};
  return {"ok", "exited", std::to_string(ct.pid), std::to_string(ct.status), std::to_string(ct.finishedAt)};
}

wire::Fields Spawner::forget(const wire::Fields& f) {
  if (f.size() < 2) return errorReply({"EPROTO", Step::spawner, EPROTO, "", "", "forget needs an id"});
  auto it = containers_.find(f[1]);
  if (it == containers_.end()) return {"ok"};
  if (!it->second.exited) return errorReply({"EBUSY", Step::cleanup, EBUSY, "", "", "container is still running"});
  pidToId_.erase(it->second.pid);
  logIndex_.unwatch(it->first);
  containers_.erase(it);
  return {"ok"};
}

wire::Fields Spawner::exec(Client& c, const wire::Fields& f, bool* deferred) {
  if (f.size() < 2) return errorReply({"EPROTO", Step::spawner, EPROTO, "", "", "exec needs an id"});
  auto it = containers_.find(f[1]);
  if (it == containers_.end()) return errorReply({"ENOTFOUND", Step::setns, ESRCH, "", "", "no container " + f[1]});
  Container& ct = it->second;
  if (ct.exited || ct.sync >= 0) return errorReply({"ESTATE", Step::setns, ESRCH, "", "", "container is not running"});
  Plan plan;
  std::string err;
  if (!parsePlan(f, 2, &plan, &err)) return errorReply({"EPROTO", Step::config, EINVAL, "", "", err});
  ChildFds fds;
  fds.targetPidfd = ct.pidfd;
  // stdio comes with the request (pipes the caller made), in order stdin, stdout, stderr.
  for (size_t i = 0; i < 3 && i < c.fds.size(); ++i) fds.stdio[i] = c.fds[i];
  pid_t helper = 0, workload = 0;
  int sync = -1;
  Error e;
  if (!launch(plan, fds, 0, &helper, &sync, &e, &workload)) return errorReply(e);
  if (sync >= 0) close(sync);
  execs_[workload] = {c.fd, ct.id};
  reply(c.fd, {"ok", std::to_string(workload)});
  *deferred = true;  // the exit follows on the same connection
  reap();            // the workload may have exited already
  return {};
}
}  // namespace ss

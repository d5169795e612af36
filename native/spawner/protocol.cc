// Request dispatch and the verbs of the protocol (wire.h framing; replies are "ok" or an
// "error" with code, step, errno, syscall, path and message).
#include "spawner.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "launch.h"
#include "start_image.h"
#include "userns.h"

namespace ss {

namespace {

// Each verb's field count, the verb included (SIZE_MAX: a plan or options follow), and
// whether its second field is a container id.
struct Verb {
  const char* name;
  size_t minFields, maxFields;
  bool hasId;
};
constexpr Verb kVerbs[] = {
    {"ping", 1, 1, false},      {"create", 3, SIZE_MAX, true}, {"start", 2, SIZE_MAX, true},
    {"kill", 3, 3, true},       {"exec-kill", 4, 4, true},     {"forget", 2, 2, true},
    {"exec", 3, SIZE_MAX, true}, {"status", 2, 2, true},        {"adopt", 5, 9, true},
    {"subscribe", 1, 1, false}, {"shutdown", 1, 2, false},    {"restore", 10, SIZE_MAX, true},
};

// A container id names a directory and a cgroup: bounded, no NUL, no '/', not "." or "..".
bool validId(const std::string& id) {
  if (id.empty() || id.size() > 128 || id == "." || id == "..") return false;
  for (char c : id)
    if (c == '\0' || c == '/') return false;
  return true;
}

std::string printable(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size() && i < 64; ++i) out += s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
  return s.size() > 64 ? out + "..." : out;
}

// Checks what every request shares before any verb looks at it; "" when it is well formed.
std::string checkShape(const wire::Fields& f) {
  const Verb* v = nullptr;
  for (const Verb& k : kVerbs)
    if (f[0] == k.name) v = &k;
  if (v == nullptr) return "unknown request \"" + printable(f[0]) + "\"";
  if (f.size() < v->minFields || f.size() > v->maxFields) {
    return std::string(v->name) + " takes " + std::to_string(v->minFields - 1) +
           (v->maxFields == SIZE_MAX ? " or more" : v->maxFields == v->minFields ? "" : ".." + std::to_string(v->maxFields - 1)) +
           " fields after the verb, not " + std::to_string(f.size() - 1);
  }
  if (v->hasId && !validId(f[1])) return std::string(v->name) + ": bad container id \"" + printable(f[1]) + "\"";
  if (f[0] == "shutdown" && f.size() == 2 && f[1] != "force") return "shutdown takes only \"force\"";
  if (f[0] == "adopt" && (f.size() - 5) % 2 != 0) return "adopt: options come in pairs";
  return "";
}

}  // namespace

void Spawner::handle(Client& c, const wire::Fields& f) {
  const std::string& verb = f[0];
  wire::Fields out;
  bool deferred = false;
  std::string bad = checkShape(f);
  if (!bad.empty()) out = errorReply({"EPROTO", Step::spawner, EPROTO, "", "", bad});
  else if (verb == "ping") out = {"ok", std::to_string(getpid())};
  else if (verb == "create") out = create(c, f, &deferred);
  else if (verb == "start") out = start(c, f, &deferred);
  else if (verb == "kill") out = kill(f);
  else if (verb == "exec-kill") out = execKill(f);
  else if (verb == "forget") out = forget(f);
  else if (verb == "exec") out = exec(c, f, &deferred);
  else if (verb == "status") out = status(f);
  else if (verb == "adopt") out = adopt(f);
  else if (verb == "restore") out = restore(c, f, &deferred);
  else if (verb == "subscribe") {
    c.subscriber = true;
    c.subscribeTag = c.tag;  // its exit events carry its id
    out = {"ok"};
  } else {  // shutdown
    // Exits once no container is left; "force" kills what is left first.
    if (f.size() > 1 && f[1] == "force") {
      for (auto& [id, ct] : containers_)
        if (!ct.exited) syscall(SYS_pidfd_send_signal, ct.pidfd, SIGKILL, nullptr, 0);
      // A launch in progress fails when its child dies, so it leaves nothing running.
      for (auto& [fd, l] : launches_)
        for (int pidfd : {l->pidfd, l->workloadPidfd})
          if (pidfd >= 0) syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, nullptr, 0);
    }
    stopping_ = true;
    out = {"ok", std::to_string(containers_.size())};
  }
  // Fds a request did not use are not kept for the next one.
  for (int x : c.fds) close(x);
  c.fds.clear();
  // A deferred reply comes from the launch; until then this client's next plain requests
  // wait (tagged ones do not: their replies name their request).
  if (deferred) c.busy = c.tag.empty();
  else reply(c, out, c.tag);
}

// Starts a launch; the reply (the init's pid once it is parked, or the error) follows when
// the init reports. The id is taken from now on: a second create of it is refused.
wire::Fields Spawner::create(Client& c, const wire::Fields& f, bool* deferred) {
  const std::string& id = f[1];
  if (stopping_) return errorReply({"EBUSY", Step::spawner, ESHUTDOWN, "", "", "spawner is shutting down"});
  bool taken = containers_.count(id) > 0;
  for (const auto& [fd, l] : launches_) taken = taken || (l->kind == Launch::Kind::create && l->id == id);
  if (taken) return errorReply({"EEXIST", Step::spawner, EEXIST, "", "", "container " + id + " exists"});
  auto l = std::make_unique<Launch>();
  l->plan = std::make_unique<Plan>();
  std::string err;
  if (!parsePlan(f, 2, l->plan.get(), &err, PlanKind::create)) return errorReply({"EPROTO", Step::config, EINVAL, "", "", err});
  l->kind = Launch::Kind::create;
  l->id = id;
  l->to = {c.fd, c.serial, c.tag};
  l->deadline = nowMs() + kSetupTimeoutMs;
  l->stateDir = l->plan->stateDir;
  l->stdoutPath = l->plan->stdoutPath;
  l->stderrPath = l->plan->stderrPath;
  Error e;
  bool ok = openStdio(*l->plan, &l->fds, &e) && openJoinedNamespaces(*l->plan, &l->fds, &e);
  // A terminal: its slave came with the request as stdin, stdout and stderr, in place of
  // the files (the log index still watches the stdout log, which the terminal's relay
  // writes); the launch owns them from here.
  for (size_t i = 0; ok && i < 3 && i < c.fds.size(); ++i) {
    if (l->fds.stdio[i] >= 0) close(l->fds.stdio[i]);
    l->fds.stdio[i] = c.fds[i];
    c.fds[i] = -1;
  }
  // The helper makes a new user namespace, or a network namespace inside a joined one.
  if (ok && (!l->plan->uidMap.empty() || (!l->plan->joinUser.empty() && l->plan->usernsOwnsNet))) {
    UsernsHelper h;
    ok = startUsernsHelper(*l->plan, l->fds.userns, &h, &e);
    l->pid = h.pid;
    l->pidfd = h.pidfd;
    l->sync = h.sync;
    l->phase = Launch::Phase::userns;
  } else if (ok) {
    ok = cloneInit(*l, &e);
    l->phase = Launch::Phase::report;
  }
  if (!ok || !watchLaunch(l, &e)) {
    abandon(*l);
    return errorReply(e);
  }
  *deferred = true;
  return {};
}

// Sends a parked init its start image (the process the caller chose) and lets it exec; the
// reply follows once it has (EOF on its socket) or failed. What needs the host's privilege
// is done here, from outside, before the message: rlimits (raising a hard limit needs
// CAP_SYS_RESOURCE in the host's user namespace, which the init left) and the hostname (the
// UTS namespace belongs to the host's user namespace). A refused request leaves the
// container parked, as it was.
wire::Fields Spawner::start(Client& c, const wire::Fields& f, bool* deferred) {
  auto it = containers_.find(f[1]);
  if (it == containers_.end()) return errorReply({"ENOTFOUND", Step::spawner, ESRCH, "", "", "no container " + f[1]});
  Container& ct = it->second;
  if (ct.exited) return errorReply({"ESTATE", Step::spawner, ESRCH, "", "", "container init has exited"});
  if (ct.sync < 0) return errorReply({"ESTATE", Step::spawner, EALREADY, "", "", "container was started already"});
  Plan plan;
  std::string err;
  if (!parsePlan(f, 2, &plan, &err, PlanKind::start)) return errorReply({"EPROTO", Step::config, EINVAL, "", "", err});
  size_t stdioFds = size_t(__builtin_popcount(plan.stdioMask));
  if (c.fds.size() != stdioFds) {
    return errorReply({"EPROTO", Step::stdio, EBADF, "", "",
                       "start names " + std::to_string(stdioFds) + " stdio fds but " + std::to_string(c.fds.size()) + " came with it"});
  }
  std::vector<Op> inside;
  for (Op& op : plan.ops) {
    Error e;
    if (op.step == Step::rlimit) {
      struct rlimit rl = {op.n[1], op.n[2]};
      if (prlimit(ct.pid, __rlimit_resource(op.n[0]), &rl, nullptr) < 0) return errorReply({"ESYSCALL", Step::rlimit, errno, "prlimit", "", op.s[0]});
    } else if (op.step == Step::hostname) {
      if (!setHostname(ct, op.s[0], &e)) return errorReply(e);
    } else {
      inside.push_back(std::move(op));
    }
  }
  plan.ops = std::move(inside);
  std::string image = flattenStart(plan, plan.stdioMask);
  if (image.size() > kStartRegion) return errorReply({"E2BIG", Step::config, E2BIG, "", "", "start image too large"});
  Error e;
  if (!sendStart(ct.sync, image, c.fds, &e)) {
    // The init saw nothing, or part of nothing: it cannot be started any more.
    syscall(SYS_pidfd_send_signal, ct.pidfd, SIGKILL, nullptr, 0);
    close(ct.sync);
    ct.sync = -1;
    return errorReply(e);
  }
  auto l = std::make_unique<Launch>();
  l->kind = Launch::Kind::start;
  l->phase = Launch::Phase::execve;
  l->id = ct.id;
  l->pid = ct.pid;
  l->to = {c.fd, c.serial, c.tag};
  l->deadline = nowMs() + kSetupTimeoutMs;
  l->sync = ct.sync;
  ct.sync = -1;
  ct.starting = true;
  if (!watchLaunch(l, &e)) {
    abandon(*l);
    return errorReply(e);
  }
  *deferred = true;
  return {};
}

wire::Fields Spawner::kill(const wire::Fields& f) {
  if (f.size() < 3) return errorReply({"EPROTO", Step::spawner, EPROTO, "", "", "kill needs an id and a signal"});
  auto it = containers_.find(f[1]);
  if (it == containers_.end()) return errorReply({"ENOTFOUND", Step::signal, ESRCH, "", "", "no container " + f[1]});
  Container& ct = it->second;
  if (ct.exited) return errorReply({"ESTATE", Step::signal, ESRCH, "", "", "container has exited"});
  int64_t sig = 0;
  if (!parseInt(f[2], 0, 64, &sig)) return errorReply({"EPROTO", Step::signal, EINVAL, "", "", "bad signal \"" + f[2] + "\""});
  // The pidfd names the init itself: until recordExit closes it (at the reaping) it cannot
  // reach a later process with the same pid.
  if (syscall(SYS_pidfd_send_signal, ct.pidfd, sig, nullptr, 0) < 0) {
    return errorReply({"ESYSCALL", Step::signal, errno, "pidfd_send_signal", "", ""});
  }
  return {"ok"};
}

// Signals an exec's workload. The request names it by container and pid (what the runtime
// was told); the signal goes through the workload's pidfd, which names that process only,
// and the entry is gone once it is reaped.
wire::Fields Spawner::execKill(const wire::Fields& f) {
  int64_t pid = 0, sig = 0;
  if (!parseInt(f[2], 1, INT32_MAX, &pid)) return errorReply({"EPROTO", Step::signal, EINVAL, "", "", "bad pid \"" + f[2] + "\""});
  if (!parseInt(f[3], 1, 64, &sig)) return errorReply({"EPROTO", Step::signal, EINVAL, "", "", "bad signal \"" + f[3] + "\""});
  auto it = execs_.begin();
  while (it != execs_.end() && (it->second.pid != pid || it->second.containerId != f[1])) ++it;
  if (it == execs_.end()) {
    return errorReply({"ESTATE", Step::signal, ESRCH, "", "", "no such exec running in container " + f[1]});
  }
  if (syscall(SYS_pidfd_send_signal, it->first, int(sig), nullptr, 0) < 0) {
    return errorReply({"ESYSCALL", Step::signal, errno, "pidfd_send_signal", "", "exec pid " + f[2]});
  }
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
  logIndex_.unwatch(it->first);
  containers_.erase(it);
  return {"ok"};
}

// Starts an exec; "ok <pid>" follows once the workload has exec'd, and its exit after that
// on the same connection.
wire::Fields Spawner::exec(Client& c, const wire::Fields& f, bool* deferred) {
  auto it = containers_.find(f[1]);
  if (it == containers_.end()) return errorReply({"ENOTFOUND", Step::setns, ESRCH, "", "", "no container " + f[1]});
  Container& ct = it->second;
  if (ct.exited || ct.sync >= 0 || ct.starting) return errorReply({"ESTATE", Step::setns, ESRCH, "", "", "container is not running"});
  auto l = std::make_unique<Launch>();
  l->plan = std::make_unique<Plan>();
  std::string err;
  if (!parsePlan(f, 2, l->plan.get(), &err, PlanKind::exec)) return errorReply({"EPROTO", Step::config, EINVAL, "", "", err});
  l->kind = Launch::Kind::exec;
  l->phase = Launch::Phase::report;
  l->id = ct.id;
  l->to = {c.fd, c.serial, c.tag};
  l->deadline = nowMs() + kSetupTimeoutMs;
  l->fds.targetPidfd = ct.pidfd;
  // stdio comes with the request (pipes the caller made), in order stdin, stdout, stderr;
  // the child gets copies at the clone, and the request's fds are closed after it.
  for (size_t i = 0; i < 3 && i < c.fds.size(); ++i) l->fds.stdio[i] = c.fds[i];
  Error e;
  if (!cloneInit(*l, &e) || !watchLaunch(l, &e)) {
    l->fds = ChildFds();  // none of these are the launch's to close
    abandon(*l);
    return errorReply(e);
  }
  *deferred = true;
  return {};
}

}  // namespace ss

#include "plan.h"

#include <sched.h>
#include <sys/resource.h>

#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace ss {
namespace {

// Bounds on what one plan may hold. Each is far above what the runtime sends and far below
// what would let a bad request make this process allocate without limit.
constexpr uint64_t kMaxArgv = 65536;
constexpr uint64_t kMaxEnv = 65536;
constexpr size_t kMaxOps = 4096;
constexpr size_t kMaxCgroups = 64;
constexpr uint64_t kMaxOpStrings = 8;
constexpr uint64_t kMaxOpNumbers = 65537;  // setgroups: NGROUPS_MAX gids

// How many strings and numbers each step takes; the child indexes op.s and op.n without
// checking, so a plan whose op has another arity never reaches it.
struct Arity {
  Step step;
  uint8_t minS, maxS;
  uint32_t minN, maxN;
};
constexpr Arity kArity[] = {
    {Step::sync, 0, 0, 0, 0},          {Step::setsid, 0, 0, 0, 0},       {Step::stdio, 0, 0, 0, 0},
    {Step::setns, 0, 0, 0, 0},         {Step::cgroupns, 0, 0, 0, 0},     {Step::mount_private, 0, 0, 0, 1},
    {Step::overlay, 2, 2, 0, 0},       {Step::root_open, 1, 1, 0, 0},    {Step::mount, 4, 4, 2, 2},
    {Step::bind, 2, 4, 2, 5},          {Step::volume, 2, 2, 2, 4},       {Step::symlink, 2, 2, 0, 0},
    {Step::mask, 1, 1, 0, 0},          {Step::readonly, 1, 1, 0, 0},     {Step::pivot_root, 0, 0, 0, 0},
    {Step::root_readonly, 0, 0, 0, 0}, {Step::loopback, 0, 0, 0, 0},     {Step::affinity, 0, 0, 1, 1024},
    {Step::mempolicy, 0, 0, 1, 1025},  {Step::hostname, 1, 1, 0, 0},     {Step::rlimit, 1, 1, 3, 3},
    {Step::setgroups, 0, 0, 0, 65536}, {Step::setgid, 1, 1, 1, 1},       {Step::setuid, 1, 1, 1, 1},
    {Step::capabilities, 0, 0, 2, 4},  {Step::no_new_privs, 0, 0, 0, 0}, {Step::chdir, 1, 1, 0, 0},
    {Step::resolve_exec, 0, 0, 0, 0},  {Step::ready, 0, 0, 0, 0},        {Step::close_fds, 0, 0, 0, 0},
    {Step::seccomp, 0, 0, 0, 0},       {Step::execve, 0, 0, 0, 0},       {Step::propagation, 1, 1, 1, 1},
    {Step::mknod, 1, 1, 6, 6},         {Step::umask, 0, 0, 1, 1},
};

const Arity* arityOf(Step step) {
  for (const Arity& a : kArity)
    if (a.step == step) return &a;
  return nullptr;
}

// Digits only, at most UINT64_MAX: strtoull would also take spaces, a sign ("-1" is
// UINT64_MAX) and an empty string.
bool toU64(const std::string& s, uint64_t* out) {
  if (s.empty() || s.size() > 20) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    uint64_t d = uint64_t(c - '0');
    if (v > (UINT64_MAX - d) / 10) return false;
    v = v * 10 + d;
  }
  *out = v;
  return true;
}

bool hasNul(const std::string& s) { return s.find('\0') != std::string::npos; }

unsigned long nsFlags(const std::string& list, std::string* err) {
  unsigned long flags = 0;
  size_t pos = 0;
  while (pos <= list.size()) {
    size_t comma = list.find(',', pos);
    std::string name = list.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    if (name == "pid") flags |= CLONE_NEWPID;
    else if (name == "mnt") flags |= CLONE_NEWNS;
    else if (name == "uts") flags |= CLONE_NEWUTS;
    else if (name == "ipc") flags |= CLONE_NEWIPC;
    else if (name == "net") flags |= CLONE_NEWNET;
    else if (name == "cgroup") flags |= CLONE_NEWCGROUP;
    else if (name == "user") flags |= CLONE_NEWUSER;
    else if (!name.empty()) {
      *err = "unknown namespace \"" + name + "\"";
      return ~0ul;
    }
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return flags;
}

}  // namespace

// What a start plan may do: the process's identity and confinement, and its exec. Setup
// that needs the host (mounts, namespaces) was done before the park point; rlimit and
// hostname are applied by the spawner from outside.
bool startStep(Step s) {
  switch (s) {
    case Step::affinity: case Step::mempolicy: case Step::seccomp: case Step::capabilities:
    case Step::setgroups: case Step::setgid: case Step::setuid: case Step::no_new_privs:
    case Step::close_fds: case Step::chdir: case Step::resolve_exec: case Step::execve:
    case Step::rlimit: case Step::hostname: case Step::umask:
      return true;
    default:
      return false;
  }
}

bool parsePlan(const wire::Fields& f, size_t i, Plan* p, std::string* err, PlanKind kind) {
  bool hasSeccompOp = false;
  // `k` may come from the request: compared with what is left, so i + k cannot wrap.
  auto need = [&](uint64_t k, const char* what) {
    if (i > f.size() || k > f.size() - i) {
      *err = std::string("truncated field ") + what;
      return false;
    }
    return true;
  };
  while (i < f.size()) {
    const std::string& key = f[i++];
    if (kind == PlanKind::start && key != "argv" && key != "env" && key != "path" && key != "seccomp" && key != "op" &&
        key != "stdio-fds") {
      *err = "field \"" + key + "\" is not part of a start plan";
      return false;
    }
    if (key == "stdio-fds") {
      // Which of stdin, stdout, stderr the fds sent with a start request replace ("0,1,2").
      if (kind != PlanKind::start || !need(1, "stdio-fds")) {
        if (err->empty()) *err = "stdio-fds is only part of a start plan";
        return false;
      }
      const std::string& v = f[i++];
      p->stdioMask = 0;
      for (size_t k = 0; k < v.size(); ++k) {
        if (k % 2 == 1 ? v[k] != ',' : (v[k] < '0' || v[k] > '2')) {
          *err = "stdio-fds is \"" + v.substr(0, 16) + "\", not a list of 0, 1, 2";
          return false;
        }
        if (k % 2 == 0) p->stdioMask |= 1u << (v[k] - '0');
      }
    } else if (key == "state-dir" || key == "stdin" || key == "stdout" || key == "stderr" || key == "uid-map" ||
        key == "gid-map" || key == "cgroup-procs" || key == "path" || key == "namespaces" ||
        key == "join-namespaces" || key == "userns-net" || key == "join-net" || key == "join-ipc" ||
        key == "join-uts" || key == "join-pid" || key == "join-user" || key == "join-mnt" || key == "join-cgroup") {
      if (!need(1, key.c_str())) return false;
      const std::string& v = f[i++];
      if (hasNul(v)) {
        *err = key + " contains a NUL byte";
        return false;
      }
      if (key == "state-dir") p->stateDir = v;
      else if (key == "stdin") p->stdinPath = v;
      else if (key == "stdout") p->stdoutPath = v;
      else if (key == "stderr") p->stderrPath = v;
      else if (key == "uid-map") p->uidMap = v;
      else if (key == "gid-map") p->gidMap = v;
      else if (key == "cgroup-procs") {
        if (p->cgroupProcs.size() >= kMaxCgroups) {
          *err = "more than " + std::to_string(kMaxCgroups) + " cgroup-procs";
          return false;
        }
        p->cgroupProcs.push_back(v);
      }
      else if (key == "path") p->searchPath = v;
      else if (key == "join-net") p->joinNet = v;
      else if (key == "join-ipc") p->joinIpc = v;
      else if (key == "join-uts") p->joinUts = v;
      else if (key == "join-pid") p->joinPid = v;
      else if (key == "join-user") p->joinUser = v;
      else if (key == "join-mnt") p->joinMnt = v;
      else if (key == "join-cgroup") p->joinCgroup = v;
      else if (key == "userns-net") {
        if (v != "0" && v != "1") {
          *err = "userns-net is \"" + v + "\", not 0 or 1";
          return false;
        }
        p->usernsOwnsNet = v == "1";
      }
      else {
        unsigned long fl = nsFlags(v, err);
        if (fl == ~0ul) return false;
        (key == "namespaces" ? p->cloneFlags : p->setnsFlags) = fl;
      }
    } else if (key == "argv" || key == "env") {
      if (!need(1, key.c_str())) return false;
      uint64_t count = 0;
      uint64_t most = key == "argv" ? kMaxArgv : kMaxEnv;
      if (!toU64(f[i++], &count) || count > most || !need(count, key.c_str())) {
        *err = "bad " + key + " count \"" + f[i - 1] + "\" (at most " + std::to_string(most) +
               ", and that many fields must follow)";
        return false;
      }
      auto& dst = key == "argv" ? p->argv : p->env;
      if (!dst.empty()) {
        *err = key + " given twice";
        return false;
      }
      dst.reserve(size_t(count));
      for (uint64_t k = 0; k < count; ++k) {
        if (hasNul(f[i])) {
          *err = key + " entry contains a NUL byte";
          return false;
        }
        dst.push_back(f[i++]);
      }
    } else if (key == "seccomp") {
      if (!need(1, "seccomp")) return false;
      const std::string& bpf = f[i++];
      if (bpf.size() % sizeof(sock_filter) != 0 || bpf.empty() || bpf.size() / sizeof(sock_filter) > 65535) {
        *err = "seccomp program is not a whole number of BPF instructions";
        return false;
      }
      p->seccomp.resize(bpf.size() / sizeof(sock_filter));
      memcpy(p->seccomp.data(), bpf.data(), bpf.size());
    } else if (key == "op") {
      // op <step> <kind> <nstr> <strs...> <nnum> <nums...>
      if (!need(3, "op")) return false;
      if (p->ops.size() >= kMaxOps) {
        *err = "more than " + std::to_string(kMaxOps) + " ops";
        return false;
      }
      Op op;
      const Arity* ar = nullptr;
      if (hasNul(f[i]) || !stepFromName(f[i].c_str(), &op.step) || (ar = arityOf(op.step)) == nullptr) {
        *err = "unknown step \"" + f[i] + "\" in an op";
        return false;
      }
      if (kind == PlanKind::start && !startStep(op.step)) {
        *err = "op " + f[i] + " is not part of a start plan";
        return false;
      }
      if (kind == PlanKind::exec && op.step == Step::ready) {
        *err = "op ready is not part of an exec plan";
        return false;
      }
      ++i;
      op.kind = f[i++];
      const char* name = stepName(op.step);
      bool kindOk = true;
      if (op.step == Step::capabilities) kindOk = op.kind == "bounding" || op.kind == "sets";
      else if (op.step == Step::setns) kindOk = op.kind == "join" || op.kind == "net" || op.kind == "user" || op.kind == "ipc" || op.kind == "uts" || op.kind == "mnt" || op.kind == "cgroup";
      else if (op.step == Step::overlay) kindOk = op.kind == "idmap" || op.kind == "rootfs" || op.kind == "bind";
      else if (op.step == Step::stdio) kindOk = op.kind == "dup" || op.kind == "tty";
      if (!kindOk) {
        *err = std::string("op ") + name + " has no kind \"" + op.kind + "\"";
        return false;
      }
      uint64_t ns = 0, nn = 0;
      if (!toU64(f[i++], &ns) || ns > kMaxOpStrings || !need(ns + 1, "op strings")) {
        *err = std::string("bad string count \"") + f[i - 1] + "\" in op " + name;
        return false;
      }
      if (ns < ar->minS || ns > ar->maxS) {
        *err = std::string("op ") + name + " takes " + std::to_string(ar->minS) + ".." + std::to_string(ar->maxS) +
               " strings, not " + std::to_string(ns);
        return false;
      }
      for (uint64_t k = 0; k < ns; ++k) {
        if (hasNul(f[i])) {
          *err = std::string("op ") + stepName(op.step) + " argument contains a NUL byte";
          return false;
        }
        op.s.push_back(f[i++]);
      }
      if (!toU64(f[i++], &nn) || nn > kMaxOpNumbers || !need(nn, "op numbers")) {
        *err = std::string("bad number count \"") + f[i - 1] + "\" in op " + name;
        return false;
      }
      if (op.step == Step::capabilities) ar = nullptr;  // bounding takes 2, sets 4
      uint64_t minN = ar ? ar->minN : op.kind == "bounding" ? 2 : 4, maxN = ar ? ar->maxN : minN;
      if (nn < minN || nn > maxN) {
        *err = std::string("op ") + name + " " + op.kind + " takes " + std::to_string(minN) + ".." +
               std::to_string(maxN) + " numbers, not " + std::to_string(nn);
        return false;
      }
      op.n.reserve(size_t(nn));
      for (uint64_t k = 0; k < nn; ++k) {
        uint64_t v = 0;
        if (!toU64(f[i++], &v)) {
          *err = std::string("op ") + name + " has a bad number \"" + f[i - 1] + "\"";
          return false;
        }
        op.n.push_back(v);
      }
      // Ids are 32-bit and (uid_t)-1 means "leave unchanged" to setres*id: refused here.
      if (op.step == Step::setgroups || op.step == Step::setgid || op.step == Step::setuid) {
        for (uint64_t v : op.n)
          if (v >= UINT32_MAX) {
            *err = std::string("op ") + name + " has an id out of range: " + std::to_string(v);
            return false;
          }
      }
      // bind: n[3] idmap mode (0 none, 1 the container's user namespace, 2 the maps in s[2],
      // s[3]); the maps come exactly when the mode says so.
      if (op.step == Step::bind) {
        uint64_t mode = op.n.size() > 3 ? op.n[3] : 0;
        if (mode > 2 || (mode == 2) != (op.s.size() == 4) || (mode != 2 && op.s.size() != 2)) {
          *err = "op bind has idmap mode " + std::to_string(mode) + " with " + std::to_string(op.s.size()) + " strings";
          return false;
        }
      }
      if (op.step == Step::rlimit && op.n[0] >= RLIM_NLIMITS) {
        *err = "op rlimit names no resource: " + std::to_string(op.n[0]);
        return false;
      }
      if (op.step == Step::mempolicy && op.n[0] > INT32_MAX) {
        *err = "op mempolicy has a bad mode " + std::to_string(op.n[0]);
        return false;
      }
      if (op.step == Step::seccomp) hasSeccompOp = true;
      if (op.step == Step::setgroups)
        for (uint64_t v : op.n) op.gids.push_back(gid_t(v));
      p->ops.push_back(std::move(op));
    } else {
      *err = "unknown field \"" + key + "\"";
      return false;
    }
  }
  if (p->argv.empty() && kind != PlanKind::create) {
    *err = "argv is empty";
    return false;
  }
  // A create ends at the init's park point, and nowhere else: an init must never run past
  // it (or exec) without the start request.
  if (kind == PlanKind::create) {
    size_t ready = 0;
    for (const Op& op : p->ops) ready += op.step == Step::ready ? 1 : 0;
    if (ready != 1 || p->ops.back().step != Step::ready) {
      *err = "a create plan must end with its park point (one op ready, last)";
      return false;
    }
    for (const Op& op : p->ops)
      if (op.step == Step::execve) {
        *err = "a create plan cannot exec: its process comes with start";
        return false;
      }
  }
  if (hasSeccompOp && p->seccomp.empty()) {
    *err = "a seccomp op without a seccomp program";
    return false;
  }
  for (auto& a : p->argv) p->argvp.push_back(const_cast<char*>(a.c_str()));
  p->argvp.push_back(nullptr);
  for (auto& e : p->env) p->envp.push_back(const_cast<char*>(e.c_str()));
  p->envp.push_back(nullptr);
  return true;
}

}  // namespace ss

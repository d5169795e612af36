#include "plan.h"

#include <sched.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace ss {
namespace {

bool toU64(const std::string& s, uint64_t* out) {
  if (s.empty() || s.size() > 20) return false;
  char* end = nullptr;
  errno = 0;
  unsigned long long v = strtoull(s.c_str(), &end, 10);
  if (errno != 0 || *end != '\0') return false;
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

bool parsePlan(const wire::Fields& f, size_t i, Plan* p, std::string* err) {
  auto need = [&](size_t k, const char* what) {
    if (i + k > f.size()) {
      *err = std::string("truncated field ") + what;
      return false;
    }
    return true;
  };
  while (i < f.size()) {
    const std::string& key = f[i++];
    if (key == "state-dir" || key == "stdin" || key == "stdout" || key == "stderr" || key == "uid-map" ||
        key == "gid-map" || key == "cgroup-procs" || key == "path" || key == "namespaces" ||
        key == "join-namespaces" || key == "userns-net") {
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
      else if (key == "cgroup-procs") p->cgroupProcs.push_back(v);
      else if (key == "path") p->searchPath = v;
      else if (key == "userns-net") p->usernsOwnsNet = v == "1";
      else {
        unsigned long fl = nsFlags(v, err);
        if (fl == ~0ul) return false;
        (key == "namespaces" ? p->cloneFlags : p->setnsFlags) = fl;
      }
    } else if (key == "argv" || key == "env") {
      if (!need(1, key.c_str())) return false;
      uint64_t count = 0;
      if (!toU64(f[i++], &count) || !need(count, key.c_str())) {
        *err = "bad " + key + " count";
        return false;
      }
      auto& dst = key == "argv" ? p->argv : p->env;
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
      Op op;
      if (!stepFromName(f[i].c_str(), &op.step)) {
        *err = "unknown step \"" + f[i] + "\"";
        return false;
      }
      ++i;
      op.kind = f[i++];
      uint64_t ns = 0, nn = 0;
      if (!toU64(f[i++], &ns) || !need(ns + 1, "op strings")) {
        *err = "bad op string count";
        return false;
      }
      for (uint64_t k = 0; k < ns; ++k) {
        if (hasNul(f[i])) {
          *err = std::string("op ") + stepName(op.step) + " argument contains a NUL byte";
          return false;
        }
        op.s.push_back(f[i++]);
      }
      if (!toU64(f[i++], &nn) || !need(nn, "op numbers")) {
        *err = "bad op number count";
        return false;
      }
      for (uint64_t k = 0; k < nn; ++k) {
        uint64_t v = 0;
        if (!toU64(f[i++], &v)) {
          *err = std::string("op ") + stepName(op.step) + " has a bad number";
          return false;
        }
        op.n.push_back(v);
      }
      if (op.step == Step::setgroups)
        for (uint64_t v : op.n) op.gids.push_back(gid_t(v));
      p->ops.push_back(std::move(op));
    } else {
      *err = "unknown field \"" + key + "\"";
      return false;
    }
  }
  if (p->argv.empty()) {
    *err = "argv is empty";
    return false;
  }
  for (auto& a : p->argv) p->argvp.push_back(const_cast<char*>(a.c_str()));
  p->argvp.push_back(nullptr);
  for (auto& e : p->env) p->envp.push_back(const_cast<char*>(e.c_str()));
  p->envp.push_back(nullptr);
  return true;
}

}  // namespace ss

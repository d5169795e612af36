// Seccomp profiles (the OCI `linux.seccomp` shape) compiled to classic BPF with libseccomp.
// Runs in the host process, never in a container's init: the init only loads the result.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ss::seccomp {

struct ArgRule {
  unsigned index = 0;
  std::string op;  // SCMP_CMP_EQ, SCMP_CMP_MASKED_EQ, ...
  uint64_t value = 0;
  uint64_t valueTwo = 0;
};

struct SyscallRule {
  std::vector<std::string> names;
  std::string action;  // SCMP_ACT_ALLOW, SCMP_ACT_ERRNO, ...
  int errnoRet = -1;   // -1: the action's default (EPERM for ERRNO)
  std::vector<ArgRule> args;
};

struct Profile {
  std::string defaultAction;
  int defaultErrnoRet = -1;
  std::vector<std::string> architectures;  // SCMP_ARCH_X86_64, SCMP_ARCH_X86, SCMP_ARCH_X32, ...
  std::vector<SyscallRule> syscalls;
};

struct Result {
  std::vector<uint8_t> bpf;  // struct sock_filter[], ready for SECCOMP_SET_MODE_FILTER
  std::vector<std::string> unknownSyscalls;  // names this libseccomp does not know (skipped, as runc does)
};

// Returns false and sets `err` (naming the field) when the profile cannot be compiled.
bool compile(const Profile& profile, Result* out, std::string* err);

}  // namespace ss::seccomp

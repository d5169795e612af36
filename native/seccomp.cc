#include "seccomp.h"

#include <seccomp.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

namespace ss::seccomp {
namespace {

bool parseAction(const std::string& name, int errnoRet, uint32_t* out, std::string* err) {
  if (name == "SCMP_ACT_ALLOW") *out = SCMP_ACT_ALLOW;
  else if (name == "SCMP_ACT_ERRNO") *out = SCMP_ACT_ERRNO(uint16_t(errnoRet < 0 ? EPERM : errnoRet));
  else if (name == "SCMP_ACT_KILL" || name == "SCMP_ACT_KILL_THREAD") *out = SCMP_ACT_KILL_THREAD;
  else if (name == "SCMP_ACT_KILL_PROCESS") *out = SCMP_ACT_KILL_PROCESS;
  else if (name == "SCMP_ACT_TRAP") *out = SCMP_ACT_TRAP;
  else if (name == "SCMP_ACT_LOG") *out = SCMP_ACT_LOG;
  else if (name == "SCMP_ACT_TRACE") *out = SCMP_ACT_TRACE(uint16_t(errnoRet < 0 ? EPERM : errnoRet));
  else {
    *err = "unsupported action \"" + name + "\"";
    return false;
  }
  return true;
}

bool parseOp(const std::string& name, scmp_compare* out) {
  static const struct {
    const char* name;
    scmp_compare op;
  } ops[] = {{"SCMP_CMP_NE", SCMP_CMP_NE}, {"SCMP_CMP_LT", SCMP_CMP_LT}, {"SCMP_CMP_LE", SCMP_CMP_LE},
             {"SCMP_CMP_EQ", SCMP_CMP_EQ}, {"SCMP_CMP_GE", SCMP_CMP_GE}, {"SCMP_CMP_GT", SCMP_CMP_GT},
             {"SCMP_CMP_MASKED_EQ", SCMP_CMP_MASKED_EQ}};
  for (const auto& o : ops)
    if (name == o.name) {
      *out = o.op;
      return true;
    }
  return false;
}

bool parseArch(const std::string& name, uint32_t* out) {
  // OCI spells them SCMP_ARCH_X86_64; libseccomp resolves "x86_64".
  std::string s = name.rfind("SCMP_ARCH_", 0) == 0 ? name.substr(10) : name;
  for (auto& ch : s) ch = char(tolower(static_cast<unsigned char>(ch)));
  uint32_t a = seccomp_arch_resolve_name(s.c_str());
  if (a == 0) return false;
  *out = a;
  return true;
}

struct CtxDeleter {
  void operator()(void* ctx) const { seccomp_release(ctx); }
};

}  // namespace

bool compile(const Profile& p, Result* out, std::string* err) {
  uint32_t defAction = 0;
  if (!parseAction(p.defaultAction, p.defaultErrnoRet, &defAction, err)) {
    *err = "defaultAction: " + *err;
    return false;
  }
  std::unique_ptr<void, CtxDeleter> ctx(seccomp_init(defAction));
  if (!ctx) {
    *err = "seccomp_init failed";
    return false;
  }
  // The runtime sets no_new_privs itself (or keeps CAP_SYS_ADMIN when asked not to), so the
  // filter must not turn it on behind the profile's back.
  seccomp_attr_set(ctx.get(), SCMP_FLTATR_CTL_NNP, 0);
  for (size_t i = 0; i < p.architectures.size(); ++i) {
    uint32_t arch = 0;
    if (!parseArch(p.architectures[i], &arch)) {
      *err = "architectures[" + std::to_string(i) + "]: unknown architecture \"" + p.architectures[i] + "\"";
      return false;
    }
    int rc = seccomp_arch_add(ctx.get(), arch);
    if (rc < 0 && rc != -EEXIST) {
      *err = "architectures[" + std::to_string(i) + "]: " + strerror(-rc);
      return false;
    }
  }
  for (size_t i = 0; i < p.syscalls.size(); ++i) {
    const SyscallRule& r = p.syscalls[i];
    std::string where = "syscalls[" + std::to_string(i) + "]";
    uint32_t action = 0;
    if (!parseAction(r.action, r.errnoRet, &action, err)) {
      *err = where + ".action: " + *err;
      return false;
    }
    if (action == defAction) continue;  // libseccomp refuses rules equal to the default
    std::vector<scmp_arg_cmp> cmps;
    for (size_t k = 0; k < r.args.size(); ++k) {
      scmp_compare op;
      if (!parseOp(r.args[k].op, &op)) {
        *err = where + ".args[" + std::to_string(k) + "].op: unknown operator \"" + r.args[k].op + "\"";
        return false;
      }
      if (r.args[k].index > 5) {
        *err = where + ".args[" + std::to_string(k) + "].index: must be 0..5";
        return false;
      }
      cmps.push_back(scmp_arg_cmp{r.args[k].index, op, r.args[k].value, r.args[k].valueTwo});
    }
    for (const auto& name : r.names) {
      int nr = seccomp_syscall_resolve_name(name.c_str());
      if (nr == __NR_SCMP_ERROR) {
        out->unknownSyscalls.push_back(name);
        continue;
      }
      int rc = seccomp_rule_add_array(ctx.get(), action, nr, unsigned(cmps.size()), cmps.data());
      if (rc < 0) {
        *err = where + ": rule for \"" + name + "\": " + strerror(-rc);
        return false;
      }
    }
  }
  int fd = memfd_create("seccomp-bpf", MFD_CLOEXEC);
  if (fd < 0) {
    *err = std::string("memfd_create: ") + strerror(errno);
    return false;
  }
  int rc = seccomp_export_bpf(ctx.get(), fd);
  if (rc < 0) {
    close(fd);
    *err = std::string("seccomp_export_bpf: ") + strerror(-rc);
    return false;
  }
  off_t size = lseek(fd, 0, SEEK_END);
  out->bpf.resize(size_t(size));
  bool ok = size >= 0 && pread(fd, out->bpf.data(), size_t(size), 0) == size;
  close(fd);
  if (!ok) {
    *err = "reading the exported filter failed";
    return false;
  }
  return true;
}

}  // namespace ss::seccomp

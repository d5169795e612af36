// The closed set of steps the runtime names in its errors. src/errors.ts carries the same
// list in the same order (test/unit/steps.test.ts checks that the two agree).
#pragma once

#include <cstddef>
#include <cstring>

namespace ss {

#define SS_STEPS(X)                                                                      \
  X(none) X(sync) X(setsid) X(cgroupns) X(mount_private) X(overlay) X(root_open)         \
  X(mount) X(bind) X(symlink) X(mask) X(readonly) X(pivot_root) X(root_readonly)         \
  X(loopback) X(hostname) X(rlimit) X(setgroups) X(setgid) X(setuid) X(capabilities)     \
  X(no_new_privs) X(chdir) X(resolve_exec) X(ready) X(close_fds) X(seccomp) X(execve)    \
  X(stdio) X(clone) X(id_map) X(cgroup) X(image) X(user) X(volume) X(config) X(state)    \
  X(spawner) X(setns) X(signal) X(freezer) X(cleanup)        \
  X(affinity) X(mempolicy) X(storage) X(network) X(checkpoint) X(restore)        \
  X(propagation) X(mknod) X(umask)

enum class Step : unsigned {
#define SS_ENUM(name) name,
  SS_STEPS(SS_ENUM)
#undef SS_ENUM
  count_
};

// Names as TypeScript spells them: underscores become dashes.
inline const char* stepName(Step s) {
  static const char* const names[] = {
#define SS_NAME(name) #name,
      SS_STEPS(SS_NAME)
#undef SS_NAME
  };
  static char dashed[static_cast<unsigned>(Step::count_)][32];
  unsigned i = static_cast<unsigned>(s);
  if (i >= static_cast<unsigned>(Step::count_)) return "none";
  if (dashed[i][0] == 0) {
    size_t n = strlen(names[i]);
    for (size_t k = 0; k < n && k < 31; ++k) dashed[i][k] = names[i][k] == '_' ? '-' : names[i][k];
  }
  return dashed[i];
}

inline bool stepFromName(const char* name, Step* out) {
  for (unsigned i = 0; i < static_cast<unsigned>(Step::count_); ++i) {
    if (strcmp(stepName(static_cast<Step>(i)), name) == 0) {
      *out = static_cast<Step>(i);
      return true;
    }
  }
  return false;
}

}  // namespace ss

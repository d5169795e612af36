// Device access control on cgroup v2: v2 has no devices.allow/deny files; the kernel instead
// runs a BPF_PROG_TYPE_CGROUP_DEVICE program attached to the cgroup for every open/mknod of a
// device node. This builds such a program from the same rules the v1 path writes, loads it
// and attaches it, replacing the program this runtime attached before.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ss::devices {

// One rule, as the TypeScript DeviceRule: type 'a' (any), 'b' or 'c'; major/minor -1 = any;
// access a non-empty subset of "rwm".
struct DeviceRule {
  bool allow = false;
  char type = 'a';
  int64_t major = -1;
  int64_t minor = -1;
  std::string access;
};

// Checks the rules; false with *err naming the first bad rule.
bool validRules(const std::vector<DeviceRule>& rules, std::string* err);

// The program as raw 8-byte BPF instructions (struct bpf_insn), for tests and inspection.
// Default deny; the last rule that matches decides. An allow rule matches when it grants every
// access requested, a deny rule when it names any of them.
std::vector<uint64_t> buildDeviceProgram(const std::vector<DeviceRule>& rules);

// Loads the program and attaches it to the cgroup v2 directory `cgroupDir` (BPF_CGROUP_DEVICE).
// Programs attached there before are replaced: atomically (BPF_F_REPLACE) when there is one,
// otherwise the new one is attached first and the old ones detached after, so no moment runs
// without a program. Returns 0, or an errno value with *err naming the failing call (and the
// verifier's log when the load fails).
int attachDeviceProgram(const std::string& cgroupDir, const std::vector<DeviceRule>& rules, std::string* err);

}  // namespace ss::devices

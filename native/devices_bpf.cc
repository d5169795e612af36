#include "devices_bpf.h"

#include <fcntl.h>
#include <linux/bpf.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>

namespace ss::devices {
namespace {

bpf_insn insn(uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm) {
  bpf_insn i;
  std::memset(&i, 0, sizeof i);
  i.code = code;
  i.dst_reg = dst & 0xf;
  i.src_reg = src & 0xf;
  i.off = off;
  i.imm = imm;
  return i;
}

// Registers: r1 holds the context (struct bpf_cgroup_dev_ctx); the rest are scratch. With no
// helper calls, r6 and r7 need no saving.
enum : uint8_t { R0 = 0, R1 = 1, R2 = 2, R3 = 3, R4 = 4, R5 = 5, R6 = 6, R7 = 7 };

bpf_insn loadCtxWord(uint8_t dst, int16_t off) { return insn(BPF_LDX | BPF_MEM | BPF_W, dst, R1, off, 0); }
bpf_insn and32(uint8_t dst, int32_t imm) { return insn(BPF_ALU | BPF_AND | BPF_K, dst, 0, 0, imm); }
bpf_insn rsh32(uint8_t dst, int32_t imm) { return insn(BPF_ALU | BPF_RSH | BPF_K, dst, 0, 0, imm); }
bpf_insn mov32reg(uint8_t dst, uint8_t src) { return insn(BPF_ALU | BPF_MOV | BPF_X, dst, src, 0, 0); }
bpf_insn mov64imm(uint8_t dst, int32_t imm) { return insn(BPF_ALU64 | BPF_MOV | BPF_K, dst, 0, 0, imm); }
bpf_insn jne(uint8_t dst, int32_t imm) { return insn(BPF_JMP | BPF_JNE | BPF_K, dst, 0, 0, imm); }
bpf_insn jeq(uint8_t dst, int32_t imm) { return insn(BPF_JMP | BPF_JEQ | BPF_K, dst, 0, 0, imm); }
bpf_insn exitInsn() { return insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0); }

int32_t accessBits(const std::string& access) {
  int32_t bits = 0;
  for (char c : access) {
    if (c == 'm') bits |= BPF_DEVCG_ACC_MKNOD;
    if (c == 'r') bits |= BPF_DEVCG_ACC_READ;
    if (c == 'w') bits |= BPF_DEVCG_ACC_WRITE;
  }
  return bits;
}

constexpr int32_t kAllAccess = BPF_DEVCG_ACC_MKNOD | BPF_DEVCG_ACC_READ | BPF_DEVCG_ACC_WRITE;

std::vector<bpf_insn> build(const std::vector<DeviceRule>& rules) {
  std::vector<bpf_insn> prog;
  // access_type is (BPF_DEVCG_ACC_* << 16) | BPF_DEVCG_DEV_* (include/uapi/linux/bpf.h).
  prog.push_back(loadCtxWord(R2, offsetof(bpf_cgroup_dev_ctx, access_type)));
  prog.push_back(mov32reg(R3, R2));
  prog.push_back(and32(R3, 0xffff));  // device type
  prog.push_back(mov32reg(R4, R2));
  prog.push_back(rsh32(R4, 16));  // requested access
  prog.push_back(loadCtxWord(R5, offsetof(bpf_cgroup_dev_ctx, major)));
  prog.push_back(loadCtxWord(R6, offsetof(bpf_cgroup_dev_ctx, minor)));
  // Last match wins, as with v1's devices.allow/deny lines written in order: test the rules
  // from the last one back and return on the first that matches.
  for (auto it = rules.rbegin(); it != rules.rend(); ++it) {
    const DeviceRule& r = *it;
    std::vector<bpf_insn> block;
    std::vector<size_t> skips;  // jumps to the end of this block
    if (r.type != 'a') {
      skips.push_back(block.size());
      block.push_back(jne(R3, r.type == 'b' ? BPF_DEVCG_DEV_BLOCK : BPF_DEVCG_DEV_CHAR));
    }
    if (r.major >= 0) {
      skips.push_back(block.size());
      block.push_back(jne(R5, int32_t(r.major)));
    }
    if (r.minor >= 0) {
      skips.push_back(block.size());
      block.push_back(jne(R6, int32_t(r.minor)));
    }
    int32_t bits = accessBits(r.access);
    block.push_back(mov32reg(R7, R4));
    skips.push_back(block.size() + 1);
    if (r.allow) {
      // Allowed only if every requested access is granted (v1's match_exception()).
      block.push_back(and32(R7, ~bits & kAllAccess));
      block.push_back(jne(R7, 0));
    } else {
      // Denied if any requested access is named (v1's match_exception_partial()).
      block.push_back(and32(R7, bits));
      block.push_back(jeq(R7, 0));
    }
    block.push_back(mov64imm(R0, r.allow ? 1 : 0));
    block.push_back(exitInsn());
    for (size_t at : skips) block[at].off = int16_t(block.size() - 1 - at);
    prog.insert(prog.end(), block.begin(), block.end());
  }
  prog.push_back(mov64imm(R0, 0));
  prog.push_back(exitInsn());
  return prog;
}

long bpf(int cmd, bpf_attr* attr) { return syscall(SYS_bpf, cmd, attr, sizeof *attr); }

int fail(std::string* err, const std::string& what) {
  int e = errno;
  if (err) *err = what;
  return e;
}

// Closes a descriptor on every way out.
struct Fd {
  int fd = -1;
  explicit Fd(int f) : fd(f) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd >= 0) close(fd);
  }
};

}  // namespace

bool validRules(const std::vector<DeviceRule>& rules, std::string* err) {
  for (size_t i = 0; i < rules.size(); i++) {
    const DeviceRule& r = rules[i];
    std::string at = "devices[" + std::to_string(i) + "]";
    if (r.type != 'a' && r.type != 'b' && r.type != 'c') return (*err = at + ".type: expected a, b or c"), false;
    if (r.type == 'a' && (r.major >= 0 || r.minor >= 0)) return (*err = at + ": type a takes no major or minor"), false;
    if (r.major > 0x7fffffff || r.minor > 0x7fffffff) return (*err = at + ": major or minor out of range"), false;
    if (r.access.empty() || r.access.find_first_not_of("rwm") != std::string::npos) {
      return (*err = at + ".access: expected a non-empty subset of rwm"), false;
    }
  }
  return true;
}

std::vector<uint64_t> buildDeviceProgram(const std::vector<DeviceRule>& rules) {
  std::vector<bpf_insn> prog = build(rules);
  std::vector<uint64_t> raw(prog.size());
  static_assert(sizeof(bpf_insn) == sizeof(uint64_t), "a BPF instruction is 8 bytes");
  std::memcpy(raw.data(), prog.data(), prog.size() * sizeof(bpf_insn));
  return raw;
}

int attachDeviceProgram(const std::string& cgroupDir, const std::vector<DeviceRule>& rules, std::string* err) {
  if (!validRules(rules, err)) return EINVAL;
  std::vector<bpf_insn> prog = build(rules);

  Fd cg(open(cgroupDir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (cg.fd < 0) return fail(err, "open `" + cgroupDir + "`");

  static const char kLicense[] = "GPL";
  std::vector<char> log(1 << 16);
  bpf_attr load;
  std::memset(&load, 0, sizeof load);
  load.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
  load.insns = reinterpret_cast<uint64_t>(prog.data());
  load.insn_cnt = uint32_t(prog.size());
  load.license = reinterpret_cast<uint64_t>(kLicense);
  std::strncpy(load.prog_name, "ss_devices", sizeof load.prog_name - 1);
  Fd progFd(int(bpf(BPF_PROG_LOAD, &load)));
  if (progFd.fd < 0) {
    // Load again with the verifier's log only on failure: logging slows every load.
    int saved = errno;
    load.log_level = 1;
    load.log_buf = reinterpret_cast<uint64_t>(log.data());
    load.log_size = uint32_t(log.size());
    long again = bpf(BPF_PROG_LOAD, &load);
    if (again >= 0) close(int(again));
    errno = saved;
    return fail(err, std::string("bpf(BPF_PROG_LOAD)") + (log[0] ? std::string("; verifier: ") + log.data() : ""));
  }

  uint32_t ids[64];
  bpf_attr query;
  std::memset(&query, 0, sizeof query);
  query.query.target_fd = uint32_t(cg.fd);
  query.query.attach_type = BPF_CGROUP_DEVICE;
  query.query.prog_ids = reinterpret_cast<uint64_t>(ids);
  query.query.prog_cnt = 64;
  if (bpf(BPF_PROG_QUERY, &query) < 0) return fail(err, "bpf(BPF_PROG_QUERY) `" + cgroupDir + "`");
  uint32_t count = query.query.prog_cnt;
  uint32_t oldFlags = query.query.attach_flags;

  bpf_attr attach;
  std::memset(&attach, 0, sizeof attach);
  attach.target_fd = uint32_t(cg.fd);
  attach.attach_bpf_fd = uint32_t(progFd.fd);
  attach.attach_type = BPF_CGROUP_DEVICE;

  if (count > 0 && !(oldFlags & BPF_F_ALLOW_MULTI)) {
    // Someone attached a single program (flags 0 or ALLOW_OVERRIDE): attaching with the same
    // flags replaces it in one step; ALLOW_MULTI would be refused (EPERM).
    attach.attach_flags = oldFlags;
    if (bpf(BPF_PROG_ATTACH, &attach) < 0) return fail(err, "bpf(BPF_PROG_ATTACH) `" + cgroupDir + "`");
    return 0;
  }

  attach.attach_flags = BPF_F_ALLOW_MULTI;
  if (count == 1) {
    bpf_attr byId;
    std::memset(&byId, 0, sizeof byId);
    byId.prog_id = ids[0];
    Fd old(int(bpf(BPF_PROG_GET_FD_BY_ID, &byId)));
    if (old.fd >= 0) {
      attach.attach_flags = BPF_F_ALLOW_MULTI | BPF_F_REPLACE;
      attach.replace_bpf_fd = uint32_t(old.fd);
      if (bpf(BPF_PROG_ATTACH, &attach) == 0) return 0;
      // BPF_F_REPLACE arrived in Linux 5.6; fall back to attach-then-detach.
      if (errno != EINVAL) return fail(err, "bpf(BPF_PROG_ATTACH, BPF_F_REPLACE) `" + cgroupDir + "`");
      attach.attach_flags = BPF_F_ALLOW_MULTI;
      attach.replace_bpf_fd = 0;
    }
  }
  if (bpf(BPF_PROG_ATTACH, &attach) < 0) return fail(err, "bpf(BPF_PROG_ATTACH) `" + cgroupDir + "`");
  // The new program runs beside the old ones now (all must allow), so detaching them one by
  // one never opens a window with fewer restrictions than either set.
  for (uint32_t i = 0; i < count && i < 64; i++) {
    bpf_attr byId;
    std::memset(&byId, 0, sizeof byId);
    byId.prog_id = ids[i];
    Fd old(int(bpf(BPF_PROG_GET_FD_BY_ID, &byId)));
    if (old.fd < 0) continue;  // detached meanwhile
    bpf_attr detach;
    std::memset(&detach, 0, sizeof detach);
    detach.target_fd = uint32_t(cg.fd);
    detach.attach_bpf_fd = uint32_t(old.fd);
    detach.attach_type = BPF_CGROUP_DEVICE;
    if (bpf(BPF_PROG_DETACH, &detach) < 0 && errno != ENOENT) return fail(err, "bpf(BPF_PROG_DETACH) `" + cgroupDir + "`");
  }
  return 0;
}

}  // namespace ss::devices

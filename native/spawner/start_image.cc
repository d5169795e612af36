#include "start_image.h"

#include <cstring>
#include <vector>

namespace ss {
namespace {

// Appends `bytes` at the next multiple of `align` and returns its offset.
uint32_t put(std::string& img, const void* bytes, size_t n, size_t align) {
  while (img.size() % align != 0) img.push_back('\0');
  uint32_t off = uint32_t(img.size());
  img.append(static_cast<const char*>(bytes), n);
  return off;
}

uint32_t putString(std::string& img, const std::string& s) { return put(img, s.c_str(), s.size() + 1, 1); }

}  // namespace

std::string flattenStart(const Plan& plan, uint32_t stdioMask) {
  // The header and the op table come first and are written last, once every offset is known.
  std::string img(sizeof(StartHeader) + plan.ops.size() * sizeof(FlatOp), '\0');
  StartHeader h;
  memset(&h, 0, sizeof h);
  h.magic = kStartMagic;
  h.nOps = uint32_t(plan.ops.size());
  h.opsOff = sizeof(StartHeader);
  h.stdioMask = stdioMask;
  std::vector<FlatOp> ops(plan.ops.size());
  for (size_t i = 0; i < plan.ops.size(); ++i) {
    const Op& op = plan.ops[i];
    FlatOp& fo = ops[i];
    memset(&fo, 0, sizeof fo);
    fo.step = static_cast<uint32_t>(op.step);
    fo.kindOff = putString(img, op.kind);
    fo.ns = uint32_t(op.s.size());  // parsePlan bounds it by kFlatMaxStrings
    for (size_t k = 0; k < op.s.size() && k < kFlatMaxStrings; ++k) fo.sOff[k] = putString(img, op.s[k]);
    fo.nn = uint32_t(op.n.size());
    fo.nOff = put(img, op.n.data(), op.n.size() * sizeof(uint64_t), 8);
    fo.ngids = uint32_t(op.gids.size());
    fo.gidsOff = put(img, op.gids.data(), op.gids.size() * sizeof(gid_t), 8);
  }
  auto strings = [&](const std::vector<std::string>& list, uint32_t* count, uint32_t* off) {
    std::vector<uint64_t> offs;
    offs.reserve(list.size() + 1);
    for (const auto& s : list) offs.push_back(putString(img, s));
    offs.push_back(0);
    *count = uint32_t(list.size());
    *off = put(img, offs.data(), offs.size() * sizeof(uint64_t), 8);
  };
  strings(plan.argv, &h.argc, &h.argvOff);
  strings(plan.env, &h.envc, &h.envOff);
  h.pathOff = putString(img, plan.searchPath);
  h.seccompLen = uint32_t(plan.seccomp.size());
  h.seccompOff = put(img, plan.seccomp.data(), plan.seccomp.size() * sizeof(sock_filter), 8);
  while (img.size() % 8 != 0) img.push_back('\0');
  h.size = uint32_t(img.size());
  memcpy(&img[0], &h, sizeof h);
  if (!ops.empty()) memcpy(&img[h.opsOff], ops.data(), ops.size() * sizeof(FlatOp));
  return img;
}

namespace {

bool within(size_t n, uint64_t off, uint64_t len) { return off <= n && len <= n - off; }

bool isString(const char* base, size_t n, uint32_t off) {
  return off < n && memchr(base + off, '\0', n - off) != nullptr;
}

bool relocate(char* base, size_t n, uint32_t count, uint32_t off) {
  if (off % 8 != 0 || !within(n, off, (uint64_t(count) + 1) * 8)) return false;
  uint64_t* slots = reinterpret_cast<uint64_t*>(base + off);
  for (uint32_t i = 0; i < count; ++i) {
    if (!isString(base, n, uint32_t(slots[i])) || slots[i] > UINT32_MAX) return false;
    slots[i] = reinterpret_cast<uint64_t>(base + slots[i]);
  }
  slots[count] = 0;
  return true;
}

}  // namespace

bool openStartImage(char* base, size_t n) {
  if (n < sizeof(StartHeader)) return false;
  StartHeader h;
  memcpy(&h, base, sizeof h);
  if (h.magic != kStartMagic || h.size != n || h.argc == 0) return false;
  if (!within(n, h.opsOff, uint64_t(h.nOps) * sizeof(FlatOp)) || h.opsOff % 8 != 0) return false;
  const FlatOp* ops = reinterpret_cast<const FlatOp*>(base + h.opsOff);
  for (uint32_t i = 0; i < h.nOps; ++i) {
    const FlatOp& o = ops[i];
    if (o.ns > kFlatMaxStrings || !isString(base, n, o.kindOff)) return false;
    for (uint32_t k = 0; k < o.ns; ++k)
      if (!isString(base, n, o.sOff[k])) return false;
    if (o.nOff % 8 != 0 || !within(n, o.nOff, uint64_t(o.nn) * 8)) return false;
    if (o.gidsOff % 8 != 0 || !within(n, o.gidsOff, uint64_t(o.ngids) * sizeof(gid_t))) return false;
  }
  if (!isString(base, n, h.pathOff)) return false;
  if (h.seccompOff % 8 != 0 || !within(n, h.seccompOff, uint64_t(h.seccompLen) * sizeof(sock_filter))) return false;
  return relocate(base, n, h.argc, h.argvOff) && relocate(base, n, h.envc, h.envOff);
}

}  // namespace ss

// Messages between the runtime (TypeScript, through the addon or a plain socket) and the
// spawner: a frame is a little-endian u32 length followed by that many bytes; the bytes are
// a list of fields, each a little-endian u32 length followed by the field's bytes. The first
// field names the message. src/spawner/wire.ts is the other side of this format.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ss::wire {

constexpr uint32_t kMaxFrame = 4u << 20;  // a plan is a few KiB; 4 MiB bounds a bad peer
// Every field costs at least its 4-byte length, so a frame could hold a million empty ones;
// no request needs more than this many (argv and env are bounded far below it).
constexpr size_t kMaxFields = 1u << 18;

using Fields = std::vector<std::string>;

inline void putU32(std::string& out, uint32_t v) {
  char b[4] = {char(v & 0xff), char((v >> 8) & 0xff), char((v >> 16) & 0xff), char((v >> 24) & 0xff)};
  out.append(b, 4);
}

inline uint32_t getU32(const char* p) {
  const unsigned char* u = reinterpret_cast<const unsigned char*>(p);
  return uint32_t(u[0]) | (uint32_t(u[1]) << 8) | (uint32_t(u[2]) << 16) | (uint32_t(u[3]) << 24);
}

inline std::string encode(const Fields& fields) {
  std::string body;
  for (const auto& f : fields) {
    putU32(body, uint32_t(f.size()));
    body += f;
  }
  std::string frame;
  putU32(frame, uint32_t(body.size()));
  frame += body;
  return frame;
}

// Decodes one frame's body; false when a field runs past the end or there are more than
// kMaxFields fields. Lengths are compared with what is left, never added to an offset
// first, so no length can wrap around.
inline bool decodeBody(const char* p, size_t n, Fields* out) {
  size_t off = 0;
  while (off < n) {
    if (n - off < 4 || out->size() >= kMaxFields) return false;
    uint32_t len = getU32(p + off);
    off += 4;
    if (len > n - off) return false;
    out->emplace_back(p + off, len);
    off += len;
  }
  return true;
}

}  // namespace ss::wire

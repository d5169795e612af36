// The start message: what a parked init still needs to become the container's process
// (argv, env, the PATH to resolve argv[0], the seccomp program, and the ops from the user's
// identity to execve), laid out flat so that the init can use it where it lands, in memory
// mapped before clone(), without allocating or parsing.
//
// Layout (native endianness, every offset from the start of the image, 8-byte aligned where
// it holds numbers): a StartHeader, then FlatOps, then u64 arrays (op numbers, and argv/env
// as offsets the init turns into pointers in place), then NUL-terminated strings.
#pragma once

#include <linux/filter.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "plan.h"

namespace ss {

constexpr uint32_t kStartMagic = 0x53535354;  // "TSSS"
// The region every init inherits (mapped once, MAP_NORESERVE: a page costs memory only in
// the init that writes it). Big enough for any image of a 4 MiB request: a field costs 4
// bytes on the wire and at most 9 + 8 (a pointer and a NUL) here.
constexpr size_t kStartRegion = 20u << 20;
// Images up to this size travel inside the message on the sync socket; larger ones in a
// memfd sent with it.
constexpr size_t kStartInline = 48u << 10;
constexpr size_t kFlatMaxStrings = 8;

struct StartHeader {
  uint32_t magic;
  uint32_t size;     // of the whole image
  uint32_t nOps;
  uint32_t opsOff;   // FlatOp[nOps]
  uint32_t argc, argvOff;  // u64[argc + 1]: string offsets, the last 0
  uint32_t envc, envOff;   // u64[envc + 1]
  uint32_t pathOff;        // the search PATH
  uint32_t seccompLen, seccompOff;  // sock_filter[seccompLen]
  uint32_t stdioMask;      // bit i: fd i is replaced by the next fd sent with the message
};

// What the sync socket carries at start: this header, then the image itself when `inlined`.
struct StartWire {
  uint32_t magic;
  uint32_t inlined;
  uint32_t size;  // of the image
  uint32_t reserved;
};

struct FlatOp {
  uint32_t step;
  uint32_t kindOff;
  uint32_t ns;
  uint32_t sOff[kFlatMaxStrings];
  uint32_t nn, nOff;  // u64[nn]
  uint32_t ngids, gidsOff;  // gid_t[ngids]
};

// The spawner's side: lays out a start plan (parsed by parsePlan) as an image. Allocates.
std::string flattenStart(const Plan& plan, uint32_t stdioMask);

// The init's side: checks that an image of `n` bytes at `base` is whole (every offset and
// count inside it, strings terminated) and turns argv and env into pointer arrays in place.
// Returns false when it is not. Allocates nothing.
bool openStartImage(char* base, size_t n);

}  // namespace ss

// What every part of the spawner shares: the log line format, the clock and the error a
// request fails with (it becomes the "error" reply the runtime turns into a RuntimeError).
#pragma once

#include <cstdint>
#include <string>

#include "../steps.h"
#include "../wire.h"

namespace ss {

// CLOCK_REALTIME in ms: what exit.json, exit events and the log index record.
int64_t nowMs();

void logf(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

struct Error {
  std::string code = "ESYSCALL";
  Step step = Step::spawner;
  int err = 0;
  std::string syscall;
  std::string path;
  std::string message;
};

wire::Fields errorReply(const Error& e);

// A decimal integer in [lo, hi] and nothing else (no sign unless lo < 0, no spaces, no
// trailing bytes); false otherwise. atoi would read "9x" as 9 and "" as 0.
bool parseInt(const std::string& s, int64_t lo, int64_t hi, int64_t* out);

// Field `field` of /proc/<pid>/stat as proc(5) numbers them (3 is the state, 4 the parent,
// 22 the start time), read past the command name (which may hold spaces and parentheses);
// "" when the process or the field is not there.
std::string procStatField(int pid, int field);

}  // namespace ss

// cgroup file writes. The isolation module (TypeScript) decides which file gets which value
// for v1 and v2; this is the one place that writes them, so every failure carries the file,
// the errno and the value (`write \`cpu.max\`: EINVAL (value "150000 100000")`).
#pragma once

#include <string>

namespace ss::cgroup {

// Writes `value` to `path` in one write(2), as the kernel wants for cgroup files. Returns 0 or
// an errno value; `syscall` names the call that failed.
int writeValue(const std::string& path, const std::string& value, const char** syscall);

// Reads a (small) kernel file whole: open, read until EOF, close — no fstat, one buffer.
int readValue(const std::string& path, std::string* out, const char** syscall);

}  // namespace ss::cgroup

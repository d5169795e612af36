#include "common.h"

#include <time.h>
#include <unistd.h>

#include <cstdarg>
#include <cstdio>
#include <cstring>

namespace ss {

int64_t nowMs() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

void logf(const char* fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  fprintf(stderr, "%lld spawner[%d]: %s\n", static_cast<long long>(nowMs()), getpid(), buf);
}

wire::Fields errorReply(const Error& e) {
  return {"error", e.code, stepName(e.step), std::to_string(e.err), e.err ? strerrorname_np(e.err) ?: "" : "",
          e.syscall, e.path, e.message};
}

bool parseInt(const std::string& s, int64_t lo, int64_t hi, int64_t* out) {
  size_t i = 0;
  bool neg = false;
  if (lo < 0 && !s.empty() && s[0] == '-') {
    neg = true;
    i = 1;
  }
  if (i >= s.size() || s.size() - i > 18) return false;  // 18 digits cannot overflow int64
  int64_t v = 0;
  for (; i < s.size(); ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  if (neg) v = -v;
  if (v < lo || v > hi) return false;
  *out = v;
  return true;
}

std::string procStatField(int pid, int field) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE* fp = fopen(path, "re");
  if (fp == nullptr) return "";
  char buf[4096];
  size_t n = fread(buf, 1, sizeof buf - 1, fp);
  fclose(fp);
  buf[n] = '\0';
  const char* p = strrchr(buf, ')');
  // After ')' comes " <field 3> <field 4> ...".
  for (int f = 2; p != nullptr && f < field; ++f) p = strchr(p + 1, ' ');
  if (p == nullptr) return "";
  return std::string(p + 1, strcspn(p + 1, " \n"));
}

}  // namespace ss

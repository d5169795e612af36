// N-API glue: the only file that includes napi.h. Most functions here are small and
// synchronous (one write of a cgroup file, compiling a seccomp filter, a non-blocking
// sendmsg). Those that can block, connecting to the spawner (its backlog may be full), a
// send to a full socket and NVML (the driver can take seconds to initialise), run on
// libuv's thread pool and return a Promise; everything slow in the spawner arrives on
// sockets the event loop watches.
#include <napi.h>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "cgroup.h"
#include "cgroup_batch.h"
#include "devices_bpf.h"
#include "nvml.h"
#include "pty.h"
#include "seccomp.h"
#include "socket.h"
#include "steps.h"
#include "unpack.h"

namespace {

struct AddonData {
  Napi::FunctionReference runtimeError;
  ss::cgroup::CounterTable counters;
};

const char* errnoName(int err) {
  const char* n = strerrorname_np(err);
  return n != nullptr ? n : "EUNKNOWN";
}

// A real RuntimeError (the class src/errors.ts defines, handed over by init()).
Napi::Value runtimeError(Napi::Env env, const std::string& message, const char* code, ss::Step step, int err,
                         const char* syscall, const std::string& path) {
  auto* data = env.GetInstanceData<AddonData>();
  if (data == nullptr || data->runtimeError.IsEmpty()) return Napi::Error::New(env, message).Value();
  Napi::Object fields = Napi::Object::New(env);
  fields.Set("code", code);
  fields.Set("step", ss::stepName(step));
  if (err != 0) {
    fields.Set("errno", errnoName(err));
    fields.Set("errnoNumber", err);
  }
  if (syscall != nullptr) fields.Set("syscall", syscall);
  if (!path.empty()) fields.Set("path", path);
  return data->runtimeError.New({Napi::String::New(env, message), fields});
}

[[noreturn]] void throwRuntime(Napi::Env env, const std::string& message, const char* code, ss::Step step,
                               int err, const char* syscall, const std::string& path) {
  throw Napi::Error(env, runtimeError(env, message, code, step, err, syscall, path));
}

[[noreturn]] void throwSys(Napi::Env env, ss::Step step, int err, const char* syscall, const std::string& path,
                           const std::string& extra = "") {
  std::string msg = std::string(syscall) + " `" + path + "`: " + errnoName(err);
  if (!extra.empty()) msg += " (" + extra + ")";
  throwRuntime(env, msg, "ESYSCALL", step, err, syscall, path);
}

Napi::Value Init(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsFunction()) throw Napi::TypeError::New(env, "init(RuntimeError): a class is required");
  env.GetInstanceData<AddonData>()->runtimeError = Napi::Persistent(info[0].As<Napi::Function>());
  Napi::Array steps = Napi::Array::New(env);
  for (unsigned i = 0; i < unsigned(ss::Step::count_); ++i) steps.Set(i, ss::stepName(ss::Step(i)));
  return steps;
}

// A failure on the worker thread, turned into a RuntimeError back on the JS thread.
struct Failure {
  std::string message;
  const char* code = "ESYSCALL";
  ss::Step step = ss::Step::none;
  int err = 0;
  const char* syscall = nullptr;
  std::string path;
};

Failure sysFailure(ss::Step step, int err, const char* syscall, const std::string& path) {
  return {std::string(syscall) + " `" + path + "`: " + errnoName(err), "ESYSCALL", step, err, syscall, path};
}

// Runs Work() on the thread pool and settles a promise with Result() or a RuntimeError.
// Work() must not touch JavaScript values; it returns false with `failure` filled in.
class PromiseWorker : public Napi::AsyncWorker {
 public:
  explicit PromiseWorker(Napi::Env env, const char* name)
      : Napi::AsyncWorker(env, name), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise Start() {
    Napi::Promise p = deferred_.Promise();
    Queue();  // the worker deletes itself once it has settled the promise
    return p;
  }

 protected:
  virtual bool Work() = 0;
  virtual Napi::Value Result(Napi::Env env) = 0;
  Failure failure;

 private:
  void Execute() override {
    if (!Work()) SetError(failure.message.empty() ? std::string("failed") : failure.message);
  }
  void OnOK() override { deferred_.Resolve(Result(Env())); }
  void OnError(const Napi::Error& e) override {
    // An exception out of Work() (std::bad_alloc) left no failure behind.
    if (failure.message.empty()) return deferred_.Reject(e.Value());
    deferred_.Reject(runtimeError(Env(), failure.message, failure.code, failure.step, failure.err, failure.syscall,
                                  failure.path));
  }
  Napi::Promise::Deferred deferred_;
};

// Argument errors reject too, so a caller has one way to see every failure.
Napi::Value rejected(Napi::Env env, const Napi::Error& e) {
  Napi::Promise::Deferred d = Napi::Promise::Deferred::New(env);
  d.Reject(e.Value());
  return d.Promise();
}

// The fds argument of request/send: at most sock::kMaxFds numbers.
std::vector<int> fdList(Napi::Env env, const Napi::CallbackInfo& info, size_t index, const char* fn) {
  std::vector<int> fds;
  if (info.Length() <= index || !info[index].IsArray()) return fds;
  Napi::Array a = info[index].As<Napi::Array>();
  if (a.Length() > ss::sock::kMaxFds) throw Napi::RangeError::New(env, std::string(fn) + ": at most 16 fds");
  for (uint32_t i = 0; i < a.Length(); ++i) {
    Napi::Value v = a.Get(i);
    if (!v.IsNumber()) throw Napi::TypeError::New(env, std::string(fn) + ": fds must be numbers");
    fds.push_back(v.As<Napi::Number>().Int32Value());
  }
  return fds;
}

Failure connectFailure(const std::string& path, int e) {
  return {"connect `" + path + "`: " + errnoName(e), "ENOSPAWNER", ss::Step::spawner, e, "connect", path};
}

// connect() on the thread pool (it waits while the spawner's backlog is full), then, for
// request(), the frame with its fds. The fds are the caller's, which must keep them open
// until the promise settles: they are only named in SCM_RIGHTS (the kernel takes its own
// references), never closed here. The connected socket belongs to this worker until the
// promise resolves with it; on any failure, or when the environment goes away first, it is
// closed here.
class ConnectWorker : public PromiseWorker {
 public:
  ConnectWorker(Napi::Env env, std::string path, std::vector<uint8_t> frame, std::vector<int> fds)
      : PromiseWorker(env, "stratoswarm:connect"), path_(std::move(path)), frame_(std::move(frame)), fds_(std::move(fds)) {}
  ~ConnectWorker() override {
    if (fd_ >= 0) close(fd_);
  }

 private:
  bool Work() override {
    int e = 0;
    const char* syscall = "";
    fd_ = ss::sock::connectUnix(path_, &e, &syscall);
    if (fd_ < 0) {
      // A path that cannot be a socket address, or no socket: the call failed, not the spawner.
      bool refused = strcmp(syscall, "connect") == 0 && e != ENAMETOOLONG;
      failure = refused ? connectFailure(path_, e) : sysFailure(ss::Step::spawner, e, syscall, path_);
      return false;
    }
    // The fds must arrive with the first byte of the frame; the rest may follow.
    size_t off = 0;
    while (off < frame_.size()) {
      bool first = off == 0;
      ssize_t n = ss::sock::sendWithFds(fd_, frame_.data() + off, frame_.size() - off, first ? fds_.data() : nullptr,
                                        first ? fds_.size() : 0, true, 30000, &e);
      if (n < 0) {
        failure = sysFailure(ss::Step::spawner, e, "sendmsg", path_);
        return false;
      }
      off += size_t(n);
    }
    return true;
  }
  Napi::Value Result(Napi::Env env) override {
    int fd = fd_;
    fd_ = -1;  // JavaScript owns it now
    return Napi::Number::New(env, fd);
  }

  std::string path_;
  std::vector<uint8_t> frame_;
  std::vector<int> fds_;
  int fd_ = -1;
};

// request(socketPath, frame, fds?) -> Promise<fd> of a connected socket on which `frame`
// (and the fds, with SCM_RIGHTS) has been sent. JavaScript reads the replies from that fd.
// connect(socketPath) -> Promise<fd>: the same without a frame (a persistent connection).
Napi::Value Connect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  try {
    if (!info[0].IsString()) throw Napi::TypeError::New(env, "connect: the socket path must be a string");
    std::vector<uint8_t> frame;
    std::vector<int> fds;
    if (info.Length() > 1 && !info[1].IsUndefined()) {
      if (!info[1].IsBuffer()) throw Napi::TypeError::New(env, "request: the frame must be a Buffer");
      Napi::Buffer<uint8_t> b = info[1].As<Napi::Buffer<uint8_t>>();
      frame.assign(b.Data(), b.Data() + b.Length());
      fds = fdList(env, info, 2, "request");
    }
    return (new ConnectWorker(env, info[0].As<Napi::String>(), std::move(frame), std::move(fds)))->Start();
  } catch (const Napi::Error& e) {
    return rejected(env, e);
  }
}

// send(fd, frame, fds?) -> bytes sent: one non-blocking sendmsg() on a connected socket, the
// fds with the frame's first byte. 0: the socket had no room and nothing was sent (neither
// the fds): sendWhenWritable() then. The caller writes any rest of the frame itself.
Napi::Value Send(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber() || !info[1].IsBuffer()) throw Napi::TypeError::New(env, "send(fd, frame, fds?)");
  int fd = info[0].As<Napi::Number>().Int32Value();
  Napi::Buffer<uint8_t> frame = info[1].As<Napi::Buffer<uint8_t>>();
  std::vector<int> fds = fdList(env, info, 2, "send");
  int e = 0;
  ssize_t n = ss::sock::sendWithFds(fd, frame.Data(), frame.Length(), fds.data(), fds.size(), false, 0, &e);
  if (n < 0) throwRuntime(env, std::string("sendmsg: ") + errnoName(e), "ENOSPAWNER", ss::Step::spawner, e, "sendmsg", "");
  return Napi::Number::New(env, double(n));
}

// peerGone(fd) -> whether the other end has gone; never waits.
Napi::Value PeerGone(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber()) throw Napi::TypeError::New(env, "peerGone(fd)");
  return Napi::Boolean::New(env, ss::sock::peerGone(info[0].As<Napi::Number>().Int32Value()));
}

// The fallback of send() when the socket is full: the same sendmsg() on the thread pool,
// once the socket has room (at most 30 s). It works on a dup of the fd, so the socket being
// closed meanwhile cannot send the frame to another file that reused the number. The frame
// is copied; the fds must stay open until the promise settles.
class SendWorker : public PromiseWorker {
 public:
  SendWorker(Napi::Env env, int fd, std::vector<uint8_t> frame, std::vector<int> fds)
      : PromiseWorker(env, "stratoswarm:send"), fd_(fd), frame_(std::move(frame)), fds_(std::move(fds)) {}
  ~SendWorker() override {
    if (fd_ >= 0) close(fd_);
  }

 private:
  bool Work() override {
    int e = 0;
    sent_ = ss::sock::sendWithFds(fd_, frame_.data(), frame_.size(), fds_.data(), fds_.size(), true, 30000, &e);
    if (sent_ < 0) failure = {std::string("sendmsg: ") + errnoName(e), "ENOSPAWNER", ss::Step::spawner, e, "sendmsg", ""};
    return sent_ >= 0;
  }
  Napi::Value Result(Napi::Env env) override { return Napi::Number::New(env, double(sent_)); }

  int fd_;
  std::vector<uint8_t> frame_;
  std::vector<int> fds_;
  ssize_t sent_ = 0;
};

// sendWhenWritable(fd, frame, fds?) -> Promise<bytes sent>.
Napi::Value SendWhenWritable(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  try {
    if (!info[0].IsNumber() || !info[1].IsBuffer()) throw Napi::TypeError::New(env, "sendWhenWritable(fd, frame, fds?)");
    Napi::Buffer<uint8_t> frame = info[1].As<Napi::Buffer<uint8_t>>();
    std::vector<int> fds = fdList(env, info, 2, "sendWhenWritable");
    int dup = fcntl(info[0].As<Napi::Number>().Int32Value(), F_DUPFD_CLOEXEC, 0);
    if (dup < 0) throwSys(env, ss::Step::spawner, errno, "fcntl", "", "F_DUPFD_CLOEXEC");
    return (new SendWorker(env, dup, std::vector<uint8_t>(frame.Data(), frame.Data() + frame.Length()), std::move(fds)))
        ->Start();
  } catch (const Napi::Error& e) {
    return rejected(env, e);
  }
}

// pipe() -> [readFd, writeFd], both close-on-exec.
Napi::Value Pipe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0) throwSys(env, ss::Step::stdio, errno, "pipe2", "");
  Napi::Array a = Napi::Array::New(env, 2);
  a.Set(0u, p[0]);
  a.Set(1u, p[1]);
  return a;
}

// openPty(uid, gid[, root]) -> { master, slave, path }: a terminal for a container process, in
// the host's devpts or (root given) in the container's.
Napi::Value OpenPty(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ss::PtyPair p;
  const char* what = "";
  unsigned uid = info[0].As<Napi::Number>().Uint32Value(), gid = info[1].As<Napi::Number>().Uint32Value();
  if (info.Length() > 2 && info[2].IsString()) {
    std::string root = info[2].As<Napi::String>();
    if (ss::openPtyIn(root.c_str(), &p, uid, gid, &what) < 0) throwSys(env, ss::Step::stdio, errno, what, root + "/dev/pts/ptmx");
  } else if (ss::openPty(&p, uid, gid, &what) < 0) {
    throwSys(env, ss::Step::stdio, errno, what, "/dev/ptmx");
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("master", p.master);
  o.Set("slave", p.slave);
  o.Set("path", p.path);
  return o;
}

// tryLock(fd) -> whether this open file now holds an exclusive flock on it (false: another
// one does). The kernel drops the lock when the last fd of the open file closes, a process
// that dies included, so a lock is never left stale.
Napi::Value TryLock(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
    if (errno == EWOULDBLOCK) return Napi::Boolean::New(env, false);
    if (errno != EINTR) throwSys(env, ss::Step::state, errno, "flock", "");
  }
  return Napi::Boolean::New(env, true);
}

Napi::Value Close(const Napi::CallbackInfo& info) {
  close(info[0].As<Napi::Number>().Int32Value());
  return info.Env().Undefined();
}

// cgroupWrite(path, value): one write(2); errors name the file, the errno and the value.
Napi::Value CgroupWrite(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = info[0].As<Napi::String>();
  std::string value = info[1].As<Napi::String>();
  const char* syscall = "write";
  int err = ss::cgroup::writeValue(path, value, &syscall);
  if (err != 0) {
    std::string base = path.substr(path.find_last_of('/') + 1);
    std::string msg = std::string(syscall) + " `" + base + "`: " + errnoName(err) + " (value \"" + value + "\")";
    throwRuntime(env, msg, "ESYSCALL", ss::Step::cgroup, err, syscall, path);
  }
  return env.Undefined();
}

// cgroupRead(path) -> string: errors name the file and the errno.
Napi::Value CgroupRead(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = info[0].As<Napi::String>();
  std::string out;
  const char* syscall = "read";
  int err = ss::cgroup::readValue(path, &out, &syscall);
  if (err != 0) {
    std::string msg = std::string(syscall) + " `" + path + "`: " + errnoName(err);
    throwRuntime(env, msg, err == ENOENT ? "ENOTFOUND" : "ESYSCALL", ss::Step::cgroup, err, syscall, path);
  }
  return Napi::String::New(env, out);
}

// counterOpen(path, keys) -> handle: the file stays open for counterRead (cgroup_batch.h).
Napi::Value CounterOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = info[0].As<Napi::String>();
  std::vector<std::string> keys;
  if (info[1].IsArray()) {
    Napi::Array a = info[1].As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); ++i) keys.push_back(a.Get(i).As<Napi::String>().Utf8Value());
  }
  const char* syscall = "open";
  int h = env.GetInstanceData<AddonData>()->counters.open(path, std::move(keys), &syscall);
  if (h < 0) {
    std::string msg = std::string(syscall) + " `" + path + "`: " + errnoName(-h);
    throwRuntime(env, msg, -h == ENOENT ? "ENOTFOUND" : "ESYSCALL", ss::Step::cgroup, -h, syscall, path);
  }
  return Napi::Number::New(env, h);
}

Napi::Value CounterClose(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  env.GetInstanceData<AddonData>()->counters.close(info[0].As<Napi::Number>().Int32Value());
  return env.Undefined();
}

// counterRead(handles: Int32Array, out: Float64Array, errors: Int32Array) -> values stored.
Napi::Value CounterRead(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsTypedArray() || !info[1].IsTypedArray() || !info[2].IsTypedArray()) {
    throw Napi::TypeError::New(env, "counterRead(handles: Int32Array, out: Float64Array, errors: Int32Array)");
  }
  auto handles = info[0].As<Napi::Int32Array>();
  auto out = info[1].As<Napi::Float64Array>();
  auto errors = info[2].As<Napi::Int32Array>();
  if (errors.ElementLength() < handles.ElementLength()) throw Napi::RangeError::New(env, "counterRead: errors is shorter than handles");
  std::size_t n = env.GetInstanceData<AddonData>()->counters.read(handles.Data(), handles.ElementLength(), out.Data(),
                                                                   out.ElementLength(), errors.Data());
  return Napi::Number::New(env, double(n));
}

std::string getString(const Napi::Object& o, const char* key, const std::string& dflt = "") {
  Napi::Value v = o.Get(key);
  return v.IsString() ? v.As<Napi::String>().Utf8Value() : dflt;
}

uint64_t getU64(Napi::Value v) {
  if (v.IsBigInt()) {
    bool lossless = true;
    return v.As<Napi::BigInt>().Uint64Value(&lossless);
  }
  return v.IsNumber() ? uint64_t(v.As<Napi::Number>().Int64Value()) : 0;
}

// compileSeccomp(profile) -> { bpf: Buffer, unknownSyscalls: string[] }. The profile has the
// OCI `linux.seccomp` shape; src/secure-runtime validates it before it gets here.
Napi::Value CompileSeccomp(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = info[0].As<Napi::Object>();
  ss::seccomp::Profile p;
  p.defaultAction = getString(o, "defaultAction");
  if (o.Get("defaultErrnoRet").IsNumber()) p.defaultErrnoRet = o.Get("defaultErrnoRet").As<Napi::Number>().Int32Value();
  if (o.Get("architectures").IsArray()) {
    Napi::Array a = o.Get("architectures").As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); ++i) p.architectures.push_back(a.Get(i).As<Napi::String>());
  }
  if (o.Get("syscalls").IsArray()) {
    Napi::Array rules = o.Get("syscalls").As<Napi::Array>();
    for (uint32_t i = 0; i < rules.Length(); ++i) {
      Napi::Object r = rules.Get(i).As<Napi::Object>();
      ss::seccomp::SyscallRule rule;
      rule.action = getString(r, "action");
      if (r.Get("errnoRet").IsNumber()) rule.errnoRet = r.Get("errnoRet").As<Napi::Number>().Int32Value();
      Napi::Array names = r.Get("names").As<Napi::Array>();
      for (uint32_t k = 0; k < names.Length(); ++k) rule.names.push_back(names.Get(k).As<Napi::String>());
      if (r.Get("args").IsArray()) {
        Napi::Array args = r.Get("args").As<Napi::Array>();
        for (uint32_t k = 0; k < args.Length(); ++k) {
          Napi::Object a = args.Get(k).As<Napi::Object>();
          ss::seccomp::ArgRule ar;
          ar.index = unsigned(getU64(a.Get("index")));
          ar.op = getString(a, "op");
          ar.value = getU64(a.Get("value"));
          ar.valueTwo = getU64(a.Get("valueTwo"));
          rule.args.push_back(ar);
        }
      }
      p.syscalls.push_back(std::move(rule));
    }
  }
  ss::seccomp::Result res;
  std::string err;
  if (!ss::seccomp::compile(p, &res, &err)) {
    throwRuntime(env, "compile seccomp profile: " + err, "EINVAL", ss::Step::seccomp, EINVAL, nullptr, "");
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("bpf", Napi::Buffer<uint8_t>::Copy(env, res.bpf.data(), res.bpf.size()));
  Napi::Array unknown = Napi::Array::New(env, res.unknownSyscalls.size());
  for (size_t i = 0; i < res.unknownSyscalls.size(); ++i) unknown.Set(uint32_t(i), res.unknownSyscalls[i]);
  out.Set("unknownSyscalls", unknown);
  return out;
}

// attachDeviceProgram(cgroupDir, rules): the cgroup v2 device filter (an eBPF program).
Napi::Value AttachDeviceProgram(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string dir = info[0].As<Napi::String>();
  Napi::Array rules = info[1].As<Napi::Array>();
  std::vector<ss::devices::DeviceRule> out;
  for (uint32_t i = 0; i < rules.Length(); ++i) {
    Napi::Object r = rules.Get(i).As<Napi::Object>();
    ss::devices::DeviceRule rule;
    rule.allow = r.Get("allow").ToBoolean();
    std::string type = getString(r, "type", "a");
    rule.type = type.empty() ? 'a' : type[0];
    rule.major = r.Get("major").IsNumber() ? r.Get("major").As<Napi::Number>().Int64Value() : -1;
    rule.minor = r.Get("minor").IsNumber() ? r.Get("minor").As<Napi::Number>().Int64Value() : -1;
    rule.access = getString(r, "access");
    out.push_back(rule);
  }
  std::string err;
  int rc = ss::devices::attachDeviceProgram(dir, out, &err);
  if (rc != 0) throwRuntime(env, err + ": " + errnoName(rc), "ESYSCALL", ss::Step::cgroup, rc, "bpf", dir);
  return env.Undefined();
}

// dlopen, nvmlInit and every query on the thread pool: a driver that is slow to initialise
// (seconds, on a host with many GPUs) does not stop the event loop.
class NvmlWorker : public PromiseWorker {
 public:
  NvmlWorker(Napi::Env env, std::string library) : PromiseWorker(env, "stratoswarm:nvml"), library_(std::move(library)) {}

 private:
  bool Work() override {
    std::string err;
    if (ss::nvml::inventory(library_, &inv_, &err)) return true;
    bool loadFailed = err.rfind("dlopen", 0) == 0 || err.find(" lacks ") != std::string::npos;
    failure = {"NVML: " + err, loadFailed ? "ELOAD" : "ESYSCALL", ss::Step::none, 0, nullptr,
               inv_.library.empty() ? library_ : inv_.library};
    return false;
  }
  Napi::Value Result(Napi::Env env) override {
    Napi::Object out = Napi::Object::New(env);
    out.Set("library", inv_.library);
    out.Set("driverVersion", inv_.driverVersion);
    Napi::Array devices = Napi::Array::New(env, inv_.devices.size());
    for (size_t i = 0; i < inv_.devices.size(); ++i) {
      const auto& d = inv_.devices[i];
      Napi::Object o = Napi::Object::New(env);
      o.Set("index", d.index);
      o.Set("name", d.name);
      o.Set("uuid", d.uuid);
      o.Set("pciBusId", d.pciBusId);
      o.Set("minor", d.minor);
      o.Set("memoryTotal", Napi::Number::New(env, double(d.memoryTotal)));
      o.Set("memoryUsed", Napi::Number::New(env, double(d.memoryUsed)));
      o.Set("gpuUtilization", d.gpuUtilization);
      o.Set("memoryUtilization", d.memoryUtilization);
      Napi::Array procs = Napi::Array::New(env, d.processes.size());
      for (size_t j = 0; j < d.processes.size(); ++j) {
        Napi::Object p = Napi::Object::New(env);
        p.Set("pid", d.processes[j].pid);
        p.Set("usedMemory", Napi::Number::New(env, double(d.processes[j].usedMemory)));
        p.Set("smUtilization", d.processes[j].smUtilization);
        p.Set("memoryUtilization", d.processes[j].memoryUtilization);
        procs.Set(uint32_t(j), p);
      }
      o.Set("processes", procs);
      o.Set("migMode", d.migMode);
      Napi::Array migs = Napi::Array::New(env, d.migDevices.size());
      for (size_t j = 0; j < d.migDevices.size(); ++j) {
        const auto& m = d.migDevices[j];
        Napi::Object mo = Napi::Object::New(env);
        mo.Set("index", m.index);
        mo.Set("name", m.name);
        mo.Set("uuid", m.uuid);
        mo.Set("memoryTotal", Napi::Number::New(env, double(m.memoryTotal)));
        mo.Set("gpuInstanceId", m.gpuInstanceId);
        mo.Set("computeInstanceId", m.computeInstanceId);
        migs.Set(uint32_t(j), mo);
      }
      o.Set("migDevices", migs);
      Napi::Array peers = Napi::Array::New(env, d.nvlinkPeerBusIds.size());
      for (size_t j = 0; j < d.nvlinkPeerBusIds.size(); ++j) peers.Set(uint32_t(j), d.nvlinkPeerBusIds[j]);
      o.Set("nvlinkPeerBusIds", peers);
      Napi::Array levels = Napi::Array::New(env, d.pcieLevels.size());
      for (size_t j = 0; j < d.pcieLevels.size(); ++j) levels.Set(uint32_t(j), d.pcieLevels[j]);
      o.Set("pcieLevels", levels);
      devices.Set(uint32_t(i), o);
    }
    out.Set("devices", devices);
    return out;
  }

  std::string library_;
  ss::nvml::Inventory inv_;
};

// nvmlInventory(libraryPath?) -> Promise<{ library, driverVersion, devices: [...] }>. Loads
// NVML with dlopen for the call only; a host without the driver gets an ELOAD rejection
// naming dlopen.
Napi::Value NvmlInventory(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string lib = info.Length() > 0 && info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
  return (new NvmlWorker(env, std::move(lib)))->Start();
}

// unpackOpenRoot(dir) -> fd: the layer directory being unpacked, as an O_PATH fd.
Napi::Value UnpackOpenRoot(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = info[0].As<Napi::String>();
  int fd = -1;
  int err = ss::unpack::openRoot(path, &fd);
  if (err != 0) throwSys(env, ss::Step::image, err, "open", path);
  return Napi::Number::New(env, fd);
}

// unpackCreate(rootFd, { kind, path, mode, target }) -> fd of a new file, or -1.
Napi::Value UnpackCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int root = info[0].As<Napi::Number>().Int32Value();
  Napi::Object o = info[1].As<Napi::Object>();
  static const std::pair<const char*, ss::unpack::Kind> kinds[] = {
      {"directory", ss::unpack::Kind::directory}, {"file", ss::unpack::Kind::file},
      {"symlink", ss::unpack::Kind::symlink},     {"hardlink", ss::unpack::Kind::hardlink},
      {"fifo", ss::unpack::Kind::fifo},           {"whiteout", ss::unpack::Kind::whiteout},
      {"opaque", ss::unpack::Kind::opaque}};
  std::string kind = getString(o, "kind");
  ss::unpack::Entry e{ss::unpack::Kind::file, getString(o, "path"), 0, getString(o, "target")};
  bool known = false;
  for (const auto& [name, k] : kinds) {
    if (kind == name) {
      e.kind = k;
      known = true;
    }
  }
  if (!known) throwRuntime(env, "unpack: unknown entry kind \"" + kind + "\"", "EINVAL", ss::Step::image, 0, nullptr, e.path);
  Napi::Value mode = o.Get("mode");
  e.mode = mode.IsNumber() ? mode.As<Napi::Number>().Uint32Value() : 0755;
  int fd = -1;
  const char* call = "";
  int err = ss::unpack::create(root, e, &fd, &call);
  if (err != 0) throwSys(env, ss::Step::image, err, call, e.path, e.kind == ss::unpack::Kind::hardlink ? "link to `" + e.target + "`" : "");
  return Napi::Number::New(env, fd);
}

// unpackMeta(rootFd, { path, uid, gid, mode, mtimeSec, mtimeNsec, isSymlink, xattrs: [[name, Buffer]] }).
Napi::Value UnpackMeta(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int root = info[0].As<Napi::Number>().Int32Value();
  Napi::Object o = info[1].As<Napi::Object>();
  ss::unpack::Meta m;
  m.path = getString(o, "path");
  auto num = [&](const char* key, int64_t dflt) {
    Napi::Value v = o.Get(key);
    return v.IsNumber() ? v.As<Napi::Number>().Int64Value() : dflt;
  };
  m.uid = num("uid", -1);
  m.gid = num("gid", -1);
  m.mode = num("mode", -1);
  m.mtimeSec = num("mtimeSec", -1);
  m.mtimeNsec = num("mtimeNsec", 0);
  m.isSymlink = o.Get("isSymlink").ToBoolean();
  Napi::Value xv = o.Get("xattrs");
  if (xv.IsArray()) {
    Napi::Array xa = xv.As<Napi::Array>();
    for (uint32_t i = 0; i < xa.Length(); ++i) {
      Napi::Array pair = xa.Get(i).As<Napi::Array>();
      Napi::Buffer<char> value = pair.Get(1u).As<Napi::Buffer<char>>();
      m.xattrs.emplace_back(pair.Get(0u).As<Napi::String>().Utf8Value(), std::string(value.Data(), value.Length()));
    }
  }
  const char* call = "";
  int err = ss::unpack::setMeta(root, m, &call);
  if (err != 0) throwSys(env, ss::Step::image, err, call, m.path);
  return env.Undefined();
}

Napi::Object Module(Napi::Env env, Napi::Object exports) {
  env.SetInstanceData(new AddonData());
  exports.Set("init", Napi::Function::New(env, Init, "init"));
  exports.Set("request", Napi::Function::New(env, Connect, "request"));
  exports.Set("connect", Napi::Function::New(env, Connect, "connect"));
  exports.Set("send", Napi::Function::New(env, Send, "send"));
  exports.Set("peerGone", Napi::Function::New(env, PeerGone, "peerGone"));
  exports.Set("sendWhenWritable", Napi::Function::New(env, SendWhenWritable, "sendWhenWritable"));
  exports.Set("pipe", Napi::Function::New(env, Pipe, "pipe"));
  exports.Set("close", Napi::Function::New(env, Close, "close"));
  exports.Set("tryLock", Napi::Function::New(env, TryLock, "tryLock"));
  exports.Set("openPty", Napi::Function::New(env, OpenPty, "openPty"));
  exports.Set("cgroupWrite", Napi::Function::New(env, CgroupWrite, "cgroupWrite"));
  exports.Set("cgroupRead", Napi::Function::New(env, CgroupRead, "cgroupRead"));
  exports.Set("counterOpen", Napi::Function::New(env, CounterOpen, "counterOpen"));
  exports.Set("counterClose", Napi::Function::New(env, CounterClose, "counterClose"));
  exports.Set("counterRead", Napi::Function::New(env, CounterRead, "counterRead"));
  exports.Set("compileSeccomp", Napi::Function::New(env, CompileSeccomp, "compileSeccomp"));
  exports.Set("attachDeviceProgram", Napi::Function::New(env, AttachDeviceProgram, "attachDeviceProgram"));
  exports.Set("nvmlInventory", Napi::Function::New(env, NvmlInventory, "nvmlInventory"));
  exports.Set("unpackOpenRoot", Napi::Function::New(env, UnpackOpenRoot, "unpackOpenRoot"));
  exports.Set("unpackCreate", Napi::Function::New(env, UnpackCreate, "unpackCreate"));
  exports.Set("unpackMeta", Napi::Function::New(env, UnpackMeta, "unpackMeta"));
  return exports;
}

}  // namespace

NODE_API_MODULE(stratoswarm_native, Module)

// N-API glue: the only file that includes napi.h. Most functions here are small and
// synchronous (one write of a cgroup file, compiling a seccomp filter). The two that can
// block, connecting to the spawner (its socket may be full) and NVML (the driver can take
// seconds to initialise), run on libuv's thread pool and return a Promise; everything slow
// in the spawner arrives on sockets the event loop watches.
#include <napi.h>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
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
#include "seccomp.h"
#include "steps.h"

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

// connect() and sendmsg() on the thread pool. The frame is copied; the fds are the
// caller's, which must keep them open until the promise settles: they are only named in
// SCM_RIGHTS (the kernel takes its own references), never closed here. The connected
// socket belongs to this worker until the promise resolves with it; on any failure, or
// when the environment goes away first, it is closed here.
class RequestWorker : public PromiseWorker {
 public:
  RequestWorker(Napi::Env env, std::string path, std::vector<uint8_t> frame, std::vector<int> fds)
      : PromiseWorker(env, "stratoswarm:request"), path_(std::move(path)), frame_(std::move(frame)), fds_(std::move(fds)) {}
  ~RequestWorker() override {
    if (fd_ >= 0) close(fd_);
  }

 private:
  bool Work() override {
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    if (path_.size() >= sizeof addr.sun_path) {
      failure = sysFailure(ss::Step::spawner, ENAMETOOLONG, "connect", path_);
      return false;
    }
    memcpy(addr.sun_path, path_.c_str(), path_.size() + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      failure = sysFailure(ss::Step::spawner, errno, "socket", path_);
      return false;
    }
    int rc;
    do rc = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    while (rc < 0 && errno == EINTR);
    if (rc < 0) {
      int e = errno;
      close(fd);
      failure = {"connect `" + path_ + "`: " + errnoName(e), "ENOSPAWNER", ss::Step::spawner, e, "connect", path_};
      return false;
    }
    struct iovec iov = {frame_.data(), frame_.size()};
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    union {
      char b[CMSG_SPACE(sizeof(int) * 16)];
      struct cmsghdr align;
    } control;
    if (!fds_.empty()) {
      msg.msg_control = control.b;
      msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds_.size());
      struct cmsghdr* cm = CMSG_FIRSTHDR(&msg);
      cm->cmsg_level = SOL_SOCKET;
      cm->cmsg_type = SCM_RIGHTS;
      cm->cmsg_len = CMSG_LEN(sizeof(int) * fds_.size());
      memcpy(CMSG_DATA(cm), fds_.data(), sizeof(int) * fds_.size());
    }
    // The fds must arrive with the first byte of the frame; the rest may follow.
    ssize_t n;
    do n = sendmsg(fd, &msg, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    size_t off = n > 0 ? size_t(n) : 0;
    while (n >= 0 && off < frame_.size()) {
      n = send(fd, frame_.data() + off, frame_.size() - off, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) {
        n = 0;
        continue;
      }
      if (n > 0) off += size_t(n);
    }
    if (n < 0) {
      int e = errno;
      close(fd);
      failure = sysFailure(ss::Step::spawner, e, "sendmsg", path_);
      return false;
    }
    fd_ = fd;
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
Napi::Value Request(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  try {
    if (!info[0].IsString()) throw Napi::TypeError::New(env, "request: the socket path must be a string");
    if (!info[1].IsBuffer()) throw Napi::TypeError::New(env, "request: the frame must be a Buffer");
    std::string path = info[0].As<Napi::String>();
    Napi::Buffer<uint8_t> frame = info[1].As<Napi::Buffer<uint8_t>>();
    std::vector<int> fds;
    if (info.Length() > 2 && info[2].IsArray()) {
      Napi::Array a = info[2].As<Napi::Array>();
      if (a.Length() > 16) throw Napi::RangeError::New(env, "request: at most 16 fds");
      for (uint32_t i = 0; i < a.Length(); ++i) {
        Napi::Value v = a.Get(i);
        if (!v.IsNumber()) throw Napi::TypeError::New(env, "request: fds must be numbers");
        fds.push_back(v.As<Napi::Number>().Int32Value());
      }
    }
    auto* w = new RequestWorker(env, std::move(path), std::vector<uint8_t>(frame.Data(), frame.Data() + frame.Length()),
                                std::move(fds));
    return w->Start();
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

Napi::Object Module(Napi::Env env, Napi::Object exports) {
  env.SetInstanceData(new AddonData());
  exports.Set("init", Napi::Function::New(env, Init, "init"));
  exports.Set("request", Napi::Function::New(env, Request, "request"));
  exports.Set("pipe", Napi::Function::New(env, Pipe, "pipe"));
  exports.Set("close", Napi::Function::New(env, Close, "close"));
  exports.Set("cgroupWrite", Napi::Function::New(env, CgroupWrite, "cgroupWrite"));
  exports.Set("cgroupRead", Napi::Function::New(env, CgroupRead, "cgroupRead"));
  exports.Set("counterOpen", Napi::Function::New(env, CounterOpen, "counterOpen"));
  exports.Set("counterClose", Napi::Function::New(env, CounterClose, "counterClose"));
  exports.Set("counterRead", Napi::Function::New(env, CounterRead, "counterRead"));
  exports.Set("compileSeccomp", Napi::Function::New(env, CompileSeccomp, "compileSeccomp"));
  exports.Set("attachDeviceProgram", Napi::Function::New(env, AttachDeviceProgram, "attachDeviceProgram"));
  exports.Set("nvmlInventory", Napi::Function::New(env, NvmlInventory, "nvmlInventory"));
  return exports;
}

}  // namespace

NODE_API_MODULE(stratoswarm_native, Module)

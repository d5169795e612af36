#include "nvml.h"

#include <dlfcn.h>

#include <cstring>
#include <mutex>

namespace ss::nvml {
namespace {

// The subset of nvml.h the runtime needs, declared here so the build needs no NVIDIA headers.
using nvmlReturn_t = int;
using nvmlDevice_t = void*;
constexpr nvmlReturn_t NVML_SUCCESS = 0;
constexpr nvmlReturn_t NVML_ERROR_NOT_SUPPORTED = 3;
constexpr unsigned MAX_MIG_DEVICES = 64;
struct nvmlMemory_t {
  unsigned long long total, free, used;
};
struct nvmlUtilization_t {
  unsigned int gpu, memory;
};
struct nvmlPciInfo_t {
  char busIdLegacy[16];
  unsigned int domain, bus, device, pciDeviceId, pciSubSystemId;
  char busId[32];
};

struct nvmlProcessInfo_v1_t {  // the layout of the unversioned nvmlDeviceGetComputeRunningProcesses
  unsigned int pid;
  unsigned long long usedGpuMemory;
};
struct nvmlProcessUtilizationSample_t {
  unsigned int pid;
  unsigned long long timeStamp;
  unsigned int smUtil, memUtil, encUtil, decUtil;
};
constexpr unsigned long long NVML_VALUE_NOT_AVAILABLE = ~0ULL;
constexpr unsigned NVML_NVLINK_MAX_LINKS = 18;

struct Api {
  void* handle = nullptr;
  nvmlReturn_t (*init)() = nullptr;
  nvmlReturn_t (*shutdown)() = nullptr;
  const char* (*errorString)(nvmlReturn_t) = nullptr;
  nvmlReturn_t (*systemGetDriverVersion)(char*, unsigned) = nullptr;
  nvmlReturn_t (*deviceGetCount)(unsigned*) = nullptr;
  nvmlReturn_t (*deviceGetHandleByIndex)(unsigned, nvmlDevice_t*) = nullptr;
  nvmlReturn_t (*deviceGetName)(nvmlDevice_t, char*, unsigned) = nullptr;
  nvmlReturn_t (*deviceGetUUID)(nvmlDevice_t, char*, unsigned) = nullptr;
  nvmlReturn_t (*deviceGetMinorNumber)(nvmlDevice_t, unsigned*) = nullptr;
  nvmlReturn_t (*deviceGetMemoryInfo)(nvmlDevice_t, nvmlMemory_t*) = nullptr;
  nvmlReturn_t (*deviceGetUtilizationRates)(nvmlDevice_t, nvmlUtilization_t*) = nullptr;
  nvmlReturn_t (*deviceGetPciInfo)(nvmlDevice_t, nvmlPciInfo_t*) = nullptr;
  nvmlReturn_t (*deviceGetComputeRunningProcesses)(nvmlDevice_t, unsigned*, nvmlProcessInfo_v1_t*) = nullptr;
  nvmlReturn_t (*deviceGetProcessUtilization)(nvmlDevice_t, nvmlProcessUtilizationSample_t*, unsigned*, unsigned long long) = nullptr;
  nvmlReturn_t (*deviceGetMigMode)(nvmlDevice_t, unsigned*, unsigned*) = nullptr;
  nvmlReturn_t (*deviceGetMaxMigDeviceCount)(nvmlDevice_t, unsigned*) = nullptr;
  nvmlReturn_t (*deviceGetMigDeviceHandleByIndex)(nvmlDevice_t, unsigned, nvmlDevice_t*) = nullptr;
  nvmlReturn_t (*deviceGetGpuInstanceId)(nvmlDevice_t, unsigned*) = nullptr;
  nvmlReturn_t (*deviceGetComputeInstanceId)(nvmlDevice_t, unsigned*) = nullptr;
  nvmlReturn_t (*deviceGetNvLinkState)(nvmlDevice_t, unsigned, int*) = nullptr;
  nvmlReturn_t (*deviceGetNvLinkRemotePciInfo)(nvmlDevice_t, unsigned, nvmlPciInfo_t*) = nullptr;
  nvmlReturn_t (*deviceGetTopologyCommonAncestor)(nvmlDevice_t, nvmlDevice_t, int*) = nullptr;
};

// The compute processes of one GPU with their memory and (sampled) utilisation; fixed-size
// buffers: a GPU with more processes reports the first ones.
void readProcesses(const Api& api, nvmlDevice_t dev, Device* d) {
  if (api.deviceGetComputeRunningProcesses == nullptr) return;
  nvmlProcessInfo_v1_t procs[64];
  unsigned n = 64;
  if (api.deviceGetComputeRunningProcesses(dev, &n, procs) != NVML_SUCCESS) return;
  for (unsigned i = 0; i < n && i < 64; ++i) {
    Device::Process p;
    p.pid = procs[i].pid;
    if (procs[i].usedGpuMemory != NVML_VALUE_NOT_AVAILABLE) p.usedMemory = int64_t(procs[i].usedGpuMemory);
    d->processes.push_back(p);
  }
  if (api.deviceGetProcessUtilization == nullptr) return;
  static thread_local nvmlProcessUtilizationSample_t samples[256];
  unsigned m = 256;
  if (api.deviceGetProcessUtilization(dev, samples, &m, 0) != NVML_SUCCESS) return;
  for (auto& p : d->processes) {
    unsigned long long latest = 0;
    for (unsigned i = 0; i < m && i < 256; ++i) {
      if (samples[i].pid == p.pid && samples[i].timeStamp >= latest) {
        latest = samples[i].timeStamp;
        p.smUtilization = int(samples[i].smUtil);
        p.memoryUtilization = int(samples[i].memUtil);
      }
    }
  }
}

// The MIG devices of a GPU with MIG on: every slot up to NVML's maximum that holds one.
void readMigDevices(const Api& api, nvmlDevice_t dev, Device* d) {
  if (api.deviceGetMaxMigDeviceCount == nullptr || api.deviceGetMigDeviceHandleByIndex == nullptr) return;
  unsigned max = 0;
  if (api.deviceGetMaxMigDeviceCount(dev, &max) != NVML_SUCCESS) return;
  char buf[256];
  for (unsigned j = 0; j < max && j < MAX_MIG_DEVICES; ++j) {
    nvmlDevice_t mig = nullptr;
    if (api.deviceGetMigDeviceHandleByIndex(dev, j, &mig) != NVML_SUCCESS) continue;  // an empty slot
    MigDevice m;
    m.index = j;
    if (api.deviceGetName != nullptr && api.deviceGetName(mig, buf, sizeof buf) == NVML_SUCCESS) m.name.assign(buf, strnlen(buf, sizeof buf));
    if (api.deviceGetUUID != nullptr && api.deviceGetUUID(mig, buf, sizeof buf) == NVML_SUCCESS) m.uuid.assign(buf, strnlen(buf, sizeof buf));
    nvmlMemory_t mem;
    if (api.deviceGetMemoryInfo != nullptr && api.deviceGetMemoryInfo(mig, &mem) == NVML_SUCCESS) m.memoryTotal = mem.total;
    unsigned id = 0;
    if (api.deviceGetGpuInstanceId != nullptr && api.deviceGetGpuInstanceId(mig, &id) == NVML_SUCCESS) m.gpuInstanceId = int(id);
    if (api.deviceGetComputeInstanceId != nullptr && api.deviceGetComputeInstanceId(mig, &id) == NVML_SUCCESS) m.computeInstanceId = int(id);
    d->migDevices.push_back(m);
  }
}

template <typename F>
bool resolve(void* h, F* fn, const char* versioned, const char* plain) {
  void* p = versioned != nullptr ? dlsym(h, versioned) : nullptr;
  if (p == nullptr) p = dlsym(h, plain);
  *fn = reinterpret_cast<F>(p);
  return p != nullptr;
}

std::string why(const Api& api, const char* call, nvmlReturn_t rc) {
  const char* msg = api.errorString != nullptr ? api.errorString(rc) : nullptr;
  return std::string(call) + ": " + (msg != nullptr ? msg : "error") + " (" + std::to_string(rc) + ")";
}

// Calls come from thread-pool threads; one at a time keeps each nvmlInit/nvmlShutdown pair
// (and dlopen/dlclose) whole.
std::mutex callMutex;

}  // namespace

bool inventory(const std::string& library, Inventory* out, std::string* err) {
  std::lock_guard<std::mutex> lock(callMutex);
  std::string lib = library.empty() ? "libnvidia-ml.so.1" : library;
  Api api;
  api.handle = dlopen(lib.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (api.handle == nullptr) {
    const char* e = dlerror();
    *err = "dlopen " + lib + ": " + (e != nullptr ? e : "failed");
    return false;
  }
  out->library = lib;
  bool ok = resolve(api.handle, &api.init, "nvmlInit_v2", "nvmlInit") &&
            resolve(api.handle, &api.shutdown, nullptr, "nvmlShutdown") &&
            resolve(api.handle, &api.deviceGetCount, "nvmlDeviceGetCount_v2", "nvmlDeviceGetCount") &&
            resolve(api.handle, &api.deviceGetHandleByIndex, "nvmlDeviceGetHandleByIndex_v2", "nvmlDeviceGetHandleByIndex");
  resolve(api.handle, &api.errorString, nullptr, "nvmlErrorString");
  resolve(api.handle, &api.systemGetDriverVersion, nullptr, "nvmlSystemGetDriverVersion");
  resolve(api.handle, &api.deviceGetName, nullptr, "nvmlDeviceGetName");
  resolve(api.handle, &api.deviceGetUUID, nullptr, "nvmlDeviceGetUUID");
  resolve(api.handle, &api.deviceGetMinorNumber, nullptr, "nvmlDeviceGetMinorNumber");
  resolve(api.handle, &api.deviceGetMemoryInfo, nullptr, "nvmlDeviceGetMemoryInfo");
  resolve(api.handle, &api.deviceGetUtilizationRates, nullptr, "nvmlDeviceGetUtilizationRates");
  resolve(api.handle, &api.deviceGetPciInfo, "nvmlDeviceGetPciInfo_v3", "nvmlDeviceGetPciInfo");
  resolve(api.handle, &api.deviceGetComputeRunningProcesses, nullptr, "nvmlDeviceGetComputeRunningProcesses");
  resolve(api.handle, &api.deviceGetProcessUtilization, nullptr, "nvmlDeviceGetProcessUtilization");
  resolve(api.handle, &api.deviceGetMigMode, nullptr, "nvmlDeviceGetMigMode");
  resolve(api.handle, &api.deviceGetMaxMigDeviceCount, nullptr, "nvmlDeviceGetMaxMigDeviceCount");
  resolve(api.handle, &api.deviceGetMigDeviceHandleByIndex, nullptr, "nvmlDeviceGetMigDeviceHandleByIndex");
  resolve(api.handle, &api.deviceGetGpuInstanceId, nullptr, "nvmlDeviceGetGpuInstanceId");
  resolve(api.handle, &api.deviceGetComputeInstanceId, nullptr, "nvmlDeviceGetComputeInstanceId");
  resolve(api.handle, &api.deviceGetNvLinkState, nullptr, "nvmlDeviceGetNvLinkState");
  resolve(api.handle, &api.deviceGetNvLinkRemotePciInfo, "nvmlDeviceGetNvLinkRemotePciInfo_v2", "nvmlDeviceGetNvLinkRemotePciInfo");
  resolve(api.handle, &api.deviceGetTopologyCommonAncestor, nullptr, "nvmlDeviceGetTopologyCommonAncestor");
  if (!ok) {
    *err = lib + " lacks nvmlInit, nvmlShutdown, nvmlDeviceGetCount or nvmlDeviceGetHandleByIndex";
    dlclose(api.handle);
    return false;
  }
  nvmlReturn_t rc = api.init();
  if (rc != NVML_SUCCESS) {
    *err = why(api, "nvmlInit", rc);
    dlclose(api.handle);
    return false;
  }
  bool result = true;
  char buf[256];
  if (api.systemGetDriverVersion != nullptr && api.systemGetDriverVersion(buf, sizeof buf) == NVML_SUCCESS) {
    out->driverVersion.assign(buf, strnlen(buf, sizeof buf));
  }
  unsigned count = 0;
  rc = api.deviceGetCount(&count);
  if (rc != NVML_SUCCESS) {
    *err = why(api, "nvmlDeviceGetCount", rc);
    result = false;
  }
  std::vector<nvmlDevice_t> handles;
  for (unsigned i = 0; result && i < count; ++i) {
    nvmlDevice_t dev = nullptr;
    rc = api.deviceGetHandleByIndex(i, &dev);
    if (rc != NVML_SUCCESS) {
      *err = why(api, "nvmlDeviceGetHandleByIndex", rc) + " for GPU " + std::to_string(i);
      result = false;
      break;
    }
    Device d;
    d.index = i;
    if (api.deviceGetName != nullptr && api.deviceGetName(dev, buf, sizeof buf) == NVML_SUCCESS) d.name.assign(buf, strnlen(buf, sizeof buf));
    if (api.deviceGetUUID != nullptr && api.deviceGetUUID(dev, buf, sizeof buf) == NVML_SUCCESS) d.uuid.assign(buf, strnlen(buf, sizeof buf));
    unsigned minor = 0;
    if (api.deviceGetMinorNumber != nullptr && api.deviceGetMinorNumber(dev, &minor) == NVML_SUCCESS) d.minor = int(minor);
    nvmlMemory_t mem;
    if (api.deviceGetMemoryInfo != nullptr && api.deviceGetMemoryInfo(dev, &mem) == NVML_SUCCESS) {
      d.memoryTotal = mem.total;
      d.memoryUsed = mem.used;
    }
    nvmlUtilization_t util;
    rc = api.deviceGetUtilizationRates != nullptr ? api.deviceGetUtilizationRates(dev, &util) : NVML_ERROR_NOT_SUPPORTED;
    if (rc == NVML_SUCCESS) {
      d.gpuUtilization = int(util.gpu);
      d.memoryUtilization = int(util.memory);
    }
    nvmlPciInfo_t pci;
    if (api.deviceGetPciInfo != nullptr && api.deviceGetPciInfo(dev, &pci) == NVML_SUCCESS) d.pciBusId.assign(pci.busId, strnlen(pci.busId, sizeof pci.busId));
    readProcesses(api, dev, &d);
    unsigned current = 0, pending = 0;
    if (api.deviceGetMigMode != nullptr && api.deviceGetMigMode(dev, &current, &pending) == NVML_SUCCESS) d.migMode = current != 0 ? 1 : 0;
    if (d.migMode == 1) readMigDevices(api, dev, &d);
    for (unsigned link = 0; api.deviceGetNvLinkState != nullptr && api.deviceGetNvLinkRemotePciInfo != nullptr && link < NVML_NVLINK_MAX_LINKS; ++link) {
      int active = 0;
      if (api.deviceGetNvLinkState(dev, link, &active) != NVML_SUCCESS) break;  // no more links
      if (active == 0 || api.deviceGetNvLinkRemotePciInfo(dev, link, &pci) != NVML_SUCCESS) continue;
      std::string peer(pci.busId, strnlen(pci.busId, sizeof pci.busId));
      bool seen = false;
      for (const auto& b : d.nvlinkPeerBusIds) seen = seen || b == peer;
      if (!seen) d.nvlinkPeerBusIds.push_back(peer);
    }
    out->devices.push_back(d);
    handles.push_back(dev);
  }
  // The PCIe distance between every pair, once all handles are known.
  for (size_t i = 0; result && api.deviceGetTopologyCommonAncestor != nullptr && i < handles.size(); ++i) {
    for (size_t j = 0; j < handles.size(); ++j) {
      int level = -1;
      if (i == j) level = 0;
      else if (api.deviceGetTopologyCommonAncestor(handles[i], handles[j], &level) != NVML_SUCCESS) level = -1;
      out->devices[i].pcieLevels.push_back(level);
    }
  }
  api.shutdown();
  dlclose(api.handle);
  return result;
}

}  // namespace ss::nvml

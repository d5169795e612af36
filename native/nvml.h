// NVML, loaded at run time with dlopen (never linked), so the runtime works on hosts without
// the NVIDIA driver and a GPU host needs nothing at build time. Only the handful of calls the
// runtime uses are resolved; each is looked up by its versioned name where NVML has one.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ss::nvml {

// A MIG device (one compute instance of a GPU instance) of a GPU with MIG on.
struct MigDevice {
  unsigned index = 0;  // NVML's MIG device index on its parent GPU
  std::string name;    // "<GPU name> MIG 1g.10gb": the profile is its last word
  std::string uuid;    // "MIG-..."
  uint64_t memoryTotal = 0;
  int gpuInstanceId = -1;
  int computeInstanceId = -1;
};

struct Device {
  unsigned index = 0;
  std::string name;
  std::string uuid;
  std::string pciBusId;
  int minor = -1;  // /dev/nvidia<minor>; -1 when NVML does not say
  uint64_t memoryTotal = 0;
  uint64_t memoryUsed = 0;
  int gpuUtilization = -1;     // percent, -1 when not supported
  int memoryUtilization = -1;  // percent
  // Compute processes on the GPU (host pids), with their device memory and, where the GPU
  // samples it, their SM and memory-controller utilisation (-1 when not reported).
  struct Process {
    unsigned pid = 0;
    int64_t usedMemory = -1;
    int smUtilization = -1;
    int memoryUtilization = -1;
  };
  std::vector<Process> processes;
  int migMode = -1;                         // 1 MIG on, 0 off, -1 not supported
  std::vector<MigDevice> migDevices;          // when MIG is on
  std::vector<std::string> nvlinkPeerBusIds;  // PCI bus ids at the far end of active NVLinks
  // NVML's PCIe topology level to each GPU by index (0 same board, 10 one switch, 20 several
  // switches, 30 host bridge, 40 same NUMA node, 50 across nodes); -1 when not reported.
  std::vector<int> pcieLevels;
};

struct Inventory {
  std::string library;  // the path that was loaded
  std::string driverVersion;
  std::vector<Device> devices;
};

// Loads `library` (default "libnvidia-ml.so.1"), initialises NVML, reads every device and
// shuts NVML down again. Returns false with *err naming the failing call and NVML's message.
bool inventory(const std::string& library, Inventory* out, std::string* err);

}  // namespace ss::nvml

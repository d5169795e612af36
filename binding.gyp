{
  "target_defaults": {
    "cflags!": ["-fno-exceptions"],
    "cflags_cc!": ["-fno-exceptions", "-std=gnu++17", "-std=gnu++1y"],
    "cflags": ["-Wall", "-Wextra", "-fstack-protector-strong", "-fvisibility=hidden", "-D_FORTIFY_SOURCE=2", "-O2"],
    "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-fstack-protector-strong", "-fvisibility=hidden", "-fexceptions"],
    "defines": ["_GNU_SOURCE"]
  },
  "targets": [
    {
      "target_name": "stratoswarm_native",
      "sources": ["native/addon.cc", "native/socket.cc", "native/cgroup.cc", "native/cgroup_batch.cc", "native/seccomp.cc", "native/devices_bpf.cc", "native/nvml.cc", "native/unpack.cc", "native/pty.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=9", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "libraries": ["-lseccomp", "-ldl"]
    },
    {
      "target_name": "stratoswarm-spawner",
      "type": "executable",
      "sources": ["native/spawner/main.cc", "native/spawner/common.cc", "native/spawner/loop.cc", "native/spawner/clients.cc", "native/spawner/protocol.cc", "native/spawner/launch.cc", "native/spawner/userns.cc", "native/spawner/adopt.cc", "native/spawner/restore.cc", "native/spawner/state_files.cc", "native/spawner/log_index.cc", "native/spawner/plan.cc", "native/spawner/child.cc", "native/spawner/start_image.cc", "native/spawner/volume.cc"],
      "cflags_cc": ["-fno-exceptions"],
      "ldflags": ["-Wl,-z,relro,-z,now", "-pie"]
    },
    {
      "target_name": "stratoswarm-init",
      "type": "executable",
      "sources": ["native/init/init.c"],
      "ldflags": ["-static"]
    },
    {
      "target_name": "stratoswarm-oci",
      "type": "executable",
      "sources": ["native/oci/front.c"],
      "defines": ["NODE_BINARY=\"<!(node -p process.execPath)\""],
      "ldflags": ["-Wl,-z,relro,-z,now", "-pie"]
    },
    {
      "target_name": "stratoswarm-oci-keeper",
      "type": "executable",
      "sources": ["native/oci/keeper.c"],
      "ldflags": ["-Wl,-z,relro,-z,now", "-pie"]
    },
    {
      "target_name": "stratoswarm-tty",
      "type": "executable",
      "sources": ["native/tty/relay.c"],
      "ldflags": ["-Wl,-z,relro,-z,now", "-pie"]
    }
  ]
}

/**
 * The SpawnPlan: one typed, validated value that says everything a container will be —
 * compiled from its configuration before any side effect (prepare), carried out by
 * provisioning, and encoded for the spawner last. Plain data: unit tests compare plans.
 */
import type { CdiHook } from '../gpu/cdi/spec.js';
import type { Resources } from '../isolation/resources.js';
import type { PlanNetDevice } from '../gpu/cdi/netdev.js';
import type { PlanDeviceNode } from '../gpu/cdi/nodes.js';
import type { PlanRdt } from '../gpu/cdi/rdt.js';

/** The security settings in the form the plan needs (secure-runtime compiles them). */
export interface PlanSecurity {
  capabilities: { bounding: bigint; effective: bigint; permitted: bigint; inheritable: bigint; ambient: bigint };
  noNewPrivileges: boolean;
  seccomp?: { bpf: Buffer } | undefined;
  /** Without no_new_privs the filter must be loaded while CAP_SYS_ADMIN is still held. */
  seccompBeforeCapabilityDrop?: boolean;
  readonlyRoot: boolean;
  maskedPaths: string[];
  readonlyPaths: string[];
  rlimits: { name: string; resource: number; soft: bigint; hard: bigint }[];
}

export interface PlanUser {
  uid: number;
  gid: number;
  groups: number[];
  /** The process's file mode creation mask (OCI process.user.umask); the runtime's 0022 otherwise. */
  umask?: number | undefined;
}

export interface PlanVolume {
  source: string;
  target: string;
  readOnly: boolean;
  isFile: boolean;
  /** Idmapped through the container's user namespace: host uid N shows as container uid N. */
  idmap: boolean;
}

/** Where the container's processes run: CPUs (affinity mask) and a NUMA memory policy. */
export interface PlanPlacement {
  cpus?: number[] | undefined;
  mempolicy?: { mode: number; nodes: number[] } | undefined;
}

/** A user namespace for the container: id maps, and one staging dir per image layer. */
export interface PlanUserNamespace {
  uidMap: string;
  gidMap: string;
  stagingDirs: string[];
}

/** Namespaces a container can join by path (a file of /proc/<pid>/ns, or one bound elsewhere). */
export interface JoinNamespaces {
  /** A user namespace joined (a pod's): the init enters it last, as it would its own. */
  user?: string | undefined;
  /** A mount namespace joined: the root and the mounts are set up inside it, as runc does. */
  mnt?: string | undefined;
  cgroup?: string | undefined;
  net?: string | undefined;
  ipc?: string | undefined;
  uts?: string | undefined;
  /** The init is cloned into this pid namespace (a pod's shared one): it is not its pid 1. */
  pid?: string | undefined;
}

export type NamespaceName = 'pid' | 'mnt' | 'uts' | 'ipc' | 'cgroup' | 'net' | 'user';

/** Where a container's files live: state (per boot) and storage (layers, logs). */
export interface ContainerPaths {
  stateDir: string;
  storageDir: string;
  rootfs: string;
  upper: string;
  work: string;
  stdoutLog: string;
  stderrLog: string;
}

/** The process a create or exec runs, fully resolved. */
export interface ProcessPlan {
  argv: string[];
  env: string[];
  cwd: string;
  /** PATH inside the container, which resolve-exec searches for argv[0]. */
  searchPath: string;
  user: PlanUser;
  security: PlanSecurity;
  placement?: PlanPlacement | undefined;
  /** A pseudo-terminal as stdin, stdout and stderr, and the process's controlling terminal. */
  terminal?: boolean | undefined;
}

/** A device node an OCI configuration lists, made in the container with mknod(2). */
export interface PlanMknod {
  /** Absolute path inside the container. */
  path: string;
  type: 'c' | 'b' | 'p';
  major: number;
  minor: number;
  /** Permission bits (0666 when the configuration gives none). */
  mode: number;
  uid: number;
  gid: number;
}

/** A mount an OCI configuration lists: a bind of a host path or a filesystem by type. */
export interface PlanMount {
  kind: 'bind' | 'fs';
  source: string;
  /** Absolute path inside the container. */
  target: string;
  fstype: string;
  /** Filesystem options the kernel parses (the data argument of mount(2)). */
  data: string;
  /** MS_* flags (MS_RDONLY, MS_NOSUID..., MS_REC for a recursive bind). */
  flags: number;
  isFile: boolean;
  /** MS_SHARED, MS_SLAVE, MS_PRIVATE or MS_UNBINDABLE (with MS_REC for the r- forms), set once mounted. */
  propagation?: number | undefined;
  /**
   * An idmapped bind: on-disk id containerID+i shows as hostID+i, as a user namespace with
   * these uid_map/gid_map lines maps them (no maps: the container's own user namespace).
   * `recursive`: the mounts below it are idmapped too (OCI's "ridmap").
   */
  idmap?: { maps?: { uid: string; gid: string } | undefined; recursive: boolean } | undefined;
}

export interface SpawnPlan {
  id: string;
  name: string;
  hostname: string;
  image: { ref: string; layers: string[]; layerPaths: string[] };
  paths: ContainerPaths;
  process: ProcessPlan;
  volumes: PlanVolume[];
  /** Every namespace the container has (the record keeps them for exec). */
  namespaces: NamespaceName[];
  network: { mode: 'none' | 'host' | 'bridge'; bandwidthMbps?: number | undefined };
  /** A user namespace mapping `size` ids from a host range provisioning allocates. */
  userNamespace?: { size: number; stagingDirs: string[] } | undefined;
  /** uid_map and gid_map given as they are (an OCI bundle's mappings) instead of an id range the runtime allocates. */
  idMaps?: { uid: string; gid: string } | undefined;
  /** The container's cgroup limits (device rules included). */
  cgroup: Resources;
  /** Existing namespaces the init joins by path instead of getting new ones (OCI linux.namespaces[].path). */
  joinNamespaces?: JoinNamespaces | undefined;
  /** Where its cgroup goes, relative to each hierarchy's root, when not under the runtime's parent. */
  cgroupPath?: string | undefined;
  /** Host device nodes bound into /dev (assigned GPUs). */
  devices: string[];
  /** Host device nodes bound at a path of their own (CDI device nodes). */
  deviceNodes?: PlanDeviceNode[] | undefined;
  /** Device nodes made in the container's /dev with mknod(2) (OCI linux.devices). */
  mknods?: PlanMknod[] | undefined;
  gpus?: { indexes: number[]; uuids?: string[] | undefined; cdi?: string[] | undefined; mig?: string[] | undefined } | undefined;
  /** What GPUs and CDI devices add to the process (environment, groups), for execs too. */
  deviceProcess?: { env: string[]; groups: number[] } | undefined;
  /** OCI hooks from CDI specs, run by the runtime around create, start and remove (gpu/hooks.ts). */
  hooks?: CdiHook[] | undefined;
  /** Host network interfaces moved into the container's network namespace (gpu/cdi/netdev.ts). */
  netDevices?: PlanNetDevice[] | undefined;
  /** The resctrl group the init joins (gpu/cdi/rdt.ts). */
  intelRdt?: PlanRdt | undefined;
  /** The highest capability the running kernel knows (bounding-set drops go up to it). */
  lastCap: number;
  /** A minimal init as pid 1 (process.argv starts with its container path): the host binary. */
  init?: { hostPath: string; path: string } | undefined;
  /** A root directory used as it is (an OCI bundle's rootfs) instead of the image's layers. */
  rootfsDir?: string | undefined;
  /** The mounts of an OCI configuration, in place of the default /proc, /dev, /sys set. */
  mounts?: PlanMount[] | undefined;
  /** The root's propagation once pivoted (OCI linux.rootfsPropagation, MS_* flags). */
  rootfsPropagation?: number | undefined;
}

/** What provisioning made that the wire encoding needs. */
export interface ProvisionedResources {
  cgroupProcs: string[];
  /** The host range the user namespace maps (uid and gid alike). */
  idRange?: { hostId: number; size: number } | undefined;
  /** A terminal's slave (plan.process.terminal), the host path of its /dev/pts node. */
  terminal?: { path: string } | undefined;
}

export interface ExecPlan {
  process: ProcessPlan;
  /** The namespaces of the container's init, which the exec joins. */
  namespaces: string[];
  cgroupProcs: string[];
  lastCap: number;
}

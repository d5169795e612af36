/**
 * The secure-runtime module: security profiles, the default seccomp profile, their
 * compilation into init-plan data, and read-back of a process's confinement.
 */
export {
  CAPABILITY_NAMES,
  DEFAULT_CAPABILITIES,
  capabilityMask,
  capabilityNames,
  capabilityNumber,
  knownMask,
  normalizeCapability,
  type CapabilityName,
} from './capabilities.js';
export {
  ALLOWED_SYSCALLS,
  CLONE_NAMESPACE_FLAGS,
  SECCOMP_ACTIONS,
  SECCOMP_ARCHES,
  SECCOMP_FLAGS,
  SECCOMP_OPS,
  allowedSyscalls,
  checkSeccompProfile,
  defaultSeccompProfile,
  defaultSeccompTemplate,
  parseOciSeccomp,
  resolveSeccompProfile,
  seccompArchitectures,
  type DefaultSeccompOptions,
  type OciSeccompArg,
  type OciSeccompProfile,
  type OciSeccompRule,
  type SeccompArchMapEntry,
  type SeccompCondition,
  type SeccompProfile,
  type SeccompResolveContext,
  type SeccompRule,
} from './seccomp.js';
export {
  DEFAULT_MASKED_PATHS,
  DEFAULT_READONLY_PATHS,
  DEFAULT_USERNS_SIZE,
  RLIMITS,
  RLIM_INFINITY,
  SecurityProfile,
  SecurityProfileBuilder,
  type ResolvedRlimit,
  type RlimitName,
  type RlimitSpec,
  type RlimitValue,
  type SecurityOptions,
} from './profile.js';
export {
  capabilitySets,
  compileSecurity,
  expandPathPattern,
  type CompileSecurityOptions,
  type CompiledCapabilities,
  type CompiledSecurity,
} from './compile.js';
export {
  parseIdMap,
  parseMountinfo,
  parseStatus,
  securityReport,
  type CapabilityReport,
  type IdMapEntry,
  type MountReport,
  type NamespaceReport,
  type SeccompMode,
  type SecurityReport,
} from './report.js';

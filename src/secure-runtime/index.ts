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
export type { OciSeccompArg, OciSeccompProfile, OciSeccompRule } from '../kernel/native.js';
export {
  SECCOMP_ACTIONS,
  SECCOMP_ARCHES,
  SECCOMP_FLAGS,
  SECCOMP_OPS,
  type SeccompArchMapEntry,
  type SeccompCondition,
  type SeccompProfile,
  type SeccompRule,
} from './seccomp-types.js';
export { ALLOWED_SYSCALLS } from './seccomp-allowlist.js';
export { seccompArchitectures } from './seccomp-arch.js';
export { CLONE_NAMESPACE_FLAGS, defaultSeccompTemplate } from './seccomp-template.js';
export {
  allowedSyscalls,
  defaultSeccompProfile,
  resolveSeccompProfile,
  type DefaultSeccompOptions,
  type SeccompResolveContext,
} from './seccomp.js';
export { checkSeccompProfile, parseOciSeccomp } from './seccomp-parse.js';
export {
  DEFAULT_MASKED_PATHS,
  DEFAULT_READONLY_PATHS,
  DEFAULT_USERNS_SIZE,
  RLIMITS,
  RLIM_INFINITY,
  type ResolvedRlimit,
  type RlimitName,
  type RlimitSpec,
  type RlimitValue,
  type SecurityOptions,
} from './profile-options.js';
export { SecurityProfile, SecurityProfileBuilder } from './profile.js';
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

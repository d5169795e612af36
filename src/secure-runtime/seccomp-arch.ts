/** Node's architecture names against Docker's (`includes.arches`) and libseccomp's (SCMP_ARCH_*). */

/** The host's architecture in the names Docker's `includes.arches` uses (Go's GOARCH). */
export function dockerArch(arch: string = process.arch): string {
  switch (arch) {
    case 'x64':
      return 'amd64';
    case 'ia32':
      return 'x86';
    case 'ppc64':
      return 'ppc64le';
    default:
      return arch; // arm64, arm, s390x, riscv64, loong64, mips...
  }
}

/** The seccomp architectures a filter for this host covers: the native one and the ABIs its kernel also runs. */
export function seccompArchitectures(arch: string = process.arch): string[] {
  switch (arch) {
    case 'x64':
      // i386 (int 0x80) and x32 (nr | 0x40000000) are other doors into the same kernel;
      // a filter that only knows x86_64 would leave them to the bad-arch action.
      return ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'];
    case 'arm64':
      return ['SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM'];
    case 'ia32':
      return ['SCMP_ARCH_X86'];
    case 'arm':
      return ['SCMP_ARCH_ARM'];
    case 'ppc64':
      return ['SCMP_ARCH_PPC64LE'];
    case 's390x':
      return ['SCMP_ARCH_S390X', 'SCMP_ARCH_S390'];
    case 'riscv64':
      return ['SCMP_ARCH_RISCV64'];
    case 'loong64':
      return ['SCMP_ARCH_LOONGARCH64'];
    default:
      return [];
  }
}

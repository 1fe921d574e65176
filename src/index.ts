/**
 * regvisor's public API. Layers (docs/DESIGN.md §2): `abi` (pure data and codecs), `backends`
 * (the KVM client and the soft hypervisor), `vmm` (services over the Vcpu interface).
 */
export * from "./errors.js";
export * from "./abi/regid.js";
export type { ArchCatalog, RegFields, RegInfo } from "./abi/arch/types.js";
export {
  CATALOGS,
  CATALOG_ARCHES,
  catalogFor,
  decodeReg,
  describeReg,
  lookupReg,
  regLabel,
  type Decoded,
  type UnknownReg,
} from "./abi/catalog.js";
export {
  fieldJson,
  fieldRows,
  fieldText,
  float80ToNumber,
  isShownField,
  regFieldSpecs,
  regFields,
  type FieldRow,
  type RegField,
  type RegFieldSpec,
} from "./abi/fields.js";
export {
  X86_GDB_MSRS,
  withX86PseudoField,
  type X86FieldFormat,
} from "./abi/arch/x86/pseudo-fields.js";
export { IOCTLS, IOCTL_NAMES, ioctlNumber, ioctlByNumber, ioctlName } from "./abi/kvm/ioctls.js";
export type { IoctlName, IoctlSpec } from "./abi/kvm/ioctls.js";
export {
  KVM_CAP,
  KVM_EXIT,
  KVM_API_VERSION,
  KVM_GUESTDBG,
  kvmExitName,
} from "./abi/kvm/constants.js";
export { LAYOUTS, SYNC_AREA } from "./abi/kvm/layouts.js";
export { ERRNO, errnoName, type ErrnoName } from "./abi/kvm/errno.js";
export { KvmError, type KvmErrorInfo } from "./abi/kvm/errors.js";
export type {
  GuestDebug,
  GuestMemory,
  MemoryRegionSpec,
  Vcpu,
  VcpuExit,
  Vm,
} from "./backends/vcpu.js";
export { readRegisterView, type NamedRegister } from "./backends/register-view.js";

/**
 * RISC-V SBI extension ids and error codes (RISC-V Supervisor Binary Interface Specification
 * v2.0), defined once for the soft backend's "in kernel" SBI, the VMM's console and the guests'
 * tests.
 */

/** SBI error codes (SBI spec ch. 3, table "Standard SBI Errors"). */
export const SBI_ERR = {
  SUCCESS: 0n,
  FAILED: -1n,
  NOT_SUPPORTED: -2n,
  INVALID_PARAM: -3n,
  DENIED: -4n,
  INVALID_ADDRESS: -5n,
  ALREADY_AVAILABLE: -6n,
} as const;

/** Extension ids (SBI spec; "TIME" etc. are the ASCII of the name). */
export const SBI_EID = {
  BASE: 0x10n,
  TIME: 0x54494d45n,
  IPI: 0x735049n,
  RFENCE: 0x52464e43n,
  HSM: 0x48534dn,
  SRST: 0x53525354n,
  PMU: 0x504d55n,
  DBCN: 0x4442434en,
  SUSP: 0x53555350n,
  STA: 0x535441n,
  FWFT: 0x46574654n,
  EXPERIMENTAL_START: 0x08000000n,
  EXPERIMENTAL_END: 0x08ffffffn,
  VENDOR_START: 0x09000000n,
  VENDOR_END: 0x09ffffffn,
  LEGACY_END: 0x08n,
} as const;

/** Legacy v0.1 extension ids (SBI spec ch. 5). */
export const SBI_LEGACY = {
  SET_TIMER: 0n,
  CONSOLE_PUTCHAR: 1n,
  CONSOLE_GETCHAR: 2n,
  CLEAR_IPI: 3n,
  SEND_IPI: 4n,
  REMOTE_FENCE_I: 5n,
  REMOTE_SFENCE_VMA: 6n,
  REMOTE_SFENCE_VMA_ASID: 7n,
  SHUTDOWN: 8n,
} as const;

/** Debug console (DBCN) function ids (SBI spec ch. 12). */
export const SBI_DBCN = { WRITE: 0n, READ: 1n, WRITE_BYTE: 2n } as const;

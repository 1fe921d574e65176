/**
 * Exits as text for `--trace-exits` (kind, address or port, data), and as detached copies: an
 * exit's data arrays are live views into the vCPU's run page, which is unmapped when the VM
 * closes, so a summary keeps a copy instead.
 */
import type { VcpuExit } from "../backends/vcpu.js";
import { hex } from "./image.js";

/** Hex digits of bytes in memory order, e.g. `"48656c"`. */
function bytesHex(bytes: Uint8Array, limit = 32): string {
  let out = "";
  const n = Math.min(bytes.length, limit);
  for (let i = 0; i < n; i++) out += (bytes[i] ?? 0).toString(16).padStart(2, "0");
  return bytes.length > limit ? `${out}… (${bytes.length} bytes)` : out;
}

/** One line describing an exit, without a trailing newline. */
export function formatExit(exit: VcpuExit): string {
  switch (exit.kind) {
    case "io": {
      const data = exit.direction === "out" ? ` data=${bytesHex(exit.data)}` : "";
      return `io ${exit.direction} port=${hex(exit.port)} size=${exit.size} count=${exit.count}${data}`;
    }
    case "mmio": {
      const data = exit.isWrite ? ` data=${bytesHex(exit.data)}` : "";
      return `mmio ${exit.isWrite ? "write" : "read"} addr=${hex(exit.address)} len=${exit.data.length}${data}`;
    }
    case "riscv_sbi": {
      const args = exit.args.slice(0, 3).map((a) => hex(BigInt.asUintN(64, a)));
      return `riscv_sbi eid=${hex(exit.extensionId)} fid=${hex(exit.functionId)} a0..a2=${args.join(",")}`;
    }
    case "riscv_csr":
      return `riscv_csr csr=${hex(exit.csrNum)} new=${hex(exit.newValue)} mask=${hex(exit.writeMask)}`;
    case "system_event":
      return `system_event ${exit.typeName} data=${exit.data.map((d) => hex(d)).join(",")}`;
    case "internal_error":
      return `internal_error suberror=${exit.suberror} data=${exit.data.map((d) => hex(d)).join(",")}`;
    case "fail_entry":
      return `fail_entry reason=${hex(exit.reason)} cpu=${exit.cpu}`;
    case "unsupported":
      return `unsupported exit_reason=${exit.exitReason} (${exit.reason})`;
    default:
      return exit.kind;
  }
}

/** A copy of `exit` that stays valid after the VM is closed. */
export function detachExit(exit: VcpuExit): VcpuExit {
  switch (exit.kind) {
    case "io":
    case "mmio":
      return { ...exit, data: exit.data.slice() };
    case "riscv_sbi":
      return { ...exit, args: [...exit.args], ret: exit.ret.slice() };
    case "riscv_csr":
      return { ...exit, ret: exit.ret.slice() };
    default:
      return exit;
  }
}

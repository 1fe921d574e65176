/**
 * Sample snapshots and byte-level surgery for the snapshot tests: build a valid snapshot
 * from catalog names, then re-frame its sections (with valid CRCs) to craft exactly the
 * defect a test wants the decoder to meet.
 */
import { lookupReg } from "../../../src/abi/catalog.js";
import { makeRegId, type RegId } from "../../../src/abi/regid.js";
import {
  decodeHeader,
  decodeSections,
  encodeContainer,
  type SectionOut,
} from "../../../src/vmm/snapshot/container.js";
import { crc32c } from "../../../src/vmm/snapshot/crc32c.js";
import { DEFAULT_LIMITS, encodeSnapshot, type Snapshot } from "../../../src/vmm/snapshot/format.js";
import { pattern } from "./fake-vcpu.js";

/** A riscv id whose type field (bits 31..24 = 0x7f) no kernel defines: the catalog cannot name it. */
export function unknownRiscvId(n: number, size = 8): RegId {
  return makeRegId("riscv", size, (0x7fn << 24n) | BigInt(n));
}

/** riscv registers by name, for samples. */
export const RISCV_NAMES = [
  "config.isa",
  "core.pc",
  "core.ra",
  "core.sp",
  "csr.sstatus",
  "csr.sepc",
  "timer.frequency",
  "timer.time",
  "timer.compare",
  "timer.state",
  "fp_d.f0",
  "fp_d.fcsr",
  "isa_ext.zicbom",
  "sbi_ext.dbcn",
];

/** A small valid riscv snapshot: named registers, two unknown ids, RAM with zero pages, devices. */
export function sampleSnapshot(): Snapshot {
  const regs = RISCV_NAMES.map((name, i) => {
    const id = lookupReg("riscv", name).id;
    return { id, value: pattern(id, BigInt(i + 1)) };
  });
  regs.push({ id: unknownRiscvId(1), value: pattern(unknownRiscvId(1), 99n) });
  regs.push({ id: unknownRiscvId(2, 64), value: pattern(unknownRiscvId(2, 64), 98n) });
  const ram = new Uint8Array(5 * 4096 + 100);
  ram.set([1, 2, 3], 4096);
  ram.set([9], 5 * 4096 + 99);
  return {
    arch: "riscv",
    backend: "soft-inline",
    flags: 0,
    meta: { creator: "regvisor test", time: "2025-01-01T00:00:00Z", guest: "hello", exitCount: 3 },
    vcpus: [{ index: 0, regs }],
    memory: [
      { slot: 0, flags: 0, gpa: 0x80000000n, data: ram },
      { slot: 1, flags: 2, gpa: 0x1000n, data: Uint8Array.from({ length: 64 }, (_, i) => i) },
    ],
    devices: [
      { name: "uart0", data: new Uint8Array([0x48, 0x69]) },
      { name: "vmm.exit", data: new Uint8Array(0) },
    ],
  };
}

/** Encoded `sampleSnapshot()`. */
export function sampleBytes(): Uint8Array {
  return encodeSnapshot(sampleSnapshot());
}

/** A snapshot's frames as editable sections (payloads copied). */
export function unframe(bytes: Uint8Array): {
  header: ReturnType<typeof decodeHeader>;
  sections: SectionOut[];
} {
  const header = decodeHeader(bytes, DEFAULT_LIMITS);
  const sections = decodeSections(bytes, header, DEFAULT_LIMITS.maxTotalBytes).map((s) => ({
    type: s.type,
    flags: s.flags,
    payload: [s.payload.slice()],
  }));
  return { header, sections };
}

/** Re-frames sections with valid CRCs; `minor`/`flags` override the header's. */
export function reframe(
  header: ReturnType<typeof decodeHeader>,
  sections: readonly SectionOut[],
  over: { minor?: number; flags?: number; archCode?: number; backendCode?: number } = {},
): Uint8Array {
  return encodeContainer(
    {
      archCode: over.archCode ?? header.archCode,
      backendCode: over.backendCode ?? header.backendCode,
      flags: over.flags ?? header.flags,
      minor: over.minor ?? header.minor,
    },
    sections,
  );
}

/** Edits the payload of the first section of `type` (re-framed with a valid CRC). */
export function editSection(
  bytes: Uint8Array,
  type: number,
  edit: (payload: Uint8Array) => Uint8Array,
): Uint8Array {
  const { header, sections } = unframe(bytes);
  const i = sections.findIndex((s) => s.type === type);
  const s = sections[i];
  const payload = s?.payload[0];
  if (s === undefined || payload === undefined) throw new Error(`no section of type ${type}`);
  sections[i] = { ...s, payload: [edit(payload)] };
  return reframe(header, sections);
}

/** Rewrites header bytes with `edit`, then fixes the header CRC. */
export function editHeader(bytes: Uint8Array, edit: (view: DataView) => void): Uint8Array {
  const out = bytes.slice();
  const view = new DataView(out.buffer);
  edit(view);
  view.setUint32(36, crc32c(out.subarray(0, 36)), true);
  return out;
}

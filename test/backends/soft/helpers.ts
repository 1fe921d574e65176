/**
 * Shared helpers for the soft-kernel suites: a VM in either mode with the hart the suites run
 * against (the real RV64 hart once src/backends/soft/riscv/hart.ts exists, else the small fake;
 * REGVISOR_FAKE_HART=1 forces the fake), RAM at 0x8000_0000, and register access by catalog name.
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { lookupReg } from "../../../src/abi/catalog.js";
import type { RegId } from "../../../src/abi/regid.js";
import type { HartApi } from "../../../src/backends/soft/riscv/contract.js";
import type { RunBudget } from "../../../src/backends/soft/kernel.js";
import type { SoftMode, SoftVcpu } from "../../../src/backends/soft/vcpu.js";
import { SoftVm, allocGuestMemory } from "../../../src/backends/soft/vm.js";
import { place } from "./asm.js";

const realUrl = new URL("../../../src/backends/soft/riscv/hart.js", import.meta.url);
const fakeUrl = new URL("./fake-hart.js", import.meta.url);
const useReal = existsSync(fileURLToPath(realUrl)) && process.env.REGVISOR_FAKE_HART === undefined;
const hartUrl = useReal ? realUrl : fakeUrl;
// Module boundary: both modules export `class Hart implements HartApi` (`new Hart({ hartId })`).
const hartModule = (await import(hartUrl.href)) as {
  Hart: new (options: { hartId: number }) => HartApi;
};

/** Which hart the suites run against. */
export const HART_KIND: "real" | "fake" = useReal ? "real" : "fake";
/** Both execution modes, for suites run once per mode. */
export const MODES: readonly SoftMode[] = ["inline", "threaded"];

/** Guest RAM base and size used by every test guest. */
export const RAM_BASE = 0x8000_0000n;
export const RAM_SIZE = 1 << 20;

/** A soft VM in `mode` with the suite's hart. */
export function makeVm(mode: SoftMode, budget?: RunBudget): SoftVm {
  return new SoftVm({
    mode,
    hartFactory: (hartId) => new hartModule.Hart({ hartId }),
    hartModule: hartUrl.href,
    ...(budget === undefined ? {} : { budget }),
  });
}

/** The id of a riscv register by catalog name or alias. */
export function reg(name: string): RegId {
  return lookupReg("riscv", name).id;
}

/** Reads a register (≤ 8 bytes) as an unsigned bigint. */
export function get(vcpu: SoftVcpu, name: string): bigint {
  const bytes = vcpu.getOneReg(reg(name));
  let value = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) value = (value << 8n) | BigInt(bytes[i] ?? 0);
  return value;
}

/** Writes a register from a bigint. */
export function set(vcpu: SoftVcpu, name: string, value: bigint): void {
  vcpu.setOneReg(reg(name), value);
}

/** A VM + vCPU 0 with 1 MiB of RAM at RAM_BASE holding `program`, pc at its start. */
export function guest(
  mode: SoftMode,
  program: readonly number[],
  budget?: RunBudget,
): { vm: SoftVm; vcpu: SoftVcpu; ram: Uint8Array } {
  const vm = makeVm(mode, budget);
  const ram = allocGuestMemory(RAM_SIZE);
  place(ram, 0, program);
  vm.setUserMemoryRegion({ slot: 0, guestPhysAddr: RAM_BASE, memory: ram });
  const vcpu = vm.createVcpu();
  set(vcpu, "core.pc", RAM_BASE);
  return { vm, vcpu, ram };
}

/** -n as the u64 a register holds. */
export function neg(n: bigint): bigint {
  return BigInt.asUintN(64, -n);
}

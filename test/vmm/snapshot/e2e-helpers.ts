/**
 * Helpers for the whole-machine snapshot end-to-end tests: the CLI in a child process, a
 * temporary directory, uninterrupted baseline runs in this process, and register comparison by
 * catalog name with the documented time-varying registers left out.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { decodeReg } from "../../../src/abi/catalog.js";
import { canonicalXsave } from "../../../src/abi/kvm/xsave.js";
import { formatRegId } from "../../../src/abi/regid.js";
import { kvmUnavailableReason } from "../../../src/backends/kvm/index.js";
import { valueHex } from "../../../src/vmm/snapshot/describe.js";
import type { RegValue } from "../../../src/vmm/snapshot/index.js";

const BIN = fileURLToPath(new URL("../../../src/cli/bin.js", import.meta.url));

/** Why KVM tests skip here, or false. */
export const KVM_SKIP: string | false = (() => {
  const reason = kvmUnavailableReason();
  return reason === undefined ? false : `needs a usable /dev/kvm: ${reason}`;
})();

/**
 * Registers that move by themselves, left out of "same registers as an uninterrupted run":
 * x86 IA32_TSC (guest cycles; KVM keeps counting), riscv timer.time (running guest time).
 */
export const TIME_VARYING: Readonly<Record<"kvm" | "soft", readonly string[]>> = {
  kvm: ["IA32_TSC"],
  soft: ["timer.time"],
};

/** Result of one CLI run. */
export interface CliResult {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `regvisor argv…` in a new process. */
export function cli(argv: readonly string[]): CliResult {
  const r = spawnSync(process.execPath, [BIN, ...argv], { encoding: "utf8", timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A temporary directory removed by `dispose`. */
export function tempDir(): { readonly path: string; file(name: string): string } & Disposable {
  const path = mkdtempSync(join(tmpdir(), "regvisor-snap-"));
  return {
    path,
    file: (name) => join(path, name),
    [Symbol.dispose]: () => {
      rmSync(path, { recursive: true, force: true });
    },
  };
}

/** Register values by catalog name, as hex in the CLI's --dump-regs --json form (describe.ts valueHex). */
export type RegMap = ReadonlyMap<string, string>;

/** Name → hex of captured registers. */
export function regMap(regs: readonly RegValue[]): RegMap {
  return new Map(
    regs.map((r) => {
      const d = decodeReg(r.id);
      return [d.known ? d.name : formatRegId(r.id), valueHex(r.value)];
    }),
  );
}

/** Hex of a byte string as `valueHex` prints one over 16 bytes (no `0x`, memory order). */
function bytesOfHex(hex: string): Uint8Array {
  return Uint8Array.from(hex.match(/../g) ?? [], (pair) => parseInt(pair, 16));
}

/**
 * Whether two values of register `name` hold the same state: byte-equal, or for the XSAVE
 * pseudo-registers equal once XSTATE_BV is canonical (the bit of a component in its initial
 * configuration is the processor's choice, src/abi/kvm/xsave.ts).
 */
export function sameRegValue(name: string, a: string, b: string | undefined): boolean {
  if (a === b) return true;
  if (b === undefined || !/^XSAVE2?$/.test(name) || a.length !== b.length) return false;
  return valueHex(canonicalXsave(bytesOfHex(a))) === valueHex(canonicalXsave(bytesOfHex(b)));
}

/** Names whose values differ (or exist on one side only), `skip` left out. */
export function differingRegs(a: RegMap, b: RegMap, skip: ReadonlySet<string>): string[] {
  const out: string[] = [];
  for (const [name, value] of a) {
    if (!skip.has(name) && !sameRegValue(name, value, b.get(name))) out.push(name);
  }
  for (const name of b.keys()) if (!skip.has(name) && !a.has(name)) out.push(name);
  return out;
}

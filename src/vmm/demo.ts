/**
 * The bundled demo guests as machine specs: `regvisor run` without FILE runs one of them through
 * the same runner as `run FILE` (./runner.ts), on the backend of its architecture.
 *
 * - x86 (guests/x86/demo.S, on KVM): a flat image at 0x1000 in 2 MiB of RAM (the RAM its page
 *   tables map), started in real mode at CS = 0, RIP = 0x1000 (guests/x86/longmode-entry.inc.S);
 *   it prints through port 0xE9, reads n = 90 from port 0xEA (arch/x86/demo-input.ts) and ends
 *   with HLT.
 * - RISC-V (guests/riscv/demo, on the soft backend): a flat image at 0x8020_0000 in 16 MiB of
 *   RAM at 0x8000_0000 (the RV64 kernel placement), S-mode, printing through the SBI console and
 *   ending with an SRST shutdown.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { packageRoot } from "../package-root.js";
import type { ImageArch } from "./image.js";
import type { X86Mode } from "./x86-boot.js";

/** How a demo guest is loaded. */
export interface DemoSpec {
  readonly arch: ImageArch;
  /** The image, relative to the package root. */
  readonly image: string;
  readonly loadAddr: bigint;
  readonly memSize: bigint;
  readonly x86Mode?: X86Mode;
  /** x86: the n answered on port 0xEA. */
  readonly demoInput?: number;
  /** x86: whether the machine has KVM's in-kernel irqchip (default true). */
  readonly irqchip?: boolean;
}

/** The demo of each architecture. */
export const DEMO_SPECS: Readonly<Record<ImageArch, DemoSpec>> = {
  x86: {
    arch: "x86",
    image: "guests/x86/demo.bin",
    loadAddr: 0x1000n,
    memSize: 2n << 20n,
    x86Mode: "real",
    demoInput: 90,
    // A polled guest whose HLT is its ending: without an irqchip KVM reports it as an exit.
    irqchip: false,
  },
  riscv: {
    arch: "riscv",
    image: "guests/riscv/demo/demo.bin",
    loadAddr: 0x8020_0000n,
    memSize: 16n << 20n,
  },
};

/**
 * The demo image's bytes, from under the package root (src/package-root.ts).
 * @throws Error when the image is not where the package puts it.
 */
export function demoImage(spec: DemoSpec): Uint8Array {
  const path = join(packageRoot(), spec.image);
  if (existsSync(path)) return new Uint8Array(readFileSync(path));
  throw new Error(`${spec.image} is missing from the package (run its build.sh)`);
}

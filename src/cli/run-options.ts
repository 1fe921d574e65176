/**
 * The option table of `regvisor run`, on its own so that main.ts can read a run's command line
 * (./early.ts) before it loads the run command and the VMM behind it.
 */
import { ENDING_OPTIONS, type OptionTable } from "./options.js";

/** Every option of `run`. */
export const RUN_OPTIONS = {
  backend: { type: "string" },
  mode: { type: "string" },
  "dump-regs": { type: "boolean" },
  json: { type: "boolean" },
  mem: { type: "string" },
  "load-addr": { type: "string" },
  entry: { type: "string" },
  "x86-mode": { type: "string" },
  cmdline: { type: "string" },
  cpus: { type: "string" },
  initrd: { type: "string" },
  disk: { type: "string", multiple: true },
  "virtio-console": { type: "boolean" },
  api: { type: "string" },
  gdb: { type: "string" },
  "gdb-wait": { type: "boolean" },
  "gdb-allow-remote": { type: "boolean" },
  "gdb-continue-on-disconnect": { type: "boolean" },
  incoming: { type: "string" },
  "trace-exits": { type: "boolean" },
  stats: { type: "boolean" },
  "snapshot-at-exit": { type: "string" },
  "snapshot-out": { type: "string" },
  ...ENDING_OPTIONS,
} as const satisfies OptionTable;

/**
 * Damaged real demo snapshots against a real restore (src/vmm/runner-restore.ts): truncation at
 * every offset and random byte flips let only `SnapshotFormatError` escape and run nothing;
 * well-formed snapshots the destination cannot take (a refused register value, a malformed
 * device, another memory layout) fail with `RestoreError` or `SnapshotFormatError` before the
 * guest runs (the registers already written rolled back). The intact snapshot then restores and
 * runs the guest to its end.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { lookupReg } from "../../../src/abi/catalog.js";
import {
  RestoreError,
  SnapshotFormatError,
  decodeSnapshot,
  encodeSnapshot,
  type Snapshot,
} from "../../../src/vmm/snapshot/index.js";
import { counted, demoBaseline, demoSnapshot, restoreDemo } from "./demo-run.js";
import { KVM_SKIP } from "./e2e-helpers.js";

interface Subject {
  readonly name: string;
  readonly skip: string | false;
  readonly backend: "kvm" | "soft";
  readonly at: number;
  /** A listed register and a value the destination refuses when written. */
  readonly refused: { readonly name: string; readonly value: Uint8Array };
}

const SUBJECTS: readonly Subject[] = [
  {
    name: "soft riscv demo at exit 3",
    skip: false,
    backend: "soft",
    at: 3,
    // SBI_EXT SINGLE values are 0/1 (vcpu_sbi.c): 2 is EINVAL, after four phases were written.
    refused: { name: "sbi_ext.dbcn", value: Uint8Array.of(2, 0, 0, 0, 0, 0, 0, 0) },
  },
  {
    name: "kvm x86 demo at exit 66",
    skip: KVM_SKIP,
    backend: "kvm",
    at: 66,
    // KVM_SET_MP_STATE: 0xff is no KVM_MP_STATE_* (EINVAL), in the eleventh of 14 phases.
    refused: { name: "MP_STATE", value: Uint8Array.of(0xff, 0, 0, 0) },
  },
];

/** Deterministic PRNG (mulberry32), so a failing flip is reproducible. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Restores `input` (bytes are decoded first, as `regvisor restore` does); true if the guest ran. */
async function attempt(input: Uint8Array | Snapshot): Promise<boolean> {
  let ran = false;
  await restoreDemo(input instanceof Uint8Array ? decodeSnapshot(input) : input, {
    beforeRun: () => {
      ran = true;
    },
  });
  return ran;
}

async function refusedWith(
  input: Uint8Array | Snapshot,
  what: string,
  check: (e: unknown) => boolean,
): Promise<void> {
  let ran = false;
  try {
    ran = await attempt(input);
  } catch (e) {
    assert.ok(check(e), `${what}: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
    return;
  }
  assert.fail(`${what}: restored (guest ran: ${ran})`);
}

const formatError = (e: unknown): boolean => e instanceof SnapshotFormatError;

function withRegister(snap: Snapshot, name: string, value: Uint8Array): Snapshot {
  const id = lookupReg(snap.arch, name).id;
  return {
    ...snap,
    vcpus: snap.vcpus.map((v) => ({
      ...v,
      regs: v.regs.map((r) => (r.id === id ? { id, value } : r)),
    })),
  };
}

describe("damaged real snapshots against a real restore", () => {
  for (const s of SUBJECTS) {
    it(
      `${s.name}: only format or restore errors, nothing run, then the intact one restores`,
      { skip: s.skip },
      async () => {
        const whole = await demoBaseline(s.backend);
        const { bytes, snapshot: snap, output } = await demoSnapshot(s.backend, s.at);

        for (let k = 0; k < bytes.length; k++) {
          await refusedWith(bytes.subarray(0, k), `cut at ${k}`, formatError);
        }
        const random = prng(0x5eed);
        for (let i = 0; i < 400; i++) {
          const damaged = bytes.slice();
          const at = Math.floor(random() * bytes.length);
          damaged[at] = (damaged[at] ?? 0) ^ (1 + Math.floor(random() * 255));
          await refusedWith(damaged, `flip at ${at}`, formatError);
        }

        const refused = withRegister(snap, s.refused.name, s.refused.value);
        await refusedWith(
          encodeSnapshot(refused),
          "refused register",
          (e) =>
            e instanceof RestoreError &&
            e.code === "RESTORE_WRITE" &&
            e.message.includes(s.refused.name) &&
            e.message.includes("rolled back"),
        );
        const badRun = {
          ...snap,
          devices: snap.devices.map((d) =>
            d.name === "vmm.run" ? { ...d, data: new TextEncoder().encode('{"version":1}') } : d,
          ),
        };
        await refusedWith(encodeSnapshot(badRun), "vmm.run", formatError);
        const moved = {
          ...snap,
          memory: snap.memory.map((r) => ({ ...r, gpa: r.gpa + 0x10000n })),
        };
        await refusedWith(
          encodeSnapshot(moved),
          "moved RAM",
          (e) => formatError(e) && e instanceof Error && e.message.includes('"ram"'),
        );

        const restored = await restoreDemo(bytes);
        assert.equal(restored.ending.status, 0);
        assert.equal(output + restored.output, whole.output);
        assert.equal(counted(restored), whole.exits);
      },
    );
  }
});

/**
 * Damaged real demo snapshots against a real destination machine: truncation at every offset
 * and random byte flips let only `SnapshotFormatError` escape and apply nothing; well-formed
 * snapshots the destination cannot take (a refused register value, a malformed device, another
 * memory layout) fail with `RestoreError` or `SnapshotFormatError` and leave it as it was. The
 * same destination then takes the intact snapshot and runs the guest to its end.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { lookupReg } from "../../../src/abi/catalog.js";
import {
  RestoreError,
  SnapshotFormatError,
  captureVcpu,
  encodeSnapshot,
  type Snapshot,
  type SnapshotMachine,
} from "../../../src/vmm/snapshot/index.js";
import { RiscvDemoMachine, X86DemoMachine } from "../../../src/vmm/snapshot/machines/index.js";
import {
  captureMachine,
  emptyMachineFor,
  prepareRestore,
  restoreIntoMachine,
  runMachine,
} from "../../../src/vmm/snapshot/vm-state.js";
import { KVM_SKIP, TIME_VARYING, baseline, differingRegs, regMap } from "./e2e-helpers.js";

interface Subject {
  readonly name: string;
  readonly skip: string | false;
  readonly backend: "kvm" | "soft";
  boot(): SnapshotMachine;
  readonly at: number;
  /** A listed register and a value the destination refuses when written. */
  readonly refused: { readonly name: string; readonly value: Uint8Array };
}

const SUBJECTS: readonly Subject[] = [
  {
    name: "soft riscv demo at exit 3",
    skip: false,
    backend: "soft",
    boot: () => RiscvDemoMachine.boot(),
    at: 3,
    // SBI_EXT SINGLE values are 0/1 (vcpu_sbi.c): 2 is EINVAL, after four phases were written.
    refused: { name: "sbi_ext.dbcn", value: Uint8Array.of(2, 0, 0, 0, 0, 0, 0, 0) },
  },
  {
    name: "kvm x86 demo at exit 66",
    skip: KVM_SKIP,
    backend: "kvm",
    boot: () => X86DemoMachine.boot(),
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

interface Fingerprint {
  readonly regs: ReturnType<typeof regMap>;
  readonly memory: Uint8Array[];
  readonly exits: number;
  readonly output: number;
}

function fingerprint(m: SnapshotMachine): Fingerprint {
  const vcpu = m.vcpus[0];
  assert.ok(vcpu !== undefined);
  return {
    regs: regMap(captureVcpu(vcpu).regs),
    memory: m.memory().map((r) => r.data.slice()),
    exits: m.progress().exits,
    output: m.output().length,
  };
}

function assertUnchanged(s: Subject, m: SnapshotMachine, before: Fingerprint): void {
  const now = fingerprint(m);
  assert.deepEqual(differingRegs(before.regs, now.regs, new Set(TIME_VARYING[s.backend])), []);
  assert.equal(now.exits, before.exits);
  assert.equal(now.output, before.output);
  now.memory.forEach((r, i) => {
    assert.ok(Buffer.from(r).equals(Buffer.from(before.memory[i] ?? [])), `memory slot ${i}`);
  });
}

function onlyFormatError(fn: () => unknown, what: string): void {
  try {
    fn();
  } catch (e) {
    if (e instanceof SnapshotFormatError) return;
    assert.fail(`${what}: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)} escaped`);
  }
  assert.fail(`${what}: restored`);
}

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

describe("damaged real snapshots against a real destination", () => {
  for (const s of SUBJECTS) {
    it(
      `${s.name}: only format or restore errors, nothing applied, then the intact one restores`,
      { skip: s.skip },
      () => {
        const whole = baseline(s.boot());
        const source = s.boot();
        runMachine(source, { stopAtExit: s.at });
        const snap = captureMachine(source);
        source.close();
        const bytes = encodeSnapshot(snap);
        using dest = emptyMachineFor(prepareRestore(bytes));
        const before = fingerprint(dest);

        for (let k = 0; k < bytes.length; k++) {
          onlyFormatError(() => restoreIntoMachine(dest, bytes.subarray(0, k)), `cut at ${k}`);
        }
        const random = prng(0x5eed);
        for (let i = 0; i < 400; i++) {
          const damaged = bytes.slice();
          const at = Math.floor(random() * bytes.length);
          damaged[at] = (damaged[at] ?? 0) ^ (1 + Math.floor(random() * 255));
          onlyFormatError(() => restoreIntoMachine(dest, damaged), `flip at ${at}`);
        }
        assertUnchanged(s, dest, before);

        const refused = withRegister(snap, s.refused.name, s.refused.value);
        assert.throws(
          () => restoreIntoMachine(dest, encodeSnapshot(refused)),
          (e: unknown) =>
            e instanceof RestoreError &&
            e.code === "RESTORE_WRITE" &&
            e.message.includes(s.refused.name) &&
            e.message.includes("rolled back"),
        );
        assertUnchanged(s, dest, before);

        const badRun = {
          ...snap,
          devices: snap.devices.map((d) =>
            d.name === "vmm.run" ? { ...d, data: new TextEncoder().encode('{"version":1}') } : d,
          ),
        };
        onlyFormatError(() => restoreIntoMachine(dest, encodeSnapshot(badRun)), "vmm.run");
        const moved = {
          ...snap,
          memory: snap.memory.map((r) => ({ ...r, gpa: r.gpa + 0x10000n })),
        };
        assert.throws(
          () => restoreIntoMachine(dest, encodeSnapshot(moved)),
          (e: unknown) => e instanceof RestoreError && e.code === "RESTORE_MACHINE",
        );
        assertUnchanged(s, dest, before);

        restoreIntoMachine(dest, bytes);
        assert.equal(runMachine(dest).stopped, "finished");
        assert.equal(new TextDecoder().decode(dest.output()), whole.output);
        assert.equal(dest.progress().exits, whole.exits);
      },
    );
  }
});

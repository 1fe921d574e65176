/**
 * The `Vcpu` conformance suite (DESIGN.md §1–§2): one set of checks every backend and mode
 * must pass. A backend describes itself with a `ConformanceTarget` — how to make a vCPU, and
 * the ABI facts that make some registers special (time-varying, not writable back), each with
 * its reason — and `vcpuConformance()` registers the tests.
 *
 * Time-varying registers (x86 IA32_TSC, riscv timer.time) are compared as unsigned integers:
 * a later read must be ≥ the earlier one and at most `maxDelta` ahead; everything else exactly.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { decodeReg } from "../../src/abi/catalog.js";
import { KvmError } from "../../src/abi/kvm/errors.js";
import { ERRNO, type ErrnoName } from "../../src/abi/kvm/errno.js";
import {
  archOf,
  formatRegId,
  makeRegId,
  payloadOf,
  regSize,
  type RegId,
} from "../../src/abi/regid.js";
import type { GuestDebug, Vcpu, VcpuExit, Vm } from "../../src/backends/vcpu.js";
import { KVM_GUESTDBG, KVM_MP_STATE } from "../../src/abi/kvm/constants.js";
import { X86_PSEUDO } from "../../src/abi/arch/x86/index.js";
import { IRQCHIP_STATE_BYTES } from "../../src/backends/vcpu.js";

/** A register whose value moves by itself between two reads. */
export interface Volatile {
  /** Largest forward move tolerated between two reads in one test. */
  readonly maxDelta: bigint;
  readonly why: string;
}

/** A register `setOneReg(getOneReg())` cannot round-trip, and the refusal that proves it. */
export interface NotWritable {
  readonly errno: ErrnoName;
  readonly why: string;
}

/** A backend (and mode) under test. */
export interface ConformanceTarget {
  readonly name: string;
  /** A skip reason (string) when the backend cannot run here, else false. */
  readonly skip: string | false;
  /** A vCPU in a realistic state (booted, run a few exits); `close` releases it. */
  make(): { readonly vcpu: Vcpu; close(): void };
  readonly volatile: ReadonlyMap<RegId, Volatile>;
  /** Keyed by id; predicates cover whole classes (e.g. riscv sbi_ext after the first run). */
  readonly notWritable: (id: RegId) => NotWritable | undefined;
  /** Checks on the list's make-up beyond the generic ones (counts per class, pseudo set). */
  readonly listShape: (ids: readonly RegId[], vcpu: Vcpu) => void;
  /** An id of this arch the vCPU does not have, and the errno it gets. */
  readonly unknown: { readonly id: RegId; readonly errno: ErrnoName };
  /** An id from another arch's catalog, and the errno it gets. */
  readonly foreign: { readonly id: RegId; readonly errno: ErrnoName };
  /** Errno for a known register asked with another size in its id. */
  readonly wrongSizeErrno: ErrnoName;
  /** A listed register and a value it refuses (for the bad batch entry). */
  readonly badValue: { readonly id: RegId; readonly value: (current: Uint8Array) => Uint8Array };
  /** Listed registers a batch may set to new values (to show a failed batch undoes them). */
  readonly scratch: readonly RegId[];
  /** riscv: the arch byte is never checked (ABI §14 #1); the soft backend reproduces it. */
  readonly ignoresArchByte: boolean;
}

const u = (bytes: Uint8Array): bigint => {
  let v = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[i] ?? 0);
  return v;
};

const label = (id: RegId): string => {
  const d = decodeReg(id);
  return `${d.known ? d.name : "unknown"} ${formatRegId(id)}`;
};

function sameValue(
  t: ConformanceTarget,
  id: RegId,
  earlier: Uint8Array,
  later: Uint8Array,
  what: string,
): void {
  const vol = t.volatile.get(id);
  if (vol === undefined) {
    assert.deepEqual(later, earlier, `${what}: ${label(id)}`);
    return;
  }
  const delta = u(later) - u(earlier);
  assert.ok(
    delta >= 0n && delta <= vol.maxDelta,
    `${what}: ${label(id)} moved by ${delta}, outside 0..${vol.maxDelta} (${vol.why})`,
  );
}

function split(ids: readonly RegId[], bytes: Uint8Array): Uint8Array[] {
  let at = 0;
  return ids.map((id) => {
    const v = bytes.slice(at, at + regSize(id));
    at += regSize(id);
    return v;
  });
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function expectKvm(fn: () => unknown, errno: ErrnoName, id?: RegId, index?: number): KvmError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof KvmError, `expected KvmError, got ${String(e)}`);
    assert.equal(e.errnoName, errno, e.message);
    assert.equal(e.errno, ERRNO[errno]);
    if (id !== undefined) assert.equal(e.regId, id, e.message);
    if (index !== undefined) assert.equal(e.index, index, e.message);
    return e;
  }
  assert.fail(`expected ${errno}`);
}

/** Registers the conformance tests for `t`. */
export function vcpuConformance(t: ConformanceTarget): void {
  describe(`Vcpu conformance: ${t.name}`, { skip: t.skip }, () => {
    let target: { readonly vcpu: Vcpu; close(): void } | undefined;
    let ids: RegId[] = [];
    const vcpu = (): Vcpu => {
      if (target === undefined) throw new Error("no target");
      return target.vcpu;
    };
    const writable = (): RegId[] => ids.filter((id) => t.notWritable(id) === undefined);
    before(() => {
      target = t.make();
      ids = target.vcpu.regList();
    });
    after(() => target?.close());

    it("regList(): non-empty, no duplicates, this arch only, every id in the catalog", () => {
      assert.ok(ids.length > 0);
      assert.equal(new Set(ids).size, ids.length, "duplicate ids");
      for (const id of ids) {
        assert.equal(archOf(id), vcpu().arch, label(id));
        assert.ok(decodeReg(id).known, `${formatRegId(id)} does not decode in the catalog`);
      }
      t.listShape(ids, vcpu());
    });

    it("regList(): the same ids in the same order on every call", () => {
      assert.deepEqual(vcpu().regList(), ids);
      assert.deepEqual(vcpu().regList(), ids);
    });

    it("getOneReg() returns exactly regSize(id) bytes for every listed id", () => {
      for (const id of ids) {
        const v = vcpu().getOneReg(id);
        assert.ok(v instanceof Uint8Array, label(id));
        assert.equal(v.length, regSize(id), label(id));
      }
    });

    it("getManyRegs(all) equals the getOneReg() values concatenated", () => {
      const one = ids.map((id) => vcpu().getOneReg(id));
      const many = vcpu().getManyRegs(ids);
      assert.equal(
        many.length,
        one.reduce((n, v) => n + v.length, 0),
      );
      split(ids, many).forEach((v, i) => {
        const id = ids[i];
        const o = one[i];
        if (id !== undefined && o !== undefined) sameValue(t, id, o, v, "getManyRegs");
      });
    });

    it("setOneReg(getOneReg()) round-trips every writable register", () => {
      for (const id of writable()) {
        const v = vcpu().getOneReg(id);
        vcpu().setOneReg(id, v);
        sameValue(t, id, v, vcpu().getOneReg(id), "round trip");
      }
    });

    it("the registers documented as not writable back are refused as documented", () => {
      const special = ids.filter((id) => t.notWritable(id) !== undefined);
      for (const id of special) {
        const why = t.notWritable(id);
        if (why === undefined) continue;
        expectKvm(
          () => {
            vcpu().setOneReg(id, vcpu().getOneReg(id));
          },
          why.errno,
          id,
        );
      }
    });

    it("setManyRegs(writable, getManyRegs(writable)) round-trips in one batch", () => {
      const w = writable();
      const before = vcpu().getManyRegs(w);
      vcpu().setManyRegs(w, before);
      const afterBytes = split(w, vcpu().getManyRegs(w));
      split(w, before).forEach((v, i) => {
        const id = w[i];
        const a = afterBytes[i];
        if (id !== undefined && a !== undefined) sameValue(t, id, v, a, "batch round trip");
      });
    });

    for (const where of ["first", "middle", "last"] as const) {
      for (const bad of ["unknown id", "refused value"] as const) {
        it(`setManyRegs() with a ${bad} ${where} names its index and id and changes nothing`, () => {
          failedBatch(t, vcpu(), ids, writable(), where, bad);
        });
      }
    }

    it("an unknown id gives a KvmError naming it, on get and set", () => {
      const { id, errno } = t.unknown;
      assert.ok(!ids.includes(id));
      expectKvm(() => vcpu().getOneReg(id), errno, id);
      expectKvm(
        () => {
          vcpu().setOneReg(id, new Uint8Array(regSize(id)));
        },
        errno,
        id,
      );
    });

    it("an id of another arch gives a KvmError naming it", () => {
      const { id, errno } = t.foreign;
      assert.notEqual(archOf(id), vcpu().arch);
      expectKvm(() => vcpu().getOneReg(id), errno, id);
    });

    it("a value of the wrong length is a RangeError; a wrong size in the id a KvmError", () => {
      const id = t.scratch[0];
      assert.ok(id !== undefined);
      const size = regSize(id);
      assert.throws(() => {
        vcpu().setOneReg(id, new Uint8Array(size + 1));
      }, RangeError);
      assert.throws(() => {
        vcpu().setManyRegs([id], new Uint8Array(size - 1));
      }, RangeError);
      const other = makeRegId(vcpu().arch, size === 4 ? 8 : 4, payloadOf(id));
      expectKvm(() => vcpu().getOneReg(other), t.wrongSizeErrno, other);
      expectKvm(() => {
        vcpu().setOneReg(other, new Uint8Array(regSize(other)));
      }, t.wrongSizeErrno);
    });

    it("wrong-size and out-of-range values get the same messages on every backend", () => {
      const id = t.scratch[0];
      assert.ok(id !== undefined);
      const size = regSize(id);
      const label = `Cannot set register ${formatRegId(id)} \\([^)]+\\): `;
      assert.throws(
        () => {
          vcpu().setOneReg(id, new Uint8Array(size + 1));
        },
        {
          name: "RangeError",
          message: new RegExp(`^${label}the value has ${size + 1} bytes, the register ${size}$`),
        },
      );
      assert.throws(
        () => {
          vcpu().setOneReg(id, 1n << BigInt(8 * size));
        },
        {
          name: "RangeError",
          message: new RegExp(`^${label}the value \\d+ does not fit in ${size} bytes$`),
        },
      );
    });

    it("an id outside 0..2^64-1 is a RangeError, never masked into a real id", () => {
      const id = t.scratch[0];
      assert.ok(id !== undefined);
      // Plain bigints, as a JavaScript caller passes them: 2^64 + a real id, and -1.
      for (const bad of [((1n << 64n) + id) as RegId, -1n as RegId]) {
        assert.throws(() => vcpu().getOneReg(bad), RangeError);
        assert.throws(() => {
          vcpu().setOneReg(bad, new Uint8Array(regSize(id)));
        }, RangeError);
        assert.throws(() => vcpu().getManyRegs([bad]), RangeError);
      }
    });

    it('a refused register names it once (no "register register")', () => {
      const { id } = t.unknown;
      for (const fn of [
        () => vcpu().getOneReg(id),
        () => {
          vcpu().setOneReg(id, new Uint8Array(regSize(id)));
        },
      ]) {
        const error = expectKvm(fn, t.unknown.errno, id);
        assert.match(error.message, /^Cannot (read|set) register 0x[0-9a-f]{16} \(/);
        assert.doesNotMatch(error.message, /register register/);
      }
    });

    it("the arch byte of an id is checked (x86) or ignored as riscv KVM does (ABI §14 #1)", () => {
      const id = t.scratch[0];
      assert.ok(id !== undefined);
      const foreignArch = vcpu().arch === "x86" ? "riscv" : "x86";
      const moved = makeRegId(foreignArch, regSize(id), payloadOf(id));
      if (t.ignoresArchByte) assert.deepEqual(vcpu().getOneReg(moved), vcpu().getOneReg(id));
      else assert.throws(() => vcpu().getOneReg(moved), KvmError);
    });
  });
}

/** A batch: every writable register, scratch ones changed, one bad entry at `where`. */
function failedBatch(
  t: ConformanceTarget,
  vcpu: Vcpu,
  listed: readonly RegId[],
  writable: readonly RegId[],
  where: "first" | "middle" | "last",
  bad: "unknown id" | "refused value",
): void {
  const batch = writable.filter((id) => id !== t.badValue.id);
  const values = split(batch, vcpu.getManyRegs(batch));
  batch.forEach((id, i) => {
    if (!t.scratch.includes(id)) return;
    const v = values[i];
    // The low byte: keeps x86 addresses canonical and struct padding 0 (REGS: the low byte of RAX).
    if (v !== undefined) v[0] = (v[0] ?? 0) ^ 0x5a;
  });
  const badId = bad === "unknown id" ? t.unknown.id : t.badValue.id;
  const badBytes =
    bad === "unknown id"
      ? new Uint8Array(regSize(badId))
      : t.badValue.value(vcpu.getOneReg(t.badValue.id));
  const at = where === "first" ? 0 : where === "last" ? batch.length : batch.length >> 1;
  const ids = [...batch.slice(0, at), badId, ...batch.slice(at)];
  const bytes = concat([...values.slice(0, at), badBytes, ...values.slice(at)]);
  const before = vcpu.getManyRegs(listed);
  const errno = bad === "unknown id" ? t.unknown.errno : undefined;
  try {
    vcpu.setManyRegs(ids, bytes);
    assert.fail("the batch was accepted");
  } catch (e) {
    assert.ok(e instanceof KvmError, `expected KvmError, got ${String(e)}`);
    assert.equal(e.index, at, e.message);
    assert.equal(e.regId, badId, e.message);
    if (errno !== undefined) assert.equal(e.errnoName, errno);
  }
  const now = split(listed, vcpu.getManyRegs(listed));
  split(listed, before).forEach((v, i) => {
    const id = listed[i];
    const n = now[i];
    if (id !== undefined && n !== undefined) sameValue(t, id, v, n, "after the failed batch");
  });
}

// Capabilities -------------------------------------------------------------------------------

/** A vCPU of a capability case, in a VM the case closes. */
export interface CapabilityGuest {
  readonly vm: Vm;
  readonly vcpu: Vcpu;
}

/** A guest for the power-state cases and the arch's states besides RUNNABLE. */
export interface MpStateGuest extends CapabilityGuest {
  /** A `KVM_MP_STATE_*` the arch takes besides RUNNABLE (RISC-V STOPPED, x86 HALTED). */
  readonly other: number;
  /** A `KVM_MP_STATE_*` the arch refuses with EINVAL. */
  readonly refused: number;
}

/** A guest that stores into chosen pages of a logging slot, then exits, in a loop. */
export interface WriterGuest extends CapabilityGuest {
  /** The logging slot (8 pages) and its guest-physical base. */
  readonly slot: number;
  readonly base: bigint;
}

/** A guest that proves an interrupt was delivered by the exit it makes in its handler. */
export interface InterruptGuest extends CapabilityGuest {
  /** Drives the line (setExternalInterrupt / setIrqLine) high or low. */
  raise(level: boolean): void;
  /** Asserts that `exit` is the handler's report. */
  check(exit: VcpuExit): void;
}

/**
 * A guest for the guest-debug cases: from its start pc it runs straight-line code where
 * `stepPcs` are the pcs of its first instructions in order, then reaches the arch's software
 * breakpoint instruction (RISC-V `ebreak`, x86 `int3`) at `swBreakAt`.
 */
export interface DebugGuest extends CapabilityGuest {
  /** The vCPU's program counter now. */
  pc(): bigint;
  /** pcs of the first three instructions, in execution order (the third before the breakpoint). */
  readonly stepPcs: readonly [bigint, bigint, bigint];
  /** The software breakpoint instruction the straight-line code reaches. */
  readonly swBreakAt: bigint;
}

/**
 * A backend's machine capabilities under test (Vcpu.runAsync/kick/setExternalInterrupt,
 * Vm.getDirtyLog/markDirty/createIrqchip/setIrqLine). A hook that is absent is a capability the
 * backend lacks: `lacks` says why, and the case is skipped with that reason.
 */
export interface CapabilityTarget {
  readonly name: string;
  readonly skip: string | false;
  /** A vCPU spinning in a one-instruction loop forever. */
  spinner(): CapabilityGuest;
  /** A vCPU storing into `pages` of an 8-page logging slot, then exiting, forever. */
  writer(pages: readonly number[]): WriterGuest;
  /** Raises the guest's external interrupt (RISC-V KVM_INTERRUPT) while it spins. */
  externalInterrupt?(): InterruptGuest;
  /** Raises a GSI of the in-kernel irqchip (x86 KVM_IRQ_LINE) while the guest halts. */
  irqLine?(): InterruptGuest;
  /** A guest for `Vcpu.setGuestDebug` (KVM_SET_GUEST_DEBUG). */
  guestDebug?(): DebugGuest;
  /** A guest for `getMpState`/`setMpState` that exits (not intr) on every run while runnable. */
  mpState?(): MpStateGuest;
  /** A VM with the in-kernel irqchip for `Vm.getIrqchip`/`setIrqchip`. */
  irqchipState?(): CapabilityGuest;
  readonly lacks: {
    readonly mpState?: string;
    readonly irqchipState?: string;
    readonly runAsync?: string;
    readonly externalInterrupt?: string;
    readonly irqLine?: string;
    /** The irqchip exists but does not deliver to the test guest (a host limit). */
    readonly irqDelivery?: string;
    readonly guestDebug?: string;
    /** USE_SW_BP does not make the breakpoint instruction exit (a host limit). */
    readonly swBreakpoints?: string;
    /**
     * A step from a pc holding an armed hardware breakpoint reports that breakpoint again
     * instead of stepping (x86 KVM: the instruction breakpoint is a fault, RF is not set for it);
     * the debugger steps with it off. The case asserts that instead.
     */
    readonly hwStepReportsBreakpoint?: string;
  };
}

const sleep = (ms: number): Promise<void> =>
  new Promise((resolve) => {
    setTimeout(resolve, ms);
  });

/** Runs until an exit that is not `intr` (synchronously). */
export function runToExit(vcpu: Vcpu): VcpuExit {
  for (let i = 0; i < 1000; i++) {
    const exit = vcpu.run();
    if (exit.kind !== "intr") return exit;
  }
  assert.fail("no exit after 1000 runs");
}

/** A KVM dirty bitmap of an 8-page slot: one u64 (bitmaps are aligned to 64 bits). */
export function bitmapOf(pages: readonly number[]): number[] {
  const out = [0, 0, 0, 0, 0, 0, 0, 0];
  for (const p of pages) out[p >> 3] = (out[p >> 3] ?? 0) | (1 << (p & 7));
  return out;
}

/** Registers the capability cases for `t`. */
export function capabilityConformance(t: CapabilityTarget): void {
  describe(`Vcpu/Vm capabilities: ${t.name}`, { skip: t.skip }, () => {
    it("kick() before a run makes that run return intr at once; the next run is normal", () => {
      const { vm, vcpu } = t.writer([1]);
      try {
        assert.ok(vcpu.kick !== undefined, "kick() is implemented");
        vcpu.kick();
        vcpu.kick();
        assert.equal(vcpu.run().kind, "intr");
        assert.notEqual(runToExit(vcpu).kind, "intr");
      } finally {
        vm.close();
      }
    });

    it(
      "runAsync() keeps the event loop free; kick() ends it with intr",
      { skip: t.lacks.runAsync ?? false },
      async () => {
        const { vm, vcpu } = t.spinner();
        try {
          const runAsync = vcpu.runAsync?.bind(vcpu);
          assert.ok(runAsync !== undefined && vcpu.kick !== undefined);
          let settled = false;
          const running = runAsync().finally(() => {
            settled = true;
          });
          for (let i = 0; i < 5; i++) await sleep(10);
          assert.equal(settled, false, "the guest is still spinning");
          const kickedAt = performance.now();
          vcpu.kick();
          assert.equal((await running).kind, "intr");
          const took = performance.now() - kickedAt;
          assert.ok(took < 2000, `the kick landed after ${took.toFixed(0)} ms`);
        } finally {
          vm.close();
        }
      },
    );

    it(
      "setExternalInterrupt() reaches a spinning guest as its external interrupt",
      { skip: t.lacks.externalInterrupt ?? false },
      async () => {
        const guest = t.externalInterrupt?.();
        assert.ok(guest !== undefined);
        try {
          await raiseWhileRunning(guest);
        } finally {
          guest.vm.close();
        }
      },
    );

    it(
      "setIrqLine() needs the in-kernel irqchip (ENXIO without) and drives a GSI with it",
      { skip: t.lacks.irqLine ?? false },
      () => {
        const guest = t.irqLine?.();
        assert.ok(guest !== undefined);
        const { vm } = guest;
        try {
          guest.raise(true);
          guest.raise(false);
          assert.throws(
            () => vm.createIrqchip?.(),
            (e: unknown) => e instanceof KvmError && e.errnoName === "EEXIST",
          );
          assert.throws(() => vm.setIrqLine?.(-1, true), RangeError);
        } finally {
          vm.close();
        }
        const bare = t.spinner();
        try {
          assert.throws(
            () => bare.vm.setIrqLine?.(4, true),
            (e: unknown) => e instanceof KvmError && e.errnoName === "ENXIO",
          );
          assert.throws(
            () => bare.vm.createIrqchip?.(),
            (e: unknown) => e instanceof KvmError && e.errnoName === "EINVAL",
            "after the first vCPU",
          );
        } finally {
          bare.vm.close();
        }
      },
    );

    it(
      "setIrqLine() on the in-kernel irqchip interrupts a halted guest",
      { skip: t.lacks.irqLine ?? t.lacks.irqDelivery ?? false },
      async () => {
        const guest = t.irqLine?.();
        assert.ok(guest !== undefined);
        try {
          await raiseWhileRunning(guest);
        } finally {
          guest.vm.close();
        }
      },
    );

    guestDebugCases(t);
    mpStateCases(t);
    irqchipStateCases(t);

    it("getDirtyLog(): the pages the guest wrote, read-and-clear, again after new writes; markDirty adds", () => {
      const { vm, vcpu, slot, base } = t.writer([2, 5]);
      try {
        assert.ok(vm.getDirtyLog !== undefined && vm.markDirty !== undefined);
        assert.deepEqual(vm.memory.find((m) => m.slot === slot)?.logDirty, true);
        assert.deepEqual([...vm.getDirtyLog(slot)], bitmapOf([]), "nothing written yet");
        runToExit(vcpu);
        assert.deepEqual([...vm.getDirtyLog(slot)], bitmapOf([2, 5]));
        assert.deepEqual([...vm.getDirtyLog(slot)], bitmapOf([]), "read-and-clear");
        runToExit(vcpu); // the same stores again: logged again
        assert.deepEqual([...vm.getDirtyLog(slot)], bitmapOf([2, 5]));
        vm.markDirty(base + 0x6ffen, 4); // spans pages 6 and 7
        assert.deepEqual([...vm.getDirtyLog(slot)], bitmapOf([6, 7]));
        const enoent = (e: unknown): boolean => e instanceof KvmError && e.errnoName === "ENOENT";
        const plain = vm.memory.find((m) => !m.logDirty);
        assert.ok(plain !== undefined, "the guest's code slot does not log");
        assert.throws(() => vm.getDirtyLog?.(plain.slot), enoent);
        assert.throws(() => vm.getDirtyLog?.(99), enoent);
        assert.throws(() => vm.markDirty?.(base + 0x7ff0n, 0x20), RangeError);
      } finally {
        vm.close();
      }
    });
  });
}

/** Runs `vcpu` until its next exit other than `intr`, which must be `debug`. */
function runToDebug(vcpu: Vcpu): Extract<VcpuExit, { kind: "debug" }> {
  const exit = runToExit(vcpu);
  if (exit.kind !== "debug") assert.fail(`expected a debug exit, got ${exit.kind}`);
  return exit;
}

/** The `setGuestDebug` cases (KVM_SET_GUEST_DEBUG, KVM_EXIT_DEBUG). */
function guestDebugCases(t: CapabilityTarget): void {
  const skip = t.lacks.guestDebug ?? (t.guestDebug === undefined ? "no guest-debug guest" : false);
  const { ENABLE, SINGLESTEP, USE_SW_BP, USE_HW_BP } = KVM_GUESTDBG;
  const withGuest = (body: (g: DebugGuest, set: (d: GuestDebug) => void) => void) => (): void => {
    const g = t.guestDebug?.();
    assert.ok(g !== undefined);
    try {
      const set = g.vcpu.setGuestDebug?.bind(g.vcpu);
      assert.ok(set !== undefined, "setGuestDebug() is implemented");
      body(g, set);
    } finally {
      g.vm.close();
    }
  };
  const swSkip = skip !== false ? skip : (t.lacks.swBreakpoints ?? false);
  it(
    "setGuestDebug(ENABLE|USE_SW_BP): the software breakpoint exits as debug, pc on it, not executed",
    { skip: swSkip },
    withGuest((g, set) => {
      set({ control: ENABLE | USE_SW_BP });
      const exit = runToDebug(g.vcpu);
      assert.equal(exit.pc, g.swBreakAt);
      assert.equal(g.pc(), g.swBreakAt, "the breakpoint instruction did not execute");
      if (exit.cause !== undefined) assert.equal(exit.cause, "swbreak");
      const again = runToDebug(g.vcpu);
      assert.equal(again.pc, g.swBreakAt, "running again hits it again");
    }),
  );
  it(
    "setGuestDebug(ENABLE|SINGLESTEP): one debug exit after each instruction",
    { skip },
    withGuest((g, set) => {
      set({ control: ENABLE | SINGLESTEP });
      const [first, second, third] = g.stepPcs;
      assert.equal(g.pc(), first);
      const one = runToDebug(g.vcpu);
      assert.equal(one.pc, second);
      assert.equal(g.pc(), second);
      if (one.cause !== undefined) assert.equal(one.cause, "step");
      assert.equal(runToDebug(g.vcpu).pc, third);
      if (swSkip !== false) return; // the host does not intercept the breakpoint instruction
      set({ control: 0 });
      set({ control: ENABLE | USE_SW_BP });
      assert.equal(runToDebug(g.vcpu).pc, g.swBreakAt, "stepping off: runs to the breakpoint");
    }),
  );
  it(
    "setGuestDebug(ENABLE|USE_HW_BP): a hardware breakpoint exits before its instruction runs",
    { skip },
    withGuest((g, set) => {
      const at = g.stepPcs[2];
      set({ control: ENABLE | USE_HW_BP, hwBreakpoints: [at], debugreg: hwDebugRegs(at) });
      const exit = runToDebug(g.vcpu);
      assert.equal(exit.pc, at);
      assert.equal(g.pc(), at);
      if (exit.cause !== undefined) assert.equal(exit.cause, "hwbreak");
      set({
        control: ENABLE | SINGLESTEP | USE_HW_BP,
        hwBreakpoints: [at],
        debugreg: hwDebugRegs(at),
      });
      const stepped = runToDebug(g.vcpu).pc;
      if (t.lacks.hwStepReportsBreakpoint === undefined) {
        assert.notEqual(stepped, at, "a step leaves the breakpoint");
      } else {
        assert.equal(stepped, at, t.lacks.hwStepReportsBreakpoint);
        set({ control: ENABLE | SINGLESTEP }); // the breakpoint off, as a debugger steps
        assert.notEqual(runToDebug(g.vcpu).pc, at, "a step with it off leaves it");
      }
    }),
  );
  it(
    "setGuestDebug() refuses control bits the backend does not implement (EINVAL, or RangeError before the ioctl)",
    { skip },
    withGuest((g, set) => {
      // KVM x86 accepts unknown bits (measured on 6.18), so regvisor refuses them itself, before
      // the ioctl, as a RangeError (STYLE: no invented errno); the soft backend answers as the
      // RISC-V kernel does, EINVAL.
      assert.throws(
        () => {
          set({ control: ENABLE | 0x4000_0000 });
        },
        (e: unknown) =>
          (e instanceof KvmError && e.errnoName === "EINVAL") || e instanceof RangeError,
      );
      set({ control: ENABLE | SINGLESTEP });
      assert.equal(runToDebug(g.vcpu).pc, g.stepPcs[1], "the refused call changed nothing");
    }),
  );
}

/** The `getMpState`/`setMpState` cases (KVM_GET_MP_STATE / KVM_SET_MP_STATE). */
function mpStateCases(t: CapabilityTarget): void {
  const skip = t.lacks.mpState ?? (t.mpState === undefined ? "no MP-state guest" : false);
  it(
    "getMpState()/setMpState(): RUNNABLE at creation, another state round-trips, a refused one is EINVAL and changes nothing",
    { skip },
    () => {
      const g = t.mpState?.();
      assert.ok(g !== undefined);
      const { vm, vcpu } = g;
      try {
        const get = vcpu.getMpState?.bind(vcpu);
        const set = vcpu.setMpState?.bind(vcpu);
        assert.ok(get !== undefined && set !== undefined, "getMpState()/setMpState() exist");
        assert.equal(get(), KVM_MP_STATE.RUNNABLE, "vCPU 0 is runnable at creation");
        set(g.other);
        assert.equal(get(), g.other);
        if (vcpu.arch === "x86") {
          // One truth: the MP_STATE pseudo register is the same KVM_GET_MP_STATE.
          const pseudo = vcpu.getOneReg(X86_PSEUDO.MP_STATE.id);
          assert.equal(new DataView(pseudo.buffer).getUint32(0, true), g.other);
        }
        expectKvm(() => {
          set(g.refused);
        }, "EINVAL");
        assert.equal(get(), g.other, "the refused state changed nothing");
        set(KVM_MP_STATE.RUNNABLE);
        assert.equal(get(), KVM_MP_STATE.RUNNABLE);
        assert.notEqual(runToExit(vcpu).kind, "intr", "runnable again, the guest runs");
      } finally {
        vm.close();
      }
    },
  );
}

/** The `Vm.getIrqchip`/`setIrqchip` cases (KVM_GET_IRQCHIP / KVM_SET_IRQCHIP). */
function irqchipStateCases(t: CapabilityTarget): void {
  const skip =
    t.lacks.irqchipState ?? (t.irqchipState === undefined ? "no irqchip-state guest" : false);
  it(
    "getIrqchip()/setIrqchip(): each chip's state round-trips into another VM; a bad chip id is refused",
    { skip },
    () => {
      const a = t.irqchipState?.();
      const b = t.irqchipState?.();
      assert.ok(a !== undefined && b !== undefined);
      try {
        const get = a.vm.getIrqchip?.bind(a.vm);
        const setB = b.vm.setIrqchip?.bind(b.vm);
        const getB = b.vm.getIrqchip?.bind(b.vm);
        assert.ok(get !== undefined && setB !== undefined && getB !== undefined);
        // Program a's master PIC: ICW1-4 (vectors 0x20..), OCW1 = mask 0xef (only IRQ 4 open).
        const setLine = a.vm.setIrqLine?.bind(a.vm);
        assert.ok(setLine !== undefined);
        const fresh = getB(0);
        const chips = [0, 1, 2].map((id) => get(id));
        for (const chip of chips) assert.equal(chip.length, IRQCHIP_STATE_BYTES);
        // kvm_pic_state: irr at byte 1, imr at 2, isr at 3, irq_base at 5 (arch/x86/include/uapi/asm/kvm.h).
        const edited = chips[0]?.slice();
        assert.ok(edited !== undefined);
        edited[2] = 0xef;
        edited[5] = 0x20;
        setB(0, edited);
        assert.deepEqual(getB(0).subarray(0, 16), edited.subarray(0, 16));
        assert.notDeepEqual(getB(0), fresh, "the state was written");
        setLine(4, true);
        setLine(4, false);
        const ioapic = get(2);
        setB(2, ioapic);
        assert.deepEqual(getB(2), ioapic, "the IOAPIC state round-trips");
        assert.throws(
          () => get(3),
          (e: unknown) =>
            e instanceof RangeError || (e instanceof KvmError && e.errnoName === "EINVAL"),
        );
        assert.throws(() => {
          setB(0, new Uint8Array(7));
        }, RangeError);
        assert.deepEqual(getB(0).subarray(0, 16), edited.subarray(0, 16), "refused: unchanged");
      } finally {
        a.vm.close();
        b.vm.close();
      }
    },
  );
}

/** x86 DR0 = `address`, DR7 = L0 (execute, 1 byte); other backends ignore `debugreg`. */
function hwDebugRegs(address: bigint): bigint[] {
  return [address, 0n, 0n, 0n, 0n, 0n, 0n, 0x1n];
}

/** Starts the guest with runAsync (or run), raises its line, expects its handler's exit. */
async function raiseWhileRunning(guest: InterruptGuest): Promise<void> {
  const { vcpu } = guest;
  const runAsync = vcpu.runAsync?.bind(vcpu);
  if (runAsync === undefined) {
    // Inline: raise first, then run (the line is sampled on entry).
    guest.raise(true);
    guest.check(runToExit(vcpu));
    guest.raise(false);
    return;
  }
  let exit = runAsync();
  await sleep(50); // the guest is spinning or halted by now
  guest.raise(true);
  const started = performance.now();
  // A guest that never takes the interrupt must fail the case, not hang the suite.
  const state = { late: false };
  const guard = setTimeout(() => {
    state.late = true;
    vcpu.kick?.();
  }, 5000);
  let result = await exit;
  while (result.kind === "intr" && !state.late) {
    exit = runAsync();
    result = await exit;
  }
  clearTimeout(guard);
  assert.equal(state.late, false, "the guest did not take the interrupt within 5 s");
  const took = performance.now() - started;
  guest.check(result);
  guest.raise(false);
  assert.ok(took < 2000, `the interrupt was taken after ${took.toFixed(0)} ms`);
}

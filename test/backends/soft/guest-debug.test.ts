/**
 * Soft backend guest debug beyond the conformance cases: every execution tier (a compiled loop
 * stops at a hardware breakpoint in its middle and single-steps), `c.ebreak`, breakpoints by
 * virtual address under Sv39 paging, and a step over instructions that leave KVM_RUN (MMIO,
 * a forwarded SBI call) ending when that exit completes, data watchpoints by virtual address.
 * Both execution modes.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { KVM_GUESTDBG } from "../../../src/abi/kvm/constants.js";
import type { SoftVcpu } from "../../../src/backends/soft/vcpu.js";
import type { VcpuExit } from "../../../src/backends/vcpu.js";
import { I, R, li, place } from "./asm.js";
import { MODES, RAM_BASE, get, guest, set } from "./helpers.js";

const { ENABLE, SINGLESTEP, USE_SW_BP, USE_HW_BP } = KVM_GUESTDBG;

function runTo(vcpu: SoftVcpu, kind: VcpuExit["kind"]): VcpuExit {
  for (let i = 0; i < 200; i++) {
    const exit = vcpu.run();
    if (exit.kind === kind) return exit;
    if (exit.kind !== "intr") assert.fail(`expected ${kind}, got ${exit.kind}`);
  }
  assert.fail(`no ${kind} exit`);
}

function debugExit(vcpu: SoftVcpu): { pc: bigint; cause: string | undefined } {
  const exit = runTo(vcpu, "debug");
  assert.ok(exit.kind === "debug");
  return { pc: exit.pc, cause: exit.cause };
}

/** The high (kernel-style) alias of guest RAM under `pagedGuest`'s Sv39 tables. */
const HIGH = 0xffff_ffff_8000_0000n;

/**
 * A guest that turns Sv39 on and jumps to the high alias of RAM offset 0x40, where the test
 * places its code. Root table at +0x1000 with two gigapages, VPN2 = 2 (identity 0x8000_0000)
 * and 0x1fe (HIGH → 0x8000_0000). t1 holds HIGH + 0x40 when that code starts.
 */
function pagedGuest(mode: (typeof MODES)[number]): ReturnType<typeof guest> {
  const root = RAM_BASE + 0x1000n;
  const program = [
    ...li(R.t0, (8n << 60n) | (root >> 12n)),
    I.csrrw(0, 0x180, R.t0),
    ...li(R.t1, HIGH + 0x40n),
    I.jalr(0, R.t1, 0),
  ];
  const made = guest(mode, program);
  const view = new DataView(made.ram.buffer, made.ram.byteOffset);
  const leaf = ((RAM_BASE >> 12n) << 10n) | 0xcfn; // V R W X A D
  view.setBigUint64(0x1000 + 2 * 8, leaf, true);
  view.setBigUint64(0x1000 + 0x1fe * 8, leaf, true);
  return made;
}

for (const mode of MODES) {
  describe(`soft guest debug (${mode})`, () => {
    it("a compiled loop stops at a hardware breakpoint in its middle and single-steps there", () => {
      // t0 counts; the loop is hot (compiled) long before the breakpoint is set.
      const loop = [
        I.addi(R.t0, R.t0, 1),
        I.addi(R.t1, R.t1, 2),
        I.addi(R.t2, R.t2, 3),
        I.jal(0, -12),
      ];
      const { vm, vcpu } = guest(mode, loop, { instructions: 100_000 });
      try {
        assert.equal(vcpu.run().kind, "intr");
        assert.ok(get(vcpu, "t0") > 1000n, "the loop ran hot");
        const mid = RAM_BASE + 8n;
        vcpu.setGuestDebug({ control: ENABLE | USE_HW_BP, hwBreakpoints: [mid] });
        assert.deepEqual(debugExit(vcpu), { pc: mid, cause: "hwbreak" });
        const t2 = get(vcpu, "t2");
        vcpu.setGuestDebug({ control: ENABLE | SINGLESTEP | USE_HW_BP, hwBreakpoints: [mid] });
        assert.deepEqual(debugExit(vcpu), { pc: mid + 4n, cause: "step" });
        assert.equal(get(vcpu, "t2"), t2 + 3n, "exactly the instruction at the breakpoint ran");
        assert.deepEqual(debugExit(vcpu), { pc: RAM_BASE, cause: "step" });
        vcpu.setGuestDebug({ control: 0 });
        const before = get(vcpu, "t0");
        assert.equal(vcpu.run().kind, "intr");
        assert.ok(get(vcpu, "t0") > before + 1000n, "guest debug off: full speed again");
      } finally {
        vm.close();
      }
    });

    it("c.ebreak exits as swbreak with pc on it; without guest debug it traps to stvec", () => {
      const { vm, vcpu, ram } = guest(mode, [I.addi(R.a0, 0, 5)]);
      try {
        ram.set([0x02, 0x90], 4); // c.ebreak (0x9002)
        vcpu.setGuestDebug({ control: ENABLE | USE_SW_BP });
        assert.deepEqual(debugExit(vcpu), { pc: RAM_BASE + 4n, cause: "swbreak" });
        assert.equal(get(vcpu, "a0"), 5n);
        vcpu.setGuestDebug({ control: 0 });
        set(vcpu, "csr.stvec", RAM_BASE + 0x100n);
        place(ram, 0x100, [I.jal(0, 0)]);
        vcpu.setRunBudget({ instructions: 50 });
        assert.equal(vcpu.run().kind, "intr");
        assert.equal(get(vcpu, "csr.scause"), 3n, "breakpoint exception delivered to the guest");
        assert.equal(get(vcpu, "csr.sepc"), RAM_BASE + 4n);
      } finally {
        vm.close();
      }
    });

    it("hardware breakpoints match virtual pcs, with satp bare and under Sv39", () => {
      const high = HIGH;
      const { vm, vcpu, ram } = pagedGuest(mode);
      try {
        place(ram, 0x40, [I.addi(R.a0, 0, 1), I.addi(R.a0, R.a0, 1), I.jal(0, 0)]);
        const bare = RAM_BASE + 4n;
        const paged = high + 0x44n;
        vcpu.setGuestDebug({ control: ENABLE | USE_HW_BP, hwBreakpoints: [bare, paged] });
        assert.deepEqual(debugExit(vcpu), { pc: bare, cause: "hwbreak" });
        vcpu.setGuestDebug({ control: ENABLE | USE_HW_BP, hwBreakpoints: [paged] });
        assert.deepEqual(debugExit(vcpu), { pc: paged, cause: "hwbreak" });
        assert.equal(get(vcpu, "a0"), 1n);
        assert.notEqual(get(vcpu, "csr.satp"), 0n);
      } finally {
        vm.close();
      }
    });

    it("watchpoints match virtual data addresses after the access (store, AMO, load)", () => {
      // At the high alias of +0x40: sd, amoadd.d, ld on high + 0x200.
      const high = HIGH;
      const { vm, vcpu, ram } = pagedGuest(mode);
      try {
        const view = new DataView(ram.buffer, ram.byteOffset);
        // t1 = high + 0x40 here: t2 = t1 + 0x1c0 = high + 0x200.
        place(ram, 0x40, [
          I.addi(R.a0, 0, 9),
          I.addi(R.t2, R.t1, 0x1c0),
          I.sd(R.a0, R.t2, 0),
          I.amoaddD(R.a1, R.t2, R.a0),
          I.ld(R.a2, R.t2, 0),
          I.jal(0, 0),
        ]);
        const data = high + 0x200n;
        // The physical alias of the same bytes is not watched: addresses are virtual.
        const watch = (kind: "watch" | "rwatch" | "awatch", address: bigint, length = 8) => {
          vcpu.setGuestDebug({
            control: ENABLE | USE_HW_BP,
            watchpoints: [{ kind, address, length }],
          });
        };
        vcpu.setGuestDebug({
          control: ENABLE | USE_HW_BP,
          watchpoints: [
            { kind: "watch", address: RAM_BASE + 0x200n, length: 8 },
            { kind: "watch", address: data + 4n, length: 1 },
          ],
        });
        let exit = runTo(vcpu, "debug");
        assert.ok(exit.kind === "debug");
        assert.deepEqual(
          [exit.pc, exit.cause, exit.watchAddress],
          [high + 0x4cn, "watch", data + 4n],
        );
        assert.equal(view.getBigUint64(0x200, true), 9n, "the store completed");
        watch("rwatch", data);
        exit = runTo(vcpu, "debug");
        assert.ok(exit.kind === "debug");
        assert.deepEqual([exit.pc, exit.cause], [high + 0x50n, "rwatch"], "amoadd reads");
        assert.equal(view.getBigUint64(0x200, true), 18n);
        watch("rwatch", data);
        exit = runTo(vcpu, "debug");
        assert.ok(exit.kind === "debug");
        assert.deepEqual([exit.pc, exit.cause], [high + 0x54n, "rwatch"], "ld reads");
        assert.equal(get(vcpu, "a2"), 18n);
        assert.throws(() => {
          watch("watch", data, 0);
        }, /watchpoint length is 1\.\.4096 bytes, got 0/);
      } finally {
        vm.close();
      }
    });

    it("a step over an MMIO load or a forwarded SBI call ends when that exit completes", () => {
      const program = [
        ...li(R.t0, 0x1000_0000n),
        I.lw(R.a1, R.t0, 0),
        ...li(R.a7, 0x0900_0000n), // experimental range: forwarded to the VMM
        I.ecall(),
        I.addi(R.a2, 0, 1),
      ];
      const { vm, vcpu } = guest(mode, program);
      try {
        const load = RAM_BASE + 4n * BigInt(li(R.t0, 0x1000_0000n).length);
        vcpu.setGuestDebug({ control: ENABLE | USE_HW_BP, hwBreakpoints: [load] });
        assert.equal(debugExit(vcpu).pc, load);
        vcpu.setGuestDebug({ control: ENABLE | SINGLESTEP });
        const mmio = runTo(vcpu, "mmio");
        assert.ok(mmio.kind === "mmio");
        mmio.data.set([0x2a, 0, 0, 0]);
        assert.deepEqual(debugExit(vcpu), { pc: load + 4n, cause: "step" });
        assert.equal(get(vcpu, "a1"), 0x2an);
        let exit = debugExit(vcpu);
        while (exit.pc !== load + 4n + 4n * BigInt(li(R.a7, 0x0900_0000n).length)) {
          exit = debugExit(vcpu);
        }
        const ecall = exit.pc;
        assert.equal(runTo(vcpu, "riscv_sbi").kind, "riscv_sbi");
        assert.deepEqual(debugExit(vcpu), { pc: ecall + 4n, cause: "step" });
        assert.equal(get(vcpu, "a2"), 0n, "nothing after the ecall ran");
      } finally {
        vm.close();
      }
    });
  });
}

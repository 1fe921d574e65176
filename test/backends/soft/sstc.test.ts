/**
 * Sstc on the soft backend: the `stimecmp` CSR (0x14D) on the hart (Sstc spec §2: STIP is the
 * level time >= stimecmp), and what KVM exposes when the vCPU has it — ISA_EXT `sstc` on and not
 * disableable (vcpu.c / vcpu_onereg.c `kvm_riscv_vcpu_isa_disable_allowed`), TIMER `compare`
 * carrying stimecmp (vcpu_timer.c `kvm_riscv_vcpu_timer_sync`), SBI set_timer writing it
 * (`kvm_riscv_vcpu_update_vstimecmp`).
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { KvmError } from "../../../src/abi/kvm/errors.js";
import { IRQ } from "../../../src/backends/soft/riscv/contract.js";
import type { Hart } from "../../../src/backends/soft/riscv/hart.js";
import { SBI_EID } from "../../../src/backends/soft/sbi.js";
import type { VcpuExit } from "../../../src/backends/vcpu.js";
import type { SoftMode, SoftVcpu } from "../../../src/backends/soft/vcpu.js";
import { I, R, li } from "./asm.js";
import { RAM_BASE as BASE, hartWith } from "./harness.js";
import { HART_KIND, MODES, get, guest, reg, set } from "./helpers.js";

const STIMECMP = 0x14d;
const SIE = 0x104;
const SSTATUS = 0x100;
const SIP = 0x144;
const TIME = 0xc01;
const STOP = 0x800;
const ENGINES = [
  { name: "interpreter", translate: false },
  { name: "translator", translate: true, hotThreshold: 1 },
] as const;
const INTERRUPT = 1n << 63n;

/** A hart with a settable clock whose trap handler (BASE+STOP) is an ecall ("stop and look"). */
function timerHart(
  code: number[],
  opts: (typeof ENGINES)[number],
  sstc: boolean,
): { hart: Hart; clock: { now: bigint } } {
  const { hart, view } = hartWith(code, opts);
  view.setUint32(STOP, I.ecall(), true);
  hart.setCsr("stvec", BigInt(BASE + STOP));
  const clock = { now: 1000n };
  hart.setTimeSource(() => clock.now);
  hart.setSstc(sstc);
  return { hart, clock };
}

describe("Sstc stimecmp on the hart", () => {
  for (const engine of ENGINES) {
    it(`stimecmp is an illegal instruction without Sstc and from U-mode (${engine.name})`, () => {
      const read = I.csrrs(R.a0, STIMECMP, 0);
      const off = timerHart([read], engine, false);
      assert.equal(off.hart.run(10).kind, "ecall");
      assert.equal(off.hart.getCsr("scause"), 2n);
      assert.equal(off.hart.getCsr("stval"), BigInt(read));
      const user = timerHart([read], engine, true);
      user.hart.setMode(0);
      assert.equal(user.hart.run(10).kind, "ecall");
      assert.equal(user.hart.getCsr("scause"), 2n);
    });

    it(`STIP is the level time >= stimecmp, taken when enabled (${engine.name})`, () => {
      const prog = [
        ...li(R.a0, 1500n),
        I.csrrw(0, STIMECMP, R.a0), // deadline in the future: STIP low
        I.csrrs(R.a1, SIP, 0),
        I.csrrs(R.a2, STIMECMP, 0),
        ...li(R.t0, 0x20n),
        I.csrrs(0, SIE, R.t0), // sie.STIE
        I.addi(R.t1, 0, 2),
        I.csrrs(0, SSTATUS, R.t1),
        I.jal(0, 0), // wait for the interrupt
      ];
      const { hart, clock } = timerHart(prog, engine, true);
      assert.equal(hart.getStimecmp(), (1n << 64n) - 1n, "reset: never");
      hart.run(200);
      assert.equal(hart.getX(R.a1) & 0x20n, 0n);
      assert.equal(hart.getX(R.a2), 1500n);
      assert.equal(hart.getCsr("scause") & INTERRUPT, 0n, "not yet due");
      clock.now = 1500n;
      hart.pollTimer(); // the kernel's poll between run chunks
      assert.equal(hart.guestSip() & 0x20n, 0x20n);
      const stop = hart.run(10);
      assert.equal(stop.kind, "ecall");
      assert.equal(hart.getCsr("scause"), INTERRUPT | 5n);
      // A later deadline lowers the level at once; the kernel's own STIP line is ORed in.
      hart.setStimecmp(2000n);
      assert.equal(hart.guestSip() & 0x20n, 0n);
      hart.setPending(IRQ.STIP, true);
      assert.equal(hart.guestSip() & 0x20n, 0x20n);
      hart.setPending(IRQ.STIP, false);
      assert.equal(hart.guestSip() & 0x20n, 0n);
    });

    it(`a due deadline on the real clock is taken by the run loop itself (${engine.name})`, () => {
      const prog = [
        I.csrrs(R.a0, TIME, 0),
        // 50 ms at 10 MHz: the loop must begin before it, on a loaded host too, where the
        // background TurboFan compile of runFast the hart's priming started (fast-warm.ts
        // heatFastTier) competes for the CPU (20 ms was once missed there).
        ...li(R.t1, 500_000n),
        I.add(R.a0, R.a0, R.t1),
        I.csrrw(0, STIMECMP, R.a0),
        ...li(R.t0, 0x20n),
        I.csrrs(0, SIE, R.t0),
        I.addi(R.t1, 0, 2),
        I.csrrs(0, SSTATUS, R.t1),
        I.addi(R.a3, R.a3, 1),
        I.jal(0, -4), // count until the interrupt
      ];
      const { hart, view } = hartWith(prog, engine);
      view.setUint32(STOP, I.ecall(), true);
      hart.setCsr("stvec", BigInt(BASE + STOP));
      const start = performance.now();
      hart.setTimeSource(() => BigInt(Math.floor((performance.now() - start) * 10_000)));
      hart.setSstc(true);
      let stop = hart.run(1 << 16);
      while (stop.kind === "budget" && performance.now() - start < 5000) stop = hart.run(1 << 16);
      const late = performance.now() - start - 50;
      assert.equal(hart.getCsr("scause"), INTERRUPT | 5n);
      assert.ok(hart.getX(R.a3) > 0n, "the loop ran before the deadline");
      // Loose bound for a loaded 2-core host; without the run loop's check it would wait for
      // the next pollTimer() call, which this test never makes.
      assert.ok(late < 200, `interrupt ${late.toFixed(1)} ms after its deadline`);
    });
  }
});

const EBUSY_OR_EINVAL = (fn: () => void, name: string): void => {
  assert.throws(fn, (e: unknown) => e instanceof KvmError && e.errnoName === name);
};

function next(vcpu: SoftVcpu): VcpuExit {
  for (let i = 0; i < 200; i++) {
    const exit = vcpu.run();
    if (exit.kind !== "intr") return exit;
  }
  throw new Error("the guest never exited");
}

function sstcSuite(mode: SoftMode): void {
  describe(
    `Sstc through the KVM namespace (${mode}, ${HART_KIND} hart)`,
    { skip: HART_KIND === "fake" ? "the fake hart has no Sstc" : false },
    () => {
      it("isa_ext.sstc reads 1, cannot be disabled (EINVAL), and is fixed after the first run", () => {
        const { vm, vcpu } = guest(mode, [I.ecall()]);
        assert.equal(get(vcpu, "isa_ext.sstc"), 1n);
        EBUSY_OR_EINVAL(() => {
          set(vcpu, "isa_ext.sstc", 0n);
        }, "EINVAL");
        set(vcpu, "isa_ext.sstc", 1n); // the current value is always fine
        vcpu.run();
        set(vcpu, "isa_ext.sstc", 1n);
        EBUSY_OR_EINVAL(() => {
          set(vcpu, "isa_ext.sstc", 0n);
        }, "EBUSY");
        vm.close();
      });

      it("TIMER compare is stimecmp: the guest's write reads back, SBI set_timer writes it", () => {
        const prog = [
          ...li(R.a0, 0x123456789n),
          I.csrrw(0, STIMECMP, R.a0),
          ...li(R.a7, SBI_EID.EXPERIMENTAL_START),
          I.ecall(), // report
          I.csrrs(R.t2, STIMECMP, 0),
          ...li(R.a0, 0x42n),
          ...li(R.a7, SBI_EID.TIME),
          ...li(R.a6, 0n),
          I.ecall(), // set_timer(0x42): handled in the kernel
          I.csrrs(R.t3, STIMECMP, 0),
          ...li(R.a7, SBI_EID.EXPERIMENTAL_START),
          I.ecall(),
        ];
        const { vm, vcpu } = guest(mode, prog);
        assert.equal(get(vcpu, "timer.compare"), (1n << 64n) - 1n, "reset: never");
        assert.equal(next(vcpu).kind, "riscv_sbi");
        assert.equal(get(vcpu, "timer.compare"), 0x123456789n);
        set(vcpu, "timer.compare", 0x777n); // the VMM's write reaches the CSR
        assert.equal(next(vcpu).kind, "riscv_sbi");
        assert.equal(get(vcpu, "core.t2"), 0x777n);
        assert.equal(get(vcpu, "core.t3"), 0x42n);
        assert.equal(get(vcpu, "timer.compare"), 0x42n);
        // 0x42 is long past: the comparator holds STIP up, and next_set stays clear. ONE_REG
        // sip is hvip in KVM (vcpu_onereg.c), which never holds the comparator's level.
        assert.equal(get(vcpu, "csr.sip") & 0x20n, 0n);
        assert.equal(get(vcpu, "timer.state"), 0n);
        vm.close();
      });

      it("a due stimecmp copied to a new vCPU (a restore) leaves no STIP stuck up", () => {
        const prog = [I.csrrs(R.t2, SIP, 0), ...li(R.a7, SBI_EID.EXPERIMENTAL_START), I.ecall()];
        const src = guest(mode, prog);
        set(src.vcpu, "timer.compare", 0x42n); // long past: the comparator's STIP is up
        // timer.state 0 on a disarmed timer is EINVAL (a cancel): a restore plan leaves it out.
        const ids = src.vcpu.regList().filter((id) => id !== reg("timer.state"));
        const bytes = src.vcpu.getManyRegs(ids);
        const dst = guest(mode, prog);
        dst.vcpu.setManyRegs(ids, bytes);
        set(dst.vcpu, "timer.compare", (1n << 64n) - 1n); // the guest's next deadline: never
        assert.equal(next(dst.vcpu).kind, "riscv_sbi");
        assert.equal(get(dst.vcpu, "core.t2") & 0x20n, 0n, "STIP follows stimecmp alone");
        src.vm.close();
        dst.vm.close();
      });
    },
  );
}

for (const mode of MODES) sstcSuite(mode);

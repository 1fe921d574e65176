import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { KvmError } from "../../../src/abi/kvm/errors.js";
import { KVM_MP_STATE } from "../../../src/abi/kvm/constants.js";
import { KVM_SYNC_RISCV } from "../../../src/backends/soft/runarea.js";
import { SBI_EID } from "../../../src/backends/soft/sbi.js";
import type { VcpuExit } from "../../../src/backends/vcpu.js";
import type { SoftMode, SoftVcpu } from "../../../src/backends/soft/vcpu.js";
import { I, R, li, place } from "./asm.js";
import { HART_KIND, MODES, RAM_BASE, get, guest, makeVm, neg, reg, set } from "./helpers.js";
import { allocGuestMemory } from "../../../src/backends/soft/vm.js";

const EXP = SBI_EID.EXPERIMENTAL_START;
const CSR_SIP = 0x144;
const CSR_SIE = 0x104;
const CSR_TIME = 0xc01;
const LOOP = I.jal(0, 0);

/** a7/a6 (and a0.. if given), then ecall. */
function sbi(eid: bigint, fid: bigint, args: readonly bigint[] = []): number[] {
  return [
    ...li(R.a7, eid),
    ...li(R.a6, fid),
    ...args.flatMap((v, i) => li(R.a0 + i, v)),
    I.ecall(),
  ];
}

/** An experimental-range call the VMM sees with a0..a5 untouched: function id = tag. */
const report = (tag: number): number[] => sbi(EXP, BigInt(tag));

/** Runs until something other than `intr` comes back. */
function next(vcpu: SoftVcpu): VcpuExit {
  for (let i = 0; i < 200; i++) {
    const exit = vcpu.run();
    if (exit.kind !== "intr") return exit;
  }
  throw new Error("the guest never exited");
}

function sbiExit(exit: VcpuExit): Extract<VcpuExit, { kind: "riscv_sbi" }> {
  assert.equal(
    exit.kind,
    "riscv_sbi",
    JSON.stringify(exit, (_, v: unknown) => (typeof v === "bigint" ? v.toString(16) : v)),
  );
  return exit;
}

/** Address of the ecall that ends `words` when placed at RAM_BASE + offset. */
const ecallAt = (words: readonly number[], offset = 0): bigint =>
  RAM_BASE + BigInt(offset + 4 * (words.length - 1));

function kernelSuite(mode: SoftMode): void {
  describe(`soft kernel: run, SBI, MMIO, sync regs (${mode}, ${HART_KIND} hart)`, () => {
    it("forwards experimental calls with the payload; the return is applied exactly once", () => {
      const call = sbi(EXP + 5n, 3n, [11n, 22n, 33n, 44n, 55n, 66n]);
      const { vm, vcpu } = guest(mode, [...call, ...report(1), LOOP]);
      const exit = sbiExit(next(vcpu));
      assert.equal(exit.extensionId, EXP + 5n);
      assert.equal(exit.functionId, 3n);
      assert.deepEqual(exit.args, [11n, 22n, 33n, 44n, 55n, 66n]);
      assert.deepEqual([...exit.ret], [-2n, 0n]);
      assert.equal(get(vcpu, "core.pc"), ecallAt(call));
      exit.ret[0] = 7n;
      exit.ret[1] = 8n;
      vcpu.runArea.immediateExit = 1;
      assert.deepEqual(vcpu.run(), { kind: "intr" }); // completes the return, does not enter
      assert.equal(get(vcpu, "core.pc"), ecallAt(call) + 4n);
      vcpu.runArea.immediateExit = 0;
      const second = sbiExit(next(vcpu));
      assert.equal(second.extensionId, EXP);
      assert.equal(second.functionId, 1n);
      assert.deepEqual(second.args.slice(0, 2), [7n, 8n]);
      assert.equal(get(vcpu, "core.pc"), ecallAt([...call, ...report(1)]));
      vm.close();
    });

    it("forwards the vendor range and legacy putchar; legacy returns write a0 and a1", () => {
      const prog = [
        ...sbi(SBI_EID.VENDOR_START + 1n, 9n, [1n]),
        ...li(R.a1, 0x55n),
        ...li(R.a7, 1n),
        ...li(R.a0, 65n),
        I.ecall(),
        ...report(2),
      ];
      const { vm, vcpu } = guest(mode, prog);
      assert.equal(sbiExit(next(vcpu)).extensionId, SBI_EID.VENDOR_START + 1n);
      const put = sbiExit(next(vcpu));
      assert.equal(put.extensionId, 1n);
      assert.equal(put.args[0], 65n);
      assert.equal(put.args[1], 0x55n);
      put.ret[0] = 0n;
      const done = sbiExit(next(vcpu));
      assert.deepEqual(done.args.slice(0, 2), [0n, 0n]); // kvm_riscv_vcpu_sbi_return sets both
      vm.close();
    });

    it("DBCN is off by default (NOT_SUPPORTED in kernel) and forwarded once enabled", () => {
      const prog = [...sbi(SBI_EID.DBCN, 2n, [0x41n, 9n]), ...report(3)];
      const off = guest(mode, prog);
      const answer = sbiExit(next(off.vcpu));
      assert.equal(answer.functionId, 3n);
      assert.deepEqual(answer.args.slice(0, 2), [neg(2n), 0n]);
      off.vm.close();
      const on = guest(mode, prog);
      set(on.vcpu, "sbi_ext.dbcn", 1n);
      const exit = sbiExit(next(on.vcpu));
      assert.equal(exit.extensionId, SBI_EID.DBCN);
      assert.equal(exit.functionId, 2n);
      assert.equal(exit.args[0], 0x41n);
      on.vm.close();
    });

    it("unknown extensions get a0 = -2, a1 = 0 without an exit", () => {
      const { vm, vcpu } = guest(mode, [...sbi(0x1234_5678n, 0n, [5n, 6n]), ...report(4)]);
      const exit = sbiExit(next(vcpu));
      assert.equal(exit.functionId, 4n);
      assert.deepEqual(exit.args.slice(0, 2), [neg(2n), 0n]);
      vm.close();
    });

    it("BASE: spec version, implementation, probe (reflecting SBI_EXT), ids from CONFIG", () => {
      const prog = [
        ...sbi(SBI_EID.BASE, 0n),
        ...report(10),
        ...sbi(SBI_EID.BASE, 1n),
        ...report(11),
        ...sbi(SBI_EID.BASE, 3n, [SBI_EID.TIME]),
        ...report(12),
        ...sbi(SBI_EID.BASE, 3n, [SBI_EID.DBCN]),
        ...report(13),
        ...sbi(SBI_EID.BASE, 4n),
        ...report(14),
        ...sbi(SBI_EID.BASE, 3n, [EXP + 0x123n]),
      ];
      const { vm, vcpu } = guest(mode, prog);
      set(vcpu, "config.mvendorid", 0x489n);
      const answers = [
        [0n, 0x0200_0000n], // SBI 2.0
        [0n, 3n], // KVM
        [0n, 1n], // TIME is on
        [0n, 0n], // DBCN is off
        [0n, 0x489n], // mvendorid from CONFIG
      ];
      for (const [i, pair] of answers.entries()) {
        const exit = sbiExit(next(vcpu));
        assert.equal(exit.functionId, BigInt(10 + i));
        assert.deepEqual(exit.args.slice(0, 2), pair, `report ${10 + i}`);
      }
      const probe = sbiExit(next(vcpu)); // probing an experimental id goes to the VMM
      assert.equal(probe.extensionId, SBI_EID.BASE);
      assert.equal(probe.args[0], EXP + 0x123n);
      vm.close();
    });

    it("SRST shutdown and reboot become SYSTEM_EVENT exits; the vCPU stays stopped", () => {
      const call = sbi(SBI_EID.SRST, 0n, [0n, 0x77n]);
      const { vm, vcpu } = guest(mode, [...call, LOOP], { timeSliceMs: 20 });
      assert.deepEqual(next(vcpu), {
        kind: "system_event",
        type: 1,
        typeName: "SHUTDOWN",
        data: [0x77n],
      });
      assert.equal(get(vcpu, "core.pc"), ecallAt(call));
      assert.deepEqual(vcpu.run(), { kind: "intr" }); // stopped: nothing to run
      vm.close();
      const reboot = guest(mode, sbi(SBI_EID.SRST, 0n, [1n, 2n]));
      const exit = next(reboot.vcpu);
      assert.equal(exit.kind === "system_event" && exit.typeName, "RESET");
      reboot.vm.close();
    });

    it("MMIO: loads and stores outside RAM exit; the next run completes them", () => {
      const prog = [
        ...li(R.t0, 0x1000_0000n),
        I.lw(R.a0, R.t0, 0),
        ...li(R.a1, 0x1122_3344_5566_7788n),
        I.sd(R.a1, R.t0, 8),
        ...report(20),
      ];
      const { vm, vcpu } = guest(mode, prog);
      const loadExit = next(vcpu);
      assert.equal(loadExit.kind, "mmio");
      assert.equal(loadExit.address, 0x1000_0000n);
      assert.equal(loadExit.isWrite, false);
      assert.equal(loadExit.data.length, 4);
      loadExit.data.set([0xf0, 0xff, 0xff, 0xff]);
      const storeExit = next(vcpu);
      assert.equal(storeExit.kind, "mmio");
      assert.equal(storeExit.isWrite, true);
      assert.equal(storeExit.address, 0x1000_0008n);
      assert.deepEqual([...storeExit.data], [0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11]);
      const done = sbiExit(next(vcpu));
      assert.equal(done.args[0], neg(0x10n)); // lw sign-extends
      vm.close();
    });

    it("guest stores land in the VMM's buffer; a read-only slot turns stores into MMIO", () => {
      const prog = [
        ...li(R.t0, RAM_BASE + 0x800n),
        ...li(R.a0, 0x5an),
        I.sb(R.a0, R.t0, 0),
        ...li(R.t1, 0x9000_0000n),
        I.sb(R.a0, R.t1, 0),
        ...report(21),
      ];
      const { vm, vcpu, ram } = guest(mode, prog);
      const rom = allocGuestMemory(4096);
      vm.setUserMemoryRegion({ slot: 1, guestPhysAddr: 0x9000_0000n, memory: rom, readonly: true });
      const exit = next(vcpu);
      assert.equal(ram[0x800], 0x5a);
      assert.equal(exit.kind === "mmio" && exit.isWrite && exit.address, 0x9000_0000n);
      assert.equal(rom[0], 0);
      vm.close();
    });

    it("immediate_exit returns intr without entering the guest", () => {
      const { vm, vcpu } = guest(mode, [...report(1)]);
      vcpu.runArea.immediateExit = 1;
      assert.deepEqual(vcpu.run(), { kind: "intr" });
      assert.equal(get(vcpu, "core.pc"), RAM_BASE);
      vm.close();
    });

    it("an instruction budget or a time slice returns control from a runaway guest", () => {
      const a = guest(mode, [LOOP], { instructions: 5000 });
      assert.deepEqual(a.vcpu.run(), { kind: "intr" });
      assert.equal(get(a.vcpu, "core.pc"), RAM_BASE);
      a.vm.close();
      const b = guest(mode, [LOOP], { timeSliceMs: 10 });
      assert.deepEqual(b.vcpu.run(), { kind: "intr" });
      b.vcpu.setRunBudget({ instructions: 100 });
      assert.deepEqual(b.vcpu.run(), { kind: "intr" });
      b.vm.close();
    });

    it("WFI sleeps until the SBI timer fires, which raises STIP", () => {
      const prog = [
        ...li(R.t0, 0x20n),
        I.csrrs(0, CSR_SIE, R.t0), // sie.STIE
        I.csrrs(R.a0, CSR_TIME, 0),
        ...li(R.t1, 20_000n), // 2 ms at 10 MHz
        I.add(R.a0, R.a0, R.t1),
        ...li(R.a7, SBI_EID.TIME),
        ...li(R.a6, 0n),
        I.ecall(),
        I.wfi(),
        I.csrrs(R.a0, CSR_SIP, 0),
        ...report(30),
      ];
      const { vm, vcpu } = guest(mode, prog, { timeSliceMs: 5000 });
      const exit = sbiExit(next(vcpu));
      assert.equal(exit.functionId, 30n);
      assert.equal((exit.args[0] ?? 0n) & 0x20n, 0x20n);
      assert.equal(get(vcpu, "timer.state"), 0n); // fired, so disarmed
      vm.close();
    });

    it("WFI with nothing pending returns intr at the end of the slice; KVM_INTERRUPT wakes it", () => {
      const prog = [I.wfi(), I.csrrs(R.a0, CSR_SIP, 0), ...report(31)];
      const { vm, vcpu } = guest(mode, prog, { timeSliceMs: 20 });
      set(vcpu, "csr.sie", 0x200n);
      assert.deepEqual(vcpu.run(), { kind: "intr" });
      vcpu.setExternalInterrupt(true);
      const exit = sbiExit(next(vcpu));
      assert.equal((exit.args[0] ?? 0n) & 0x200n, 0x200n);
      vcpu.setExternalInterrupt(false);
      vm.close();
    });

    it("SUSP is checked in kernel, forwarded, then resumes at its address; RFENCE succeeds", () => {
      const resume = RAM_BASE + 0x400n;
      const prog = [
        ...sbi(SBI_EID.RFENCE, 1n, [1n, 0n, 0n, 0n]),
        ...report(70),
        ...sbi(SBI_EID.SUSP, 0n, [1n, resume, 0n]),
        ...report(71),
        ...sbi(SBI_EID.SUSP, 0n, [0n, 0x10n, 0n]),
        ...report(72),
        ...sbi(SBI_EID.SUSP, 0n, [0n, resume, 0x5eedn]),
      ];
      const { vm, vcpu, ram } = guest(mode, prog);
      place(ram, 0x400, report(73));
      set(vcpu, "sbi_ext.susp", 1n);
      assert.equal(sbiExit(next(vcpu)).args[0], 0n); // remote sfence.vma
      assert.equal(sbiExit(next(vcpu)).args[0], neg(3n)); // only SUSPEND_TO_RAM
      assert.equal(sbiExit(next(vcpu)).args[0], neg(5n)); // resume address outside RAM
      const suspend = sbiExit(next(vcpu));
      assert.equal(suspend.extensionId, SBI_EID.SUSP);
      suspend.ret[0] = 0n;
      const resumed = sbiExit(next(vcpu));
      assert.equal(resumed.functionId, 73n);
      assert.deepEqual(resumed.args.slice(0, 2), [0n, 0x5eedn]); // a0 = hart id, a1 = opaque
      vm.close();
    });

    it("legacy SHUTDOWN is a SYSTEM_EVENT with reason 0", () => {
      const { vm, vcpu } = guest(mode, sbi(8n, 0n));
      assert.deepEqual(next(vcpu), {
        kind: "system_event",
        type: 1,
        typeName: "SHUTDOWN",
        data: [0n],
      });
      vm.close();
    });

    it("SBI IPI to itself raises SSIP; HSM reports its own status", () => {
      const prog = [
        ...sbi(SBI_EID.IPI, 0n, [1n, 0n]),
        I.csrrs(R.a1, CSR_SIP, 0),
        ...report(40),
        ...sbi(SBI_EID.HSM, 2n, [0n]),
        ...report(41),
        ...sbi(SBI_EID.HSM, 2n, [5n]),
        ...report(42),
      ];
      const { vm, vcpu } = guest(mode, prog);
      const ipi = sbiExit(next(vcpu));
      assert.equal(ipi.args[0], 0n);
      assert.equal((ipi.args[1] ?? 0n) & 2n, 2n);
      assert.deepEqual(sbiExit(next(vcpu)).args.slice(0, 2), [0n, 0n]); // STARTED
      assert.equal(sbiExit(next(vcpu)).args[0], neg(3n)); // INVALID_PARAM
      vm.close();
    });

    it("HSM hart_start brings up a stopped secondary vCPU with a0 = hartid, a1 = opaque", () => {
      const vm = makeVm(mode, { timeSliceMs: 20 });
      const ram = allocGuestMemory(1 << 16);
      const entry = RAM_BASE + 0x1000n;
      place(ram, 0, [
        ...sbi(SBI_EID.HSM, 2n, [1n]),
        ...report(50),
        ...sbi(SBI_EID.HSM, 0n, [1n, entry, 0xabcn]),
        ...report(51),
        ...sbi(SBI_EID.HSM, 0n, [1n, entry, 0n]),
        ...report(52),
      ]);
      place(ram, 0x1000, [...report(53)]);
      vm.setUserMemoryRegion({ slot: 0, guestPhysAddr: RAM_BASE, memory: ram });
      const boot = vm.createVcpu();
      const second = vm.createVcpu();
      set(boot, "core.pc", RAM_BASE);
      assert.deepEqual(second.run(), { kind: "intr" }); // powered off until hart_start
      assert.equal(sbiExit(next(boot)).args[1], 1n); // STOPPED
      assert.equal(sbiExit(next(boot)).args[0], 0n);
      assert.equal(sbiExit(next(boot)).args[0], neg(6n)); // ALREADY_AVAILABLE
      const started = sbiExit(next(second));
      assert.equal(started.functionId, 53n);
      assert.deepEqual(started.args.slice(0, 2), [1n, 0xabcn]);
      vm.close();
    });

    it("getMpState() applies a posted hart_start (RUNNABLE, started registers); setMpState() powers off and on", () => {
      const vm = makeVm(mode, { timeSliceMs: 20 });
      const ram = allocGuestMemory(1 << 16);
      const entry = RAM_BASE + 0x1000n;
      place(ram, 0, [
        ...sbi(SBI_EID.HSM, 0n, [1n, entry, 0xabcn]),
        ...report(50),
        ...sbi(SBI_EID.HSM, 2n, [1n]),
        ...report(51),
      ]);
      place(ram, 0x1000, [...report(53)]);
      vm.setUserMemoryRegion({ slot: 0, guestPhysAddr: RAM_BASE, memory: ram });
      const boot = vm.createVcpu();
      const second = vm.createVcpu();
      set(boot, "core.pc", RAM_BASE);
      assert.equal(second.getMpState(), KVM_MP_STATE.STOPPED);
      assert.equal(sbiExit(next(boot)).args[0], 0n); // hart_start posted; vCPU 1 has not run
      assert.equal(second.getMpState(), KVM_MP_STATE.RUNNABLE);
      assert.equal(get(second, "core.pc"), entry);
      assert.deepEqual([get(second, "a0"), get(second, "a1")], [1n, 0xabcn]);
      second.setMpState(KVM_MP_STATE.STOPPED);
      assert.equal(sbiExit(next(boot)).args[1], 1n, "HSM sees vCPU 1 stopped");
      assert.throws(
        () => {
          second.setMpState(KVM_MP_STATE.HALTED);
        },
        (e: unknown) => e instanceof KvmError && e.errnoName === "EINVAL",
      );
      second.setMpState(KVM_MP_STATE.RUNNABLE);
      const started = sbiExit(next(second));
      assert.equal(started.functionId, 53n, "runnable again, it runs from the start address");
      assert.deepEqual(started.args.slice(0, 2), [1n, 0xabcn]);
      vm.close();
    });

    it("sync regs: valid copies out, dirty applies before entry and clears, bad bits EINVAL", () => {
      const { vm, vcpu } = guest(mode, [...report(60), ...report(61), ...report(62), LOOP]);
      const area = vcpu.runArea;
      area.validRegs = BigInt(KVM_SYNC_RISCV.CORE | KVM_SYNC_RISCV.CSR);
      sbiExit(next(vcpu));
      assert.equal(area.syncCore(0), get(vcpu, "core.pc"));
      assert.equal(area.syncCore(R.a7), EXP);
      assert.equal(area.syncCore(32), get(vcpu, "core.mode"));
      assert.equal(area.syncCsr(0), get(vcpu, "csr.sstatus"));
      area.setSyncCore(R.a2, 0x1234n);
      area.setSyncCsr(3, 0x5555n);
      area.dirtyRegs = BigInt(KVM_SYNC_RISCV.CORE | KVM_SYNC_RISCV.CSR);
      const exit = sbiExit(next(vcpu));
      assert.equal(exit.args[2], 0x1234n);
      assert.equal(area.dirtyRegs, 0n);
      assert.equal(get(vcpu, "csr.sscratch"), 0x5555n);
      area.setSyncCore(R.a2, 0x4444n); // without a dirty bit the edit is ignored
      assert.equal(sbiExit(next(vcpu)).args[2], 0x1234n);
      area.validRegs = 0x8000_0001n;
      area.setSyncCore(0, 0n);
      assert.throws(
        () => vcpu.run(),
        (e: unknown) => e instanceof KvmError && e.errnoName === "EINVAL" && e.ioctl === "KVM_RUN",
      );
      assert.equal(area.syncCore(0), get(vcpu, "core.pc")); // CORE still stored on the error path
      area.validRegs = 0n;
      area.dirtyRegs = 1n << 31n;
      assert.throws(() => vcpu.run(), KvmError);
      // Bits in the masks' upper 32-bit words are refused too (the kernel reads them as words).
      area.dirtyRegs = 1n << 40n;
      assert.throws(() => vcpu.run(), KvmError);
      area.dirtyRegs = 0n;
      area.validRegs = 1n << 63n;
      assert.throws(() => vcpu.run(), KvmError);
      vm.close();
    });

    it("a guest the hart cannot run becomes an internal_error exit with a reason", () => {
      const { vm, vcpu } = guest(mode, [LOOP]);
      set(vcpu, "core.pc", 0x1000n); // no memory there
      const exit = vcpu.run();
      assert.equal(exit.kind, "internal_error");
      assert.ok(vcpu.faultReason().length > 0);
      vm.close();
    });

    it("memslots follow KVM_SET_USER_MEMORY_REGION's rules", () => {
      const vm = makeVm(mode);
      const a = allocGuestMemory(8192);
      vm.setUserMemoryRegion({ slot: 0, guestPhysAddr: 0x10000n, memory: a });
      const code = (fn: () => void): string => {
        try {
          fn();
        } catch (error) {
          return error instanceof KvmError ? error.errnoName : String(error);
        }
        return "ok";
      };
      const b = allocGuestMemory(4096);
      assert.equal(
        code(() => {
          vm.setUserMemoryRegion({ slot: 1, guestPhysAddr: 0x11000n, memory: b });
        }),
        "EEXIST",
      );
      assert.equal(
        code(() => {
          vm.setUserMemoryRegion({ slot: 1, guestPhysAddr: 0x20800n, memory: b });
        }),
        "EINVAL",
      );
      assert.equal(
        code(() => {
          vm.setUserMemoryRegion({ slot: 2, guestPhysAddr: 0n, memory: allocGuestMemory(100) });
        }),
        "EINVAL",
      );
      assert.equal(
        code(() => {
          vm.setUserMemoryRegion({ slot: 512, guestPhysAddr: 0n, memory: b });
        }),
        "EINVAL",
      );
      assert.equal(
        code(() => {
          vm.setUserMemoryRegion({ slot: 3, guestPhysAddr: 0n, memory: new Uint8Array(0) });
        }),
        "EINVAL",
      );
      assert.equal(
        code(() => {
          vm.setUserMemoryRegion({ slot: 0, guestPhysAddr: 0x10000n, memory: b });
        }),
        "EINVAL",
      );
      assert.equal(
        code(() => {
          vm.setUserMemoryRegion({ slot: 0, guestPhysAddr: 0x40000n, memory: a });
        }),
        "ok",
      );
      assert.equal(
        code(() => {
          vm.setUserMemoryRegion({ slot: 1, guestPhysAddr: 0x10000n, memory: b });
        }),
        "ok",
      );
      assert.deepEqual(
        vm.memslots().map((s) => [s.slot, s.gpa]),
        [
          [0, 0x40000],
          [1, 0x10000],
        ],
      );
      assert.equal(
        code(() => {
          vm.setUserMemoryRegion({ slot: 1, guestPhysAddr: 0n, memory: new Uint8Array(0) });
        }),
        "ok",
      );
      assert.equal(vm.memslots().length, 1);
      vm.close();
    });

    it("closing twice is fine; any other use after close throws", () => {
      const { vm, vcpu } = guest(mode, [LOOP]);
      vcpu.close();
      vcpu.close();
      assert.throws(() => vcpu.getOneReg(reg("a0")), /closed/);
      assert.throws(() => vcpu.run(), /closed/);
      const other = vm.createVcpu();
      vm.close();
      vm.close();
      assert.equal(other.isClosed, true);
      assert.throws(() => vm.createVcpu(), /closed/);
    });
  });
}

for (const mode of MODES) kernelSuite(mode);

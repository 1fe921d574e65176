import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { decodeReg } from "../../../src/abi/catalog.js";
import {
  RISCV_CSR_SUBTYPE,
  RISCV_REG_TYPE,
  riscvRegId,
} from "../../../src/abi/arch/riscv/index.js";
import { KvmError } from "../../../src/abi/kvm/errors.js";
import { regId, regSize, type RegId } from "../../../src/abi/regid.js";
import type { SoftMode, SoftVcpu } from "../../../src/backends/soft/vcpu.js";
import { HART_KIND, MODES, get, makeVm, neg, reg, set } from "./helpers.js";

const T = RISCV_REG_TYPE;

function fresh(mode: SoftMode): { vcpu: SoftVcpu; done: () => void } {
  const vm = makeVm(mode);
  const vcpu = vm.createVcpu();
  return {
    vcpu,
    done: () => {
      vm.close();
    },
  };
}

function names(ids: readonly RegId[]): string[] {
  return ids.map((id) => {
    const d = decodeReg(id);
    return d.known ? d.name : "?";
  });
}

const range = (n: number, f: (i: number) => string): string[] =>
  Array.from({ length: n }, (_, i) => f(i));
const CORE = [
  "pc",
  "ra",
  "sp",
  "gp",
  "tp",
  "t0",
  "t1",
  "t2",
  "s0",
  "s1",
  "a0",
  "a1",
  "a2",
  "a3",
  "a4",
  "a5",
  "a6",
  "a7",
  "s2",
  "s3",
  "s4",
  "s5",
  "s6",
  "s7",
  "s8",
  "s9",
  "s10",
  "s11",
  "t3",
  "t4",
  "t5",
  "t6",
  "mode",
];
const CSRS = [
  "sstatus",
  "sie",
  "stvec",
  "sscratch",
  "sepc",
  "scause",
  "stval",
  "sip",
  "satp",
  "scounteren",
  "senvcfg",
];
const ISA = [
  "a",
  "c",
  "d",
  "f",
  "i",
  "m",
  "sstc",
  "zicntr",
  "zicsr",
  "zifencei",
  "zca",
  "zcd",
  "zaamo",
  "zalrsc",
];
const SBI = [
  "v01",
  "time",
  "ipi",
  "rfence",
  "srst",
  "hsm",
  "experimental",
  "vendor",
  "dbcn",
  "susp",
];

/** The list the kernel would give for this vCPU (kvm-register-abi.md §11 riscv row). */
function expectedList(f: boolean, d: boolean): string[] {
  return [
    ...["isa", "mvendorid", "marchid", "mimpid", "satp_mode"].map((n) => `config.${n}`),
    ...CORE.map((n) => `core.${n}`),
    ...CSRS.map((n) => `csr.${n}`),
    ...["frequency", "time", "compare", "state"].map((n) => `timer.${n}`),
    ...(f ? [...range(32, (i) => `fp_f.f${i}`), "fp_f.fcsr"] : []),
    ...(d ? [...range(32, (i) => `fp_d.f${i}`), "fp_d.fcsr"] : []),
    ...ISA.map((n) => `isa_ext.${n}`),
    ...SBI.map((n) => `sbi_ext.${n}`),
  ];
}

function errno(fn: () => unknown, name: string, message?: string): KvmError {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  assert.ok(
    caught instanceof KvmError,
    `${message ?? ""}: expected KvmError ${name}, got ${String(caught)}`,
  );
  assert.equal(caught.errnoName, name, message);
  return caught;
}

function regsSuite(mode: SoftMode): void {
  describe(`soft ONE_REG namespace (${mode}, ${HART_KIND} hart)`, () => {
    it("regList() lists exactly the kernel's set, in the kernel's order", () => {
      const { vcpu, done } = fresh(mode);
      assert.deepEqual(names(vcpu.regList()), expectedList(true, true));
      set(vcpu, "isa_ext.f", 0n);
      assert.deepEqual(names(vcpu.regList()), expectedList(false, true));
      set(vcpu, "isa_ext.d", 0n);
      assert.deepEqual(names(vcpu.regList()), expectedList(false, false));
      done();
    });

    it("every listed id reads exactly regSize(id) bytes", () => {
      const { vcpu, done } = fresh(mode);
      const ids = vcpu.regList();
      for (const id of ids) assert.equal(vcpu.getOneReg(id).length, regSize(id), names([id])[0]);
      done();
    });

    it("CORE, CSR and FP_D values round-trip; mode and sip follow the kernel", () => {
      const { vcpu, done } = fresh(mode);
      for (let x = 1; x <= 31; x++) set(vcpu, `x${x}`, 0x1111_0000_0000n * BigInt(x) + 7n);
      for (let x = 1; x <= 31; x++)
        assert.equal(get(vcpu, `x${x}`), 0x1111_0000_0000n * BigInt(x) + 7n);
      set(vcpu, "core.pc", 0x8020_0000n);
      assert.equal(get(vcpu, "core.pc"), 0x8020_0000n);
      set(vcpu, "core.mode", 0n);
      assert.equal(get(vcpu, "core.mode"), 0n);
      set(vcpu, "core.mode", 7n); // anything but 1 selects U-mode, without error
      assert.equal(get(vcpu, "core.mode"), 0n);
      set(vcpu, "core.mode", 1n);
      assert.equal(get(vcpu, "core.mode"), 1n);
      for (const name of ["sscratch", "stvec", "sepc", "stval", "scause"]) {
        set(vcpu, `csr.${name}`, 0x8000_1000n);
        assert.equal(get(vcpu, `csr.${name}`), 0x8000_1000n, name);
      }
      set(vcpu, "csr.sip", 0xfffn);
      assert.equal(get(vcpu, "csr.sip"), 0x222n);
      set(vcpu, "fp_d.f5", 0x4009_21fb_5444_2d18n);
      assert.equal(get(vcpu, "fp_d.f5"), 0x4009_21fb_5444_2d18n);
      set(vcpu, "fp_d.fcsr", 0x61n);
      assert.equal(get(vcpu, "fp_d.fcsr"), 0x61n);
      done();
    });

    it("FP_F aliases the D register file on a D vCPU and holds singles on an F-only one", () => {
      const { vcpu, done } = fresh(mode);
      set(vcpu, "fp_d.f0", 0x1122_3344_5566_7788n);
      assert.equal(get(vcpu, "fp_f.f0"), 0x5566_7788n);
      assert.equal(get(vcpu, "fp_f.f1"), 0x1122_3344n);
      set(vcpu, "fp_d.f16", 0xaaaa_bbbb_0000_00e0n);
      assert.equal(get(vcpu, "fp_f.fcsr"), 0xe0n); // word 32 = low half of f16
      set(vcpu, "isa_ext.d", 0n);
      errno(() => get(vcpu, "fp_d.f0"), "ENOENT");
      set(vcpu, "fp_f.f3", 0x3fc0_0000n);
      assert.equal(get(vcpu, "fp_f.f3"), 0x3fc0_0000n);
      set(vcpu, "fp_f.fcsr", 0x21n);
      assert.equal(get(vcpu, "fp_f.fcsr"), 0x21n);
      done();
    });

    it("setOneReg accepts bytes of exactly size(id) and bigints that fit; else RangeError", () => {
      const { vcpu, done } = fresh(mode);
      vcpu.setOneReg(reg("a0"), new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]));
      assert.equal(get(vcpu, "a0"), 0x0807_0605_0403_0201n);
      set(vcpu, "a0", -1n);
      assert.equal(get(vcpu, "a0"), neg(1n));
      assert.throws(() => {
        vcpu.setOneReg(reg("a0"), new Uint8Array(4));
      }, RangeError);
      assert.throws(() => {
        vcpu.setOneReg(reg("a0"), 1n << 64n);
      }, RangeError);
      assert.throws(() => {
        vcpu.setOneReg(reg("fp_f.f0"), 1n << 32n);
      }, RangeError);
      done();
    });

    it("ENOENT: unknown types, numbers, subtypes, stray high bits, absent extensions", () => {
      const { vcpu, done } = fresh(mode);
      const unknown: [string, RegId][] = [
        ["type 0", riscvRegId(0, 0, 0, 8)],
        ["type 11", riscvRegId(11, 0, 0, 8)],
        ["core.33", reg("core.33")],
        ["core with subtype byte", riscvRegId(T.CORE, 1, 0, 8)],
        ["csr.general.11", reg("csr.general.11")],
        ["csr subtype 3", riscvRegId(T.CSR, 3, 0, 8)],
        ["csr.aia.7", reg("csr.aia.7")],
        ["timer.4", reg("timer.4")],
        ["fp_f.33", reg("fp_f.33")],
        ["fp_d.33", reg("fp_d.33")],
        ["config.zicbom_block_size", reg("config.zicbom_block_size")],
        ["config.8", reg("config.8")],
        ["vector.vlenb", reg("vector.vlenb")],
        ["isa_ext.h", reg("isa_ext.h")],
        ["isa_ext.75", reg("isa_ext.75")],
        ["isa_ext.multi_en.2", reg("isa_ext.multi_en.2")],
        ["sbi_ext.pmu", reg("sbi_ext.pmu")],
        ["sbi_ext.sta", reg("sbi_ext.sta")],
        ["sbi_ext.13", reg("sbi_ext.13")],
        ["sbi_ext.multi_en.1", reg("sbi_ext.multi_en.1")],
        ["core.ra | bit 32", regId(reg("core.ra") | (1n << 32n))],
      ];
      for (const [what, id] of unknown) {
        errno(() => vcpu.getOneReg(id), "ENOENT", `get ${what}`);
      }
      errno(() => {
        set(vcpu, "core.33", 0n);
      }, "ENOENT");
      errno(() => {
        set(vcpu, "isa_ext.h", 1n);
      }, "ENOENT");
      done();
    });

    it("EINVAL: wrong sizes, SBI_STATE, SMSTATEEN, read-only values changed", () => {
      const { vcpu, done } = fresh(mode);
      const wrong: [string, RegId][] = [
        ["core.ra as U32", riscvRegId(T.CORE, 0, 1, 4)],
        ["config.isa as U32", riscvRegId(T.CONFIG, 0, 0, 4)],
        ["csr.sstatus as U128", riscvRegId(T.CSR, RISCV_CSR_SUBTYPE.GENERAL, 0, 16)],
        ["timer.time as U32", riscvRegId(T.TIMER, 0, 1, 4)],
        ["fp_f.f0 as U64", riscvRegId(T.FP_F, 0, 0, 8)],
        ["fp_d.f0 as U32", riscvRegId(T.FP_D, 0, 0, 4)],
        ["fp_d.fcsr as U64", riscvRegId(T.FP_D, 0, 32, 8)],
        ["isa_ext.a as U32", riscvRegId(T.ISA_EXT, 0, 0, 4)],
        ["sbi_state.sta.shmem_lo", reg("sbi_state.sta.shmem_lo")],
        ["csr.smstateen.sstateen0", reg("csr.smstateen.sstateen0")],
      ];
      for (const [what, id] of wrong) errno(() => vcpu.getOneReg(id), "EINVAL", `get ${what}`);
      errno(() => {
        set(vcpu, "timer.frequency", 1n);
      }, "EINVAL");
      set(vcpu, "timer.frequency", 10_000_000n);
      assert.equal(get(vcpu, "timer.frequency"), 10_000_000n);
      errno(() => {
        set(vcpu, "config.satp_mode", 9n);
      }, "EINVAL");
      set(vcpu, "config.satp_mode", 8n);
      errno(() => {
        set(vcpu, "config.isa", 1n << 25n);
      }, "EINVAL");
      done();
    });

    it("AIA CSRs read 0 and ignore writes without being listed (6.18, host without AIA)", () => {
      const { vcpu, done } = fresh(mode);
      assert.equal(get(vcpu, "csr.aia.siselect"), 0n);
      set(vcpu, "csr.aia.siselect", 5n);
      assert.equal(get(vcpu, "csr.aia.siselect"), 0n);
      assert.ok(!names(vcpu.regList()).includes("csr.aia.siselect"));
      done();
    });

    it("ISA_EXT: only F and D may change; values other than the current are refused", () => {
      const { vcpu, done } = fresh(mode);
      for (const name of ["a", "c", "i", "m", "zicsr", "zifencei", "zicntr", "zca"]) {
        errno(
          () => {
            set(vcpu, `isa_ext.${name}`, 0n);
          },
          "EINVAL",
          name,
        );
        set(vcpu, `isa_ext.${name}`, 1n); // the current value is always fine
      }
      errno(() => {
        set(vcpu, "isa_ext.f", 2n);
      }, "EINVAL");
      set(vcpu, "isa_ext.f", 0n);
      assert.equal(get(vcpu, "isa_ext.f"), 0n);
      errno(() => get(vcpu, "fp_f.f0"), "ENOENT");
      set(vcpu, "isa_ext.f", 1n);
      assert.equal(get(vcpu, "fp_f.f0"), 0n);
      done();
    });

    it("CONFIG isa keeps A/C/I/M on, drops letters KVM cannot give, toggles F/D", () => {
      const { vcpu, done } = fresh(mode);
      const letters = (s: string): bigint =>
        Array.from({ length: s.length }, (_, i) => s.charCodeAt(i) - 97).reduce(
          (bits, letter) => bits | (1n << BigInt(letter)),
          0n,
        );
      assert.equal(get(vcpu, "config.isa"), letters("acdfim"));
      set(vcpu, "config.isa", 0n);
      assert.equal(get(vcpu, "config.isa"), letters("acim"));
      assert.equal(get(vcpu, "isa_ext.d"), 0n);
      set(vcpu, "config.isa", letters("abcdfhimv"));
      assert.equal(get(vcpu, "config.isa"), letters("acdfim"));
      done();
    });

    it("MULTI registers: bitmaps of the SINGLE ones; SET ignores per-extension failures", () => {
      const { vcpu, done } = fresh(mode);
      const bit = (i: number): bigint => 1n << BigInt(i);
      // Sstc (8) is on where the hart implements it (the fake hart does not).
      const sstc = HART_KIND === "real" ? [8] : [];
      const word0 = [0, 1, 2, 3, 5, 6, ...sstc, 19, 20, 21, 56, 58].reduce(
        (b, i) => b | bit(i),
        0n,
      );
      assert.equal(get(vcpu, "isa_ext.multi_en.0"), word0);
      assert.equal(get(vcpu, "isa_ext.multi_dis.0"), BigInt.asUintN(64, ~word0));
      assert.equal(get(vcpu, "isa_ext.multi_en.1"), bit(69 - 64) | bit(70 - 64));
      // Disabling A (refused), H (absent) and F (allowed) in one write: only F changes.
      set(vcpu, "isa_ext.multi_dis.0", bit(0) | bit(3) | bit(4));
      assert.equal(get(vcpu, "isa_ext.f"), 0n);
      assert.equal(get(vcpu, "isa_ext.a"), 1n);
      set(vcpu, "isa_ext.multi_en.0", bit(3));
      assert.equal(get(vcpu, "isa_ext.f"), 1n);
      const sbiOn = [0, 1, 2, 3, 4, 5, 7, 8].reduce((b, i) => b | bit(i), 0n);
      assert.equal(get(vcpu, "sbi_ext.multi_en.0"), sbiOn);
      set(vcpu, "sbi_ext.multi_en.0", bit(9) | bit(6)); // DBCN on; PMU is unavailable
      assert.equal(get(vcpu, "sbi_ext.dbcn"), 1n);
      errno(() => get(vcpu, "sbi_ext.pmu"), "ENOENT");
      done();
    });

    it("SBI_EXT: 0/1 only (checked before the id), unavailable ones are ENOENT", () => {
      const { vcpu, done } = fresh(mode);
      assert.equal(get(vcpu, "sbi_ext.dbcn"), 0n);
      assert.equal(get(vcpu, "sbi_ext.susp"), 0n);
      assert.equal(get(vcpu, "sbi_ext.time"), 1n);
      errno(() => {
        set(vcpu, "sbi_ext.dbcn", 2n);
      }, "EINVAL");
      errno(() => {
        set(vcpu, "sbi_ext.pmu", 2n);
      }, "EINVAL");
      errno(() => {
        set(vcpu, "sbi_ext.pmu", 1n);
      }, "ENOENT");
      set(vcpu, "sbi_ext.dbcn", 1n);
      assert.equal(get(vcpu, "sbi_ext.dbcn"), 1n);
      done();
    });

    it("EBUSY after the first run, even one that returned at once via immediate_exit", () => {
      const { vcpu, done } = fresh(mode);
      vcpu.runArea.immediateExit = 1;
      assert.deepEqual(vcpu.run(), { kind: "intr" });
      errno(() => {
        set(vcpu, "config.mvendorid", 5n);
      }, "EBUSY");
      set(vcpu, "config.mvendorid", 0n); // unchanged: fine
      errno(() => {
        set(vcpu, "config.isa", 0n);
      }, "EBUSY");
      errno(() => {
        set(vcpu, "isa_ext.f", 0n);
      }, "EBUSY");
      set(vcpu, "isa_ext.f", 1n);
      errno(() => {
        set(vcpu, "sbi_ext.time", 1n);
      }, "EBUSY"); // any SBI_EXT write, same value too
      errno(() => {
        set(vcpu, "sbi_ext.multi_en.0", 0n);
      }, "EBUSY");
      set(vcpu, "isa_ext.multi_dis.0", 1n << 3n); // ISA MULTI swallows the EBUSY
      assert.equal(get(vcpu, "isa_ext.f"), 1n);
      set(vcpu, "core.a0", 5n); // non-config registers stay writable
      done();
    });

    it("TIMER: compare round-trips, state follows vcpu_timer.c, time is settable", () => {
      const { vcpu, done } = fresh(mode);
      assert.equal(get(vcpu, "timer.compare"), neg(1n));
      assert.equal(get(vcpu, "timer.state"), 0n);
      errno(() => {
        set(vcpu, "timer.state", 0n);
      }, "EINVAL"); // cancel of a disarmed timer
      set(vcpu, "timer.compare", 12345n);
      assert.equal(get(vcpu, "timer.compare"), 12345n);
      // SET 1 arms with the written value (1) as the deadline, so the timer fires at once.
      set(vcpu, "timer.state", 1n);
      assert.equal(get(vcpu, "timer.compare"), 1n);
      assert.equal(get(vcpu, "timer.state"), 0n);
      // STIP: in sip without Sstc; with Sstc the level is the comparator's (stimecmp = 1, due),
      // which KVM's ONE_REG sip (hvip, vcpu_onereg.c) does not show.
      const sstc = get(vcpu, "isa_ext.sstc") === 1n;
      assert.equal(get(vcpu, "csr.sip") & 0x20n, sstc ? 0n : 0x20n);
      errno(() => {
        set(vcpu, "timer.state", 0n);
      }, "EINVAL");
      set(vcpu, "timer.time", 1_000_000_000n);
      const t = get(vcpu, "timer.time");
      assert.ok(t >= 1_000_000_000n && t < 1_000_000_000n + 100_000_000n, `time ${t}`);
      done();
    });

    it("errors carry ioctl, errno, id and catalog name; the arch byte is ignored", () => {
      const { vcpu, done } = fresh(mode);
      const e = errno(() => {
        set(vcpu, "timer.frequency", 2n);
      }, "EINVAL");
      assert.equal(e.ioctl, "KVM_SET_ONE_REG");
      assert.equal(e.regId, reg("timer.frequency"));
      assert.match(e.message, /riscv timer\.frequency/);
      const g = errno(() => get(vcpu, "core.33"), "ENOENT");
      assert.equal(g.ioctl, "KVM_GET_ONE_REG");
      set(vcpu, "core.pc", 0x1234n);
      const foreign = regId((reg("core.pc") & ((1n << 56n) - 1n)) | (0x20n << 56n));
      assert.equal(vcpu.getOneReg(foreign)[0], 0x34);
      done();
    });

    it("getManyRegs packs every listed register like getOneReg, in order", () => {
      const { vcpu, done } = fresh(mode);
      set(vcpu, "a3", 0xdead_beefn);
      const ids = vcpu.regList().filter((id) => names([id])[0] !== "timer.time");
      const packed = vcpu.getManyRegs(ids);
      const each = ids.map((id) => [...vcpu.getOneReg(id)]).flat();
      assert.deepEqual([...packed], each);
      done();
    });

    it("setManyRegs applies in order and names the failing index", () => {
      const { vcpu, done } = fresh(mode);
      const ids = [reg("a0"), reg("a1"), reg("fp_f.f2")];
      const bytes = new Uint8Array([1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0]);
      vcpu.setManyRegs(ids, bytes);
      assert.equal(get(vcpu, "a0"), 1n);
      assert.equal(get(vcpu, "a1"), 2n);
      assert.equal(get(vcpu, "fp_f.f2"), 9n);
      assert.throws(() => {
        vcpu.setManyRegs(ids, bytes.subarray(1));
      }, RangeError);
      const bad = [reg("a0"), reg("core.33")];
      const e = errno(() => vcpu.getManyRegs(bad), "ENOENT");
      assert.equal(e.index, 1);
      assert.equal(e.regId, reg("core.33"));
      done();
    });

    it("setManyRegs is all-or-nothing, side effects included", () => {
      const { vcpu, done } = fresh(mode);
      set(vcpu, "a0", 11n);
      set(vcpu, "timer.compare", 777n);
      const sstatus = get(vcpu, "csr.sstatus");
      const stream = (values: bigint[]): Uint8Array => {
        const out = new Uint8Array(8 * values.length);
        const view = new DataView(out.buffer);
        values.forEach((v, i) => {
          view.setBigUint64(8 * i, v, true);
        });
        return out;
      };
      // F off, then an FP_F write that now fails: the ISA change and its FS reset roll back.
      const ids = [reg("a0"), reg("isa_ext.f"), reg("timer.state"), reg("timer.frequency")];
      const e = errno(() => {
        vcpu.setManyRegs(ids, stream([99n, 0n, 1n, 5n]));
      }, "EINVAL");
      assert.equal(e.index, 3);
      assert.equal(get(vcpu, "a0"), 11n);
      assert.equal(get(vcpu, "isa_ext.f"), 1n);
      assert.equal(get(vcpu, "csr.sstatus"), sstatus);
      assert.equal(get(vcpu, "timer.compare"), 777n);
      assert.equal(get(vcpu, "timer.state"), 0n);
      const order = [reg("isa_ext.f"), reg("fp_f.f0")];
      const bytes = new Uint8Array(12);
      const f = errno(() => {
        vcpu.setManyRegs(order, bytes);
      }, "ENOENT");
      assert.equal(f.index, 1);
      assert.equal(get(vcpu, "isa_ext.f"), 1n);
      done();
    });
  });
}

for (const mode of MODES) regsSuite(mode);

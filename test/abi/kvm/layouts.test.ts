import { describe, it } from "node:test";
import assert from "node:assert/strict";
import type { Layout } from "../../../src/abi/kvm/layout.js";
import { offsetOf, struct, union } from "../../../src/abi/kvm/layout.js";
import * as L from "../../../src/abi/kvm/layouts.js";
import { IOCTLS, IOCTL_NAMES } from "../../../src/abi/kvm/ioctls.js";

// Golden sizes and offsets from kvm-register-abi.md §2, §4, §5, §8.2, §12.2 (computed there
// with the Linux 6.18 uapi headers). Offsets are "field path → byte offset".
type Golden = readonly [layout: Layout, size: number, offsets: Readonly<Record<string, number>>];

const REGS_ORDER = ["rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rsp", "rbp", "r8", "r9"];
const REGS_TAIL = ["r10", "r11", "r12", "r13", "r14", "r15", "rip", "rflags"];

const GOLDEN: readonly Golden[] = [
  [L.KVM_ONE_REG, 16, { id: 0, addr: 8 }],
  [L.KVM_REG_LIST, 8, { n: 0, reg: 8 }],
  [
    L.KVM_RUN,
    2352,
    {
      request_interrupt_window: 0,
      immediate_exit: 1,
      padding1: 2,
      exit_reason: 8,
      ready_for_interrupt_injection: 12,
      if_flag: 13,
      flags: 14,
      cr8: 16,
      apic_base: 24,
      exit: 32,
      kvm_valid_regs: 288,
      kvm_dirty_regs: 296,
      s: 304,
      "exit.hw.hardware_exit_reason": 32,
      "exit.fail_entry.hardware_entry_failure_reason": 32,
      "exit.fail_entry.cpu": 40,
      "exit.ex.exception": 32,
      "exit.ex.error_code": 36,
      "exit.io.direction": 32,
      "exit.io.size": 33,
      "exit.io.port": 34,
      "exit.io.count": 36,
      "exit.io.data_offset": 40,
      "exit.mmio.phys_addr": 32,
      "exit.mmio.data": 40,
      "exit.mmio.len": 48,
      "exit.mmio.is_write": 52,
      "exit.hypercall.nr": 32,
      "exit.hypercall.args": 40,
      "exit.hypercall.ret": 88,
      "exit.hypercall.flags": 96,
      "exit.internal.suberror": 32,
      "exit.internal.ndata": 36,
      "exit.internal.data": 40,
      "exit.system_event.type": 32,
      "exit.system_event.ndata": 36,
      "exit.system_event.data": 40,
      "exit.system_event.flags": 40,
      "exit.msr.error": 32,
      "exit.msr.reason": 40,
      "exit.msr.index": 44,
      "exit.msr.data": 48,
      "exit.riscv_sbi.extension_id": 32,
      "exit.riscv_sbi.function_id": 40,
      "exit.riscv_sbi.args": 48,
      "exit.riscv_sbi.ret": 96,
      "exit.riscv_csr.csr_num": 32,
      "exit.riscv_csr.new_value": 40,
      "exit.riscv_csr.write_mask": 48,
      "exit.riscv_csr.ret_value": 56,
      "exit.memory_fault.flags": 32,
      "exit.memory_fault.gpa": 40,
      "exit.memory_fault.size": 48,
    },
  ],
  [
    L.KVM_RUN_S390,
    2368,
    { psw_mask: 32, psw_addr: 40, exit: 48, kvm_valid_regs: 304, kvm_dirty_regs: 312, s: 320 },
  ],
  [
    L.KVM_REGS,
    144,
    Object.fromEntries([...REGS_ORDER, ...REGS_TAIL].map((name, i) => [name, i * 8])),
  ],
  [
    L.KVM_SEGMENT,
    24,
    {
      base: 0,
      limit: 8,
      selector: 12,
      type: 14,
      present: 15,
      dpl: 16,
      db: 17,
      s: 18,
      l: 19,
      g: 20,
      avl: 21,
      unusable: 22,
      padding: 23,
    },
  ],
  [L.KVM_DTABLE, 16, { base: 0, limit: 8, padding: 10 }],
  [
    L.KVM_SREGS,
    312,
    {
      cs: 0,
      ds: 24,
      es: 48,
      fs: 72,
      gs: 96,
      ss: 120,
      tr: 144,
      ldt: 168,
      gdt: 192,
      idt: 208,
      cr0: 224,
      cr2: 232,
      cr3: 240,
      cr4: 248,
      cr8: 256,
      efer: 264,
      apic_base: 272,
      interrupt_bitmap: 280,
      "cs.selector": 12,
      "idt.limit": 216,
      "interrupt_bitmap[3]": 304,
    },
  ],
  [L.KVM_SREGS2, 320, { apic_base: 272, flags: 280, pdptrs: 288, "pdptrs[3]": 312 }],
  [
    L.KVM_VCPU_EVENTS,
    64,
    {
      "exception.injected": 0,
      "exception.nr": 1,
      "exception.has_error_code": 2,
      "exception.pending": 3,
      "exception.error_code": 4,
      "interrupt.injected": 8,
      "interrupt.nr": 9,
      "interrupt.soft": 10,
      "interrupt.shadow": 11,
      "nmi.injected": 12,
      "nmi.pending": 13,
      "nmi.masked": 14,
      "nmi.pad": 15,
      sipi_vector: 16,
      flags: 20,
      "smi.smm": 24,
      "smi.pending": 25,
      "smi.smm_inside_nmi": 26,
      "smi.latched_init": 27,
      "triple_fault.pending": 28,
      reserved: 29,
      exception_has_payload: 55,
      exception_payload: 56,
    },
  ],
  [L.KVM_SYNC_REGS_X86, 520, { regs: 0, sregs: 144, events: 456 }],
  [
    L.KVM_USERSPACE_MEMORY_REGION,
    32,
    { slot: 0, flags: 4, guest_phys_addr: 8, memory_size: 16, userspace_addr: 24 },
  ],
  [L.KVM_USERSPACE_MEMORY_REGION2, 160, { guest_memfd_offset: 32, guest_memfd: 40, pad2: 48 }],
  [L.KVM_MSRS, 8, { nmsrs: 0, pad: 4, entries: 8 }],
  [L.KVM_MSR_ENTRY, 16, { index: 0, reserved: 4, data: 8 }],
  [L.KVM_MSR_LIST, 4, { nmsrs: 0, indices: 4 }],
  [L.KVM_CPUID2, 8, { nent: 0, padding: 4, entries: 8 }],
  [
    L.KVM_CPUID_ENTRY2,
    40,
    { function: 0, index: 4, flags: 8, eax: 12, ebx: 16, ecx: 20, edx: 24, padding: 28 },
  ],
  [
    L.KVM_FPU,
    416,
    { fpr: 0, fcw: 128, fsw: 130, ftwx: 132, last_opcode: 134, last_ip: 136, last_dp: 144 },
  ],
  [L.KVM_FPU, 416, { xmm: 152, mxcsr: 408, pad2: 412 }],
  [L.KVM_XSAVE, 4096, { region: 0, extra: 4096 }],
  [L.KVM_XCRS, 392, { nr_xcrs: 0, flags: 4, xcrs: 8, "xcrs[1].value": 32, padding: 264 }],
  [L.KVM_DEBUGREGS, 128, { db: 0, dr6: 32, dr7: 40, flags: 48, reserved: 56 }],
  [L.KVM_LAPIC_STATE, 1024, { regs: 0 }],
  [L.KVM_MP_STATE_LAYOUT, 4, { mp_state: 0 }],
  [L.KVM_ENABLE_CAP, 104, { cap: 0, flags: 4, args: 8, pad: 40 }],
  [L.KVM_GUEST_DEBUG_X86, 72, { control: 0, debugreg: 8 }],
  [L.KVM_MSR_FILTER, 392, { flags: 0, ranges: 8, "ranges[1].bitmap": 48 }],
  [L.KVM_VCPU_INIT, 32, { target: 0, features: 4 }],
  [L.KVM_DIRTY_LOG, 16, { slot: 0, padding1: 4, dirty_bitmap: 8 }],
  [L.KVM_IRQ_LEVEL, 8, { irq: 0, status: 0, level: 4 }],
  [L.KVM_PIT_CONFIG, 64, { flags: 0, pad: 4 }],
  [L.KVM_IRQCHIP, 520, { chip_id: 0, pad: 4, chip: 8 }],
  [L.KVM_CLOCK_DATA, 48, { clock: 0, flags: 8, pad0: 12, realtime: 16, host_tsc: 24, pad: 32 }],
  [L.KVM_INTERRUPT, 4, { irq: 0 }],
  [L.KVM_XCR, 16, { xcr: 0, reserved: 4, value: 8 }],
  [
    L.KVM_RISCV_CONFIG,
    64,
    {
      isa: 0,
      zicbom_block_size: 8,
      mvendorid: 16,
      marchid: 24,
      mimpid: 32,
      zicboz_block_size: 40,
      satp_mode: 48,
      zicbop_block_size: 56,
    },
  ],
  [L.KVM_RISCV_CORE, 264, { "regs.pc": 0, "regs.ra": 8, "regs.a0": 80, "regs.t6": 248, mode: 256 }],
  [
    L.KVM_RISCV_CSR,
    88,
    {
      sstatus: 0,
      sie: 8,
      stvec: 16,
      sscratch: 24,
      sepc: 32,
      scause: 40,
      stval: 48,
      sip: 56,
      satp: 64,
      scounteren: 72,
      senvcfg: 80,
    },
  ],
  [
    L.KVM_RISCV_AIA_CSR,
    56,
    { siselect: 0, iprio1: 8, iprio2: 16, sieh: 24, siph: 32, iprio1h: 40, iprio2h: 48 },
  ],
  [L.KVM_RISCV_SMSTATEEN_CSR, 8, { sstateen0: 0 }],
  [L.KVM_RISCV_TIMER, 32, { frequency: 0, time: 8, compare: 16, state: 24 }],
  [L.RISCV_F_EXT_STATE, 132, { f: 0, fcsr: 128 }],
  [L.RISCV_D_EXT_STATE, 264, { f: 0, fcsr: 256 }],
  [L.RISCV_V_EXT_STATE, 48, { vstart: 0, vl: 8, vtype: 16, vcsr: 24, vlenb: 32, datap: 40 }],
  [L.KVM_RISCV_SBI_STA, 16, { shmem_lo: 0, shmem_hi: 8 }],
  [
    L.KVM_RISCV_SBI_FWFT,
    48,
    {
      "misaligned_deleg.enable": 0,
      "misaligned_deleg.flags": 8,
      "misaligned_deleg.value": 16,
      "pointer_masking.enable": 24,
      "pointer_masking.flags": 32,
      "pointer_masking.value": 40,
    },
  ],
  [
    L.KVM_SYNC_REGS_S390,
    1984,
    {
      prefix: 0,
      gprs: 8,
      acrs: 136,
      crs: 200,
      todpr: 328,
      cputm: 336,
      ckc: 344,
      pp: 352,
      gbea: 360,
      pft: 368,
      pfs: 376,
      pfc: 384,
      vrs: 392,
      fprs: 392,
      reserved: 904,
      fpc: 1416,
      bpbc: 1420,
      padding1: 1421,
      riccb: 1472,
      diag318: 1536,
      padding2: 1544,
      sdnx: 1728,
      gscb: 1744,
      etoken: 1776,
      etoken_extension: 1784,
    },
  ],
];

describe("KVM struct layouts", () => {
  it("every size and offset equals kvm-register-abi.md", () => {
    for (const [layout, size, offsets] of GOLDEN) {
      assert.equal(layout.size, size, `sizeof(${layout.name})`);
      for (const [path, offset] of Object.entries(offsets)) {
        assert.equal(offsetOf(layout, path), offset, `offsetof(${layout.name}, ${path})`);
      }
    }
  });

  it("every layout in LAYOUTS has a golden row", () => {
    const pinned = new Set(GOLDEN.map(([layout]) => layout));
    for (const [name, layout] of Object.entries(L.LAYOUTS)) {
      assert.ok(pinned.has(layout), `${name} has golden size/offsets`);
    }
  });

  it("the exit union is 256 bytes and KVM_RUN_EXIT gives absolute offsets", () => {
    assert.equal(L.KVM_RUN_EXIT_UNION.size, 256);
    assert.equal(L.KVM_RUN_EXIT.io.port, 34);
    assert.equal(L.KVM_RUN_EXIT.io.data_offset, 40);
    assert.equal(L.KVM_RUN_EXIT.riscv_sbi.ret, 96);
    assert.equal(L.KVM_RUN_EXIT.msr.data, 48);
  });

  it("sync-area offsets per arch match §4.2", () => {
    assert.deepEqual(L.SYNC_AREA.x86, {
      validRegs: 288,
      dirtyRegs: 296,
      s: 304,
      syncRegsSize: 520,
    });
    assert.deepEqual(L.SYNC_AREA.arm64, {
      validRegs: 288,
      dirtyRegs: 296,
      s: 304,
      syncRegsSize: 8,
    });
    assert.deepEqual(L.SYNC_AREA.riscv, {
      validRegs: 288,
      dirtyRegs: 296,
      s: 304,
      syncRegsSize: 0,
    });
    assert.deepEqual(L.SYNC_AREA.s390, {
      validRegs: 304,
      dirtyRegs: 312,
      s: 320,
      syncRegsSize: 1984,
    });
    for (const area of Object.values(L.SYNC_AREA)) assert.ok(area.syncRegsSize <= 2048);
  });

  it("every struct an ioctl carries has a layout whose size is the encoded size", () => {
    for (const name of IOCTL_NAMES) {
      const { struct: sname, size } = IOCTLS[name];
      if (sname === undefined || sname === "u64" || sname === "int") continue;
      const layout = L.LAYOUTS[sname];
      assert.ok(layout !== undefined, `${name}: no layout for ${sname}`);
      assert.equal(layout.size, size, `${name}: sizeof(${sname})`);
    }
  });

  it("array fields carry their count and element size", () => {
    assert.deepEqual(L.KVM_SREGS.fields.interrupt_bitmap, {
      offset: 280,
      size: 32,
      type: "u64",
      count: 4,
    });
    assert.equal(L.KVM_XCRS.fields.xcrs.layout?.name, "kvm_xcr");
    assert.equal(L.KVM_XCRS.fields.xcrs.count, 16);
    assert.equal(L.KVM_VCPU_EVENTS.fields.reserved.size, 26);
  });
});

describe("struct() and union() helpers", () => {
  it("struct() aligns members naturally and pads the tail", () => {
    const s = struct("t", [
      ["a", "u8"],
      ["b", "u64"],
      ["c", "u16"],
    ]);
    assert.deepEqual(
      [s.fields.a.offset, s.fields.b.offset, s.fields.c.offset, s.size, s.align],
      [0, 8, 16, 24, 8],
    );
  });

  it("struct() rejects duplicate names and misaligned explicit offsets", () => {
    assert.throws(
      () =>
        struct("t", [
          ["a", "u8"],
          ["a", "u8"],
        ]),
      /duplicate/,
    );
    assert.throws(() => struct("t", [{ name: "a", type: "u32", at: 2 }]), /aligned/);
  });

  it("union() overlays members and takes the widest size", () => {
    const u = union("u", [
      ["x", "u32"],
      ["y", "bytes", 10],
    ]);
    assert.deepEqual([u.fields.x.offset, u.fields.y.offset, u.size, u.align], [0, 0, 12, 4]);
  });

  it("offsetOf() rejects unknown fields and out-of-range indexes", () => {
    assert.throws(() => offsetOf(L.KVM_REGS, "rzz"), RangeError);
    assert.throws(() => offsetOf(L.KVM_SREGS, "interrupt_bitmap[4]"), RangeError);
    assert.throws(() => offsetOf(L.KVM_REGS, "rax.x"), RangeError);
  });
});

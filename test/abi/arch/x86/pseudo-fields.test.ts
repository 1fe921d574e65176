import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { lookupReg } from "../../../../src/abi/catalog.js";
import {
  fieldRows,
  fieldText,
  float80ToNumber,
  regFieldSpecs,
  regFields,
  type RegField,
} from "../../../../src/abi/fields.js";
import {
  X86_GDB_MSRS,
  decodeX86PseudoFields,
  withX86PseudoField,
} from "../../../../src/abi/arch/x86/pseudo-fields.js";
import { X86_PSEUDO_LIST } from "../../../../src/abi/arch/x86/pseudo.js";
import { LAYOUTS } from "../../../../src/abi/kvm/layouts.js";
import { decodeLayout, type FieldValue } from "../../../../src/abi/kvm/struct-codec.js";
import {
  decodeKvmRegs,
  decodeKvmSregs,
  decodeKvmVcpuEvents,
  encodeKvmRegs,
} from "../../../../src/abi/kvm/x86-structs.js";

const id = (name: string) => lookupReg("x86", name).id;

function fields(name: string, bytes: Uint8Array): RegField[] {
  const out = regFields(id(name), bytes);
  assert.ok(out !== undefined, `${name} has fields`);
  return out;
}

function byName(list: readonly RegField[]): Map<string, RegField> {
  return new Map(list.map((f) => [f.name, f]));
}

/** Walks a decoded struct along a flattened field path (`cs.base`, `interrupt_bitmap[2]`). */
function at(value: FieldValue, path: string): FieldValue {
  let cur: FieldValue = value;
  for (const part of path.split(".")) {
    const m = /^(\w+)(?:\[(\d+)\])?$/.exec(part);
    assert.ok(m?.[1] !== undefined, path);
    assert.ok(typeof cur === "object" && !(cur instanceof Uint8Array) && !Array.isArray(cur));
    const next: FieldValue | undefined = (cur as Record<string, FieldValue>)[m[1]];
    assert.ok(next !== undefined, path);
    cur = next;
    if (m[2] !== undefined) {
      const item: FieldValue | undefined = (cur as readonly FieldValue[])[Number(m[2])];
      assert.ok(item !== undefined, path);
      cur = item;
    }
  }
  return cur;
}

function asBigint(v: FieldValue): bigint {
  return typeof v === "number" ? BigInt(v) : (v as bigint);
}

function le(bytes: Uint8Array, from: number, size: number): bigint {
  let v = 0n;
  for (let i = size - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[from + i] ?? 0);
  return v;
}

const bytesOf = (size: number) => fc.uint8Array({ minLength: size, maxLength: size });

describe("x86 pseudo-register field tables", () => {
  it("cover every byte of every pseudo-register value exactly once (bit fields aside)", () => {
    for (const reg of X86_PSEUDO_LIST) {
      const specs = regFieldSpecs(reg.id);
      assert.ok(specs !== undefined, reg.name);
      let cursor = 0;
      for (const s of specs.filter((f) => f.lsb === undefined && f.derived !== true)) {
        assert.equal(s.offset, cursor, `${reg.name}.${s.name} starts where the last field ended`);
        cursor += s.size;
      }
      assert.equal(cursor, reg.size, `${reg.name} fields end at the value size`);
      const names = specs.map((f) => f.name);
      assert.equal(new Set(names).size, names.length, `${reg.name} names are unique`);
    }
  });

  it("name REGS as the kernel does, with GDB's names (rflags is GDB's eflags)", () => {
    const specs = regFieldSpecs(id("REGS")) ?? [];
    const named = specs.filter((s) => !s.reserved);
    assert.deepEqual(
      named.map((s) => s.name),
      [
        ...["rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rsp", "rbp"],
        ...["r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rip", "rflags"],
      ],
    );
    assert.deepEqual(
      named.map((s) => s.gdbName),
      [...named.slice(0, 17).map((s) => s.name), "eflags"],
    );
  });

  it("give every GDB amd64 register that lives in a KVM state struct its GDB name once per struct", () => {
    const gdb = [
      ...["rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "rip", "eflags"],
      ...Array.from({ length: 8 }, (_, i) => `r${i + 8}`),
      ...["cs", "ss", "ds", "es", "fs", "gs", "fs_base", "gs_base"],
      ...["cr0", "cr2", "cr3", "cr4", "cr8", "efer"],
      ...Array.from({ length: 8 }, (_, i) => `st${i}`),
      ...["fctrl", "fstat", "ftag", "fiseg", "fioff", "foseg", "fooff", "fop", "mxcsr"],
      ...Array.from({ length: 16 }, (_, i) => `xmm${i}`),
      ...Array.from({ length: 16 }, (_, i) => `ymm${i}h`),
    ];
    const where = new Map<string, string[]>();
    for (const reg of X86_PSEUDO_LIST) {
      for (const s of regFieldSpecs(reg.id) ?? []) {
        if (s.gdbName !== undefined)
          where.set(s.gdbName, [...(where.get(s.gdbName) ?? []), reg.name]);
      }
    }
    for (const name of gdb) assert.ok(where.has(name), `GDB's ${name} is decoded`);
    for (const [name, regs] of where) {
      assert.equal(new Set(regs).size, regs.length, `${name} appears once per struct`);
    }
    assert.deepEqual(where.get("xmm3"), ["FPU", "XSAVE"]);
    // The one GDB register of this list kept in an MSR: k_gs_base.
    assert.equal(lookupReg("x86", X86_GDB_MSRS.k_gs_base ?? "").fields.msr, 0xc0000102);
    assert.deepEqual(where.get("cr3"), ["SREGS"]);
    const sregs = byName(fields("SREGS", new Uint8Array(512)));
    assert.equal(sregs.get("cs.selector")?.gdbName, "cs");
    assert.equal(sregs.get("fs.base")?.gdbName, "fs_base");
    for (const attr of ["type", "present", "dpl", "db", "s", "l", "g", "avl", "unusable"]) {
      assert.equal(sregs.get(`ss.${attr}`)?.size, 1, `ss.${attr}`);
    }
  });

  it("decode REGS, SREGS and VCPU_EVENTS field for field as the struct codecs do", () => {
    const cases = [
      ["REGS", decodeKvmRegs],
      ["SREGS", decodeKvmSregs],
      ["VCPU_EVENTS", decodeKvmVcpuEvents],
    ] as const;
    for (const [name, decode] of cases) {
      const reg = X86_PSEUDO_LIST.find((r) => r.name === name);
      assert.ok(reg !== undefined);
      fc.assert(
        fc.property(bytesOf(reg.structSize), (struct) => {
          const value = new Uint8Array(reg.size);
          value.set(struct);
          const decoded = decode(struct) as unknown as FieldValue;
          for (const f of fields(name, value)) {
            if (f.name.startsWith("reserved@")) continue;
            const want = at(decoded, f.name);
            if (want instanceof Uint8Array) assert.deepEqual(f.value, want, f.name);
            else assert.equal(f.value, asBigint(want), `${name}.${f.name}`);
          }
        }),
        { numRuns: 30 },
      );
    }
  });

  it("split FPU and the XSAVE legacy area into st0–st7 (80 bits) and xmm0–xmm15 at the SDM's offsets", () => {
    fc.assert(
      fc.property(bytesOf(416), bytesOf(4096), (fpu, xsave) => {
        const f = byName(fields("FPU", fpu));
        const x = byName(fields("XSAVE", xsave));
        const layout = decodeLayout(LAYOUTS.kvm_fpu ?? assert.fail(), fpu);
        for (let i = 0; i < 8; i++) {
          assert.equal(f.get(`st${i}`)?.value, le(layout.fpr as Uint8Array, 16 * i, 10));
          assert.equal(x.get(`st${i}`)?.value, le(xsave, 32 + 16 * i, 10));
        }
        for (let i = 0; i < 16; i++) {
          assert.equal(f.get(`xmm${i}`)?.value, le(layout.xmm as Uint8Array, 16 * i, 16));
          assert.equal(x.get(`xmm${i}`)?.value, le(xsave, 160 + 16 * i, 16));
          assert.equal(x.get(`ymm${i}h`)?.value, le(xsave, 576 + 16 * i, 16));
        }
        assert.equal(f.get("fctrl")?.value, undefined, "fields carry kernel names");
        assert.equal(f.get("fcw")?.value, BigInt(layout.fcw as number));
        assert.equal(x.get("mxcsr")?.value, le(xsave, 24, 4));
        assert.equal(x.get("xstate_bv")?.value, le(xsave, 512, 8));
        const ip = layout.last_ip as bigint;
        assert.equal(f.get("fioff")?.value, ip & 0xffff_ffffn);
        assert.equal(f.get("fiseg")?.value, (ip >> 32n) & 0xffffn);
      }),
      { numRuns: 20 },
    );
  });

  it("list CPUID entries up to nent and name XCRS entries by their register (xcr0)", () => {
    const cpuid = new Uint8Array(16384);
    const view = new DataView(cpuid.buffer);
    view.setUint32(0, 2, true);
    view.setUint32(8, 0x1, true); // entries[0].function
    view.setUint32(8 + 40 + 12, 0xabc, true); // entries[1].eax
    view.setUint32(8 + 80, 0x7, true); // entries[2].function: past nent
    const c = byName(fields("CPUID", cpuid));
    assert.equal(c.get("entries[1].eax")?.value, 0xabcn);
    assert.equal(c.get("entries[1].eax")?.reserved, false);
    assert.equal(c.get("entries[2].function")?.reserved, true, "past nent");
    const rows = fieldRows(fields("CPUID", cpuid));
    assert.deepEqual(
      rows.map((r) => r.name),
      ["nent", "entries[0]", "entries[1]", "entries[2].function"],
      "one line per entry; of the unused entry only its non-zero field",
    );
    assert.match(rows[1]?.text ?? "", /^function=0x00000001 index=0x00000000 .* edx=0x00000000$/);

    const xcrs = new Uint8Array(512);
    const xv = new DataView(xcrs.buffer);
    xv.setUint32(0, 1, true);
    xv.setBigUint64(16, 0x207n, true);
    const x = fields("XCRS", xcrs);
    assert.equal(byName(x).get("xcr0")?.value, 0x207n);
    assert.equal(byName(x).get("xcrs[1].value")?.reserved, true);
  });

  it("name DEBUGREGS db0–db3, LAPIC registers at the APIC page offsets, MP_STATE and TSC_KHZ", () => {
    const dbg = new Uint8Array(128);
    dbg[16] = 0x22;
    const d = byName(fields("DEBUGREGS", dbg));
    assert.equal(d.get("db2")?.value, 0x22n);
    assert.ok(d.has("dr6") && d.has("dr7"));
    const lapic = new Uint8Array(1024);
    new DataView(lapic.buffer).setUint32(0x80, 0x10, true);
    new DataView(lapic.buffer).setUint32(0x210, 0x8000, true);
    const l = byName(fields("LAPIC", lapic));
    assert.equal(l.get("tpr")?.value, 0x10n);
    assert.equal(l.get("irr1")?.value, 0x8000n);
    for (const n of ["id", "version", "svr", "icr_low", "lvt_timer", "timer_divide"]) {
      assert.ok(l.has(n), n);
    }
    const mp = new Uint8Array([3, 0, 0, 0]);
    const mpState = byName(fields("MP_STATE", mp)).get("mp_state") ?? assert.fail();
    assert.equal(mpState.value, 3n);
    assert.equal(fieldText(mpState), "0x00000003 (HALTED)");
    const khz = new Uint8Array(8);
    new DataView(khz.buffer).setBigUint64(0, 2_596_126n, true);
    assert.equal(byName(fields("TSC_KHZ", khz)).get("tsc_khz")?.value, 2_596_126n);
  });

  it("accept the bare struct too, and refuse any other length with a RangeError", () => {
    assert.equal(fields("REGS", new Uint8Array(144)).at(-1)?.name, "rflags");
    assert.throws(() => regFields(id("REGS"), new Uint8Array(200)), RangeError);
    assert.equal(regFields(id("IA32_TSC"), new Uint8Array(8)), undefined);
    assert.equal(
      decodeX86PseudoFields(lookupReg("riscv", "core.pc").id, new Uint8Array(8)),
      undefined,
    );
  });

  it("withX86PseudoField() writes a field, a bit field and nothing else, as the codec would", () => {
    fc.assert(
      fc.property(bytesOf(144), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), (struct, rip) => {
        const value = new Uint8Array(256);
        value.set(struct);
        const written = withX86PseudoField(id("REGS"), value, "rip", rip);
        const regs = decodeKvmRegs(struct);
        regs.rip = rip;
        assert.deepEqual(written.subarray(0, 144), encodeKvmRegs(regs));
        assert.deepEqual(written.subarray(144), value.subarray(144));
      }),
      { numRuns: 30 },
    );
    const fpu = new Uint8Array(416).fill(0xee);
    const out = withX86PseudoField(id("FPU"), fpu, "fiseg", 0x1234n);
    const ip = byName(fields("FPU", out)).get("last_ip")?.value;
    assert.equal(ip, 0xeeee_1234_eeee_eeeen);
    assert.throws(() => withX86PseudoField(id("FPU"), fpu, "fiseg", 0x10000n), RangeError);
    assert.throws(() => withX86PseudoField(id("FPU"), fpu, "nope", 1n), RangeError);
  });
});

describe("ftag, GDB's full x87 tag word", () => {
  it("is derived from the abridged tag, TOP and the registers' contents, and writes back", () => {
    const fpu = new Uint8Array(416);
    const view = new DataView(fpu.buffer);
    view.setUint16(130, 6 << 11, true); // fsw: TOP = 6, so physical 6 is ST(0), 7 is ST(1)
    fpu[132] = 0b1100_0000; // ftwx: physical registers 6 and 7 hold values
    view.setBigUint64(0, 0x8000_0000_0000_0000n, true); // st0 = 1.0: valid (tag 0)
    view.setUint16(8, 0x3fff, true);
    // st1 stays +0.0: zero (tag 1). Physical 0..5 are empty (tag 3).
    const f = byName(fields("FPU", fpu));
    assert.equal(f.get("ftag")?.value, 0x4fffn);
    assert.equal(f.get("ftag")?.gdbName, "ftag");
    assert.equal(f.get("ftwx")?.gdbName, undefined, "the abridged tag is not GDB's ftag");
    const written = withX86PseudoField(id("FPU"), new Uint8Array(416), "ftag", 0x4fffn);
    assert.equal(written[132], 0b1100_0000);
    const xsave = new Uint8Array(4096);
    xsave[4] = 0xff; // all eight non-empty, all +0.0
    assert.equal(byName(fields("XSAVE", xsave)).get("ftag")?.value, 0x5555n);
  });
});

describe("field text", () => {
  it("float80ToNumber() reads x87 extended reals", () => {
    assert.equal(float80ToNumber(0x3fff_8000_0000_0000_0000n), 1);
    assert.equal(float80ToNumber(0xc000_8000_0000_0000_0000n), -2);
    assert.equal(float80ToNumber(0x4000_c90f_daa2_2168_c235n), Math.PI);
    assert.equal(float80ToNumber(0x7fff_8000_0000_0000_0000n), Infinity);
    assert.ok(Number.isNaN(float80ToNumber(0x7fff_c000_0000_0000_0000n)));
    assert.equal(float80ToNumber(0n), 0);
  });

  it("fieldText() prints integers at their width and 80-bit reals with their value", () => {
    const fpu = new Uint8Array(416);
    fpu.set([0x35, 0xc2, 0x68, 0x21, 0xa2, 0xda, 0x0f, 0xc9, 0x00, 0x40], 0);
    fpu[128] = 0x7f;
    const f = byName(fields("FPU", fpu));
    assert.equal(fieldText(f.get("st0") ?? assert.fail()), `0x4000c90fdaa22168c235 (${Math.PI})`);
    assert.equal(fieldText(f.get("fcw") ?? assert.fail()), "0x007f");
    assert.equal(fieldText(f.get("fiseg") ?? assert.fail()), "0x0000");
  });
});

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { RISCV_RAM_BASE, ramAccess } from "../../src/vmm/guest-memory.js";
import {
  DBCN_MAX_CHUNK,
  SBI_CONSOLE_EID,
  SbiConsole,
  type SbiExit,
} from "../../src/vmm/sbi-console.js";

const ram = { base: RISCV_RAM_BASE, size: 0x10000n };

function setup(): { con: SbiConsole; memory: Uint8Array; out: () => string } {
  const memory = new Uint8Array(Number(ram.size));
  const bytes: number[] = [];
  const con = new SbiConsole((b) => bytes.push(...b), ramAccess(ram, memory));
  return { con, memory, out: () => String.fromCharCode(...bytes) };
}

/** A forwarded call with ret preset to [-2, 0] as the backends do. */
function call(eid: bigint, fid: bigint, args: bigint[]): SbiExit {
  const ret = new BigInt64Array([-2n, 0n]);
  return {
    kind: "riscv_sbi",
    extensionId: eid,
    functionId: fid,
    args: [...args, 0n, 0n, 0n, 0n, 0n, 0n].slice(0, 6),
    ret,
  };
}

describe("SbiConsole", () => {
  it("legacy putchar outputs the byte, returns 0 and hands a1 back unchanged", () => {
    const { con, out } = setup();
    const exit = call(SBI_CONSOLE_EID.PUTCHAR, 0n, [0x41n, 0x1234n]);
    assert.equal(con.handle(exit), true);
    assert.equal(out(), "A");
    assert.deepEqual([...exit.ret], [0n, 0x1234n]);
  });

  it("legacy getchar returns queued bytes, then -1", () => {
    const { con } = setup();
    con.pushInput(Uint8Array.of(0x7a));
    const first = call(SBI_CONSOLE_EID.GETCHAR, 0n, [0n, 9n]);
    con.handle(first);
    assert.deepEqual([...first.ret], [0x7an, 9n]);
    const second = call(SBI_CONSOLE_EID.GETCHAR, 0n, []);
    con.handle(second);
    assert.equal(second.ret[0], -1n);
  });

  it("DBCN write outputs guest memory and returns the count", () => {
    const { con, memory, out } = setup();
    memory.set(new TextEncoder().encode("hello"), 0x100);
    const exit = call(SBI_CONSOLE_EID.DBCN, 0n, [5n, ram.base + 0x100n, 0n]);
    con.handle(exit);
    assert.equal(out(), "hello");
    assert.deepEqual([...exit.ret], [0n, 5n]);
  });

  it("DBCN write is partial above the chunk limit and refuses buffers outside RAM or with a high half", () => {
    const { con } = setup();
    const big = call(SBI_CONSOLE_EID.DBCN, 0n, [0x9000n, ram.base, 0n]);
    con.handle(big);
    assert.deepEqual([...big.ret], [0n, BigInt(DBCN_MAX_CHUNK)]);
    for (const args of [
      [16n, ram.base + ram.size - 8n, 0n],
      [16n, 0x1000n, 0n],
      [16n, ram.base, 1n],
    ]) {
      const exit = call(SBI_CONSOLE_EID.DBCN, 0n, args);
      con.handle(exit);
      assert.deepEqual([...exit.ret], [-3n, 0n], String(args));
    }
  });

  it("DBCN read copies queued input into guest memory", () => {
    const { con, memory } = setup();
    const empty = call(SBI_CONSOLE_EID.DBCN, 1n, [8n, ram.base + 0x200n, 0n]);
    con.handle(empty);
    assert.deepEqual([...empty.ret], [0n, 0n]);
    con.pushInput(Uint8Array.of(1, 2, 3));
    const exit = call(SBI_CONSOLE_EID.DBCN, 1n, [2n, ram.base + 0x200n, 0n]);
    con.handle(exit);
    assert.deepEqual([...exit.ret], [0n, 2n]);
    assert.deepEqual(memory.subarray(0x200, 0x203), Uint8Array.of(1, 2, 0));
    const bad = call(SBI_CONSOLE_EID.DBCN, 1n, [8n, 0n, 0n]);
    con.handle(bad);
    assert.deepEqual([...bad.ret], [-3n, 0n]);
    const rest = call(SBI_CONSOLE_EID.DBCN, 1n, [8n, ram.base, 0n]);
    con.handle(rest);
    assert.deepEqual([...rest.ret], [0n, 1n], "a failed read consumes nothing");
  });

  it("DBCN write_byte outputs one byte; unknown DBCN functions are not supported", () => {
    const { con, out } = setup();
    const exit = call(SBI_CONSOLE_EID.DBCN, 2n, [0x21n]);
    con.handle(exit);
    assert.equal(out(), "!");
    assert.deepEqual([...exit.ret], [0n, 0n]);
    const unknown = call(SBI_CONSOLE_EID.DBCN, 7n, []);
    con.handle(unknown);
    assert.deepEqual([...unknown.ret], [-2n, 0n]);
  });

  it("leaves other extensions alone", () => {
    const { con } = setup();
    const exit = call(0x0800_0000n, 0n, []);
    assert.equal(con.handle(exit), false);
    assert.deepEqual([...exit.ret], [-2n, 0n]);
  });
});

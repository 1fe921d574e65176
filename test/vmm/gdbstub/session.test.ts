import { describe, it, beforeEach, afterEach } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { createSoftVm } from "../../../src/backends/soft/index.js";
import type { Vm } from "../../../src/backends/vcpu.js";
import { planGdbRegisters } from "../../../src/vmm/arch/riscv/gdb.js";
import { escapeBinary, framePacket, RspDecoder } from "../../../src/vmm/gdbstub/packet.js";
import { GdbSession } from "../../../src/vmm/gdbstub/session.js";
import { reg, TestTarget } from "./test-target.js";

/** A session with a recording connection; `ask` sends one packet and returns the reply body. */
function harness(target: TestTarget) {
  const sent: string[] = [];
  let closed = false;
  const session = new GdbSession(
    {
      send: (b) => sent.push(Buffer.from(b).toString("latin1")),
      close: () => (closed = true),
    },
    { target, planner: planGdbRegisters },
  );
  const feed = (text: string | Uint8Array) => {
    session.receive(typeof text === "string" ? Buffer.from(text, "latin1") : text);
  };
  /** Sends a packet; returns the bodies of the packets sent back (acks dropped). */
  const ask = (body: string | Uint8Array): string[] => {
    sent.length = 0;
    feed(framePacket(body));
    return replies();
  };
  const replies = () =>
    sent
      .filter((s) => s.startsWith("$"))
      .map((s) => {
        const body = s.slice(1, -3);
        return body;
      });
  return { session, sent, feed, ask, replies, isClosed: () => closed };
}

const flush = () => new Promise((r) => setImmediate(r));

describe("RspDecoder", () => {
  it("finds packets, acks, naks and Ctrl-C in any split of the stream", () => {
    const stream = Buffer.concat([
      Buffer.from("+"),
      framePacket("qSupported:swbreak+"),
      Buffer.from("-\x03"),
      framePacket("g"),
    ]);
    for (let cut = 0; cut <= stream.length; cut++) {
      const d = new RspDecoder(64);
      const events = [...d.push(stream.subarray(0, cut)), ...d.push(stream.subarray(cut))];
      assert.deepEqual(
        events.map((e) => (e.kind === "packet" ? Buffer.from(e.data).toString() : e.kind)),
        ["ack", "qSupported:swbreak+", "nak", "interrupt", "g"],
      );
    }
  });

  it("reports a bad checksum and an overlong packet, then decodes the next packet", () => {
    const d = new RspDecoder(8);
    const events = d.push(Buffer.concat([Buffer.from("$g#00$123456789#dd"), framePacket("m0,1")]));
    assert.deepEqual(
      events.map((e) => e.kind),
      ["bad-checksum", "overflow", "packet"],
    );
  });

  it("never throws and never holds more than maxPacket bytes, whatever arrives", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const d = new RspDecoder(16);
        for (const e of d.push(bytes)) if (e.kind === "packet") assert.ok(e.data.length <= 16);
      }),
    );
  });
});

describe("GdbSession over two soft vCPUs", () => {
  let vm: Vm;
  let target: TestTarget;
  let h: ReturnType<typeof harness>;

  beforeEach(() => {
    vm = createSoftVm({ mode: "inline" });
    target = new TestTarget(vm);
    h = harness(target);
  });
  afterEach(() => {
    vm.close();
  });

  it("acks each packet until QStartNoAckMode, and retransmits on a NAK", () => {
    h.ask("qSupported:multiprocess+;swbreak+;hwbreak+");
    assert.equal(h.sent[0], "+");
    assert.match(h.replies()[0] ?? "", /^PacketSize=4000;qXfer:features:read\+;QStartNoAckMode\+/);
    const last = h.sent.at(-1);
    h.sent.length = 0;
    h.feed("-");
    assert.deepEqual(h.sent, [last]);
    assert.deepEqual(h.ask("QStartNoAckMode"), ["OK"]);
    h.ask("qAttached");
    assert.deepEqual(h.sent, ["$1#31"]);
  });

  it("answers a bad checksum with a NAK and unknown packets with the empty reply", () => {
    h.sent.length = 0;
    h.feed("$g#00");
    assert.deepEqual(h.sent, ["-"]);
    assert.deepEqual(h.ask("qWhatever"), [""]);
    assert.deepEqual(h.ask("!"), [""]);
  });

  it("serves a target description with every register the vCPU lists, in chunks", () => {
    let xml = "";
    for (let offset = 0; ; offset += 0x200) {
      const [r] = h.ask(`qXfer:features:read:target.xml:${offset.toString(16)},200`);
      assert.ok(r !== undefined && (r.startsWith("m") || r.startsWith("l")));
      xml += r.slice(1);
      if (r.startsWith("l")) break;
    }
    assert.match(xml, /<architecture>riscv:rv64<\/architecture>/);
    for (const f of ["cpu", "fpu", "csr"])
      assert.match(xml, new RegExp(`org\\.gnu\\.gdb\\.riscv\\.${f}`));
    assert.match(xml, /<reg name="sstatus" bitsize="64" type="int" regnum="321"/);
    assert.match(xml, /<reg name="pc" bitsize="64" type="code_ptr" regnum="32"/);
    const plan = planGdbRegisters(target.regList(1));
    const shown = new Set(plan.registers.flatMap((r) => ("id" in r.source ? [r.source.id] : [])));
    for (const id of target.regList(1)) assert.ok(shown.has(id), `register ${id} hidden`);
    assert.deepEqual(h.ask("qXfer:features:read:other.xml:0,10"), ["E00"]);
  });

  it("g reads x0..x31, pc, f0..f31, fflags, frm and fcsr in one batch; G writes them back", () => {
    target.vcpus[0]?.setOneReg(reg("core.pc"), 0x8020_0000n);
    target.vcpus[0]?.setOneReg(reg("core.sp"), 0x8000_8000n);
    const [g] = h.ask("g");
    assert.ok(g !== undefined);
    assert.equal(g.length, 2 * (33 * 8 + 32 * 8 + 3 * 4));
    assert.equal(g.slice(0, 16), "0000000000000000"); // zero
    assert.equal(g.slice(2 * 8 * 2, 2 * 8 * 3), "0080008000000000"); // sp, little-endian
    assert.equal(g.slice(2 * 8 * 32, 2 * 8 * 33), "0000208000000000"); // pc
    const edited = g.slice(0, 16 * 10) + "efbeadde00000000" + g.slice(16 * 11);
    assert.deepEqual(h.ask(`G${edited}`), ["OK"]);
    assert.equal(target.vcpus[0]?.getOneReg(reg("core.a0"))[0], 0xef);
    assert.deepEqual(h.ask(`G${edited.slice(2)}`), ["E22"]);
    assert.deepEqual(h.ask("Gzz"), ["E22"]);
  });

  it("p/P read and write single registers, including the fflags/frm fields of fcsr", () => {
    target.vcpus[0]?.setOneReg(reg("core.pc"), 0x1234n);
    assert.deepEqual(h.ask("p20"), ["3412000000000000"]);
    assert.deepEqual(h.ask("P43=02000000"), ["OK"]); // frm = 2 (regnum 67)
    assert.deepEqual(h.ask("P42=1f000000"), ["OK"]); // fflags = 0x1f (regnum 66)
    assert.deepEqual(h.ask("p44"), ["5f000000"]); // fcsr = frm << 5 | fflags
    assert.deepEqual(h.ask("p1000"), ["E45"]);
    assert.deepEqual(h.ask("P20=12"), ["E22"]);
    assert.deepEqual(h.ask("P0=0100000000000000"), ["OK"]); // x0 ignores writes
    assert.deepEqual(h.ask("p0"), ["0000000000000000"]);
  });

  it("m/M/X move guest memory, E14 where nothing is mapped, E22 when malformed", () => {
    assert.deepEqual(h.ask("M80000010,4:01020304"), ["OK"]);
    assert.deepEqual(h.ask("m80000010,4"), ["01020304"]);
    const payload = new Uint8Array([0x23, 0x24, 0x7d, 0x2a, 0x00]);
    const x = Buffer.concat([Buffer.from("X80000020,5:"), escapeBinary(payload)]);
    assert.deepEqual(h.ask(x), ["OK"]);
    assert.deepEqual(h.ask("m80000020,5"), ["2324 7d2a00".replace(" ", "")]);
    assert.deepEqual(h.ask("X80000000,0:"), ["OK"]);
    assert.deepEqual(h.ask("m10,4"), ["E14"]);
    assert.deepEqual(h.ask("M10,1:00"), ["E14"]);
    assert.deepEqual(h.ask("m80000000"), ["E22"]);
    assert.deepEqual(h.ask("M80000000,2:00"), ["E22"]);
    assert.deepEqual(h.ask("m80000000,100000"), ["E22"]);
  });

  it("breakpoints: inserted and removed by type, unsupported types empty, unmapped E14", () => {
    assert.deepEqual(h.ask("Z0,80000100,4"), ["OK"]);
    assert.deepEqual(h.ask("z0,80000100,4"), ["OK"]);
    assert.deepEqual(h.ask("Z2,80000100,8"), [""]);
    assert.deepEqual(h.ask("Z1,10,2"), ["E14"]);
    assert.deepEqual(h.ask("Z9,10,2"), [""]);
    assert.deepEqual(h.ask("Z0,zz,2"), ["E22"]);
    assert.deepEqual(target.breakpoints, ["+0@80000100/4", "-0@80000100/4"]);
  });

  it("threads: one per vCPU, selectable, with a description", () => {
    assert.deepEqual(h.ask("qfThreadInfo"), ["m1,2"]);
    assert.deepEqual(h.ask("qsThreadInfo"), ["l"]);
    assert.deepEqual(h.ask("Hg2"), ["OK"]);
    assert.deepEqual(h.ask("qC"), ["QC2"]);
    assert.deepEqual(h.ask("Hg3"), ["E02"]);
    assert.deepEqual(h.ask("T2"), ["OK"]);
    assert.deepEqual(h.ask("T5"), ["E01"]);
    assert.deepEqual(h.ask(`qThreadExtraInfo,2`), [Buffer.from("vCPU 1").toString("hex")]);
  });

  it("c runs until a stop; Ctrl-C interrupts; the T reply carries thread, pc and sp", async () => {
    target.vcpus[1]?.setOneReg(reg("core.pc"), 0x8020_0010n);
    h.ask("qSupported:swbreak+");
    assert.deepEqual(h.ask("c"), []);
    assert.equal(h.session.running, true);
    assert.deepEqual(h.ask("g"), []); // queued until the stop
    h.feed("\x03");
    await flush();
    assert.equal(target.interrupts, 1);
    const [stop, g] = h.replies();
    assert.equal(stop, "T02thread:2;20:1000208000000000;2:0000000000000000;");
    assert.equal(g?.length, 2 * 532);
  });

  it("s and vCont step the right threads; swbreak is reported when GDB asked for it", async () => {
    h.ask("qSupported:swbreak+");
    h.ask("Hc2");
    h.ask("s");
    assert.deepEqual(target.resumes.at(-1), { step: [2] });
    target.stop({ kind: "stopped", thread: 2, signal: 5, cause: { kind: "swbreak" } });
    await flush();
    assert.match(h.replies().at(-1) ?? "", /^T05thread:2;.*swbreak:;$/);
    assert.deepEqual(h.ask("vCont?"), ["vCont;c;C;s;S"]);
    h.ask("vCont;s:1;c");
    assert.deepEqual(target.resumes.at(-1), { step: [1] });
    target.stop({ kind: "stopped", thread: 1, signal: 5 });
    await flush();
    // Scheduler locking: only the threads named run; the others stay stopped.
    h.ask("vCont;c:2");
    assert.deepEqual(target.resumes.at(-1), { step: [], run: [2] });
    target.stop({ kind: "stopped", thread: 2, signal: 5 });
    await flush();
    h.ask("vCont;s:2;c:2;c:1");
    assert.deepEqual(target.resumes.at(-1), { step: [2], run: [2, 1] });
    target.stop({ kind: "stopped", thread: 2, signal: 5 });
    await flush();
    assert.deepEqual(h.ask("vCont;x"), ["E22"]);
  });

  it("W when the guest exits, then the connection closes", async () => {
    h.ask("c");
    target.stop({ kind: "exited", status: 3 });
    await flush();
    assert.deepEqual(h.replies(), ["W03"]);
    assert.equal(h.isClosed(), true);
  });

  it("D detaches with OK and closes; k kills without a reply", () => {
    assert.deepEqual(h.ask("D"), ["OK"]);
    assert.equal(target.detached, true);
    assert.equal(h.isClosed(), true);
    const k = harness(target);
    assert.deepEqual(k.ask("k"), []);
    assert.equal(target.killed, true);
    assert.equal(k.isClosed(), true);
  });

  it("survives any bytes a client sends, and still answers afterwards", () => {
    fc.assert(
      fc.property(fc.array(fc.string({ maxLength: 40 }), { maxLength: 8 }), (bodies) => {
        for (const b of bodies) {
          // Never resume from the fuzz (the scripted target would wait forever).
          if (/^[cCsSvDk]/.test(b)) continue;
          h.ask(b);
        }
        assert.deepEqual(h.ask("qAttached"), ["1"]);
      }),
      { numRuns: 200 },
    );
  });
});

/**
 * The machine's run loop on the soft backend with hand-assembled guests: several vCPUs (the
 * secondary started through SBI HSM), pause/resume/quit as the control socket drives them,
 * console backpressure (a stalled reader parks the guest, memory stays bounded) and a reader
 * that goes away (EPIPE → one-line ending, status 141).
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHook } from "node:async_hooks";
import { Writable } from "node:stream";
import { backendPicker } from "../../../src/cli/backends.js";
import { streamSink, type ConsoleSink } from "../../../src/vmm/machine/console-sink.js";
import type { ControlError } from "../../../src/vmm/api/control.js";
import type { Machine } from "../../../src/vmm/machine/machine.js";
import { runGuest, type RunRequest, type RunSummary } from "../../../src/vmm/runner.js";
import { ECALL, R, SPIN, addi, li, putchar, riscvElf, sbi, srst } from "../runner-guests.js";

const MiB = 1n << 20n;
/** SBI HSM extension id ("HSM", SBI spec ch. 9). */
const SBI_HSM = 0x48_534d;

/** auipc rd, 0. */
const auipcHere = (rd: number): number => ((rd << 7) | 0x17) >>> 0;

/** jal zero, offset (J-type, unprivileged spec §2.5). */
function jalBack(offset: number): number {
  const imm = offset & 0x1f_ffff;
  const bits =
    (((imm >> 20) & 1) << 31) |
    (((imm >> 1) & 0x3ff) << 21) |
    (((imm >> 11) & 1) << 20) |
    (((imm >> 12) & 0xff) << 12);
  return (bits | 0x6f) >>> 0;
}

/** Hart 0 starts hart 1 at `secondary` and spins; hart 1 prints "B" and shuts down with 7. */
function twoHartGuest(): Uint8Array {
  const secondary = [...putchar(0x42), ...srst(0, 7)];
  // a0 = hart 1, a1 = auipc + offset of `secondary`, a2 = opaque.
  const head = (offset: number): number[] => [
    ...li(R.a0, 1),
    auipcHere(R.a1),
    addi(R.a1, R.a1, offset),
    ...li(R.a2, 0),
    ...sbi(SBI_HSM, 0),
    SPIN,
  ];
  const probe = head(0);
  const auipcAt = probe.indexOf(auipcHere(R.a1));
  const offset = (probe.length - auipcAt) * 4;
  return riscvElf([...head(offset), ...secondary]);
}

/** putchar('x') forever. */
function printForever(): Uint8Array {
  const body = [addi(R.a0, R.zero, 0x78), ...li(R.a7, 1), ...li(R.a6, 0), ECALL];
  return riscvElf([...body, jalBack(-4 * body.length)]);
}

async function run(
  file: Uint8Array,
  extra: Partial<RunRequest> = {},
): Promise<RunSummary & { out: string }> {
  let out = "";
  using backends = backendPicker();
  const summary = await runGuest({
    file,
    backendFor: backends.backendFor,
    memSize: 16n * MiB,
    output: (bytes) => (out += new TextDecoder().decode(bytes)),
    collectRegisters: false,
    ...extra,
  });
  return { ...summary, out };
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe("Machine", () => {
  it("runs two vCPUs: the secondary starts stopped and comes up through SBI HSM", async () => {
    const s = await run(twoHartGuest(), { cpus: 2, timeoutMs: 20_000 });
    assert.equal(s.out, "B");
    assert.deepEqual([s.ending.reason, s.ending.status], ["shutdown", 7]);
    assert.equal(s.cpus, 2);
  });

  it("with one vCPU the same guest's hart_start fails and nothing is printed", async () => {
    const s = await run(twoHartGuest(), { cpus: 1, timeoutMs: 300 });
    assert.equal(s.out, "");
    assert.equal(s.ending.reason, "timeout");
  });

  it("pause parks every vCPU between exits, resume lets them run, quit ends the run", async () => {
    let machine: Machine | undefined;
    let before: number | undefined;
    const done = run(riscvElf([SPIN]), {
      cpus: 2,
      onMachine: (m) => {
        machine = m;
        before = m.status().startedAt;
      },
    });
    const asked = performance.timeOrigin + performance.now();
    await sleep(150);
    assert.ok(machine);
    assert.equal(before, undefined, "no startedAt before the machine runs");
    const status = machine.status();
    assert.equal(status.state, "running");
    // When it started, on the epoch clock other processes read too.
    const startedAt = status.startedAt ?? 0;
    assert.ok(startedAt >= asked && startedAt <= performance.timeOrigin + performance.now());
    await machine.pause();
    const paused = machine.status();
    assert.equal(paused.state, "paused");
    await sleep(150);
    assert.equal(machine.status().exits, paused.exits, "no exits while paused");
    await machine.resume();
    await sleep(250);
    assert.ok(machine.status().exits > paused.exits, "runs again after resume");
    await machine.quit();
    const s = await done;
    assert.deepEqual([s.ending.reason, s.ending.status], ["quit", 0]);
    assert.equal(machine.status().state, "stopped");
  });

  it("a stalled console reader parks the guest: output stays bounded by what drained", async () => {
    let written = 0;
    let drains = 0;
    let release: (() => void) | undefined;
    const sink: ConsoleSink = {
      write(bytes) {
        written += bytes.length;
        return false;
      },
      drained: () =>
        new Promise((resolve) => {
          release = () => {
            drains++;
            resolve();
          };
        }),
      onClosed: () => undefined,
    };
    let machine: Machine | undefined;
    const done = run(printForever(), {
      output: sink,
      onMachine: (m) => {
        machine = m;
      },
    });
    await sleep(300);
    assert.equal(written, 1, "one byte, then the guest waits for the reader");
    for (let i = 0; i < 5; i++) {
      release?.();
      await sleep(20);
    }
    assert.equal(written, 1 + drains, "one more byte per drain");
    await machine?.quit();
    release?.();
    const s = await done;
    assert.equal(s.ending.reason, "quit");
  });

  it("a console reader that goes away (EPIPE) ends the run with one line and status 141", async () => {
    const broken = new Writable({
      write(_chunk, _encoding, callback) {
        callback(Object.assign(new Error("write EPIPE"), { code: "EPIPE" }));
      },
    });
    const s = await run(printForever(), { output: streamSink(broken), timeoutMs: 10_000 });
    assert.deepEqual([s.ending.reason, s.ending.status], ["console-closed", 141]);
    assert.equal(s.ending.message, "the reader of the guest console went away (EPIPE)");
  });

  it("a console write failing with ENOSPC ends the run with status 74, not 141", async () => {
    const full = new Writable({
      write(_chunk, _enc, done) {
        done(
          Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" }),
        );
      },
    });
    const s = await run(printForever(), { output: streamSink(full), timeoutMs: 10_000 });
    assert.deepEqual([s.ending.reason, s.ending.status], ["console-closed", 74]);
    assert.match(s.ending.message, /^cannot write the guest console: ENOSPC/);
  });

  it("pause and resume before the machine runs are state conflicts (409), and it still runs", async () => {
    const refusals: unknown[] = [];
    const s = await run(riscvElf(srst(0, 0)), {
      onMachine: async (m) => {
        for (const op of [() => m.pause(), () => m.resume()]) {
          await op().catch((error: unknown) => refusals.push(error));
        }
      },
    });
    assert.equal(s.ending.reason, "shutdown");
    assert.deepEqual(
      refusals.map((e) => [(e as ControlError).httpStatus, (e as Error).message]),
      [
        [409, "Cannot pause the machine: it is starting"],
        [409, "Cannot resume the machine: it is starting"],
      ],
    );
  });

  it("serves an inline vCPU's back-to-back exits without a promise per exit", async () => {
    // A Linux 6.1 boot makes ~5 K SBI console exits: an `await` per exit (a promise and a
    // microtask turn) cost more than serving it. Promises now come only with an event-loop
    // turn, at most one per millisecond of exits.
    const count = 3000;
    const guest = riscvElf([
      ...Array.from({ length: count }, () => putchar(0x2e)).flat(),
      ...srst(0, 0),
    ]);
    let promises = 0;
    const hook = createHook({
      init(_id, type) {
        if (type === "PROMISE") promises++;
      },
    });
    hook.enable();
    let s: Awaited<ReturnType<typeof run>>;
    try {
      s = await run(guest, { timeoutMs: 20_000 });
    } finally {
      hook.disable();
    }
    assert.equal(s.out, ".".repeat(count));
    assert.ok(promises < count, `${promises} promises for ${count} exits`);
  });
});

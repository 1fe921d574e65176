/**
 * The gdbstub against QEMU 7.2's, on the same bare-metal guest in the same run
 * (guests/riscv/tests/build/spin.elf: prints a line, then spins in `main`):
 *
 * - gdb.stepi.ms: what one GDB `stepi` costs through the stub: `s` until its stop reply, then
 *   `g` (GDB re-reads the registers after every stop), from the spinning loop in `main`;
 * - gdb.regs.ms: one full register read, `g`.
 *
 * Both stubs are driven by the same tiny RSP client (no-ack mode, as GDB uses it), so the same
 * packets are timed: regvisor `run --gdb --gdb-wait` (soft backend) and
 * `qemu-system-riscv64 -M virt -bios default -S -gdb tcp:…` (TCG, OpenSBI). Each reaches `main`
 * through a software breakpoint (`Z0`) and `c` first. Figures are medians; the ratios are
 * regvisor over QEMU (target ≤ 1), timed after `WARMUP` untimed rounds on both. Skips visibly without the guest compiler, or QEMU for the
 * ratios.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { execFileSync } from "node:child_process";
import { connect, createServer, type Socket } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { REPO, buildGuests, hasCommand } from "../test/cli/run-file-helpers.js";
import { median } from "./stats.js";
import type { BenchGroup, Metric } from "./types.js";

const BIN = fileURLToPath(new URL("../src/cli/bin.js", import.meta.url));
const ELF = join(REPO, "guests", "riscv", "tests", "build", "spin.elf");
const STEPS = 400;
const READS = 400;
/**
 * Untimed `s`+`g` rounds before timing, the same for both stubs: a debugging session is long, and
 * its first few hundred packets time V8 compiling the stub's path rather than the path itself.
 */
const WARMUP = 500;

/** A minimal GDB remote protocol client: one packet in flight. */
class RspClient {
  #buffer = "";
  #waiter: ((packet: string) => void) | undefined;
  #noAck = false;

  private constructor(private readonly socket: Socket) {
    socket.on("data", (chunk: Buffer) => {
      this.#buffer += chunk.toString("latin1");
      this.#drain();
    });
  }

  static open(port: number): Promise<RspClient> {
    return new Promise((resolve, reject) => {
      const socket = connect(port, "127.0.0.1", () => {
        socket.setNoDelay(true);
        resolve(new RspClient(socket));
      });
      socket.once("error", reject);
    });
  }

  #drain(): void {
    for (;;) {
      this.#buffer = this.#buffer.replace(/^[+-]+/, "");
      const end = this.#buffer.indexOf("#");
      if (!this.#buffer.startsWith("$") || end < 0 || this.#buffer.length < end + 3) return;
      const body = this.#buffer.slice(1, end);
      this.#buffer = this.#buffer.slice(end + 3);
      if (!this.#noAck) this.socket.write("+");
      const waiter = this.#waiter;
      this.#waiter = undefined;
      waiter?.(body);
    }
  }

  /** Sends one packet and resolves to the reply's body. */
  request(body: string): Promise<string> {
    let sum = 0;
    for (const c of Buffer.from(body, "latin1")) sum = (sum + c) & 0xff;
    const reply = new Promise<string>((resolve) => (this.#waiter = resolve));
    this.socket.write(`$${body}#${sum.toString(16).padStart(2, "0")}`);
    return reply;
  }

  async startNoAck(): Promise<void> {
    await this.request("qSupported:swbreak+;hwbreak+");
    if ((await this.request("QStartNoAckMode")) === "OK") this.#noAck = true;
  }

  close(): void {
    this.socket.destroy();
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => {
        resolve(port);
      });
    });
    server.once("error", reject);
  });
}

async function connectRetrying(port: number): Promise<RspClient> {
  for (let i = 0; ; i++) {
    try {
      return await RspClient.open(port);
    } catch (error) {
      if (i > 100) throw error;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

interface Timings {
  readonly stepMs: number;
  readonly regsMs: number;
}

/** Reaches `main` through a Z0 breakpoint, then times `STEPS` × (s, g) and `READS` × g. */
async function measure(client: RspClient, main: bigint): Promise<Timings> {
  await client.startNoAck();
  await client.request("?");
  const at = main.toString(16);
  if ((await client.request(`Z0,${at},4`)) !== "OK") throw new Error("Z0 refused");
  const stop = await client.request("c");
  if (!stop.startsWith("T05")) throw new Error(`no breakpoint stop: ${stop}`);
  await client.request(`z0,${at},4`);
  for (let i = 0; i < WARMUP; i++) {
    await client.request("s");
    await client.request("g");
  }
  const steps: number[] = [];
  for (let i = 0; i < STEPS; i++) {
    const t0 = performance.now();
    const reply = await client.request("s");
    await client.request("g");
    steps.push(performance.now() - t0);
    if (!reply.startsWith("T05")) throw new Error(`no step stop: ${reply}`);
  }
  const reads: number[] = [];
  for (let i = 0; i < READS; i++) {
    const t0 = performance.now();
    await client.request("g");
    reads.push(performance.now() - t0);
  }
  return { stepMs: median(steps), regsMs: median(reads) };
}

async function withProcess<T>(child: ChildProcess, body: () => Promise<T>): Promise<T> {
  try {
    return await body();
  } finally {
    child.kill("SIGKILL");
  }
}

async function regvisorTimings(main: bigint): Promise<Timings> {
  const port = await freePort();
  const child = spawn(
    process.execPath,
    [BIN, "run", "--gdb", `127.0.0.1:${port}`, "--gdb-wait", "--timeout", "300", ELF],
    { stdio: "ignore" },
  );
  return measureStub(child, port, main);
}

/** Connects to the stub `child` serves on `port` and times it; the process ends after. */
function measureStub(child: ChildProcess, port: number, main: bigint): Promise<Timings> {
  return withProcess(child, async () => {
    const client = await connectRetrying(port);
    try {
      return await measure(client, main);
    } finally {
      client.close();
    }
  });
}

async function qemuTimings(main: bigint): Promise<Timings> {
  const port = await freePort();
  const child = spawn(
    "qemu-system-riscv64",
    ["-M", "virt", "-m", "128M", "-bios", "default", "-kernel", ELF, "-nographic", "-S"].concat([
      "-gdb",
      `tcp:127.0.0.1:${port}`,
      "-monitor",
      "none",
      "-serial",
      "null",
    ]),
    { stdio: "ignore" },
  );
  return measureStub(child, port, main);
}

/** The address of `symbol` in the ELF (`nm`). */
function symbol(name: string): bigint {
  const out = execFileSync("riscv64-unknown-elf-nm", [ELF], { encoding: "utf8" });
  const line = out.split("\n").find((l) => l.endsWith(` T ${name}`));
  if (line === undefined) throw new Error(`no symbol ${name} in ${ELF}`);
  return BigInt(`0x${line.split(" ")[0] ?? "0"}`);
}

/** The gdbstub benchmark group. */
export const gdbBench: BenchGroup = {
  name: "gdbstub",
  async run() {
    const skip = buildGuests("guests/riscv/tests", ["riscv64-unknown-elf-gcc"]);
    if (skip !== undefined) return { metrics: [], skip };
    const main = symbol("main");
    const ours = await regvisorTimings(main);
    const withQemu = hasCommand("qemu-system-riscv64");
    const theirs = withQemu ? await qemuTimings(main) : undefined;
    const metrics: Metric[] = [];
    const pair = (name: string, unit: string, our: number, qemu: number | undefined): void => {
      const vs = qemu === undefined ? "QEMU not installed" : `QEMU ${qemu.toFixed(3)} ms`;
      metrics.push({
        name,
        value: our,
        unit,
        target: "<= QEMU",
        detail: `regvisor soft ${our.toFixed(3)} ms, ${vs} (median after ${WARMUP} warm-up steps)`,
      });
      if (qemu !== undefined) {
        metrics.push({
          name: `${name.replace(/\.ms$/, "")}.over_qemu`,
          value: our / qemu,
          unit: "ratio",
          target: "<= 1.00",
          detail: `${our.toFixed(3)} / ${qemu.toFixed(3)} ms`,
        });
      }
    };
    pair("gdb.stepi.ms", "ms", ours.stepMs, theirs?.stepMs);
    pair("gdb.regs.ms", "ms", ours.regsMs, theirs?.regsMs);
    return withQemu
      ? { metrics }
      : { metrics, skip: "qemu-system-riscv64 not installed: no QEMU side" };
  },
};

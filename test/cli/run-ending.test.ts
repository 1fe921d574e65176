/**
 * How runs end from outside the guest (issue 12, points 7 and 9): SIGINT/SIGTERM stop `run FILE`
 * and `restore` with the promised final line and status 128 + signo, and `restore --timeout`
 * stops a restored guest that never exits (status 124), on the soft backend and on KVM.
 */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { lookupReg } from "../../src/abi/catalog.js";
import { kvmUnavailableReason } from "../../src/backends/kvm/index.js";
import { KVM_REGS } from "../../src/abi/kvm/layouts-x86.js";
import type { Vcpu } from "../../src/backends/vcpu.js";
import { quiesceVcpus } from "../../src/vmm/machine/state.js";
import { demoSnapshot } from "../vmm/snapshot/demo-run.js";
import { SPIN, putchar, riscvElf } from "../vmm/runner-guests.js";
import { lastLine } from "./run-file-helpers.js";

const BIN = fileURLToPath(new URL("../../src/cli/bin.js", import.meta.url));
const KVM_SKIP = kvmUnavailableReason() ?? false;
const dir = mkdtempSync(join(tmpdir(), "regvisor-ending-"));
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

interface Ended {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** utime, stime and guest_time of `pid` in clock ticks (proc(5): /proc/PID/stat 14, 15, 43). */
function cpuTimes(pid: number): [number, number, number] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" "); // fields 3.. of proc(5)
    return [Number(fields[11]), Number(fields[12]), Number(fields[40])];
  } catch {
    return undefined;
  }
}

/**
 * Whether `pid` is running guest code: guest time counts (VMX/SVM), or — where the hypervisor
 * accounts guest time as system time (kvm_pvm) — system time grows while user time (JavaScript)
 * stands still, over the samples given (oldest first).
 */
function spinsInGuest(samples: readonly [number, number, number][]): boolean {
  const first = samples[0];
  const last = samples[samples.length - 1];
  if (first === undefined || last === undefined || samples.length < 4) return false;
  if (last[2] > 0) return true;
  return last[0] === first[0] && last[1] - first[1] >= 3;
}

/** When to send the signal: once stdout contains a text, or once the guest spins in KVM_RUN. */
type Ready = { readonly stdout: string } | "in KVM_RUN" | "never";

/**
 * Spawns regvisor and sends `signal` when `ready` says the guest is running (the signal
 * listener is installed before the guest starts). Kills the child after 20 s so a run that
 * ignores the signal fails the test instead of hanging.
 */
function spawnAndSignal(
  argv: readonly string[],
  ready: Ready,
  signal?: NodeJS.Signals,
): Promise<Ended> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...argv], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    let sent = false;
    const send = (): void => {
      if (sent || signal === undefined) return;
      sent = true;
      child.kill(signal);
    };
    child.stdout.setEncoding("utf8");
    child.stderr.setEncoding("utf8");
    child.stdout.on("data", (t: string) => {
      stdout += t;
      if (typeof ready === "object" && stdout.includes(ready.stdout)) send();
    });
    child.stderr.on("data", (t: string) => (stderr += t));
    if (ready === "in KVM_RUN") {
      const samples: [number, number, number][] = [];
      const poll = setInterval(() => {
        const times = child.pid === undefined ? undefined : cpuTimes(child.pid);
        if (times !== undefined) samples.push(times);
        if (spinsInGuest(samples.slice(-4))) {
          clearInterval(poll);
          send();
        }
      }, 50);
      child.on("close", () => {
        clearInterval(poll);
      });
    }
    const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
    child.on("close", (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

/** A RISC-V guest that prints "go\n", then spins without exits. */
const SPINNER = join(dir, "spinner.elf");
writeFileSync(SPINNER, riscvElf([...putchar(0x67), ...putchar(0x6f), ...putchar(0x0a), SPIN]));

/**
 * A snapshot of a demo machine whose guest, once restored, spins forever: after `exits` exits the
 * machine is quiesced and a jump-to-self is written where it resumes.
 */
async function spinningSnapshot(
  backend: "kvm" | "soft",
  exits: number,
  pc: (vcpu: Vcpu) => bigint,
  spin: Uint8Array,
): Promise<string> {
  const { bytes } = await demoSnapshot(backend, exits, {
    inspect: async (m) => {
      await quiesceVcpus(m.vcpus);
      const [vcpu] = m.vcpus;
      assert.ok(vcpu);
      const at = pc(vcpu);
      const region = m.parts.vm.memory.find(
        (r) => at >= r.guestPhysAddr && at < r.guestPhysAddr + BigInt(r.size),
      );
      assert.ok(region, `RAM at 0x${at.toString(16)}`);
      region.view(Number(at - region.guestPhysAddr), spin.length).set(spin);
    },
  });
  const file = join(dir, `spin-${backend}.snap`);
  writeFileSync(file, bytes);
  return file;
}

const u64 = (b: Uint8Array, offset = 0): bigint =>
  new DataView(b.buffer, b.byteOffset + offset, 8).getBigUint64(0, true);

function softSpinSnapshot(): Promise<string> {
  const pcId = lookupReg("riscv", "core.pc").id;
  return spinningSnapshot(
    "soft",
    2,
    (v) => u64(v.getOneReg(pcId)),
    new Uint8Array([0x6f, 0, 0, 0]),
  ); // jal x0, 0
}

function kvmSpinSnapshot(): Promise<string> {
  const regsId = lookupReg("x86", "REGS").id;
  // jmp $ at RIP (struct kvm_regs.rip, src/abi/kvm/layouts-x86.ts)
  return spinningSnapshot(
    "kvm",
    70,
    (v) => u64(v.getOneReg(regsId), KVM_REGS.fields.rip.offset),
    new Uint8Array([0xeb, 0xfe]),
  );
}

describe("SIGINT and SIGTERM end a run with the final line", () => {
  for (const [signal, status] of [
    ["SIGINT", 130],
    ["SIGTERM", 143],
  ] as const) {
    it(`run FILE (soft, spinning): ${signal} → status ${status} and the final line`, async () => {
      const r = await spawnAndSignal(["run", SPINNER], { stdout: "go\n" }, signal);
      assert.equal(r.status, status, r.stderr);
      assert.equal(r.stdout, "go\n");
      assert.match(
        lastLine(r.stderr),
        new RegExp(
          `^regvisor: the run was stopped by ${signal} at pc=0x[0-9a-f]+ after \\d+ exits; exit status ${status}$`,
        ),
      );
    });
  }

  it(
    "restore (kvm, spinning in KVM_RUN): SIGINT → status 130 and the final line",
    { skip: KVM_SKIP },
    async () => {
      const r = await spawnAndSignal(["restore", await kvmSpinSnapshot()], "in KVM_RUN", "SIGINT");
      assert.equal(r.status, 130, r.stderr);
      assert.match(lastLine(r.stderr), /the run was stopped by SIGINT .*; exit status 130$/);
    },
  );
});

describe("restore --timeout", () => {
  it("stops a restored soft guest that never exits: status 124 and the final line", async () => {
    const r = await spawnAndSignal(
      ["restore", "--timeout", "0.5", await softSpinSnapshot()],
      "never",
      undefined,
    );
    assert.equal(r.status, 124, r.stderr);
    assert.match(
      lastLine(r.stderr),
      /still running after the --timeout of 0\.5 s .*; exit status 124$/,
    );
  });

  it(
    "stops a restored KVM guest spinning inside KVM_RUN: status 124",
    { skip: KVM_SKIP },
    async () => {
      const r = await spawnAndSignal(
        ["restore", "--timeout", "0.5", "--json", await kvmSpinSnapshot()],
        "never",
        undefined,
      );
      assert.equal(r.status, 124, r.stderr);
      const json = JSON.parse(r.stdout) as { reason: string; status: number; clean: boolean };
      assert.equal(json.reason, "timeout");
      assert.equal(json.status, 124);
      assert.equal(json.clean, false);
    },
  );

  it("refuses --timeout 0 and negative values like run does", async () => {
    for (const value of ["0", "-1"]) {
      const r = await spawnAndSignal(["restore", "--timeout", value, "x.snap"], "never");
      assert.equal(r.status, 2, r.stderr);
      assert.match(r.stderr, /^regvisor: --timeout: expected a number of seconds above 0/);
    }
  });
});

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { kvmUnavailableReason } from "../../../src/backends/kvm/index.js";
import type { Vm } from "../../../src/backends/vcpu.js";
import { backendPicker } from "../../../src/cli/backends.js";
import { apiRequest } from "../../../src/vmm/api/client.js";
import type { ImageArch } from "../../../src/vmm/image.js";
import type { MachineBackend, RunMode } from "../../../src/vmm/machine/backend.js";
import { warmUpTargets, type WarmUp } from "../../../src/vmm/migration/incoming.js";
import { buildGuests, REPO } from "../../cli/run-file-helpers.js";
import { assertContinued, start, tempDir } from "./procs.js";

/** Backends as `run --incoming` picks them, counting the VMs created and closed. */
function countingBackends(): {
  backendFor: (arch: ImageArch, mode: RunMode | undefined) => MachineBackend;
  vms: { created: number; closed: number };
} & Disposable {
  const pickers: Disposable[] = [];
  const vms = { created: 0, closed: 0 };
  return {
    vms,
    backendFor: (arch, mode) => {
      const picker = backendPicker(mode === undefined ? {} : { mode });
      pickers.push(picker);
      const backend = picker.backendFor(arch);
      return {
        ...backend,
        createVm: (): Vm => {
          const vm = backend.createVm();
          vms.created++;
          const close = vm.close.bind(vm);
          vm.close = () => {
            vms.closed++;
            close();
          };
          return vm;
        },
      };
    },
    [Symbol.dispose]() {
      for (const p of pickers) p[Symbol.dispose]();
    },
  };
}

function outcome(warmed: readonly WarmUp[], arch: ImageArch): WarmUp | undefined {
  return warmed.find((w) => w.arch === arch);
}

describe("warmUpTargets() (run --incoming, before the first byte)", () => {
  it("loads one soft RISC-V machine's captured state into another and closes both", async () => {
    using backends = countingBackends();
    const warmed = await warmUpTargets({
      backendFor: backends.backendFor,
      expect: { backend: "soft" },
    });
    const riscv = outcome(warmed, "riscv");
    assert.ok(
      riscv !== undefined && "ms" in riscv,
      `riscv was not warmed: ${JSON.stringify(riscv)}`,
    );
    assert.deepEqual(outcome(warmed, "x86"), { arch: "x86", skipped: "--backend soft" });
    assert.deepEqual(backends.vms, { created: 2, closed: 2 }, "a source, a target, both gone");
  });

  it("in threaded mode too", async () => {
    using backends = countingBackends();
    const warmed = await warmUpTargets({
      backendFor: backends.backendFor,
      mode: "threaded",
      expect: { backend: "soft" },
    });
    const riscv = outcome(warmed, "riscv");
    assert.ok(
      riscv !== undefined && "ms" in riscv,
      `riscv was not warmed: ${JSON.stringify(riscv)}`,
    );
    assert.deepEqual(backends.vms, { created: 2, closed: 2 });
  });

  const unusable = kvmUnavailableReason();
  it(
    "warms an x86 KVM machine the same way",
    { skip: unusable === undefined ? false : `/dev/kvm: ${unusable}` },
    async () => {
      using backends = countingBackends();
      const warmed = await warmUpTargets({
        backendFor: backends.backendFor,
        expect: { backend: "kvm" },
      });
      const x86 = outcome(warmed, "x86");
      assert.ok(x86 !== undefined && "ms" in x86, `x86 was not warmed: ${JSON.stringify(x86)}`);
      assert.deepEqual(backends.vms, { created: 2, closed: 2 });
    },
  );

  it("builds nothing once enough() says a stream came", async () => {
    using backends = countingBackends();
    let asked = 0;
    const warmed = await warmUpTargets({ backendFor: backends.backendFor }, () => ++asked > 0);
    assert.deepEqual(
      warmed.map((w) => ("skipped" in w ? w.skipped : "warmed")),
      warmed.map(() => "the stream came first"),
    );
    assert.equal(backends.vms.created, 0);
  });

  it("skips a backend that cannot run here, with its reason, and builds nothing", async () => {
    using backends = countingBackends();
    const warmed = await warmUpTargets({
      backendFor: (arch, mode) => ({
        ...backends.backendFor(arch, mode),
        check: () => {
          throw new Error("no such backend here");
        },
      }),
    });
    for (const w of warmed) assert.deepEqual(w, { arch: w.arch, skipped: "no such backend here" });
    assert.equal(backends.vms.created, 0);
  });
});

const skip = buildGuests("guests/riscv/migrate", ["riscv64-unknown-elf-gcc"]);
const ELF = join(REPO, "guests/riscv/migrate/build/dirty.elf");

describe("run --incoming warming up", { skip: skip ?? false }, () => {
  it("takes a source that connects as soon as it listens, before it says so", async (t) => {
    const dir = tempDir();
    const sock = join(dir, "m.sock");
    const api = join(dir, "api");
    const src = start(["run", "--mem", "32M", "--api", api, ELF]);
    await src.waitFor(/^tick 3 /m);
    const dst = start(["run", "--incoming", `unix:${sock}`]);
    try {
      // The socket exists from listen(2) on; the warm-up follows, then the line. The source
      // is asked in-process (no `ctl` to spawn), so it connects within milliseconds.
      while (!existsSync(sock)) await new Promise((r) => setTimeout(r, 2));
      const early = !dst.stderr.includes("waiting for a migration");
      const answer = await apiRequest(api, "PUT", "/migrate", { uri: `unix:${sock}` }, 60_000);
      const status = answer.body as { status: string; error?: string };
      assert.equal(status.status, "completed", status.error);
      assert.equal(await src.exited, 0, src.stderr);
      assert.equal(await dst.exited, 0, dst.stderr);
      assert.match(dst.stderr, /waiting for a migration[^]*the guest arrived/);
      assertContinued(src.stdout, dst.stdout);
      t.diagnostic(`asked before the destination's line: ${String(early)}`);
    } finally {
      src.child.kill();
      dst.child.kill();
    }
  });
});

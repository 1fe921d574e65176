/**
 * A closed or full stdout (issue 12, point 2): `| head -c 10` (EPIPE) and `>/dev/full` (ENOSPC)
 * stop the command at once with one line on stderr and the documented status (141 / 74), never
 * an "Unhandled 'error' event" stack trace, and a guest printing forever stops with its reader.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { STATUS_STDOUT_CLOSED, STATUS_STDOUT_FAILED } from "../../src/cli/output.js";
import { putchar, riscvElf } from "../vmm/runner-guests.js";

const BIN = fileURLToPath(new URL("../../src/cli/bin.js", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "regvisor-output-"));
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** `jal x0, -bytes`: jumps back over the previous `bytes` of code (RISC-V J-type). */
function jumpBack(bytes: number): number {
  const imm = -bytes & 0x1f_ffff;
  const bit = (n: number, at: number): number => ((imm >> n) & 1) << at;
  let field = bit(20, 31);
  for (let i = 1; i <= 10; i++) field |= bit(i, 20 + i);
  field |= bit(11, 20);
  for (let i = 12; i <= 19; i++) field |= bit(i, i);
  return (field | 0x6f) >>> 0;
}

// A guest that prints "A" forever: only its reader going away can end it.
const loopBody = putchar(0x41);
const LOOP = join(dir, "loop.elf");
writeFileSync(LOOP, riscvElf([...loopBody, jumpBack(4 * loopBody.length)]));
const SNAP = join(dir, "demo.snap");

/** The one stderr line of a stopped command. */
const STOPPED_LINE = /^regvisor: Stopped: cannot write to stdout, [^\n]+\n$/;
/** `run FILE`: the machine's console-closed ending, as the run's usual final line. */
const RUN_ENDED_LINE =
  /^regvisor: (the reader of the guest console went away|cannot write the guest console)[^\n]* at pc=0x[0-9a-f]+ after \d+ exits?; exit status \d+\n$/;

/** The command lines that print to stdout (issue 12's list). */
const COMMANDS: [string, () => string[], RegExp?][] = [
  ["run FILE (a guest printing forever)", () => ["run", LOOP], RUN_ENDED_LINE],
  ["run --dump-regs (demo)", () => ["run", "--backend", "soft", "--dump-regs"]],
  ["regs list", () => ["regs", "list", "x86"]],
  ["inspect --values", () => ["inspect", "--values", SNAP]],
];

interface Ended {
  readonly status: number | null;
  readonly stderr: string;
}

/** Runs regvisor with its stdout pipe closed by the reader before anything is written. */
function withClosedPipe(argv: readonly string[]): Promise<Ended> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...argv], { stdio: ["ignore", "pipe", "pipe"] });
    child.stdout.destroy(); // the reader goes away, as `head -c 10` does
    let stderr = "";
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (t: string) => (stderr += t));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`still running 20 s after its reader left: ${argv.join(" ")}`));
    }, 20_000);
    child.on("close", (status) => {
      clearTimeout(timer);
      resolve({ status, stderr });
    });
  });
}

/** Runs regvisor with stdout on /dev/full. */
function withFullDevice(argv: readonly string[]): Ended {
  const fd = openSync("/dev/full", "w");
  try {
    const r = spawnSync(process.execPath, [BIN, ...argv], {
      stdio: ["ignore", fd, "pipe"],
      encoding: "utf8",
      timeout: 20_000,
    });
    return { status: r.status, stderr: r.stderr };
  } finally {
    closeSync(fd);
  }
}

function assertStopped(r: Ended, status: number, errno: RegExp, line = STOPPED_LINE): void {
  assert.equal(r.status, status, r.stderr);
  assert.doesNotMatch(r.stderr, /Unhandled|\n\s+at /);
  // One line: the reason. (A run's own progress lines never come before it here.)
  assert.match(r.stderr, line);
  assert.match(r.stderr, errno);
  if (line !== STOPPED_LINE) assert.match(r.stderr, new RegExp(`exit status ${status}\n$`));
}

describe("a closed or full stdout stops the command cleanly", () => {
  before(() => {
    const r = spawnSync(
      process.execPath,
      [BIN, "run", "--backend", "soft", "--snapshot-at-exit", "2", "--snapshot-out", SNAP],
      { encoding: "utf8" },
    );
    assert.equal(r.status, 0, r.stderr);
  });

  for (const [what, argv, line] of COMMANDS) {
    it(`${what}: a closed pipe (EPIPE) ends it with status ${STATUS_STDOUT_CLOSED}`, async () => {
      assertStopped(await withClosedPipe(argv()), STATUS_STDOUT_CLOSED, /EPIPE/, line);
    });

    it(`${what}: /dev/full (ENOSPC) ends it with status ${STATUS_STDOUT_FAILED}`, () => {
      assertStopped(withFullDevice(argv()), STATUS_STDOUT_FAILED, /ENOSPC/, line);
    });
  }
});

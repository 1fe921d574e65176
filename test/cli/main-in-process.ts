/** Test helper: the CLI's `main()` run in this process, with stdout and stderr captured. */
import { main } from "../../src/cli/main.js";

/** Runs `regvisor argv…` in-process; resolves to its status and what it printed. */
export async function runMain(
  argv: string[],
): Promise<{ status: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = (chunk: string | Uint8Array): boolean => {
    stderr += typeof chunk === "string" ? chunk : new TextDecoder().decode(chunk);
    return true;
  };
  try {
    const status = await main(argv, { stdout: (t) => (stdout += t) });
    return { status, stdout, stderr };
  } finally {
    process.stderr.write = write;
  }
}

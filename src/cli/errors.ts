/** Errors the CLI reports as usage mistakes (exit status 2), and file errors in words. */
import { RegvisorError } from "../errors.js";

/** Bad command line: unknown command or flag, missing argument. */
export class UsageError extends RegvisorError {
  constructor(message: string) {
    super("USAGE", message);
  }
}

/** Words for the errno codes a file read fails with (ENOENT → "no such file"). */
const FILE_ERRORS: Readonly<Record<string, string>> = {
  ENOENT: "no such file",
  EISDIR: "it is a directory",
  EACCES: "permission denied",
  ENOTDIR: "a component of the path is not a directory",
  ELOOP: "too many levels of symbolic links",
  EMFILE: "too many open files",
};

/** Why a file could not be read, in words with the errno name: "no such file (ENOENT)". */
export function fileProblem(cause: unknown): string {
  const code = (cause as { code?: unknown } | null)?.code;
  if (typeof code === "string") {
    const words = Object.hasOwn(FILE_ERRORS, code) ? FILE_ERRORS[code] : undefined;
    return words === undefined ? code : `${words} (${code})`;
  }
  return cause instanceof Error ? cause.message : String(cause);
}

/** Errors the CLI reports as usage mistakes (exit status 2) rather than failures (1). */
import { RegvisorError } from "../errors.js";

/** Bad command line: unknown command or flag, missing argument. */
export class UsageError extends RegvisorError {
  constructor(message: string) {
    super("USAGE", message);
  }
}

/**
 * regvisor's error classes.
 *
 * Rule of thumb (see shared/STYLE.md): a caller's wrong type is a `TypeError`, a value out of
 * range is a `RangeError` thrown before any syscall, and everything the kernel or a backend
 * refuses — or a corrupt input stream — is a `RegvisorError` subclass with a stable `code`.
 * Every class has `toJSON()` so `--json` output and worker boundaries carry errors whole.
 */

/** Plain-data form of an error, as printed by `--json` and sent across worker boundaries. */
export interface ErrorJson {
  readonly name: string;
  readonly code: string;
  readonly message: string;
  readonly [key: string]: unknown;
}

/** Base class of every error regvisor throws on purpose; `code` is stable across releases. */
export class RegvisorError extends Error {
  /** Stable machine-readable code, e.g. `"REGID_SYNTAX"`. */
  readonly code: string;

  constructor(code: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }

  /** Plain-data form; subclasses add their own fields. */
  toJSON(): ErrorJson {
    const json: Record<string, unknown> = {
      name: this.name,
      code: this.code,
      message: this.message,
    };
    if (this.cause !== undefined) json.cause = errorToJson(this.cause);
    return json as ErrorJson;
  }
}

/** A register id (or name) given as text could not be parsed. */
export class RegIdSyntaxError extends RegvisorError {
  constructor(message: string) {
    super("REGID_SYNTAX", message);
  }
}

/** A register name or id is not in the catalog of the architecture it was looked up in. */
export class UnknownRegisterError extends RegvisorError {
  constructor(message: string) {
    super("UNKNOWN_REGISTER", message);
  }
}

/** Converts any thrown value to plain data for `--json` output. */
export function errorToJson(error: unknown): unknown {
  if (error instanceof RegvisorError) return error.toJSON();
  if (error instanceof Error) {
    const json: Record<string, unknown> = { name: error.name, message: error.message };
    const code = (error as { code?: unknown }).code;
    if (typeof code === "string") json.code = code;
    return json;
  }
  return { name: "Error", message: String(error) };
}

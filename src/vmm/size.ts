/**
 * Parsing of the `regvisor run` sizes and addresses: `--mem SIZE`, `--load-addr ADDR`,
 * `--entry ADDR`. Text from the command line is untrusted: every refusal is an
 * `OptionValueError` naming the option, the text and what would be accepted.
 */
import { RegvisorError } from "../errors.js";

/** A command-line value (size or address) could not be used. */
export class OptionValueError extends RegvisorError {
  /** The option the value was given for, e.g. `"--mem"`. */
  readonly option: string;

  constructor(option: string, message: string) {
    super("OPTION_VALUE", `${option}: ${message}`);
    this.option = option;
  }
}

/** 4 KiB: RAM sizes must be whole pages (KVM memslots are page-granular). */
export const PAGE_SIZE = 0x1000n;
/** Smallest `--mem`: 64 KiB, room for a real-mode guest and the x86 boot structures. */
export const MIN_MEM_SIZE = 0x1_0000n;
/**
 * Largest `--mem`: 64 GiB (KVM maps guest RAM MAP_NORESERVE, so only touched pages cost host
 * memory). The soft backend holds at most 4 GiB and refuses more (its runner's `check()`).
 */
export const MAX_MEM_SIZE = 64n << 30n;
/** `--mem` when none is given (issue 6): 128 MiB. */
export const DEFAULT_MEM_SIZE = 128n << 20n;

const SUFFIX_SHIFT: Readonly<Record<string, bigint>> = { "": 0n, k: 10n, m: 20n, g: 30n, t: 40n };

/**
 * Parses a RAM size: decimal or `0x` hex bytes, optionally with a binary suffix K, M, G or T
 * (any case, optionally followed by `B` or `iB`): `"128M"`, `"1G"`, `"65536"`, `"512KiB"`.
 * The result is a multiple of 4 KiB between `MIN_MEM_SIZE` and `MAX_MEM_SIZE`.
 * @throws OptionValueError for text that is not a size or a size out of those bounds.
 */
export function parseMemSize(text: string, option = "--mem"): bigint {
  const match = /^(0x[0-9a-f]+(?:_[0-9a-f]+)*|[0-9]+(?:_[0-9]+)*)([kmgt]?)(?:i?b)?$/i.exec(
    text.trim(),
  );
  const digits = match?.[1];
  if (digits === undefined) {
    throw new OptionValueError(
      option,
      `expected a size such as 128M, 1G or 65536, got ${JSON.stringify(text)}`,
    );
  }
  const suffix = (match?.[2] ?? "").toLowerCase();
  const size = BigInt(digits.replaceAll("_", "")) << (SUFFIX_SHIFT[suffix] ?? 0n);
  if (size < MIN_MEM_SIZE || size > MAX_MEM_SIZE) {
    throw new OptionValueError(
      option,
      `${formatSize(size)} is out of range; guest RAM must be between ${formatSize(MIN_MEM_SIZE)} and ${formatSize(MAX_MEM_SIZE)}`,
    );
  }
  if (size % PAGE_SIZE !== 0n) {
    throw new OptionValueError(option, `${size} bytes is not a multiple of 4 KiB`);
  }
  return size;
}

/**
 * Parses a guest-physical address: `0x` hex or decimal, `_` separators allowed, 0..2^64-1.
 * @throws OptionValueError for text that is not such a number.
 */
export function parseAddress(text: string, option: string): bigint {
  const t = text.trim();
  const ok = /^(0x[0-9a-f]+(_[0-9a-f]+)*|[0-9]+(_[0-9]+)*)$/i.test(t);
  if (!ok) {
    throw new OptionValueError(
      option,
      `expected an address such as 0x80200000 or 4096, got ${JSON.stringify(text)}`,
    );
  }
  const value = BigInt(t.replaceAll("_", ""));
  if (value >= 1n << 64n) {
    throw new OptionValueError(option, `${t} does not fit in 64 bits`);
  }
  return value;
}

/** A size for messages: the largest exact binary unit, e.g. `"128 MiB"`, `"4097 bytes"`. */
export function formatSize(bytes: bigint): string {
  for (const [unit, shift] of [
    ["TiB", 40n],
    ["GiB", 30n],
    ["MiB", 20n],
    ["KiB", 10n],
  ] as const) {
    if (bytes >= 1n << shift && bytes % (1n << shift) === 0n) return `${bytes >> shift} ${unit}`;
  }
  return `${bytes} bytes`;
}

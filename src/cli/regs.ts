/**
 * `regvisor regs decode|encode|list`: the register catalogs from the command line.
 *
 * decode: any 64-bit id → arch, size, name, class, structured fields ("unknown" when the id fits
 * no namespace — never guessed). encode: arch + name (or generic name) → id. list: a catalog.
 */
import type { RegInfo } from "../abi/arch/types.js";
import { regFieldSpecs, type RegFieldSpec } from "../abi/fields.js";
import { CATALOG_ARCHES, catalogFor, decodeReg, lookupReg, type Decoded } from "../abi/catalog.js";
import { ARCH_NAMES, formatRegId, parseRegId, type ArchName, type RegId } from "../abi/regid.js";
import { RegIdSyntaxError, UnknownRegisterError } from "../errors.js";
import { UsageError } from "./errors.js";
import { parseCommandLine } from "./options.js";
import { formatTable } from "./table.js";

/** Output sink, so tests and the main program share one code path. */
export interface Out {
  stdout(text: string): void;
}

const REGS_HELP = `Usage:
  regvisor regs decode <id>... [--json]          decode register ids (hex 0x… or decimal)
  regvisor regs encode <arch> <name>... [--json]  the id of a register name
  regvisor regs list <arch> [--class C] [--json]  list an arch's catalog
Arches: ${CATALOG_ARCHES.join(", ")} (also aarch64, x86_64, riscv64); any case.
Exit status: 0 ok, 2 bad command line (an id that is not a number, an unknown arch, name or
class).
`;

/** Other spellings of arch names (uname -m, GNU triplets) → the KVM namespace name. */
const ARCH_ALIASES: Readonly<Record<string, ArchName>> = {
  aarch64: "arm64",
  x86_64: "x86",
  "x86-64": "x86",
  amd64: "x86",
  riscv64: "riscv",
  loongarch64: "loongarch",
};

/** JSON form of one decoded id (`regs decode --json`). */
export function decodedToJson(d: Decoded): Record<string, unknown> {
  if (!d.known) {
    return {
      id: formatRegId(d.id),
      arch: d.arch ?? null,
      archCode: d.archCode,
      size: d.size,
      known: false,
      name: null,
      class: null,
      fields: {},
    };
  }
  return infoToJson(d);
}

function infoToJson(info: RegInfo): Record<string, unknown> {
  return {
    id: formatRegId(info.id),
    arch: info.arch,
    size: info.size,
    known: true,
    named: info.named,
    name: info.name,
    class: info.class,
    readOnly: info.readOnly,
    ...(info.pseudo === true ? { pseudo: true } : {}),
    fields: info.fields,
  };
}

function fieldsText(fields: Readonly<Record<string, unknown>>): string {
  // MSR numbers read best in hex (as in the SDM); every other structured field in decimal.
  const show = (k: string, v: unknown): string =>
    typeof v === "number" && k === "msr" ? "0x" + v.toString(16) : String(v);
  return Object.entries(fields)
    .filter(([, v]) => v !== "")
    .map(([k, v]) => `${k}=${show(k, v)}`)
    .join(" ");
}

function infoRow(d: Decoded): string[] {
  if (!d.known) {
    const arch = d.arch ?? `0x${d.archCode.toString(16).padStart(2, "0")}`;
    return [formatRegId(d.id), arch, String(d.size), "unknown", "-", ""];
  }
  const flags = [d.readOnly ? "ro" : "", d.pseudo === true ? "pseudo" : ""].filter(Boolean);
  const name = flags.length > 0 ? `${d.name} (${flags.join(",")})` : d.name;
  return [formatRegId(d.id), d.arch, String(d.size), name, d.class, fieldsText(d.fields)];
}

const HEADER = ["ID", "ARCH", "SIZE", "NAME", "CLASS", "FIELDS"];

function parseArch(text: string | undefined): ArchName {
  if (text === undefined)
    throw new UsageError(`missing <arch>; one of ${CATALOG_ARCHES.join(", ")}`);
  const lower = text.toLowerCase();
  const arch = Object.hasOwn(ARCH_ALIASES, lower)
    ? ARCH_ALIASES[lower]
    : ARCH_NAMES.find((a) => a === lower);
  if (arch === undefined || catalogFor(arch) === undefined) {
    throw new UsageError(`unknown arch "${text}"; one of ${CATALOG_ARCHES.join(", ")}`);
  }
  return arch;
}

/** Table entries past the first, folded into one note per array (CPUID has 256 entries). */
interface FieldLayout {
  readonly fields: readonly RegFieldSpec[];
  readonly repeats: readonly { name: string; count: number; stride: number }[];
}

const ARRAY_ENTRY = /^(\w+)\[(\d+)\]\./;

function fieldLayout(specs: readonly RegFieldSpec[]): FieldLayout {
  const repeats = new Map<string, { name: string; count: number; first: number; stride: number }>();
  const fields = specs.filter((f) => {
    const m = ARRAY_ENTRY.exec(f.name);
    if (m?.[1] === undefined) return !f.reserved;
    const index = Number(m[2]);
    const r = repeats.get(m[1]) ?? { name: m[1], count: 0, first: f.offset, stride: 0 };
    repeats.set(m[1], r);
    if (index === 1 && r.stride === 0) r.stride = f.offset - r.first;
    r.count = Math.max(r.count, index + 1);
    return index === 0 && !RESERVED_LEAF.test(f.name);
  });
  return {
    fields,
    repeats: [...repeats.values()].map(({ name, count, stride }) => ({ name, count, stride })),
  };
}

const RESERVED_LEAF = /\.(pad\w*|padding|reserved)(\[\d+\])?$/;

function fieldLayoutText(d: Decoded, layout: FieldLayout): string {
  if (!d.known) return "";
  const struct = d.fields.structSize;
  const rows = layout.fields.map((f) => [
    f.name,
    f.gdbName ?? "",
    "0x" + f.offset.toString(16),
    String(f.size),
    f.lsb === undefined ? String(f.bits) : `${f.bits} (bits ${f.lsb}..${f.lsb + f.bits - 1})`,
    f.derived === true ? "derived" : f.format,
  ]);
  const notes = layout.repeats.map(
    (r) =>
      `${r.name}[1] … ${r.name}[${r.count - 1}]: the same fields every ${r.stride} bytes (entries past the count field are unused)`,
  );
  return (
    `\n${d.name} (${formatRegId(d.id)}): fields of the ${String(struct)}-byte struct in a ${d.size}-byte value; reserved bytes not shown\n` +
    formatTable(["FIELD", "GDB", "OFFSET", "SIZE", "BITS", "FORMAT"], rows) +
    notes.map((n) => n + "\n").join("")
  );
}

/** An id typed on the command line; a malformed one is a command-line mistake (status 2). */
function parseIdArg(text: string): RegId {
  try {
    return parseRegId(text);
  } catch (error) {
    if (error instanceof RegIdSyntaxError || error instanceof RangeError)
      throw new UsageError(error.message);
    throw error;
  }
}

function decodeCmd(args: string[], json: boolean, out: Out): void {
  if (args.length === 0) throw new UsageError("regs decode needs at least one id");
  const decoded = args.map((a) => decodeReg(parseIdArg(a)));
  const layouts = decoded.map((d) => {
    const specs = regFieldSpecs(d.id);
    return specs === undefined ? undefined : fieldLayout(specs);
  });
  if (json) {
    const items = decoded.map((d, i) => {
      const layout = layouts[i];
      return layout === undefined
        ? decodedToJson(d)
        : { ...decodedToJson(d), structFields: layout };
    });
    out.stdout(JSON.stringify(items, null, 2) + "\n");
    return;
  }
  out.stdout(formatTable(HEADER, decoded.map(infoRow)));
  decoded.forEach((d, i) => {
    const layout = layouts[i];
    if (layout !== undefined) out.stdout(fieldLayoutText(d, layout));
  });
}

function encodeCmd(args: string[], json: boolean, out: Out): void {
  const arch = parseArch(args[0]);
  const names = args.slice(1);
  if (names.length === 0) throw new UsageError("regs encode needs <arch> and at least one name");
  const infos = names.map((n) => {
    try {
      return lookupReg(arch, n);
    } catch (error) {
      // A name typed on the command line that names nothing: a command-line mistake.
      if (error instanceof UnknownRegisterError) throw new UsageError(error.message);
      throw error;
    }
  });
  if (json) out.stdout(JSON.stringify(infos.map(infoToJson), null, 2) + "\n");
  else
    out.stdout(
      formatTable(
        HEADER,
        infos.map((i) => infoRow({ ...i, known: true })),
      ),
    );
}

function listCmd(args: string[], cls: string | undefined, json: boolean, out: Out): void {
  if (args.length > 1) throw new UsageError(`regs list takes one <arch>, got ${args.length}`);
  const arch = parseArch(args[0]);
  const catalog = catalogFor(arch);
  if (catalog === undefined) throw new UsageError(`no catalog for ${arch}`);
  const wanted =
    cls === undefined
      ? undefined
      : catalog.classes.find((c) => c.toLowerCase() === cls.toLowerCase());
  if (cls !== undefined && wanted === undefined) {
    throw new UsageError(
      `unknown class "${cls}" for ${arch}; one of ${catalog.classes.join(", ")}`,
    );
  }
  const entries = catalog.entries.filter((e) => wanted === undefined || e.class === wanted);
  if (json) out.stdout(JSON.stringify(entries.map(infoToJson), null, 2) + "\n");
  else
    out.stdout(
      formatTable(
        HEADER,
        entries.map((e) => infoRow({ ...e, known: true })),
      ),
    );
}

const REGS_OPTIONS = {
  json: { type: "boolean" },
  class: { type: "string" },
} as const;

/**
 * Runs `regvisor regs …`.
 * @throws {UsageError} on a bad command line; catalog/codec errors pass through.
 */
export function regsCommand(argv: string[], out: Out): void {
  const parsed = parseCommandLine("regs", argv, REGS_OPTIONS, REGS_HELP, out);
  if (parsed === undefined) return;
  const { positionals } = parsed;
  const values = { json: parsed.values.json === true, class: parsed.values.class };
  const [sub, ...rest] = positionals;
  if (sub === undefined) {
    out.stdout(REGS_HELP);
    throw new UsageError("regs needs a subcommand: decode, encode or list");
  }
  if (values.class !== undefined && sub !== "list") {
    throw new UsageError("--class only applies to regs list");
  }
  switch (sub) {
    case "decode":
      decodeCmd(rest, values.json, out);
      return;
    case "encode":
      encodeCmd(rest, values.json, out);
      return;
    case "list":
      listCmd(rest, values.class, values.json, out);
      return;
    default:
      throw new UsageError(`unknown regs subcommand "${sub}"; one of decode, encode, list`);
  }
}

/**
 * The back-channel of a migration: what the destination answers on the stream's own connection,
 * and the source's go-ahead. It makes the switchover a two-step commit so the guest never runs
 * in two places:
 *
 * 1. destination → source, at any time: `{"reply":"error","error":"one line"}\n`, then it closes
 *    (it rejected the stream; the source resumes the guest);
 * 1a. destination → source, when the stream header asks for it (stream.ts
 *    `HEADER_FLAG_ROUND_ACKS`), after each ROUND frame once every page before it is stored:
 *    `{"reply":"round","round":N,"switchover":true,"stateFirst":true}\n` (the source pauses the
 *    guest only once it has caught up; `switchover`, from stream 1.2: this destination reads
 *    the last pages natively, write them so; `stateFirst`, from 1.3: send SWITCHOVER with the
 *    vCPU and device state before the last pages, stream.ts);
 * 2. destination → source, after END was decoded, every check passed and the whole state is
 *    loaded into the (not yet running) destination machine: `{"reply":"ready"}\n`, since stream
 *    1.3 with the destination's switchover timeline, `{"reply":"ready","phases":{"state":0.3,…},
 *    "cpuMs":1.9}` (milliseconds per stage from SWITCHOVER on, and its process's CPU time over
 *    them: diagnostics, which a source that does not know them ignores, `DESTINATION_PHASES`);
 * 3. source → destination, after `ready`: the 3 bytes `GO\n`. The source stops for good once they
 *    are flushed to its socket; the destination runs the guest only once it has read them, and
 *    discards everything when the connection ends without them.
 *
 * Replies are JSON lines of at most `MAX_REPLY_BYTES`; anything else is a protocol error.
 */
import { MigrationError } from "./transport.js";

/** What the destination says. */
export type Reply =
  | {
      readonly reply: "ready";
      /** Milliseconds per stage of the destination's switchover, in order (`DESTINATION_PHASES`). */
      readonly phases?: Readonly<Record<string, number>>;
      /** CPU time of the destination's process over those stages, ms. */
      readonly cpuMs?: number;
    }
  | {
      readonly reply: "round";
      readonly round: number;
      readonly switchover?: boolean;
      /** 1.3: send the vCPU and device state right after SWITCHOVER, before the last pages. */
      readonly stateFirst?: boolean;
    }
  | { readonly reply: "error"; readonly error: string };

/** Longest reply line accepted. */
export const MAX_REPLY_BYTES = 4096;

/**
 * The stages a destination times between the source's SWITCHOVER frame and its `ready`, in the
 * order a 1.3 stream runs them (1.2 receives the pages before the state): `state` the VCPU_STATE
 * and DEVICE frames arriving and decoded, `vcpus` checking and applying the registers (with the
 * machine-level checks), `pages` the last PAGES frames and END arriving and stored, `devices`
 * checking and applying the devices' state.
 */
export const DESTINATION_PHASES = ["state", "vcpus", "pages", "devices"] as const;

/** Most entries a `ready` reply's `phases` may have (a later version may time more stages). */
const MAX_PHASES = 16;

/** The source's go-ahead. */
export const GO = new TextEncoder().encode("GO\n");

/** One reply as bytes. */
export function encodeReply(reply: Reply): Uint8Array {
  const line = JSON.stringify(
    reply.reply === "error" ? { reply: "error", error: reply.error.slice(0, 1000) } : reply,
  );
  return new TextEncoder().encode(line + "\n");
}

/** Splits incoming bytes into replies (bounded). */
export class ReplyDecoder {
  #text = "";

  /**
   * Consumes `bytes`; returns every complete reply.
   * @throws MigrationError (stage "protocol") on an over-long or malformed line.
   */
  push(bytes: Uint8Array): Reply[] {
    this.#text += new TextDecoder().decode(bytes);
    const out: Reply[] = [];
    for (;;) {
      const nl = this.#text.indexOf("\n");
      if (nl < 0) break;
      out.push(parseReply(this.#text.slice(0, nl)));
      this.#text = this.#text.slice(nl + 1);
    }
    if (this.#text.length > MAX_REPLY_BYTES) {
      throw new MigrationError(
        "protocol",
        `the destination sent a reply over ${MAX_REPLY_BYTES} bytes`,
      );
    }
    return out;
  }
}

function parseReply(line: string): Reply {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    throw new MigrationError("protocol", "the destination sent a reply that is not JSON");
  }
  if (typeof value === "object" && value !== null) {
    const v = value as {
      reply?: unknown;
      error?: unknown;
      round?: unknown;
      switchover?: unknown;
      stateFirst?: unknown;
    };
    if (v.reply === "ready") return parseReady(value as Record<string, unknown>);
    if (v.reply === "round" && Number.isSafeInteger(v.round) && (v.round as number) >= 0) {
      return {
        reply: "round",
        round: v.round as number,
        ...(v.switchover === true ? { switchover: true } : {}),
        ...(v.stateFirst === true ? { stateFirst: true } : {}),
      };
    }
    if (v.reply === "error" && typeof v.error === "string") {
      return { reply: "error", error: v.error.split("\n")[0] ?? "" };
    }
  }
  throw new MigrationError("protocol", "the destination sent an unknown reply");
}

/** A finite number of milliseconds (0 up to a day). */
function isMs(v: unknown): v is number {
  return typeof v === "number" && Number.isFinite(v) && v >= 0 && v <= 86_400_000;
}

/** A `ready` reply; its timeline, when present, must be an object of short names to ms. */
function parseReady(v: Record<string, unknown>): Reply {
  const { phases, cpuMs } = v;
  const malformed = (): MigrationError =>
    new MigrationError("protocol", "the destination sent a ready reply with a malformed timeline");
  if (cpuMs !== undefined && !isMs(cpuMs)) throw malformed();
  if (phases === undefined) return { reply: "ready", ...(cpuMs === undefined ? {} : { cpuMs }) };
  if (typeof phases !== "object" || phases === null || Array.isArray(phases)) throw malformed();
  const entries = Object.entries(phases);
  const timed: Record<string, number> = {};
  if (entries.length > MAX_PHASES) throw malformed();
  for (const [name, ms] of entries) {
    if (!/^[a-z][a-z0-9]{0,15}$/.test(name) || !isMs(ms)) throw malformed();
    timed[name] = ms;
  }
  return {
    reply: "ready",
    phases: timed,
    ...(cpuMs === undefined ? {} : { cpuMs }),
  };
}

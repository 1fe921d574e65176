/**
 * GDB Remote Serial Protocol framing (GDB manual, "Overview" and "Packet Acknowledgment").
 *
 *   packet      `$` data `#` cc       cc = two hex digits, the sum of the data bytes mod 256
 *   ack / nak   `+` / `-`            sent after each packet until QStartNoAckMode is agreed
 *   interrupt   0x03 outside a packet (GDB's Ctrl-C)
 *   escape      `}` then byte ^ 0x20, for `#`, `$`, `}` and `*` inside binary data (X packets,
 *               qXfer replies); the checksum covers the escaped bytes as sent
 *
 * Replies may be run-length encoded; GDB never sends run-length encoded packets, and this stub
 * never sends any, so `*` needs no special case on input beyond being escaped in binary data.
 *
 * The decoder is fed whatever bytes arrive, in any split, and never holds more than
 * `maxPacket` data bytes: a longer packet is skipped to its checksum and reported as
 * "overflow" so the session can answer it with an error and stay in sync. Bytes outside a
 * packet other than `+`, `-` and 0x03 are ignored (GDB's own rule for noise on a line).
 */

/** What the decoder found in the byte stream. */
export type RspEvent =
  | { readonly kind: "packet"; readonly data: Uint8Array }
  | { readonly kind: "bad-checksum" }
  | { readonly kind: "overflow" }
  | { readonly kind: "ack" }
  | { readonly kind: "nak" }
  | { readonly kind: "interrupt" };

const DOLLAR = 0x24;
const HASH = 0x23;
const ESCAPE = 0x7d;
const STAR = 0x2a;

type State = "idle" | "data" | "sum1" | "sum2";

/** Incremental RSP decoder (module header). */
export class RspDecoder {
  #state: State = "idle";
  #buf: Uint8Array;
  #len = 0;
  #sum = 0;
  #overflow = false;
  #check = 0;

  constructor(readonly maxPacket: number) {
    if (!Number.isInteger(maxPacket) || maxPacket < 1) {
      throw new RangeError(`maxPacket must be a positive integer, got ${maxPacket}`);
    }
    this.#buf = new Uint8Array(maxPacket);
  }

  /** Consumes `bytes`; returns the events they complete, in order. */
  push(bytes: Uint8Array): RspEvent[] {
    const events: RspEvent[] = [];
    for (const byte of bytes) {
      const event = this.#byte(byte);
      if (event !== undefined) events.push(event);
    }
    return events;
  }

  #byte(b: number): RspEvent | undefined {
    switch (this.#state) {
      case "idle":
        if (b === DOLLAR) this.#start();
        else if (b === 0x2b) return { kind: "ack" };
        else if (b === 0x2d) return { kind: "nak" };
        else if (b === 0x03) return { kind: "interrupt" };
        return undefined;
      case "data":
        if (b === HASH) this.#state = "sum1";
        else if (b === DOLLAR)
          this.#start(); // a lost '#': GDB restarted the packet
        else {
          this.#sum = (this.#sum + b) & 0xff;
          if (this.#len < this.maxPacket) this.#buf[this.#len++] = b;
          else this.#overflow = true;
        }
        return undefined;
      case "sum1":
        this.#check = hexDigit(b) << 4;
        this.#state = hexDigit(b) < 0 ? "idle" : "sum2";
        return this.#state === "idle" ? { kind: "bad-checksum" } : undefined;
      case "sum2": {
        this.#state = "idle";
        const low = hexDigit(b);
        if (low < 0 || (this.#check | low) !== this.#sum) return { kind: "bad-checksum" };
        if (this.#overflow) return { kind: "overflow" };
        return { kind: "packet", data: this.#buf.slice(0, this.#len) };
      }
    }
  }

  #start(): void {
    this.#state = "data";
    this.#len = 0;
    this.#sum = 0;
    this.#overflow = false;
  }
}

function hexDigit(b: number): number {
  if (b >= 0x30 && b <= 0x39) return b - 0x30;
  if (b >= 0x61 && b <= 0x66) return b - 0x57;
  if (b >= 0x41 && b <= 0x46) return b - 0x37;
  return -1;
}

/** Frames `data` (already escaped where binary) as `$data#cc`. */
export function framePacket(data: Uint8Array | string): Uint8Array {
  const body = typeof data === "string" ? Buffer.from(data, "latin1") : data;
  let sum = 0;
  for (const b of body) sum = (sum + b) & 0xff;
  const out = new Uint8Array(body.length + 4);
  out[0] = DOLLAR;
  out.set(body, 1);
  out[body.length + 1] = HASH;
  out[body.length + 2] = HEX_DIGITS[sum >> 4] ?? 0;
  out[body.length + 3] = HEX_DIGITS[sum & 15] ?? 0;
  return out;
}

/** ASCII of the lowercase hex digits, by value. */
const HEX_DIGITS = Uint8Array.from("0123456789abcdef", (c) => c.charCodeAt(0));

/**
 * Writes `length` bytes of `bytes` from `from` as lowercase hex ASCII into `out` at `at`
 * (GDB's memory-order register encoding); returns the index after the last digit written.
 */
export function hexInto(
  out: Uint8Array,
  at: number,
  bytes: Uint8Array,
  from: number,
  length: number,
): number {
  let j = at;
  for (let i = from; i < from + length; i++) {
    const b = bytes[i] ?? 0;
    out[j++] = HEX_DIGITS[b >> 4] ?? 0;
    out[j++] = HEX_DIGITS[b & 15] ?? 0;
  }
  return j;
}

/** Escapes binary data for a packet body (`#`, `$`, `}`, `*` → `}` + byte ^ 0x20). */
export function escapeBinary(data: Uint8Array): Uint8Array {
  let extra = 0;
  for (const b of data) if (needsEscape(b)) extra++;
  if (extra === 0) return data;
  const out = new Uint8Array(data.length + extra);
  let j = 0;
  for (const b of data) {
    if (needsEscape(b)) {
      out[j++] = ESCAPE;
      out[j++] = b ^ 0x20;
    } else out[j++] = b;
  }
  return out;
}

/**
 * Undoes `escapeBinary`.
 * @throws RangeError when the data ends in the middle of an escape.
 */
export function unescapeBinary(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(data.length);
  let j = 0;
  for (let i = 0; i < data.length; i++) {
    const b = data[i] ?? 0;
    if (b === ESCAPE) {
      if (i + 1 >= data.length) throw new RangeError("binary data ends inside an escape");
      out[j++] = (data[++i] ?? 0) ^ 0x20;
    } else out[j++] = b;
  }
  return out.slice(0, j);
}

function needsEscape(b: number): boolean {
  return b === HASH || b === DOLLAR || b === ESCAPE || b === STAR;
}

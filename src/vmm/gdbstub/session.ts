/**
 * One debugger connection: GDB Remote Serial Protocol packets in, replies out, calls on a
 * `DebugTarget`. All-stop mode: while the guest runs only Ctrl-C (0x03) is acted on at once;
 * anything else GDB sends then is answered after the stop.
 *
 * Packets (GDB manual, "Packets", "General Query Packets", "Stop Reply Packets"):
 *   qSupported  QStartNoAckMode  qXfer:features:read:target.xml  ?  qAttached  qC
 *   qfThreadInfo/qsThreadInfo  qThreadExtraInfo  T (thread alive)  Hg/Hc
 *   g/G (one getManyRegs/setManyRegs batch)  p/P (one register)
 *   m/M/X (guest-virtual memory)  Z0..Z4 / z0..z4  c/C/s/S/vCont?/vCont  D  k
 * Anything else gets the empty reply ("not supported"), as the protocol asks. Malformed
 * arguments get `E22`, unmapped memory `E14`; nothing a client sends can throw out of `receive`.
 *
 * Thread ids are vCPU index + 1; 0 means "any" and -1 "all" (Hg/Hc and vCont).
 */
import { regSize, type RegId } from "../../abi/regid.js";
import {
  RspDecoder,
  escapeBinary,
  framePacket,
  hexInto,
  unescapeBinary,
  type RspEvent,
} from "./packet.js";
import {
  extractReg,
  insertReg,
  sourceIds,
  streamOffsets,
  targetXml,
  type GdbPlan,
  type GdbPlanner,
  type GdbReg,
} from "./regmap.js";
import type { BreakpointType, DebugTarget, StopEvent } from "./target.js";

/** The largest packet body the stub accepts (advertised as PacketSize). */
export const DEFAULT_MAX_PACKET = 0x4000;

/** Where replies go. */
export interface SessionIo {
  send(bytes: Uint8Array): void;
  /** Ends the connection (after `D`, `k`, or the guest's end). */
  close(): void;
}

/** Options of a session. */
export interface GdbSessionOptions {
  readonly target: DebugTarget;
  readonly planner: GdbPlanner;
  readonly maxPacket?: number;
}

const SIGTRAP = 5;
const latin1 = (bytes: Uint8Array): string => Buffer.from(bytes).toString("latin1");

/** Hex of bytes in memory order (GDB's register and memory encoding). */
export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString("hex");
}

/** Bytes of an even-length hex string; undefined when malformed. */
export function fromHex(text: string): Uint8Array | undefined {
  if (text.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(text)) return undefined;
  return new Uint8Array(Buffer.from(text, "hex"));
}

/** A non-negative hex number of at most 16 digits, or undefined. */
function hexNumber(text: string | undefined): bigint | undefined {
  if (text === undefined || !/^[0-9a-fA-F]{1,16}$/.test(text)) return undefined;
  return BigInt(`0x${text}`);
}

/** A thread id (`-1`, `0` or positive hex), or undefined. */
function threadId(text: string | undefined): number | undefined {
  if (text === "-1") return -1;
  const n = hexNumber(text);
  return n === undefined || n > 0xffffn ? undefined : Number(n);
}

class PacketError extends Error {
  constructor(readonly reply: string) {
    super(reply);
  }
}

const invalid = (): never => {
  throw new PacketError("E22");
};

/** The `g` packet of a plan: its registers, their batch, and where each sits in the hex. */
interface GPacket {
  readonly regs: readonly GdbReg[];
  readonly ids: RegId[];
  readonly offsets: Map<RegId, number>;
  /**
   * Byte range `[offset, offset + length)` of each register in the stream, where it is a whole
   * vCPU register (copied as hex directly); undefined where the arch computes it.
   */
  readonly slices: readonly (readonly [number, number] | undefined)[];
  /** The reply's hex, reused by every `g` of this plan (its length never changes). */
  readonly hex: Uint8Array;
}

/** Protocol state for one connection (module header). */
export class GdbSession {
  readonly #target: DebugTarget;
  readonly #planner: GdbPlanner;
  readonly #decoder: RspDecoder;
  readonly #io: SessionIo;
  readonly #maxPacket: number;
  readonly #plans = new Map<number, GdbPlan>();
  readonly #gPackets = new WeakMap<GdbPlan, GPacket>();
  /** The pc and sp of each plan, for `T` stop replies. */
  readonly #pcSp = new WeakMap<
    GdbPlan,
    { regs: readonly GdbReg[]; ids: RegId[]; offsets: Map<RegId, number> }
  >();
  #noAck = false;
  #noAckNext = false;
  #lastSent: Uint8Array | undefined;
  #running = false;
  #pending: Uint8Array[] = [];
  #gThread = 0;
  #cThread = 0;
  #lastStop: StopEvent;
  #swbreak = false;
  #hwbreak = false;
  #ended = false;
  #threadCursor = 0;

  constructor(io: SessionIo, options: GdbSessionOptions) {
    this.#io = io;
    this.#target = options.target;
    this.#planner = options.planner;
    this.#maxPacket = options.maxPacket ?? DEFAULT_MAX_PACKET;
    this.#decoder = new RspDecoder(this.#maxPacket);
    this.#lastStop = { kind: "stopped", thread: options.target.threads()[0] ?? 1, signal: SIGTRAP };
  }

  /** True after `D`, `k` or the guest's end: the connection should close. */
  get ended(): boolean {
    return this.#ended;
  }

  /** True while the guest runs for this debugger (between a resume and its stop reply). */
  get running(): boolean {
    return this.#running;
  }

  /** Feeds bytes from the connection. Never throws. */
  receive(bytes: Uint8Array): void {
    for (const event of this.#decoder.push(bytes)) this.#event(event);
  }

  #event(event: RspEvent): void {
    switch (event.kind) {
      case "ack":
        return;
      case "nak":
        if (this.#lastSent !== undefined) this.#io.send(this.#lastSent);
        return;
      case "interrupt":
        if (this.#running) this.#target.interrupt();
        return;
      case "bad-checksum":
        if (!this.#noAck) this.#io.send(Buffer.from("-"));
        return;
      case "overflow":
        this.#ack();
        this.#reply("E22");
        return;
      case "packet":
        this.#ack();
        if (this.#running) this.#pending.push(event.data);
        else this.#packet(event.data);
        return;
    }
  }

  #ack(): void {
    if (!this.#noAck) this.#io.send(Buffer.from("+"));
  }

  #reply(body: string | Uint8Array): void {
    if (this.#ended) return;
    const frame = framePacket(body);
    this.#lastSent = frame;
    this.#io.send(frame);
  }

  #packet(data: Uint8Array): void {
    let reply: string | Uint8Array | undefined;
    try {
      reply = this.#dispatch(data);
    } catch (error) {
      // A target that refuses (KvmError, RangeError) or malformed arguments: an error reply.
      reply = error instanceof PacketError ? error.reply : "E14";
    }
    if (reply !== undefined) this.#reply(reply);
    if (this.#noAckNext) {
      this.#noAck = true;
      this.#noAckNext = false;
    }
  }

  /** The reply to one packet, or undefined when it is sent later (resume) or never (k). */
  #dispatch(data: Uint8Array): string | Uint8Array | undefined {
    const text = latin1(data);
    const head = text[0] ?? "";
    switch (head) {
      case "?":
        return this.#stopReply(this.#lastStop);
      case "g":
        return this.#readAll();
      case "G":
        return this.#writeAll(text.slice(1));
      case "p":
        return this.#readOne(text.slice(1));
      case "P":
        return this.#writeOne(text.slice(1));
      case "m":
        return this.#readMemory(text.slice(1));
      case "M":
        return this.#writeMemory(text.slice(1));
      case "X":
        return this.#writeBinary(data);
      case "Z":
      case "z":
        return this.#breakpoint(head === "Z", text.slice(1));
      case "H":
        return this.#setThread(text.slice(1));
      case "T":
        return this.#threadAlive(text.slice(1));
      case "c":
      case "C":
      case "s":
      case "S":
        this.#resume(head === "s" || head === "S" ? [this.#stepThread()] : []);
        return undefined;
      case "D":
        this.#target.detach();
        this.#reply("OK");
        this.#end();
        return undefined;
      case "k":
        this.#target.kill();
        this.#end();
        return undefined;
      case "q":
      case "Q":
        return this.#query(text);
      case "v":
        return this.#vPacket(text);
      default:
        return "";
    }
  }

  #end(): void {
    this.#ended = true;
    this.#io.close();
  }

  #query(text: string): string | Uint8Array {
    if (text.startsWith("qSupported")) {
      const features = text.slice("qSupported:".length).split(";");
      this.#swbreak = features.includes("swbreak+");
      this.#hwbreak = features.includes("hwbreak+");
      const size = this.#maxPacket.toString(16);
      return `PacketSize=${size};qXfer:features:read+;QStartNoAckMode+;swbreak+;hwbreak+;vContSupported+`;
    }
    if (text === "QStartNoAckMode") {
      // Acks stop after this packet's reply (GDB manual, "Packet Acknowledgment").
      this.#noAckNext = true;
      return "OK";
    }
    if (text.startsWith("qXfer:features:read:")) return this.#features(text);
    if (text === "qAttached") return "1";
    if (text === "qC") return `QC${this.#currentThread().toString(16)}`;
    if (text === "qfThreadInfo") {
      this.#threadCursor = 0;
      return this.#threadInfo();
    }
    if (text === "qsThreadInfo") return this.#threadInfo();
    if (text.startsWith("qThreadExtraInfo,")) {
      const id = threadId(text.slice("qThreadExtraInfo,".length));
      if (id === undefined || !this.#target.threads().includes(id)) invalid();
      return toHex(Buffer.from(`vCPU ${(id ?? 1) - 1}`));
    }
    if (text === "qSymbol::") return "OK";
    return "";
  }

  #threadInfo(): string {
    const threads = this.#target.threads();
    if (this.#threadCursor > 0 || threads.length === 0) return "l";
    this.#threadCursor = threads.length;
    return "m" + threads.map((t) => t.toString(16)).join(",");
  }

  #features(text: string): string | Uint8Array {
    const match = /^qXfer:features:read:([^:]*):([0-9a-fA-F]+),([0-9a-fA-F]+)$/.exec(text);
    if (match === null) return invalid();
    if (match[1] !== "target.xml") return "E00";
    const xml = Buffer.from(targetXml(this.#plan(this.#currentThread())), "utf8");
    const offset = Number(hexNumber(match[2]) ?? invalid());
    const length = Math.min(Number(hexNumber(match[3]) ?? invalid()), this.#maxPacket - 8);
    const chunk = xml.subarray(offset, offset + length);
    const more = offset + chunk.length < xml.length;
    const body = escapeBinary(chunk);
    const out = new Uint8Array(body.length + 1);
    out[0] = (more ? "m" : "l").charCodeAt(0);
    out.set(body, 1);
    return out;
  }

  #vPacket(text: string): string | undefined {
    if (text === "vCont?") return "vCont;c;C;s;S";
    if (text.startsWith("vCont;")) {
      const step: number[] = [];
      const run = new Set<number>();
      let all = false;
      for (const action of text.slice("vCont;".length).split(";")) {
        const [verb, thread] = action.split(":");
        const kind = verb?.[0];
        if (kind !== "c" && kind !== "C" && kind !== "s" && kind !== "S") return invalid();
        const stepping = kind === "s" || kind === "S";
        const id = thread === undefined ? (stepping ? this.#stepThread() : -1) : threadId(thread);
        if (id === undefined) return invalid();
        // A thread's first action wins (GDB manual, "vCont"): a default after it adds the rest.
        const ids = id === -1 || id === 0 ? this.#target.threads() : [id];
        if (thread === undefined && !stepping) all = true;
        for (const t of ids) {
          if (run.has(t)) continue;
          run.add(t);
          if (stepping) step.push(t);
        }
      }
      this.#resume(step, all ? undefined : [...run]);
      return undefined;
    }
    if (text === "vMustReplyEmpty") return "";
    return "";
  }

  #resume(step: number[], run?: number[]): void {
    this.#running = true;
    void this.#target.resume(run === undefined ? { step } : { step, run }).then(
      (stop) => {
        this.#stopped(stop);
      },
      () => {
        this.#stopped({ kind: "terminated", signal: 6 });
      },
    );
  }

  #stopped(stop: StopEvent): void {
    this.#running = false;
    this.#lastStop = stop;
    if (stop.kind === "stopped") {
      this.#gThread = stop.thread;
      this.#cThread = stop.thread;
    }
    this.#reply(this.#stopReply(stop));
    if (stop.kind !== "stopped") {
      this.#end();
      return;
    }
    const queued = this.#pending;
    this.#pending = [];
    // A queued packet may resume the guest again: the rest wait for that stop.
    for (const data of queued) {
      if (this.running || this.ended) this.#pending.push(data);
      else this.#packet(data);
    }
  }

  #stopReply(stop: StopEvent): string {
    if (stop.kind === "exited") return `W${(stop.status & 0xff).toString(16).padStart(2, "0")}`;
    if (stop.kind === "terminated") return `X${stop.signal.toString(16).padStart(2, "0")}`;
    let reply = `T${stop.signal.toString(16).padStart(2, "0")}thread:${stop.thread.toString(16)};`;
    try {
      const plan = this.#plan(stop.thread);
      let pcSp = this.#pcSp.get(plan);
      if (pcSp === undefined) {
        const regs = [plan.pcRegnum, plan.spRegnum]
          .map((n) => plan.registers.find((r) => r.regnum === n))
          .filter((r): r is GdbReg => r !== undefined);
        const ids = sourceIds(regs);
        pcSp = { regs, ids, offsets: streamOffsets(ids) };
        this.#pcSp.set(plan, pcSp);
      }
      const { regs, ids, offsets } = pcSp;
      const stream = this.#target.getManyRegs(stop.thread, ids);
      for (const r of regs)
        reply += `${r.regnum.toString(16)}:${toHex(extractReg(r, stream, offsets))};`;
    } catch {
      // Without registers GDB asks for them itself; the stop reply stays valid.
    }
    const cause = stop.cause;
    if (cause?.kind === "swbreak" && this.#swbreak) reply += "swbreak:;";
    else if (cause?.kind === "hwbreak" && this.#hwbreak) reply += "hwbreak:;";
    else if (cause !== undefined && cause.kind !== "swbreak" && cause.kind !== "hwbreak") {
      reply += `${cause.kind}:${cause.address.toString(16)};`;
    }
    return reply;
  }

  #currentThread(): number {
    const threads = this.#target.threads();
    const want = this.#gThread;
    return want > 0 && threads.includes(want) ? want : this.#lastStopThread();
  }

  #lastStopThread(): number {
    return this.#lastStop.kind === "stopped"
      ? this.#lastStop.thread
      : (this.#target.threads()[0] ?? 1);
  }

  #stepThread(): number {
    const threads = this.#target.threads();
    return this.#cThread > 0 && threads.includes(this.#cThread)
      ? this.#cThread
      : this.#lastStopThread();
  }

  #setThread(text: string): string {
    const op = text[0];
    const id = threadId(text.slice(1));
    if ((op !== "g" && op !== "c") || id === undefined) return invalid();
    if (id > 0 && !this.#target.threads().includes(id)) return "E02";
    if (op === "g") this.#gThread = id;
    else this.#cThread = id;
    return "OK";
  }

  #threadAlive(text: string): string {
    const id = threadId(text);
    return id !== undefined && this.#target.threads().includes(id) ? "OK" : "E01";
  }

  #plan(thread: number): GdbPlan {
    let plan = this.#plans.get(thread);
    if (plan === undefined) {
      plan = this.#planner(this.#target.regList(thread));
      this.#plans.set(thread, plan);
    }
    return plan;
  }

  #gRegs(): { thread: number } & GPacket {
    const thread = this.#currentThread();
    const plan = this.#plan(thread);
    const g = this.#gPackets.get(plan);
    if (g === undefined) {
      const regs = plan.registers.slice(0, plan.gCount);
      const ids = sourceIds(regs);
      const offsets = streamOffsets(ids);
      // Registers that are a whole vCPU register are cut from the stream's hex directly.
      const slices = regs.map((r): readonly [number, number] | undefined => {
        const src = r.source;
        if (!("id" in src) || "read" in src || src.shift !== 0 || src.width !== r.bitsize) {
          return undefined;
        }
        const at = offsets.get(src.id) ?? 0;
        return regSize(src.id) * 8 === r.bitsize ? [at, r.bitsize / 8] : undefined;
      });
      const hex = new Uint8Array(regs.reduce((n, r) => n + r.bitsize / 4, 0));
      const made: GPacket = { regs, ids, offsets, slices, hex };
      this.#gPackets.set(plan, made);
      return { thread, ...made };
    }
    return { thread, ...g };
  }

  /** `g`: one batch read, hex written straight into the plan's reply buffer (framed by copy). */
  #readAll(): Uint8Array {
    const { thread, regs, ids, offsets, slices, hex } = this.#gRegs();
    const stream = this.#target.getManyRegs(thread, ids);
    let at = 0;
    for (let i = 0; i < regs.length; i++) {
      const cut = slices[i];
      const reg = regs[i];
      if (cut !== undefined) at = hexInto(hex, at, stream, cut[0], cut[1]);
      else if (reg !== undefined) {
        const value = extractReg(reg, stream, offsets);
        at = hexInto(hex, at, value, 0, value.length);
      }
    }
    return hex;
  }

  #writeAll(hex: string): string {
    const { thread, regs, ids } = this.#gRegs();
    const bytes = fromHex(hex) ?? invalid();
    const total = regs.reduce((n, r) => n + r.bitsize / 8, 0);
    if (bytes.length !== total) return invalid();
    const stream = this.#target.getManyRegs(thread, ids);
    const offsets = streamOffsets(ids);
    let at = 0;
    for (const r of regs) {
      insertReg(r, bytes.subarray(at, at + r.bitsize / 8), stream, offsets);
      at += r.bitsize / 8;
    }
    this.#target.setManyRegs(thread, ids, stream);
    return "OK";
  }

  #findReg(numberHex: string | undefined): { thread: number; reg: GdbReg } {
    const n = hexNumber(numberHex) ?? invalid();
    const thread = this.#currentThread();
    const reg = this.#plan(thread).registers.find((r) => BigInt(r.regnum) === n);
    if (reg === undefined) throw new PacketError("E45");
    return { thread, reg };
  }

  #readOne(text: string): string {
    const { thread, reg } = this.#findReg(text);
    const ids = sourceIds([reg]);
    const stream = this.#target.getManyRegs(thread, ids);
    return toHex(extractReg(reg, stream, streamOffsets(ids)));
  }

  #writeOne(text: string): string {
    const [number, value] = text.split("=");
    const { thread, reg } = this.#findReg(number);
    const bytes = fromHex(value ?? "") ?? invalid();
    if (bytes.length !== reg.bitsize / 8) return invalid();
    const ids = sourceIds([reg]);
    if (ids.length === 0) return "OK";
    const stream = this.#target.getManyRegs(thread, ids);
    insertReg(reg, bytes, stream, streamOffsets(ids));
    this.#target.setManyRegs(thread, ids, stream);
    return "OK";
  }

  /** `addr,length` of m/M/X, bounded by what one reply can carry. */
  #range(text: string, limit: number): { address: bigint; length: number } {
    const [a, l] = text.split(",");
    const address = hexNumber(a) ?? invalid();
    const length = hexNumber(l) ?? invalid();
    if (length > BigInt(limit)) return invalid();
    return { address, length: Number(length) };
  }

  #readMemory(text: string): string {
    const { address, length } = this.#range(text, Math.floor((this.#maxPacket - 4) / 2));
    const bytes = this.#target.readMemory(this.#currentThread(), address, length);
    return bytes === undefined ? "E14" : toHex(bytes);
  }

  #writeMemory(text: string): string {
    const colon = text.indexOf(":");
    if (colon < 0) return invalid();
    const { address, length } = this.#range(text.slice(0, colon), this.#maxPacket);
    const bytes = fromHex(text.slice(colon + 1)) ?? invalid();
    if (bytes.length !== length) return invalid();
    return this.#target.writeMemory(this.#currentThread(), address, bytes) ? "OK" : "E14";
  }

  #writeBinary(data: Uint8Array): string {
    const colon = data.indexOf(0x3a);
    if (colon < 0) return invalid();
    const { address, length } = this.#range(latin1(data.subarray(1, colon)), this.#maxPacket);
    let bytes: Uint8Array;
    try {
      bytes = unescapeBinary(data.subarray(colon + 1));
    } catch {
      return invalid();
    }
    if (bytes.length !== length) return invalid();
    if (length === 0) return "OK"; // GDB's probe for X support
    return this.#target.writeMemory(this.#currentThread(), address, bytes) ? "OK" : "E14";
  }

  #breakpoint(insert: boolean, text: string): string {
    const [t, a, k] = text.split(";")[0]?.split(",") ?? [];
    const type = Number(t);
    if (!/^[0-4]$/.test(t ?? "")) return "";
    const address = hexNumber(a) ?? invalid();
    const kind = Number(hexNumber(k) ?? invalid());
    const bt = type as BreakpointType;
    const done = insert
      ? this.#target.insertBreakpoint(bt, address, kind)
      : this.#target.removeBreakpoint(bt, address, kind);
    return done ? "OK" : "";
  }
}

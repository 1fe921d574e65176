/**
 * The receiving side of a live migration: decode the stream as it arrives (./stream.ts, every
 * length bounded), build the machine it describes, write the pages into its RAM, check and apply
 * the final state, then the two-step commit of ./handshake.ts. The guest is never started here:
 * the caller runs it once `receiveMigration()` resolves, which happens only after the source's
 * `GO`. On any failure the destination answers one error line (best effort), drops the
 * connection, disposes of what it built and throws: nothing it received survives.
 */
import type { ArchName } from "../../abi/regid.js";
import type { GuestMemory } from "../../backends/vcpu.js";
import { RegvisorError } from "../../errors.js";
import type { DeviceState, SnapshotBackend, SnapshotMeta, VcpuState } from "../snapshot/model.js";
import { encodeReply, GO } from "./handshake.js";
import { concatBytes } from "../snapshot/bytes.js";
import { IO_CODES, nativeIo, type NativeIo, type NativeSlot } from "./native-io.js";
import {
  DEFAULT_STREAM_LIMITS,
  HEADER_FLAG_ROUND_ACKS,
  MAX_PAGES_PER_FRAME,
  MigrationStreamError,
  PAGE_BYTES,
  StreamDecoder,
  type LayoutSlot,
  type PagesItem,
  type StreamItem,
} from "./stream.js";
import { PhaseClock } from "./timeline.js";
import { MigrationError, type Channel } from "./transport.js";

/** The machine being filled from the stream; not running. */
export interface MigrationTarget extends Disposable {
  readonly memory: readonly GuestMemory[];
  /**
   * Checks the stream's vCPU state against this machine (register lists by the restore policy),
   * and whatever else needs no guest RAM (the machine sections of `devices`, disks), and applies
   * the vCPUs' registers and power states; nothing is applied on failure. Called before the
   * last pages are in RAM when the source sends its state first (stream 1.3).
   * @throws a RegvisorError with a one-line message.
   */
  applyVcpus(vcpus: readonly VcpuState[], devices: readonly DeviceState[]): void;
  /**
   * Checks the devices' state (names and versions) and applies it, after `applyVcpus` and once
   * every page is in RAM (a device checks its queues against guest RAM).
   * @throws a RegvisorError with a one-line message.
   */
  applyDevices(devices: readonly DeviceState[]): void;
}

/** What the stream's header says about the source. */
export interface StreamOrigin {
  readonly arch: ArchName;
  readonly backend: SnapshotBackend;
  readonly minor: number;
  /** The header's flags (advisory bits). */
  readonly flags: number;
}

/** Builds the destination machine from the stream's description. */
export interface TargetFactory {
  /** The architectures this destination runs. */
  readonly arches: readonly ArchName[];
  /**
   * An empty machine (zeroed RAM, vCPUs and devices created, nothing running) for `meta`.
   * @throws a RegvisorError (one line) when the description does not fit this destination or
   *   the options given on its command line.
   */
  build(origin: StreamOrigin, meta: SnapshotMeta): MigrationTarget;
}

/** Bounds of the destination. */
export interface ReceiveOptions {
  /** Longest silence of the source before the destination gives up, ms (default 30 s). */
  readonly idleMs?: number;
  /**
   * Read the switchover's pages natively when the addon has them (./native-io.ts), which
   * blocks this thread until they are in (default false): only for a destination whose source
   * runs in another process or thread, never one that shares this event loop.
   */
  readonly native?: boolean;
}

/** What arrived. */
export interface Received {
  readonly target: MigrationTarget;
  readonly origin: StreamOrigin;
  readonly meta: SnapshotMeta;
  readonly bytes: number;
  readonly rounds: number;
}

const IDLE_MS = 30_000;
/** How long a refusing destination waits for the source to read its reason and hang up. */
const DRAIN_MS = 2000;
/**
 * A native read during the pre-copy returns to the event loop after about this long (signals
 * are polled every 50 ms, incoming.ts): the slice of a 256 MiB first round is 50 MiB or more.
 */
const PRECOPY_SLICE_MS = 50;
/**
 * How long the destination waits for `GO` natively before it waits through its event loop
 * (`readGo`): the source's answer to `ready` takes a wake-up, a millisecond or two here.
 */
const HANDSHAKE_WAIT_MS = 100;
/** Pages are written through views of this size (one view per window, made once). */
const WINDOW_BYTES = 1 << 30;

/** Where one slot's pages go. */
interface SlotSink {
  readonly slot: LayoutSlot;
  /** The view holding byte `offset` of the slot, at `offset % WINDOW_BYTES`. */
  window(offset: number): Uint8Array;
  /** 1 for every page a data page was written to (the rest are still zero). */
  readonly written: Uint8Array;
}

function slotSink(slot: LayoutSlot, memory: GuestMemory): SlotSink {
  const windows: Uint8Array[] = [];
  return {
    slot,
    written: new Uint8Array(slot.length / PAGE_BYTES),
    window(offset) {
      const n = Math.floor(offset / WINDOW_BYTES);
      let w = windows[n];
      if (w === undefined) {
        const start = n * WINDOW_BYTES;
        w = memory.view(start, Math.min(WINDOW_BYTES, memory.size - start));
        windows[n] = w;
      }
      return w;
    },
  };
}

/** Decoding state of one incoming stream. */
class Incoming {
  origin: StreamOrigin | undefined;
  meta: SnapshotMeta | undefined;
  target: MigrationTarget | undefined;
  layout: ReadonlyMap<number, SlotSink> | undefined;
  rounds = 0;
  /** The SWITCHOVER frame came: the source paused the guest, the last pages follow. */
  switchover = false;
  /**
   * State frames still to come before the last pages (stream 1.3, from SWITCHOVER); undefined
   * when the state follows the pages (1.2).
   */
  stateLeft: number | undefined;
  /** `applyVcpus` was called. */
  #vcpusApplied = false;
  /** The switchover's stages (handshake.ts `DESTINATION_PHASES`), from SWITCHOVER on. */
  readonly clock = new PhaseClock();
  readonly vcpus: VcpuState[] = [];
  readonly devices: DeviceState[] = [];

  constructor(private readonly factory: TargetFactory) {}

  take(item: StreamItem): void {
    switch (item.kind) {
      case "header":
        if (!this.factory.arches.includes(item.arch)) {
          throw new MigrationError(
            "rejected",
            `Cannot receive a ${item.arch} guest: this destination runs ${this.factory.arches.join(" and ")} guests`,
          );
        }
        this.origin = item;
        return;
      case "meta":
        if (this.origin === undefined || this.meta !== undefined) throw order("META");
        this.meta = item.meta;
        this.target = this.factory.build(this.origin, item.meta);
        return;
      case "layout":
        this.layout = this.#checkLayout(item.slots);
        return;
      case "pages":
        this.#pages(item);
        return;
      case "round":
        this.rounds = item.round;
        return;
      case "switchover":
        if (this.layout === undefined || this.switchover || this.#stateCount() > 0) {
          throw order("SWITCHOVER");
        }
        this.switchover = true;
        this.stateLeft = item.stateFrames;
        this.clock.start();
        return;
      case "vcpu":
        this.#state("VCPU_STATE");
        this.vcpus.push(item.state);
        this.#stateDone();
        return;
      case "device":
        this.#state("DEVICE");
        this.devices.push(item.state);
        this.#stateDone();
        return;
      case "end": {
        const target = this.target;
        if (target === undefined || this.layout === undefined || (this.stateLeft ?? 0) > 0)
          throw order("END");
        if (this.#vcpusApplied) this.clock.end("pages");
        else {
          this.clock.end("state");
          target.applyVcpus(this.vcpus, this.devices);
          this.clock.end("vcpus");
        }
        target.applyDevices(this.devices);
        this.clock.end("devices");
        return;
      }
    }
  }

  #stateCount(): number {
    return this.vcpus.length + this.devices.length;
  }

  /** A VCPU_STATE or DEVICE frame may come now (after LAYOUT; in 1.3 only as many as announced). */
  #state(what: string): void {
    if (this.layout === undefined || this.stateLeft === 0) throw order(what);
    if (this.stateLeft !== undefined) this.stateLeft--;
    // The first state frame: a 1.1 stream has no SWITCHOVER to start the clock, in 1.2 the
    // last pages came before it.
    if (this.#stateCount() > 0) return;
    if (!this.clock.running) this.clock.start();
    else if (this.stateLeft === undefined) this.clock.end("pages");
  }

  /**
   * Stream 1.3: the last announced state frame came: check and apply the vCPUs now, while the
   * last pages are on their way (the guest runs nowhere; on any later failure all is discarded).
   */
  #stateDone(): void {
    if (this.stateLeft !== 0 || this.target === undefined) return;
    this.clock.end("state");
    this.target.applyVcpus(this.vcpus, this.devices);
    this.#vcpusApplied = true;
    this.clock.end("vcpus");
  }

  /** The last pages may be read natively from here (after SWITCHOVER and any state before them). */
  get pagesNext(): boolean {
    return this.switchover && (this.stateLeft ?? 0) === 0;
  }

  #checkLayout(slots: readonly LayoutSlot[]): Map<number, SlotSink> {
    const target = this.target;
    if (target === undefined || this.layout !== undefined) throw order("LAYOUT");
    const text = (s: { slot: number; guestPhysAddr: bigint; size: number }): string =>
      `slot ${s.slot} at 0x${s.guestPhysAddr.toString(16)}, ${s.size} bytes`;
    const theirs = slots.map((s) => text({ ...s, size: s.length }));
    const ours = target.memory.map(text);
    if (theirs.join("; ") !== ours.join("; ")) {
      throw new MigrationError(
        "rejected",
        `Cannot receive the guest: its memory layout (${theirs.join("; ")}) differs from the machine built here (${ours.join("; ")})`,
      );
    }
    const map = new Map<number, SlotSink>();
    slots.forEach((slot, i) => {
      const memory = target.memory[i];
      if (memory !== undefined) map.set(slot.slot, slotSink(slot, memory));
    });
    return map;
  }

  /** Every slot's RAM and `written` map, for native/sockio.cc. */
  nativeSlots(): NativeSlot[] {
    return [...(this.layout ?? new Map<number, SlotSink>()).values()].map((sink) => {
      const windows: Uint8Array[] = [];
      for (let at = 0; at < sink.slot.length; at += WINDOW_BYTES) windows.push(sink.window(at));
      return {
        slot: sink.slot.slot,
        pages: sink.slot.length / PAGE_BYTES,
        written: sink.written,
        windows,
      };
    });
  }

  #pages(item: PagesItem): void {
    const { slot, entries, data } = item;
    // Pages come before the state (1.2) or after all of it (1.3).
    const pending = this.stateLeft === undefined ? this.#stateCount() > 0 : this.stateLeft > 0;
    if (this.layout === undefined || pending) throw order("PAGES");
    const entry = this.layout.get(slot);
    if (entry === undefined) {
      throw new MigrationError(
        "rejected",
        `the stream sends pages of slot ${slot}, which its layout does not have`,
      );
    }
    const count = entry.slot.length / PAGE_BYTES;
    for (let i = 0; i < entries.length; i += 2) {
      const index = entries[i] ?? 0;
      if (index >= count) {
        throw new MigrationError(
          "rejected",
          `the stream sends page ${index} of slot ${slot}, which has ${count} pages`,
        );
      }
    }
    // A run of data pages with consecutive indices goes into RAM with one copy per received
    // piece it spans, straight from the socket's chunks (the sender sends runs of dirty pages
    // in order; a page a chunk boundary cut is copied from both chunks, not assembled first).
    let piece = 0;
    let at = 0;
    let runFirst = -1;
    let runPages = 0;
    const flush = (): void => {
      if (runPages === 0) return;
      const where = runFirst * PAGE_BYTES;
      const window = entry.window(where);
      let to = where % WINDOW_BYTES;
      let left = runPages * PAGE_BYTES;
      runPages = 0;
      while (left > 0) {
        // The decoder checked that the pieces hold exactly the frame's data pages.
        const bytes = data[piece];
        if (bytes === undefined) return;
        const take = Math.min(bytes.length - at, left);
        window.set(take === bytes.length ? bytes : bytes.subarray(at, at + take), to);
        to += take;
        left -= take;
        at += take;
        if (at === bytes.length) {
          piece++;
          at = 0;
        }
      }
    };
    for (let i = 0; i < entries.length; i += 2) {
      const index = entries[i] ?? 0;
      if (entries[i + 1] === 0) {
        flush();
        if (entry.written[index] === 1) {
          // A page never written here is still the backend's zero page: nothing to clear.
          const where = index * PAGE_BYTES;
          const offset = where % WINDOW_BYTES;
          entry.window(where).fill(0, offset, offset + PAGE_BYTES);
          entry.written[index] = 0;
        }
        continue;
      }
      entry.written[index] = 1;
      if (
        runPages > 0 &&
        index === runFirst + runPages &&
        (index * PAGE_BYTES) % WINDOW_BYTES !== 0
      ) {
        runPages++;
      } else {
        flush();
        runFirst = index;
        runPages = 1;
      }
    }
    flush();
  }
}

/**
 * Reads PAGES frames natively (./native-io.ts) from where `decoder` stopped, then hands the
 * decoder what was read past them; returns the items that completes. Blocks the event loop
 * until a frame of another type starts (at the switchover: the guest is paused at the source),
 * or during the pre-copy for at most about `sliceMs` (then the loop turns); each wait at most
 * `idleMs`.
 * @throws MigrationStreamError or MigrationError as the JS path would.
 */
function receiveNative(
  io: NativeIo,
  fd: number,
  channel: Channel,
  decoder: StreamDecoder,
  incoming: Incoming,
  idleMs: number,
  sliceMs: number,
): StreamItem[] {
  const start = decoder.offset;
  const pre = [...decoder.takeQueued(), ...channel.takeReceived()];
  const r = io.recvPages(
    fd,
    pre,
    incoming.nativeSlots(),
    WINDOW_BYTES,
    DEFAULT_STREAM_LIMITS.maxFrameBytes,
    MAX_PAGES_PER_FRAME,
    Math.min(idleMs, 2 ** 31 - 1),
    sliceMs,
  );
  switch (r.code) {
    case IO_CODES.ok:
      decoder.skip(r.consumed);
      return decoder.push(r.rest);
    case IO_CODES.format:
      throw new MigrationStreamError(r.message, start + r.offset);
    case IO_CODES.rejected:
      throw new MigrationError("rejected", r.message);
    case IO_CODES.timeout:
      throw new MigrationError("timeout", `the source sent nothing for ${idleMs} ms`);
    case IO_CODES.closed:
      throw new MigrationError("connection", r.message);
    default:
      throw new MigrationError("connection", r.message);
  }
}

/**
 * A native read's time slice (-1: none) when PAGES frames come next after `item`, else
 * undefined: during the pre-copy after LAYOUT, a PAGES or a ROUND frame, once the round's
 * acknowledgement has left (the native read blocks the event loop that sends it); at the
 * switchover after SWITCHOVER and any state before the last pages, or after one of them.
 */
function nativeSlice(incoming: Incoming, item: StreamItem, channel: Channel): number | undefined {
  if (!incoming.switchover) {
    const precopy = item.kind === "layout" || item.kind === "pages" || item.kind === "round";
    return precopy && channel.socket.writableLength === 0 ? PRECOPY_SLICE_MS : undefined;
  }
  if (!incoming.pagesNext) return undefined;
  const state = item.kind === "vcpu" || item.kind === "device";
  return item.kind === "pages" || item.kind === "switchover" || (state && incoming.stateLeft === 0)
    ? -1
    : undefined;
}

/**
 * The source's answer to `ready`, up to its length if it is a prefix of `GO` (undefined at the
 * end of the stream): natively first, for up to `HANDSHAKE_WAIT_MS`, when `io` reads natively
 * (the guest is paused on both sides, the event loop has nothing to do that could not wait; a
 * wait in poll(2) wakes on the bytes at once), then through Node.
 * @throws MigrationError on a connection error or when nothing comes within `idleMs`.
 */
async function readGo(
  channel: Channel,
  io: NativeIo | undefined,
  idleMs: number,
): Promise<Uint8Array | undefined> {
  const parts = channel.takeReceived();
  const fd = channel.fd;
  if (parts.length === 0 && io?.recvSome !== undefined && fd !== undefined) {
    const r = io.recvSome(fd, GO.length + 1, Math.min(HANDSHAKE_WAIT_MS, idleMs));
    // Nothing in time, the end, an error: Node's socket sees the same below.
    if (r.code === IO_CODES.ok) parts.push(r.bytes);
  }
  let got = concatBytes(parts);
  const deadline = performance.now() + idleMs;
  while (got.length < GO.length && got.every((b, i) => b === GO[i])) {
    const more = await channel.read(deadline - performance.now());
    if (more === undefined) return got.length === 0 ? undefined : got;
    got = concatBytes([got, more]);
  }
  return got;
}

function order(what: string): MigrationError {
  return new MigrationError("rejected", `the stream has a ${what} frame out of order`);
}

function oneLine(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.split("\n")[0] ?? "";
}

/**
 * Receives one migration on `channel` into a machine `factory` builds; resolves after `GO` with
 * the loaded, not yet running machine.
 * @throws MigrationError (or the factory's RegvisorError) with a one-line message; the connection
 *   is closed and everything built is disposed of.
 */
export async function receiveMigration(
  channel: Channel,
  factory: TargetFactory,
  options: ReceiveOptions = {},
): Promise<Received> {
  const idleMs = options.idleMs ?? IDLE_MS;
  const decoder = new StreamDecoder();
  const incoming = new Incoming(factory);
  const io = options.native === true ? nativeIo() : undefined;
  try {
    while (!decoder.ended) {
      // What is queued already is taken without an await: a 1 MiB frame arrives as ~16
      // chunks, each of which cost a promise and a turn of the microtask queue.
      const bytes = channel.poll() ?? (await channel.read(idleMs));
      if (bytes === undefined) {
        throw new MigrationError(
          "connection",
          "the source closed the connection before the end of the stream",
        );
      }
      const items = decoder.push(bytes);
      for (let i = 0; i < items.length; i++) {
        const item = items[i];
        if (item === undefined) break;
        incoming.take(item);
        // Every page before this ROUND frame is stored: tell a source that asked (and, when it
        // reads the switchover natively, to mark the switchover with SWITCHOVER, stream 1.2).
        if (
          item.kind === "round" &&
          ((incoming.origin?.flags ?? 0) & HEADER_FLAG_ROUND_ACKS) !== 0
        ) {
          await channel.write([
            encodeReply({
              reply: "round",
              round: item.round,
              ...(io === undefined ? {} : { switchover: true }),
              stateFirst: true,
            }),
          ]);
        }
        // Pages come next and this is the last item `push` completed: they go straight into
        // RAM, natively — in slices during the pre-copy, at once at the switchover.
        const slice = i === items.length - 1 ? nativeSlice(incoming, item, channel) : undefined;
        const fd = io === undefined || slice === undefined ? undefined : channel.fd;
        if (io !== undefined && slice !== undefined && fd !== undefined) {
          items.push(...receiveNative(io, fd, channel, decoder, incoming, idleMs, slice));
        }
      }
    }
    const { target, origin, meta } = incoming;
    if (target === undefined || origin === undefined || meta === undefined) throw order("END");
    // The switchover's timeline, when there was one (a stream without state has none).
    const { clock } = incoming;
    const cpuMs = clock.cpuMs();
    await channel.write([
      encodeReply({
        reply: "ready",
        ...(cpuMs === undefined ? {} : { phases: clock.phases, cpuMs }),
      }),
    ]);
    const go = await readGo(channel, io, idleMs);
    if (go?.length !== GO.length || go.some((b, i) => b !== GO[i])) {
      throw new MigrationError(
        "commit",
        go === undefined
          ? "the source closed the connection without its go-ahead"
          : "the source sent something other than its go-ahead",
      );
    }
    return { target, origin, meta, bytes: decoder.offset, rounds: incoming.rounds };
  } catch (error) {
    const failure =
      error instanceof RegvisorError
        ? error
        : new MigrationError("rejected", oneLine(error), { cause: error });
    try {
      await channel.write([encodeReply({ reply: "error", error: oneLine(failure) })]);
      // Keep reading (and dropping) until the source hangs up: closing at once would make its
      // next write fail with EPIPE before it read why, and it would report that instead.
      const deadline = performance.now() + DRAIN_MS;
      while (performance.now() < deadline) {
        if ((await channel.read(deadline - performance.now())) === undefined) break;
      }
    } catch {
      // The source is gone: nobody to tell.
    }
    channel.destroy();
    incoming.target?.[Symbol.dispose]();
    throw failure;
  }
}

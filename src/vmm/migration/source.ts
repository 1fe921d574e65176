/**
 * The sending side of a live migration: connect, send the machine's description and layout,
 * pre-copy RAM while the guest runs (./precopy.ts), pause the vCPUs between exits, send the last
 * dirty pages, every vCPU's registers and every device's state, then the two-step commit of
 * ./handshake.ts. Until the destination says `ready` and `GO` is flushed, any failure — refused
 * or dropped connection, a rejection, a stall, a timeout — resumes the guest exactly where it
 * was (if this side paused it) and reports one line; after that the source never runs the guest
 * again.
 */
import type { ArchName } from "../../abi/regid.js";
import { RegvisorError } from "../../errors.js";
import type { DeviceState, SnapshotBackend, SnapshotMeta, VcpuState } from "../snapshot/model.js";
import { GO, MAX_REPLY_BYTES, ReplyDecoder, type Reply } from "./handshake.js";
import {
  Precopy,
  type DirtyRam,
  type FrameSink,
  type PrecopyProgress,
  type WriteChunks,
} from "./precopy.js";
import {
  encodeDeviceFrame,
  encodeEndFrame,
  encodeLayoutFrame,
  encodeMetaFrame,
  encodeStreamHeader,
  encodeSwitchoverFrame,
  encodeVcpuFrame,
  HEADER_FLAG_ROUND_ACKS,
  rehearseState,
  type LayoutSlot,
} from "./stream.js";
import { memslotFlags } from "../snapshot/memslot-flags.js";
import { IO_CODES, nativeIo, touchedPages, type NativeIo } from "./native-io.js";
import { PhaseClock } from "./timeline.js";
import {
  connectChannel,
  DEFAULT_TIMEOUTS,
  formatUri,
  MigrationError,
  type Channel,
  type ChannelTimeouts,
  type MigrationUri,
} from "./transport.js";

/** What a migration needs from the running machine. */
export interface MigrationSource {
  readonly arch: ArchName;
  readonly backend: SnapshotBackend;
  readonly ram: DirtyRam;
  /** The machine's description for the destination (the META frame). */
  describe(): SnapshotMeta;
  /** Called when the migration starts and when it ends (either way). */
  start?(): void;
  end?(): void;
  /**
   * Turns the RAM's dirty logging on (the pre-copy is about to start: a fresh, clear log) or
   * off (the migration failed and the guest runs on here); vCPUs may be running or paused.
   * Without it, the RAM must log already. `parked`, if given, runs while every vCPU is parked
   * between exits for the change (`capture()` may be called then).
   */
  setDirtyLogging?(enabled: boolean, parked?: () => Promise<void>): Promise<void>;
  /** Parks every vCPU between exits (devices quiesced: in-flight disk requests drained). */
  pause(): Promise<void>;
  resume(): Promise<void>;
  /** Every vCPU's registers and every device's state; only while paused. */
  capture(): Promise<{
    readonly vcpus: readonly VcpuState[];
    readonly devices: readonly DeviceState[];
  }>;
}

/** `migrate` options; the defaults are the CLI's. */
export interface MigrateOptions {
  /** Longest pause the guest should see (`--downtime-limit`), ms; default 300. */
  readonly downtimeLimitMs?: number;
  /** Bytes per second (`--max-bandwidth`); default unlimited. */
  readonly maxBandwidth?: number;
  /** Pre-copy rounds before switching over anyway; default 30. */
  readonly maxRounds?: number;
  readonly timeouts?: ChannelTimeouts;
  /** How long the destination may take to load everything and say `ready`; default 30 s. */
  readonly readyTimeoutMs?: number;
}

/** Defaults of `MigrateOptions`. */
export const MIGRATE_DEFAULTS = {
  downtimeLimitMs: 300,
  maxRounds: 30,
  readyTimeoutMs: 30_000,
} as const;

/**
 * How long the source waits for a round's acknowledgement before it takes the destination for
 * one that never sends them (stream 1.0): a round of a backlogged destination on a loaded host
 * is stored well within it.
 */
const ACK_WAIT_MS = 5000;

/**
 * How long the source waits for `ready` natively (./native-io.ts `recvSome`, its event loop
 * blocked) before it waits through the loop: the destination's share of a switchover, a few
 * milliseconds here. Waiting in poll(2) wakes on the reply at once, and keeps what a free event
 * loop would run meanwhile — V8 finishing an incremental GC, 5-25 ms here — out of the guest's
 * pause; a destination that takes longer holds signals and the control socket no longer than
 * this.
 */
const HANDSHAKE_WAIT_MS = 100;

/** Where a migration is (`GET /migrate`). */
export interface MigrationStatus {
  readonly status: "none" | "active" | "completed" | "failed";
  /** "connect", "precopy", "switchover", "commit", "done". */
  readonly stage?: string;
  readonly uri?: string;
  readonly rounds?: number;
  readonly transferredBytes?: number;
  readonly dirtyPages?: number;
  readonly totalPages?: number;
  /** Pages sent in all (round 1 sends every page; the rest came from the dirty log). */
  readonly pagesSent?: number;
  readonly zeroPages?: number;
  /** Bytes per second of the last round. */
  readonly bandwidth?: number;
  readonly totalMs?: number;
  /** From the pause until `GO` was handed to the kernel (the destination then resumes). */
  readonly downtimeMs?: number;
  /**
   * When the source paused the guest, in milliseconds since the Unix epoch with sub-millisecond
   * digits (`performance.timeOrigin + performance.now()`): with the destination's `startedAt`
   * (GET /status there) it gives the pause as the guest saw it, up to its resumption.
   */
  readonly pausedAt?: number;
  /** The pages sent while paused. */
  readonly finalPages?: number;
  /** Pages the guest dirtied during each pre-copy round (convergence, `PrecopyProgress`). */
  readonly dirtyByRound?: readonly number[];
  /** The switchover's expected length at the last round's bandwidth, ms. */
  readonly expectedDowntimeMs?: number;
  /** Why the pre-copy stopped: "fits" (within the downtime limit), "no-progress" or "max-rounds". */
  readonly switchover?: "fits" | "no-progress" | "max-rounds";
  /**
   * Milliseconds each stage took, in order (connect, header, round1…, pause, final, capture,
   * state, ready, go): where the total went.
   */
  readonly phases?: Readonly<Record<string, number>>;
  /**
   * The destination's own switchover timeline from its `ready` reply (handshake.ts
   * `DESTINATION_PHASES`: ms per stage from the SWITCHOVER frame to `ready`), when it sends one.
   */
  readonly destinationPhases?: Readonly<Record<string, number>>;
  /** CPU time of the destination's process over those stages, ms. */
  readonly destinationCpuMs?: number;
  readonly error?: string;
}

/** The destination's replies, read in the background. */
interface ReplyWatch {
  /**
   * The next reply other than a round acknowledgement; undefined when the connection ended.
   * A timeout names `limitMs` (default `timeoutMs`): the wait's whole limit.
   */
  next(timeoutMs: number, limitMs?: number): Promise<Reply | undefined>;
  /**
   * The next reply other than a round acknowledgement if one comes within `timeoutMs`, read
   * natively through `io`, blocking; undefined otherwise (`next()` then waits for it, or says
   * why it will not come).
   */
  nextNow(io: NativeIo, timeoutMs: number): Reply | undefined;
  /**
   * Resolves true once the destination acknowledged round `round`, false when it did not
   * within `timeoutMs` (a 1.0 destination never does).
   */
  acked(round: number, timeoutMs: number): Promise<boolean>;
  /** The destination's acknowledgements say it reads the last pages natively (stream 1.2). */
  readonly marks: boolean;
  /** They ask for the state before the last pages (stream 1.3). */
  readonly stateFirst: boolean;
  /** Settles when the connection ended. */
  readonly done: Promise<void>;
}

/** One outgoing migration. Call `run()` once. */
export class Migration {
  #status: MigrationStatus;
  #progress: PrecopyProgress | undefined;
  readonly #started = performance.now();
  /** Where the time went (`phases`), from the start on. */
  readonly #clock = new PhaseClock();
  /** The destination acknowledges rounds (until one acknowledgement does not come). */
  #acks = true;

  /** Ends the stage `name` now (its duration into `phases`). */
  #phase(name: string): void {
    this.#clock.end(name);
  }

  constructor(
    private readonly source: MigrationSource,
    readonly uri: MigrationUri,
    private readonly options: MigrateOptions = {},
  ) {
    this.#status = { status: "active", stage: "connect", uri: formatUri(uri) };
    this.#clock.start(this.#started);
  }

  /** Where it is now. */
  status(): MigrationStatus {
    const p = this.#progress;
    const live = this.#status.status === "active" && p !== undefined;
    return live
      ? {
          ...this.#status,
          rounds: p.round,
          transferredBytes: p.transferredBytes,
          dirtyPages: p.dirtyPages,
          totalPages: p.totalPages,
          zeroPages: p.zeroPages,
          bandwidth: p.bandwidth,
          totalMs: Math.round(performance.now() - this.#started),
        }
      : this.#status;
  }

  /**
   * Moves the guest. Resolves with the final status: "completed" (the source must now stop the
   * guest for good) or "failed" (the guest runs on here as before).
   */
  async run(): Promise<MigrationStatus> {
    this.source.start?.();
    try {
      return await this.#run();
    } finally {
      this.source.end?.();
    }
  }

  async #run(): Promise<MigrationStatus> {
    let channel: Channel | undefined;
    let paused = false;
    let committed = false;
    let logging = false;
    let rejected: string | undefined;
    let precopy: Precopy | undefined;
    let replies: ReplyWatch | undefined;
    try {
      channel = await connectChannel(this.uri, this.options.timeouts ?? DEFAULT_TIMEOUTS);
      this.#phase("connect");
      const ch = channel;
      const watch = this.#watch(ch, (why) => {
        rejected = why;
        ch.destroy();
      });
      replies = watch;
      const write = (chunks: readonly Uint8Array[], sent?: () => void): Promise<void> =>
        ch.write(chunks, sent);
      const { arch, backend } = this.source;
      await write([
        encodeStreamHeader(arch, backend, HEADER_FLAG_ROUND_ACKS),
        ...encodeMetaFrame(this.source.describe()),
      ]);
      await write(encodeLayoutFrame(this.#layout()));
      this.#phase("header");
      this.#status = { ...this.#status, stage: "precopy" };
      if (this.source.setDirtyLogging !== undefined) {
        logging = true;
        await this.source.setDirtyLogging(true, () => this.#rehearse());
        this.#phase("logging");
      }
      precopy = new Precopy(this.source.ram, write, {
        downtimeLimitMs: this.options.downtimeLimitMs ?? MIGRATE_DEFAULTS.downtimeLimitMs,
        maxRounds: this.options.maxRounds ?? MIGRATE_DEFAULTS.maxRounds,
        ...(this.options.maxBandwidth === undefined
          ? {}
          : { maxBandwidth: this.options.maxBandwidth }),
        touched: touchedPages,
        settle: (round) => this.#settle(ch, watch, round),
        onRound: (p) => {
          this.#progress = p;
          this.#phase(`round${p.round}`);
        },
      });
      await precopy.iterate();
      this.#status = { ...this.#status, stage: "switchover" };
      const pausedAt = performance.now();
      await this.source.pause();
      paused = true;
      this.#phase("pause");
      // A destination that reads the last pages natively, in a process of its own
      // (./native-io.ts), gets them written natively too, gathered from RAM, while the guest is
      // paused (the event loop waits meanwhile; every wait is bounded by the stall timeout).
      const io = watch.marks ? nativeIo() : undefined;
      const send: WriteChunks = io === undefined ? write : (chunks) => ch.writeBlocking(io, chunks);
      const sink: FrameSink =
        io === undefined
          ? { write }
          : {
              write: (chunks, sent) => ch.writeBlocking(io, chunks, true).finally(sent),
              unchecked: true,
              sendDirty: (slot, bitmap) => ch.sendPagesBlocking(io, slot, bitmap),
            };
      const finalPages = watch.stateFirst
        ? await this.#stateFirst(precopy, send, sink)
        : await this.#pagesFirst(precopy, watch.marks, send, sink);
      await send(encodeEndFrame());
      this.#status = { ...this.#status, stage: "commit" };
      const limitMs = this.options.readyTimeoutMs ?? MIGRATE_DEFAULTS.readyTimeoutMs;
      const readyBy = performance.now() + limitMs;
      const reply =
        (io === undefined
          ? undefined
          : replies.nextNow(io, Math.min(HANDSHAKE_WAIT_MS, limitMs))) ??
        (await replies.next(readyBy - performance.now(), limitMs));
      this.#phase("ready");
      if (reply === undefined)
        throw new MigrationError(
          "commit",
          "the destination closed the connection before it was ready",
        );
      if (reply.reply === "error")
        throw new MigrationError("rejected", `the destination refused the state: ${reply.error}`);
      // (Round acknowledgements never come here: the watch takes them.)
      const ready = reply.reply === "ready" ? reply : undefined;
      // The commit point: from here the guest belongs to the destination. GO leaves natively
      // when the rest of the switchover did (no turn of the event loop before it).
      await (io === undefined ? ch.write([GO]) : ch.writeBlocking(io, [GO]));
      committed = true;
      this.#phase("go");
      const downtimeMs = Math.round(performance.now() - pausedAt);
      await ch.end();
      const p = precopy.progress;
      this.#status = {
        status: "completed",
        stage: "done",
        uri: formatUri(this.uri),
        rounds: p.round,
        transferredBytes: ch.bytesWritten,
        totalPages: p.totalPages,
        pagesSent: p.pagesSent + finalPages,
        zeroPages: p.zeroPages,
        finalPages,
        bandwidth: p.bandwidth,
        dirtyByRound: p.dirtyByRound,
        expectedDowntimeMs: p.expectedDowntimeMs,
        ...(p.switchover === undefined ? {} : { switchover: p.switchover }),
        totalMs: Math.round(performance.now() - this.#started),
        downtimeMs,
        pausedAt: performance.timeOrigin + pausedAt,
        phases: this.#clock.phases,
        ...(ready?.phases === undefined ? {} : { destinationPhases: ready.phases }),
        ...(ready?.cpuMs === undefined ? {} : { destinationCpuMs: ready.cpuMs }),
      };
      return this.#status;
    } catch (error) {
      // A write that failed because the destination hung up after refusing: its reason, which
      // is on its way or already queued, is the one to report.
      if (replies !== undefined && rejected === undefined) {
        await Promise.race([replies.done, new Promise((r) => setTimeout(r, 500).unref())]);
      }
      channel?.destroy();
      const message =
        rejected !== undefined
          ? `the destination refused the stream: ${rejected}`
          : error instanceof RegvisorError
            ? error.message
            : String(error);
      // Logging off while still paused (a soft memslot change needs the vCPUs parked anyway).
      const stuck = logging && !committed ? await this.#stopLogging() : undefined;
      if (paused && !committed) await this.source.resume();
      const p = precopy?.progress;
      this.#status = {
        status: "failed",
        stage: this.#status.stage ?? "connect",
        uri: formatUri(this.uri),
        rounds: p?.round ?? 0,
        transferredBytes: channel?.bytesWritten ?? 0,
        totalMs: Math.round(performance.now() - this.#started),
        phases: this.#clock.phases,
        error:
          (message.split("\n")[0] ?? "") +
          (stuck === undefined ? "" : `; dirty logging stays on: ${stuck}`),
      };
      return this.#status;
    }
  }

  /**
   * Runs the switchover's state capture and encoding once, nothing sent, while the vCPUs are
   * parked anyway for the logging change: the first run of that code (V8 compiles each function
   * on its first call) cost 5-20 ms of the guest's pause at the switchover here.
   */
  async #rehearse(): Promise<void> {
    try {
      const { vcpus, devices } = await this.source.capture();
      rehearseState(this.source.arch, this.source.backend, vcpus, devices);
    } catch {
      // Only a warm-up: whatever failed here fails again, reported, at the switchover.
    }
  }

  /**
   * The switchover of stream 1.3: the state is captured at once (before the dirty log is read
   * for the last time, so whatever completing the vCPUs' last exits writes to RAM is in it) and
   * sent ahead of the last pages, so the destination checks and applies it while they are in
   * flight. Returns the number of last pages.
   */
  async #stateFirst(precopy: Precopy, send: WriteChunks, sink: FrameSink): Promise<number> {
    const { vcpus, devices } = await this.source.capture();
    this.#phase("capture");
    const frames = [...encodeSwitchoverFrame(vcpus.length + devices.length)];
    for (const vcpu of vcpus) frames.push(...encodeVcpuFrame(vcpu, this.source.arch));
    for (const device of devices) frames.push(...encodeDeviceFrame(device));
    await send(frames);
    this.#phase("state");
    const finalPages = await precopy.finish(sink);
    this.#phase("final");
    return finalPages;
  }

  /**
   * The switchover of streams 1.0–1.2: the last pages, then the state (captured first, as in
   * 1.3, so the last dirty-log read sees whatever completing the vCPUs' last exits wrote).
   */
  async #pagesFirst(
    precopy: Precopy,
    marks: boolean,
    send: WriteChunks,
    sink: FrameSink,
  ): Promise<number> {
    const { vcpus, devices } = await this.source.capture();
    this.#phase("capture");
    if (marks) await send(encodeSwitchoverFrame());
    const finalPages = await precopy.finish(sink);
    this.#phase("final");
    for (const vcpu of vcpus) await send(encodeVcpuFrame(vcpu, this.source.arch));
    for (const device of devices) await send(encodeDeviceFrame(device));
    this.#phase("state");
    return finalPages;
  }

  /**
   * The end of a pre-copy round: its bytes have left and the destination stored them (its
   * `round` acknowledgement), so the round's time is the real transfer rate and a pause after
   * the last round carries no backlog. A destination that does not acknowledge (stream 1.0)
   * is waited for once, `ACK_WAIT_MS`, then never again.
   */
  async #settle(channel: Channel, replies: ReplyWatch, round: number): Promise<void> {
    await channel.flushed();
    if (this.#acks && !(await replies.acked(round, ACK_WAIT_MS))) this.#acks = false;
  }

  /** Turns logging off after a failure; returns why it stays on, if it does. */
  async #stopLogging(): Promise<string | undefined> {
    try {
      await this.source.setDirtyLogging?.(false);
      return undefined;
    } catch (error) {
      return error instanceof Error ? error.message : String(error);
    }
  }

  #layout(): LayoutSlot[] {
    return this.source.ram.memory.map((m) => ({
      slot: m.slot,
      // Logging is this migration's, not the machine's: the destination starts without it.
      flags: memslotFlags({ readOnly: m.readOnly, logDirty: false }),
      guestPhysAddr: m.guestPhysAddr,
      length: m.size,
    }));
  }

  /**
   * Reads the destination's replies in the background: an `error` reply at any time aborts the
   * migration through `abort`; `next()` waits for the reply to END.
   */
  #watch(channel: Channel, abort: (why: string) => void): ReplyWatch {
    const decoder = new ReplyDecoder();
    const queue: Reply[] = [];
    let acked = 0;
    let marks = false;
    let stateFirst = false;
    let waiter: (() => void) | undefined;
    let ended = false;
    let failure: Error | undefined;
    const take = (bytes: Uint8Array): void => {
      for (const reply of decoder.push(bytes)) {
        if (reply.reply === "error") abort(reply.error);
        if (reply.reply === "round") {
          acked = Math.max(acked, reply.round);
          marks = reply.switchover === true;
          stateFirst = reply.stateFirst === true;
        } else queue.push(reply);
      }
    };
    const done = (async () => {
      try {
        for (;;) {
          const bytes = await channel.read();
          if (bytes === undefined) break;
          take(bytes);
          waiter?.();
        }
      } catch (error) {
        failure = error instanceof Error ? error : new Error(String(error));
      }
      ended = true;
      waiter?.();
    })();
    const wait = (ms: number): Promise<void> =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, ms);
        waiter = () => {
          clearTimeout(timer);
          waiter = undefined;
          resolve();
        };
      });
    return {
      done,
      get marks() {
        return marks;
      },
      get stateFirst() {
        return stateFirst;
      },
      acked: async (round, timeoutMs) => {
        const deadline = performance.now() + timeoutMs;
        for (;;) {
          if (acked >= round) return true;
          if (failure !== undefined) throw failure;
          if (ended)
            throw new MigrationError("connection", "the destination closed the connection");
          const left = deadline - performance.now();
          if (left <= 0) return false;
          await wait(left);
        }
      },
      nextNow: (io, timeoutMs) => {
        const recvSome = io.recvSome;
        const deadline = performance.now() + timeoutMs;
        try {
          for (;;) {
            // What Node read already comes first (this read is no longer its to take).
            for (const bytes of channel.takeReceived()) take(bytes);
            const reply = queue.shift();
            if (reply !== undefined) return reply;
            const fd = channel.fd;
            const left = Math.ceil(deadline - performance.now());
            if (recvSome === undefined || fd === undefined || ended || left <= 0) return undefined;
            const r = recvSome(fd, MAX_REPLY_BYTES, left);
            // Nothing in time, or the end of the stream, or an error: Node's socket sees the
            // same, and next() reports it.
            if (r.code !== IO_CODES.ok) return undefined;
            take(r.bytes);
          }
        } catch (error) {
          // A malformed reply: next() reports it as the background reader would have.
          failure = error instanceof Error ? error : new Error(String(error));
          return undefined;
        }
      },
      next: async (timeoutMs, limitMs = timeoutMs) => {
        const deadline = performance.now() + timeoutMs;
        for (;;) {
          const reply = queue.shift();
          if (reply !== undefined) return reply;
          if (failure !== undefined) throw failure;
          if (ended) return undefined;
          const left = deadline - performance.now();
          if (left <= 0) {
            throw new MigrationError(
              "timeout",
              `the destination did not say ready within ${limitMs} ms`,
            );
          }
          await wait(left);
        }
      },
    };
  }
}

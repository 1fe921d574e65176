/**
 * The virtio-mmio transport, version 2 (virtio 1.2 §4.2.2), as a base class for devices.
 *
 * Registers (32-bit, little-endian; narrower accesses below 0x100 read 0 and are ignored):
 *   0x000 MagicValue 0x74726976 ("virt")   0x044 QueueReady
 *   0x004 Version 2                          0x050 QueueNotify (queue index)
 *   0x008 DeviceID                           0x060 InterruptStatus (bit 0 used buffer, bit 1 config)
 *   0x00c VendorID                           0x064 InterruptACK
 *   0x010 DeviceFeatures (word DeviceFeaturesSel, 0x014)     0x070 Status
 *   0x020 DriverFeatures (word DriverFeaturesSel, 0x024)     0x080/0x084 QueueDescLow/High
 *   0x030 QueueSel                           0x090/0x094 QueueDriverLow/High
 *   0x034 QueueNumMax (0 for a queue that does not exist)   0x0a0/0x0a4 QueueDeviceLow/High
 *   0x038 QueueNum                           0x0b0/0x0b4 SHMLen, 0x0b8/0x0bc SHMBase: all-ones (no regions)
 *   0x0fc ConfigGeneration                   0x100… device configuration space (any width)
 *
 * Features: the transport offers VIRTIO_F_VERSION_1 (bit 32, required: FEATURES_OK is refused
 * without it, as is any bit the device did not offer), VIRTIO_F_RING_INDIRECT_DESC (bit 28) and
 * VIRTIO_F_RING_EVENT_IDX (bit 29).
 * Queues run only after DRIVER_OK. Writing 0 to Status resets the device (§4.2.2.1).
 *
 * A driver that breaks the rules (a bad queue layout at QueueReady, a malformed chain, a request
 * the device cannot answer) puts the device into DEVICE_NEEDS_RESET (§2.1.1): status bit 64
 * set, a configuration-change interrupt, and no more queue processing until reset.
 * `needsResetReason` says why, for the machine's log. The interrupt output is level: high
 * while InterruptStatus is not 0.
 */
import { StateReader, StateWriter, stateReader } from "../state.js";
import type { Device, DeviceState, DmaMemory, IrqLine, MmioDevice } from "../types.js";
import {
  SplitQueue,
  VirtqueueError,
  checkLayout,
  type QueueFeatures,
  type QueueLayout,
} from "./queue.js";

/** Device status bits (§2.1). */
export const VIRTIO_STATUS = {
  ACKNOWLEDGE: 1,
  DRIVER: 2,
  DRIVER_OK: 4,
  FEATURES_OK: 8,
  DEVICE_NEEDS_RESET: 64,
  FAILED: 128,
} as const;

/** Transport feature bits (§6). */
export const VIRTIO_F = { RING_INDIRECT_DESC: 28n, RING_EVENT_IDX: 29n, VERSION_1: 32n } as const;

/** "virt" little-endian (§4.2.2). */
export const VIRTIO_MMIO_MAGIC = 0x74726976;
/** Our VendorID: "regv" little-endian (informative only; Linux prints it in sysfs). */
export const VIRTIO_MMIO_VENDOR = 0x76676572;
/** Size of one virtio-mmio window (QEMU virt: 0x1000 apart, 0x200 used). */
export const VIRTIO_MMIO_SIZE = 0x200;

const CONFIG_BASE = 0x100;
const INT_USED = 1;
const INT_CONFIG = 2;
const TRANSPORT_FEATURES =
  (1n << VIRTIO_F.VERSION_1) |
  (1n << VIRTIO_F.RING_INDIRECT_DESC) |
  (1n << VIRTIO_F.RING_EVENT_IDX);
const STATE_VERSION = 1;

/** The driver's view of one queue's registers. */
interface QueueRegs {
  num: number;
  ready: boolean;
  desc: bigint;
  driver: bigint;
  device: bigint;
}

const freshQueue = (): QueueRegs => ({ num: 0, ready: false, desc: 0n, driver: 0n, device: 0n });

/** What a concrete virtio device tells the transport. */
export interface VirtioDeviceSpec {
  /** Device name in snapshots ("virtio-blk0"). */
  readonly name: string;
  /** Virtio device ID (§5: 2 block, 3 console). */
  readonly deviceId: number;
  /** Device-specific feature bits offered (the transport adds its own). */
  readonly features: bigint;
  /** QueueNumMax of each queue; the length is the number of queues. */
  readonly queueMax: readonly number[];
  /** Guest RAM for DMA. */
  readonly mem: DmaMemory;
  /** The interrupt output (PLIC source 1 + n on RISC-V). */
  readonly irq: IrqLine;
}

/** A virtio-mmio device: the transport, with the device-specific parts left to subclasses. */
export abstract class VirtioMmio implements MmioDevice, Device {
  readonly name: string;
  protected readonly mem: DmaMemory;
  private readonly irq: IrqLine;
  private readonly deviceId: number;
  private readonly deviceFeatures: bigint;
  private readonly queueMax: readonly number[];
  private status = 0;
  private deviceFeaturesSel = 0;
  private driverFeaturesSel = 0;
  private driverFeatures = 0n;
  private queueSel = 0;
  private interruptStatus = 0;
  private configGeneration = 0;
  private regs: QueueRegs[];
  private live: (SplitQueue | undefined)[];
  private level = false;
  /** Why the device is in DEVICE_NEEDS_RESET, or "" when it is not. */
  needsResetReason = "";

  constructor(spec: VirtioDeviceSpec) {
    this.name = spec.name;
    this.mem = spec.mem;
    this.irq = spec.irq;
    this.deviceId = spec.deviceId;
    this.deviceFeatures = spec.features | TRANSPORT_FEATURES;
    this.queueMax = spec.queueMax;
    this.regs = spec.queueMax.map(freshQueue);
    this.live = spec.queueMax.map(() => undefined);
  }

  /** The device-specific configuration space (read at 0x100…; its length is the space's). */
  protected abstract config(): Uint8Array;
  /** The driver notified queue `index`, which is live. May throw VirtqueueError. */
  protected abstract process(index: number): void;
  /** Device-specific part of a reset (§4.2.2.1: Status ← 0). */
  protected abstract resetDevice(): void;
  /** Appends the device-specific state. */
  protected abstract saveDevice(w: StateWriter): void;
  /** Reads the device-specific state; returns a function that applies it (called only on success). */
  protected abstract restoreDevice(r: StateReader): () => void;

  /** The negotiated feature bits. */
  protected negotiated(bit: bigint): boolean {
    return ((this.driverFeatures >> bit) & 1n) === 1n;
  }

  /** Queue `index` when the device may process it (DRIVER_OK, ready, not NEEDS_RESET). */
  protected queue(index: number): SplitQueue | undefined {
    if ((this.status & VIRTIO_STATUS.DRIVER_OK) === 0) return undefined;
    if (this.status & VIRTIO_STATUS.DEVICE_NEEDS_RESET) return undefined;
    return this.live[index];
  }

  /** Raises the used-buffer interrupt unless the driver suppressed it on `q`. */
  protected usedBuffers(q: SplitQueue): void {
    if (q.interruptWanted()) {
      this.interruptStatus |= INT_USED;
      this.update();
    }
  }

  /** Runs `work`; a VirtqueueError puts the device into DEVICE_NEEDS_RESET. */
  protected guarded(work: () => void): void {
    try {
      work();
    } catch (e) {
      if (!(e instanceof VirtqueueError)) throw e;
      this.fail(e.message);
    }
  }

  /** Enters DEVICE_NEEDS_RESET (§2.1.1) with a configuration-change interrupt. */
  protected fail(reason: string): void {
    if (this.status & VIRTIO_STATUS.DEVICE_NEEDS_RESET) return;
    this.needsResetReason = reason;
    this.status |= VIRTIO_STATUS.DEVICE_NEEDS_RESET;
    this.interruptStatus |= INT_CONFIG;
    this.update();
  }

  private update(): void {
    const level = this.interruptStatus !== 0;
    if (level !== this.level) {
      this.level = level;
      this.irq.set(level);
    }
  }

  /** MMIO read: 32-bit registers, any width in the configuration space. */
  mmioRead(offset: number, data: Uint8Array): void {
    data.fill(0);
    if (offset >= CONFIG_BASE) {
      const config = this.config();
      const start = offset - CONFIG_BASE;
      if (start < config.length) data.set(config.subarray(start, start + data.length));
      return;
    }
    if (data.length !== 4 || (offset & 3) !== 0) return;
    new DataView(data.buffer, data.byteOffset, 4).setUint32(0, this.readRegister(offset), true);
  }

  /** MMIO write: 32-bit registers; the configuration space is read-only here. */
  mmioWrite(offset: number, data: Uint8Array): void {
    if (offset >= CONFIG_BASE || data.length !== 4 || (offset & 3) !== 0) return;
    this.writeRegister(offset, new DataView(data.buffer, data.byteOffset, 4).getUint32(0, true));
  }

  private selected(): QueueRegs | undefined {
    return this.regs[this.queueSel];
  }

  private readRegister(offset: number): number {
    const q = this.selected();
    switch (offset) {
      case 0x000:
        return VIRTIO_MMIO_MAGIC;
      case 0x004:
        return 2;
      case 0x008:
        return this.deviceId;
      case 0x00c:
        return VIRTIO_MMIO_VENDOR;
      case 0x010:
        return this.deviceFeaturesSel > 1
          ? 0
          : Number((this.deviceFeatures >> BigInt(32 * this.deviceFeaturesSel)) & 0xffffffffn);
      case 0x034:
        return this.queueMax[this.queueSel] ?? 0;
      case 0x038:
        return q?.num ?? 0;
      case 0x044:
        return q?.ready ? 1 : 0;
      case 0x060:
        return this.interruptStatus;
      case 0x070:
        return this.status;
      case 0x080:
      case 0x084:
        return half(q?.desc ?? 0n, offset);
      case 0x090:
      case 0x094:
        return half(q?.driver ?? 0n, offset);
      case 0x0a0:
      case 0x0a4:
        return half(q?.device ?? 0n, offset);
      case 0x0b0:
      case 0x0b4:
      case 0x0b8:
      case 0x0bc:
        return 0xffffffff; // no shared memory regions (§4.2.2: length -1)
      case 0x0fc:
        return this.configGeneration;
      default:
        return 0;
    }
  }

  private writeRegister(offset: number, value: number): void {
    const q = this.selected();
    const settable = q !== undefined && !q.ready;
    switch (offset) {
      case 0x014:
        this.deviceFeaturesSel = value;
        return;
      case 0x020:
        this.writeDriverFeatures(value);
        return;
      case 0x024:
        this.driverFeaturesSel = value;
        return;
      case 0x030:
        this.queueSel = value;
        return;
      case 0x038:
        if (settable) q.num = value;
        return;
      case 0x044:
        this.writeQueueReady(value);
        return;
      case 0x050:
        this.notify(value);
        return;
      case 0x064:
        this.interruptStatus &= ~value;
        this.update();
        return;
      case 0x070:
        this.writeStatus(value);
        return;
      case 0x080:
      case 0x084:
        if (settable) q.desc = setHalf(q.desc, offset, value);
        return;
      case 0x090:
      case 0x094:
        if (settable) q.driver = setHalf(q.driver, offset, value);
        return;
      case 0x0a0:
      case 0x0a4:
        if (settable) q.device = setHalf(q.device, offset, value);
        return;
      default:
        return;
    }
  }

  private writeDriverFeatures(value: number): void {
    // Features are fixed once FEATURES_OK is set (§3.1.1 step 5).
    if (this.status & VIRTIO_STATUS.FEATURES_OK || this.driverFeaturesSel > 1) return;
    const shift = BigInt(32 * this.driverFeaturesSel);
    const mask = 0xffffffffn << shift;
    this.driverFeatures = (this.driverFeatures & ~mask) | (BigInt(value >>> 0) << shift);
  }

  private writeStatus(value: number): void {
    if (value === 0) {
      this.reset();
      return;
    }
    let next = value & 0xff & ~VIRTIO_STATUS.DEVICE_NEEDS_RESET;
    next |= this.status & VIRTIO_STATUS.DEVICE_NEEDS_RESET;
    const settingFeaturesOk =
      next & VIRTIO_STATUS.FEATURES_OK && !(this.status & VIRTIO_STATUS.FEATURES_OK);
    if (settingFeaturesOk) {
      // Refuse (leave FEATURES_OK clear) features we did not offer, and legacy drivers.
      const unknown = this.driverFeatures & ~this.deviceFeatures;
      if (unknown !== 0n || !this.negotiated(VIRTIO_F.VERSION_1))
        next &= ~VIRTIO_STATUS.FEATURES_OK;
    }
    this.status = next;
    if (next & VIRTIO_STATUS.DRIVER_OK && !(next & VIRTIO_STATUS.FEATURES_OK))
      this.fail("the driver set DRIVER_OK without FEATURES_OK");
  }

  private writeQueueReady(value: number): void {
    const q = this.selected();
    if (q === undefined) return;
    if ((value & 1) === 0) {
      q.ready = false;
      this.live[this.queueSel] = undefined;
      return;
    }
    if (q.ready) return;
    const layout: QueueLayout = { size: q.num, desc: q.desc, driver: q.driver, device: q.device };
    const max = this.queueMax[this.queueSel] ?? 0;
    const problem = checkLayout(this.mem, layout, max);
    if (problem !== undefined) {
      this.fail(`queue ${this.queueSel}: ${problem}`);
      return;
    }
    q.ready = true;
    this.live[this.queueSel] = new SplitQueue(this.mem, layout, this.ringFeatures());
  }

  private ringFeatures(): QueueFeatures {
    return ringFeatures(this.driverFeatures);
  }

  private notify(value: number): void {
    const index = value & 0xffff;
    if (this.queue(index) === undefined) return;
    this.guarded(() => {
      this.process(index);
    });
  }

  /** Status ← 0: everything back to its power-on value (§4.2.2.1). */
  private reset(): void {
    this.status = 0;
    this.deviceFeaturesSel = 0;
    this.driverFeaturesSel = 0;
    this.driverFeatures = 0n;
    this.queueSel = 0;
    this.interruptStatus = 0;
    this.needsResetReason = "";
    this.regs = this.queueMax.map(freshQueue);
    this.live = this.queueMax.map(() => undefined);
    this.resetDevice();
    this.update();
  }

  /** The transport's and the device's whole state, queue indices included. */
  save(): DeviceState {
    const w = new StateWriter()
      .u32(this.status)
      .u32(this.deviceFeaturesSel)
      .u32(this.driverFeaturesSel)
      .u64(this.driverFeatures)
      .u32(this.queueSel)
      .u32(this.interruptStatus)
      .u32(this.configGeneration)
      .bytes(new TextEncoder().encode(this.needsResetReason))
      .u32(this.regs.length);
    this.regs.forEach((q, i) => {
      const live = this.live[i];
      w.u32(q.num).bool(q.ready).u64(q.desc).u64(q.driver).u64(q.device);
      w.u16(live?.lastAvail ?? 0).u16(live?.usedIdx ?? 0);
    });
    this.saveDevice(w);
    return { version: STATE_VERSION, bytes: w.finish() };
  }

  /**
   * Replaces the device's state; live queues are re-checked against guest RAM, so restore
   * RAM first.
   * @throws DeviceStateError when the bytes are malformed, were saved from a device with
   *   another queue count, or a ready queue does not fit guest RAM (the device is unchanged).
   */
  restore(state: DeviceState): void {
    const r = stateReader(this.name, state, STATE_VERSION);
    const status = r.u32("Status");
    const deviceFeaturesSel = r.u32("DeviceFeaturesSel");
    const driverFeaturesSel = r.u32("DriverFeaturesSel");
    const driverFeatures = r.u64("DriverFeatures");
    const queueSel = r.u32("QueueSel");
    const interruptStatus = r.u32("InterruptStatus");
    const configGeneration = r.u32("ConfigGeneration");
    let reason: string;
    try {
      reason = new TextDecoder("utf-8", { fatal: true }).decode(r.bytes("the reset reason", 4096));
    } catch {
      throw r.fail("the reset reason is not UTF-8");
    }
    const count = r.u32("the number of queues");
    if (count !== this.queueMax.length)
      throw r.fail(`it has ${count} queues, this device has ${this.queueMax.length}`);
    if (status > 0xff || interruptStatus > 3)
      throw r.fail("Status or InterruptStatus has unknown bits");
    if ((driverFeatures & ~this.deviceFeatures) !== 0n)
      throw r.fail("it negotiated features this device does not offer");
    const features = ringFeatures(driverFeatures);
    const regs: QueueRegs[] = [];
    const live: (SplitQueue | undefined)[] = [];
    for (let i = 0; i < count; i++) {
      const q: QueueRegs = {
        num: r.u32("QueueNum"),
        ready: r.bool("QueueReady"),
        desc: r.u64("QueueDesc"),
        driver: r.u64("QueueDriver"),
        device: r.u64("QueueDevice"),
      };
      const lastAvail = r.u16("the next avail index");
      const usedIdx = r.u16("the next used index");
      regs.push(q);
      if (!q.ready) {
        live.push(undefined);
        continue;
      }
      const layout: QueueLayout = { size: q.num, desc: q.desc, driver: q.driver, device: q.device };
      const problem = checkLayout(this.mem, layout, this.queueMax[i] ?? 0);
      if (problem !== undefined) throw r.fail(`queue ${i}: ${problem}`);
      live.push(new SplitQueue(this.mem, layout, features, lastAvail, usedIdx));
    }
    const applyDevice = this.restoreDevice(r);
    r.end();
    this.status = status;
    this.deviceFeaturesSel = deviceFeaturesSel;
    this.driverFeaturesSel = driverFeaturesSel;
    this.driverFeatures = driverFeatures;
    this.queueSel = queueSel;
    this.interruptStatus = interruptStatus;
    this.configGeneration = configGeneration;
    this.needsResetReason = reason;
    this.regs = regs;
    this.live = live;
    applyDevice();
    this.level = interruptStatus !== 0;
    this.irq.set(this.level);
  }
}

function ringFeatures(features: bigint): QueueFeatures {
  return {
    indirect: ((features >> VIRTIO_F.RING_INDIRECT_DESC) & 1n) === 1n,
    eventIdx: ((features >> VIRTIO_F.RING_EVENT_IDX) & 1n) === 1n,
  };
}

function half(v: bigint, offset: number): number {
  return Number((offset & 4 ? v >> 32n : v) & 0xffffffffn);
}

function setHalf(v: bigint, offset: number, value: number): bigint {
  const word = BigInt(value >>> 0);
  return offset & 4 ? (v & 0xffffffffn) | (word << 32n) : (v & ~0xffffffffn) | word;
}

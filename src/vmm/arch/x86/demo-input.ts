/**
 * The x86 demo guest's input port (guests/x86/demo.S): an IN of 4 bytes from port 0xEA reads the
 * n whose Fibonacci number the guest computes. A port device with saved state, so a snapshot of
 * the demo carries n; wired only into machines that ask for it (`MachineShape.demoInput`).
 */
import type { Device, DeviceState } from "../../devices/types.js";
import { StateWriter, stateReader } from "../../devices/state.js";
import type { PortDevice, PortOutcome } from "../../io.js";

/** Port the demo reads n from (guests/x86/demo.S). */
export const DEMO_INPUT_PORT = 0xea;
const STATE_VERSION = 1;

/** Port 0xEA answering n. */
export class DemoInput implements PortDevice, Device {
  readonly name = "demo-input";

  constructor(private n: number) {}

  ioIn(port: number): number | undefined {
    return port === DEMO_INPUT_PORT ? this.n : undefined;
  }

  ioOut(port: number): PortOutcome {
    return { kind: port === DEMO_INPUT_PORT ? "handled" : "unhandled" };
  }

  save(): DeviceState {
    return { version: STATE_VERSION, bytes: new StateWriter().u32(this.n).finish() };
  }

  restore(state: DeviceState): void {
    const r = stateReader(this.name, state, STATE_VERSION);
    const n = r.u32("n");
    r.end();
    this.n = n;
  }
}

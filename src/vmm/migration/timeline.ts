/**
 * Where a migration's time went: stages ended one after another on one clock (a migration's
 * `phases`, ./source.ts; the destination's switchover timeline in its `ready` reply,
 * ./destination.ts), with the process's CPU time over them, which tells work from waiting (a
 * stage that took 10 ms of wall time on 1 ms of CPU waited for bytes or for a core).
 */

/** Milliseconds per stage, in the order they ended; a stage that ends again adds up. */
export class PhaseClock {
  readonly #phases: Record<string, number> = {};
  #mark: number | undefined;
  #cpu: NodeJS.CpuUsage | undefined;

  /** The clock runs (`start()` was called). */
  get running(): boolean {
    return this.#mark !== undefined;
  }

  /** Starts the first stage now (and the CPU count); what came before belongs to no stage. */
  start(now = performance.now()): void {
    this.#mark = now;
    this.#cpu = process.cpuUsage();
  }

  /** Ends stage `name` now, the next one starts; ignored while the clock does not run. */
  end(name: string, now = performance.now()): void {
    if (this.#mark === undefined) return;
    this.#phases[name] = (this.#phases[name] ?? 0) + (now - this.#mark);
    this.#mark = now;
  }

  /** The stages so far, to a tenth of a millisecond. */
  get phases(): Record<string, number> {
    return Object.fromEntries(Object.entries(this.#phases).map(([name, ms]) => [name, round(ms)]));
  }

  /** CPU time of this process (all its threads) since `start()`, ms; undefined before it. */
  cpuMs(): number | undefined {
    if (this.#cpu === undefined) return undefined;
    const used = process.cpuUsage(this.#cpu);
    return round((used.user + used.system) / 1000);
  }
}

/** Milliseconds to a tenth. */
function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}

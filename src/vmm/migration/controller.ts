/**
 * A machine's outgoing migrations, for its control socket: one at a time, the last one's status
 * kept for `GET /migrate`, and on success the machine told to end (reason "migrated"). The
 * machine lends a `MigrationSource` (its RAM, pause/resume, state capture) when one starts.
 */
import { ControlError, type MigrateRequest } from "../api/control.js";
import { Migration, type MigrationSource, type MigrationStatus } from "./source.js";
import { formatUri, parseMigrationUri, type ChannelTimeouts } from "./transport.js";

/** What the controller needs from its machine. */
export interface MigratableMachine {
  /** The machine's state now ("running", "paused", …). */
  state(): string;
  /** A source over the machine as it is now. */
  source(): MigrationSource;
  /** The guest left: end the run with reason "migrated". */
  migrated(where: string): void;
}

/** Outgoing migrations of one machine (module header). */
export class MigrationController {
  #current: Migration | undefined;
  #last: MigrationStatus = { status: "none" };

  constructor(
    private readonly machine: MigratableMachine,
    private readonly timeouts?: ChannelTimeouts,
  ) {}

  /**
   * Runs one migration to its end.
   * @throws ControlError 409 when the machine is not running or a migration is under way; 400
   *   for a malformed address.
   */
  async migrate(request: MigrateRequest): Promise<MigrationStatus> {
    const state = this.machine.state();
    if (state !== "running" && state !== "paused") {
      throw new ControlError(409, `Cannot migrate the machine: it is ${state}`);
    }
    if (this.#current !== undefined) {
      throw new ControlError(409, "Cannot migrate the machine: a migration is under way");
    }
    let uri;
    try {
      uri = parseMigrationUri(request.uri);
    } catch (error) {
      throw new ControlError(400, (error as Error).message);
    }
    const migration = new Migration(this.machine.source(), uri, {
      ...(request.downtimeLimitMs === undefined
        ? {}
        : { downtimeLimitMs: request.downtimeLimitMs }),
      ...(request.maxBandwidth === undefined ? {} : { maxBandwidth: request.maxBandwidth }),
      ...(this.timeouts === undefined ? {} : { timeouts: this.timeouts }),
    });
    this.#current = migration;
    try {
      this.#last = await migration.run();
    } finally {
      this.#current = undefined;
    }
    if (this.#last.status === "completed") this.machine.migrated(formatUri(uri));
    return this.#last;
  }

  /** The migration under way, else the last one's final status. */
  status(): MigrationStatus {
    return this.#current?.status() ?? this.#last;
  }
}

/**
 * Letting the event loop run from a synchronous run loop, so signal handlers (SIGINT, SIGTERM)
 * run between two `vcpu.run()` calls.
 *
 * A signal is handed to JavaScript when libuv polls its signal pipe (the poll phase). One
 * `setImmediate` is not enough: queued while the loop is already past its poll phase, it runs
 * in the same iteration's check phase with no poll in between, and a signal that interrupted
 * KVM_RUN just now would only be seen after the next KVM_RUN — which may never return. An
 * immediate queued from the check phase runs in the next iteration, after its poll: two in a
 * row always include a poll.
 */

const immediate = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Resolves after the event loop has gone through at least one poll phase. */
export async function turnEventLoop(): Promise<void> {
  await immediate();
  await immediate();
}

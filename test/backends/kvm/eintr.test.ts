import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { IOCTLS } from "../../../src/abi/kvm/ioctls.js";
import { ERRNO } from "../../../src/abi/kvm/errno.js";
import { retryOnEintr } from "../../../src/backends/kvm/ffi.js";

/** An ioctl attempt that fails with `errnos` in turn, then succeeds with `result`. */
function scripted(errnos: number[], result = 7): { attempt: () => number; calls: () => number } {
  let calls = 0;
  return {
    attempt: () => {
      const errno = errnos[calls++];
      return errno === undefined ? result : -errno;
    },
    calls: () => calls,
  };
}

describe("retryOnEintr()", () => {
  it("repeats an ioctl interrupted by signals until it completes", () => {
    const s = scripted([ERRNO.EINTR, ERRNO.EINTR]);
    const first = s.attempt();
    assert.equal(retryOnEintr(IOCTLS.KVM_CREATE_VM.number, first, s.attempt), 7);
    assert.equal(s.calls(), 3);
  });

  it("returns other errors at once", () => {
    const s = scripted([ERRNO.EINTR, ERRNO.EINVAL, ERRNO.EINTR]);
    const first = s.attempt();
    assert.equal(retryOnEintr(IOCTLS.KVM_GET_MSRS.number, first, s.attempt), -ERRNO.EINVAL);
    assert.equal(s.calls(), 2);
  });

  it("never repeats KVM_RUN: its EINTR is immediate_exit or a signal for the VMM", () => {
    const s = scripted([ERRNO.EINTR]);
    const first = s.attempt();
    assert.equal(retryOnEintr(IOCTLS.KVM_RUN.number, first, s.attempt), -ERRNO.EINTR);
    assert.equal(s.calls(), 1);
  });

  it("gives up after a bounded number of attempts in a signal storm", () => {
    const s = scripted(new Array<number>(1000).fill(ERRNO.EINTR));
    const first = s.attempt();
    assert.equal(retryOnEintr(IOCTLS.KVM_CREATE_VM.number, first, s.attempt), -ERRNO.EINTR);
    assert.ok(s.calls() > 1 && s.calls() <= 64, `${s.calls()} attempts`);
  });
});

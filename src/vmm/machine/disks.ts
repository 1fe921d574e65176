/**
 * The machine's disks (`--disk FILE[,readonly]`, repeatable), opened and checked before any VM
 * exists (issue 11 point 10): a missing, unreadable or directory path, a read-write disk on a
 * file that cannot be written, and the same file given twice (after resolving symlinks and
 * relative paths) are refused with one line, and nothing stays open.
 */
import { realpathSync } from "node:fs";
import { RegvisorError } from "../../errors.js";
import { openRawDisk, type RawDisk } from "../devices/virtio/disk.js";

/** One `--disk`. */
export interface DiskSpec {
  readonly path: string;
  readonly readOnly: boolean;
}

/** The same disk image was given twice. */
export class DuplicateDiskError extends RegvisorError {
  constructor(path: string, first: string) {
    super(
      "DISK_DUPLICATE",
      `Cannot attach disk "${path}": it is the same file as "${first}", given earlier; give each image once`,
    );
  }
}

/**
 * Parses one `--disk` value: `FILE` or `FILE,readonly`.
 * @throws RangeError for another option after the comma or an empty path.
 */
export function parseDiskSpec(text: string): DiskSpec {
  const comma = text.lastIndexOf(",");
  const [path, option] =
    comma < 0 ? [text, undefined] : [text.slice(0, comma), text.slice(comma + 1)];
  if (option !== undefined && option !== "readonly") {
    throw new RangeError(`--disk ${text}: unknown option "${option}"; FILE or FILE,readonly`);
  }
  if (path === "") throw new RangeError(`--disk ${text}: the path is empty`);
  return { path, readOnly: option === "readonly" };
}

/**
 * Opens every disk, in order.
 * @throws DiskError (missing, unreadable, directory, not writable) or DuplicateDiskError; the
 *   disks opened before the failure are closed again.
 */
export function openDisks(specs: readonly DiskSpec[]): RawDisk[] {
  const opened: RawDisk[] = [];
  const seen = new Map<string, string>();
  try {
    for (const spec of specs) {
      const disk = openRawDisk(spec.path, { readOnly: spec.readOnly });
      opened.push(disk);
      const real = realpathSync(spec.path);
      const first = seen.get(real);
      if (first !== undefined) throw new DuplicateDiskError(spec.path, first);
      seen.set(real, spec.path);
    }
    return opened;
  } catch (error) {
    for (const disk of opened) disk.close();
    throw error;
  }
}

/**
 * regvisor's optional native addon (native/*.cc, built at install by scripts/build-native.mjs):
 * one file serving the ioctl path (src/backends/kvm/ffi.ts), CRC32C (src/vmm/snapshot/
 * crc32c.ts) and the migration switchover I/O (src/vmm/migration/native-io.ts). Each caller
 * falls back to its own JS path when the file is missing or lacks its function.
 */
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The addon's path under the package root. */
export const ADDON_FILE = "build/Release/regvisor_kvm.node";

/** The package root's addon, searched upward from this module (dist/src or src), if built. */
export function findAddon(): string | undefined {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, ADDON_FILE);
    if (existsSync(candidate)) return candidate;
    dir = dirname(dir);
  }
  return undefined;
}

/** Loads the addon at `file` (throws what Node's loader throws: a foreign build, a bad file). */
export function requireAddon(file: string): unknown {
  return createRequire(import.meta.url)(file);
}

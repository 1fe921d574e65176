// Builds regvisor's optional native ioctl path (native/kvm_ioctl.cc -> build/Release/
// regvisor_kvm.node) with the node-gyp that ships with npm, against this Node's own headers.
// Run by `npm install` / `npm ci` (the "install" script) and by scripts/setup.sh.
//
// It never fails the install: without a C++ compiler, make, python3 or Node's headers,
// regvisor uses koffi for every ioctl (a little slower), and this prints one line saying so.
// The full build output of a failed attempt is kept in build/native-build.log.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const log = join(root, "build", "native-build.log");

function notice(reason) {
  console.log(`regvisor: native ioctl path not built (${reason}); ioctls go through koffi`);
}

function nodeGyp() {
  // npm sets npm_config_node_gyp for lifecycle scripts; outside npm, use the copy npm bundles.
  const candidates = [
    process.env.npm_config_node_gyp,
    join(
      dirname(process.execPath),
      "../lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js",
    ),
  ];
  return candidates.find((p) => p !== undefined && p !== "" && existsSync(p));
}

function nodeDir() {
  // Build against the headers of the Node that runs us; node-gyp would otherwise try to
  // download them, which fails on a closed network.
  if (process.env.npm_config_nodedir) return process.env.npm_config_nodedir;
  const prefix = join(dirname(process.execPath), "..");
  return existsSync(join(prefix, "include/node/node.h")) ? prefix : undefined;
}

function main() {
  if (process.env.REGVISOR_NATIVE === "0") return notice("REGVISOR_NATIVE=0");
  const gyp = nodeGyp();
  if (gyp === undefined) return notice("node-gyp not found");
  const dir = nodeDir();
  if (dir === undefined) return notice("Node's C++ headers not found");
  const result = spawnSync(process.execPath, [gyp, "rebuild", `--nodedir=${dir}`], {
    cwd: root,
    encoding: "utf8",
  });
  if (result.status === 0) {
    console.log("regvisor: built the native ioctl path (build/Release/regvisor_kvm.node)");
    return;
  }
  mkdirSync(dirname(log), { recursive: true });
  writeFileSync(log, `${result.stdout ?? ""}\n${result.stderr ?? ""}\n${result.error ?? ""}\n`);
  notice(`node-gyp failed, see ${log}`);
}

main();

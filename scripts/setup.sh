#!/usr/bin/env bash
# Installs what regvisor's tests and demos need when it is missing, on a fresh Debian machine:
# the npm dependencies (npm ci) and the Debian packages for guest builds and oracles.
# Safe to run again: it only installs what is absent.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v riscv64-unknown-elf-gcc >/dev/null 2>&1 || need_apt+=(gcc-riscv64-unknown-elf)
command -v qemu-system-riscv64 >/dev/null 2>&1 || need_apt+=(qemu-system-misc)
[ -e /usr/lib/riscv64-linux-gnu/opensbi/generic/fw_dynamic.bin ] || need_apt+=(opensbi)
command -v cc >/dev/null 2>&1 || need_apt+=(gcc)
command -v dtc >/dev/null 2>&1 || need_apt+=(device-tree-compiler)
# The optional native ioctl addon (scripts/build-native.mjs) is built by node-gyp.
command -v g++ >/dev/null 2>&1 || need_apt+=(g++)
command -v make >/dev/null 2>&1 || need_apt+=(make)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
# The Linux test guest (scripts/build-linux.sh): kernel source, cross toolchain and libc for
# the static /init, and the kernel build's own tools.
[ -r /usr/src/linux-source-6.1.tar.xz ] || need_apt+=(linux-source-6.1)
command -v riscv64-linux-gnu-gcc >/dev/null 2>&1 || need_apt+=(gcc-riscv64-linux-gnu)
[ -e /usr/riscv64-linux-gnu/lib/libc.a ] || need_apt+=(libc6-dev-riscv64-cross)
for tool in bc flex bison cpio perl; do
  command -v "$tool" >/dev/null 2>&1 || need_apt+=("$tool")
done
command -v xz >/dev/null 2>&1 || need_apt+=(xz-utils)
[ -e /usr/include/openssl/ssl.h ] || need_apt+=(libssl-dev)
[ -e /usr/include/libelf.h ] || need_apt+=(libelf-dev)
# Real clients the tests drive: GDB against the gdbstub, curl against the control socket.
command -v gdb-multiarch >/dev/null 2>&1 || need_apt+=(gdb-multiarch)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
# Live-migration tests put source and destination in two network namespaces joined by a veth.
command -v ip >/dev/null 2>&1 || need_apt+=(iproute2)

if [ "${#need_apt[@]}" -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "setup: installing Debian packages: ${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  else
    echo "setup: not root, cannot install ${need_apt[*]}; tests that need them will skip" >&2
  fi
fi

# npm ci when node_modules is missing or older than the lock file.
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: npm ci"
  npm ci --no-audit --no-fund
fi

# npm ci builds the addon (the "install" script); build it if this tree has none yet.
[ -e build/Release/regvisor_kvm.node ] || node scripts/build-native.mjs

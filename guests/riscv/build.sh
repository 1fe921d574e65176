#!/usr/bin/env bash
# Builds regvisor's RISC-V guest programs with Debian's riscv64-unknown-elf-gcc into
# guests/riscv/build/ (gitignored). Every program runs unchanged on regvisor's soft backend and
# under `qemu-system-riscv64 -M virt -bios default -kernel <elf>` (S-mode payload at 0x80200000).
# Outputs are built in a private directory and renamed into place, so concurrent runs (parallel
# test files) never see a half-written ELF.
set -euo pipefail
cd "$(dirname "$0")"
CC=${CC:-riscv64-unknown-elf-gcc}
if ! command -v "$CC" >/dev/null 2>&1; then
  echo "build.sh: $CC not found (apt-get install gcc-riscv64-unknown-elf)" >&2
  exit 1
fi
mkdir -p build
tmp=$(mktemp -d build/.tmp.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
CFLAGS=(-march=rv64gc -mabi=lp64d -mcmodel=medany -O2 -nostdlib -nostartfiles -ffreestanding
  -fno-builtin -Wall -Wextra -Werror -Wno-unused-function -Wl,--no-warn-rwx-segments)
COMMON=(src/start.S src/trap.S src/vec.S src/rt.c)
# Test programs: each prints only "PASS <name>" lines on success.
TESTS=(rv64i rv64m rv64a rv64f rv64d rvc priv_trap priv_user priv_vm timer misaligned smc)
for t in "${TESTS[@]}" compute; do
  extra=()
  [ -f "src/$t.S" ] && extra+=("src/$t.S")
  "$CC" "${CFLAGS[@]}" -T src/link.ld "${COMMON[@]}" "src/$t.c" "${extra[@]}" -o "$tmp/$t.elf"
done
mv -f "$tmp"/*.elf build/
echo "build.sh: built ${#TESTS[@]} tests + compute into $(pwd)/build"

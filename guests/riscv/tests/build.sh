#!/usr/bin/env bash
# Builds the RISC-V test guests of `regvisor run FILE` (sources here) with Debian's
# riscv64-unknown-elf-gcc into guests/riscv/tests/build/ (gitignored): one ELF per guest, plus
# console.bin, the console guest as a flat binary for --load-addr 0x80200000, and high.elf, with a
# segment 2.5 GiB above the RAM base (for --mem 3G). Outputs are built
# in a private directory and renamed into place, so parallel test files never see half an ELF.
set -euo pipefail
cd "$(dirname "$0")"
CC=${CC:-riscv64-unknown-elf-gcc}
OBJCOPY=${OBJCOPY:-riscv64-unknown-elf-objcopy}
if ! command -v "$CC" >/dev/null 2>&1; then
  echo "build.sh: $CC not found (apt-get install gcc-riscv64-unknown-elf)" >&2
  exit 1
fi
mkdir -p build
tmp=$(mktemp -d build/.tmp.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
CFLAGS=(-march=rv64imac_zicsr -mabi=lp64 -mcmodel=medany -O2 -nostdlib -nostartfiles
  -ffreestanding -fno-builtin -Wall -Wextra -Werror -Wl,--no-warn-rwx-segments -Wl,--build-id=none)
GUESTS=(console boot reset status fault spin gdb)
for g in "${GUESTS[@]}"; do
  # -g: symbols and line tables for the gdbstub's tests (the loaded segments do not change).
  "$CC" "${CFLAGS[@]}" -g -T link.ld start.S "$g.c" -o "$tmp/$g.elf"
done
"$CC" "${CFLAGS[@]}" -T link.ld -Wl,--section-start=.high=0x120000000 \
  start.S high.c -o "$tmp/high.elf"
"$OBJCOPY" -O binary "$tmp/console.elf" "$tmp/console.bin"
mv -f "$tmp"/*.elf "$tmp"/*.bin build/
echo "build.sh: built ${#GUESTS[@]} guests into $(pwd)/build"

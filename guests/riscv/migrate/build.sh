#!/usr/bin/env bash
# Builds the RISC-V live-migration guests (dirty.c; see its header) with Debian's
# riscv64-unknown-elf-gcc into guests/riscv/migrate/build/ (gitignored):
#   dirty.elf      4 MiB rewritten, 50 ticks of 100 ms (the tests)
#   dirty-long.elf 4 MiB rewritten, 100 ticks (tests that migrate twice, then quit)
#   dirty-4m.elf   4 MiB rewritten, 600 ticks (the benchmark's 4 MiB dirtier)
#   dirty-64m.elf  64 MiB rewritten, 600 ticks (the benchmark's 64 MiB dirtier)
#   dirty-smp.elf  4 MiB rewritten by two harts (2 MiB each; run with --cpus 2), 50 ticks
# Built in a private directory and renamed into place, so parallel test files never see half
# an ELF.
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
CFLAGS=(-march=rv64imac_zicsr -mabi=lp64 -mcmodel=medany -O2 -nostdlib -nostartfiles
  -ffreestanding -fno-builtin -Wall -Wextra -Werror -Wl,--no-warn-rwx-segments -Wl,--build-id=none
  -T ../tests/link.ld ../tests/start.S)
"$CC" "${CFLAGS[@]}" -DDIRTY_PAGES=1024 -DTICKS=50 dirty.c -o "$tmp/dirty.elf"
"$CC" "${CFLAGS[@]}" -DDIRTY_PAGES=1024 -DTICKS=100 dirty.c -o "$tmp/dirty-long.elf"
"$CC" "${CFLAGS[@]}" -DDIRTY_PAGES=1024 -DTICKS=600 dirty.c -o "$tmp/dirty-4m.elf"
"$CC" "${CFLAGS[@]}" -DDIRTY_PAGES=16384 -DTICKS=600 dirty.c -o "$tmp/dirty-64m.elf"
"$CC" "${CFLAGS[@]}" -DDIRTY_PAGES=1024 -DTICKS=50 -DHARTS=2 dirty.c -o "$tmp/dirty-smp.elf"
mv -f "$tmp"/*.elf build/
echo "build.sh: built the migration guests into $(pwd)/build"

#!/usr/bin/env bash
# Rebuilds the demo guest: demo.elf (gitignored) and demo.bin (committed, loaded by
# `regvisor run --backend soft`). Needs Debian's gcc-riscv64-unknown-elf.
set -euo pipefail
cd "$(dirname "$0")"
CC=${CC:-riscv64-unknown-elf-gcc}
"$CC" -march=rv64gc -mabi=lp64d -mcmodel=medany -O2 -nostdlib -nostartfiles -ffreestanding \
  -fno-builtin -fno-pic -Wall -Wextra -Werror -Wl,--no-warn-rwx-segments \
  -T link.ld start.S demo.c -o demo.elf
riscv64-unknown-elf-objcopy -O binary demo.elf demo.bin
echo "build.sh: demo.bin $(wc -c <demo.bin) bytes"

#!/usr/bin/env bash
# Builds the x86-64 live-migration guest (dirty.c; see its header) with the host's gcc into
# guests/x86/migrate/build/ (gitignored): dirty.elf, an ELF64 at 0x100000 (4 MiB rewritten,
# 16 ticks of 2e8 TSC cycles). Built in a private directory and renamed into place (parallel test files).
set -euo pipefail
cd "$(dirname "$0")"
CC=${CC:-gcc}
command -v "$CC" >/dev/null 2>&1 || { echo "build.sh: $CC not found (apt-get install gcc)" >&2; exit 1; }
mkdir -p build
tmp=$(mktemp -d build/.tmp.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
"$CC" -m64 -O2 -ffreestanding -fno-builtin -fno-pic -fno-pie -no-pie -nostdlib -static \
  -mno-red-zone -mgeneral-regs-only -fno-stack-protector -fcf-protection=none -Wall -Wextra -Werror \
  -Wl,-Ttext=0x100000 -Wl,-e,_start -Wl,--build-id=none -Wl,-z,noexecstack -Wl,-z,max-page-size=0x1000 \
  dirty.c -o "$tmp/dirty.elf"
mv -f "$tmp"/*.elf build/
echo "build.sh: built the x86 migration guest into $(pwd)/build"

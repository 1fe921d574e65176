#!/usr/bin/env bash
# Builds the x86 test guests of `regvisor run FILE` (sources here) with GNU as/ld into
# guests/x86/tests/build/ (gitignored):
#   long.elf, triple.elf, spin.elf, idle.elf   ELF64 at 0x100000 (default start: long mode)
#   protected.elf                              ELF32 at 0x100000 (default: protected mode)
#   protected.bin                              the same code flat, for --x86-mode protected
#   real.bin                                   flat, for --load-addr 0x7c00 (default: real mode)
#   high.elf                                   ELF64 at 0x100000 with a segment at 5 GiB (--mem 8G)
#   kvmclock.elf                               ELF64 at 0x100000 from kvmclock.c (needs gcc; skipped
#                                              with a note without it)
# Outputs are built in a private directory and renamed into place (parallel test files).
set -euo pipefail
cd "$(dirname "$0")"
for tool in as ld; do
  command -v "$tool" >/dev/null 2>&1 || { echo "build.sh: $tool not found (apt-get install binutils)" >&2; exit 1; }
done
mkdir -p build
tmp=$(mktemp -d build/.tmp.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
LD=(ld --build-id=none -z noexecstack -z max-page-size=0x1000)
for g in long triple spin idle; do
  as --64 -o "$tmp/$g.o" "$g.S"
  "${LD[@]}" -m elf_x86_64 -Ttext 0x100000 -e _start -o "$tmp/$g.elf" "$tmp/$g.o"
done
as --64 -o "$tmp/high.o" high.S
"${LD[@]}" -m elf_x86_64 -Ttext 0x100000 --section-start=.high=0x140000000 -e _start \
  -o "$tmp/high.elf" "$tmp/high.o"
as --32 -o "$tmp/protected.o" protected.S
"${LD[@]}" -m elf_i386 -Ttext 0x100000 -e _start -o "$tmp/protected.elf" "$tmp/protected.o"
"${LD[@]}" -m elf_i386 -Ttext 0x100000 -e _start --oformat binary -o "$tmp/protected.bin" "$tmp/protected.o"
as --32 -o "$tmp/real.o" real.S
"${LD[@]}" -m elf_i386 -Ttext 0x7c00 -e _start --oformat binary -o "$tmp/real.bin" "$tmp/real.o"
if command -v "${CC:-gcc}" >/dev/null 2>&1; then
  "${CC:-gcc}" -m64 -O2 -ffreestanding -fno-builtin -fno-pic -fno-pie -no-pie -nostdlib -static \
    -mno-red-zone -mgeneral-regs-only -fno-stack-protector -fcf-protection=none -Wall -Wextra -Werror \
    -Wl,-Ttext=0x100000 -Wl,-e,_start -Wl,--build-id=none -Wl,-z,noexecstack -Wl,-z,max-page-size=0x1000 \
    kvmclock.c -o "$tmp/kvmclock.elf"
else
  echo "build.sh: ${CC:-gcc} not found: kvmclock.elf not built (apt-get install gcc)" >&2
fi
mv -f "$tmp"/*.elf "$tmp"/*.bin build/
echo "build.sh: built the x86 test guests into $(pwd)/build"

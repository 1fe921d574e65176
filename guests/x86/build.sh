#!/usr/bin/env bash
# Regenerates the flat x86 guest images (load at guest-physical 0x1000) from their sources
# with the machine's gcc preprocessor and binutils. The committed *.bin files are what regvisor
# runs; rebuild after editing any .S file (*.inc.S are shared #includes).
set -euo pipefail
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for name in demo exit-loop; do
  gcc -E -P -x assembler-with-cpp -o "$tmp/$name.s" "$name.S"
  as --64 -o "$tmp/$name.o" "$tmp/$name.s"
  ld -m elf_x86_64 -nostdlib -Ttext=0x1000 -e start -o "$tmp/$name.elf" "$tmp/$name.o"
  objcopy -O binary -j .text "$tmp/$name.elf" "$name.bin"
  echo "guests/x86/$name.bin: $(stat -c %s "$name.bin") bytes, sha256 $(sha256sum "$name.bin" | cut -d' ' -f1)"
done

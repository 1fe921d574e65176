#!/usr/bin/env bash
# Builds regvisor's RISC-V Linux test guest and caches it by a hash of everything that goes
# into it, so a second run (from this clone or another) reuses the result.
#
#   scripts/build-linux.sh          build when needed; prints the Image path on stdout
#   scripts/build-linux.sh --path   print the cached Image path, or exit 1 with the reason
#
# Inputs: Debian's linux-source-6.1 (/usr/src/linux-source-6.1.tar.xz), riscv64-linux-gnu-gcc,
# arch/riscv/configs/defconfig merged with guests/linux/config.fragment, and a built-in
# initramfs from guests/linux/initramfs.list holding the static /init compiled from
# guests/linux/init.c. The hash covers those three files, this script and the versions of
# the Debian packages (kernel source, cross compiler, cross libc).
#
# Cache (${REGVISOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/regvisor}):
#   linux-<hash>/          Image, vmlinux, .config, build.log, inputs.txt (complete or absent:
#                          assembled in a temporary directory, then renamed into place)
#   linux-src-<version>/   the extracted kernel source, shared by every build
#   linux-obj-<hash>/      the kernel object tree for one kernel configuration, kept so a
#                          change to /init alone relinks in seconds instead of rebuilding
# One lock (linux.lock) serialises builds; a second caller waits, then reuses the result.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
cache="${REGVISOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/regvisor}"
tarball=/usr/src/linux-source-6.1.tar.xz
cross=riscv64-linux-gnu-
guest="$repo/guests/linux"

say() { echo "build-linux: $*" >&2; }
fail() {
  say "$*"
  exit 1
}

mode=build
case "${1:-}" in
  "") ;;
  --path) mode=path ;;
  -h | --help)
    sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
  *) fail "unknown option '$1' (use --path, or no option to build)" ;;
esac

pkg_version() {
  dpkg-query -W -f '${Version}' "$1" 2>/dev/null || true
}

# The versions of the Debian packages the build reads; any missing one is a one-line error.
src_version="$(pkg_version linux-source-6.1)"
gcc_version="$(pkg_version gcc-riscv64-linux-gnu)"
libc_version="$(pkg_version libc6-dev-riscv64-cross)"
for p in "linux-source-6.1:$src_version" "gcc-riscv64-linux-gnu:$gcc_version" \
  "libc6-dev-riscv64-cross:$libc_version"; do
  [ -n "${p#*:}" ] || fail "cannot build the Linux guest: Debian package ${p%%:*} is not installed (run: bash scripts/setup.sh)"
done
[ -r "$tarball" ] || fail "cannot build the Linux guest: $tarball is missing (reinstall linux-source-6.1)"

# Kernel-side inputs decide the object tree; all inputs decide the result.
kernel_hash="$(
  {
    sha256sum "$0" "$guest/config.fragment" | cut -d' ' -f1
    echo "linux-source-6.1 $src_version" "gcc-riscv64-linux-gnu $gcc_version"
  } | sha256sum | cut -c1-16
)"
hash="$(
  {
    echo "$kernel_hash"
    sha256sum "$guest/init.c" "$guest/initramfs.list" | cut -d' ' -f1
    echo "libc6-dev-riscv64-cross $libc_version"
  } | sha256sum | cut -c1-16
)"
out="$cache/linux-$hash"

if [ "$mode" = path ]; then
  [ -f "$out/Image" ] || fail "no Linux guest built for the current inputs (expected $out/Image; run: bash scripts/build-linux.sh)"
  echo "$out/Image"
  exit 0
fi

if [ -f "$out/Image" ]; then
  say "cached: $out"
  echo "$out/Image"
  exit 0
fi

for tool in "${cross}gcc" make flex bison bc cpio xz perl; do
  command -v "$tool" >/dev/null 2>&1 || fail "cannot build the Linux guest: $tool is not installed (run: bash scripts/setup.sh)"
done

mkdir -p "$cache"
exec 9>"$cache/linux.lock"
if ! flock -n 9; then
  say "waiting for another Linux build in $cache"
  flock 9
fi
# Another caller may have finished this build while we waited.
if [ -f "$out/Image" ]; then
  say "cached: $out"
  echo "$out/Image"
  exit 0
fi

start=$SECONDS
src="$cache/linux-src-$src_version"
if [ ! -f "$src/Makefile" ]; then
  say "extracting $tarball"
  tmp="$(mktemp -d "$cache/.linux-src.XXXXXX")"
  tar -xJf "$tarball" -C "$tmp"
  rm -rf "$src"
  mv "$tmp/linux-source-6.1" "$src"
  rmdir "$tmp"
fi

obj="$cache/linux-obj-$kernel_hash"
stage="$(mktemp -d "$cache/.linux-$hash.XXXXXX")"
trap 'rm -rf "$stage"' EXIT
mkdir -p "$obj/regvisor-initramfs"
# The log stays beside the cache entry while building, so a failed build leaves it readable.
log="$cache/linux-$hash.log"
: >"$log"

say "compiling /init"
"${cross}gcc" -static -Os -s -Wall -Wextra -Werror -o "$obj/regvisor-initramfs/init" "$guest/init.c"
sed "s|@INIT@|$obj/regvisor-initramfs/init|" "$guest/initramfs.list" >"$obj/regvisor-initramfs/initramfs.list"

# Reproducible build stamps (the version number would otherwise count relinks in the kept
# object tree); LOCALVERSION= keeps the release exactly the source version.
kmake=(make -C "$src" O="$obj" ARCH=riscv CROSS_COMPILE="$cross" LOCALVERSION=
  KBUILD_BUILD_USER=regvisor KBUILD_BUILD_HOST=regvisor KBUILD_BUILD_VERSION=1
  "KBUILD_BUILD_TIMESTAMP=Thu Jan  1 00:00:00 UTC 1970")

say "configuring (defconfig + guests/linux/config.fragment)"
echo "CONFIG_INITRAMFS_SOURCE=\"$obj/regvisor-initramfs/initramfs.list\"" >"$stage/initramfs.config"
# merge_config.sh over the defconfig file (not an expanded .config) so symbols the
# fragment removes also drop what only they selected.
(cd "$src" && scripts/kconfig/merge_config.sh -m -O "$obj" arch/riscv/configs/defconfig \
  "$guest/config.fragment" "$stage/initramfs.config") >>"$log" 2>&1 ||
  fail "merging the config failed; see $log"
"${kmake[@]}" olddefconfig >>"$log" 2>&1 || fail "make olddefconfig failed; see $log"

# The fragment must have survived olddefconfig: a dropped symbol means an unmet dependency.
while IFS= read -r line; do
  case "$line" in
    CONFIG_*=*) grep -qxF "$line" "$obj/.config" || fail "config: $line did not survive olddefconfig (a dependency is missing)" ;;
    "# CONFIG_"*" is not set")
      sym="${line#\# }"
      sym="${sym%% *}"
      ! grep -q "^$sym=" "$obj/.config" || fail "config: $sym is still set after olddefconfig (something selects it)"
      ;;
  esac
done <"$guest/config.fragment"

jobs="$(nproc 2>/dev/null || echo 2)"
say "building Image and vmlinux with $jobs jobs (about 6 min on 2 idle cores; log: $log)"
# A progress line every 30 s from a ticker, so the build's end is not held up by a sleep.
(
  while sleep 30; do
    say "$((SECONDS - start)) s, $(grep -c '^  CC ' "$log" || true) files compiled"
  done
) &
ticker=$!
status=0
"${kmake[@]}" -j"$jobs" Image vmlinux >>"$log" 2>&1 || status=$?
kill "$ticker" 2>/dev/null || true
wait "$ticker" 2>/dev/null || true
if [ "$status" -ne 0 ]; then
  tail -n 20 "$log" >&2
  fail "the kernel build failed; the last lines are above, the whole log is $log"
fi

cp "$obj/arch/riscv/boot/Image" "$obj/vmlinux" "$obj/.config" "$stage/"
{
  echo "hash $hash"
  echo "kernel-config-hash $kernel_hash"
  echo "linux-source-6.1 $src_version"
  echo "gcc-riscv64-linux-gnu $gcc_version"
  echo "libc6-dev-riscv64-cross $libc_version"
  echo "release $("${kmake[@]}" -s kernelrelease 2>/dev/null)"
} >"$stage/inputs.txt"
rm -f "$stage/initramfs.config"
mv "$log" "$stage/build.log"
chmod 755 "$stage"
mv -T "$stage" "$out"
trap - EXIT
say "built in $((SECONDS - start)) s: $out"
echo "$out/Image"

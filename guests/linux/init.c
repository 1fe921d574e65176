/*
 * regvisor's Linux test guest: the whole userspace, PID 1 of a built-in initramfs.
 *
 * It reports what the kernel saw of the machine, one fact per line, each line prefixed
 * "init: " so tests and the QEMU differential can pick them out of the console, then
 * powers the machine off. Lines carry no timestamps or addresses: what depends on the
 * machine (command line, interrupt counts) is on its own line, apart from what must be
 * equal on every machine that boots this Image (release, CPUs online, disk contents).
 *
 * Lines, in order:
 *   init: started                         the first line (the boot benchmark times it)
 *   init: release 6.1.192                 uname(2) release
 *   init: cmdline <text>                  /proc/cmdline
 *   init: cpus online <list> count <n>    /sys/devices/system/cpu/online
 *   init: irq <line>                      /proc/interrupts lines naming ttyS0 or the PLIC
 *   init: vdX size <bytes> sum <fnv1a32>  per virtio disk /dev/vda../dev/vdh: FNV-1a of
 *                                         its first 4 KiB (fewer if the disk is smaller)
 *   init: vdX wrote <n> bytes at <offset> then "init: vdX disk ok" after fsync, or
 *   init: vdX write failed: <step> <ERRNAME> (<errno>)
 *   init: power off
 *
 * The written pattern is DISK_PATTERN repeated over DISK_WRITE_LEN bytes at
 * DISK_WRITE_OFFSET; test/linux/guest.ts holds the same constants for the host side.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <termios.h>
#include <unistd.h>

#define DISK_READ_LEN 4096
#define DISK_WRITE_OFFSET 8192
#define DISK_WRITE_LEN 512
#define DISK_PATTERN "regvisor /init wrote this sector\n"

/* One line to the console in one write(2), so lines from different sources never mix. */
static void say(const char *fmt, ...) {
  char line[1024];
  const size_t prefix = sizeof "init: " - 1;
  memcpy(line, "init: ", prefix);
  /* Leave one byte for the newline; vsnprintf writes at most room - 1 characters. */
  const size_t room = sizeof line - 1 - prefix;
  va_list ap;
  va_start(ap, fmt);
  int m = vsnprintf(line + prefix, room, fmt, ap);
  va_end(ap);
  size_t len = prefix + (m < 0 ? 0 : (size_t)m < room ? (size_t)m : room - 1);
  line[len++] = '\n';
  for (size_t off = 0; off < len;) {
    ssize_t w = write(STDOUT_FILENO, line + off, len - off);
    if (w <= 0) {
      if (w < 0 && errno == EINTR) continue;
      return;
    }
    off += (size_t)w;
  }
}

static const char *errname(int e) {
  switch (e) {
    case EROFS: return "EROFS";
    case EIO: return "EIO";
    case EPERM: return "EPERM";
    case EACCES: return "EACCES";
    case ENOSPC: return "ENOSPC";
    case EINVAL: return "EINVAL";
    case ENOENT: return "ENOENT";
    case ENXIO: return "ENXIO";
    default: return "E?";
  }
}

/* Reads a small text file into buf (NUL-terminated, trailing newline removed). */
static int read_text(const char *path, char *buf, size_t cap) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  size_t len = 0;
  while (len < cap - 1) {
    ssize_t r = read(fd, buf + len, cap - 1 - len);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    len += (size_t)r;
  }
  close(fd);
  buf[len] = '\0';
  while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == ' ')) buf[--len] = '\0';
  return (int)len;
}

static void mount_or_say(const char *src, const char *dir, const char *type) {
  mkdir(dir, 0755);
  if (mount(src, dir, type, 0, NULL) != 0 && errno != EBUSY)
    say("mount %s failed: %s (%d)", dir, errname(errno), errno);
}

/* CPUs in a list such as "0-1,3": the count of ids it names. */
static int count_cpus(const char *list) {
  int count = 0;
  const char *p = list;
  while (*p) {
    char *end;
    long a = strtol(p, &end, 10);
    long b = a;
    if (end == p) break;
    if (*end == '-') {
      p = end + 1;
      b = strtol(p, &end, 10);
    }
    count += (int)(b - a + 1);
    p = *end == ',' ? end + 1 : end;
    if (*end != ',') break;
  }
  return count;
}

/* The /proc/interrupts lines for the UART and the PLIC, whitespace collapsed. */
static void report_interrupts(void) {
  static char text[16384];
  if (read_text("/proc/interrupts", text, sizeof text) < 0) {
    say("irq unreadable: %s (%d)", errname(errno), errno);
    return;
  }
  for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
    if (!strstr(line, "ttyS0") && !strstr(line, "PLIC")) continue;
    char out[512];
    size_t n = 0;
    int space = 1;
    for (const char *c = line; *c && n < sizeof out - 1; c++) {
      if (*c == ' ' || *c == '\t') {
        if (!space) out[n++] = ' ';
        space = 1;
      } else {
        out[n++] = *c;
        space = 0;
      }
    }
    while (n > 0 && out[n - 1] == ' ') n--;
    out[n] = '\0';
    say("irq %s", out);
  }
}

static uint32_t fnv1a32(const unsigned char *p, size_t n) {
  uint32_t h = 0x811c9dc5u; /* FNV-1a offset basis and prime: draft-eastlake-fnv */
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x01000193u;
  return h;
}

static void report_disk(const char *name) {
  char path[32];
  snprintf(path, sizeof path, "/dev/%s", name);
  if (access(path, F_OK) != 0) return;

  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    say("%s open failed: %s (%d)", name, errname(errno), errno);
    return;
  }
  uint64_t size = 0;
  if (ioctl(fd, BLKGETSIZE64, &size) != 0) size = 0;
  static unsigned char head[DISK_READ_LEN];
  size_t got = 0;
  while (got < sizeof head) {
    ssize_t r = read(fd, head + got, sizeof head - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += (size_t)r;
  }
  close(fd);
  say("%s size %llu sum %08x", name, (unsigned long long)size, fnv1a32(head, got));

  if (size < DISK_WRITE_OFFSET + DISK_WRITE_LEN) {
    say("%s too small to write %d bytes at %d", name, DISK_WRITE_LEN, DISK_WRITE_OFFSET);
    return;
  }
  static unsigned char block[DISK_WRITE_LEN];
  const size_t plen = sizeof DISK_PATTERN - 1;
  for (size_t i = 0; i < sizeof block; i++) block[i] = (unsigned char)DISK_PATTERN[i % plen];

  /* A read-only virtio disk (VIRTIO_BLK_F_RO) refuses the open for writing; a disk whose
   * writes fail on the host reports EIO at fsync(), when the page cache is written back. */
  const char *step = "open";
  fd = open(path, O_RDWR | O_CLOEXEC);
  if (fd >= 0) {
    step = "write";
    ssize_t w = pwrite(fd, block, sizeof block, DISK_WRITE_OFFSET);
    if (w == (ssize_t)sizeof block) {
      say("%s wrote %d bytes at %d", name, DISK_WRITE_LEN, DISK_WRITE_OFFSET);
      step = "fsync";
      if (fsync(fd) == 0) {
        close(fd);
        say("%s disk ok", name);
        return;
      }
    } else if (w >= 0) {
      errno = EIO;
    }
  }
  int e = errno;
  if (fd >= 0) close(fd);
  say("%s write failed: %s %s (%d)", name, step, errname(e), e);
}

int main(void) {
  say("started");
  mount_or_say("proc", "/proc", "proc");
  mount_or_say("sysfs", "/sys", "sysfs");
  mount_or_say("devtmpfs", "/dev", "devtmpfs");

  struct utsname u;
  if (uname(&u) == 0) say("release %s", u.release);

  char text[1024];
  if (read_text("/proc/cmdline", text, sizeof text) >= 0) say("cmdline %s", text);
  if (read_text("/sys/devices/system/cpu/online", text, sizeof text) >= 0)
    say("cpus online %s count %d", text, count_cpus(text));

  report_interrupts();

  char disk[] = "vda";
  for (char c = 'a'; c <= 'h'; c++) {
    disk[2] = c;
    report_disk(disk);
  }

  say("power off");
  /* Let a UART console drain its FIFO before the machine goes away. */
  tcdrain(STDOUT_FILENO);
  sync();
  reboot(RB_POWER_OFF);
  say("reboot failed: %s (%d)", errname(errno), errno);
  for (;;) pause();
}

// What native/sockio.cc and native/pagesend.cc share: the CRC32C of native/crc32c.cc and the
// gathered, checksummed send of sockio.cc. Result codes are native-io.ts's IO_CODES.
#ifndef REGVISOR_NATIVE_SOCKIO_H_
#define REGVISOR_NATIVE_SOCKIO_H_

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace regvisor {

bool Crc32cHardware();
uint32_t Crc32cUpdate(uint32_t previous, const uint8_t *data, size_t n);

// Writes every chunk to the non-blocking socket `fd` (sendmsg, gathered, MSG_NOSIGNAL), then
// with `append_crc` their CRC32C, little-endian (checksummed as they go, a little ahead of what
// was sent); every wait at most `timeout_ms`. Adds the bytes sent to `*written`; returns 0, or
// an IO_CODES failure with a one-line `*message`. Needs Crc32cHardware() for `append_crc`.
int SendGathered(int fd, const std::vector<iovec> &chunks, bool append_crc, int timeout_ms,
                 double *written, std::string *message);

}  // namespace regvisor

#endif  // REGVISOR_NATIVE_SOCKIO_H_

#include "trainer/atomic_file.h"

#include <fcntl.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "trainer/exit_codes.h"

namespace mone {

namespace fs = std::filesystem;

namespace {

fs::path existing_ancestor(fs::path path) {
  std::error_code ignored;
  while (!path.empty() && !fs::exists(path, ignored)) path = path.parent_path();
  return path.empty() ? fs::path(".") : path;
}

[[noreturn]] void fail(const fs::path& path, const std::string& what, int error, size_t size) {
  std::string message = "cannot write '" + path.string() + "': " + what + ": " + std::strerror(error);
  if (error == ENOSPC || error == EDQUOT) {
    message += " (it needs " + byte_text(size) + ", " + byte_text(free_bytes(path.parent_path())) + " free)";
  }
  throw SaveError(message);
}

void sync_directory(const fs::path& dir, const fs::path& path, size_t size) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0 || ::fsync(fd) != 0) {
    const int error = errno;
    if (fd >= 0) ::close(fd);
    fail(path, "syncing its directory", error, size);
  }
  ::close(fd);
}

}  // namespace

uint64_t free_bytes(const fs::path& path) {
  struct statvfs stats;
  if (::statvfs(existing_ancestor(path).c_str(), &stats) != 0) return 0;
  return static_cast<uint64_t>(stats.f_bavail) * stats.f_frsize;
}

std::string byte_text(uint64_t bytes) {
  char text[32];
  if (bytes < 10000) {
    std::snprintf(text, sizeof(text), "%llu bytes", static_cast<unsigned long long>(bytes));
  } else {
    const char* units[] = {"kB", "MB", "GB", "TB"};
    double value = static_cast<double>(bytes) / 1000.0;
    int unit = 0;
    while (value >= 1000.0 && unit < 3) value /= 1000.0, ++unit;
    std::snprintf(text, sizeof(text), "%.1f %s", value, units[unit]);
  }
  return text;
}

void write_file_atomically(const fs::path& path, const void* data, size_t size) {
  const fs::path dir = path.parent_path().empty() ? fs::path(".") : path.parent_path();
  const fs::path temporary = dir / ("." + path.filename().string() + ".tmp");
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail(path, "creating '" + temporary.string() + "'", errno, size);
  // Every failure below removes the temporary file: a full disk keeps nothing of it.
  const auto abandon = [&](const std::string& what, int error) {
    ::close(fd);
    ::unlink(temporary.c_str());
    fail(path, what, error, size);
  };
  // Reserving the space first turns a full disk into one early, clean error
  // (file systems without fallocate report EOPNOTSUPP and are written as is).
  if (size > 0) {
    const int reserved = ::posix_fallocate(fd, 0, static_cast<off_t>(size));
    if (reserved != 0 && reserved != EOPNOTSUPP && reserved != EINVAL) abandon("reserving space", reserved);
  }
  const char* bytes = static_cast<const char*>(data);
  for (size_t written = 0; written < size;) {
    const ssize_t n = ::write(fd, bytes + written, size - written);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) abandon("writing", errno);
    written += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) abandon("syncing", errno);
  if (::close(fd) != 0) {
    const int error = errno;
    ::unlink(temporary.c_str());
    fail(path, "closing", error, size);
  }
  if (std::rename(temporary.c_str(), path.c_str()) != 0) {
    const int error = errno;
    ::unlink(temporary.c_str());
    fail(path, "renaming '" + temporary.string() + "' over it", error, size);
  }
  sync_directory(dir, path, size);
}

}  // namespace mone

#include "trainer/run_directory.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <fstream>
#include <random>

#include "trainer/atomic_file.h"
#include "trainer/checkpoint.h"
#include "trainer/exit_codes.h"

namespace mone {

namespace fs = std::filesystem;

namespace {

std::string host_name() {
  char name[256] = {};
  if (gethostname(name, sizeof(name) - 1) != 0) return "?";
  return name;
}

std::string utc_time(const char* format) {
  const std::time_t now = std::time(nullptr);
  std::tm parts{};
  gmtime_r(&now, &parts);
  char text[64];
  std::strftime(text, sizeof(text), format, &parts);
  return text;
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  std::string text;
  std::getline(in, text);
  return text;
}

}  // namespace

RunDirectory::RunDirectory(const fs::path& dir) : dir_(dir) { lock(); }

RunDirectory::~RunDirectory() {
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

void RunDirectory::lock() {
  std::error_code error;
  fs::create_directories(dir_, error);
  if (error) throw UsageError("--run-dir: cannot create '" + dir_.string() + "': " + error.message());
  const fs::path file = dir_ / "lock";
  const int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    throw UsageError("--run-dir: cannot write in '" + dir_.string() + "': " + std::strerror(errno));
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int reason = errno;
    ::close(fd);
    if (reason != EWOULDBLOCK) {
      throw UsageError("--run-dir: cannot lock '" + file.string() + "': " + std::strerror(reason));
    }
    const std::string holder = read_text(file);
    throw UsageError("--run-dir: '" + dir_.string() + "' is in use by another training (" +
                     (holder.empty() ? std::string("holder unknown") : holder) +
                     "); wait for it to end, stop it, or choose another --run-dir");
  }
  // Who holds it, for the message of a refused second start.
  const std::string holder = "host " + host_name() + ", pid " + std::to_string(::getpid()) + ", since " +
                             utc_time("%Y-%m-%d %H:%M:%S UTC") + "\n";
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, holder.data(), holder.size(), 0) < 0) {
    const int reason = errno;
    ::close(fd);
    throw UsageError("--run-dir: cannot write '" + file.string() + "': " + std::strerror(reason));
  }
  lock_fd_ = fd;
}

bool RunDirectory::holds_checkpoints() const {
  const CheckpointDirectory checkpoints(dir_);
  return !checkpoints.list().empty() || fs::exists(checkpoints.best_path());
}

fs::path RunDirectory::move_earlier_run_aside() {
  fs::path aside = dir_;
  aside += ".replaced-" + utc_time("%Y%m%d-%H%M%S");
  for (int n = 2; fs::exists(aside); ++n) {
    aside = dir_;
    aside += ".replaced-" + utc_time("%Y%m%d-%H%M%S") + "-" + std::to_string(n);
  }
  // One rename moves the whole earlier run (our lock file with it): it is
  // either all still here or all there.
  if (std::rename(dir_.c_str(), aside.c_str()) != 0) {
    throw UsageError("--overwrite: cannot move '" + dir_.string() + "' aside to '" + aside.string() +
                     "': " + std::strerror(errno));
  }
  const int earlier_lock = lock_fd_;
  lock_fd_ = -1;
  try {
    lock();
  } catch (...) {
    ::close(earlier_lock);
    throw;
  }
  ::close(earlier_lock);
  return aside;
}

std::string RunDirectory::run_id() const { return read_text(dir_ / "run-id"); }

void RunDirectory::write_run_id(const std::string& id) const { write_file_atomically(dir_ / "run-id", id + "\n"); }

std::string new_run_id() {
  std::random_device device;
  const uint64_t clock = static_cast<uint64_t>(std::chrono::system_clock::now().time_since_epoch().count());
  const uint64_t mixed = (static_cast<uint64_t>(device()) << 32 ^ device()) ^ clock ^
                         std::hash<std::string>{}(host_name()) ^ static_cast<uint64_t>(::getpid()) << 17;
  char text[20];
  std::snprintf(text, sizeof(text), "%016llx", static_cast<unsigned long long>(mixed));
  return text;
}

}  // namespace mone

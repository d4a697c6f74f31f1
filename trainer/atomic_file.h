// Files the trainer must never leave half-written (checkpoints, config.ini,
// metrics.jsonl rewrites, run-id): written to a temporary name in the same
// directory, space reserved first, synced, renamed over the target, then the
// directory synced. A failure (a full disk, an I/O error) removes the
// temporary file, leaves the target as it was and throws SaveError with one
// line naming the file, the bytes needed and the bytes free.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>

namespace mone {

void write_file_atomically(const std::filesystem::path& path, const void* data, size_t size);
inline void write_file_atomically(const std::filesystem::path& path, const std::string& text) {
  write_file_atomically(path, text.data(), text.size());
}

// Bytes an unprivileged writer may still use on the file system of `path`
// (its nearest existing ancestor when it does not exist yet).
uint64_t free_bytes(const std::filesystem::path& path);

// "1.2 MB": sizes in messages.
std::string byte_text(uint64_t bytes);

}  // namespace mone

// `mone verify`: loads and verifies checkpoints as a resume would (format,
// version, shapes, the checksum over header and state), without training;
// for scripts and for a look after a crash or a full disk.
#pragma once

#include <string>

namespace mone {

// A file: verifies it. A run directory: every checkpoint in it, newest
// first, and best.h5, one line each, then which one `--resume auto` would
// take. Returns kExitSuccess when the file, or at least one checkpoint of
// the directory, is valid; kExitFailure otherwise (every problem printed).
int run_verify(const std::string& checkpoint);

}  // namespace mone

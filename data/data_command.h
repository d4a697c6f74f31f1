// The dataset converter's command line, shared by the `mone-data` tool and
// `mone data`: converts IDX (Fashion-MNIST by default), CIFAR-10/100 or
// synthetic data into the mone dataset format (docs/data-format.md).
#pragma once

#include <string>
#include <vector>

namespace mone {

// `program` names the command in usage text and error messages ("mone-data",
// "mone data"); `arguments` excludes it. Returns the process exit code: 0, or
// 1 after printing "<program>: error: ..." to stderr.
int run_data_command(const std::string& program, const std::vector<std::string>& arguments);

}  // namespace mone

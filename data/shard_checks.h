// Checks every shard reader makes, whatever the image storage: the type and
// shape of a stored dataset, the split attributes against the manifest, and
// the labels. Each failure is a DataError naming the file.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/hdf5.h"

namespace mone::shard_checks {

h5::Handle dataset_type(hid_t dataset, const std::string& file, const std::string& name);
bool is_integer(hid_t type, size_t bytes, H5T_sign_t sign);

// The `version`, `classes` and `split` attributes.
void check_common_attributes(hid_t handle, const std::string& file, int64_t version, int64_t classes,
                             const std::string& split);

// `labels`: int32 [samples], every value in [0, classes).
std::vector<int32_t> read_labels(hid_t handle, const std::string& file, int64_t samples, int64_t classes);

}  // namespace mone::shard_checks

#include "data/shard_checks.h"

#include "data/error.h"
#include "data/format.h"

namespace mone::shard_checks {

h5::Handle dataset_type(hid_t dataset, const std::string& file, const std::string& name) {
  return h5::Handle(MONE_H5(H5Dget_type(dataset), file, "getting the type of '" + name + "'"), H5Tclose);
}

bool is_integer(hid_t type, size_t bytes, H5T_sign_t sign) {
  return H5Tget_class(type) == H5T_INTEGER && H5Tget_size(type) == bytes && H5Tget_sign(type) == sign;
}

void check_common_attributes(hid_t handle, const std::string& file, int64_t version, int64_t classes,
                             const std::string& split) {
  const int64_t stored_version = h5::get_int_attribute(handle, "version", file);
  if (stored_version != version) {
    throw DataError(file + ": format version " + std::to_string(stored_version) + ", expected " +
                    std::to_string(version));
  }
  const int64_t stored_classes = h5::get_int_attribute(handle, "classes", file);
  if (stored_classes != classes) {
    throw DataError(file + ": has " + std::to_string(stored_classes) + " classes but the manifest says " +
                    std::to_string(classes));
  }
  const std::string stored_split = h5::get_string_attribute(handle, "split", file);
  if (stored_split != split) {
    throw DataError(file + ": belongs to split '" + stored_split + "', listed under '" + split + "'");
  }
}

std::vector<int32_t> read_labels(hid_t handle, const std::string& file, int64_t samples, int64_t classes) {
  const std::string name = data_format::kLabels;
  const h5::Handle labels = h5::open_dataset(handle, name, file);
  const h5::Handle type = dataset_type(labels, file, name);
  if (!is_integer(type, 4, H5T_SGN_2)) {
    throw DataError(file + ": 'labels' has type " + h5::describe_type(type) + ", expected int32");
  }
  const std::vector<int64_t> dims = h5::dataset_shape(labels, file, name);
  if (dims != std::vector<int64_t>{samples}) {
    throw DataError(file + ": 'labels' has shape " + h5::shape_text(dims) + ", expected [" + std::to_string(samples) +
                    "]");
  }
  std::vector<int32_t> values(static_cast<size_t>(samples));
  MONE_H5(H5Dread(labels, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()), file,
          "reading 'labels'");
  for (int64_t i = 0; i < samples; ++i) {
    const int32_t label = values[static_cast<size_t>(i)];
    if (label < 0 || label >= classes) {
      throw DataError(file + ": label " + std::to_string(label) + " of sample " + std::to_string(i) +
                      " is outside [0, " + std::to_string(classes) + ")");
    }
  }
  return values;
}

}  // namespace mone::shard_checks

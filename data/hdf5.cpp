#include "data/hdf5.h"

#include <filesystem>

#include "data/error.h"

namespace mone::h5 {

std::unique_lock<std::recursive_mutex> lock() {
  static std::recursive_mutex mutex;
  std::unique_lock<std::recursive_mutex> held(mutex);
  // Per-thread in thread-safe HDF5 builds, so set it on every entry; it only
  // stores two pointers.
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  return held;
}

std::string error_description() {
  std::vector<std::string> descriptions;
  auto collect = [](unsigned, const H5E_error2_t* error, void* out) -> herr_t {
    if (error->desc != nullptr) static_cast<std::vector<std::string>*>(out)->push_back(error->desc);
    return 0;
  };
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, collect, &descriptions);
  H5Eclear2(H5E_DEFAULT);
  if (descriptions.empty()) return "";
  if (descriptions.size() == 1 || descriptions.front() == descriptions.back()) return descriptions.front();
  return descriptions.front() + ": " + descriptions.back();
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string text = "[";
  for (size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + "]";
}

void fail(const std::string& file, const std::string& what, const char* source, int line) {
  std::string message = file + ": HDF5 error while " + what;
  const std::string reason = error_description();
  if (!reason.empty()) message += " (" + reason + ")";
  message += " [" + std::filesystem::path(source).filename().string() + ":" +
             std::to_string(line) + "]";
  throw DataError(message);
}

Handle& Handle::operator=(Handle&& other) noexcept {
  if (this != &other) {
    reset();
    id_ = other.id_;
    closer_ = other.closer_;
    other.id_ = -1;
  }
  return *this;
}

hid_t Handle::release() {
  const hid_t id = id_;
  id_ = -1;
  return id;
}

void Handle::reset() {
  if (id_ >= 0) closer_(id_);
  id_ = -1;
}

Handle create_file(const std::string& path, bool timestamps) {
  Handle creation;  // none: HDF5's defaults, timestamps included
  if (!timestamps) {
    creation = Handle(MONE_H5(H5Pcreate(H5P_FILE_CREATE), path, "creating file properties"), H5Pclose);
    MONE_H5(H5Pset_obj_track_times(creation, false), path, "turning off the root group's timestamps");
  }
  return Handle(MONE_H5(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, timestamps ? H5P_DEFAULT : creation.get(), H5P_DEFAULT), path,
                        "creating the file"),
                H5Fclose);
}

namespace {

Handle creation_properties(hid_t kind, bool timestamps, const std::string& file) {
  Handle properties(MONE_H5(H5Pcreate(kind), file, "creating object properties"), H5Pclose);
  MONE_H5(H5Pset_obj_track_times(properties, timestamps), file, "setting object timestamps");
  return properties;
}

}  // namespace

Handle dataset_creation_properties(bool timestamps, const std::string& file) {
  return creation_properties(H5P_DATASET_CREATE, timestamps, file);
}

Handle group_creation_properties(bool timestamps, const std::string& file) {
  return creation_properties(H5P_GROUP_CREATE, timestamps, file);
}

Handle open_file(const std::string& path) {
  if (!std::filesystem::exists(path)) throw DataError(path + ": file does not exist");
  if (H5Fis_hdf5(path.c_str()) <= 0) {
    H5Eclear2(H5E_DEFAULT);
    throw DataError(path + ": not an HDF5 file (no HDF5 signature)");
  }
  const hid_t id = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (id < 0) {
    throw DataError(path + ": cannot be opened, the file is truncated or damaged (" +
                    error_description() + ")");
  }
  return Handle(id, H5Fclose);
}

Handle open_dataset(hid_t loc, const std::string& name, const std::string& file) {
  if (MONE_H5(H5Lexists(loc, name.c_str(), H5P_DEFAULT), file, "looking up '" + name + "'") <=
      0) {
    throw DataError(file + ": has no dataset '" + name + "'");
  }
  return Handle(MONE_H5(H5Dopen2(loc, name.c_str(), H5P_DEFAULT), file,
                        "opening dataset '" + name + "'"),
                H5Dclose);
}

Handle dataset_space(hid_t dataset, const std::string& file, const std::string& name) {
  return Handle(
      MONE_H5(H5Dget_space(dataset), file, "getting the dataspace of '" + name + "'"), H5Sclose);
}

std::vector<int64_t> dataset_shape(hid_t dataset, const std::string& file,
                                   const std::string& name) {
  const Handle space = dataset_space(dataset, file, name);
  const int rank = MONE_H5(H5Sget_simple_extent_ndims(space), file, "getting the rank of '" + name + "'");
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  MONE_H5(H5Sget_simple_extent_dims(space, dims.data(), nullptr), file,
          "getting the shape of '" + name + "'");
  return std::vector<int64_t>(dims.begin(), dims.end());
}

namespace {

Handle scalar_space(const std::string& file) {
  return Handle(MONE_H5(H5Screate(H5S_SCALAR), file, "creating a scalar dataspace"), H5Sclose);
}

Handle vector_space(size_t size, const std::string& file) {
  const hsize_t dims[1] = {size};
  return Handle(MONE_H5(H5Screate_simple(1, dims, nullptr), file, "creating a dataspace"),
                H5Sclose);
}

Handle string_type(size_t size, const std::string& file) {
  Handle type(MONE_H5(H5Tcopy(H5T_C_S1), file, "copying the string type"), H5Tclose);
  MONE_H5(H5Tset_size(type, size == 0 ? 1 : size), file, "sizing the string type");
  MONE_H5(H5Tset_strpad(type, H5T_STR_NULLPAD), file, "setting string padding");
  return type;
}

Handle open_attribute(hid_t object, const std::string& name, const std::string& file) {
  if (MONE_H5(H5Aexists(object, name.c_str()), file, "looking up attribute '" + name + "'") <= 0) {
    throw DataError(file + ": missing attribute '" + name + "'");
  }
  return Handle(MONE_H5(H5Aopen(object, name.c_str(), H5P_DEFAULT), file,
                        "opening attribute '" + name + "'"),
                H5Aclose);
}

}  // namespace

void set_attribute(hid_t object, const std::string& name, int64_t value, const std::string& file) {
  const Handle space = scalar_space(file);
  const Handle attribute(MONE_H5(H5Acreate2(object, name.c_str(), H5T_STD_I64LE, space,
                                            H5P_DEFAULT, H5P_DEFAULT),
                                 file, "creating attribute '" + name + "'"),
                         H5Aclose);
  MONE_H5(H5Awrite(attribute, H5T_NATIVE_INT64, &value), file,
          "writing attribute '" + name + "'");
}

void set_attribute(hid_t object, const std::string& name, const std::string& value,
                   const std::string& file) {
  const Handle space = scalar_space(file);
  const Handle type = string_type(value.size(), file);
  const Handle attribute(
      MONE_H5(H5Acreate2(object, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT), file,
              "creating attribute '" + name + "'"),
      H5Aclose);
  std::string padded = value;
  padded.resize(H5Tget_size(type), '\0');
  MONE_H5(H5Awrite(attribute, type, padded.data()), file, "writing attribute '" + name + "'");
}

int64_t get_int_attribute(hid_t object, const std::string& name, const std::string& file) {
  const Handle attribute = open_attribute(object, name, file);
  const Handle type(MONE_H5(H5Aget_type(attribute), file, "getting the type of '" + name + "'"),
                    H5Tclose);
  if (H5Tget_class(type) != H5T_INTEGER) {
    throw DataError(file + ": attribute '" + name + "' is " + describe_type(type) +
                    ", expected an integer");
  }
  int64_t value = 0;
  MONE_H5(H5Aread(attribute, H5T_NATIVE_INT64, &value), file,
          "reading attribute '" + name + "'");
  return value;
}

std::string get_string_attribute(hid_t object, const std::string& name,
                                 const std::string& file) {
  const Handle attribute = open_attribute(object, name, file);
  const Handle type(MONE_H5(H5Aget_type(attribute), file, "getting the type of '" + name + "'"),
                    H5Tclose);
  if (H5Tget_class(type) != H5T_STRING || H5Tis_variable_str(type) > 0) {
    throw DataError(file + ": attribute '" + name + "' is not a fixed-length string");
  }
  std::string value(H5Tget_size(type), '\0');
  MONE_H5(H5Aread(attribute, type, value.data()), file, "reading attribute '" + name + "'");
  value.resize(value.find('\0') == std::string::npos ? value.size() : value.find('\0'));
  return value;
}

template <>
hid_t native_type<int32_t>() { return H5T_NATIVE_INT32; }
template <>
hid_t native_type<int64_t>() { return H5T_NATIVE_INT64; }
template <>
hid_t native_type<uint32_t>() { return H5T_NATIVE_UINT32; }
template <>
hid_t native_type<double>() { return H5T_NATIVE_DOUBLE; }

template <typename T>
void write_vector(hid_t loc, const std::string& name, const std::vector<T>& values,
                  const std::string& file, hid_t creation_properties) {
  const Handle space = vector_space(values.size(), file);
  const Handle dataset(MONE_H5(H5Dcreate2(loc, name.c_str(), native_type<T>(), space,
                                          H5P_DEFAULT, creation_properties, H5P_DEFAULT),
                               file, "creating dataset '" + name + "'"),
                       H5Dclose);
  MONE_H5(H5Dwrite(dataset, native_type<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()),
          file, "writing dataset '" + name + "'");
}

template <typename T>
std::vector<T> read_vector(hid_t loc, const std::string& name, const std::string& file) {
  const Handle dataset = open_dataset(loc, name, file);
  const Handle type(MONE_H5(H5Dget_type(dataset), file, "getting the type of '" + name + "'"),
                    H5Tclose);
  if (H5Tget_class(type) != type_class<T>()) {
    throw DataError(file + ": dataset '" + name + "' has type " + describe_type(type));
  }
  const std::vector<int64_t> shape = dataset_shape(dataset, file, name);
  if (shape.size() != 1) {
    throw DataError(file + ": dataset '" + name + "' should be one-dimensional, has rank " +
                    std::to_string(shape.size()));
  }
  std::vector<T> values(static_cast<size_t>(shape[0]));
  if (!values.empty()) {
    MONE_H5(H5Dread(dataset, native_type<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()),
            file, "reading dataset '" + name + "'");
  }
  return values;
}

template void write_vector(hid_t, const std::string&, const std::vector<int32_t>&,
                           const std::string&, hid_t);
template void write_vector(hid_t, const std::string&, const std::vector<int64_t>&,
                           const std::string&, hid_t);
template void write_vector(hid_t, const std::string&, const std::vector<uint32_t>&,
                           const std::string&, hid_t);
template void write_vector(hid_t, const std::string&, const std::vector<double>&,
                           const std::string&, hid_t);
template std::vector<int32_t> read_vector(hid_t, const std::string&, const std::string&);
template std::vector<int64_t> read_vector(hid_t, const std::string&, const std::string&);
template std::vector<uint32_t> read_vector(hid_t, const std::string&, const std::string&);
template std::vector<double> read_vector(hid_t, const std::string&, const std::string&);

void write_strings(hid_t loc, const std::string& name, const std::vector<std::string>& values,
                   const std::string& file, hid_t creation_properties) {
  size_t width = 1;
  for (const std::string& value : values) width = std::max(width, value.size());
  std::string packed(width * values.size(), '\0');
  for (size_t i = 0; i < values.size(); ++i) packed.replace(i * width, values[i].size(), values[i]);
  const Handle type = string_type(width, file);
  const Handle space = vector_space(values.size(), file);
  const Handle dataset(MONE_H5(H5Dcreate2(loc, name.c_str(), type, space, H5P_DEFAULT,
                                          creation_properties, H5P_DEFAULT),
                               file, "creating dataset '" + name + "'"),
                       H5Dclose);
  if (!values.empty()) {
    MONE_H5(H5Dwrite(dataset, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, packed.data()), file,
            "writing dataset '" + name + "'");
  }
}

std::vector<std::string> read_strings(hid_t loc, const std::string& name,
                                      const std::string& file) {
  const Handle dataset = open_dataset(loc, name, file);
  const Handle type(MONE_H5(H5Dget_type(dataset), file, "getting the type of '" + name + "'"),
                    H5Tclose);
  if (H5Tget_class(type) != H5T_STRING || H5Tis_variable_str(type) > 0) {
    throw DataError(file + ": dataset '" + name + "' is not made of fixed-length strings");
  }
  const std::vector<int64_t> shape = dataset_shape(dataset, file, name);
  if (shape.size() != 1) {
    throw DataError(file + ": dataset '" + name + "' should be one-dimensional");
  }
  const size_t width = H5Tget_size(type);
  std::string packed(width * static_cast<size_t>(shape[0]), '\0');
  if (!packed.empty()) {
    MONE_H5(H5Dread(dataset, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, packed.data()), file,
            "reading dataset '" + name + "'");
  }
  std::vector<std::string> values;
  for (int64_t i = 0; i < shape[0]; ++i) {
    std::string value = packed.substr(static_cast<size_t>(i) * width, width);
    values.push_back(value.substr(0, value.find('\0')));
  }
  return values;
}

std::string describe_type(hid_t type) {
  const size_t bits = H5Tget_size(type) * 8;
  switch (H5Tget_class(type)) {
    case H5T_INTEGER:
      return (H5Tget_sign(type) == H5T_SGN_NONE ? "uint" : "int") + std::to_string(bits);
    case H5T_FLOAT:
      return "float" + std::to_string(bits);
    case H5T_STRING:
      return "string";
    default:
      return "a non-numeric type";
  }
}

}  // namespace mone::h5

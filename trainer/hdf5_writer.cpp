#include "trainer/hdf5_writer.h"

#include <utility>
#include <vector>

namespace mone {
namespace {

// HDF5's own account of the failure: the outermost description (what the
// call could not do) and the innermost (why), when they differ.
std::string hdf5_error_description() {
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

// Memory and file types of the stored element types; the file is little-endian.
template <class T> struct Hdf5Types;
template <> struct Hdf5Types<float> {
  static hid_t memory() { return H5T_NATIVE_FLOAT; }
  static hid_t file() { return H5T_IEEE_F32LE; }
};
template <> struct Hdf5Types<double> {
  static hid_t memory() { return H5T_NATIVE_DOUBLE; }
  static hid_t file() { return H5T_IEEE_F64LE; }
};
template <> struct Hdf5Types<int32_t> {
  static hid_t memory() { return H5T_NATIVE_INT32; }
  static hid_t file() { return H5T_STD_I32LE; }
};
template <> struct Hdf5Types<int64_t> {
  static hid_t memory() { return H5T_NATIVE_INT64; }
  static hid_t file() { return H5T_STD_I64LE; }
};

}  // namespace

void throw_hdf5_failure(const char* call, const std::string& what, const std::string& file, const char* source,
                        int line) {
  std::string message = std::string(call) + " failed " + what + " in '" + file + "'";
  const std::string description = hdf5_error_description();
  if (!description.empty()) message += ": " + description;
  throw Hdf5Error(message + " (" + source + ":" + std::to_string(line) + ")");
}

Hdf5Handle::Hdf5Handle(Hdf5Handle&& other) noexcept
    : id_(std::exchange(other.id_, H5I_INVALID_HID)), close_(other.close_) {}

Hdf5Handle& Hdf5Handle::operator=(Hdf5Handle&& other) noexcept {
  if (this != &other) {
    if (id_ >= 0) close_(id_);
    id_ = std::exchange(other.id_, H5I_INVALID_HID);
    close_ = other.close_;
  }
  return *this;
}

Hdf5Handle::~Hdf5Handle() {
  if (id_ >= 0) close_(id_);
}

hid_t Hdf5Handle::release() { return std::exchange(id_, H5I_INVALID_HID); }

Hdf5Writer::Hdf5Writer(const std::string& path) : path_(path) {
  // Errors are reported by exception, not printed by HDF5's default handler.
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  file_ = Hdf5Handle(
      MONE_HDF5_CHECK(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), "creating the file"),
      H5Fclose);
}

void Hdf5Writer::write_scalar_attribute(const std::string& name, hid_t type, const void* value) {
  const std::string what = "writing attribute '" + name + "'";
  Hdf5Handle space(MONE_HDF5_CHECK(H5Screate(H5S_SCALAR), what), H5Sclose);
  Hdf5Handle attribute(
      MONE_HDF5_CHECK(H5Acreate2(file_.get(), name.c_str(), type, space.get(), H5P_DEFAULT, H5P_DEFAULT), what),
      H5Aclose);
  MONE_HDF5_CHECK(H5Awrite(attribute.get(), type, value), what);
}

void Hdf5Writer::write_attribute(const std::string& name, int64_t value) {
  write_scalar_attribute(name, H5T_NATIVE_INT64, &value);
}

void Hdf5Writer::write_attribute(const std::string& name, double value) {
  write_scalar_attribute(name, H5T_NATIVE_DOUBLE, &value);
}

void Hdf5Writer::write_attribute(const std::string& name, const std::string& value) {
  const std::string what = "making the string type of attribute '" + name + "'";
  Hdf5Handle type(MONE_HDF5_CHECK(H5Tcopy(H5T_C_S1), what), H5Tclose);
  MONE_HDF5_CHECK(H5Tset_size(type.get(), H5T_VARIABLE), what);
  MONE_HDF5_CHECK(H5Tset_cset(type.get(), H5T_CSET_UTF8), what);
  const char* text = value.c_str();
  write_scalar_attribute(name, type.get(), &text);
}

void Hdf5Writer::write_raw_dataset(const std::string& path, const std::vector<int64_t>& shape, hid_t file_type,
                                   hid_t memory_type, const void* values) {
  const std::string what = "writing dataset '" + path + "'";
  const std::vector<hsize_t> dims(shape.begin(), shape.end());
  Hdf5Handle space(MONE_HDF5_CHECK(dims.empty() ? H5Screate(H5S_SCALAR)
                                                : H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
                                   what),
                   H5Sclose);
  Hdf5Handle link_properties(MONE_HDF5_CHECK(H5Pcreate(H5P_LINK_CREATE), what), H5Pclose);
  MONE_HDF5_CHECK(H5Pset_create_intermediate_group(link_properties.get(), 1), what);
  Hdf5Handle dataset(MONE_HDF5_CHECK(H5Dcreate2(file_.get(), path.c_str(), file_type, space.get(),
                                                link_properties.get(), H5P_DEFAULT, H5P_DEFAULT),
                                     what),
                     H5Dclose);
  MONE_HDF5_CHECK(H5Dwrite(dataset.get(), memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, values), what);
}

template <class T>
void Hdf5Writer::write_dataset(const std::string& path, const std::vector<int64_t>& shape, const T* values) {
  write_raw_dataset(path, shape, Hdf5Types<T>::file(), Hdf5Types<T>::memory(), values);
}

void Hdf5Writer::close() {
  if (file_.get() < 0) return;
  MONE_HDF5_CHECK(H5Fflush(file_.get(), H5F_SCOPE_GLOBAL), "flushing");
  MONE_HDF5_CHECK(H5Fclose(file_.release()), "closing");
}

template void Hdf5Writer::write_dataset<float>(const std::string&, const std::vector<int64_t>&, const float*);
template void Hdf5Writer::write_dataset<double>(const std::string&, const std::vector<int64_t>&, const double*);
template void Hdf5Writer::write_dataset<int32_t>(const std::string&, const std::vector<int64_t>&, const int32_t*);
template void Hdf5Writer::write_dataset<int64_t>(const std::string&, const std::vector<int64_t>&, const int64_t*);

}  // namespace mone

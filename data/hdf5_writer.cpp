#include "data/hdf5_writer.h"

#include <vector>

namespace mone {
namespace {

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

Hdf5Writer::Hdf5Writer(const std::string& path) : path_(path) {
  const auto held = h5::lock();  // also turns off HDF5's printing of errors: they are thrown
  file_ = h5::Handle(
      MONE_H5_IN(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), "creating the file"),
      H5Fclose);
}

Hdf5Writer::Hdf5Writer(InMemory, const std::string& name) : path_(name) {
  const auto held = h5::lock();
  h5::Handle access(MONE_H5_IN(H5Pcreate(H5P_FILE_ACCESS), "making the in-memory file's properties"), H5Pclose);
  // Grows in 1 MiB steps; backing_store 0: nothing is ever written to `name`.
  MONE_H5_IN(H5Pset_fapl_core(access.get(), size_t{1} << 20, 0), "making the in-memory file's properties");
  file_ = h5::Handle(MONE_H5_IN(H5Fcreate(name.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, access.get()),
                                "creating the in-memory file"),
                     H5Fclose);
}

void Hdf5Writer::write_scalar_attribute(const std::string& name, hid_t type, const void* value) {
  const auto held = h5::lock();
  const std::string what = "writing attribute '" + name + "'";
  h5::Handle space(MONE_H5_IN(H5Screate(H5S_SCALAR), what), H5Sclose);
  h5::Handle attribute(
      MONE_H5_IN(H5Acreate2(file_.get(), name.c_str(), type, space.get(), H5P_DEFAULT, H5P_DEFAULT), what),
      H5Aclose);
  MONE_H5_IN(H5Awrite(attribute.get(), type, value), what);
}

void Hdf5Writer::write_attribute(const std::string& name, int64_t value) {
  write_scalar_attribute(name, H5T_NATIVE_INT64, &value);
}

void Hdf5Writer::write_attribute(const std::string& name, double value) {
  write_scalar_attribute(name, H5T_NATIVE_DOUBLE, &value);
}

void Hdf5Writer::write_attribute(const std::string& name, const std::string& value) {
  const auto held = h5::lock();
  const std::string what = "making the string type of attribute '" + name + "'";
  h5::Handle type(MONE_H5_IN(H5Tcopy(H5T_C_S1), what), H5Tclose);
  MONE_H5_IN(H5Tset_size(type.get(), H5T_VARIABLE), what);
  MONE_H5_IN(H5Tset_cset(type.get(), H5T_CSET_UTF8), what);
  const char* text = value.c_str();
  write_scalar_attribute(name, type.get(), &text);
}

void Hdf5Writer::write_raw_dataset(const std::string& path, const std::vector<int64_t>& shape, hid_t file_type,
                                   hid_t memory_type, const void* values) {
  const auto held = h5::lock();
  const std::string what = "writing dataset '" + path + "'";
  const std::vector<hsize_t> dims(shape.begin(), shape.end());
  h5::Handle space(MONE_H5_IN(dims.empty() ? H5Screate(H5S_SCALAR)
                                                : H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
                                   what),
                   H5Sclose);
  h5::Handle link_properties(MONE_H5_IN(H5Pcreate(H5P_LINK_CREATE), what), H5Pclose);
  MONE_H5_IN(H5Pset_create_intermediate_group(link_properties.get(), 1), what);
  h5::Handle dataset(MONE_H5_IN(H5Dcreate2(file_.get(), path.c_str(), file_type, space.get(),
                                                link_properties.get(), H5P_DEFAULT, H5P_DEFAULT),
                                     what),
                     H5Dclose);
  MONE_H5_IN(H5Dwrite(dataset.get(), memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, values), what);
}

template <class T>
void Hdf5Writer::write_dataset(const std::string& path, const std::vector<int64_t>& shape, const T* values) {
  write_raw_dataset(path, shape, Hdf5Types<T>::file(), Hdf5Types<T>::memory(), values);
}

void Hdf5Writer::close() {
  if (file_.get() < 0) return;
  const auto held = h5::lock();
  MONE_H5_IN(H5Fflush(file_.get(), H5F_SCOPE_GLOBAL), "flushing");
  MONE_H5_IN(H5Fclose(file_.release()), "closing");
}

std::vector<unsigned char> Hdf5Writer::close_to_image() {
  const auto held = h5::lock();
  MONE_H5_IN(H5Fflush(file_.get(), H5F_SCOPE_GLOBAL), "flushing");
  const ssize_t size = MONE_H5_IN(H5Fget_file_image(file_.get(), nullptr, 0), "sizing the file image");
  std::vector<unsigned char> image(static_cast<size_t>(size));
  MONE_H5_IN(H5Fget_file_image(file_.get(), image.data(), image.size()), "copying the file image");
  MONE_H5_IN(H5Fclose(file_.release()), "closing");
  return image;
}

template void Hdf5Writer::write_dataset<float>(const std::string&, const std::vector<int64_t>&, const float*);
template void Hdf5Writer::write_dataset<double>(const std::string&, const std::vector<int64_t>&, const double*);
template void Hdf5Writer::write_dataset<int32_t>(const std::string&, const std::vector<int64_t>&, const int32_t*);
template void Hdf5Writer::write_dataset<int64_t>(const std::string&, const std::vector<int64_t>&, const int64_t*);

}  // namespace mone

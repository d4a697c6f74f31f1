#include "data/hdf5_reader.h"

#include "data/error.h"

namespace mone {


Hdf5Reader::Hdf5Reader(const std::string& path) : path_(path) {
  const auto held = h5::lock();  // also turns off HDF5's printing of errors: they are thrown
  file_ = h5::open_file(path);
}

bool Hdf5Reader::has_attribute(const std::string& name) const {
  const auto held = h5::lock();
  return MONE_H5_IN(H5Aexists(file_.get(), name.c_str()), "looking for attribute '" + name + "'") > 0;
}

h5::Handle Hdf5Reader::open_attribute(const std::string& name) const {
  const auto held = h5::lock();
  if (!has_attribute(name)) throw DataError("'" + path_ + "' has no attribute '" + name + "'");
  return h5::Handle(MONE_H5_IN(H5Aopen(file_.get(), name.c_str(), H5P_DEFAULT),
                                    "opening attribute '" + name + "'"),
                    H5Aclose);
}

int64_t Hdf5Reader::read_int_attribute(const std::string& name) const {
  const auto held = h5::lock();
  const h5::Handle attribute = open_attribute(name);
  int64_t value = 0;
  MONE_H5_IN(H5Aread(attribute.get(), H5T_NATIVE_INT64, &value), "reading attribute '" + name + "'");
  return value;
}

double Hdf5Reader::read_double_attribute(const std::string& name) const {
  const auto held = h5::lock();
  const h5::Handle attribute = open_attribute(name);
  double value = 0;
  MONE_H5_IN(H5Aread(attribute.get(), H5T_NATIVE_DOUBLE, &value), "reading attribute '" + name + "'");
  return value;
}

std::string Hdf5Reader::read_string_attribute(const std::string& name) const {
  const auto held = h5::lock();
  const std::string what = "reading string attribute '" + name + "'";
  const h5::Handle attribute = open_attribute(name);
  h5::Handle type(MONE_H5_IN(H5Tcopy(H5T_C_S1), what), H5Tclose);
  MONE_H5_IN(H5Tset_size(type.get(), H5T_VARIABLE), what);
  MONE_H5_IN(H5Tset_cset(type.get(), H5T_CSET_UTF8), what);
  char* text = nullptr;
  MONE_H5_IN(H5Aread(attribute.get(), type.get(), &text), what);
  std::string value = text != nullptr ? text : "";
  H5free_memory(text);
  return value;
}

bool Hdf5Reader::has_dataset(const std::string& path) const {
  const auto held = h5::lock();
  // H5Lexists fails (rather than answering no) when an intermediate group is missing.
  std::string prefix;
  size_t from = 1;
  while (true) {
    const size_t slash = path.find('/', from);
    prefix = path.substr(0, slash);
    if (H5Lexists(file_.get(), prefix.c_str(), H5P_DEFAULT) <= 0) return false;
    if (slash == std::string::npos) return true;
    from = slash + 1;
  }
}

std::vector<int64_t> Hdf5Reader::dataset_shape(const std::string& path) const {
  const auto held = h5::lock();
  const std::string what = "reading the shape of dataset '" + path + "'";
  h5::Handle dataset(MONE_H5_IN(H5Dopen2(file_.get(), path.c_str(), H5P_DEFAULT), what), H5Dclose);
  h5::Handle space(MONE_H5_IN(H5Dget_space(dataset.get()), what), H5Sclose);
  const int rank = MONE_H5_IN(H5Sget_simple_extent_ndims(space.get()), what);
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  MONE_H5_IN(H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr), what);
  return std::vector<int64_t>(dims.begin(), dims.end());
}

void Hdf5Reader::read_dataset(const std::string& path, const std::vector<int64_t>& shape, float* out) const {
  const auto held = h5::lock();
  const std::vector<int64_t> stored = dataset_shape(path);
  if (stored != shape) {
    throw DataError("'" + path_ + "': dataset '" + path + "' has shape " + h5::shape_text(stored) + ", expected " +
                    h5::shape_text(shape));
  }
  const std::string what = "reading dataset '" + path + "'";
  h5::Handle dataset(MONE_H5_IN(H5Dopen2(file_.get(), path.c_str(), H5P_DEFAULT), what), H5Dclose);
  MONE_H5_IN(H5Dread(dataset.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out), what);
}

}  // namespace mone

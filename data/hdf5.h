// Helpers around the HDF5 C API, the one HDF5 layer of the project: owning
// handles, a checked-call macro that turns a negative return code into a
// DataError naming the file and the operation, and typed attribute/dataset
// accessors. Shards and manifests use them directly; checkpoints and check
// files through Hdf5Writer and Hdf5Reader (data/hdf5_writer.h,
// hdf5_reader.h), built on them.
//
// The serial HDF5 library need not be thread-safe. Every function that calls
// HDF5 holds h5::lock() for the duration, so a training and an evaluation
// Loader (each with its own prefetch thread) and a checkpoint being written
// never call HDF5 concurrently.
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <mutex>
#include <string>
#include <type_traits>
#include <vector>

namespace mone::h5 {

// Takes the process-wide HDF5 lock and turns off HDF5's own error-stack
// printing (we report errors ourselves).
std::unique_lock<std::recursive_mutex> lock();

// HDF5's own account of the last failure on this thread: the outermost
// description on its error stack (what the call could not do) and the
// innermost (why), when they differ; "" when the stack is empty. Clears it.
std::string error_description();

[[noreturn]] void fail(const std::string& file, const std::string& what, const char* source,
                       int line);

template <typename T>
T check(T result, const std::string& file, const std::string& what, const char* source,
        int line) {
  static_assert(std::is_integral<T>::value, "HDF5 returns integral status codes");
  if (result < 0) fail(file, what, source, line);
  return result;
}

// MONE_H5(H5Dread(...), path, "reading images") -> the call's value, or throws.
#define MONE_H5(call, file, what) ::mone::h5::check((call), (file), (what), __FILE__, __LINE__)
// The same in a class whose member path_ names its file (Hdf5Writer, Hdf5Reader).
#define MONE_H5_IN(call, what) MONE_H5(call, path_, what)

// "[2, 3, 4]", for messages about dataset shapes.
std::string shape_text(const std::vector<int64_t>& shape);

// An owning hid_t. The closer matches the kind of object (file, dataset...).
class Handle {
 public:
  Handle() = default;
  Handle(hid_t id, herr_t (*closer)(hid_t)) : id_(id), closer_(closer) {}
  Handle(Handle&& other) noexcept : id_(other.id_), closer_(other.closer_) { other.id_ = -1; }
  Handle& operator=(Handle&& other) noexcept;
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle() { reset(); }

  void reset();
  // Gives up ownership without closing (for a close whose result is checked).
  hid_t release();
  hid_t get() const { return id_; }
  operator hid_t() const { return id_; }

 private:
  hid_t id_ = -1;
  herr_t (*closer_)(hid_t) = nullptr;
};

// timestamps = false: no object creation/modification times (HDF5 records
// them by default), so the same content gives the same file bytes.
Handle create_file(const std::string& path, bool timestamps = true);
// Dataset creation properties with or without those timestamps.
Handle dataset_creation_properties(bool timestamps, const std::string& file);
// The same for groups.
Handle group_creation_properties(bool timestamps, const std::string& file);
// Opens read-only; a missing, truncated or non-HDF5 file gives a DataError
// that says which of these it is.
Handle open_file(const std::string& path);
Handle open_dataset(hid_t loc, const std::string& name, const std::string& file);
Handle dataset_space(hid_t dataset, const std::string& file, const std::string& name);
std::vector<int64_t> dataset_shape(hid_t dataset, const std::string& file,
                                   const std::string& name);

void set_attribute(hid_t object, const std::string& name, int64_t value, const std::string& file);
void set_attribute(hid_t object, const std::string& name, const std::string& value,
                   const std::string& file);
int64_t get_int_attribute(hid_t object, const std::string& name, const std::string& file);
std::string get_string_attribute(hid_t object, const std::string& name,
                                 const std::string& file);

// One-dimensional numeric datasets (int32, int64, uint32, double).
template <typename T>
void write_vector(hid_t loc, const std::string& name, const std::vector<T>& values,
                  const std::string& file, hid_t creation_properties = H5P_DEFAULT);
template <typename T>
std::vector<T> read_vector(hid_t loc, const std::string& name, const std::string& file);

// One-dimensional datasets of fixed-length, null-padded strings.
void write_strings(hid_t loc, const std::string& name, const std::vector<std::string>& values,
                   const std::string& file, hid_t creation_properties = H5P_DEFAULT);
std::vector<std::string> read_strings(hid_t loc, const std::string& name,
                                      const std::string& file);

// The HDF5 native type for T, and the type class a stored dataset of T must have.
template <typename T>
hid_t native_type();
template <typename T>
H5T_class_t type_class() {
  return std::is_floating_point<T>::value ? H5T_FLOAT : H5T_INTEGER;
}

// "uint8", "int16", "float32"... for error messages about stored types.
std::string describe_type(hid_t type);

}  // namespace mone::h5

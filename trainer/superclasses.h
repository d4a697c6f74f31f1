// Super-classes for Mobile V-MoE's router (method page, section 5): groups
// of classes found by clustering a trained model's confusion matrix, and the
// text file that carries them from `mone superclasses` to `mone train
// --superclasses`.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mone {

struct Superclasses {
  std::vector<int32_t> of_class;  // the super-class of each class, 0-based
  int64_t count = 0;              // super-classes; each holds at least one class
};

// Average-linkage agglomerative clustering of the symmetrised confusion
// rates into `groups` super-classes. confusion is [classes, classes], row =
// true class, column = prediction. The similarity of two classes is
// (r_ij + r_ji) / 2, r_ij the fraction of class i's images predicted j; of
// two clusters, the mean over their cross pairs. Starting from one cluster
// per class, the most similar pair merges until `groups` remain; equal
// similarities merge the pair whose smallest classes come first. Super-classes
// are numbered by their smallest class. Throws std::invalid_argument for
// groups outside [1, classes].
Superclasses cluster_confusion(const std::vector<int64_t>& confusion, int64_t classes, int64_t groups);

// The file: '#' comment lines, then one "class superclass" line per class.
// Throws std::runtime_error naming the file and line when it cannot be read,
// a class is missing, repeated or out of range, or a super-class is empty.
Superclasses read_superclasses(const std::string& path, int64_t classes);
// `comment` lines are written after '# '.
void write_superclasses(const std::string& path, const Superclasses& superclasses,
                        const std::vector<std::string>& comment);

}  // namespace mone

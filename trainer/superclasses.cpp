#include "trainer/superclasses.h"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace mone {

Superclasses cluster_confusion(const std::vector<int64_t>& confusion, int64_t classes, int64_t groups) {
  if (groups < 1 || groups > classes)
    throw std::invalid_argument("the number of super-classes must be in [1, " + std::to_string(classes) + "], got " +
                                std::to_string(groups));
  if (static_cast<int64_t>(confusion.size()) != classes * classes)
    throw std::invalid_argument("the confusion matrix must be classes x classes");
  std::vector<double> rate(static_cast<size_t>(classes * classes), 0.0);
  for (int64_t i = 0; i < classes; ++i) {
    int64_t total = 0;
    for (int64_t j = 0; j < classes; ++j) total += confusion[i * classes + j];
    for (int64_t j = 0; j < classes; ++j)
      if (total > 0) rate[i * classes + j] = static_cast<double>(confusion[i * classes + j]) / static_cast<double>(total);
  }
  const auto similarity = [&](int64_t i, int64_t j) { return (rate[i * classes + j] + rate[j * classes + i]) / 2; };
  // Clusters kept ordered by their smallest class, so the first maximum found is the tie rule's.
  std::vector<std::vector<int64_t>> clusters;
  for (int64_t c = 0; c < classes; ++c) clusters.push_back({c});
  while (static_cast<int64_t>(clusters.size()) > groups) {
    size_t best_a = 0, best_b = 1;
    double best = -1;
    for (size_t a = 0; a < clusters.size(); ++a) {
      for (size_t b = a + 1; b < clusters.size(); ++b) {
        double sum = 0;
        for (const int64_t i : clusters[a])
          for (const int64_t j : clusters[b]) sum += similarity(i, j);
        const double mean = sum / static_cast<double>(clusters[a].size() * clusters[b].size());
        if (mean > best) {
          best = mean;
          best_a = a;
          best_b = b;
        }
      }
    }
    // b's smallest class is above a's, so the merged cluster keeps a's place.
    clusters[best_a].insert(clusters[best_a].end(), clusters[best_b].begin(), clusters[best_b].end());
    clusters.erase(clusters.begin() + static_cast<std::ptrdiff_t>(best_b));
  }
  Superclasses result;
  result.count = groups;
  result.of_class.assign(static_cast<size_t>(classes), 0);
  for (size_t g = 0; g < clusters.size(); ++g)
    for (const int64_t c : clusters[g]) result.of_class[static_cast<size_t>(c)] = static_cast<int32_t>(g);
  return result;
}

Superclasses read_superclasses(const std::string& path, int64_t classes) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read '" + path + "'");
  Superclasses result;
  result.of_class.assign(static_cast<size_t>(classes), -1);
  std::string line;
  int64_t number = 0;
  const auto fail = [&](const std::string& why) {
    throw std::runtime_error("'" + path + "' line " + std::to_string(number) + ": " + why);
  };
  while (std::getline(in, line)) {
    ++number;
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    int64_t cls = -1, group = -1;
    std::string rest;
    if (!(fields >> cls >> group) || (fields >> rest)) fail("expected 'class superclass', got '" + line + "'");
    if (cls < 0 || cls >= classes) fail("class " + std::to_string(cls) + " is not in [0, " + std::to_string(classes) + ")");
    if (group < 0 || group >= classes) fail("super-class " + std::to_string(group) + " is out of range");
    if (result.of_class[static_cast<size_t>(cls)] >= 0) fail("class " + std::to_string(cls) + " appears twice");
    result.of_class[static_cast<size_t>(cls)] = static_cast<int32_t>(group);
    result.count = std::max<int64_t>(result.count, group + 1);
  }
  for (int64_t c = 0; c < classes; ++c)
    if (result.of_class[static_cast<size_t>(c)] < 0)
      throw std::runtime_error("'" + path + "' gives no super-class for class " + std::to_string(c) + " of " +
                               std::to_string(classes));
  std::vector<int64_t> members(static_cast<size_t>(result.count), 0);
  for (const int32_t g : result.of_class) ++members[static_cast<size_t>(g)];
  for (int64_t g = 0; g < result.count; ++g)
    if (members[static_cast<size_t>(g)] == 0)
      throw std::runtime_error("'" + path + "': super-class " + std::to_string(g) + " has no class");
  return result;
}

void write_superclasses(const std::string& path, const Superclasses& superclasses,
                        const std::vector<std::string>& comment) {
  std::ofstream out(path);
  for (const std::string& line : comment) out << "# " << line << "\n";
  out << "# class superclass\n";
  for (size_t c = 0; c < superclasses.of_class.size(); ++c) out << c << " " << superclasses.of_class[c] << "\n";
  if (!out) throw std::runtime_error("cannot write '" + path + "'");
}

}  // namespace mone

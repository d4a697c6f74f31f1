// `mone route` on a briefly trained tiny model: the pictures have the
// promised sizes, each patch carries the colour of the expert EPR chose (the
// counts `mone route` prints), at e_c = 1 every patch is the full expert's,
// and bad options name themselves.
#include <gtest/gtest.h>
#include <png.h>

#include <array>
#include <cmath>
#include <fstream>
#include <sstream>

#include "model/config.h"
#include "tests/trainer/trainer_fixture.h"
#include "trainer/routing_picture.h"

namespace mone {
namespace {

namespace fs = std::filesystem;
using testing::run_mone;
using testing::small_run;
using testing::with;

// Width and height from the IHDR chunk: big-endian at bytes 16 and 20.
std::pair<uint32_t, uint32_t> png_size(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::array<unsigned char, 24> head{};
  in.read(reinterpret_cast<char*>(head.data()), head.size());
  auto big_endian = [&](size_t at) {
    return uint32_t{head[at]} << 24 | uint32_t{head[at + 1]} << 16 | uint32_t{head[at + 2]} << 8 | head[at + 3];
  };
  return {big_endian(16), big_endian(20)};
}

RgbImage read_png(const fs::path& path) {
  png_image header{};
  header.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_file(&header, path.c_str())) throw std::runtime_error(header.message);
  header.format = PNG_FORMAT_RGB;
  RgbImage image(header.width, header.height);
  if (!png_image_finish_read(&header, nullptr, image.bytes(), 0, nullptr)) {
    throw std::runtime_error(header.message);
  }
  return image;
}

// Which expert's tint a pixel carries. A tinted pixel is (1-a)*grey + a*tint
// in every channel, so its channel differences are a times the tint's,
// whatever the grey underneath.
int64_t expert_of_pixel(const Rgb& pixel, int64_t experts) {
  int64_t best = -1;
  double best_distance = 1e9;
  for (int64_t e = 0; e < experts; ++e) {
    const Rgb tint = expert_colour(e, experts);
    const double red_green = (pixel.r - pixel.g) - kTintAlpha * (tint.r - tint.g);
    const double green_blue = (pixel.g - pixel.b) - kTintAlpha * (tint.g - tint.b);
    const double distance = std::hypot(red_green, green_blue);
    if (distance < best_distance) best_distance = distance, best = e;
  }
  return best_distance < 3 ? best : -1;
}

// The tint of each patch of a picture whose top-left corner is (x0, y0).
std::vector<int64_t> patch_experts(const RgbImage& picture, int64_t x0, int64_t y0, int64_t patches_per_side,
                                   int64_t cell, int64_t experts) {
  std::vector<int64_t> found;
  for (int64_t row = 0; row < patches_per_side; ++row) {
    for (int64_t column = 0; column < patches_per_side; ++column) {
      found.push_back(expert_of_pixel(picture.at(x0 + column * cell + cell / 2, y0 + row * cell + cell / 2), experts));
    }
  }
  return found;
}

TEST(MoneRoute, PicturesShowTheRouting) {
  testing::TrainerFixture fixture;
  const testing::ProcessResult trained = run_mone(with(small_run(fixture, "run"), {"--steps", "3"}));
  ASSERT_EQ(trained.exit_code, 0) << trained.err;
  const fs::path out = fixture.root() / "route";
  const int64_t images = 3, scale = 2;
  const testing::ProcessResult routed =
      run_mone({"route", "--data", fixture.data().string(), "--checkpoint", (fixture.root() / "run").string(), "--out",
                out.string(), "--images", std::to_string(images), "--scale", std::to_string(scale), "--capacity", "0.3",
                "--capacities", "0.3,1", "--threads", "1"});
  ASSERT_EQ(routed.exit_code, 0) << routed.err;

  const ModelConfig tiny;  // the fixture's run keeps the tiny preset's patch and experts
  const int64_t side = 28 * scale, patches_per_side = 28 / tiny.patch, cell = tiny.patch * scale;
  std::istringstream printed(routed.out);
  std::string line;
  std::getline(printed, line);  // "checkpoint at step 3, ..."
  for (int64_t i = 0; i < images; ++i) {
    const fs::path path = out / ("image-" + std::to_string(i) + ".png");
    ASSERT_EQ(png_size(path), std::make_pair(uint32_t(side), uint32_t(side))) << path;
    std::vector<int64_t> counted(static_cast<size_t>(tiny.experts), 0);
    for (const int64_t e : patch_experts(read_png(path), 0, 0, patches_per_side, cell, tiny.experts)) {
      ASSERT_GE(e, 0) << path << ": a patch without a palette tint";
      ++counted[static_cast<size_t>(e)];
    }
    ASSERT_TRUE(std::getline(printed, line));
    std::istringstream counts(line.substr(line.find(':') + 1));
    std::vector<int64_t> reported(static_cast<size_t>(tiny.experts), 0);
    for (int64_t& c : reported) counts >> c;
    EXPECT_EQ(counted, reported) << line;
    EXPECT_LT(counted.back(), patches_per_side * patches_per_side) << "e_c 0.3 sent every patch to the full expert";
  }

  // Columns: the plain image, e_c 0.3, e_c 1.
  const fs::path grid = out / "grid.png";
  const int64_t gap = kGridGap;
  ASSERT_EQ(png_size(grid), std::make_pair(uint32_t(3 * side + 2 * gap), uint32_t(images * side + (images - 1) * gap)));
  const RgbImage picture = read_png(grid);
  for (int64_t i = 0; i < images; ++i) {
    for (const int64_t e :
         patch_experts(picture, 2 * (side + gap), i * (side + gap), patches_per_side, cell, tiny.experts)) {
      EXPECT_EQ(e, tiny.experts - 1) << "image " << i << " at e_c 1";
    }
  }
}

TEST(MoneRoute, ErrorsNameTheOptionOrFile) {
  testing::TrainerFixture fixture;
  ASSERT_EQ(run_mone(with(small_run(fixture, "run"), {"--steps", "1"})).exit_code, 0);
  const std::vector<std::string> base = {"route",
                                         "--data",
                                         fixture.data().string(),
                                         "--checkpoint",
                                         (fixture.root() / "run").string(),
                                         "--out",
                                         (fixture.root() / "p").string(),
                                         "--threads",
                                         "1"};
  auto expect_error = [](const std::vector<std::string>& args, int exit_code, const std::string& named) {
    const testing::ProcessResult result = run_mone(args);
    EXPECT_EQ(result.exit_code, exit_code) << result.err;
    EXPECT_NE(result.err.find(named), std::string::npos) << "expected '" << named << "' in: " << result.err;
  };
  expect_error(with(base, {"--images", "65"}), 2, "--images");
  expect_error(with(base, {"--images", "0"}), 2, "--images");
  expect_error(with(base, {"--capacity", "0.05"}), 2, "--capacity");
  expect_error(with(base, {"--capacities", "0.5,x"}), 2, "--capacities");
  expect_error(with(base, {"--checkpoint", (fixture.root() / "missing.h5").string()}), 1, "missing.h5");
  std::ofstream(fixture.root() / "a-file") << "not a directory";
  expect_error(with(base, {"--out", (fixture.root() / "a-file" / "pictures").string()}), 1, "--out");
  expect_error({"route", "--data", fixture.data().string()}, 2, "--checkpoint");
}

}  // namespace
}  // namespace mone

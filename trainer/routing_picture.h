// Pictures of EPR's routing decision (method page, "Expert Preferred
// Routing"): an image upscaled, each patch tinted by the nested expert its
// token went to, and a grid of such pictures (docs/trainer.md, `mone route`).
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "data/format.h"
#include "trainer/png_writer.h"

namespace mone {

// Tints from the smallest expert to the full one: blue, green, orange, red.
constexpr std::array<Rgb, 4> kExpertPalette = {{{40, 90, 220}, {40, 170, 60}, {245, 150, 30}, {220, 40, 40}}};
// Weight of the tint over the grey image.
constexpr double kTintAlpha = 0.45;
// Patch borders and the gaps of the grid.
constexpr Rgb kGridLine = {0, 0, 0};
constexpr Rgb kGridBackground = {255, 255, 255};
constexpr int64_t kGridGap = 4;  // pixels between the cells of the grid picture

// The palette entry of expert `expert` (0-based) of `experts`: the smallest
// is always blue and the full one always red; with E != 4 the others are
// spread over the palette (E > 4 shares colours between neighbours).
Rgb expert_colour(int64_t expert, int64_t experts);

// `image` (uint8 HWC, 1 or 3 channels) upscaled `scale` times (nearest).
RgbImage upscale(const uint8_t* image, const ImageShape& shape, int64_t scale);

// The image in grey, upscaled, each P x P patch blended with the colour of
// `expert_of_token[n]` (n = patch row * W/P + patch column), with a 1-pixel
// line at each patch border inside the image.
RgbImage routing_picture(const uint8_t* image, const ImageShape& shape, int64_t patch, const int32_t* expert_of_token,
                         int64_t experts, int64_t scale);

// Cells of equal size laid out row by row, kGridGap apart on kGridBackground.
RgbImage grid_picture(const std::vector<std::vector<RgbImage>>& rows);

}  // namespace mone

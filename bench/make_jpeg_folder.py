#!/usr/bin/env python3
"""Writes an ImageFolder tree of JPEGs the size of a typical ImageNet photo
for the converter and loader benchmarks:

    make_jpeg_folder.py OUT COUNT

COUNT images in 10 class folders, 500x375 (three in four) or 375x500, quality
90 with 4:2:0 chroma subsampling (PIL's default, like most camera JPEGs).
The content is smooth colour fields with blobs and pixel noise, so that the
files (about 60-110 KB) cost the entropy decoder what photos cost.
"""
import os
import sys

import numpy as np
from PIL import Image


def picture(height, width, rng):
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.zeros((height, width, 3), np.float32)
    for c in range(3):
        fx, fy, phase = rng.uniform(0.5, 4, 2).tolist() + [rng.uniform(0, 6.3)]
        image[:, :, c] = 128 + 90 * np.sin(fx * x / width * 6.3 + phase) * np.cos(fy * y / height * 6.3)
    for _ in range(12):
        cy, cx, r = rng.uniform(0, height), rng.uniform(0, width), rng.uniform(10, 80)
        mask = (y - cy) ** 2 + (x - cx) ** 2 < r * r
        image[mask] = rng.uniform(0, 255, 3)
    image += rng.normal(0, 12, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def main():
    out, count = sys.argv[1], int(sys.argv[2])
    rng = np.random.default_rng(0)
    for i in range(count):
        folder = os.path.join(out, "class%02d" % (i % 10))
        os.makedirs(folder, exist_ok=True)
        height, width = (375, 500) if i % 4 else (500, 375)
        Image.fromarray(picture(height, width, rng)).save(os.path.join(folder, "%05d.jpg" % i), quality=90)


if __name__ == "__main__":
    main()

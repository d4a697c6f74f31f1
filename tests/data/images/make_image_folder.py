#!/usr/bin/env python3
"""Writes a small ImageFolder tree from synthetic patterns for the image
folder tests, with what PIL decodes from each good file.

    make_image_folder.py OUT

OUT/train/<class>/..., OUT/val/<class>/..., OUT/test/<class>/...: PNG (grey,
RGB, RGBA, palette, 16-bit grey and RGB) and JPEG (grey, RGB, 4:2:0 and
4:4:4) images, every one of a different size so a test can find it by its
size; in train also a corrupt JPEG, a truncated PNG, a text file and an
empty class folder. OUT/expected.txt lists each good file as
"relative/path height width": OUT/expected/<n>.rgb holds, for the n-th line,
PIL's Image.open(file).convert("RGB") bytes (HWC) -- for 16-bit PNGs, whose
PIL conversion clips, the 8-bit pattern the file was made from (value * 257).
"""
import io
import os
import struct
import sys
import zlib

import numpy as np
from PIL import Image


def pattern(height, width, seed):
    """Smooth colour gradients plus a few edges: JPEG-friendly but not flat."""
    y, x = np.mgrid[0:height, 0:width]
    r = (x * 255 // max(width - 1, 1) + seed * 37) % 256
    g = (y * 255 // max(height - 1, 1) + seed * 71) % 256
    b = ((x + y) * 4 + seed * 13) % 256
    b[(x // 7 + y // 5) % 2 == 0] //= 2
    return np.stack([r, g, b], axis=-1).astype(np.uint8)


def png16(path, values):
    """A 16-bit PNG (grey [h, w] or RGB [h, w, 3] uint16), which PIL cannot write."""
    height, width = values.shape[:2]
    colour = 2 if values.ndim == 3 else 0
    rows = values.reshape(height, -1).astype(">u2").tobytes()
    stride = len(rows) // height
    raw = b"".join(b"\0" + rows[i * stride:(i + 1) * stride] for i in range(height))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    with open(path, "wb") as out:
        out.write(b"\x89PNG\r\n\x1a\n")
        out.write(chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, colour, 0, 0, 0)))
        out.write(chunk(b"IDAT", zlib.compress(raw)))
        out.write(chunk(b"IEND", b""))


def main():
    out = sys.argv[1]
    expected = []
    size = [20]  # a new size for every image

    def next_size():
        size[0] += 1
        return size[0], size[0] + 9 + size[0] % 5

    def write(split, label, name, kind, seed):
        folder = os.path.join(out, split, label)
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, name)
        height, width = next_size()
        rgb = pattern(height, width, seed)
        truth = None
        if kind == "png-rgb":
            Image.fromarray(rgb).save(path)
        elif kind == "png-grey":
            Image.fromarray(rgb[:, :, 1]).save(path)
        elif kind == "png-rgba":
            alpha = (np.arange(width, dtype=np.uint8)[None, :] * 9).repeat(height, 0)
            Image.fromarray(np.dstack([rgb, alpha])).save(path)
        elif kind == "png-palette":
            Image.fromarray(rgb).quantize(colors=16).save(path)
        elif kind == "png16-grey":
            png16(path, rgb[:, :, 0].astype(np.uint16) * 257)
            truth = np.repeat(rgb[:, :, :1], 3, axis=2)
        elif kind == "png16-rgb":
            png16(path, rgb.astype(np.uint16) * 257)
            truth = rgb
        elif kind == "jpeg-rgb":
            Image.fromarray(rgb).save(path, quality=90)
        elif kind == "jpeg-444":
            Image.fromarray(rgb).save(path, quality=95, subsampling=0)
        elif kind == "jpeg-grey":
            Image.fromarray(rgb[:, :, 2]).save(path, quality=90)
        else:
            raise ValueError(kind)
        if truth is None:
            truth = np.asarray(Image.open(path).convert("RGB"))
        assert truth.shape == (height, width, 3), (path, truth.shape)
        expected.append((os.path.relpath(path, out), height, width, truth))
        return path

    kinds = ["png-rgb", "png-grey", "png-rgba", "png-palette", "png16-grey", "png16-rgb",
             "jpeg-rgb", "jpeg-444", "jpeg-grey"]
    classes = ["apple", "banana", "cherry"]
    seed = 0
    for split, per_class in (("train", 4), ("val", 1), ("test", 2)):
        for c, label in enumerate(classes):
            for i in range(per_class):
                kind = kinds[seed % len(kinds)]
                extension = ".jpg" if kind.startswith("jpeg") else ".png"
                write(split, label, "%s_%d%s" % (kind, i, extension), kind, seed)
                seed += 1
    os.makedirs(os.path.join(out, "train", "durian"), exist_ok=True)  # an empty class

    # The bad files: each is named by the converter.
    buffer = io.BytesIO()
    Image.fromarray(pattern(40, 50, 99)).save(buffer, format="JPEG", quality=90)
    with open(os.path.join(out, "train", "apple", "corrupt.jpg"), "wb") as f:
        f.write(buffer.getvalue()[:len(buffer.getvalue()) // 2])
    buffer = io.BytesIO()
    Image.fromarray(pattern(40, 50, 98)).save(buffer, format="PNG")
    with open(os.path.join(out, "train", "banana", "truncated.png"), "wb") as f:
        f.write(buffer.getvalue()[:len(buffer.getvalue()) * 2 // 3])
    with open(os.path.join(out, "train", "cherry", "notes.txt"), "w") as f:
        f.write("not an image\n")

    os.makedirs(os.path.join(out, "expected"), exist_ok=True)
    with open(os.path.join(out, "expected.txt"), "w") as index:
        for n, (path, height, width, truth) in enumerate(expected):
            index.write("%s %d %d\n" % (path, height, width))
            with open(os.path.join(out, "expected", "%d.rgb" % n), "wb") as f:
                f.write(truth.tobytes())


if __name__ == "__main__":
    main()

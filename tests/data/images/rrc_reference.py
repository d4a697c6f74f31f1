#!/usr/bin/env python3
"""torchvision's RandomResizedCrop.get_params, fed by mone's counter-based draws.

Reads lines "seed epoch sample height width scale_min scale_max ratio_min
ratio_max" from stdin and prints "top left height width fallback" for each:
the crop box torchvision's rule (transforms.RandomResizedCrop.get_params,
10 attempts, then the ratio-clamped centre crop) picks when its uniforms
come from mone's stream keyed (seed, "augm", epoch, sample) (data/random.h,
docs/data-format.md) and its randint(0, n + 1) is the stream's below(n + 1).
"""
import math
import sys

MASK = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15
AUGMENT = 0x6175676D  # "augm"


def mix(x):
    x = (x + GOLDEN) & MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK
    return x ^ (x >> 31)


def key(a, b):
    return mix(mix(a) ^ b)


class Stream:
    def __init__(self, k):
        self.key, self.counter = k, 0

    def next(self):
        value = mix((self.key + GOLDEN * self.counter) & MASK)
        self.counter += 1
        return value

    def below(self, bound):
        threshold = ((1 << 64) - bound) % bound
        while True:
            product = self.next() * bound
            if product & MASK >= threshold:
                return product >> 64

    def uniform(self, low, high):
        return low + (high - low) * ((self.next() >> 11) * 2.0 ** -53)


def get_params(height, width, scale, ratio, draws):
    """torchvision.transforms.RandomResizedCrop.get_params with `draws` for torch's RNG."""
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target_area = area * draws.uniform(scale[0], scale[1])
        aspect_ratio = math.exp(draws.uniform(log_ratio[0], log_ratio[1]))
        w = int(round(math.sqrt(target_area * aspect_ratio)))
        h = int(round(math.sqrt(target_area / aspect_ratio)))
        if 0 < w <= width and 0 < h <= height:
            i = draws.below(height - h + 1)
            j = draws.below(width - w + 1)
            return i, j, h, w, 0
    in_ratio = float(width) / float(height)
    if in_ratio < min(ratio):
        w = width
        h = int(round(w / min(ratio)))
    elif in_ratio > max(ratio):
        h = height
        w = int(round(h * max(ratio)))
    else:
        w = width
        h = height
    i = (height - h) // 2
    j = (width - w) // 2
    return i, j, h, w, 1


def main():
    for line in sys.stdin:
        if not line.strip():
            continue
        f = line.split()
        seed, epoch, sample, height, width = (int(v) for v in f[:5])
        scale = (float(f[5]), float(f[6]))
        ratio = (float(f[7]), float(f[8]))
        draws = Stream(key(mix(key(seed, AUGMENT) ^ epoch), sample))  # key(key(seed, "augm", epoch), sample)
        print("%d %d %d %d %d" % get_params(height, width, scale, ratio, draws))


if __name__ == "__main__":
    main()

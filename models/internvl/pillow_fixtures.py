"""Pillow-made fixtures for InternVL's original-layout preprocessing (tests/engine/internvl-pillow.test.ts).

Runs OpenGVLab's published pipeline (the InternVL model cards' `load_image` → `dynamic_preprocess` →
`build_transform`), re-written here from that code, on deterministic synthetic images with real Pillow:

  convert('RGB') → grid by find_closest_aspect_ratio over sorted(set(...)) → image.resize((cols·448, rows·448))
  (Image.resize's default filter for RGB, BICUBIC) → 448-px crops row-major → thumbnail image.resize((448, 448))
  when there is more than one tile → per frame: T.Resize((448, 448), BICUBIC) (a no-op on a 448×448 PIL image:
  Image.resize returns a copy for the same size) → ToTensor (uint8 → float32, / 255 in float32) →
  Normalize(IMAGENET_MEAN, IMAGENET_STD) ((x − mean) / std, float32).

torch/torchvision are not needed: numpy float32 arithmetic is IEEE-correctly rounded as torch's CPU ops are.

Writes models/internvl/pillow_fixtures.json:
  per case: w, h, mode, grid [cols, rows], frames, sha256 of the uint8 frames (HWC, frame after frame),
  per-frame sha256 (first 16 hex), sha256 of the float32 [frames, 3, 448, 448] tensor (little-endian),
  per-frame per-channel float sums (math.fsum of the float32 values);
  plus the 3 × 256 normalisation table (float32 values as float64) and the Pillow version.

  /usr/bin/python3 models/internvl/pillow_fixtures.py        (Debian python3-pil, python3-numpy)
"""
import hashlib
import json
import math
import os

import numpy as np
import PIL
from PIL import Image

IMAGE_SIZE = 448
MIN_NUM, MAX_NUM = 1, 12  # InternVL3-1B config.json: min_dynamic_patch / max_dynamic_patch
USE_THUMBNAIL = True
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# (width, height, mode)
CASES = [
    (1, 1, "RGB"), (448, 448, "RGB"), (449, 447, "RGB"), (300, 900, "RGB"), (4000, 300, "RGB"),
    (1024, 768, "RGB"), (800, 600, "RGB"), (33, 2000, "RGB"), (1000, 1000, "RGB"), (1500, 200, "RGB"),
    (5, 5, "RGB"), (800, 600, "RGBA"), (300, 900, "L"), (5, 5, "RGBA"), (449, 447, "L"),
]


def synth(w, h, mode):
    """The test's generator (same integer formula): channel c of pixel (x, y)."""
    c = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    y, x = np.mgrid[0:h, 0:w].astype(np.int64)
    planes = []
    for ch in range(c):
        if ch == 3:
            v = (x * 3 + y * 5) % 256
        else:
            v = (x * 255 // w + y * 97 // h + ((x * y + ch * 31) % 89) + (((x >> 2) ^ (y >> 3)) & 3) * 40 + ch * 50) % 256
        planes.append(v.astype(np.uint8))
    arr = np.stack(planes, axis=-1) if c > 1 else planes[0]
    return Image.fromarray(arr, mode)


def find_closest_aspect_ratio(aspect_ratio, target_ratios, width, height, image_size):
    best_diff, best = float("inf"), (1, 1)
    area = width * height
    for r in target_ratios:
        diff = abs(aspect_ratio - r[0] / r[1])
        if diff < best_diff:
            best_diff, best = diff, r
        elif diff == best_diff and area > 0.5 * image_size * image_size * r[0] * r[1]:
            best = r
    return best


def dynamic_preprocess(image, min_num=MIN_NUM, max_num=MAX_NUM, image_size=IMAGE_SIZE, use_thumbnail=USE_THUMBNAIL):
    w, h = image.size
    ratios = set((i, j) for n in range(min_num, max_num + 1) for i in range(1, n + 1) for j in range(1, n + 1)
                 if min_num <= i * j <= max_num)
    ratios = sorted(ratios, key=lambda r: r[0] * r[1])
    cols, rows = find_closest_aspect_ratio(w / h, ratios, w, h, image_size)
    tw, th = image_size * cols, image_size * rows
    resized = image.resize((tw, th))  # default resample: BICUBIC for RGB (Pillow >= 7)
    tiles = []
    for i in range(cols * rows):
        c, r = i % (tw // image_size), i // (tw // image_size)
        tiles.append(resized.crop((c * image_size, r * image_size, (c + 1) * image_size, (r + 1) * image_size)))
    if use_thumbnail and len(tiles) != 1:
        tiles.append(image.resize((image_size, image_size)))
    return (cols, rows), tiles


def transform(tile):
    """build_transform: convert / Resize((448, 448), BICUBIC) / ToTensor / Normalize, in float32."""
    if tile.mode != "RGB":
        tile = tile.convert("RGB")
    tile = tile.resize((IMAGE_SIZE, IMAGE_SIZE), Image.BICUBIC)  # torchvision's PIL path: Image.resize
    u8 = np.asarray(tile, dtype=np.uint8)
    x = u8.transpose(2, 0, 1).astype(np.float32) / np.float32(255)
    mean = np.asarray(IMAGENET_MEAN, dtype=np.float32)[:, None, None]
    std = np.asarray(IMAGENET_STD, dtype=np.float32)[:, None, None]
    return u8, ((x - mean) / std).astype(np.float32)


def main():
    out = {"pillow": PIL.__version__, "numpy": np.__version__, "imageSize": IMAGE_SIZE, "minNum": MIN_NUM, "maxNum": MAX_NUM, "cases": []}
    for w, h, mode in CASES:
        img = synth(w, h, mode).convert("RGB")  # load_image: Image.open(f).convert('RGB')
        grid, tiles = dynamic_preprocess(img)
        u8s, fs = zip(*(transform(t) for t in tiles))
        tensor = np.stack(fs)
        out["cases"].append({
            "w": w, "h": h, "mode": mode, "grid": list(grid), "frames": len(tiles),
            "u8Sha256": hashlib.sha256(b"".join(u.tobytes() for u in u8s)).hexdigest(),
            "u8FrameSha256": [hashlib.sha256(u.tobytes()).hexdigest()[:16] for u in u8s],
            "f32Sha256": hashlib.sha256(tensor.astype("<f4").tobytes()).hexdigest(),
            "f32Sums": [[math.fsum(f[ch].astype(np.float64).ravel().tolist()) for ch in range(3)] for f in fs],
        })
        print(w, h, mode, grid, len(tiles))
    v = np.arange(256, dtype=np.uint8).astype(np.float32) / np.float32(255)
    out["table"] = [((v - np.float32(m)) / np.float32(s)).astype(np.float32).astype(np.float64).tolist() for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)]
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pillow_fixtures.json")
    head = {k: v for k, v in out.items() if k not in ("cases", "table")}
    with open(path, "w") as f:  # one case / table row per line
        f.write(json.dumps(head)[:-1] + ',\n "cases": [\n  ' + ",\n  ".join(json.dumps(c) for c in out["cases"]))
        f.write('\n ],\n "table": [\n  ' + ",\n  ".join(json.dumps(r) for r in out["table"]) + "\n ]\n}\n")


if __name__ == "__main__":
    main()

"""Deterministic synthetic VQA data for the tiny SmolVLM-layout model.

Every sample is a function of (seed, index) only: `make_sample(seed, idx)` seeds numpy's PCG64 with
[seed, idx]. Images are drawn with PIL (no antialiasing) and a 5x7 bitmap font defined below, so no
font files are needed and the output is bit-identical everywhere.

Tasks (answers are one word or one digit, compared by exact match):
  color     one shape anywhere; "What color is the shape?"               -> red | green | blue | ...
  shape     one large shape near the centre; "What shape is this?"      -> circle | square | ...
  count     1-4 shapes, one per cell of a 2x2 grid; "How many shapes are there?" -> 1 | 2 | 3 | 4
  position  1-2 shapes; "Where is the red shape?"                       -> left | right | top | bottom
  word      a 3-letter word, 2x glyphs, in a 64x64 image; "What word is written?" -> cat | dog | ...
  highres   a 256x256 (or 256x128 / 128x256) image with the same kind of word printed near the centre of ONE
            64-px tile (glyphs 10x14 px: clear in the tile, ~2.5x3.5 px and illegible in the 64x64 global
            image) plus clutter shapes; "What is the small word?"      -> cat | dog | ...
  Images are 64x64, 128x64 or 64x128 (shape and word: always 64x64); the processor upscales them to 256 on the
  longest edge, so every image becomes 4x4 (or 4x2 / 2x4) tiles + the global image.
"""
import numpy as np
from PIL import Image, ImageDraw

COLORS = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (235, 205, 30),
    "purple": (140, 60, 190),
    "orange": (245, 140, 30),
}
SHAPES = ["circle", "square", "triangle", "cross", "diamond"]
WORDS = ["cat", "dog", "sun", "box", "cup", "hat", "pen", "key"]
POSITIONS = ["left", "right", "top", "bottom"]
TASKS = ["color", "shape", "count", "position", "word", "highres"]
# training mix (highres and word are the hardest; they get more samples)
TASK_WEIGHTS = {"color": 1.0, "shape": 1.0, "count": 1.2, "position": 1.0, "word": 1.3, "highres": 1.6}

QUESTIONS = {
    "color": ["What color is the shape?", "What color is the {shape}?", "Which color does the {shape} have?"],
    "shape": ["What shape is this?", "What shape is shown?", "Which shape is in the image?"],
    "count": ["How many shapes are there?", "How many {shape}s are there?", "Count the shapes."],
    "position": ["Where is the {color} shape?", "Where is the {color} {shape}?", "On which side is the {color} shape?"],
    "word": ["What word is written?", "What does the text say?", "Read the word."],
    "highres": ["What is the small word?", "Read the small text.", "Which word is printed small?"],
}

# 5x7 bitmap font, uppercase A-Z ('#' = ink)
_FONT_SRC = {
    "A": ".###. #...# #...# ##### #...# #...# #...#",
    "B": "####. #...# #...# ####. #...# #...# ####.",
    "C": ".###. #...# #.... #.... #.... #...# .###.",
    "D": "####. #...# #...# #...# #...# #...# ####.",
    "E": "##### #.... #.... ####. #.... #.... #####",
    "F": "##### #.... #.... ####. #.... #.... #....",
    "G": ".###. #...# #.... #.### #...# #...# .###.",
    "H": "#...# #...# #...# ##### #...# #...# #...#",
    "I": ".###. ..#.. ..#.. ..#.. ..#.. ..#.. .###.",
    "J": "..### ...#. ...#. ...#. ...#. #..#. .##..",
    "K": "#...# #..#. #.#.. ##... #.#.. #..#. #...#",
    "L": "#.... #.... #.... #.... #.... #.... #####",
    "M": "#...# ##.## #.#.# #.#.# #...# #...# #...#",
    "N": "#...# #...# ##..# #.#.# #..## #...# #...#",
    "O": ".###. #...# #...# #...# #...# #...# .###.",
    "P": "####. #...# #...# ####. #.... #.... #....",
    "Q": ".###. #...# #...# #...# #.#.# #..#. .##.#",
    "R": "####. #...# #...# ####. #.#.. #..#. #...#",
    "S": ".#### #.... #.... .###. ....# ....# ####.",
    "T": "##### ..#.. ..#.. ..#.. ..#.. ..#.. ..#..",
    "U": "#...# #...# #...# #...# #...# #...# .###.",
    "V": "#...# #...# #...# #...# #...# .#.#. ..#..",
    "W": "#...# #...# #...# #.#.# #.#.# #.#.# .#.#.",
    "X": "#...# #...# .#.#. ..#.. .#.#. #...# #...#",
    "Y": "#...# #...# .#.#. ..#.. ..#.. ..#.. ..#..",
    "Z": "##### ....# ...#. ..#.. .#... #.... #####",
}
FONT = {ch: np.array([[c == "#" for c in row] for row in src.split()], dtype=bool) for ch, src in _FONT_SRC.items()}
GLYPH_W, GLYPH_H, GLYPH_GAP = 5, 7, 1


def text_size(text, scale):
    n = len(text)
    return (n * GLYPH_W + (n - 1) * GLYPH_GAP) * scale, GLYPH_H * scale


def draw_text(arr, text, x, y, scale, color):
    """Blit `text` (uppercased) into the HxWx3 uint8 array at (x, y) with integer pixel scale."""
    for i, ch in enumerate(text.upper()):
        g = np.kron(FONT[ch], np.ones((scale, scale), dtype=bool))
        gx = x + i * (GLYPH_W + GLYPH_GAP) * scale
        region = arr[y:y + g.shape[0], gx:gx + g.shape[1]]
        region[g] = color


def draw_shape(draw, shape, cx, cy, r, color):
    if shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=color)
    elif shape == "square":
        s = int(round(r * 0.85))
        draw.rectangle([cx - s, cy - s, cx + s, cy + s], fill=color)
    elif shape == "triangle":
        draw.polygon([(cx, cy - r), (cx + r, cy + r * 0.8), (cx - r, cy + r * 0.8)], fill=color)
    elif shape == "cross":
        t = max(1, int(round(r * 0.35)))
        draw.rectangle([cx - r, cy - t, cx + r, cy + t], fill=color)
        draw.rectangle([cx - t, cy - r, cx + t, cy + r], fill=color)
    elif shape == "diamond":
        draw.polygon([(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)], fill=color)
    else:
        raise ValueError(shape)


def _background(rng, w, h):
    level = int(rng.integers(215, 256))
    arr = np.full((h, w, 3), level, dtype=np.uint8)
    # a faint per-channel tint so backgrounds are not all pure gray
    tint = rng.integers(-12, 13, size=3)
    arr = np.clip(arr.astype(np.int16) + tint, 0, 255).astype(np.uint8)
    return arr


def _place(rng, w, h, r, boxes, region=None, tries=200):
    """Random centre for a radius-r object inside region (x0,y0,x1,y1), not overlapping `boxes`."""
    x0, y0, x1, y1 = region if region else (0, 0, w, h)
    for _ in range(tries):
        cx = int(rng.integers(x0 + r + 1, max(x0 + r + 2, x1 - r - 1)))
        cy = int(rng.integers(y0 + r + 1, max(y0 + r + 2, y1 - r - 1)))
        if all(abs(cx - bx) > r + br + 2 or abs(cy - by) > r + br + 2 for bx, by, br in boxes):
            return cx, cy
    return None


def _aspect_size(aspect, base):
    return {"square": (base, base), "wide": (2 * base, base), "tall": (base, 2 * base)}[aspect]


def _word_ink(rng):
    return tuple(int(v) for v in rng.integers(0, 70, size=3))


def gen_color(rng, aspect):
    w, h = _aspect_size(aspect, 64)
    arr = _background(rng, w, h)
    img = Image.fromarray(arr)
    d = ImageDraw.Draw(img)
    shape = SHAPES[rng.integers(len(SHAPES))]
    color = list(COLORS)[rng.integers(len(COLORS))]
    r = int(rng.integers(8, 15))
    cx, cy = _place(rng, w, h, r, [])
    draw_shape(d, shape, cx, cy, r, COLORS[color])
    q = QUESTIONS["color"][rng.integers(3)].format(shape=shape)
    return img, q, color


def gen_shape(rng, aspect):
    # always square, one large shape near the centre: a ViT this small learns shape identity quickly only when
    # the shape does not wander over the whole patch grid
    w, h = 64, 64
    img = Image.fromarray(_background(rng, w, h))
    d = ImageDraw.Draw(img)
    shape = SHAPES[rng.integers(len(SHAPES))]
    color = list(COLORS)[rng.integers(len(COLORS))]
    r = int(rng.integers(18, 26))
    cx, cy = 32 + int(rng.integers(-5, 6)), 32 + int(rng.integers(-5, 6))
    draw_shape(d, shape, cx, cy, r, COLORS[color])
    q = QUESTIONS["shape"][rng.integers(3)]
    return img, q, shape


def gen_count(rng, aspect):
    # 1-4 shapes of one kind, each near the centre of a different cell of the 2x2 grid
    w, h = _aspect_size(aspect, 64)
    img = Image.fromarray(_background(rng, w, h))
    d = ImageDraw.Draw(img)
    n = int(rng.integers(1, 5))
    shape = SHAPES[rng.integers(len(SHAPES))]
    cells = rng.permutation(4)[:n]
    for cell in cells:
        r = int(rng.integers(5, 10))
        cx = (cell % 2) * (w // 2) + w // 4 + int(rng.integers(-4, 5))
        cy = (cell // 2) * (h // 2) + h // 4 + int(rng.integers(-4, 5))
        color = list(COLORS)[rng.integers(len(COLORS))]
        draw_shape(d, shape, cx, cy, r, COLORS[color])
    q = QUESTIONS["count"][rng.integers(3)].format(shape=shape)
    return img, q, str(n)


def _pos_region(pos, w, h):
    # left/right: the outer third, vertically central band; top/bottom: outer third, horizontal central band
    if pos == "left":
        return (0, h // 4, w // 3, h - h // 4)
    if pos == "right":
        return (w - w // 3, h // 4, w, h - h // 4)
    if pos == "top":
        return (w // 4, 0, w - w // 4, h // 3)
    return (w // 4, h - h // 3, w - w // 4, h)


def gen_position(rng, aspect):
    w, h = _aspect_size(aspect, 64)
    img = Image.fromarray(_background(rng, w, h))
    d = ImageDraw.Draw(img)
    n = int(rng.integers(1, 3))
    pos = rng.permutation(len(POSITIONS))[:n]
    cols = rng.permutation(len(COLORS))[:n]
    shapes = [SHAPES[rng.integers(len(SHAPES))] for _ in range(n)]
    boxes = []
    for i in range(n):
        r = int(rng.integers(5, 8))
        p = _place(rng, w, h, r, boxes, region=_pos_region(POSITIONS[pos[i]], w, h))
        boxes.append((p[0], p[1], r))
        draw_shape(d, shapes[i], p[0], p[1], r, COLORS[list(COLORS)[cols[i]]])
    q = QUESTIONS["position"][rng.integers(3)].format(color=list(COLORS)[cols[0]], shape=shapes[0])
    img.info["query_color"] = list(COLORS)[cols[0]]
    return img, q, POSITIONS[pos[0]]


def gen_word(rng, aspect):
    # always square 64x64, 2x glyphs (10x14 px) near the centre: the same look as the high-res word in its tile
    w, h = 64, 64
    arr = _background(rng, w, h)
    word = WORDS[rng.integers(len(WORDS))]
    tw, th = text_size(word, 2)
    x = (w - tw) // 2 + int(rng.integers(-4, 5))
    y = (h - th) // 2 + int(rng.integers(-6, 7))
    draw_text(arr, word, x, y, 2, _word_ink(rng))
    q = QUESTIONS["word"][rng.integers(3)]
    return Image.fromarray(arr), q, word


def gen_highres(rng, aspect, tile=64):
    # 256x256 (or 256x128 / 128x256): the word, 2x glyphs, near the centre of one random 64-px tile; clutter shapes
    # in other tiles. In the 64x64 global image the glyphs shrink to ~2.5x3.5 px.
    w, h = _aspect_size(aspect, 256 if aspect == "square" else 128)
    arr = _background(rng, w, h)
    word = WORDS[rng.integers(len(WORDS))]
    tw, th = text_size(word, 2)  # 34 x 14
    cols, rows = w // tile, h // tile
    tr, tc = int(rng.integers(rows)), int(rng.integers(cols))
    x = tc * tile + (tile - tw) // 2 + int(rng.integers(-4, 5))
    y = tr * tile + (tile - th) // 2 + int(rng.integers(-6, 7))
    draw_text(arr, word, x, y, 2, _word_ink(rng))
    img = Image.fromarray(arr)
    d = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(2, 6))):
        r2, c2 = int(rng.integers(rows)), int(rng.integers(cols))
        if (r2, c2) == (tr, tc):
            continue
        r = int(rng.integers(5, 12))
        p = _place(rng, w, h, r, [], region=(c2 * tile, r2 * tile, (c2 + 1) * tile, (r2 + 1) * tile))
        draw_shape(d, SHAPES[rng.integers(len(SHAPES))], p[0], p[1], r, COLORS[list(COLORS)[rng.integers(len(COLORS))]])
    q = QUESTIONS["highres"][rng.integers(3)]
    img.info["word_tile"] = (tr, tc)
    return img, q, word


GENERATORS = {
    "color": gen_color,
    "shape": gen_shape,
    "count": gen_count,
    "position": gen_position,
    "word": gen_word,
    "highres": gen_highres,
}


def make_sample(seed, idx, task=None, aspect=None, tasks=None):
    """Returns dict(image=PIL RGB image, question, answer, task, aspect). `tasks`: the tasks to draw from."""
    rng = np.random.default_rng([seed, idx])
    if task is None:
        tasks = TASKS if tasks is None else tasks
        p = np.array([TASK_WEIGHTS[t] for t in tasks])
        task = tasks[rng.choice(len(tasks), p=p / p.sum())]
    if aspect is None:
        aspect = ["square", "square", "square", "wide", "tall"][rng.integers(5)]
    img, q, a = GENERATORS[task](rng, aspect)
    out = {"image": img.convert("RGB"), "question": q, "answer": a, "task": task, "aspect": aspect}
    for k in ("word_tile", "query_color"):  # generator facts the vision warm-up uses
        if k in img.info:
            out[k] = img.info[k]
    return out


def corpus_texts():
    """Every question and answer string the generator can produce (for learning the BPE merges)."""
    out = []
    for t, qs in QUESTIONS.items():
        for q in qs:
            for c in COLORS:
                for s in SHAPES:
                    out.append(q.format(color=c, shape=s))
    out += list(COLORS) + SHAPES + WORDS + POSITIONS + ["1", "2", "3", "4"]
    out += [" " + a for a in list(COLORS) + SHAPES + WORDS + POSITIONS] * 4  # answers: whole-word tokens
    return out


HELDOUT_SEED = 12345  # training uses seed 1, the training-time validation batches seed 4242
HELDOUT_PER_TASK = 50


def write_heldout(out_dir, per_task=HELDOUT_PER_TASK, seed=HELDOUT_SEED):
    """Held-out set: per_task samples of every task (aspect drawn per sample), as PNGs + heldout.jsonl."""
    import json
    import os

    os.makedirs(out_dir, exist_ok=True)
    rows = []
    i = 0
    for k in range(per_task):
        for t in TASKS:
            s = make_sample(seed, i, task=t)
            name = f"{i:03d}.png"
            s["image"].save(os.path.join(out_dir, name), optimize=True)
            rows.append({"image": name, "question": s["question"], "answer": s["answer"], "task": t})
            i += 1
    with open(os.path.join(out_dir, "heldout.jsonl"), "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    return rows


if __name__ == "__main__":
    import os
    import sys

    if len(sys.argv) > 1 and sys.argv[1] == "--heldout":
        d = sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "heldout")
        rows = write_heldout(d)
        print(f"wrote {len(rows)} held-out samples to {d}")
    else:
        out = sys.argv[1] if len(sys.argv) > 1 else "/tmp/tiny_samples"
        os.makedirs(out, exist_ok=True)
        for i in range(24):
            s = make_sample(7, i, task=TASKS[i % len(TASKS)])
            s["image"].save(f"{out}/{i:02d}_{s['task']}_{s['answer']}.png")
            print(i, s["task"], s["aspect"], s["image"].size, s["question"], "->", s["answer"])

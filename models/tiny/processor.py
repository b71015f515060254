"""Idefics3 image processor + prompt expansion + SmolVLM chat template, re-implemented without transformers.

Mirrors transformers' slow `Idefics3ImageProcessor` (image_processing_idefics3.py) and `Idefics3Processor`
(processing_idefics3.py) for RGB images:

  1. resize: longest edge -> size.longest_edge (aspect kept; the other side int(...) and +1 if odd; min 1),
     then capped at 4096 the same way (no +1); PIL LANCZOS on the uint8 image
  2. do_image_splitting: resize_for_vision_encoder (both sides up to multiples of M = max_image_size.longest_edge),
     split into ceil(H/M) x ceil(W/M) tiles row-major, then append the global image resized to M x M (LANCZOS);
     an image with H, W <= M stays a single frame and (rows, cols) = (0, 0)
     no splitting: resize to M x M, (rows, cols) = (0, 0)
  3. convert_rgb (RGBA composited on white), rescale (float64 * 1/255 -> float32), normalize ((x - mean) / std in
     float32), channels first -> pixel_values [frames, 3, M, M] float32
"""
import json
import math
import os

import numpy as np
from PIL import Image

MAX_IMAGE_SIZE = 4096

# verbatim from SmolVLM-256M-Instruct's chat_template.json (Apache-2.0)
CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}{% if message['content'][0]['type'] == "
    "'image' %}{{':'}}{% else %}{{': '}}{% endif %}{% for line in message['content'] %}{% if line['type'] == 'text' %}"
    "{{line['text']}}{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n"
    "{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)

DEFAULT_PREPROCESSOR_CONFIG = {
    "do_convert_rgb": True,
    "do_image_splitting": True,
    "do_normalize": True,
    "do_pad": True,
    "do_rescale": True,
    "do_resize": True,
    "image_mean": [0.5, 0.5, 0.5],
    "image_processor_type": "Idefics3ImageProcessor",
    "image_std": [0.5, 0.5, 0.5],
    "max_image_size": {"longest_edge": 64},
    "processor_class": "Idefics3Processor",
    "resample": 1,
    "rescale_factor": 1 / 255,
    "size": {"longest_edge": 256},
}
DEFAULT_PROCESSOR_CONFIG = {"image_seq_len": 4, "processor_class": "Idefics3Processor"}


# ---------------------------------------------------------------------------------------------- sizes


def resize_output_size_rescale_to_max_len(height, width, min_len=1, max_len=None):
    max_len = max(height, width) if max_len is None else max_len
    aspect_ratio = width / height
    if width >= height:
        width = max_len
        height = int(width / aspect_ratio)
        if height % 2 != 0:
            height += 1
    elif height > width:
        height = max_len
        width = int(height * aspect_ratio)
        if width % 2 != 0:
            width += 1
    return max(height, min_len), max(width, min_len)


def resize_output_size_scale_below_upper_bound(height, width, max_len=None):
    max_len = max(height, width) if max_len is None else max_len
    aspect_ratio = width / height
    if width >= height and width > max_len:
        width = max_len
        height = int(width / aspect_ratio)
    elif height > width and height > max_len:
        height = max_len
        width = int(height * aspect_ratio)
    return max(height, 1), max(width, 1)


def get_resize_output_image_size(height, width, resolution_max_side):
    height, width = resize_output_size_rescale_to_max_len(height, width, max_len=resolution_max_side)
    return resize_output_size_scale_below_upper_bound(height, width, max_len=MAX_IMAGE_SIZE)


def vision_encoder_size(height, width, m):
    aspect_ratio = width / height
    if width >= height:
        width = math.ceil(width / m) * m
        height = int(width / aspect_ratio)
        height = math.ceil(height / m) * m
    else:
        height = math.ceil(height / m) * m
        width = int(height * aspect_ratio)
        width = math.ceil(width / m) * m
    return height, width


# ---------------------------------------------------------------------------------------------- image ops


def _pil_resize(arr, height, width, resample):
    """uint8 HxWxC array -> PIL -> resize((w, h), resample) -> array (as Idefics3ImageProcessor.resize)."""
    mode = "P" if arr.ndim == 2 or arr.shape[-1] == 1 else None
    a = np.squeeze(arr, axis=-1) if arr.ndim == 3 and arr.shape[-1] == 1 else arr
    out = np.array(Image.fromarray(a.astype(np.uint8), mode=mode).resize((width, height), resample=resample))
    if out.ndim == 2:
        out = out[..., None]
    return out


def _convert_rgb(arr):
    """convert_to_rgb for a uint8 HxWxC array (no palette): RGBA composite on white -> RGB."""
    if arr.shape[-1] == 3:
        return arr  # RGB -> RGBA (alpha 255) -> composite on white -> RGB is the identity
    img = Image.fromarray(np.squeeze(arr, -1) if arr.shape[-1] == 1 else arr)
    rgba = img.convert("RGBA")
    bg = Image.new("RGBA", rgba.size, (255, 255, 255))
    return np.array(Image.alpha_composite(bg, rgba).convert("RGB"))


class Idefics3ImageProcessor:
    def __init__(self, config=None):
        self.config = dict(DEFAULT_PREPROCESSOR_CONFIG if config is None else config)

    @classmethod
    def from_dir(cls, d):
        with open(os.path.join(d, "preprocessor_config.json")) as f:
            return cls(json.load(f))

    def __call__(self, image, do_image_splitting=None):
        """image: PIL image (any mode; converted like load_image: RGB) or uint8 HxWx3 array.
        Returns (pixel_values float32 [frames, 3, M, M], rows, cols)."""
        c = self.config
        split = c["do_image_splitting"] if do_image_splitting is None else do_image_splitting
        resample = c["resample"]
        m = c["max_image_size"]["longest_edge"]
        if isinstance(image, Image.Image):
            image = np.array(image.convert("RGB"))
        arr = image
        if arr.ndim == 2:
            arr = arr[..., None]
        if c["do_resize"]:
            h, w = get_resize_output_image_size(arr.shape[0], arr.shape[1], c["size"]["longest_edge"])
            arr = _pil_resize(arr, h, w, resample)
        if split:
            h, w = vision_encoder_size(arr.shape[0], arr.shape[1], m)
            arr = _pil_resize(arr, h, w, resample)
            h, w = arr.shape[:2]
            frames = []
            if h > m or w > m:
                rows, cols = math.ceil(h / m), math.ceil(w / m)
                oh, ow = math.ceil(h / rows), math.ceil(w / cols)
                for r in range(rows):
                    for cc in range(cols):
                        frames.append(arr[r * oh:min(r * oh + oh, h), cc * ow:min(cc * ow + ow, w)])
                if h != m or w != m:
                    arr = _pil_resize(arr, m, m, resample)
            else:
                rows, cols = 0, 0
            frames.append(arr)
        else:
            frames = [_pil_resize(arr, m, m, resample)]
            rows, cols = 0, 0
        out = []
        mean = np.array(c["image_mean"], dtype=np.float32)
        std = np.array(c["image_std"], dtype=np.float32)
        for f in frames:
            if c["do_convert_rgb"]:
                f = _convert_rgb(f)
            f = f.astype(np.float64)
            if c["do_rescale"]:
                f = (f * c["rescale_factor"]).astype(np.float32)
            else:
                f = f.astype(np.float32)
            if c["do_normalize"]:
                f = (f - mean) / std
            assert f.shape[0] == m and f.shape[1] == m, f.shape  # every frame here is a full tile
            out.append(np.ascontiguousarray(f.transpose(2, 0, 1)))
        return np.stack(out).astype(np.float32), rows, cols


# ---------------------------------------------------------------------------------------------- prompt

FAKE = "<fake_token_around_image>"
IMAGE = "<image>"
GLOBAL = "<global-img>"


def image_prompt_string(rows, cols, image_seq_len):
    if rows == 0 and cols == 0:
        return f"{FAKE}{GLOBAL}" + IMAGE * image_seq_len + FAKE
    s = ""
    for r in range(rows):
        for c in range(cols):
            s += f"{FAKE}<row_{r + 1}_col_{c + 1}>" + IMAGE * image_seq_len
        s += "\n"
    s += f"\n{FAKE}{GLOBAL}" + IMAGE * image_seq_len + FAKE
    return s


def expand_image_tokens(text, rows_cols, image_seq_len):
    """Replace the i-th `<image>` of `text` by the expansion for image i (rows_cols: list of (rows, cols))."""
    parts = text.split(IMAGE)
    assert len(parts) == len(rows_cols) + 1, "number of <image> tokens and images differ"
    s = parts[0]
    for (r, c), p in zip(rows_cols, parts[1:]):
        s += image_prompt_string(r, c, image_seq_len) + p
    return s


def apply_chat_template(messages, add_generation_prompt=True):
    """Hand-written equivalent of CHAT_TEMPLATE (checked against @huggingface/jinja by tokenizer.py's node test).
    messages: [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "..."}]}, ...]"""
    s = "<|im_start|>"
    for msg in messages:
        role = msg["role"]
        s += role[:1].upper() + role[1:].lower()  # jinja `capitalize`
        s += ":" if msg["content"][0]["type"] == "image" else ": "
        for line in msg["content"]:
            if line["type"] == "text":
                s += line["text"]
            elif line["type"] == "image":
                s += IMAGE
        s += "<end_of_utterance>\n"
    if add_generation_prompt:
        s += "Assistant:"
    return s


def vqa_prompt(question):
    return apply_chat_template([{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}])

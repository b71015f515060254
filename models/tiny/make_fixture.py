"""Writes models/tiny/fixture.json: a float32 torch parity fixture for the TypeScript engine.

  /usr/bin/python3 models/tiny/make_fixture.py [--ckpt DIR] [--out FILE]

All arrays are base64 of little-endian float32 (pixel values, logits, activations) or plain JSON int lists (ids).
See FORMAT below (also stored in the file under "format").
"""
import argparse
import base64
import json
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from eval import load_image, read_heldout  # noqa: E402
from model import load_model  # noqa: E402
from processor import Idefics3ImageProcessor, expand_image_tokens, vqa_prompt  # noqa: E402
from tokenizer import Tokenizer  # noqa: E402

LAST = 4  # logits of the last LAST prompt positions

FORMAT = {
    "encoding": "every *_b64 field is base64 of little-endian float32, row-major, with the shape given in the "
                "matching *_shape field",
    "examples[].input_ids": "prompt ids (chat template + expanded image tokens, ending in 'Assistant:'), no BOS",
    "examples[].pixel_values_b64": "processor output [frames, 3, S, S]: tiles row-major then the global image",
    "examples[].logits_b64": f"float32 logits of the last {LAST} prompt positions [{LAST}, vocab] "
                             "(positions len(input_ids)-4 .. len(input_ids)-1, prefill, torch float32)",
    "examples[].vision_frame0_b64": "post_layernorm output of the vision tower for frame 0 [patches, D_vision]",
    "examples[].image_features_frame0_b64": "connector output (pixel_shuffle + proj) for frame 0 [image_seq_len, H]",
    "examples[].generated_ids": "greedy continuation (argmax), stops after eos (<end_of_utterance>, included)",
}


def b64(a):
    a = np.ascontiguousarray(np.asarray(a, dtype="<f4"))
    return base64.b64encode(a.tobytes()).decode("ascii")


def pick(rows, heldout):
    """(index, do_image_splitting) of the fixture examples: a wide high-res sample with tiles (2x4 + global,
    9 frames) and two square samples without splitting (1 frame) to keep the file small."""
    want = []
    wide = [i for i, r in enumerate(rows) if r["task"] == "highres" and load_image_size(heldout, r)[0] > load_image_size(heldout, r)[1]]
    want.append((wide[0], True))
    for task in ("color", "word"):
        sq = [i for i, r in enumerate(rows) if r["task"] == task and load_image_size(heldout, r)[0] == load_image_size(heldout, r)[1]]
        want.append((sq[0], False))
    return want


_SIZES = {}


def load_image_size(heldout, r):
    key = os.path.join(heldout, r["image"])
    if key not in _SIZES:
        _SIZES[key] = load_image(key).size
    return _SIZES[key]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", default=os.path.join(HERE, "checkpoint"))
    ap.add_argument("--heldout", default=os.path.join(HERE, "heldout"))
    ap.add_argument("--out", default=os.path.join(HERE, "fixture.json"))
    args = ap.parse_args()
    torch.set_num_threads(2)
    model, cfg = load_model(args.ckpt)
    tok = Tokenizer(args.ckpt)
    proc = Idefics3ImageProcessor.from_dir(args.ckpt)
    with open(os.path.join(args.ckpt, "processor_config.json")) as f:
        seq = json.load(f)["image_seq_len"]
    rows = read_heldout(args.heldout)
    examples = []
    for idx, split in pick(rows, args.heldout):
        r = rows[idx]
        img = load_image(os.path.join(args.heldout, r["image"]))
        pix, nr, nc = proc(img, do_image_splitting=split)
        prompt = expand_image_tokens(vqa_prompt(r["question"]), [(nr, nc)], seq)
        ids = tok.encode(prompt)
        with torch.no_grad():
            pv = torch.from_numpy(pix)
            vis = model.model.vision_model(pv)
            feats = model.model.connector(vis)
            logits = model(torch.tensor([ids]), image_features=feats)[0]
            gen = model.generate(torch.tensor([ids]), pv, max_new_tokens=8,
                                 eos_token_id=cfg["text_config"]["eos_token_id"])
        text = tok.decode(gen, skip_special_tokens=True).strip()
        ex = {
            "name": f"heldout/{r['image']} {r['task']} split={split}",
            "image": r["image"],
            "task": r["task"],
            "question": r["question"],
            "answer": r["answer"],
            "do_image_splitting": split,
            "image_rows": nr,
            "image_cols": nc,
            "prompt": prompt,
            "input_ids": ids,
            "pixel_values_shape": list(pix.shape),
            "pixel_values_b64": b64(pix),
            "logits_positions": list(range(len(ids) - LAST, len(ids))),
            "logits_shape": [LAST, int(logits.shape[-1])],
            "logits_b64": b64(logits[-LAST:].numpy()),
            "vision_frame0_shape": list(vis[0].shape),
            "vision_frame0_b64": b64(vis[0].numpy()),
            "image_features_frame0_shape": list(feats[0].shape),
            "image_features_frame0_b64": b64(feats[0].numpy()),
            "generated_ids": gen,
            "generated_text": text,
        }
        examples.append(ex)
        print(f"{ex['name']}: frames {pix.shape[0]}, {len(ids)} ids, generated {gen} -> {text!r} "
              f"(answer {r['answer']!r})")
    fx = {
        "model": "models/tiny/checkpoint",
        "dtype": "float32",
        "vocab_size": cfg["vocab_size"],
        "image_token_id": cfg["image_token_id"],
        "eos_token_id": cfg["text_config"]["eos_token_id"],
        "format": FORMAT,
        "examples": examples,
    }
    with open(args.out, "w") as f:
        json.dump(fx, f)
    print(f"wrote {args.out} ({os.path.getsize(args.out) / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()

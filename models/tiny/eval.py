"""Exact-match accuracy of the tiny model on the committed held-out set, greedy decoding, torch float32.

  /usr/bin/python3 models/tiny/eval.py [--ckpt DIR] [--heldout DIR] [--split both|on|off] [--limit N] [--threads T]

Images are read from the PNGs like transformers' load_image (open -> exif_transpose -> RGB). Reports per task,
with image splitting (the checkpoint's default: 4x4 tiles + global for square images) and without it (the global
64x64 image only). Writes models/tiny/eval_results.json (unless --no-write).
"""
import argparse
import json
import os
import sys
import time

import torch
from PIL import Image, ImageOps

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from model import load_model  # noqa: E402
from processor import Idefics3ImageProcessor, expand_image_tokens, vqa_prompt  # noqa: E402
from tokenizer import Tokenizer  # noqa: E402


def load_image(path):
    img = Image.open(path)
    img = ImageOps.exif_transpose(img)
    return img.convert("RGB")


def read_heldout(d):
    with open(os.path.join(d, "heldout.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]


def answer(model, cfg, tok, proc, image, question, do_image_splitting=None, max_new_tokens=8):
    pix, rows, cols = proc(image, do_image_splitting=do_image_splitting)
    seq = int(proc.seq_len)
    prompt = expand_image_tokens(vqa_prompt(question), [(rows, cols)], seq)
    ids = torch.tensor([tok.encode(prompt)])
    out = model.generate(ids, torch.from_numpy(pix), max_new_tokens=max_new_tokens,
                         eos_token_id=cfg["text_config"]["eos_token_id"])
    text = tok.decode(out, skip_special_tokens=True).strip()
    return text, out, ids, pix


def evaluate(model, cfg, tok, proc, rows_, heldout_dir, split, log_every=50):
    per = {}
    t0 = time.time()
    for k, r in enumerate(rows_):
        img = load_image(os.path.join(heldout_dir, r["image"]))
        text, _, _, _ = answer(model, cfg, tok, proc, img, r["question"], do_image_splitting=split)
        per.setdefault(r["task"], []).append(text == r["answer"])
        if log_every and (k + 1) % log_every == 0:
            done = sum(sum(v) for v in per.values())
            print(f"  [{'split' if split else 'no-split'}] {k + 1}/{len(rows_)} acc so far {done / (k + 1):.3f} "
                  f"({time.time() - t0:.0f}s)", flush=True)
    res = {t: {"correct": sum(v), "n": len(v), "acc": round(sum(v) / len(v), 4)} for t, v in per.items()}
    n = sum(v["n"] for v in res.values())
    c = sum(v["correct"] for v in res.values())
    res["overall"] = {"correct": c, "n": n, "acc": round(c / n, 4)}
    res["seconds"] = round(time.time() - t0, 1)
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", default=os.path.join(HERE, "checkpoint"))
    ap.add_argument("--heldout", default=os.path.join(HERE, "heldout"))
    ap.add_argument("--split", default="both", choices=["both", "on", "off"])
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model, cfg = load_model(args.ckpt)
    tok = Tokenizer(args.ckpt)
    proc = Idefics3ImageProcessor.from_dir(args.ckpt)
    with open(os.path.join(args.ckpt, "processor_config.json")) as f:
        proc.seq_len = json.load(f)["image_seq_len"]
    rows_ = read_heldout(args.heldout)
    if args.limit:
        rows_ = rows_[:args.limit]
    results = {"dtype": "float32", "decoding": "greedy", "n": len(rows_)}
    modes = {"both": [True, False], "on": [True], "off": [False]}[args.split]
    for split in modes:
        key = "with_splitting" if split else "without_splitting"
        results[key] = evaluate(model, cfg, tok, proc, rows_, args.heldout, split)
        r = results[key]
        print(f"{key}: overall {r['overall']['acc']:.3f} ({r['overall']['correct']}/{r['overall']['n']}) | " +
              " ".join(f"{t}={v['acc']:.2f}" for t, v in r.items() if isinstance(v, dict) and t != "overall"),
              flush=True)
    if not args.no_write:
        with open(os.path.join(HERE, "eval_results.json"), "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()

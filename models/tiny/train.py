"""Train the tiny SmolVLM-layout model on the synthetic tasks and export models/tiny/checkpoint/.

  /usr/bin/python3 models/tiny/train.py [--steps N] [--batch B] [--threads T] [--out DIR]

CPU only. Matmuls run under torch.autocast(cpu, bfloat16) (oneDNN/AMX; Debian's torch uses a generic BLAS
for f32, which is ~100x slower); master weights, optimizer state and the exported checkpoint are float32.
Deterministic: torch.manual_seed(0) for the init; sample i of the stream is data.make_sample(TRAIN_SEED, i).
Loss only on the answer tokens (" answer<end_of_utterance>").
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import data  # noqa: E402
import tokenizer as toklib  # noqa: E402
from model import Idefics3ForConditionalGeneration, default_config, save_safetensors  # noqa: E402
from processor import (  # noqa: E402
    DEFAULT_PREPROCESSOR_CONFIG,
    DEFAULT_PROCESSOR_CONFIG,
    Idefics3ImageProcessor,
    expand_image_tokens,
    vqa_prompt,
)

TRAIN_SEED = 1
VAL_SEED = 4242


class Encoder:
    """Turns a data sample into (input_ids, labels, pixel_values)."""

    def __init__(self, tok, proc, image_seq_len):
        self.tok, self.proc, self.seq = tok, proc, image_seq_len
        self.eou = tok.token_to_id("<end_of_utterance>")

    def __call__(self, s, do_image_splitting=None):
        pix, rows, cols = self.proc(s["image"], do_image_splitting=do_image_splitting)
        prompt = expand_image_tokens(vqa_prompt(s["question"]), [(rows, cols)], self.seq)
        p_ids = self.tok.encode(prompt)
        a_ids = self.tok.encode(" " + s["answer"]) + [self.eou]
        ids = p_ids + a_ids
        labels = [-100] * len(p_ids) + a_ids
        return ids, labels, pix


def collate(items, pad_id):
    """numpy only: batches are built in forked data processes, where torch (its OpenMP pool, forked mid-use by
    the parent) deadlocks. to_torch() converts in the training process."""
    L = max(len(i[0]) for i in items)
    ids = np.full((len(items), L), pad_id, dtype=np.int64)
    labels = np.full((len(items), L), -100, dtype=np.int64)
    for b, (i, l, _) in enumerate(items):
        ids[b, :len(i)] = i
        labels[b, :len(l)] = l
    return ids, labels, np.concatenate([i[2] for i in items])


def to_torch(batch):
    return tuple(torch.from_numpy(a) for a in batch)


def batch_stats(logits, labels):
    """per-sample loss sum / exact match of all answer tokens under teacher forcing (== greedy exact match)."""
    lg = logits[:, :-1].float()
    lb = labels[:, 1:]
    mask = lb != -100
    pred = lg.argmax(-1)
    ok = ((pred == lb) | ~mask).all(-1)
    return ok


def make_batch(enc, pad_id, step, bsz, seed=TRAIN_SEED, tasks=None, nosplit_frac=0.0):
    """Batch `step` of the stream (samples may differ in frame count: frames are concatenated). With probability
    nosplit_frac the batch is processed with do_image_splitting=False (global image only: one frame per
    sample, ~5x cheaper) and then holds no high-res samples (their answer is not visible without tiles)."""
    rng = np.random.default_rng([seed, step, 7])
    split = not (rng.random() < nosplit_frac)
    tasks = list(data.TASKS if tasks is None else tasks)
    if not split:
        tasks = [t for t in tasks if t != "highres"]
    samples = [data.make_sample(seed, step * bsz + j, tasks=tasks) for j in range(bsz)]
    items = [enc(s, do_image_splitting=split) for s in samples]
    return collate(items, pad_id), [s["task"] for s in samples]


def _warmup_frames(enc, s, aux):
    """(frames, [(head, target, kind)]) of one warm-up sample: the global image for the 64-px tasks; for high-res
    samples the tile that holds the word (word head + text-presence head: yes) and one other tile (text: no)."""
    colors = list(data.COLORS)
    if s["task"] != "highres":
        t = s["task"]
        y = (colors.index(s["query_color"]), s["answer"]) if t == "position" else s["answer"]
        return [enc.proc(s["image"], do_image_splitting=False)[0]], [(t, y, t)]
    pix, rows, cols = enc.proc(s["image"], do_image_splitting=True)
    tr, tc = s["word_tile"]
    k = tr * cols + tc
    other = (k + 1 + aux % (rows * cols - 1)) % (rows * cols)  # any tile but the word's
    return [pix[k:k + 1], pix[other:other + 1]], [("word", s["answer"], "highres"), ("text", 1, "text"),
                                                  ("text", 0, "text")]


WARMUP_TASKS = ["color", "shape", "count", "position", "word", "highres"]


def warmup_batch(enc, step, bsz):
    """Warm-up batch `step`: (pixels, [(head, target, kind, frame index)]). A pure function of step."""
    frames, targets = [], []
    for j in range(bsz):
        s = data.make_sample(TRAIN_SEED + 1000, step * bsz + j, task=WARMUP_TASKS[j % len(WARMUP_TASKS)])
        f, t = _warmup_frames(enc, s, step + j)
        base = len(frames)
        frames += f
        # a high-res sample's word and text-yes targets read frame 0 (the word tile), text-no frame 1
        targets += [(h, y, kind, base + (1 if (h == "text" and y == 0) else 0)) for h, y, kind in t]
    return np.concatenate(frames), targets


_POOL_STATE = {}


def _pool_call(job):
    fn, args = job
    return fn(_POOL_STATE["enc"], *args)


def prefetch(enc, jobs, workers):
    """Runs fn(enc, *args) for each (fn, args) in `jobs` in `workers` forked processes, in order (each batch is a
    pure function of its arguments, so results do not depend on the worker count). Data generation + PIL resizing
    cost as much as the tiny model's step; overlapping them roughly halves the wall time on 2 cores."""
    if workers <= 0:
        for fn, args in jobs:
            yield fn(enc, *args)
        return
    import collections
    import multiprocessing as mp
    _POOL_STATE["enc"] = enc
    jobs = iter(jobs)
    with mp.get_context("fork").Pool(workers) as pool:
        window = collections.deque()
        for job in jobs:  # at most 2 * workers batches ahead (Pool.imap would run the whole stream ahead)
            window.append(pool.apply_async(_pool_call, (job,)))
            if len(window) >= 2 * workers:
                yield window.popleft().get()
        while window:
            yield window.popleft().get()


def vision_warmup(model, enc, args):
    """Stage 0: train the vision tower + connector alone, through temporary linear heads (discarded afterwards) on
    the flattened connector output of one frame, to classify the answers of the tasks (position: one 4-way head
    per colour, read for the asked colour; text: does this tile hold the word). From scratch, the decoder's
    attention dilutes the image signal so much that joint training sits near chance for thousands of steps; with
    linearly decodable vision features the decoder only has to learn where to look. Cheap: one frame per sample,
    no text model."""
    if args.vision_warmup <= 0:
        return
    seq, h = enc.seq, model.cfg["text_config"]["hidden_size"]
    answers = {"color": list(data.COLORS), "shape": data.SHAPES, "count": ["1", "2", "3", "4"],
               "position": data.POSITIONS, "word": data.WORDS, "text": [0, 1]}
    torch.manual_seed(1)
    sizes = {"color": 6, "shape": 5, "count": 4, "position": 6 * 4, "word": 8, "text": 2}
    heads = torch.nn.ModuleDict({k: torch.nn.Linear(seq * h, n) for k, n in sizes.items()})
    params = list(model.model.vision_model.parameters()) + list(model.model.connector.parameters()) + \
        list(heads.parameters())
    opt = torch.optim.AdamW(params, lr=args.warmup_lr, betas=(0.9, 0.98), weight_decay=0.0)
    t0 = time.time()
    accs = {t: [] for t in WARMUP_TASKS + ["text"]}
    jobs = ((warmup_batch, (step, args.warmup_batch)) for step in range(args.vision_warmup))
    for step, (pix, targets) in enumerate(prefetch(enc, jobs, args.workers)):
        lr = args.warmup_lr * min(1.0, (step + 1) / 50)
        lr *= 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / args.vision_warmup))
        for g in opt.param_groups:
            g["lr"] = lr
        with torch.autocast("cpu", dtype=torch.bfloat16):
            feats = model.image_features(torch.from_numpy(pix)).reshape(len(pix), -1)
        feats = feats.float()
        loss = 0.0
        for head in sizes:
            items = [t for t in targets if t[0] == head]
            if not items:
                continue
            lg = heads[head](feats[[t[3] for t in items]])
            if head == "position":
                lg = lg.reshape(len(items), 6, 4)[torch.arange(len(items)), torch.tensor([t[1][0] for t in items])]
                y = torch.tensor([data.POSITIONS.index(t[1][1]) for t in items])
            else:
                y = torch.tensor([answers[head].index(t[1]) for t in items])
            loss = loss + F.cross_entropy(lg, y) * len(items) / len(targets)
            for t, o in zip(items, (lg.argmax(-1) == y).tolist()):
                accs[t[2]].append(o)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if (step + 1) % args.log_every == 0:
            print(f"vision warmup {step + 1} loss {loss.item():.4f} t {time.time() - t0:.0f}s | " +
                  " ".join(f"{t}={np.mean(v[-200:]):.2f}" for t, v in accs.items()), flush=True)


def curriculum(step, args):
    """(tasks, nosplit_frac) for a step. Learning all tasks at once from scratch stalls for thousands of steps
    (the vision features get a weak, noisy signal); learning colour/shape first on cheap global-only batches
    gives the vision tower features the other tasks then reuse."""
    if step < args.phase1:
        return ["color", "shape"], 1.0
    if step < args.phase2:
        return ["color", "shape", "count", "position", "word"], 1.0
    return data.TASKS, args.nosplit_frac


def export(model, cfg, tok_dir, out):
    os.makedirs(out, exist_ok=True)
    # stored as bfloat16 like the real SmolVLM checkpoint (3.9 MB); eval/fixture run these exact weights in f32
    sd = {k: v.detach().to(torch.bfloat16).contiguous() for k, v in model.state_dict().items()}
    save_safetensors(sd, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    with open(os.path.join(out, "preprocessor_config.json"), "w") as f:
        json.dump(DEFAULT_PREPROCESSOR_CONFIG, f, indent=2)
    with open(os.path.join(out, "processor_config.json"), "w") as f:
        json.dump(DEFAULT_PROCESSOR_CONFIG, f, indent=2)
    gen = {"bos_token_id": cfg["text_config"]["bos_token_id"], "eos_token_id": cfg["text_config"]["eos_token_id"],
           "pad_token_id": cfg["text_config"]["pad_token_id"], "do_sample": False, "max_new_tokens": 16}
    with open(os.path.join(out, "generation_config.json"), "w") as f:
        json.dump(gen, f, indent=2)
    if os.path.abspath(tok_dir) != os.path.abspath(out):
        for fn in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.json"):
            with open(os.path.join(tok_dir, fn)) as fi, open(os.path.join(out, fn), "w") as fo:
                fo.write(fi.read())


def build_config(tok):
    cfg = default_config()
    v = tok.vocab_size
    cfg["vocab_size"] = v
    cfg["image_token_id"] = tok.token_to_id("<image>")
    tc = cfg["text_config"]
    tc["vocab_size"] = v
    tc["bos_token_id"] = tok.token_to_id("<|im_start|>")
    tc["eos_token_id"] = tok.token_to_id("<end_of_utterance>")
    tc["pad_token_id"] = tok.token_to_id("<|im_end|>")
    assert cfg["vision_config"]["image_size"] == DEFAULT_PREPROCESSOR_CONFIG["max_image_size"]["longest_edge"]
    n = cfg["vision_config"]["image_size"] // cfg["vision_config"]["patch_size"]
    assert (n * n) // cfg["scale_factor"] ** 2 == DEFAULT_PROCESSOR_CONFIG["image_seq_len"]
    return cfg


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--batch", type=int, default=12)
    ap.add_argument("--lr", type=float, default=1.5e-3)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=os.path.join(HERE, "checkpoint"))
    ap.add_argument("--vision_warmup", type=int, default=1000, help="stage-0 steps (vision tower + temporary heads)")
    ap.add_argument("--warmup_batch", type=int, default=40)
    ap.add_argument("--vision_lr_scale", type=float, default=0.3, help="vision tower lr / lr after the warm-up")
    ap.add_argument("--warmup_lr", type=float, default=3e-3)
    ap.add_argument("--workers", type=int, default=2, help="data processes (0: generate in the training process)")
    ap.add_argument("--freeze_vision", type=int, default=1500, help="first steps after the warm-up: vision frozen")
    ap.add_argument("--phase1", type=int, default=0, help="steps of colour/shape only, global image only")
    ap.add_argument("--phase2", type=int, default=300, help="... then all tasks but high-res, global image only")
    ap.add_argument("--nosplit_frac", type=float, default=0.3, help="... then all tasks; this many global-only")
    ap.add_argument("--log_every", type=int, default=25)
    ap.add_argument("--val_every", type=int, default=250)
    ap.add_argument("--save_every", type=int, default=500)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    os.makedirs(args.out, exist_ok=True)
    toklib.build(args.out)
    tok = toklib.Tokenizer(args.out)
    cfg = build_config(tok)
    proc = Idefics3ImageProcessor()
    enc = Encoder(tok, proc, DEFAULT_PROCESSOR_CONFIG["image_seq_len"])
    pad_id = cfg["text_config"]["pad_token_id"]

    model = Idefics3ForConditionalGeneration(cfg)
    nparams = sum(p.numel() for p in model.parameters())
    print(f"params {nparams:,}  vocab {cfg['vocab_size']}  image_token_id {cfg['image_token_id']}", flush=True)
    groups = {}
    for n, p in model.named_parameters():  # weight decay on matrices; the warmed-up vision tower at a lower lr
        decay = p.ndim >= 2 and "position_embedding" not in n
        vision = n.startswith("model.vision_model.")
        groups.setdefault((decay, vision), []).append(p)
    opt = torch.optim.AdamW([{"params": ps, "weight_decay": 0.05 if d else 0.0,
                              "scale": args.vision_lr_scale if v else 1.0} for (d, v), ps in groups.items()],
                            lr=args.lr, betas=(0.9, 0.98), eps=1e-8)

    def lr_at(step):
        if step < args.warmup:
            return args.lr * (step + 1) / args.warmup
        p = (step - args.warmup) / max(1, args.steps - args.warmup)
        return args.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * p)))

    # fixed validation batches (teacher-forced exact match == greedy exact match on the answer)
    val = [(to_torch(b), t) for b, t in (make_batch(enc, pad_id, i, 24, seed=VAL_SEED) for i in range(4))]

    t0, c0 = time.time(), time.process_time()
    vision_warmup(model, enc, args)
    hist = {"loss": [], "ok": {t: [] for t in data.TASKS}}
    jobs = ((make_batch, (pad_id, step, args.batch, TRAIN_SEED) + tuple(curriculum(step, args)))
            for step in range(args.steps))
    for step, (batch, tasks) in enumerate(prefetch(enc, jobs, args.workers)):
        ids, labels, pix = to_torch(batch)
        for g in opt.param_groups:
            g["lr"] = lr_at(step) * g["scale"]
        frozen = step < args.freeze_vision
        for p in model.model.vision_model.parameters():
            p.requires_grad_(not frozen)
        model.train()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = model(ids, pix)
        loss = F.cross_entropy(logits[:, :-1].float().reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1),
                               ignore_index=-100)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        ok = batch_stats(logits.detach(), labels)
        hist["loss"].append(loss.item())
        for t, o in zip(tasks, ok.tolist()):
            hist["ok"][t].append(o)
        if (step + 1) % args.log_every == 0:
            accs = " ".join(f"{t}={np.mean(v[-60:]):.2f}" for t, v in hist["ok"].items() if v)
            print(f"step {step + 1} loss {np.mean(hist['loss'][-args.log_every:]):.4f} lr {lr_at(step):.2e} "
                  f"t {time.time() - t0:.0f}s cpu {time.process_time() - c0:.0f}s | train acc {accs}", flush=True)
        if (step + 1) % args.val_every == 0 or step + 1 == args.steps:
            model.eval()
            res = {t: [] for t in data.TASKS}
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
                for (vi, vl, vp), vt in val:
                    vok = batch_stats(model(vi, vp), vl)
                    for t, o in zip(vt, vok.tolist()):
                        res[t].append(o)
            allv = [o for v in res.values() for o in v]
            print(f"  VAL step {step + 1}: all {np.mean(allv):.3f} | " +
                  " ".join(f"{t}={np.mean(v):.2f}({len(v)})" for t, v in res.items() if v), flush=True)
        if (step + 1) % args.save_every == 0 or step + 1 == args.steps:
            export(model, cfg, args.out, args.out)
    dt, cpu = time.time() - t0, time.process_time() - c0
    print(f"done: {args.steps} steps x {args.batch} in {dt:.0f}s wall ({dt / 60:.1f} min), {cpu:.0f}s process CPU, "
          f"threads {args.threads}", flush=True)
    with open(os.path.join(args.out, "..", "train_log.json"), "w") as f:
        json.dump({"steps": args.steps, "batch": args.batch, "threads": args.threads, "seconds": round(dt, 1),
                   "process_cpu_seconds": round(cpu, 1), "args": vars(args),
                   "params": nparams, "final_loss": float(np.mean(hist["loss"][-50:]))}, f, indent=2)


if __name__ == "__main__":
    main()

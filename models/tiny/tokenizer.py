"""A small byte-level BPE tokenizer in Hugging Face `tokenizers` JSON format, with SmolVLM's special tokens.

Layout mirrors SmolVLM-256M-Instruct's tokenizer.json:
  normalizer null; pre_tokenizer Sequence[Digits(individual_digits), ByteLevel(add_prefix_space=false,
  use_regex=true)]; model BPE (merges as [a, b] pairs); post_processor null (no BOS); decoder ByteLevel.
  ids 0..16: SmolVLM's first 17 special tokens (<|endoftext|>, <|im_start|>, <|im_end|>, <repo_name>, ...),
  then the 256 byte symbols, then the learned merges (the BPE model's vocab ends here), then the added tokens
  in SmolVLM's order: <global-img>, <row_1_col_1> .. <row_6_col_6>, <fake_token_around_image>, <image>,
  <|reserved_special_token_K|> (padding the vocab to a multiple of 64), <end_of_utterance> (last id).

`python3 tokenizer.py OUT_DIR` learns the merges on the synthetic corpus (data.corpus_texts + chat scaffolding)
and writes tokenizer.json, tokenizer_config.json, special_tokens_map.json, chat_template.json.
`Tokenizer(path)` is the Python encoder/decoder used by training/eval (checked against @huggingface/tokenizers).
"""
import collections
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

SMOL_FIRST_SPECIALS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<repo_name>", "<reponame>", "<file_sep>", "<filename>",
    "<gh_stars>", "<issue_start>", "<issue_comment>", "<issue_closed>", "<jupyter_start>", "<jupyter_text>",
    "<jupyter_code>", "<jupyter_output>", "<jupyter_script>", "<empty_output>",
]
ROW_COL = [f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7)]
MAX_MERGES = 400
VOCAB_MULTIPLE = 64


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


BYTE_ENC = bytes_to_unicode()
BYTE_DEC = {v: k for k, v in BYTE_ENC.items()}

# GPT-2 / ByteLevel split regex; \p{L} ~ [^\W\d_], \p{N} ~ \d (exact for the ASCII text used here)
_L = r"[^\W\d_]"
_N = r"\d"
GPT2_RE = re.compile(
    rf"""'s|'t|'re|'ve|'m|'ll|'d| ?{_L}+| ?{_N}+| ?(?:(?!{_L}|{_N})\S)+|\s+(?!\S)|\s+"""
)


def pre_tokenize(text):
    """Digits(individual_digits=True) then ByteLevel(add_prefix_space=False, use_regex=True)."""
    out = []
    for piece in re.split(r"(\d)", text):
        if not piece:
            continue
        for m in GPT2_RE.findall(piece):
            out.append("".join(BYTE_ENC[b] for b in m.encode("utf-8")))
    return out


def learn_merges(texts, max_merges=MAX_MERGES):
    words = collections.Counter()
    for t in texts:
        for w in pre_tokenize(t):
            words[tuple(w)] += 1
    words = dict(words)
    merges = []
    while len(merges) < max_merges:
        pairs = collections.Counter()
        for w, f in words.items():
            for a, b in zip(w, w[1:]):
                pairs[(a, b)] += f
        if not pairs:
            break
        best_count = max(pairs.values())
        if best_count < 2:
            break
        best = min(p for p, c in pairs.items() if c == best_count)  # deterministic tie-break
        merges.append(best)
        new_words = {}
        for w, f in words.items():
            nw, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == best:
                    nw.append(w[i] + w[i + 1])
                    i += 2
                else:
                    nw.append(w[i])
                    i += 1
            new_words[tuple(nw)] = new_words.get(tuple(nw), 0) + f
        words = new_words
    return merges


def training_texts():
    import data

    texts = list(data.corpus_texts())
    texts += ["User:", "Assistant:", "\nAssistant:", "\n", "\n\n", " "]
    for _ in range(20):  # the chat scaffolding is in every sample; give it weight
        texts += ["User:", "\nAssistant:", "\n\n", "\n"]
    return texts


def build(out_dir):
    merges = learn_merges(training_texts())
    vocab = {}
    for t in SMOL_FIRST_SPECIALS:
        vocab[t] = len(vocab)
    for b in range(256):
        vocab[BYTE_ENC[b]] = len(vocab)
    for a, b in merges:
        if a + b not in vocab:
            vocab[a + b] = len(vocab)
    base = len(vocab)
    added = ["<global-img>"] + ROW_COL + ["<fake_token_around_image>", "<image>"]
    n_fixed = base + len(added) + 1  # + <end_of_utterance>
    total = -(-(n_fixed + 1) // VOCAB_MULTIPLE) * VOCAB_MULTIPLE  # at least one reserved token
    added += [f"<|reserved_special_token_{i}|>" for i in range(total - n_fixed)]
    added += ["<end_of_utterance>"]
    added_ids = {t: base + i for i, t in enumerate(added)}
    assert base + len(added) == total

    def at(i, c):
        return {"id": i, "content": c, "single_word": False, "lstrip": False, "rstrip": False,
                "normalized": False, "special": True}

    tok = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [at(vocab[t], t) for t in SMOL_FIRST_SPECIALS] + [at(i, t) for t, i in added_ids.items()],
        "normalizer": None,
        "pre_tokenizer": {
            "type": "Sequence",
            "pretokenizers": [
                {"type": "Digits", "individual_digits": True},
                {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
            ],
        },
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {
            "type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
            "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
            "vocab": vocab, "merges": [[a, b] for a, b in merges],
        },
    }
    from processor import CHAT_TEMPLATE

    special_decoder = {str(d["id"]): {k: d[k] for k in ("content", "lstrip", "normalized", "rstrip", "single_word",
                                                         "special")} for d in tok["added_tokens"]}
    cfg = {
        "add_prefix_space": False,
        "added_tokens_decoder": special_decoder,
        "additional_special_tokens": ["<fake_token_around_image>", "<image>", "<end_of_utterance>"],
        "bos_token": "<|im_start|>",
        "chat_template": CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "eos_token": "<end_of_utterance>",
        "legacy": False,
        "model_max_length": 2048,
        "pad_token": "<|im_end|>",
        "processor_class": "Idefics3Processor",
        "tokenizer_class": "GPT2Tokenizer",
        "truncation_side": "left",
        "unk_token": "<|endoftext|>",
        "vocab_size": total,
    }

    def st(c):
        return {"content": c, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False}

    stm = {
        "additional_special_tokens": [st(c) for c in cfg["additional_special_tokens"]],
        "bos_token": st("<|im_start|>"),
        "eos_token": st("<end_of_utterance>"),
        "pad_token": st("<|im_end|>"),
        "unk_token": st("<|endoftext|>"),
    }
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "tokenizer.json"), "w") as f:
        json.dump(tok, f, ensure_ascii=False, indent=1)
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w") as f:
        json.dump(cfg, f, ensure_ascii=False, indent=2)
    with open(os.path.join(out_dir, "special_tokens_map.json"), "w") as f:
        json.dump(stm, f, ensure_ascii=False, indent=2)
    with open(os.path.join(out_dir, "chat_template.json"), "w") as f:
        json.dump({"chat_template": CHAT_TEMPLATE}, f, ensure_ascii=False, indent=2)
    return total, base, len(merges)


class Tokenizer:
    def __init__(self, path):
        if os.path.isdir(path):
            path = os.path.join(path, "tokenizer.json")
        with open(path) as f:
            tj = json.load(f)
        self.vocab = dict(tj["model"]["vocab"])
        self.ranks = {tuple(p): i for i, p in enumerate(tj["model"]["merges"])}
        self.added = {d["content"]: d["id"] for d in tj["added_tokens"]}
        self.special_ids = {d["id"] for d in tj["added_tokens"] if d["special"]}
        self.id_to_tok = {i: t for t, i in self.vocab.items()}
        self.id_to_tok.update({i: t for t, i in self.added.items()})
        self.vocab_size = max(self.id_to_tok) + 1
        pat = "|".join(re.escape(t) for t in sorted(self.added, key=len, reverse=True))
        self.added_re = re.compile(f"({pat})")
        self.cache = {}

    def token_to_id(self, t):
        return self.added.get(t, self.vocab.get(t))

    def _bpe(self, word):
        if word in self.cache:
            return self.cache[word]
        syms = list(word)
        while len(syms) > 1:
            best, bi = None, -1
            for i in range(len(syms) - 1):
                r = self.ranks.get((syms[i], syms[i + 1]))
                if r is not None and (best is None or r < best):
                    best, bi = r, i
            if best is None:
                break
            syms = syms[:bi] + [syms[bi] + syms[bi + 1]] + syms[bi + 2:]  # lowest rank, leftmost first
        ids = [self.vocab[s] for s in syms]
        self.cache[word] = ids
        return ids

    def encode(self, text):
        ids = []
        for part in self.added_re.split(text):
            if not part:
                continue
            if part in self.added:
                ids.append(self.added[part])
            else:
                for w in pre_tokenize(part):
                    ids += self._bpe(w)
        return ids

    def decode(self, ids, skip_special_tokens=False):
        out, buf = [], []

        def flush():
            if buf:
                out.append(bytes(BYTE_DEC[c] for c in "".join(buf)).decode("utf-8", errors="replace"))
                buf.clear()

        for i in ids:
            if i in self.special_ids and self.id_to_tok[i] in self.added:
                flush()
                if not skip_special_tokens:
                    out.append(self.id_to_tok[i])
            else:
                buf.append(self.id_to_tok[i])
        flush()
        return "".join(out)


def write_cases(ckpt_dir, out_path):
    """Encode/template cases for check_tokenizer.mjs (ids from this Python tokenizer)."""
    import data
    from processor import apply_chat_template, expand_image_tokens, vqa_prompt

    tok = Tokenizer(ckpt_dir)
    texts = [
        "Hello world", "What color is the shape?", " red", " 3", "12345 apples and 7 pears", "don't   stop\n\n  now",
        "tab\tseparated, punctuation!?... (yes)", "café naïve", "<|im_start|>User: hi<end_of_utterance>\nAssistant:",
        "<image><image>\n\n<fake_token_around_image><global-img>", "<row_6_col_6><|reserved_special_token_0|>x",
    ]
    for i, t in enumerate(data.TASKS):
        s = data.make_sample(999, i, task=t)
        for rc in ([(4, 4)], [(2, 4)], [(4, 2)], [(0, 0)]):
            texts.append(expand_image_tokens(vqa_prompt(s["question"]) + " " + s["answer"] + "<end_of_utterance>", rc, 16))
    chats = []
    msgs_list = [
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What color is the shape?"}]}],
        [{"role": "user", "content": [{"type": "text", "text": "Describe"}, {"type": "image"}]},
         {"role": "assistant", "content": [{"type": "text", "text": " A cat."}]},
         {"role": "user", "content": [{"type": "text", "text": "More?"}]}],
    ]
    for m in msgs_list:
        for agp in (True, False):
            chats.append({"messages": m, "add_generation_prompt": agp, "text": apply_chat_template(m, agp)})
    cases = {"encode": [{"text": t, "ids": tok.encode(t)} for t in texts], "chat": chats}
    with open(out_path, "w") as f:
        json.dump(cases, f, ensure_ascii=False)
    return cases


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--cases":
        ckpt = sys.argv[2] if len(sys.argv) > 2 else os.path.join(HERE, "checkpoint")
        out = sys.argv[3] if len(sys.argv) > 3 else os.path.join(HERE, "tokenizer_cases.json")
        c = write_cases(ckpt, out)
        print(f"wrote {len(c['encode'])} encode and {len(c['chat'])} template cases to {out}")
    else:
        out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "checkpoint")
        total, base, nm = build(out)
        print(f"wrote tokenizer to {out}: vocab {total} (BPE vocab {base}, {nm} merges)")

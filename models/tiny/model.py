"""Tiny Idefics3 / SmolVLM-layout model in plain torch (CPU, torch >= 1.13).

Follows Hugging Face transformers' `models/idefics3/modeling_idefics3.py` and
`models/llama/modeling_llama.py` numerically and in parameter naming:

  model.vision_model.embeddings.patch_embedding.{weight,bias}      Conv2d(3, D, p, stride p, valid)
  model.vision_model.embeddings.position_embedding.weight          [(image_size/p)^2, D]
  model.vision_model.encoder.layers.N.self_attn.{q,k,v,out}_proj.{weight,bias}
  model.vision_model.encoder.layers.N.layer_norm{1,2}.{weight,bias}
  model.vision_model.encoder.layers.N.mlp.fc{1,2}.{weight,bias}
  model.vision_model.post_layernorm.{weight,bias}
  model.connector.modality_projection.proj.weight                  Linear(D*s^2, H, bias=False)
  model.text_model.embed_tokens.weight
  model.text_model.layers.N.self_attn.{q,k,v,o}_proj.weight        (no bias)
  model.text_model.layers.N.mlp.{gate,up,down}_proj.weight
  model.text_model.layers.N.{input_layernorm,post_attention_layernorm}.weight
  model.text_model.norm.weight
  lm_head.weight                                                   (untied)

Vision position ids are the identity for full tiles (every frame here is exactly image_size^2).
"""
import json
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


# ----------------------------------------------------------------------------------------------
# config


def default_config():
    """The tiny model's config (written verbatim to checkpoint/config.json by train.py)."""
    return {
        "architectures": ["Idefics3ForConditionalGeneration"],
        "model_type": "idefics3",
        "image_token_id": None,  # filled from the tokenizer
        "scale_factor": 2,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
        "use_cache": True,
        "vocab_size": None,
        "vision_config": {
            "model_type": "idefics3",
            "hidden_size": 128,
            "intermediate_size": 512,
            "num_hidden_layers": 3,
            "num_attention_heads": 2,
            "num_channels": 3,
            "image_size": 64,
            "patch_size": 16,
            "hidden_act": "gelu_pytorch_tanh",
            "layer_norm_eps": 1e-6,
            "attention_dropout": 0.0,
            "initializer_range": 0.02,
            "max_image_size": {"longest_edge": 64},
            "size": {"longest_edge": 256},
            "use_base_siglip": True,
        },
        "text_config": {
            "model_type": "llama",
            "architectures": ["VLlama3ForCausalLM"],
            "hidden_size": 192,
            "intermediate_size": 384,
            "num_hidden_layers": 3,
            "num_attention_heads": 3,
            "num_key_value_heads": 1,
            "head_dim": 64,
            "hidden_act": "silu",
            "rms_norm_eps": 1e-5,
            "rope_theta": 100000.0,
            "rope_scaling": None,
            "rope_interleaved": False,
            "attention_bias": False,
            "mlp_bias": False,
            "max_position_embeddings": 2048,
            "initializer_range": 0.02,
            "tie_word_embeddings": False,
            "vocab_size": None,
            "bos_token_id": None,
            "eos_token_id": None,
            "pad_token_id": None,
        },
    }


# ----------------------------------------------------------------------------------------------
# vision tower (SigLIP-style, as Idefics3VisionTransformer)


class VisionEmbeddings(nn.Module):
    def __init__(self, vc):
        super().__init__()
        self.patch_size = vc["patch_size"]
        self.patch_embedding = nn.Conv2d(
            vc["num_channels"], vc["hidden_size"], kernel_size=self.patch_size, stride=self.patch_size, padding="valid"
        )
        self.num_patches_per_side = vc["image_size"] // self.patch_size
        self.position_embedding = nn.Embedding(self.num_patches_per_side ** 2, vc["hidden_size"])

    def forward(self, pixel_values):
        # every frame is a full image_size x image_size tile -> identity position ids 0..n^2-1
        _, _, h, w = pixel_values.shape
        assert h // self.patch_size == self.num_patches_per_side and w // self.patch_size == self.num_patches_per_side
        x = self.patch_embedding(pixel_values)  # [B, D, n, n]
        x = x.flatten(2).transpose(1, 2)  # [B, n*n, D]
        return x + self.position_embedding.weight[None]


class VisionAttention(nn.Module):
    def __init__(self, vc):
        super().__init__()
        d = vc["hidden_size"]
        self.num_heads = vc["num_attention_heads"]
        self.head_dim = d // self.num_heads
        self.scale = self.head_dim ** -0.5
        self.q_proj = nn.Linear(d, d)
        self.k_proj = nn.Linear(d, d)
        self.v_proj = nn.Linear(d, d)
        self.out_proj = nn.Linear(d, d)

    def forward(self, x):
        b, n, d = x.shape
        q = self.q_proj(x).view(b, n, self.num_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, n, self.num_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, n, self.num_heads, self.head_dim).transpose(1, 2)
        w = torch.matmul(q, k.transpose(2, 3)) * self.scale
        w = F.softmax(w, dim=-1, dtype=torch.float32).to(q.dtype)
        o = torch.matmul(w, v).transpose(1, 2).reshape(b, n, d)
        return self.out_proj(o)


class VisionMLP(nn.Module):
    def __init__(self, vc):
        super().__init__()
        self.fc1 = nn.Linear(vc["hidden_size"], vc["intermediate_size"])
        self.fc2 = nn.Linear(vc["intermediate_size"], vc["hidden_size"])

    def forward(self, x):
        h = self.fc1(x)
        # gelu_pytorch_tanh; evaluated in f32 (a no-op for f32 weights; faster on CPU under bf16 autocast)
        return self.fc2(F.gelu(h.float(), approximate="tanh").to(h.dtype))


class EncoderLayer(nn.Module):
    def __init__(self, vc):
        super().__init__()
        d, eps = vc["hidden_size"], vc["layer_norm_eps"]
        self.self_attn = VisionAttention(vc)
        self.layer_norm1 = nn.LayerNorm(d, eps=eps)
        self.mlp = VisionMLP(vc)
        self.layer_norm2 = nn.LayerNorm(d, eps=eps)

    def forward(self, x):
        x = x + self.self_attn(self.layer_norm1(x))
        x = x + self.mlp(self.layer_norm2(x))
        return x


class Encoder(nn.Module):
    def __init__(self, vc):
        super().__init__()
        self.layers = nn.ModuleList([EncoderLayer(vc) for _ in range(vc["num_hidden_layers"])])

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


class VisionTransformer(nn.Module):
    def __init__(self, vc):
        super().__init__()
        self.embeddings = VisionEmbeddings(vc)
        self.encoder = Encoder(vc)
        self.post_layernorm = nn.LayerNorm(vc["hidden_size"], eps=vc["layer_norm_eps"])

    def forward(self, pixel_values):
        return self.post_layernorm(self.encoder(self.embeddings(pixel_values)))


# ----------------------------------------------------------------------------------------------
# connector


class SimpleMLP(nn.Module):
    def __init__(self, in_dim, out_dim):
        super().__init__()
        self.proj = nn.Linear(in_dim, out_dim, bias=False)

    def forward(self, x):
        return self.proj(x)


class Connector(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.scale_factor = cfg["scale_factor"]
        d = cfg["vision_config"]["hidden_size"]
        self.modality_projection = SimpleMLP(d * self.scale_factor ** 2, cfg["text_config"]["hidden_size"])

    @staticmethod
    def pixel_shuffle(x, scale_factor=2):
        # exactly Idefics3Connector.pixel_shuffle
        bsz, seq, embed_dim = x.size()
        height = width = int(seq ** 0.5)
        x = x.view(bsz, height, width, embed_dim)
        x = x.view(bsz, height, int(width / scale_factor), embed_dim * scale_factor)
        x = x.permute(0, 2, 1, 3)
        x = x.reshape(bsz, int(width / scale_factor), int(height / scale_factor), embed_dim * (scale_factor ** 2))
        x = x.permute(0, 2, 1, 3)
        x = x.reshape(bsz, int(seq / (scale_factor ** 2)), embed_dim * (scale_factor ** 2))
        return x

    def forward(self, x):
        return self.modality_projection(self.pixel_shuffle(x, self.scale_factor))


# ----------------------------------------------------------------------------------------------
# Llama text model


class RMSNorm(nn.Module):
    def __init__(self, n, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.variance_epsilon = eps

    def forward(self, h):
        input_dtype = h.dtype
        h = h.to(torch.float32)
        variance = h.pow(2).mean(-1, keepdim=True)
        h = h * torch.rsqrt(variance + self.variance_epsilon)
        return self.weight * h.to(input_dtype)


def rope_cos_sin(positions, head_dim, theta):
    """LlamaRotaryEmbedding (rope_type default), float32."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
    freqs = positions.float()[:, None] * inv_freq[None, :]  # [L, hd/2]
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


def rotate_half(x):
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


class LlamaAttention(nn.Module):
    def __init__(self, tc):
        super().__init__()
        h = tc["hidden_size"]
        self.num_heads = tc["num_attention_heads"]
        self.num_kv = tc["num_key_value_heads"]
        self.head_dim = tc.get("head_dim") or h // self.num_heads
        self.scale = self.head_dim ** -0.5
        self.q_proj = nn.Linear(h, self.num_heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(h, self.num_kv * self.head_dim, bias=False)
        self.v_proj = nn.Linear(h, self.num_kv * self.head_dim, bias=False)
        self.o_proj = nn.Linear(self.num_heads * self.head_dim, h, bias=False)

    def forward(self, x, cos, sin, mask):
        b, n, _ = x.shape
        q = self.q_proj(x).view(b, n, self.num_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, n, self.num_kv, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, n, self.num_kv, self.head_dim).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        rep = self.num_heads // self.num_kv
        if rep > 1:  # repeat_kv: kv head j serves query heads j*rep .. j*rep+rep-1
            k = k[:, :, None].expand(b, self.num_kv, rep, n, self.head_dim).reshape(b, self.num_heads, n, self.head_dim)
            v = v[:, :, None].expand(b, self.num_kv, rep, n, self.head_dim).reshape(b, self.num_heads, n, self.head_dim)
        w = torch.matmul(q, k.transpose(2, 3)) * self.scale + mask
        w = F.softmax(w, dim=-1, dtype=torch.float32).to(q.dtype)
        o = torch.matmul(w, v).transpose(1, 2).reshape(b, n, self.num_heads * self.head_dim)
        return self.o_proj(o)


class LlamaMLP(nn.Module):
    def __init__(self, tc):
        super().__init__()
        h, i = tc["hidden_size"], tc["intermediate_size"]
        self.gate_proj = nn.Linear(h, i, bias=False)
        self.up_proj = nn.Linear(h, i, bias=False)
        self.down_proj = nn.Linear(i, h, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class LlamaDecoderLayer(nn.Module):
    def __init__(self, tc):
        super().__init__()
        self.self_attn = LlamaAttention(tc)
        self.mlp = LlamaMLP(tc)
        self.input_layernorm = RMSNorm(tc["hidden_size"], tc["rms_norm_eps"])
        self.post_attention_layernorm = RMSNorm(tc["hidden_size"], tc["rms_norm_eps"])

    def forward(self, x, cos, sin, mask):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask)
        x = x + self.mlp(self.post_attention_layernorm(x))
        return x


class LlamaModel(nn.Module):
    def __init__(self, tc):
        super().__init__()
        self.tc = tc
        self.embed_tokens = nn.Embedding(tc["vocab_size"], tc["hidden_size"])
        self.layers = nn.ModuleList([LlamaDecoderLayer(tc) for _ in range(tc["num_hidden_layers"])])
        self.norm = RMSNorm(tc["hidden_size"], tc["rms_norm_eps"])

    def forward(self, inputs_embeds):
        b, n, _ = inputs_embeds.shape
        hd = self.tc.get("head_dim") or self.tc["hidden_size"] // self.tc["num_attention_heads"]
        cos, sin = rope_cos_sin(torch.arange(n), hd, float(self.tc["rope_theta"]))
        cos, sin = cos.to(inputs_embeds.dtype), sin.to(inputs_embeds.dtype)
        mask = torch.full((n, n), torch.finfo(inputs_embeds.dtype).min, dtype=inputs_embeds.dtype).triu(1)
        x = inputs_embeds
        for layer in self.layers:
            x = layer(x, cos, sin, mask)
        return self.norm(x)


# ----------------------------------------------------------------------------------------------
# Idefics3


class Idefics3Model(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.vision_model = VisionTransformer(cfg["vision_config"])
        self.connector = Connector(cfg)
        self.text_model = LlamaModel(cfg["text_config"])


class Idefics3ForConditionalGeneration(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.image_token_id = cfg["image_token_id"]
        self.model = Idefics3Model(cfg)
        self.lm_head = nn.Linear(cfg["text_config"]["hidden_size"], cfg["text_config"]["vocab_size"], bias=False)
        self.init_weights()

    def init_weights(self):
        std = self.cfg["text_config"]["initializer_range"]
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                nn.init.normal_(m.weight, 0.0, std)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Embedding):
                nn.init.normal_(m.weight, 0.0, std)
        # scale residual-branch outputs down a little (GPT-2 style) for stable from-scratch training
        nl = self.cfg["text_config"]["num_hidden_layers"] + self.cfg["vision_config"]["num_hidden_layers"]
        for name, p in self.named_parameters():
            if name.endswith(("o_proj.weight", "down_proj.weight", "out_proj.weight", "fc2.weight")):
                nn.init.normal_(p, 0.0, std / math.sqrt(2 * nl))

    def image_features(self, pixel_values):
        """pixel_values [frames, 3, S, S] -> [frames, seq, H]"""
        return self.model.connector(self.model.vision_model(pixel_values))

    def embed(self, input_ids, pixel_values=None, image_features=None):
        """inputs_merger: masked_scatter of image features (in order) into the <image> positions."""
        emb = self.model.text_model.embed_tokens(input_ids)
        if image_features is None and pixel_values is not None:
            image_features = self.image_features(pixel_values)
        if image_features is not None:
            mask = (input_ids == self.image_token_id).unsqueeze(-1).expand_as(emb)
            feats = image_features.reshape(-1, emb.shape[-1]).to(emb.dtype)
            assert int((input_ids == self.image_token_id).sum()) == feats.shape[0], "image token count mismatch"
            emb = emb.masked_scatter(mask, feats)
        return emb

    def forward(self, input_ids, pixel_values=None, image_features=None):
        emb = self.embed(input_ids, pixel_values, image_features)
        return self.lm_head(self.model.text_model(emb))

    @torch.no_grad()
    def generate(self, input_ids, pixel_values, max_new_tokens=8, eos_token_id=None):
        """Greedy decoding for one sequence (input_ids [1, L]); no KV cache (recomputes the text model),
        image features computed once in the prefill; generated <image> ids keep their token embedding."""
        feats = self.image_features(pixel_values) if pixel_values is not None else None
        emb = self.embed(input_ids, image_features=feats)
        out = []
        for _ in range(max_new_tokens):
            logits = self.lm_head(self.model.text_model(emb)[:, -1])
            nxt = int(logits[0].argmax())
            out.append(nxt)
            if eos_token_id is not None and nxt == eos_token_id:
                break
            emb = torch.cat([emb, self.model.text_model.embed_tokens(torch.tensor([[nxt]]))], dim=1)
        return out


# ----------------------------------------------------------------------------------------------
# safetensors (hand-written: 8-byte LE header length, JSON header, raw little-endian data)

_DT = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.int64: "I64", torch.int32: "I32"}
_DT_INV = {v: k for k, v in _DT.items()}


def save_safetensors(tensors, path, metadata=None):
    header = {}
    blobs = []
    off = 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        if t.dtype == torch.bfloat16:
            raw = t.view(torch.int16).numpy().astype("<i2").tobytes()
        else:
            raw = t.numpy().astype(t.numpy().dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": _DT[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    if metadata:
        header["__metadata__"] = metadata
    hb = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hb += b" " * ((8 - len(hb) % 8) % 8)  # pad header so the data starts 8-byte aligned
    with open(path, "wb") as f:
        f.write(len(hb).to_bytes(8, "little"))
        f.write(hb)
        for raw in blobs:
            f.write(raw)


def load_safetensors(path):
    import numpy as np

    with open(path, "rb") as f:
        data = f.read()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n].decode("utf-8"))
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        raw = data[base + a:base + b]
        dt = info["dtype"]
        if dt == "BF16":
            t = torch.from_numpy(np.frombuffer(raw, dtype="<i2").copy()).view(torch.bfloat16)
        else:
            npdt = {"F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4"}[dt]
            t = torch.from_numpy(np.frombuffer(raw, dtype=npdt).copy())
        out[name] = t.reshape(info["shape"])
    return out


def load_model(ckpt_dir):
    with open(f"{ckpt_dir}/config.json") as f:
        cfg = json.load(f)
    model = Idefics3ForConditionalGeneration(cfg)
    sd = load_safetensors(f"{ckpt_dir}/model.safetensors")
    sd = {k: v.float() for k, v in sd.items()}
    model.load_state_dict(sd, strict=True)
    model.eval()
    return model, cfg

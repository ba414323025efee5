"""EcoFormer (on PVTv2) reference definition (written from ../../shared/specs/ecoformer.md, not
the authors' code).

A PVTv2 pyramid (overlapping patch embeddings, 4 stages of pre-norm transformer blocks whose MLP
holds a 3x3 depthwise conv) in which the attention of stages 1-3 is EcoFormer's: queries and keys
share one projection, are hashed to b-bit ±1 codes (kernel features against m anchors, a learned
b x m projection, sign), and attend linearly in the number of tokens. Stage 4 keeps softmax
attention. Eval-mode inference only; the hash constants (anchors, mean kernel vector, projection)
are buffers fitted at training time (here: seeded random, see `init_hash_`).

    from model import EcoFormer, pvtv2_b0, tiny
    net = EcoFormer(pvtv2_b0()).eval()
"""
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class Config:
    dims: tuple = (32, 64, 160, 256)
    heads: tuple = (1, 2, 5, 8)
    mlp_ratios: tuple = (8, 8, 4, 4)
    depths: tuple = (2, 2, 2, 2)
    hashed: tuple = (True, True, True, False)
    nbits: int = 16
    anchors: int = 25
    num_classes: int = 1000
    img: int = 224


def pvtv2_b0():
    return Config()


def tiny():
    """Fixture size: 64x64 input (256 tokens in stage 1), head width 8, 8-bit codes, 6 anchors."""
    return Config(dims=(8, 16, 16, 32), heads=(1, 2, 2, 4), mlp_ratios=(2, 2, 2, 2), depths=(1, 1, 1, 1),
                  nbits=8, anchors=6, num_classes=8, img=64)


VARIANTS = {"pvtv2_b0": pvtv2_b0, "tiny": tiny}


class EcoAttention(nn.Module):
    """Hashed linear attention. Per head, with x̂ = qk/‖qk‖: d_nj = ‖x̂_n − a_j‖², σ = mean(d),
    k = exp(−d/(2σ)) − μ, h = sign(A k) ∈ {±1}^b; then with β = b + 1,
    out_n = (h_nᵀ Σ_j h_j v_jᵀ + β v_n) / (h_n · Σ_j h_j + β N)."""

    def __init__(self, c, heads, nbits, m):
        super().__init__()
        self.h, self.d, self.b = heads, c // heads, nbits
        self.to_qk = nn.Linear(c, c)
        self.to_v = nn.Linear(c, c)
        self.proj = nn.Linear(c, c)
        self.register_buffer("anchor", F.normalize(torch.randn(heads, m, self.d), dim=-1))
        self.register_buffer("mvec", torch.zeros(heads, m))
        self.register_buffer("A", torch.randn(heads, nbits, m))

    def forward(self, x):
        bsz, n, c = x.shape
        qk = self.to_qk(x).reshape(bsz, n, self.h, self.d).transpose(1, 2)
        v = self.to_v(x).reshape(bsz, n, self.h, self.d).transpose(1, 2)
        xh = qk / torch.linalg.vector_norm(qk, dim=-1, keepdim=True)
        dist = ((xh.unsqueeze(-2) - self.anchor.unsqueeze(1)) ** 2).sum(-1)  # b h n m
        sigma = dist.mean((-1, -2), keepdim=True)
        k = torch.exp(-dist / (2 * sigma)) - self.mvec.unsqueeze(1)
        code = torch.sign(torch.einsum("bhnm,hkm->bhnk", k, self.A))
        beta = self.b + 1
        ksum = code.sum(-2)
        den = torch.einsum("...nd,...d->...n", code, ksum) + beta * n
        ctx = torch.einsum("...nd,...ne->...de", code, v)
        num = torch.einsum("...de,...nd->...ne", ctx, code) + beta * v
        out = num * den.reciprocal().unsqueeze(-1)
        return self.proj(out.transpose(1, 2).reshape(bsz, n, c))


class Attention(nn.Module):
    """Standard multi-head softmax attention (stage 4)."""

    def __init__(self, c, heads):
        super().__init__()
        self.h, self.d = heads, c // heads
        self.qkv = nn.Linear(c, 3 * c)
        self.proj = nn.Linear(c, c)

    def forward(self, x):
        bsz, n, c = x.shape
        q, k, v = self.qkv(x).reshape(bsz, n, 3, self.h, self.d).permute(2, 0, 3, 1, 4)
        a = torch.softmax((q @ k.transpose(-1, -2)) * self.d ** -0.5, dim=-1)
        return self.proj((a @ v).transpose(1, 2).reshape(bsz, n, c))


class MLP(nn.Module):
    def __init__(self, c, hidden):
        super().__init__()
        self.fc1 = nn.Linear(c, hidden)
        self.dw = nn.Conv2d(hidden, hidden, 3, 1, 1, groups=hidden)
        self.fc2 = nn.Linear(hidden, c)

    def forward(self, x, h, w):
        y = self.fc1(x)
        bsz, n, c = y.shape
        y = self.dw(y.transpose(1, 2).reshape(bsz, c, h, w)).flatten(2).transpose(1, 2)
        return self.fc2(F.gelu(y))


class Block(nn.Module):
    def __init__(self, c, heads, ratio, hashed, cfg):
        super().__init__()
        self.norm1 = nn.LayerNorm(c, eps=1e-6)
        self.attn = EcoAttention(c, heads, cfg.nbits, cfg.anchors) if hashed else Attention(c, heads)
        self.norm2 = nn.LayerNorm(c, eps=1e-6)
        self.mlp = MLP(c, c * ratio)

    def forward(self, x, h, w):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x), h, w)


class Stage(nn.Module):
    def __init__(self, i, cin, cfg):
        super().__init__()
        c = cfg.dims[i]
        k, s = (7, 4) if i == 0 else (3, 2)
        self.embed = nn.Conv2d(cin, c, k, s, k // 2)
        self.embed_norm = nn.LayerNorm(c, eps=1e-5)
        self.blocks = nn.ModuleList(Block(c, cfg.heads[i], cfg.mlp_ratios[i], cfg.hashed[i], cfg)
                                    for _ in range(cfg.depths[i]))
        self.norm = nn.LayerNorm(c, eps=1e-6)

    def forward(self, x):
        x = self.embed(x)
        bsz, c, h, w = x.shape
        t = self.embed_norm(x.flatten(2).transpose(1, 2))
        for blk in self.blocks:
            t = blk(t, h, w)
        return self.norm(t), h, w


class EcoFormer(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        ins = (3,) + tuple(cfg.dims[:-1])
        self.stages = nn.ModuleList(Stage(i, ins[i], cfg) for i in range(len(cfg.dims)))
        self.head = nn.Linear(cfg.dims[-1], cfg.num_classes)

    def forward(self, x):
        for i, st in enumerate(self.stages):
            t, h, w = st(x)
            if i + 1 < len(self.stages):
                x = t.transpose(1, 2).reshape(t.shape[0], -1, h, w)
        return self.head(t.mean(1))


def init_hash_(net: EcoFormer, seed: int):
    """Seeded hash constants: unit-norm anchors, standard-normal projection A, and μ = the mean
    kernel vector of the current tokens would need a calibration pass; a small seeded μ is used
    instead (the arithmetic is the same)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, EcoAttention):
                m.anchor.copy_(F.normalize(torch.randn(m.anchor.shape, generator=g), dim=-1))
                m.A.copy_(torch.randn(m.A.shape, generator=g))
                m.mvec.copy_(0.3 + 0.1 * torch.randn(m.mvec.shape, generator=g))
    return net


if __name__ == "__main__":
    for name, make in VARIANTS.items():
        cfg = make()
        n = sum(p.numel() for p in EcoFormer(cfg).parameters())
        print(f"{name}: {n:,} parameters at {cfg.img}x{cfg.img}")

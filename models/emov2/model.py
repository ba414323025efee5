"""EMOv2 reference definition (written from ../../shared/specs/emov2.md, not the authors' code).

An EMOv2 classifier is a conv stem and four stages of i2RMB blocks (inverted residual with a
5x5 depthwise conv); blocks after the first of stages 3-4 mix tokens with two-partition window
attention (close 7x7 windows + a strided "remote" grid, summed). Eval-mode inference only.

    from model import EMOv2, emov2_1m, tiny
    net = EMOv2(emov2_1m()).eval()
"""
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class Config:
    depths: tuple = (2, 2, 8, 3)
    dims: tuple = (32, 48, 80, 180)
    exp_ratios: tuple = (2.0, 2.5, 3.0, 3.5)
    dim_heads: tuple = (16, 16, 20, 20)
    window: int = 7
    num_classes: int = 1000
    img: int = 224
    # Stages (0-based) with LN(C) + GELU + attention mixers; the others use BN + SiLU + 1x1 conv.
    attn_stages: tuple = (2, 3)
    eps: float = 1e-6

    @property
    def stem(self):
        return self.dims[0] // 2


def emov2_1m():
    return Config()


def emov2_2m():
    return Config(depths=(3, 3, 9, 3), dims=(32, 48, 120, 200))


def emov2_5m():
    return Config(depths=(3, 3, 9, 3), dims=(48, 72, 160, 288), exp_ratios=(2, 3, 4, 4),
                  dim_heads=(16, 24, 32, 32))


def tiny():
    """Fixture size: 96x96 input, window 3 (stage 3 has 2x2 windows per partition at 6x6,
    stage 4 one window at 3x3), widths 8..32, 8 classes."""
    return Config(depths=(1, 2, 2, 2), dims=(8, 16, 24, 32), exp_ratios=(2, 2.5, 2, 2),
                  dim_heads=(8, 8, 8, 8), window=3, num_classes=8, img=96)


VARIANTS = {"emov2_1m": emov2_1m, "emov2_2m": emov2_2m, "emov2_5m": emov2_5m, "tiny": tiny}


class ChannelLN(nn.Module):
    """LayerNorm over the channel vector of each pixel of an NCHW map."""

    def __init__(self, c, eps):
        super().__init__()
        self.ln = nn.LayerNorm(c, eps=eps)

    def forward(self, x):
        return self.ln(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def conv_bn_act(cin, cout, k, stride=1, groups=1, bias=False, act=True, eps=1e-6):
    pad = math.ceil((k - stride) / 2)
    layers = [nn.Conv2d(cin, cout, k, stride, pad, groups=groups, bias=bias), nn.BatchNorm2d(cout, eps=eps)]
    if act:
        layers.append(nn.SiLU())
    return nn.Sequential(*layers)


class HybridWindowAttention(nn.Module):
    """Per head, softmax(Q Kᵀ dk^-0.5) V inside each w x w window of two partitions of the map:
    close windows (a*w + r, b*w + c) and remote windows (r*n1 + a, c*n2 + b); the two results
    are summed. Q/K share one 1x1 conv; V = GELU(1x1 conv) with `mid` channels."""

    def __init__(self, c, mid, dim_head, window):
        super().__init__()
        assert c % dim_head == 0, "channels must be a multiple of dim_head"
        self.heads = c // dim_head
        assert mid % self.heads == 0, "mid width must split into heads"
        self.dk, self.dv, self.w = dim_head, mid // self.heads, window
        self.qk = nn.Conv2d(c, 2 * c, 1)
        self.v = nn.Conv2d(c, mid, 1)

    def partition(self, t, close):
        b, c, hp, wp = t.shape
        w, n1, n2 = self.w, hp // self.w, wp // self.w
        if close:
            t = t.reshape(b, c, n1, w, n2, w).permute(0, 2, 4, 1, 3, 5)
        else:
            t = t.reshape(b, c, w, n1, w, n2).permute(0, 3, 5, 1, 2, 4)
        return t.reshape(b * n1 * n2, c, w * w)

    def merge(self, t, close, b, hp, wp):
        w, n1, n2 = self.w, hp // self.w, wp // self.w
        c = t.shape[1]
        t = t.reshape(b, n1, n2, c, w, w)
        if close:
            t = t.permute(0, 3, 1, 4, 2, 5)  # b, c, n1, r, n2, col
        else:
            t = t.permute(0, 3, 4, 1, 5, 2)  # b, c, r, n1, col, n2
        return t.reshape(b, c, hp, wp)

    def forward(self, x):
        b, c, h, w = x.shape
        ph, pw = (-h) % self.w, (-w) % self.w
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph))
        hp, wp = h + ph, w + pw
        qk = self.qk(x)
        v = F.gelu(self.v(x))
        out = 0
        for close in (True, False):
            qkw, vw = self.partition(qk, close), self.partition(v, close)
            nw, tokens = qkw.shape[0], qkw.shape[-1]
            q = qkw[:, :c].reshape(nw, self.heads, self.dk, tokens).transpose(-1, -2)
            k = qkw[:, c:].reshape(nw, self.heads, self.dk, tokens)
            vv = vw.reshape(nw, self.heads, self.dv, tokens).transpose(-1, -2)
            a = torch.softmax((q @ k) * self.dk ** -0.5, dim=-1)
            o = (a @ vv).transpose(-1, -2).reshape(nw, self.heads * self.dv, tokens)
            out = out + self.merge(o, close, b, hp, wp)
        return out[:, :, :h, :w]


class IIRMB(nn.Module):
    """Inverted residual mobile block: norm -> token mixer (1x1 conv or window attention) ->
    5x5 depthwise conv (+ inner skip) -> 1x1 projection x layer scale (+ outer skip)."""

    def __init__(self, cin, cout, expansion, stride, attn, ln, dim_head, window, eps):
        super().__init__()
        mid = int(cin * expansion)
        self.residual = stride == 1 and cin == cout
        self.norm = ChannelLN(cin, eps) if ln else nn.BatchNorm2d(cin, eps=eps)
        if attn:
            self.mixer = HybridWindowAttention(cin, mid, dim_head, window)
        else:
            self.mixer = nn.Sequential(nn.Conv2d(cin, mid, 1), nn.GELU() if ln else nn.SiLU())
        self.dw = conv_bn_act(mid, mid, 5, stride, groups=mid, eps=eps)
        self.proj = nn.Conv2d(mid, cout, 1, bias=False)
        self.gamma = nn.Parameter(1e-6 * torch.ones(1, cout, 1, 1))

    def forward(self, x):
        f = self.mixer(self.norm(x))
        g = f + self.dw(f) if self.residual else self.dw(f)
        p = self.gamma * self.proj(g)
        return x + p if self.residual else p


class EMOv2(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        c0, eps = cfg.stem, cfg.eps
        self.stem = nn.Sequential(
            nn.Conv2d(3, c0, 3, 2, 1, bias=True), nn.BatchNorm2d(c0, eps=eps), nn.SiLU(),
            conv_bn_act(c0, c0, 3, 1, groups=c0, eps=eps),
            nn.Conv2d(c0, c0, 1, bias=False),
        )
        blocks, cin = [], c0
        for i, (d, cout) in enumerate(zip(cfg.depths, cfg.dims)):
            late = i in cfg.attn_stages
            for j in range(d):
                first = j == 0
                blocks.append(IIRMB(cin if first else cout, cout,
                                    cfg.exp_ratios[i] * (2 if first else 1), 2 if first else 1,
                                    attn=late and not first, ln=late, dim_head=cfg.dim_heads[i],
                                    window=cfg.window, eps=eps))
            cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.norm = ChannelLN(cfg.dims[-1], eps)
        self.head = nn.Linear(cfg.dims[-1], cfg.num_classes)

    def forward(self, x):
        x = self.norm(self.blocks(self.stem(x)))
        return self.head(x.mean((2, 3)))


if __name__ == "__main__":
    for name, make in VARIANTS.items():
        cfg = make()
        n = sum(p.numel() for p in EMOv2(cfg).parameters())
        print(f"{name}: {n:,} parameters at {cfg.img}x{cfg.img}")

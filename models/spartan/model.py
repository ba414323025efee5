"""SpaRTAN reference definition (written from ../../shared/specs/spartan.md, not the authors' code).

A SpaRTAN classifier is a two-conv stem and four stages of blocks, each block two pre-normalised
(GroupNorm with one group), layer-scaled residual sub-blocks: a spatial mixer with two receptive
fields (3x3 and two stacked dilated 3x3, each with squeeze-excitation) and a channel mixer with
"wave" aggregation (per-pixel argmax gather, then a learned complex multiply on channel pairs).
Eval-mode inference only.

    from model import SpaRTAN, spartan_t, tiny
    net = SpaRTAN(spartan_t()).eval()
"""
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class Config:
    depths: tuple = (3, 3, 12, 2)
    dims: tuple = (32, 64, 128, 256)
    expand: tuple = (4, 4, 2, 2)
    num_classes: int = 1000
    img: int = 224
    eps: float = 1e-6


def spartan_t():
    return Config()


def tiny():
    """Fixture size: 64x64 input, widths 8..32, one block per stage, 8 classes."""
    return Config(depths=(1, 1, 1, 1), dims=(8, 16, 16, 32), expand=(4, 4, 2, 2), num_classes=8, img=64)


VARIANTS = {"spartan_t": spartan_t, "tiny": tiny}


def conv_bn_act(cin, cout, k, stride=1, pad=0, groups=1, act=nn.GELU, eps=1e-6):
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, pad, groups=groups, bias=False),
                         nn.BatchNorm2d(cout, eps=eps), act())


class GN1(nn.Module):
    """GroupNorm with one group: statistics over the whole C x H x W map, per-channel affine."""

    def __init__(self, c, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c))
        self.eps = eps

    def forward(self, x):
        return F.group_norm(x, 1, self.weight, self.bias, self.eps)


class SE(nn.Module):
    def __init__(self, c, r):
        super().__init__()
        self.down = nn.Conv2d(c, r, 1)
        self.up = nn.Conv2d(r, c, 1)

    def forward(self, z):
        s = z.mean((2, 3), keepdim=True)
        return z * torch.sigmoid(self.up(F.relu(self.down(s))))


class SMixer(nn.Module):
    def __init__(self, c, early, eps):
        super().__init__()
        ch = c // 2
        g = 1 if early else ch
        self.proj_in = nn.Conv2d(c, ch, 1)
        self.gamma = nn.Parameter(1e-5 * torch.ones(1, ch, 1, 1))
        self.h = nn.Sequential(conv_bn_act(ch, ch, 3, pad=1, groups=g, eps=eps), SE(ch, ch // 4))
        self.l_pre = nn.Conv2d(ch, ch, 3, padding=2, dilation=2, groups=g, bias=False)
        self.l = nn.Sequential(nn.Conv2d(ch, ch, 3, padding=2, dilation=2, groups=g, bias=False),
                               nn.BatchNorm2d(ch, eps=eps), nn.GELU(), SE(ch, ch // 4))
        self.proj = nn.Conv2d(c, c, 1)

    def forward(self, a):
        u = self.proj_in(a)
        u = u + self.gamma * (u - u.mean((2, 3), keepdim=True))
        return self.proj(torch.cat([self.h(u), self.l(self.l_pre(u))], 1))


class CMixer(nn.Module):
    def __init__(self, c, n, early, eps):
        super().__init__()
        assert n % 2 == 0, "the complex modulation needs an even width"
        self.theta = nn.Conv2d(c, n, 1)
        self.proj = nn.Conv2d(c, n, 1)
        # c_k = complex[..., k, 0] + i complex[..., k, 1], one per channel pair (2k, 2k+1).
        self.complex = nn.Parameter(torch.randn(1, 1, 1, n // 2, 2))
        self.q = nn.Sequential(conv_bn_act(n, n, 3, pad=1, groups=n if early else c, eps=eps), SE(n, c // 4))
        self.proj_out = nn.Conv2d(n, c, 1)

    def forward(self, b):
        idx = b.argmax(1, keepdim=True)
        t = F.gelu(self.theta(b))
        w = self.proj(b)
        f = w * t + w.gather(1, idx) * t.gather(1, idx)
        bsz, n, h, wd = f.shape
        z = torch.view_as_complex(f.permute(0, 2, 3, 1).reshape(bsz, h, wd, n // 2, 2).contiguous())
        z = z * torch.view_as_complex(self.complex)
        f = torch.view_as_real(z).reshape(bsz, h, wd, n).permute(0, 3, 1, 2)
        return self.proj_out(self.q(f))


class Block(nn.Module):
    def __init__(self, c, expand, early, eps):
        super().__init__()
        self.norm_a = GN1(c, eps)
        self.smixer = SMixer(c, early, eps)
        self.scale_1 = nn.Parameter(1e-5 * torch.ones(1, c, 1, 1))
        self.norm_b = GN1(c, eps)
        self.cmixer = CMixer(c, c * expand, early, eps)
        self.scale_2 = nn.Parameter(1e-5 * torch.ones(1, c, 1, 1))

    def forward(self, x):
        x = x + self.scale_1 * self.smixer(self.norm_a(x))
        return x + self.scale_2 * self.cmixer(self.norm_b(x))


class SpaRTAN(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        d0, eps = cfg.dims[0], cfg.eps
        self.stem = nn.Sequential(conv_bn_act(3, d0 // 2, 3, 2, 1, eps=eps),
                                  conv_bn_act(d0 // 2, d0, 3, 2, 1, eps=eps))
        layers, n_stages = [], len(cfg.depths)
        for i, (depth, c) in enumerate(zip(cfg.depths, cfg.dims)):
            if i > 0:
                layers.append(conv_bn_act(cfg.dims[i - 1], c, 2, 2, 0, act=nn.SiLU, eps=eps))
            layers += [Block(c, cfg.expand[i], i < n_stages // 2, eps) for _ in range(depth)]
        self.layers = nn.Sequential(*layers)
        self.head = nn.Linear(cfg.dims[-1], cfg.num_classes)

    def forward(self, x):
        return self.head(self.layers(self.stem(x)).mean((2, 3)))


if __name__ == "__main__":
    for name, make in VARIANTS.items():
        cfg = make()
        n = sum(p.numel() for p in SpaRTAN(cfg).parameters())
        print(f"{name}: {n:,} parameters at {cfg.img}x{cfg.img}")

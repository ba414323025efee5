"""LMUFormer reference definition (written from ../../shared/specs/lmuformer.md, not the authors'
code): a conv patch embedding, one block of Legendre-memory token mixing (a fixed linear
recurrence m_t = Ā m_{t-1} + B̄ u_t) and a conv FFN, and a per-frame linear head averaged over
time. Two flavours: non-spiking (ReLU/GELU) and spiking (LIF neurons, "membrane shortcut").

Three forms of the same function:
* `LMUFormer` / `SpikingLMUFormer`: whole clip at once; the memory is a causal convolution with
  the impulse response H[:, k] = Ā^k B̄, computed in the time domain (`memory="conv"`) or as an
  FFT product (`memory="fft"`, torch.fft.rfft/irfft, what the authors' code does).
* `LMUFormerStep` / `SpikingLMUFormerStep`: one frame per call; every piece of state (conv input
  buffers, LIF potentials, LMU memory, running feature sum and count) is an input and an output,
  fed back by the caller. N + 5 calls reproduce an N-frame clip (5 frames of conv look-ahead).

Eval-mode inference only.
"""
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class Config:
    mel: int = 128          # input features per frame
    dim: int = 256          # embedding width C
    memory: int = 256       # LMU memory size M (2·dim in the spiking model)
    seq: int = 128          # frames per clip N
    theta: float = 128.0    # LMU window in frames
    mlp_ratio: int = 4
    num_classes: int = 35
    spiking: bool = False
    tau: float = 2.0


def gsc():
    """Google Speech Commands, non-spiking (`lmu_rnn_conv1d`)."""
    return Config()


def gsc_spiking():
    """Google Speech Commands, spiking (`slmu_rnn_ms_conv1d`)."""
    return Config(memory=512, spiking=True)


def tiny(spiking=False):
    """Fixture size: 16 mel bins, width 16, memory 16 (32 spiking), 16 frames, θ = 16, 5 classes."""
    return Config(mel=16, dim=16, memory=32 if spiking else 16, seq=16, theta=16.0, mlp_ratio=4,
                  num_classes=5, spiking=spiking)


VARIANTS = {"gsc": gsc, "gsc_spiking": gsc_spiking, "tiny": tiny, "tiny_spiking": lambda: tiny(True)}


def lmu_matrices(m, theta):
    """Legendre delay system (Voelker et al.) discretised by zero-order hold with dt = 1 frame:
    A_c[i,j] = (2i+1)/θ · (−1 if i < j else (−1)^(i−j+1)), B_c[i] = (2i+1)/θ · (−1)^i;
    [[Ā, B̄], [0, 1]] = expm([[A_c, B_c], [0, 0]]). Returns float32 Ā (M×M), B̄ (M)."""
    i = np.arange(m)[:, None].astype(np.float64)
    j = np.arange(m)[None, :].astype(np.float64)
    r = (2 * i + 1) / theta
    a = np.where(i < j, -1.0, (-1.0) ** (i - j + 1)) * r
    b = ((2 * np.arange(m) + 1) / theta * (-1.0) ** np.arange(m))[:, None]
    aug = np.zeros((m + 1, m + 1))
    aug[:m, :m], aug[:m, m:] = a, b
    e = torch.linalg.matrix_exp(torch.from_numpy(aug)).numpy()
    return torch.tensor(e[:m, :m], dtype=torch.float32), torch.tensor(e[:m, m], dtype=torch.float32)


class LMUMemory(nn.Module):
    """m[:, t] = Σ_{k≤t} H[:, k] u[t−k] with H[:, k] = Ā^k B̄, i.e. the recurrence from m_{−1} = 0.
    Input u [B, 1, L], output [B, M, L], L ≤ seq."""

    def __init__(self, m, seq, theta, mode="conv"):
        super().__init__()
        assert mode in ("conv", "fft"), "memory is 'conv' (time domain) or 'fft'"
        self.mode, self.seq = mode, seq
        abar, bbar = lmu_matrices(m, theta)
        h = [bbar]
        for _ in range(seq - 1):
            h.append(abar @ h[-1])
        self.register_buffer("A", abar)
        self.register_buffer("B", bbar)
        self.register_buffer("H", torch.stack(h, 1))  # M x N

    def forward(self, u):
        n = u.shape[-1]
        if self.mode == "conv":
            return F.conv1d(F.pad(u, (n - 1, 0)), self.H[:, :n].flip(-1).unsqueeze(1))
        # The spectrum of H is computed in the graph: exporters take no complex constants.
        fu = torch.fft.rfft(u, n=2 * n)
        fh = torch.fft.rfft(self.H[:, :n], n=2 * n)
        return torch.fft.irfft(fu * fh, n=2 * n)[..., :n]


def lif(x, tau, vth):
    """Multi-step LIF over the last axis (frames) from V = 0, hard reset:
    H = V + (X − V)/τ, S = [H − V_th ≥ 0], V = H (1 − S). Returns the spikes."""
    v = torch.zeros_like(x[..., 0])
    out = []
    for t in range(x.shape[-1]):
        v, s = lif_step(x[..., t], v, tau, vth)
        out.append(s)
    return torch.stack(out, -1)


def lif_step(x, v, tau, vth):
    h = v + (x - v) / tau
    s = (h - vth >= 0).to(x.dtype)
    return h * (1 - s), s


class LMUFormer(nn.Module):
    """Non-spiking LMUFormer. Input [B, N, mel] (frames first), output [B, classes]."""

    def __init__(self, cfg: Config, memory="conv"):
        super().__init__()
        assert not cfg.spiking
        self.cfg = cfg
        c, hid = cfg.dim, cfg.dim * cfg.mlp_ratio
        self.convs = nn.ModuleList(nn.Conv1d(cfg.mel if i == 0 else c, c, 3, padding=1, bias=False) for i in range(4))
        self.bns = nn.ModuleList(nn.BatchNorm1d(c) for _ in range(4))
        self.rpe = nn.Conv1d(c, c, 3, padding=1, bias=False)
        self.w_u = nn.Linear(c, 1)
        self.mem = LMUMemory(cfg.memory, cfg.seq, cfg.theta, memory)
        self.w_h = nn.Linear(cfg.memory + c, c)
        self.proj = nn.Conv1d(c, c, 1)
        self.proj_bn = nn.BatchNorm1d(c)
        self.fc1 = nn.Conv1d(c, hid, 1)
        self.fc1_bn = nn.BatchNorm1d(hid)
        self.fc2 = nn.Conv1d(hid, c, 1)
        self.fc2_bn = nn.BatchNorm1d(c)
        self.head = nn.Linear(c, cfg.num_classes)

    def embed(self, x):
        y = x.transpose(1, 2)
        for conv, bn in zip(self.convs, self.bns):
            y = bn(F.relu(conv(y)))  # conv -> ReLU -> BN, as the authors order it
        return y + self.rpe(y)

    def block(self, x):
        u = F.relu(self.w_u(x.transpose(1, 2))).transpose(1, 2)  # B, 1, N
        m = self.mem(u)
        h = F.relu(self.w_h(torch.cat([m, x], 1).transpose(1, 2))).transpose(1, 2)
        x = x + self.proj_bn(self.proj(h))
        return x + F.relu(self.fc2_bn(self.fc2(F.gelu(self.fc1_bn(self.fc1(x))))))

    def forward(self, x):
        z = self.block(self.embed(x))
        return self.head(z.transpose(1, 2)).mean(1)


class SpikingLMUFormer(nn.Module):
    """Spiking LMUFormer: BN -> LIF before every conv/linear except the first; the residual
    stream and the LMU memory stay real-valued. Input [B, N, mel], output [B, classes]."""

    def __init__(self, cfg: Config, memory="conv"):
        super().__init__()
        assert cfg.spiking
        self.cfg = cfg
        c, hid = cfg.dim, cfg.dim * cfg.mlp_ratio
        self.convs = nn.ModuleList(nn.Conv1d(cfg.mel if i == 0 else c, c, 3, padding=1, bias=False) for i in range(4))
        self.bns = nn.ModuleList(nn.BatchNorm1d(c) for _ in range(4))
        self.rpe = nn.Conv1d(c, c, 3, padding=1, bias=False)
        self.prev_bn = nn.BatchNorm1d(c)
        self.w_u = nn.Linear(c, 1)
        self.bn_u = nn.BatchNorm1d(1)
        self.mem = LMUMemory(cfg.memory, cfg.seq, cfg.theta, memory)
        self.bn_m = nn.BatchNorm1d(cfg.memory)
        self.w_h = nn.Linear(cfg.memory + c, c)
        self.bn_h = nn.BatchNorm1d(c)
        self.proj = nn.Conv1d(c, c, 1)
        self.proj_bn = nn.BatchNorm1d(c)
        self.fc1_bn = nn.BatchNorm1d(c)
        self.fc1 = nn.Conv1d(c, hid, 1)
        self.fc2_bn = nn.BatchNorm1d(hid)
        self.fc2 = nn.Conv1d(hid, c, 1)
        self.head_bn = nn.BatchNorm1d(c)
        self.head = nn.Linear(c, cfg.num_classes)

    def lif(self, x, vth=1.0):
        return lif(x, self.cfg.tau, vth)

    def forward(self, x):
        y = x.transpose(1, 2)
        for i, (conv, bn) in enumerate(zip(self.convs, self.bns)):
            c3 = conv(y)
            y = self.lif(bn(c3))
        x = c3 + self.rpe(y)
        s = self.lif(self.prev_bn(x), 0.5)
        u = self.lif(self.bn_u(self.w_u(s.transpose(1, 2)).transpose(1, 2)))
        ms = self.lif(self.bn_m(self.mem(u)))
        h = self.lif(self.bn_h(self.w_h(torch.cat([ms, s], 1).transpose(1, 2)).transpose(1, 2)))
        x = x + self.proj_bn(self.proj(h))
        x = x + self.fc2(self.lif(self.fc2_bn(self.fc1(self.lif(self.fc1_bn(x))))))
        z = self.lif(self.head_bn(x))
        return self.head(z.transpose(1, 2)).mean(1)


def _window(buf, frame):
    """[B, C, 2] buffer + newest frame [B, C] -> the k=3 window [B, C, 3] and the next buffer."""
    win = torch.cat([buf, frame.unsqueeze(-1)], -1)
    return win, win[..., 1:]


def _gate(ok, new, old):
    return torch.where(ok, new, old)


STEP_STATES = ["buf0", "buf1", "buf2", "buf3", "buf_rpe", "mem", "feat_sum", "count"]
SPIKING_STEP_STATES = ["buf0", "buf1", "buf2", "buf3", "buf_rpe", "c3_prev", "v_pe0", "v_pe1", "v_pe2",
                       "v_pe3", "v_prev", "v_u", "mem", "v_m", "v_h", "v_fc1", "v_fc2", "v_head",
                       "feat_sum", "count"]


def step_state_shapes(cfg: Config):
    c, hid = cfg.dim, cfg.dim * cfg.mlp_ratio
    s = {"buf0": [1, cfg.mel, 2], "buf1": [1, c, 2], "buf2": [1, c, 2], "buf3": [1, c, 2],
         "buf_rpe": [1, c, 2], "c3_prev": [1, c], "v_pe0": [1, c], "v_pe1": [1, c], "v_pe2": [1, c],
         "v_pe3": [1, c], "v_prev": [1, c], "v_u": [1, 1], "mem": [1, cfg.memory], "v_m": [1, cfg.memory],
         "v_h": [1, c], "v_fc1": [1, c], "v_fc2": [1, hid], "v_head": [1, c], "feat_sum": [1, c],
         "count": [1]}
    names = SPIKING_STEP_STATES if cfg.spiking else STEP_STATES
    return {n: s[n] for n in names}


def valid_mask(t, n):
    """valid[L] (L = 0..4): frame t−L, the newest entering conv L (the RPE conv for L = 4), is in
    [0, n); valid[5]: frame t−5, the one the block and head see, is in [0, n)."""
    return torch.tensor([1.0 if 0 <= t - k < n else 0.0 for k in range(6)])


class LMUFormerStep(nn.Module):
    """One frame per call of a `LMUFormer` (same weights). Inputs: x_t [1, mel], valid [6], then
    every state of STEP_STATES; outputs: logits [1, classes] (the prediction from the mean feature
    of frames 0..t−5), feat [1, C] (the block output of frame t−5), then every state, updated."""

    def __init__(self, seq: LMUFormer):
        super().__init__()
        self.s = seq

    def forward(self, x_t, valid, buf0, buf1, buf2, buf3, buf_rpe, mem, feat_sum, count):
        s = self.s
        a = x_t * valid[0]
        new = []
        for i, buf in enumerate([buf0, buf1, buf2, buf3]):
            win, nb = _window(buf, a)
            new.append(nb)
            a = s.bns[i](F.relu(F.conv1d(win, s.convs[i].weight)))[..., 0] * valid[i + 1]
        win, nb_rpe = _window(buf_rpe, a)
        z = win[..., 1] + F.conv1d(win, s.rpe.weight)[..., 0]
        u = F.relu(s.w_u(z))
        m = mem @ s.mem.A.T + u * s.mem.B
        h = F.relu(s.w_h(torch.cat([m, z], -1)))
        z1 = z + s.proj_bn(s.proj(h.unsqueeze(-1)))[..., 0]
        z2 = z1 + F.relu(s.fc2_bn(s.fc2(F.gelu(s.fc1_bn(s.fc1(z1.unsqueeze(-1)))))))[..., 0]
        ok = valid[5] > 0
        mem_o = _gate(ok, m, mem)
        sum_o = _gate(ok, feat_sum + z2, feat_sum)
        count_o = count + valid[5:6]
        logits = s.head(sum_o / torch.clamp(count_o, min=1.0))
        return (logits, z2, *new, nb_rpe, mem_o, sum_o, count_o)


class SpikingLMUFormerStep(nn.Module):
    """One frame per call of a `SpikingLMUFormer` (same weights); inputs and outputs as
    `LMUFormerStep` with SPIKING_STEP_STATES. feat is the block output z2 of frame t−5; the head
    averages the head LIF's spikes."""

    def __init__(self, seq: SpikingLMUFormer):
        super().__init__()
        self.s = seq

    def forward(self, x_t, valid, buf0, buf1, buf2, buf3, buf_rpe, c3_prev, v_pe0, v_pe1, v_pe2, v_pe3,
                v_prev, v_u, mem, v_m, v_h, v_fc1, v_fc2, v_head, feat_sum, count):
        s, tau = self.s, self.s.cfg.tau
        a = x_t * valid[0]
        bufs, vs_o = [], []
        for i, (buf, v) in enumerate(zip([buf0, buf1, buf2, buf3], [v_pe0, v_pe1, v_pe2, v_pe3])):
            win, nb = _window(buf, a)
            bufs.append(nb)
            c3 = F.conv1d(win, s.convs[i].weight)[..., 0]
            ok = valid[i + 1] > 0
            v_new, spk = lif_step(s.bns[i](c3), v, tau, 1.0)
            vs_o.append(_gate(ok, v_new, v))
            a = spk * valid[i + 1]
        win, nb_rpe = _window(buf_rpe, a)
        z = c3_prev + F.conv1d(win, s.rpe.weight)[..., 0]
        ok = valid[5] > 0
        vp, sp = lif_step(s.prev_bn(z), v_prev, tau, 0.5)
        vu, su = lif_step(s.bn_u(s.w_u(sp)), v_u, tau, 1.0)
        m = mem @ s.mem.A.T + su * s.mem.B
        vm, sm = lif_step(s.bn_m(m), v_m, tau, 1.0)
        vh, sh = lif_step(s.bn_h(s.w_h(torch.cat([sm, sp], -1))), v_h, tau, 1.0)
        z1 = z + s.proj_bn(s.proj(sh.unsqueeze(-1)))[..., 0]
        v1, s1 = lif_step(s.fc1_bn(z1), v_fc1, tau, 1.0)
        v2, s2 = lif_step(s.fc2_bn(s.fc1(s1.unsqueeze(-1))[..., 0]), v_fc2, tau, 1.0)
        z2 = z1 + s.fc2(s2.unsqueeze(-1))[..., 0]
        vhd, shd = lif_step(s.head_bn(z2), v_head, tau, 1.0)
        sum_o = _gate(ok, feat_sum + shd, feat_sum)
        count_o = count + valid[5:6]
        logits = s.head(sum_o / torch.clamp(count_o, min=1.0))
        gated = [_gate(ok, n, o) for n, o in
                 [(vp, v_prev), (vu, v_u), (m, mem), (vm, v_m), (vh, v_h), (v1, v_fc1), (v2, v_fc2), (vhd, v_head)]]
        return (logits, z2, *bufs, nb_rpe, c3, *vs_o, *gated, sum_o, count_o)


def stream(step: nn.Module, cfg: Config, x):
    """Runs a step module over clip x [1, N, mel] (N + 5 calls from zero state); returns the
    per-call inputs (x_t, valid) and the per-call logits and features."""
    n = x.shape[1]
    state = [torch.zeros(s) for s in step_state_shapes(cfg).values()]
    xs, valids, logits, feats = [], [], [], []
    for t in range(n + 5):
        x_t = x[:, t] if t < n else torch.zeros(1, cfg.mel)
        v = valid_mask(t, n)
        out = step(x_t, v, *state)
        xs.append(x_t)
        valids.append(v)
        logits.append(out[0])
        feats.append(out[1])
        state = list(out[2:])
    return xs, valids, logits, feats


if __name__ == "__main__":
    for name, make in VARIANTS.items():
        cfg = make()
        net = SpikingLMUFormer(cfg) if cfg.spiking else LMUFormer(cfg)
        n = sum(p.numel() for p in net.parameters())
        print(f"{name}: {n:,} parameters, {cfg.seq} frames x {cfg.mel} mel bins")

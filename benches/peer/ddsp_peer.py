"""PyTorch peer of the `ddsp` crate's training step, for side-by-side timing and as a
quality reference.

One file, mirroring magenta/ddsp (github.com/magenta/ddsp) function by function:

- Inputs: `training/preprocessing.py` `scale_f0_hz` (hz_to_midi(f0) / 127, with
  `core.hz_to_midi` mapping f <= 0 to 0) and `scale_db` (ld / 80 + 1); the crate adds voicing
  in [0, 1] as a third input.
- Decoder: `training/decoders.py` `RnnFcDecoder` with `training/nn.py` `FcStack` / `Fc`
  (Dense -> LayerNormalization -> leaky_relu, alpha 0.2) and `Rnn('gru')` (Keras GRU,
  reset_after=True, which is PyTorch's nn.GRU form), then one Dense split into
  amplitude | harmonic distribution | noise magnitudes (`nn.split_to_dict`).
- Scaling: `synths.Harmonic.get_controls` (`core.exp_sigmoid`, `core.normalize_harmonics`)
  and `synths.FilteredNoise.get_controls` (exp_sigmoid(x + initial_bias), bias -5).
- Harmonic synth: `core.harmonic_synthesis` -> `core.resample` ('linear' is
  tf.compat.v1.image.resize BILINEAR, align_corners=False, which is frame i at sample i*hop,
  the last frame held; 'window' is `core.upsample_with_windows`) -> `core.oscillator_bank`
  (`remove_above_nyquist` per sample, phase = cumsum(2 pi f / sr), inclusive).
- Filtered noise: `synths.FilteredNoise.get_signal` -> `core.frequency_filter` ->
  `core.frequency_impulse_response` (irfft, `apply_window_to_impulse_response` with a
  periodic Hann window) -> `core.fft_convolve` (non-overlapping frames, FFT multiply,
  overlap-add, `crop_and_compensate_delay`).
- Loss: `losses.SpectralLoss` (fft_sizes 2048..64, L1, mag_weight 1, logmag_weight 1) over
  `spectral_ops.compute_mag` (tf.signal.stft, periodic Hann, hop n/4, pad_end=True).
- Optimiser: `training/trainers.py` `Trainer`: Keras Adam and `tf.clip_by_global_norm(3.0)`.
- Initialisation: Keras defaults (Dense glorot_uniform / zeros; GRU glorot_uniform input
  kernel, orthogonal recurrent kernel, zero biases; LayerNormalization gamma 1, beta 0).

Differences from the crate / magenta are parameters here (see `PeerConfig`): Keras'
LayerNormalization epsilon is 1e-3 (`layer_norm_eps`; Burn's default, which the crate uses, is
1e-5); magenta's noise delay compensation is `(ir_size - 1) // 2 - 1 = 62` samples
(`noise_delay`; the crate uses ir_size / 2 = 64); the log term is log(x + eps) as the crate
trains (`log_mode`: 'plus'; 'max' is log(max(x, eps)); 'where' is magenta's `core.safe_log`,
log(x) with x <= 0 replaced by eps).

Use: `python ddsp_peer.py --selftest`; `python ddsp_peer.py --time --steps 10`;
`train_peer(...)` / `render(...)` from another script.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

HERE = Path(__file__).resolve().parent
DEFAULT_CONFIG = HERE / "step_config.json"
F0_RANGE = 127.0  # spectral_ops.F0_RANGE
DB_RANGE = 80.0  # core.DB_RANGE
NOISE_BIAS = -5.0  # FilteredNoise.initial_bias


# ----------------------------------------------------------------------------- config
@dataclasses.dataclass
class PeerConfig:
    sample_rate: int = 16000
    chunk_size: int = 16000
    frame_hop: int = 64
    layers_per_stack: int = 3
    rnn_channels: int = 64
    harmonics: int = 60
    noise_bands: int = 65
    amp_resample: str = "linear"  # 'linear' | 'window'
    batch_size: int = 4
    lr: float = 3e-4
    grad_clip: float = 3.0
    fft_sizes: tuple = (2048, 1024, 512, 256, 128, 64)
    mag_weight: float = 1.0
    logmag_weight: float = 1.0
    loss_type: str = "l1"  # 'l1' | 'l2'
    log_eps: float = 1e-5
    hop_divisor: int = 4
    # Not in the crate's config; defaults as described in the module docstring.
    log_mode: str = "plus"  # 'plus' log(x+eps) | 'max' log(max(x,eps)) | 'where' (magenta)
    layer_norm_eps: float = 1e-3  # Keras LayerNormalization default (magenta)
    noise_delay: int = -1  # -1: ir_size // 2 (the crate); magenta: ir_size // 2 - 2
    adam_eps: float = 1e-7  # Keras Adam default

    @property
    def frames(self) -> int:
        return self.chunk_size // self.frame_hop

    @property
    def ir_size(self) -> int:
        return 2 * (self.noise_bands - 1)


# JSON keys (camelCase, as the crate's Config) that must hold these values when present,
# because the peer implements only this configuration.
_REQUIRED = {
    "decoderBackbone": "gru",
    "harmonicHeadMode": "exp-sigmoid",
    "reverb": "off",
    "lrSchedule": "none",
    "gradClipMode": "global",
    "spectralWarmupSteps": 0,
    "spectralRampSteps": 0,
    "mseWeight": 0.0,
    "deltaFeatures": False,
    "controlSmoothing": "off",
    "lrWarmupSteps": 0,
    "gradAccumSteps": 1,
    "loudnessLossWeight": 0.0,
    "harmonicEntropyWeight": 0.0,
    "harmonicConcentrationWeight": 0.0,
}


def load_config(path=DEFAULT_CONFIG, **overrides) -> PeerConfig:
    """Read the crate's JSON config (camelCase keys); `overrides` are PeerConfig fields."""
    raw = json.loads(Path(path).read_text())
    bad = [f"{k}={raw[k]!r} (peer supports only {v!r})"
           for k, v in _REQUIRED.items() if k in raw and raw[k] != v]
    amp = raw.get("ampResample", "linear")
    if amp not in ("linear", "window"):
        bad.append(f"ampResample={amp!r} (peer supports 'linear', 'window')")
    mode = raw.get("spectralLossMode", "l1")
    if mode not in ("l1", "l2"):
        bad.append(f"spectralLossMode={mode!r} (peer supports 'l1', 'l2')")
    if bad:
        raise ValueError(f"{path}: unsupported by the PyTorch peer: " + "; ".join(bad))
    c = PeerConfig()
    keys = {"sampleRate": "sample_rate", "chunkSize": "chunk_size", "frameHop": "frame_hop",
            "layersPerStack": "layers_per_stack", "rnnChannels": "rnn_channels",
            "harmonics": "harmonics", "noiseBands": "noise_bands", "batchSize": "batch_size",
            "lr": "lr", "gradClip": "grad_clip", "spectralWeight": "mag_weight",
            "spectralLogmagWeight": "logmag_weight", "spectralLogEpsilon": "log_eps",
            "spectralHopDivisor": "hop_divisor"}
    for k, field in keys.items():
        if k in raw:
            setattr(c, field, type(getattr(c, field))(raw[k]))
    c.amp_resample, c.loss_type = amp, mode
    if "spectralWindows" in raw:
        c.fft_sizes = tuple(int(n) for n in raw["spectralWindows"])
    for k, v in overrides.items():
        if not hasattr(c, k):
            raise ValueError(f"unknown PeerConfig field {k!r}")
        setattr(c, k, v)
    if c.chunk_size % c.frame_hop:
        raise ValueError(f"chunkSize {c.chunk_size} is not a multiple of frameHop {c.frame_hop}")
    if float(raw.get("sampleRate", c.sample_rate)) != c.sample_rate:
        raise ValueError(f"sampleRate {raw['sampleRate']} is not an integer")
    return c


# ----------------------------------------------------------------------------- core
def exp_sigmoid(x, exponent=10.0, max_value=2.0, threshold=1e-7):
    """core.exp_sigmoid: max_value * sigmoid(x)**ln(exponent) + threshold."""
    return max_value * torch.sigmoid(x) ** math.log(exponent) + threshold


def hz_to_midi(f):
    """core.hz_to_midi: 12 log2(f / 440) + 69, and 0 where f <= 0."""
    midi = 12.0 * torch.log2(f.clamp_min(1e-10) / 440.0) + 69.0
    return torch.where(f <= 0.0, torch.zeros_like(midi), midi)


def normalize_harmonics(dist, f0, sample_rate):
    """core.normalize_harmonics: zero harmonics k*f0 >= sr/2, divide by the sum (>= 1e-7)."""
    k = torch.arange(1, dist.shape[-1] + 1, device=dist.device, dtype=dist.dtype)
    dist = dist * (f0[..., None] * k < sample_rate / 2.0)
    return dist / dist.sum(-1, keepdim=True).clamp_min(1e-7)


def upsample(x, hop, method="linear"):
    """core.resample with add_endpoint=True: [B, F, C] -> [B, F*hop, C].

    Sample i*hop + r is (1 - w[r]) x[i] + w[r] x[i+1] (the last frame held), with w = r/hop
    ('linear', tf.compat.v1.image.resize bilinear) or sin^2(pi r / 2 hop) ('window', the
    overlap-added Hann windows of core.upsample_with_windows).
    """
    b, f, c = x.shape
    t = torch.arange(hop, device=x.device, dtype=x.dtype) / hop
    w = t if method == "linear" else torch.sin(0.5 * math.pi * t) ** 2
    w = w[None, None, :, None]
    nxt = torch.cat([x[:, 1:], x[:, -1:]], dim=1)
    return (x[:, :, None, :] * (1.0 - w) + nxt[:, :, None, :] * w).reshape(b, f * hop, c)


def harmonic_synthesis(f0, harmonic_amplitudes, hop, sample_rate, amp_resample="linear"):
    """core.harmonic_synthesis + core.oscillator_bank.

    f0 [B, F] Hz, harmonic_amplitudes [B, F, K] (amplitude * distribution) -> [B, F*hop].
    The phase is accumulated in float64 and wrapped (the role of core.angular_cumsum).
    """
    k = torch.arange(1, harmonic_amplitudes.shape[-1] + 1, device=f0.device, dtype=f0.dtype)
    f0_up = upsample(f0[..., None], hop, "linear")[..., 0]  # [B, N]
    amps = upsample(harmonic_amplitudes, hop, amp_resample)  # [B, N, K]
    cycles = torch.cumsum(f0_up.detach().double() / sample_rate, dim=1)
    cycles = (cycles - torch.floor(cycles)).to(f0.dtype)  # [B, N] in [0, 1)
    harm = cycles[..., None] * k
    phase = 2.0 * math.pi * (harm - torch.floor(harm))
    audible = f0_up[..., None] * k < sample_rate / 2.0  # core.remove_above_nyquist
    return (amps * (torch.sin(phase) * audible)).sum(-1)


def frequency_impulse_response(magnitudes):
    """core.frequency_impulse_response, window_size 0: [B, F, M] -> [B, F, 2(M-1)].

    irfft (zero phase), then centred (time 0 at tap L/2) and multiplied by a periodic Hann
    window of L taps: apply_window_to_impulse_response's fftshift(fftshift(w) * ir).
    """
    ir = torch.fft.irfft(magnitudes.to(torch.complex64 if magnitudes.dtype == torch.float32
                                       else torch.complex128))
    n = ir.shape[-1]
    window = torch.hann_window(n, periodic=True, device=ir.device, dtype=ir.dtype)
    return torch.roll(ir, n // 2, dims=-1) * window


def fft_convolve(audio, irs, delay):
    """core.fft_convolve, padding 'same': audio [B, N], irs [B, F, L] -> [B, N].

    Frame f of N/F samples is convolved with irs[:, f] (power-of-2 FFT), the frames are
    overlap-added and the result cropped to N samples starting at `delay`.
    """
    b, n = audio.shape
    _, f, ir_size = irs.shape
    hop = n // f
    if hop * f != n:
        raise ValueError(f"{n} samples do not split into {f} frames")
    fft = 1 << (hop + ir_size - 2).bit_length()  # next power of 2 >= hop + L - 1
    frames = audio.reshape(b, f, hop)
    y = torch.fft.irfft(torch.fft.rfft(frames, fft) * torch.fft.rfft(irs, fft), fft)
    total = (f - 1) * hop + fft
    out = F.fold(y.transpose(1, 2), output_size=(1, total), kernel_size=(1, fft),
                 stride=(1, hop)).reshape(b, total)
    return out[:, delay:delay + n]


def filtered_noise(magnitudes, n_samples, delay=-1, generator=None):
    """synths.FilteredNoise.get_signal: uniform [-1, 1) noise through core.frequency_filter."""
    b = magnitudes.shape[0]
    noise = torch.rand(b, n_samples, generator=generator, device=magnitudes.device,
                       dtype=magnitudes.dtype) * 2.0 - 1.0
    irs = frequency_impulse_response(magnitudes)
    return fft_convolve(noise, irs, irs.shape[-1] // 2 if delay < 0 else delay)


def magnitude_spectrogram(audio, n_fft, hop):
    """spectral_ops.compute_mag: |tf.signal.stft(pad_end=True)|, periodic Hann.

    Frames start at sample 0; frames = ceil(N / hop); zero-padded to (frames-1)*hop + n_fft.
    Returns [B, bins, frames].
    """
    n = audio.shape[-1]
    frames = -(-n // hop)
    padded = (frames - 1) * hop + n_fft
    if padded > n:
        audio = F.pad(audio, (0, padded - n))
    window = torch.hann_window(n_fft, periodic=True, device=audio.device, dtype=audio.dtype)
    s = torch.stft(audio, n_fft, hop_length=hop, win_length=n_fft, window=window,
                   center=False, return_complex=True)
    return s.abs()


def _log(x, eps, mode):
    if mode == "plus":
        return torch.log(x + eps)
    if mode == "max":
        return torch.log(x.clamp_min(eps))
    if mode == "where":  # core.safe_log
        return torch.log(torch.where(x <= 0.0, torch.full_like(x, eps), x))
    raise ValueError(f"log_mode {mode!r}")


def spectral_loss(target, audio, cfg: PeerConfig):
    """losses.SpectralLoss: sum over fft sizes of mag_weight * mean|St - Sp| +
    logmag_weight * mean|log St - log Sp| (squared differences for 'l2')."""
    diff = (lambda a, b: (a - b).abs().mean()) if cfg.loss_type == "l1" else \
        (lambda a, b: ((a - b) ** 2).mean())
    loss = audio.new_zeros(())
    for n_fft in cfg.fft_sizes:
        hop = max(1, n_fft // cfg.hop_divisor)
        st = magnitude_spectrogram(target, n_fft, hop)
        sp = magnitude_spectrogram(audio, n_fft, hop)
        if cfg.mag_weight > 0:
            loss = loss + cfg.mag_weight * diff(st, sp)
        if cfg.logmag_weight > 0:
            loss = loss + cfg.logmag_weight * diff(_log(st, cfg.log_eps, cfg.log_mode),
                                                   _log(sp, cfg.log_eps, cfg.log_mode))
    return loss


# ----------------------------------------------------------------------------- model
def _dense(d_in, d_out):
    """tfkl.Dense: glorot_uniform kernel, zero bias."""
    lin = nn.Linear(d_in, d_out)
    nn.init.xavier_uniform_(lin.weight)
    nn.init.zeros_(lin.bias)
    return lin


class FcStack(nn.Module):
    """nn.FcStack: layers x [Dense(ch) -> LayerNormalization -> leaky_relu(0.2)]."""

    def __init__(self, d_in, ch, layers, eps):
        super().__init__()
        self.dense = nn.ModuleList(_dense(d_in if i == 0 else ch, ch) for i in range(layers))
        self.norms = nn.ModuleList(nn.LayerNorm(ch, eps=eps) for _ in range(layers))

    def forward(self, x):
        for dense, norm in zip(self.dense, self.norms):
            x = F.leaky_relu(norm(dense(x)), 0.2)
        return x


class RnnFcDecoder(nn.Module):
    """decoders.RnnFcDecoder (ch = rnn_channels) with output_splits
    (amps 1, harmonic_distribution K, noise_magnitudes M), inputs (f0, ld, voicing)."""

    N_INPUTS = 3

    def __init__(self, cfg: PeerConfig):
        super().__init__()
        ch, layers, eps = cfg.rnn_channels, cfg.layers_per_stack, cfg.layer_norm_eps
        self.splits = (1, cfg.harmonics, cfg.noise_bands)
        self.input_stacks = nn.ModuleList(FcStack(1, ch, layers, eps)
                                          for _ in range(self.N_INPUTS))
        self.gru = nn.GRU(self.N_INPUTS * ch, cfg.rnn_channels, batch_first=True)
        # Keras GRU: glorot_uniform kernel [in, 3u], orthogonal recurrent kernel [u, 3u]
        # (orthonormal rows; PyTorch's [3u, u] transpose has orthonormal columns), zero biases.
        nn.init.xavier_uniform_(self.gru.weight_ih_l0)
        nn.init.orthogonal_(self.gru.weight_hh_l0)
        nn.init.zeros_(self.gru.bias_ih_l0)
        nn.init.zeros_(self.gru.bias_hh_l0)
        self.out_stack = FcStack(cfg.rnn_channels + self.N_INPUTS * ch, ch, layers, eps)
        self.dense_out = _dense(ch, sum(self.splits))

    def forward(self, f0_scaled, ld_scaled, voicing):
        feats = [s(x[..., None]) for s, x in zip(self.input_stacks,
                                                  (f0_scaled, ld_scaled, voicing))]
        stacked = torch.cat(feats, dim=-1)
        rnn, _ = self.gru(stacked)
        x = self.out_stack(torch.cat([rnn, stacked], dim=-1))
        return torch.split(self.dense_out(x), self.splits, dim=-1)


class DDSPPeer(nn.Module):
    """Decoder -> get_controls -> Harmonic + FilteredNoise (no reverb)."""

    def __init__(self, cfg: PeerConfig):
        super().__init__()
        self.cfg = cfg
        self.decoder = RnnFcDecoder(cfg)

    def controls(self, f0_hz, loudness_db, voicing):
        """Scaled controls: amplitude [B, F, 1], distribution [B, F, K], noise [B, F, M]."""
        f0_scaled = hz_to_midi(f0_hz) / F0_RANGE  # preprocessing.scale_f0_hz
        ld_scaled = loudness_db / DB_RANGE + 1.0  # preprocessing.scale_db
        amp, dist, noise = self.decoder(f0_scaled, ld_scaled, voicing)
        amp = exp_sigmoid(amp)
        dist = normalize_harmonics(exp_sigmoid(dist), f0_hz, self.cfg.sample_rate)
        noise = exp_sigmoid(noise + NOISE_BIAS)
        return amp, dist, noise

    def forward(self, f0_hz, loudness_db, voicing, generator=None):
        """Frame-rate features [B, F] -> audio [B, F * hop]."""
        c = self.cfg
        amp, dist, noise = self.controls(f0_hz, loudness_db, voicing)
        harmonic = harmonic_synthesis(f0_hz, amp * dist, c.frame_hop, c.sample_rate,
                                      c.amp_resample)
        return harmonic + filtered_noise(noise, f0_hz.shape[1] * c.frame_hop, c.noise_delay,
                                         generator)


def make_optimizer(model, cfg: PeerConfig):
    """Adam as Keras (eps 1e-7). Keras adds eps to sqrt(v) before bias correction; PyTorch
    after, so Keras' eps is PyTorch's eps * sqrt(1 - beta2^t) (a negligible difference)."""
    return torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.9, 0.999),
                            eps=cfg.adam_eps)


def train_step(model, opt, batch, generator=None):
    """One step: forward, spectral loss, backward, global-norm clip, Adam. Returns the loss."""
    f0, ld, voicing, audio = batch
    opt.zero_grad(set_to_none=True)
    loss = spectral_loss(audio, model(f0, ld, voicing, generator), model.cfg)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), model.cfg.grad_clip)
    opt.step()
    return loss.detach()


# ----------------------------------------------------------------------------- helpers
def random_batch(cfg: PeerConfig, device="cpu", seed=0):
    """Random but plausible (f0, loudness, voicing, audio), the ranges the crate's bench uses:
    audio U[-0.5, 0.5), f0 U[100, 1000) Hz, loudness U[-60, 0) dB, voicing U[0, 1)."""
    g = torch.Generator().manual_seed(seed)
    b, f, n = cfg.batch_size, cfg.frames, cfg.chunk_size
    u = lambda shape, lo, hi: (torch.rand(shape, generator=g) * (hi - lo) + lo).to(device)
    return u((b, f), 100.0, 1000.0), u((b, f), -60.0, 0.0), u((b, f), 0.0, 1.0), \
        u((b, n), -0.5, 0.5)


def time_steps(cfg: PeerConfig, warmup=2, steps=10, device="cpu", seed=0):
    """Time `steps` training steps after `warmup`, on one fixed random batch.

    Returns (step times in seconds, peak CUDA memory in bytes or None, losses)."""
    torch.manual_seed(seed)
    dev = torch.device(device)
    model = DDSPPeer(cfg).to(dev)
    opt = make_optimizer(model, cfg)
    batch = random_batch(cfg, dev, seed)
    gen = torch.Generator(device=dev).manual_seed(seed)
    cuda = dev.type == "cuda"
    times, losses = [], []
    for i in range(warmup + steps):
        if i == warmup and cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        loss = float(train_step(model, opt, batch, gen))  # .item() waits for the step
        if cuda:
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
        losses.append(loss)
    peak = torch.cuda.max_memory_allocated() if cuda else None
    return times, peak, losses


# ----------------------------------------------------------------------------- reuse
def train_peer(f0_hz, loudness_db, voicing, audio, steps, seed=0, cfg=None, device="cpu",
               log_every=0):
    """Train a fresh peer on chunked arrays for `steps` steps; returns (model, losses).

    f0_hz, loudness_db, voicing: [n_chunks, frames]; audio: [n_chunks, frames * frameHop].
    Each step draws `cfg.batch_size` chunks at random (without replacement within a step).
    `cfg` defaults to step_config.json with chunk_size taken from `audio`.
    """
    audio = np.asarray(audio, dtype=np.float32)
    arrays = [np.asarray(a, dtype=np.float32) for a in (f0_hz, loudness_db, voicing)]
    if cfg is None:
        cfg = load_config(chunk_size=audio.shape[1])
    if any(a.shape != (audio.shape[0], cfg.frames) for a in arrays) or \
            audio.shape[1] != cfg.chunk_size:
        raise ValueError(f"expected features [n, {cfg.frames}] and audio [n, {cfg.chunk_size}]")
    torch.manual_seed(seed)
    dev = torch.device(device)
    model = DDSPPeer(cfg).to(dev)
    opt = make_optimizer(model, cfg)
    data = [torch.from_numpy(a).to(dev) for a in (*arrays, audio)]
    rng = np.random.default_rng(seed)
    gen = torch.Generator(device=dev).manual_seed(seed)
    bs = min(cfg.batch_size, audio.shape[0])
    losses = []
    model.train()
    for step in range(steps):
        idx = torch.from_numpy(rng.choice(audio.shape[0], bs, replace=False)).to(dev)
        losses.append(float(train_step(model, opt, [d[idx] for d in data], gen)))
        if log_every and (step + 1) % log_every == 0:
            print(f"step {step + 1}: loss {losses[-1]:.4f}", flush=True)
    return model, losses


@torch.no_grad()
def render(model, f0_hz, loudness_db, voicing, seed=0):
    """Audio [n, frames * hop] (numpy) from features [n, frames], with seeded noise."""
    dev = next(model.parameters()).device
    t = [torch.as_tensor(np.asarray(a, dtype=np.float32), device=dev)
         for a in (f0_hz, loudness_db, voicing)]
    gen = torch.Generator(device=dev).manual_seed(seed)
    return model(*t, generator=gen).cpu().numpy()


# ----------------------------------------------------------------------------- self-test
def selftest():
    torch.manual_seed(0)
    def ok(name, cond, detail=""):
        print(f"  {'ok  ' if cond else 'FAIL'} {name}: {detail}", flush=True)
        return bool(cond)
    results = []

    # exp_sigmoid = 2 sigmoid(x)^ln 10 + 1e-7.
    xs = [-3.0, 0.0, 1.5, 40.0, -200.0]
    expect = [2.0 * (1.0 / (1.0 + math.exp(-x))) ** math.log(10.0) + 1e-7 for x in xs]
    got = exp_sigmoid(torch.tensor(xs, dtype=torch.float64)).tolist()
    results.append(ok("exp_sigmoid", all(abs(g - e) <= 1e-12 + 1e-9 * e
                                         for g, e in zip(got, expect)),
                      f"x=0 -> {got[1]:.6f} (2*0.5^ln10+1e-7 = {expect[1]:.6f}); "
                      f"x=40 -> {got[3]:.4f}; x=-200 -> {got[4]:.1e}"))

    # Harmonic synth: constant 440 Hz, amplitude 0.5 all on harmonic 1 -> 0.5 sin(2 pi 440 t).
    sr, hop, frames, k = 16000, 64, 250, 60
    f0 = torch.full((1, frames), 440.0)
    dist = torch.zeros(1, frames, k)
    dist[..., 0] = 1.0
    y = harmonic_synthesis(f0, 0.5 * dist, hop, sr)[0].double()
    n = torch.arange(1, frames * hop + 1, dtype=torch.float64)  # inclusive cumsum
    ref = 0.5 * torch.sin(2 * math.pi * 440.0 * n / sr)
    err = (y - ref).abs().max().item()
    spec = torch.fft.rfft(y * torch.hann_window(len(y), dtype=torch.float64)).abs()
    peak_hz = spec.argmax().item() * sr / len(y)
    results.append(ok("harmonic 440 Hz sine", err < 1e-4 and abs(peak_hz - 440.0) < 1.01
                      and abs(y.abs().max().item() - 0.5) < 1e-3,
                      f"max|y - 0.5 sin(2pi 440 n/sr)| = {err:.2e}, FFT peak {peak_hz:.1f} Hz, "
                      f"peak amplitude {y.abs().max().item():.4f}"))
    # ... and the Nyquist mask: 60 harmonics of 440 Hz, only k*440 < 8000 (k <= 18) sound.
    d = normalize_harmonics(torch.ones(1, frames, k), f0, sr)
    results.append(ok("normalize_harmonics", (d[0, 0, :18] - 1 / 18).abs().max() < 1e-6
                      and d[0, 0, 18:].abs().max() == 0, "18 of 60 harmonics below Nyquist"))

    # Filtered noise with all-ones magnitudes: irfft(1) is a unit impulse, the window is 1 at
    # its centre, and the delay compensation (64) undoes the centring -> noise unchanged.
    g = torch.Generator().manual_seed(1)
    mags = torch.ones(2, frames, 65)
    out = filtered_noise(mags, frames * hop, generator=g)
    noise = torch.rand(2, frames * hop, generator=torch.Generator().manual_seed(1)) * 2 - 1
    err = (out - noise).abs().max().item()
    out62 = filtered_noise(mags, frames * hop, delay=62, generator=torch.Generator()
                           .manual_seed(1))
    shift_err = (out62[:, 2:] - noise[:, :-2]).abs().max().item()
    results.append(ok("noise filter, flat magnitudes", err < 1e-5 and shift_err < 1e-5,
                      f"max|out - noise| = {err:.2e}; with magenta's delay 62 the output is "
                      f"the noise delayed 2 samples (err {shift_err:.2e})"))

    # Time-varying FIR against direct convolution (numpy) of each frame, overlap-added.
    mags = torch.rand(1, 8, 65, dtype=torch.float64)
    x = torch.rand(1, 8 * hop, dtype=torch.float64) * 2 - 1
    irs = frequency_impulse_response(mags)
    direct = np.zeros(7 * hop + hop + 127)
    for i in range(8):
        direct[i * hop:i * hop + hop + 127] += np.convolve(x[0, i * hop:(i + 1) * hop].numpy(),
                                                           irs[0, i].numpy())
    err = np.abs(fft_convolve(x, irs, 64)[0].numpy() - direct[64:64 + 8 * hop]).max()
    # ... and linear upsampling against np.interp at sample i / hop, held after the last frame.
    fr = torch.rand(1, 8, 1, dtype=torch.float64)
    up = upsample(fr, hop)[0, :, 0].numpy()
    interp = np.interp(np.arange(8 * hop) / hop, np.arange(8), fr[0, :, 0].numpy())
    err_up = np.abs(up - interp).max()
    results.append(ok("FIR convolution, upsampling", err < 1e-12 and err_up < 1e-12,
                      f"fft_convolve vs np.convolve {err:.1e}, upsample vs np.interp {err_up:.1e}"))

    # Spectral loss: 0 for a signal with itself, > 0 otherwise; tf pad_end frame counts.
    cfg = PeerConfig()
    a = torch.rand(2, 16000) - 0.5
    l0 = spectral_loss(a, a, cfg).item()
    l1 = spectral_loss(a, a * 0.5, cfg).item()
    shapes = [tuple(magnitude_spectrogram(a, nf, nf // 4).shape[1:]) for nf in (2048, 64)]
    results.append(ok("spectral loss", l0 == 0.0 and l1 > 0 and shapes == [(1025, 32),
                                                                            (33, 1000)],
                      f"L(x, x) = {l0}, L(x, x/2) = {l1:.3f}, frames (2048: {shapes[0][1]}, "
                      f"64: {shapes[1][1]}) = ceil(16000 / hop)"))

    # Initialisation: orthogonal recurrent kernel, zero biases, glorot range.
    m = DDSPPeer(PeerConfig(rnn_channels=32))
    w = m.decoder.gru.weight_hh_l0.detach()
    orth = (w.T @ w - torch.eye(32)).abs().max().item()
    lim = math.sqrt(6.0 / (32 + 1))
    dense0 = m.decoder.input_stacks[0].dense[0].weight.abs().max().item()
    results.append(ok("init", orth < 1e-5 and dense0 <= lim
                      and m.decoder.gru.bias_hh_l0.abs().max() == 0,
                      f"|W_hh^T W_hh - I| = {orth:.1e}, first Dense |w| <= {lim:.3f}"))

    # Training lowers the loss on a fixed batch: target = a harmonic tone with noise.
    cfg = PeerConfig(rnn_channels=32, batch_size=2, chunk_size=4000, lr=3e-3)
    torch.manual_seed(0)
    f0 = torch.linspace(200.0, 400.0, cfg.frames).repeat(2, 1)
    ld = torch.full((2, cfg.frames), -20.0)
    vo = torch.ones(2, cfg.frames)
    d = torch.zeros(2, cfg.frames, cfg.harmonics)
    d[..., :5] = torch.tensor([1.0, 0.5, 0.25, 0.12, 0.06])
    target = harmonic_synthesis(f0, 0.3 * d, cfg.frame_hop, cfg.sample_rate)
    target = target + 0.01 * (torch.rand(target.shape) * 2 - 1)
    model = DDSPPeer(cfg)
    opt = make_optimizer(model, cfg)
    gen = torch.Generator().manual_seed(0)
    losses = [float(train_step(model, opt, (f0, ld, vo, target), gen)) for _ in range(20)]
    results.append(ok("20 training steps lower the loss", sum(losses[-3:]) / 3 < 0.8 * losses[0],
                      f"loss {losses[0]:.3f} -> {losses[-1]:.3f}"))
    print(f"{sum(results)} passed, {len(results) - sum(results)} failed")
    return all(results)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--selftest", action="store_true")
    p.add_argument("--time", action="store_true", help="time the training step")
    p.add_argument("--config", default=str(DEFAULT_CONFIG))
    p.add_argument("--rnn-channels", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--chunk-size", type=int)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--threads", type=int)
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.selftest:
        return 0 if selftest() else 1
    if args.time:
        over = {k: v for k, v in (("rnn_channels", args.rnn_channels),
                                  ("batch_size", args.batch_size),
                                  ("chunk_size", args.chunk_size)) if v}
        cfg = load_config(args.config, **over)
        times, peak, _ = time_steps(cfg, args.warmup, args.steps, args.device)
        print(f"median {statistics.median(times) * 1e3:.1f} ms over {len(times)} steps"
              + (f", peak {peak / 2**20:.0f} MiB" if peak else ""))
        return 0
    p.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Typed training configuration with two presets: ``paper`` (256x256, Table 3's layers) and
``tiny`` (64x64, narrow layers: CPU tests and smoke runs). A YAML file may start from a preset
(``preset: tiny``) and override any field; the resolved configuration is saved with each run."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mf2.errors import UsageError
from mf2.yamlsafe import load_yaml, shown

HG_PIXEL_LOSSES = ("l1", "l2", "psnr")  # the hourglass stage's pixel losses (LossConfig.hg_pixel)
# step 1's networks (TrainConfig.restorer; mf2.models.archs) and how a user is told of them
RESTORER_NAMES = {"hourglass": "hourglass", "fullres": "full-resolution CNN"}
RESTORERS = tuple(RESTORER_NAMES)
HOURGLASS_HEADS = ("linear", "kernel")  # HourglassConfig.head (mf2.models.archs.hourglass)

# A layer: (kernel, out channels, stride, batch norm); decoder layers add the keep probability
# of dropout (the paper's Table 3 gives it as "the probability that this layer is kept").
Layer = tuple[int, int, int, bool]
DecLayer = tuple[int, int, int, bool, float]

PAPER_ENCODER: list[Layer] = [
    (4, 64, 1, False),
    (4, 128, 2, True),
    (4, 256, 2, True),
    (4, 512, 2, True),
    (4, 512, 2, True),
    (4, 512, 2, True),
    (4, 512, 2, True),
    (1, 256, 2, True),
]
PAPER_DECODER: list[DecLayer] = [
    (1, 1024, 2, True, 0.5),
    (4, 512, 2, True, 0.5),
    (4, 512, 2, True, 0.5),
    (4, 512, 2, True, 1.0),
    (4, 256, 2, True, 1.0),
    (4, 128, 2, True, 1.0),
    (4, 64, 2, True, 1.0),
    (4, 3, 1, False, 1.0),
]
TINY_ENCODER: list[Layer] = [
    (4, 8, 1, False),
    (4, 16, 2, True),
    (4, 32, 2, True),
    (4, 32, 2, True),
    (4, 32, 2, True),
    (4, 32, 2, True),
    (4, 32, 1, True),
    (1, 16, 1, True),
]
TINY_DECODER: list[DecLayer] = [
    (1, 64, 1, True, 0.5),
    (4, 32, 1, True, 0.5),
    (4, 32, 2, True, 0.5),
    (4, 32, 2, True, 1.0),
    (4, 32, 2, True, 1.0),
    (4, 16, 2, True, 1.0),
    (4, 8, 2, True, 1.0),
    (4, 3, 1, False, 1.0),
]
# small: 128x128 on a 2-core CPU. The paper's layout at half the size and a quarter to a half of
# its widths, with nothing at full resolution but the last transposed conv: the first encoder
# layer strides (64x64) and the decoder ends with a stride-2 transposed conv. Convs at 128x128
# were measured to take 2/3 of a cGAN step on a CPU; this layout trains 2.2x faster (13.9 against
# 6.3 images/s). The code is 2x2, as the paper's at 256; three U-Net skips at 64, 32 and 8 px.
SMALL_ENCODER: list[Layer] = [
    (4, 32, 2, False),
    (4, 64, 2, True),
    (4, 128, 2, True),
    (4, 128, 2, True),
    (4, 128, 2, True),
    (4, 128, 1, True),
    (4, 128, 1, True),
    (1, 128, 2, True),
]
SMALL_DECODER: list[DecLayer] = [
    (1, 256, 2, True, 0.5),
    (4, 128, 2, True, 0.5),
    (4, 128, 2, True, 0.5),
    (4, 128, 2, True, 1.0),
    (4, 64, 2, True, 1.0),
    (4, 32, 1, True, 1.0),
    (4, 32, 1, True, 1.0),
    (4, 3, 2, False, 1.0),
]


@dataclass(frozen=True)
class HourglassConfig:
    stacks: int = 2
    features: int = 128
    depth: int = 4  # downsamplings inside each hourglass
    # newell: Newell's strided stem, hourglasses at 1/4 resolution, predictions back at full
    # resolution (mf2 >= 0.5); full: hourglasses at full resolution (older runs' checkpoints)
    stem: str = "newell"
    # code values: a prediction's change to the input is soft-thresholded by this much
    # (mf2.models.archs.space.dead_zone); 0: off, as in the paper
    dead_zone: float = 0.0
    # the last stack's head: linear (a sub-pixel conv: a fixed filter of the input's pixels plus
    # a correction from the features) or kernel (a kernel x kernel filter of the input per 4x4
    # block, predicted from the features, then the same correction; archs.hourglass.KernelHead)
    head: str = "linear"
    kernel: int = 5
    # the stem also sees the exposures just before and after the blurry frame (simulate
    # --neighbours; mf2 deblur: a video's neighbouring frames), each replaced by the blurry
    # frame itself where a pair or an input has none (photos, a clip's first frame). Why: one
    # blurry frame does not say which way the face moved; bench/temporal.py measured +0.87 dB on
    # moving test faces with them against +0.07 without, with the same network and steps.
    neighbours: bool = False

    @property
    def downsampling(self) -> int:
        return (4 if self.stem == "newell" else 1) * 2**self.depth


@dataclass(frozen=True)
class FullResConfig:
    """Step 1's network when ``restorer`` is ``fullres`` (mf2.models.archs.fullres)."""

    features: int = 32
    layers: int = 8  # 3x3 convolutions, all at the input's resolution
    dead_zone: float = 0.0  # as HourglassConfig.dead_zone


@dataclass(frozen=True)
class CganConfig:
    encoder: tuple = tuple(PAPER_ENCODER)
    decoder: tuple = tuple(PAPER_DECODER)
    residual_encoder: tuple = (1, 3, 5)  # 1-based: these layers' outputs skip two layers
    residual_decoder: tuple = (1, 3)
    unet_skips: tuple = ((2, 6), (4, 4))  # (encoder layer, decoder layer): concat after that decoder layer
    disc_channels: tuple = (64, 128, 256, 512)  # then a 1-channel layer: 5 layers
    latent_match: float = 0.0  # RoCGAN-style L1 between the pathways' codes; off as in the paper
    # Table 4's ablations: condition_on_hg false is cGAN-noHG (G_bl sees the blurry image alone);
    # two_pathway false is HG-vanilla-cGAN (no G_s auto-encoder, no reconstruction loss)
    condition_on_hg: bool = True
    two_pathway: bool = True
    # residual: the decoder's output is a correction (tanh space, last layer zero-initialised)
    # to a base image: the hourglass's output for G_bl (the blurry input without the
    # hourglass), the sharp input for G_s. A fresh cGAN then reproduces the hourglass exactly;
    # the paper's decoder draws the whole image, which a short run cannot learn (on the small
    # preset, 300 steps gave washed-out faces 7 dB below the blurry input). Off in the paper.
    residual: bool = False
    dead_zone: float = 0.0  # as HourglassConfig.dead_zone, on G_bl's output against the blurry input

    @property
    def bl_channels(self) -> int:
        return 6 if self.condition_on_hg else 3


@dataclass(frozen=True)
class GateConfig:
    """The blur gate (mf2.models.archs.gate): a classifier trained beside the hourglass that
    scales each restoration's correction by its probability that the face moved. Not in the
    paper; ``features`` 0 leaves it out."""

    features: int = 0
    power: float = 2.0  # the correction is scaled by p ** power (2: measured, issue 30's note)
    moving_db: float = 38.0  # a training pair is "moving" when its blurry image is below this PSNR
    lr: float = 2e-3  # the gate's own rate, on the hourglass stage's schedule


@dataclass(frozen=True)
class LossConfig:
    adv: float = 1.0
    content_image: float = 100.0  # lambda_ci
    content_grad: float = 100.0  # lambda_cg
    reconstruction: float = 100.0  # lambda_r
    projection: float = 8.0  # lambda_p
    # the hourglass stage's pixel loss: l1 as the paper, or l2 (the mean squared error, which
    # PSNR measures; on the small preset it left the identity within 300 steps where L1 at the
    # same rate had not moved), or psnr: the mean over images of log(MSE + a floor near 50 dB),
    # i.e. each image's PSNR, the figure reports average (mf2.train.losses.log_mse_loss)
    hg_pixel: str = "l1"
    # the hourglass stage's pixel loss counts a pixel near one of the target's 68 landmarks up
    # to 1 + landmark_weight times (a Gaussian of landmark_sigma x the image side around each
    # point; mf2.train.focus). Why: the eyes, brows, mouth and jaw line are what a landmark
    # localiser and a face matcher read, and a few pixels of a large face; a plain mean lets
    # the cheeks and the background decide. 0: off, as in the paper.
    landmark_weight: float = 0.0
    landmark_sigma: float = 0.03

    @property
    def focus_sigma(self) -> float:
        """The landmark map's sigma the hourglass's batches need (0: no map, the plain loss)."""
        return self.landmark_sigma if self.landmark_weight > 0 else 0.0


@dataclass(frozen=True)
class StageConfig:
    epochs: int = 60
    max_steps: int = 0  # 0: epochs decide
    lr: float = 2e-4
    betas: tuple = (0.5, 0.999)
    # constant, or cosine: the rate falls to 0 at the stage's last step. A short run ends on
    # noisy weights at a constant rate; on the small preset they sharpened already-sharp
    # faces (a clip at 45 dB fell to 39 dB after 600 steps at 2e-4).
    schedule: str = "constant"


@dataclass(frozen=True)
class TrainConfig:
    preset: str = "paper"
    image_size: int = 256
    batch_size: int = 16
    num_workers: int = 4
    val_fraction: float = 0.1
    seed: int = 0
    flip: bool = True
    crop_jitter: float = 0.05  # random crops keep >= 1 - this of the side, then resize back
    # appearance augmentation (mf2.train.data.PairDataset._appearance): the share of identity
    # pairs (input = target), tone jitter, and how often both images are shrunk to a factor in
    # [rescale_min, 0.9] and enlarged back; all off in the paper
    identity_fraction: float = 0.0
    # pair selection: a training pair whose blurry image is within this PSNR (dB, luminance)
    # of its target barely moved; what separates the two is compression noise and sub-pixel
    # jitter, which no model can predict from the input. Such pairs train as identity pairs
    # (input = target) instead: a sharp face stays as it is. 0: off.
    static_identity_db: float = 0.0
    # the still-face term: a motion pair (PrAvg, VLA, flow; not a synthetic kernel's) whose
    # blurry image is within this PSNR (dB) of its target trains with its blurry image as the
    # target: a face that barely moved comes out as it went in. Its average of nearly still
    # frames is smoother than its one sharp frame, and what separates them is compression
    # noise; trained towards that frame, the restorer learns to sharpen smooth still faces,
    # which costs them PSNR on unseen people, more the longer it trains (issue 30's notes,
    # sessions 17 and 18). 0: off.
    static_keep_db: float = 0.0
    tone_jitter: float = 0.0
    rescale_prob: float = 0.0
    rescale_min: float = 0.45
    checkpoint_every: int = 500  # steps
    log_every: int = 20
    val_max_batches: int = 50
    deterministic: bool = False
    channels_last: bool = True  # NHWC tensors: faster convs on CPUs and tensor cores
    # step 1's network: hourglass (the paper's) or fullres (mf2.models.archs.fullres); its
    # stage, checkpoints and rows keep the name "hg" either way
    restorer: str = "hourglass"
    # the step-1 stage trains on random square patches of this side cut from each pair (0:
    # whole images); a fully convolutional network restores whole faces all the same
    hg_patch: int = 0
    hourglass: HourglassConfig = field(default_factory=HourglassConfig)
    fullres: FullResConfig = field(default_factory=FullResConfig)
    cgan: CganConfig = field(default_factory=CganConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    gate: GateConfig = field(default_factory=GateConfig)
    hg_stage: StageConfig = field(default_factory=lambda: StageConfig(epochs=20))
    cgan_stage: StageConfig = field(default_factory=lambda: StageConfig(epochs=60))

    def validate(self) -> None:
        if self.image_size < 16 or self.batch_size < 1:
            raise UsageError(f"config: image_size {self.image_size} / batch_size {self.batch_size} out of range")
        down = 1
        for _, _, s, _ in self.cgan.encoder:
            down *= s
        if self.image_size % down:
            raise UsageError(
                f"config: image_size {self.image_size} is not divisible by the encoder's total stride {down}"
            )
        self._validate_restorer()
        if len(self.cgan.encoder) != len(self.cgan.decoder):
            raise UsageError("config: encoder and decoder need the same number of layers")
        for name, st in (("hg_stage", self.hg_stage), ("cgan_stage", self.cgan_stage)):
            if not 0 < st.lr < 1 or st.epochs < 0 or st.max_steps < 0:
                raise UsageError(
                    f"config: {name}: lr {st.lr} must be in (0, 1), epochs {st.epochs} and max_steps "
                    f"{st.max_steps} >= 0"
                )
            if len(st.betas) != 2 or not all(isinstance(b, (int, float)) and 0 <= b < 1 for b in st.betas):
                raise UsageError(f"config: {name}.betas {list(st.betas)}: two numbers in [0, 1)")
            if st.schedule not in ("constant", "cosine"):
                raise UsageError(f"config: {name}.schedule {st.schedule!r}: expected constant or cosine")
        if not 0 <= self.val_fraction < 1:
            raise UsageError(f"config: val_fraction {self.val_fraction} must be in [0, 1)")
        for name in ("identity_fraction", "rescale_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise UsageError(f"config: {name} {getattr(self, name)} must be in [0, 1]")
        if not (self.static_identity_db == 0 or 20 <= self.static_identity_db <= 60):
            raise UsageError(f"config: static_identity_db {self.static_identity_db} must be 0 (off) or in [20, 60] dB")
        if not (self.static_keep_db == 0 or 20 <= self.static_keep_db <= 60):
            raise UsageError(f"config: static_keep_db {self.static_keep_db} must be 0 (off) or in [20, 60] dB")
        if not 0 <= self.tone_jitter < 1:
            raise UsageError(f"config: tone_jitter {self.tone_jitter} must be in [0, 1)")
        if not 0.05 <= self.rescale_min <= 0.9:
            raise UsageError(f"config: rescale_min {self.rescale_min} must be in [0.05, 0.9]")
        zones = (
            ("hourglass", self.hourglass.dead_zone),
            ("fullres", self.fullres.dead_zone),
            ("cgan", self.cgan.dead_zone),
        )
        for name, dz in ((f"{n}.dead_zone", z) for n, z in zones):
            if not 0 <= dz <= 32:
                raise UsageError(f"config: {name} {dz} must be in [0, 32] code values")
        g = self.gate
        if not (0 <= g.features <= 256 and g.power > 0 and 20 <= g.moving_db <= 60 and g.lr > 0):
            raise UsageError(
                f"config: gate {dataclasses.asdict(g)}: features in [0, 256], power and lr > 0, moving_db in [20, 60]"
            )
        self._validate_loss()

    def _validate_loss(self) -> None:
        loss = self.loss
        if loss.hg_pixel not in HG_PIXEL_LOSSES:
            raise UsageError(f"config: loss.hg_pixel {loss.hg_pixel!r}: expected one of {', '.join(HG_PIXEL_LOSSES)}")
        if not (0 <= loss.landmark_weight <= 100 and 0.005 <= loss.landmark_sigma <= 0.5):
            raise UsageError(
                f"config: loss.landmark_weight {loss.landmark_weight} must be in [0, 100], "
                f"loss.landmark_sigma {loss.landmark_sigma} in [0.005, 0.5] (of the image side)"
            )

    def _validate_restorer(self) -> None:
        if self.restorer not in RESTORERS:
            raise UsageError(f"config: restorer {self.restorer!r}: expected one of {', '.join(RESTORERS)}")
        hg = self.hourglass
        if hg.stem not in ("newell", "full"):
            raise UsageError(f"config: hourglass.stem {hg.stem!r}: expected newell or full")
        if hg.neighbours and self.restorer != "hourglass":
            raise UsageError(f"config: hourglass.neighbours: only the hourglass sees neighbours, not {self.restorer}")
        if hg.head not in HOURGLASS_HEADS or (hg.head == "kernel" and hg.stem != "newell"):
            raise UsageError(f"config: hourglass.head {hg.head!r}: expected linear, or kernel with stem newell")
        if not (3 <= hg.kernel <= 15 and hg.kernel % 2):
            raise UsageError(f"config: hourglass.kernel {hg.kernel}: an odd number in [3, 15]")
        down = self.hourglass.downsampling if self.restorer == "hourglass" else 1
        for name, side in (("image_size", self.image_size), ("hg_patch", self.hg_patch or down)):
            if side % down:
                raise UsageError(
                    f"config: {name} {side} not divisible by {down} (the hourglass's stem and 2^hourglass.depth)"
                )
        if self.hg_patch and not 16 <= self.hg_patch <= self.image_size:
            raise UsageError(f"config: hg_patch {self.hg_patch} must be 0 (whole images) or in [16, image_size]")
        if self.fullres.features < 1 or self.fullres.layers < 2:
            raise UsageError(f"config: fullres {dataclasses.asdict(self.fullres)}: features >= 1, layers >= 2")

    def to_dict(self) -> dict:
        return _plain(dataclasses.asdict(self))


def _plain(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


PRESETS: dict[str, TrainConfig] = {
    "paper": TrainConfig(),
    "tiny": TrainConfig(
        preset="tiny",
        image_size=64,
        batch_size=8,
        num_workers=0,
        checkpoint_every=100,
        log_every=10,
        val_max_batches=4,
        hourglass=HourglassConfig(stacks=1, features=16, depth=3),
        cgan=CganConfig(encoder=tuple(TINY_ENCODER), decoder=tuple(TINY_DECODER), disc_channels=(8, 16, 32, 32)),
        hg_stage=StageConfig(epochs=2),
        cgan_stage=StageConfig(epochs=2),
    ),
    "small": TrainConfig(
        preset="small",
        image_size=128,
        batch_size=16,
        num_workers=0,
        checkpoint_every=250,
        log_every=25,
        val_max_batches=8,
        # issue 30: the blur gate (learning from motion pairs) with a dead zone of 1 code value;
        # on the recommended run's hourglass (unseen people, d PSNR moving / still) PrAvg 7
        # +0.144 / -0.064 and VLA +0.206 / +0.082, against +0.133 / -0.091 and +0.196 / +0.014
        # with the zone of 2 alone; the gate without a zone took 0.19 dB off still PrAvg 7 faces;
        # learning from PrAvg 7 and VLA pairs (--gate-pairs, the deblur-model recipe's) the gate
        # made it +0.152 / -0.051 and +0.210 / +0.062 (session 17)
        # issue 30 (session 30): the hourglass also sees each pair's neighbouring exposures
        # (simulate --neighbours; the deblur-model recipe makes them). On bench/restore.py's
        # unseen people, the whole model (flip ensemble) gained +0.64 / +0.58 dB on moving
        # PrAvg 7 / VLA faces and +0.19 / -0.04 on still ones, against +0.22 / +0.32 and
        # -0.05 / +0.09 seeing the blurry frame alone; synthetic kernels (photos, no neighbours)
        # +1.64 against +2.23
        hourglass=HourglassConfig(stacks=2, features=64, depth=3, dead_zone=1.0, neighbours=True),
        gate=GateConfig(features=24),
        cgan=CganConfig(
            encoder=tuple(SMALL_ENCODER),
            decoder=tuple(SMALL_DECODER),
            unet_skips=((1, 7), (2, 4), (4, 2)),
            disc_channels=(32, 64, 128, 128),
            residual=True,
            dead_zone=1.0,  # with the gate, as for the hourglass
        ),
        crop_jitter=0.0,  # a resized crop softens the sharp target; flips only
        # measured on bench/restore.py's pairs (issue 17's note): L1 left the identity in no run
        # of 300-1,200 steps; L2 learns, but without these augmentations it took 4-8 dB off clean,
        # nearly static test clips; with the still-face term, 0.25 gained more on moving faces
        # but took 0.28 dB off still ones (session 18)
        identity_fraction=0.5,
        tone_jitter=0.3,
        # issue 30 (sessions 27-28): shrinking and enlarging both images (soft taught as not
        # blurred) worked against it: without it, 8,000 hourglass steps gained +0.218 / +0.320 dB
        # on moving PrAvg 7 / VLA test faces against +0.14 / +0.25, still ones -0.049 / +0.089
        rescale_prob=0.0,
        # issue 30 (session 18): still motion pairs train towards their own blurry image. At 8,000
        # hourglass steps it cut the hourglass's damage to still PrAvg 7 faces from -0.275 to
        # -0.091 dB (one pass) for -0.03 dB on moving ones and +0.01 on moving VLA ones
        static_keep_db=38.0,
        # issue 30 (session 31): the hourglass's L2 counts pixels near the target's landmarks up
        # to 5 times (mf2.train.focus). On bench/restore.py's unseen people, the whole model
        # (moving / still d PSNR) PrAvg 7 +0.73 / +0.25 and VLA +0.64 / -0.02, synthetic +2.13,
        # landmark NME 8.3 % / 7.2 % closer to the Oracle's, against +0.64 / +0.19, +0.58 / -0.04,
        # +1.64 and 6.7 % / 5.4 % without the weights, the same pairs, seed and steps
        loss=LossConfig(hg_pixel="l2", landmark_weight=4.0),
        # issue 30: the hourglass is where the gain is (the residual cGAN stays at its output),
        # so most of the budget goes to it; with the still-face term, 8,000 steps rather than
        # 4,000 gained +0.05 dB on moving VLA faces, the same on moving PrAvg 7 ones, and stayed
        # within the still bound (session 18)
        hg_stage=StageConfig(epochs=0, max_steps=8000, lr=5e-4, schedule="cosine"),
        cgan_stage=StageConfig(epochs=0, max_steps=300, schedule="cosine"),
    ),  # 30-55 min in all on 2 cores (issue 30: 30 and 44 on sessions 28 and 18; 49 seeing neighbours, session 30; 53 with the landmark weights, session 31)
}


def _build(cls, data: dict, where: str):
    if not isinstance(data, dict):
        raise UsageError(f"{where}: expected a mapping")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for k, v in data.items():
        if k not in fields:
            raise UsageError(f"{where}.{k}: unknown key (expected one of: {', '.join(fields)})")
        if k in ("hourglass", "fullres", "cgan", "loss", "gate", "hg_stage", "cgan_stage"):
            target = {
                "hourglass": HourglassConfig,
                "fullres": FullResConfig,
                "cgan": CganConfig,
                "loss": LossConfig,
                "gate": GateConfig,
                "hg_stage": StageConfig,
                "cgan_stage": StageConfig,
            }[k]
            kwargs[k] = _build(target, v, f"{where}.{k}")
        elif isinstance(v, list):
            kwargs[k] = tuple(tuple(x) if isinstance(x, list) else x for x in v)
        else:
            kwargs[k] = _checked(v, str(fields[k].type), f"{where}.{k}")
    return cls(**kwargs)


_KINDS = {"bool": "true or false", "int": "an integer", "float": "a number", "str": "a string", "tuple": "a list"}


def _checked(v: Any, kind: str, where: str) -> Any:
    """A scalar setting of the declared kind, or one line naming the key (a value is shown
    cut short: a config is user input)."""
    ok = {
        "bool": isinstance(v, bool),
        "int": isinstance(v, int) and not isinstance(v, bool),
        "float": isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v),
        "str": isinstance(v, str),
        "tuple": isinstance(v, (list, tuple)),
    }.get(kind, True)
    if not ok:
        raise UsageError(f"{where}: expected {_KINDS[kind]}{' (finite)' if kind == 'float' else ''}, got {shown(v)}")
    return float(v) if kind == "float" else v


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return out


def load_config(spec: str, overrides: dict | None = None) -> TrainConfig:
    """``paper``, ``tiny``, or a YAML file (``preset:`` picks the base, other keys override)."""
    if spec in PRESETS:
        data = PRESETS[spec].to_dict()
        src = spec
    else:
        p = Path(spec)
        if not p.is_file():
            raise UsageError(f"--config {spec}: not a preset ({', '.join(PRESETS)}) nor a file")
        user = load_yaml(p, p.read_text()) or {}
        if not isinstance(user, dict):
            raise UsageError(f"{p}: expected a mapping")
        base = user.get("preset", "paper")
        if base not in PRESETS:
            raise UsageError(f"{p}: preset {base!r}: expected one of {', '.join(PRESETS)}")
        data = _merge(PRESETS[base].to_dict(), user)
        src = str(p)
    if overrides:
        data = _merge(data, overrides)
    cfg = _build(TrainConfig, data, src)
    cfg.validate()
    return cfg


def config_from_dict(data: dict, where: str = "config") -> TrainConfig:
    """A configuration saved with a run or a checkpoint (``TrainConfig.to_dict``). One saved
    before the hourglass had a ``stem`` key was trained with full-resolution hourglasses."""
    hg = data.get("hourglass")
    if isinstance(hg, dict) and "stem" not in hg:
        data = {**data, "hourglass": {**hg, "stem": "full"}}
    cfg = _build(TrainConfig, data, where)
    cfg.validate()
    return cfg

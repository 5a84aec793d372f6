"""A compact SOLOv2 (Wang et al., 2020): backbone, FPN, category / kernel branches and the unified mask
feature branch of the paper's appendix (Figure 2), at a size that trains on a CPU.

Module and parameter names follow mmdetection's SOLOv2 where the parts correspond, so that a reader can map
one onto the other: ``backbone`` (ResNet-style ``conv1``/``bn1``/``layer1..4``), ``neck`` (FPN with
``lateral_convs`` / ``fpn_convs``), ``mask_head`` (``SOLOV2Head``) holding ``cls_convs``, ``kernel_convs``,
``conv_cls``, ``conv_kernel`` and ``mask_feature_head`` (``convs_all_levels``, ``conv_pred``); each
conv + GroupNorm + ReLU block is a ``ConvModule`` with ``conv`` and ``gn`` as in mmcv.

Data flow for an input of H x W (both multiples of 32):

- backbone: C2..C5 at strides 4, 8, 16, 32; neck: P2..P5 with ``neck_channels`` each.
- category / kernel branches, one per grid level ``i`` on P3..P5 (strides 8, 16, 32): the level's feature
  with normalised x, y coordinates concatenated is resized to ``num_grids[i]`` x ``num_grids[i]``; the kernel
  branch sees the coordinates, the category branch the same resized feature without them.
  ``cls_preds[i]``: (B, C, S, S) logits; ``kernel_preds[i]``: (B, E, S, S) 1x1 dynamic kernels.
- mask feature branch: each of P2..P5 is brought to 1/4 scale by repeated 3x3 conv + GN + ReLU + 2x bilinear
  upsampling (coordinates concatenated at P5, the deepest level), summed, then 1x1 conv + GN + ReLU to E
  channels: ``mask_feats`` (B, E, H/4, W/4).
- the mask of grid cell k is ``sigmoid(kernel_k . mask_feats)``, a dynamic 1x1 convolution.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class SOLOv2Config:
    """Hyper-parameters of the model; stored in checkpoints.

    Attributes:
        num_classes: number of foreground classes C.
        backbone_channels: channels of the four backbone stages (strides 4, 8, 16, 32).
        backbone_blocks: residual blocks per stage.
        neck_channels: FPN channels (mmdetection's ``in_channels`` of the head).
        head_channels: channels of the category and kernel branches (``feat_channels``).
        stacked_convs: conv layers in each of the two branches.
        mask_feat_channels: hidden channels of the mask feature branch.
        mask_out_channels: E, channels of the unified mask feature (= length of each dynamic kernel).
        num_grids: S per grid level, on P3, P4, P5.
        strides: nominal stride of each grid level, used to drop tiny masks at inference.
        scale_ranges: (low, high) range of sqrt(box area) in pixels that each level is responsible for.
        pos_scale: the centre-region factor (the paper's epsilon, mmdetection's ``sigma``).
        gn_groups: GroupNorm groups.
    """

    num_classes: int = 5
    backbone_channels: tuple[int, ...] = (32, 64, 96, 128)
    backbone_blocks: tuple[int, ...] = (1, 2, 2, 1)
    neck_channels: int = 64
    head_channels: int = 64
    stacked_convs: int = 3
    mask_feat_channels: int = 64
    mask_out_channels: int = 64
    num_grids: tuple[int, ...] = (16, 12, 8)
    strides: tuple[int, ...] = (8, 16, 32)
    scale_ranges: tuple[tuple[float, float], ...] = field(default=((0.0, 36.0), (24.0, 72.0), (48.0, 256.0)))
    pos_scale: float = 0.2
    gn_groups: int = 16

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SOLOv2Config:
        def tuples(v: Any) -> Any:
            return tuple(tuples(x) for x in v) if isinstance(v, (list, tuple)) else v

        return cls(**{k: tuples(v) for k, v in values.items()})


class HeadOutputs(NamedTuple):
    """The network's raw outputs for a batch.

    Attributes:
        kernel_preds (list of Tensor[B, E, S_i, S_i]): dynamic kernels per grid level.
        cls_preds (list of Tensor[B, C, S_i, S_i]): category logits per grid level.
        mask_feats (Tensor[B, E, H/4, W/4]): unified mask features.
    """

    kernel_preds: list[torch.Tensor]
    cls_preds: list[torch.Tensor]
    mask_feats: torch.Tensor


def coordinate_features(like: torch.Tensor) -> torch.Tensor:
    """Normalised pixel coordinates in [-1, 1] as two channels (x, then y), shaped like ``like``.

    Args:
        like (Tensor[B, C, H, W]): gives the batch, spatial size, dtype and device.

    Returns:
        Tensor[B, 2, H, W].
    """
    b, _, h, w = like.shape
    xs = torch.linspace(-1, 1, w, dtype=like.dtype, device=like.device)
    ys = torch.linspace(-1, 1, h, dtype=like.dtype, device=like.device)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([grid_x, grid_y]).expand(b, 2, h, w)


class ConvModule(nn.Module):
    """3x3 (or k x k) conv without bias, GroupNorm, optional ReLU; mmcv's ``ConvModule`` names."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, groups: int = 16,
                 act: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False)
        self.gn = nn.GroupNorm(min(groups, out_channels), out_channels)
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.gn(self.conv(x))
        return F.relu(x) if self.act else x


class BasicBlock(nn.Module):
    """ResNet basic block (two 3x3 convs with BatchNorm, identity or 1x1 projection shortcut)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                                            nn.BatchNorm2d(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + identity)


class ResNet(nn.Module):
    """A small ResNet: 3x3 stride-2 stem, four stages of basic blocks, outputs C2..C5 (strides 4..32)."""

    def __init__(self, channels: tuple[int, ...], blocks: tuple[int, ...]) -> None:
        super().__init__()
        stem = channels[0] // 2
        self.conv1 = nn.Conv2d(3, stem, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        in_channels = stem
        for i, (c, n) in enumerate(zip(channels, blocks)):
            layer = [BasicBlock(in_channels if j == 0 else c, c, 2 if j == 0 else 1) for j in range(n)]
            self.add_module(f"layer{i + 1}", nn.Sequential(*layer))
            in_channels = c
        self.num_stages = len(channels)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = F.relu(self.bn1(self.conv1(x)))
        outs = []
        for i in range(self.num_stages):
            x = getattr(self, f"layer{i + 1}")(x)
            outs.append(x)
        return outs


class FPN(nn.Module):
    """Feature pyramid: 1x1 laterals, top-down nearest upsampling and sum, 3x3 output convs."""

    def __init__(self, in_channels: tuple[int, ...], out_channels: int) -> None:
        super().__init__()
        self.lateral_convs = nn.ModuleList(nn.Conv2d(c, out_channels, 1) for c in in_channels)
        self.fpn_convs = nn.ModuleList(nn.Conv2d(out_channels, out_channels, 3, padding=1) for _ in in_channels)

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        laterals = [conv(f) for conv, f in zip(self.lateral_convs, feats)]
        for i in range(len(laterals) - 1, 0, -1):
            laterals[i - 1] = laterals[i - 1] + F.interpolate(laterals[i], size=laterals[i - 1].shape[-2:],
                                                              mode="nearest")
        return [conv(x) for conv, x in zip(self.fpn_convs, laterals)]


class MaskFeatModule(nn.Module):
    """The unified mask feature branch (appendix, Figure 2).

    Level i of P2..P5 (stride 4 * 2**i) goes through i rounds of 3x3 conv + GN + ReLU and 2x bilinear
    upsampling (P2: one conv, no upsampling) to reach 1/4 scale; the deepest level gets the x, y coordinate
    channels first. The sum of all levels goes through a 1x1 conv + GN + ReLU to E channels.
    """

    def __init__(self, in_channels: int, feat_channels: int, out_channels: int, num_levels: int = 4,
                 groups: int = 16) -> None:
        super().__init__()
        self.convs_all_levels = nn.ModuleList()
        for i in range(num_levels):
            level = nn.Sequential()
            if i == 0:
                level.add_module("conv0", ConvModule(in_channels, feat_channels, 3, groups))
            for j in range(i):
                # the deepest level sees the coordinates: position information for instance-aware features
                c = (in_channels + 2 if i == num_levels - 1 else in_channels) if j == 0 else feat_channels
                level.add_module(f"conv{j}", ConvModule(c, feat_channels, 3, groups))
                level.add_module(f"upsample{j}", nn.Upsample(scale_factor=2, mode="bilinear",
                                                              align_corners=False))
            self.convs_all_levels.append(level)
        self.conv_pred = ConvModule(feat_channels, out_channels, 1, groups)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        """Args: feats (list of Tensor[B, C, H/4/2**i, W/4/2**i]) P2..P5. Returns Tensor[B, E, H/4, W/4]."""
        last = len(feats) - 1
        total = None
        for i, (level, x) in enumerate(zip(self.convs_all_levels, feats)):
            if i == last:
                x = torch.cat([x, coordinate_features(x)], 1)
            y = level(x)
            total = y if total is None else total + y
        return self.conv_pred(total)


class SOLOV2Head(nn.Module):
    """Category and kernel branches on the grid levels, plus the mask feature branch."""

    def __init__(self, cfg: SOLOv2Config) -> None:
        super().__init__()
        self.num_grids = cfg.num_grids
        g = cfg.gn_groups
        self.cls_convs = nn.ModuleList(
            ConvModule(cfg.neck_channels if i == 0 else cfg.head_channels, cfg.head_channels, 3, g)
            for i in range(cfg.stacked_convs))
        self.kernel_convs = nn.ModuleList(
            ConvModule(cfg.neck_channels + 2 if i == 0 else cfg.head_channels, cfg.head_channels, 3, g)
            for i in range(cfg.stacked_convs))
        self.conv_cls = nn.Conv2d(cfg.head_channels, cfg.num_classes, 3, padding=1)
        self.conv_kernel = nn.Conv2d(cfg.head_channels, cfg.mask_out_channels, 3, padding=1)
        self.mask_feature_head = MaskFeatModule(cfg.neck_channels, cfg.mask_feat_channels, cfg.mask_out_channels,
                                                groups=g)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.01)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        # focal-loss prior: every cell starts at foreground probability 0.01, so the loss starts small
        nn.init.constant_(self.conv_cls.bias, -float(torch.log(torch.tensor(99.0))))

    def forward(self, feats: list[torch.Tensor]) -> HeadOutputs:
        """Args: feats: P2..P5. Grid levels use P3..P5; the mask feature branch uses all four."""
        mask_feats = self.mask_feature_head(feats)
        kernel_preds, cls_preds = [], []
        for x, grid in zip(feats[1:], self.num_grids):
            x = torch.cat([x, coordinate_features(x)], 1)
            x = F.interpolate(x, size=(grid, grid), mode="bilinear", align_corners=False)
            kernel_feat, cls_feat = x, x[:, :-2]
            for conv in self.kernel_convs:
                kernel_feat = conv(kernel_feat)
            for conv in self.cls_convs:
                cls_feat = conv(cls_feat)
            kernel_preds.append(self.conv_kernel(kernel_feat))
            cls_preds.append(self.conv_cls(cls_feat))
        return HeadOutputs(kernel_preds, cls_preds, mask_feats)


class SOLOv2(nn.Module):
    """SOLOv2 network: images in, raw outputs out (post-processing lives in ``postprocess``).

    Args:
        cfg: hyper-parameters; defaults are the shipped checkpoint's.
    """

    # inputs are RGB in [0, 1]; a fixed normalisation keeps the checkpoint self-contained
    PIXEL_MEAN = (0.5, 0.5, 0.5)
    PIXEL_STD = (0.25, 0.25, 0.25)

    def __init__(self, cfg: SOLOv2Config | None = None) -> None:
        super().__init__()
        self.cfg = cfg or SOLOv2Config()
        if len(self.cfg.num_grids) != 3 or len(self.cfg.strides) != 3 or len(self.cfg.scale_ranges) != 3:
            raise ValueError("num_grids, strides and scale_ranges must each have 3 entries (P3..P5), got "
                             f"{self.cfg.num_grids}, {self.cfg.strides}, {self.cfg.scale_ranges}")
        self.backbone = ResNet(self.cfg.backbone_channels, self.cfg.backbone_blocks)
        self.neck = FPN(self.cfg.backbone_channels, self.cfg.neck_channels)
        self.mask_head = SOLOV2Head(self.cfg)
        self.register_buffer("pixel_mean", torch.tensor(self.PIXEL_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(self.PIXEL_STD).view(1, 3, 1, 1), persistent=False)

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """FPN outputs P2..P5 for ``images`` (Tensor[B, 3, H, W], float in [0, 1], H and W multiples of 32)."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must have shape (B, 3, H, W), got {tuple(images.shape)}")
        if images.shape[-1] % 32 or images.shape[-2] % 32:
            raise ValueError(f"images height and width must be multiples of 32, got {tuple(images.shape[-2:])}")
        if not images.is_floating_point():
            raise TypeError(f"images must be floating (RGB in [0, 1]), got {images.dtype}")
        x = (images - self.pixel_mean) / self.pixel_std
        return self.neck(self.backbone(x))

    def forward(self, images: torch.Tensor) -> HeadOutputs:
        """Args: images (Tensor[B, 3, H, W], float in [0, 1]). Returns: HeadOutputs."""
        return self.mask_head(self.features(images))


def images_to_tensor(images: Any) -> torch.Tensor:
    """uint8 RGB images (B, H, W, 3) or one (H, W, 3), NumPy or Torch, to a float (B, 3, H, W) in [0, 1]."""
    x = torch.as_tensor(images)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"images must have shape (B, H, W, 3) or (H, W, 3), got {tuple(x.shape)}")
    if x.dtype != torch.uint8:
        raise TypeError(f"images must be uint8 RGB, got {x.dtype}")
    return x.permute(0, 3, 1, 2).float().div_(255.0)

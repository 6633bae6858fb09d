"""A small Vision Transformer (patch embedding, pre-norm blocks, class token).

Chapter 6 trains ViT-S/16 on ImageNet; this is the same architecture at a size that trains on
two CPU cores in minutes (32x32 inputs, 4x4 patches, 64 tokens). Parameters are initialised
from an explicit ``torch.Generator`` when one is given, else from the global RNG that the run's
`ctx.build_model` seeds from the run seed and confines.
Users may bring any ``nn.Module`` classifier instead; timm models are used only if installed.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence

import attrs
import torch
import torch.nn.functional as F
from torch import Tensor, nn


@attrs.frozen
class ViTConfig:
    image_size: tuple[int, int] = (32, 32)
    patch_size: int = 4
    in_channels: int = 1
    num_classes: int = 10
    dim: int = 64
    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 2.0

    def __attrs_post_init__(self) -> None:
        h, w = self.image_size
        if h % self.patch_size or w % self.patch_size:
            raise ValueError(
                f"image size {self.image_size} is not divisible by patch {self.patch_size}"
            )
        if self.dim % self.heads:
            raise ValueError(f"dim {self.dim} is not divisible by {self.heads} heads")

    @property
    def num_patches(self) -> int:
        h, w = self.image_size
        return (h // self.patch_size) * (w // self.patch_size)


def patchify(x: Tensor, p: int) -> Tensor:
    """(B, C, H, W) -> (B, H/p * W/p, C*p*p) non-overlapping patches, row-major.

    A linear layer on these equals a stride-p convolution, but its input gradient is a plain
    matrix product: on CPUs the convolution's input backward costs more than the rest of the
    model, and UPAT's free gradient needs exactly that input gradient.
    """
    b, c, h, w = x.shape
    x = x.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(b, (h // p) * (w // p), c * p * p)


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class Block(nn.Module):
    """Pre-norm transformer block: x + MHA(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ViT(nn.Module):
    """Patch embedding -> [class token; patches] + positions -> blocks -> LN -> head(class token)."""

    def __init__(self, cfg: ViTConfig, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        p = cfg.patch_size
        self.patch_embed = nn.Linear(cfg.in_channels * p * p, cfg.dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.num_patches + 1, cfg.dim))
        self.blocks = nn.Sequential(
            *[Block(cfg.dim, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.depth)]
        )
        self.norm = nn.LayerNorm(cfg.dim)
        self.head = nn.Linear(cfg.dim, cfg.num_classes)
        self.reset_parameters(generator)

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None) -> None:
        """Truncated-normal(0.02) weights, zero biases, unit LayerNorms, zero head (as in timm);
        drawn from ``generator``, or from torch's global RNG when None (`ctx.build_model`
        seeds and confines it)."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02, generator=generator)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.trunc_normal_(self.pos_embed, std=0.02, generator=generator)
        nn.init.trunc_normal_(self.cls_token, std=0.02, generator=generator)
        nn.init.zeros_(self.head.weight)

    def forward(self, x: Tensor) -> Tensor:
        tokens = self.patch_embed(patchify(x, self.cfg.patch_size))
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        tokens = torch.cat([cls, tokens], dim=1) + self.pos_embed
        return self.head(self.norm(self.blocks(tokens))[:, 0])


def vit_tiny(
    input_shape: Sequence[int],
    num_classes: int,
    generator: torch.Generator | None = None,
    *,
    patch: int | None = None,
    dim: int = 64,
    depth: int = 2,
    heads: int = 4,
    mlp_ratio: float = 2.0,
) -> ViT:
    """The default model (``model vit_tiny { patch 8  dim 64  depth 2 }``).

    Default patch: a 4x4 grid of tokens (8x8 patches on 32x32 inputs): two blocks of width 64
    reach about 90% on upsampled digits in ten CPU epochs (four blocks on 4x4 patches train
    about four times slower and no better there).
    """
    c, h, w = input_shape
    if patch is None:
        p = max(1, h // 4)
        patch = p if h % p == 0 and w % p == 0 else 1
    cfg = ViTConfig((h, w), patch, c, num_classes, dim, depth, heads, mlp_ratio)
    return ViT(cfg, generator)


def timm_model(
    input_shape: Sequence[int], num_classes: int, name: str = "vit_tiny_patch16_224", **kwargs
) -> nn.Module:
    """A timm architecture (``model timm { name "vit_small_patch16_224" }``), randomly
    initialised (nothing is downloaded); needs the optional package timm."""
    if importlib.util.find_spec("timm") is None:
        from threatlang.errors import UsageError

        raise UsageError(f"model timm {{ name {name!r} }} needs the optional package timm")
    import timm

    c, h, w = input_shape
    return timm.create_model(
        name, pretrained=False, num_classes=num_classes, in_chans=c, img_size=(h, w), **kwargs
    )

"""The cGAN's losses (the paper's Eq. 3-7)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def image_gradients(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return x[..., :, 1:] - x[..., :, :-1], x[..., 1:, :] - x[..., :-1, :]


def content_loss(pred: torch.Tensor, target: torch.Tensor, w_image: float, w_grad: float) -> torch.Tensor:
    """lambda_ci L1(image) + lambda_cg L1(image gradients) (Eq. 4)."""
    gx_p, gy_p = image_gradients(pred)
    gx_t, gy_t = image_gradients(target)
    grad = F.l1_loss(gx_p, gx_t) + F.l1_loss(gy_p, gy_t)
    return w_image * F.l1_loss(pred, target) + w_grad * grad


PSNR_FLOOR_DB = 50.0  # log_mse_loss's floor


def mse_floor(floor_db: float) -> float:
    """The mean squared error of ``floor_db`` PSNR for images in [-1, 1] (data range 2)."""
    return 4.0 * 10.0 ** (-floor_db / 10.0)


def log_mse_loss(pred: torch.Tensor, target: torch.Tensor, floor_db: float = PSNR_FLOOR_DB) -> torch.Tensor:
    """The mean over images of log(MSE + floor): minimising it maximises the images' mean PSNR,
    which is what reports average, where a plain MSE over the batch is dominated by the most
    blurred images (the least recoverable) and barely sees a sharp face the model damages by a
    fraction of a code value. The floor (an MSE of ``floor_db`` PSNR, images in [-1, 1]) keeps
    the gradient finite on identity pairs."""
    mse = (pred - target).pow(2).flatten(1).mean(1)
    return torch.log(mse + mse_floor(floor_db)).mean()


def adversarial_g(fake_logits: torch.Tensor) -> torch.Tensor:
    """The generator's side of Eq. 3, non-saturating form: -log D(s, G(s))."""
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


def adversarial_d(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    return 0.5 * (
        F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
        + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    )


def projection_loss(fake_feats: torch.Tensor, real_feats: torch.Tensor) -> torch.Tensor:
    """L1 between the discriminator's penultimate features of generated and real (Eq. 5)."""
    return F.l1_loss(fake_feats, real_feats.detach())

"""The input checks every tensor-product backend applies before it runs."""
import torch

__all__ = ["check_inputs"]


def check_inputs(desc, x1: torch.Tensor, x2: torch.Tensor, weight: torch.Tensor) -> None:
    """Raise a ValueError / TypeError naming the problem if the inputs do not fit ``desc``."""
    for name, x, dim in (("x1", x1, desc.dim_in1), ("x2", x2, desc.dim_in2)):
        if x.dim() != 2 or x.shape[1] != dim:
            raise ValueError(f"{name} must have shape [batch, {dim}], got {tuple(x.shape)}")
    if x1.shape[0] != x2.shape[0]:
        raise ValueError(f"x1 and x2 have different batch sizes ({x1.shape[0]} and "
                         f"{x2.shape[0]})")
    if weight.shape not in ((desc.weight_numel,), (x1.shape[0], desc.weight_numel)):
        raise ValueError(f"weight must have shape [{desc.weight_numel}] (shared) or "
                         f"[{x1.shape[0]}, {desc.weight_numel}] (one set per sample of the "
                         f"batch of {x1.shape[0]}), got {tuple(weight.shape)}")
    if not (x1.dtype == x2.dtype == weight.dtype) or not x1.is_floating_point():
        raise TypeError(f"x1, x2 and weight must share one floating dtype, got {x1.dtype}, "
                        f"{x2.dtype} and {weight.dtype}")
    if not (x1.device == x2.device == weight.device):
        raise ValueError("x1, x2 and weight must be on one device")

r"""Batch (and instance) normalisation of irreps features, with running statistics.

For each channel :math:`c` of irrep :math:`l` (components :math:`x_{c,m}`) the
statistics are taken over the batch dimension :math:`z` and the sample
dimensions :math:`s` (everything between the batch and the feature axis):

- even scalars (``0e``) are centred first: :math:`x_c \leftarrow x_c - \mu_c`,
  :math:`\mu_c = \langle x_c \rangle_{z,s}`; no other irrep is centred (a
  mean of vectors is not invariant);
- :math:`\sigma^2_c = \big\langle \mathrm{red}_s \, \|x_c\|^2 / d \big\rangle_z`
  with :math:`d = 2l + 1` (``"component"``) or :math:`d = 1` (``"norm"``) and
  :math:`\mathrm{red}_s` the mean (``reduce="mean"``) or the maximum
  (``"max"``) over samples;
- :math:`y_c = w_c\, x_c / \sqrt{\sigma^2_c + \epsilon} \; (+\, b_c` for ``0e``).

In training the batch statistics are used and the running ones updated,
:math:`r \leftarrow (1 - m)\, r + m\, \text{batch value}`; in evaluation the
running ones are used. With ``instance=True`` the statistics are per batch
element (no mean over :math:`z`) and always taken from the input.
The norm of a channel is invariant, so every step is equivariant.
"""
import torch

from ..o3 import Irreps
from ._irrep_index import check_last_dim

__all__ = ["BatchNorm"]


class BatchNorm(torch.nn.Module):
    r"""e3nn's ``nn.BatchNorm``: same parameters, buffers, state dict and numbers.

    Parameters
    ----------
    irreps : Irreps or str
    eps : float
        Added to the variance.
    momentum : float
        Weight :math:`m` of the new batch in the running statistics.
    affine : bool
        Learn ``weight`` (one per channel) and ``bias`` (one per ``0e`` channel).
    reduce : {"mean", "max"}
        How squared norms are reduced over the sample dimensions.
    instance : bool
        Instance normalisation: statistics per batch element, no running ones.
    normalization : {"component", "norm"}
        Squared norms divided by :math:`2l + 1` or not.
    include_bias : bool
        With ``affine``, learn the ``0e`` bias (e3nn's option).

    Examples
    --------
    >>> bn = BatchNorm("4x0e + 2x1o")
    >>> y = bn(torch.randn(32, 10))
    >>> bool(abs(y[:, :4].mean()) < 1e-6), bn.running_var.shape
    (True, torch.Size([6]))
    """

    def __init__(self, irreps, eps: float = 1e-5, momentum: float = 0.1, affine: bool = True,
                 reduce: str = "mean", instance: bool = False,
                 normalization: str = "component", include_bias: bool = True) -> None:
        super().__init__()
        self.irreps = Irreps(irreps)
        if reduce not in ("mean", "max"):
            raise ValueError(f"reduce must be 'mean' or 'max', got {reduce!r}")
        if normalization not in ("component", "norm"):
            raise ValueError(f"normalization must be 'component' or 'norm', got {normalization!r}")
        if not float(eps) >= 0:
            raise ValueError(f"eps must be >= 0, got {eps!r}")
        self.eps, self.momentum = float(eps), float(momentum)
        self.affine, self.instance = bool(affine), bool(instance)
        self.include_bias = bool(include_bias)
        self.reduce, self.normalization = reduce, normalization

        num_scalar = sum(mul for mul, ir in self.irreps if ir.is_scalar())
        num_features = self.irreps.num_irreps
        if self.instance:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
        else:
            self.register_buffer("running_mean", torch.zeros(num_scalar))
            self.register_buffer("running_var", torch.ones(num_features))
        if self.affine:
            self.weight = torch.nn.Parameter(torch.ones(num_features))
            if self.include_bias:
                self.bias = torch.nn.Parameter(torch.zeros(num_scalar))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        self._blocks = [(mul, ir.dim, ir.is_scalar()) for mul, ir in self.irreps]

    def _roll(self, running: torch.Tensor, update: torch.Tensor) -> torch.Tensor:
        return (1 - self.momentum) * running + self.momentum * update.detach()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise ``x`` ``[batch, ..., irreps.dim]``; returns the same shape."""
        check_last_dim(x, self.irreps)
        if x.dim() < 2:
            raise ValueError(f"x has shape {tuple(x.shape)}: BatchNorm needs [batch, ..., "
                             f"{self.irreps.dim}]")
        shape = x.shape
        batch = shape[0]
        x = x.reshape(batch, -1, shape[-1])  # [batch, sample, features]
        use_batch_stats = self.training or self.instance
        update_running = self.training and not self.instance
        new_means, new_vars, fields = [], [], []
        start = i_mean = i_var = 0
        for mul, d, is_scalar in self._blocks:
            field = x.narrow(-1, start, mul * d).reshape(batch, -1, mul, d)
            start += mul * d
            if is_scalar:
                if self.instance:
                    mean = field.mean(1).reshape(batch, 1, mul, 1)
                elif self.training:
                    mean = field.mean([0, 1]).reshape(mul)
                    new_means.append(self._roll(self.running_mean[i_mean:i_mean + mul], mean))
                    mean = mean.reshape(1, 1, mul, 1)
                else:
                    mean = self.running_mean[i_mean:i_mean + mul].reshape(1, 1, mul, 1)
                i_mean += mul
                field = field - mean
            if use_batch_stats:
                sq = field.pow(2)
                sq = sq.mean(3) if self.normalization == "component" else sq.sum(3)
                var = sq.mean(1) if self.reduce == "mean" else sq.max(1).values  # [batch, mul]
                if not self.instance:
                    var = var.mean(0)
                    new_vars.append(self._roll(self.running_var[i_var:i_var + mul], var))
            else:
                var = self.running_var[i_var:i_var + mul]
            scale = (var + self.eps).pow(-0.5)
            if self.affine:
                scale = scale * self.weight[i_var:i_var + mul]
            i_var += mul
            field = field * scale.reshape(-1, 1, mul, 1)
            if self.affine and self.include_bias and is_scalar:
                field = field + self.bias[i_mean - mul:i_mean].reshape(mul, 1)
            fields.append(field.reshape(batch, -1, mul * d))
        if update_running:
            with torch.no_grad():
                if new_means:
                    self.running_mean.copy_(torch.cat(new_means))
                if new_vars:
                    self.running_var.copy_(torch.cat(new_vars))
        if not fields:
            return x.reshape(shape)
        return torch.cat(fields, dim=-1).reshape(shape)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.irreps}, eps={self.eps}, momentum={self.momentum}, "
                f"instance={self.instance})")

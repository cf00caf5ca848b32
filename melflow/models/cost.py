"""What a model costs to run: parameters, multiply-accumulates and CPU latency per clip.

Multiply-accumulates (MACs) are counted with forward hooks on :class:`torch.nn.Conv2d`
and :class:`torch.nn.Linear`, the layers that hold nearly all of a CNN's arithmetic;
BatchNorm, activations and pooling (one operation per element) are left out, as in
most published MAC counts. Pure torch: no profiler, no third-party counter.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch
from torch import nn

from melflow.errors import ParameterError
from melflow.models.cnn import count_parameters

LATENCY_BATCHES = (1, 64)


@dataclass(frozen=True)
class ModelCost:
    """Size and speed of one model on one clip's spectrogram.

    ``latency_ms`` maps a batch size to the median wall time per clip in milliseconds
    (the time of one forward pass divided by the batch size).
    """

    params: int
    macs: int
    latency_ms: dict[int, float]


def _conv_macs(layer: nn.Conv2d, output: torch.Tensor) -> int:
    # Every output element is a dot product over (in_channels / groups) x kernel taps.
    kh, kw = layer.kernel_size
    return output[0].numel() * (layer.in_channels // layer.groups) * kh * kw


def _linear_macs(layer: nn.Linear, output: torch.Tensor) -> int:
    return output[0].numel() * layer.in_features


def count_macs(model: nn.Module, *, input_shape: tuple[int, ...]) -> int:
    """Multiply-accumulates of one forward pass, per input item.

    Parameters
    ----------
    model : torch.nn.Module
        Any module; only its ``Conv2d`` and ``Linear`` layers are counted.
    input_shape : tuple of int
        Shape of one item without the batch axis, e.g. ``(1, n_bins, n_frames)``.

    Returns
    -------
    int
        MACs for a batch of one (the count does not depend on the batch size).
    """
    total = 0

    def hook(layer: nn.Module, _inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(layer, nn.Conv2d):
            total += _conv_macs(layer, output)
        elif isinstance(layer, nn.Linear):
            total += _linear_macs(layer, output)

    handles = [
        m.register_forward_hook(hook)
        for m in model.modules()
        if isinstance(m, nn.Conv2d | nn.Linear)
    ]
    was_training = model.training
    try:
        model.eval()
        with torch.inference_mode():
            model(torch.zeros(1, *input_shape))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return total


def latency_ms(
    model: nn.Module,
    *,
    input_shape: tuple[int, ...],
    batch_size: int,
    repeats: int = 20,
    warmup: int = 3,
    num_threads: int = 1,
) -> float:
    """Median CPU wall time per item of a forward pass, in milliseconds.

    Parameters
    ----------
    model : torch.nn.Module
        Timed in eval mode under :func:`torch.inference_mode`, on the current thread count.
    input_shape : tuple of int
        Shape of one item without the batch axis.
    batch_size : int
        Items per forward pass.
    repeats : int
        Timed passes; the median is returned (robust to a busy machine).
    warmup : int
        Untimed passes first (allocator and kernel selection).
    num_threads : int
        Intra-op threads while timing (restored afterwards). One thread by default: the
        figure of a single-core deployment, and the least disturbed on a shared machine.

    Returns
    -------
    float
        Median milliseconds per pass divided by ``batch_size``.
    """
    if batch_size < 1 or repeats < 1 or warmup < 0 or num_threads < 1:
        raise ParameterError(
            f"batch_size, repeats and num_threads must be positive and warmup >= 0, got "
            f"{batch_size}, {repeats}, {num_threads}, {warmup}"
        )
    x = torch.randn(batch_size, *input_shape, generator=torch.Generator().manual_seed(0))
    was_training, threads = model.training, torch.get_num_threads()
    model.eval()
    torch.set_num_threads(num_threads)
    times = []
    try:
        with torch.inference_mode():
            for i in range(warmup + repeats):
                start = time.perf_counter()
                model(x)
                if i >= warmup:
                    times.append(time.perf_counter() - start)
    finally:
        model.train(was_training)
        torch.set_num_threads(threads)
    return statistics.median(times) * 1000.0 / batch_size


def model_cost(
    model: nn.Module,
    *,
    input_shape: tuple[int, ...],
    repeats: int = 20,
    batches: tuple[int, ...] = LATENCY_BATCHES,
    num_threads: int = 1,
) -> ModelCost:
    """Parameters, MACs per item and median latency per item for each of ``batches``."""
    return ModelCost(
        params=count_parameters(model),
        macs=count_macs(model, input_shape=input_shape),
        latency_ms={
            b: latency_ms(
                model,
                input_shape=input_shape,
                batch_size=b,
                repeats=repeats,
                num_threads=num_threads,
            )
            for b in batches
        },
    )

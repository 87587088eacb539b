"""Speed of one training step of the time-series net (forward, backward, AdamW) on one thread, as trainings
run (`TRAIN_THREADS`, 1): today's training pass (the GRU with its backward written out, the merge at the
coarse rate) against the net as first written (`fixtures.sequence_reference`: PyTorch's GRU, the merge at the
fine rate), in the same process, in alternating rounds; then the GRU alone against PyTorch's. The batch is a
watch-like one: 16 windows of 512 samples, 6 channels, 7 outputs; an epoch on watch is 24 such steps.
Run: `.venv/bin/python -m bench.bench_train_step [--rounds 5] [--steps 20]`
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from fixtures.sequence_reference import full_rate_forward
from utils.temporal.gru_training import bidirectional_gru
from utils.temporal.sequence_net import SequenceNet, SequenceNetConfig

WINDOWS, SAMPLES, CHANNELS, OUTPUTS = 16, 512, 6, 7


def per_call_ms(call: Callable[[], None]) -> Callable[[int], float]:
    """A function that runs `call` `calls` times and returns the ms per call (after a warm-up of 3)."""

    def run(calls: int) -> float:
        started = time.perf_counter()
        for _ in range(calls):
            call()
        return 1000 * (time.perf_counter() - started) / calls

    run(3)
    return run


def step_timer(forward: Callable[[SequenceNet, torch.Tensor], torch.Tensor]) -> Callable[[int], float]:
    """ms per training step of a fresh net through `forward`."""
    torch.manual_seed(0)
    net = SequenceNet(SequenceNetConfig(in_channels=CHANNELS, n_outputs=OUTPUTS)).train()
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3)
    x = torch.randn(WINDOWS, SAMPLES, CHANNELS)
    y = torch.randint(0, OUTPUTS, (WINDOWS, SAMPLES))

    def step() -> None:
        loss = F.cross_entropy(forward(net, x).reshape(-1, OUTPUTS), y.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return per_call_ms(step)


def gru_timer(forward: Callable[[nn.GRU, torch.Tensor], torch.Tensor]) -> Callable[[int], float]:
    """ms per forward and backward of the net's GRU alone (16 windows of 128 coarse steps)."""
    torch.manual_seed(0)
    gru = nn.GRU(64, 64, batch_first=True, bidirectional=True)
    x = torch.randn(WINDOWS, SAMPLES // 4, 64, requires_grad=True)
    return per_call_ms(lambda: forward(gru, x).sum().backward())


def compare(
    name: str, before: Callable[[int], float], now: Callable[[int], float], rounds: int, steps: int
) -> None:
    """Alternating rounds, so that a change in the machine's load reaches both; the medians are compared."""
    times: dict[str, list[float]] = {"before": [], "now": []}
    for _ in range(rounds):
        times["before"].append(before(steps))
        times["now"].append(now(steps))
    median = {key: sorted(values)[len(values) // 2] for key, values in times.items()}
    print(
        f"{name}: before {median['before']:.1f} ms, now {median['now']:.1f} ms a step "
        f"(x{median['before'] / median['now']:.2f} as fast; rounds before "
        f"{', '.join(f'{v:.1f}' for v in times['before'])}, now {', '.join(f'{v:.1f}' for v in times['now'])})",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; torch threads: 1")
    compare(
        "training step (16 x 512 samples)",
        step_timer(full_rate_forward),
        step_timer(lambda net, x: net(x)),
        args.rounds,
        args.steps,
    )
    compare(
        "the GRU alone, forward and backward",
        gru_timer(lambda gru, x: gru(x)[0]),
        gru_timer(bidirectional_gru),
        args.rounds,
        args.steps,
    )


if __name__ == "__main__":
    main()

"""Speed of one training step (forward, backward, AdamW) on one thread, as trainings run (`TRAIN_THREADS`, 1),
today's against the first written, in the same process, in alternating rounds:
- the time-series net: today's training pass (the GRU with its backward written out, the merge at the coarse
  rate, the fused AdamW, `FastDropout`) against the net as first written (`fixtures.sequence_reference`:
  PyTorch's GRU, the merge at the fine rate, PyTorch's default AdamW and dropout). A watch-like batch: 16
  windows of 512 samples, 6 channels, 7 outputs; an epoch on watch is 24 such steps;
- today's time-series step with PyTorch's dropout against the same with `FastDropout`;
- the GRU alone against PyTorch's;
- the video net: today's step (the input layer in bfloat16 where the CPU has it, see `NATIVE_BF16`, on inputs
  stored so; the fused AdamW; index_select; `FastDropout`) against float32, the default AdamW, x[batch] and
  PyTorch's dropout. A batch of 32 windows of 16 frames of 1280 features, out of 228 (the 8 spliced videos'
  epoch has 7 such steps).
Then the seconds a process's first optimizer takes, in fresh processes, with and without the nets' module
imported first (torch.optim imports torch._dynamo then, unless the service already has).
Run: `.venv/bin/python -m bench.bench_train_step [--rounds 5] [--steps 20]`
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from fixtures.sequence_reference import full_rate_forward
from utils.temporal.dropout import FastDropout
from utils.temporal.gru_training import bidirectional_gru
from utils.temporal.sequence_net import SequenceNet, SequenceNetConfig
from utils.temporal.timeline_net import TimelineNet, TimelineNetConfig
from utils.temporal.training import NetT, TrainConfig, adamw, masked_bce

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


Optimizer = Callable[[nn.Module], torch.optim.Optimizer]


def default_adamw(net: nn.Module) -> torch.optim.Optimizer:
    """The optimizer as first written: PyTorch's AdamW with the nets' defaults (a loop over parameters on CPU)."""
    config = TrainConfig()
    return torch.optim.AdamW(net.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)


def fused_adamw(net: nn.Module) -> torch.optim.Optimizer:
    return adamw(net, TrainConfig())


def with_torch_dropout(net: NetT) -> NetT:
    """`net` with PyTorch's `nn.Dropout` where it has `FastDropout`, as the nets were first written."""
    for module in list(net.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, FastDropout):
                setattr(module, name, nn.Dropout(child.p))
    return net


def step_timer(
    forward: Callable[[SequenceNet, torch.Tensor], torch.Tensor],
    optimizer_for: Optimizer,
    torch_dropout: bool,
) -> Callable[[int], float]:
    """ms per training step of a fresh net through `forward` (with PyTorch's dropout, or the net's own)."""
    torch.manual_seed(0)
    net = SequenceNet(SequenceNetConfig(in_channels=CHANNELS, n_outputs=OUTPUTS)).train()
    net = with_torch_dropout(net) if torch_dropout else net
    optimizer = optimizer_for(net)
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


def float32_forward(net: TimelineNet) -> Callable[[torch.Tensor], torch.Tensor]:
    """The video net's training forward as first written: its input layer in float32 too."""
    return lambda x: net.from_frame_inputs(net.input(x))


def video_step_timer(today: bool) -> Callable[[int], float]:
    """ms per training step of a fresh video net, today's or as first written."""
    torch.manual_seed(0)
    net = TimelineNet(TimelineNetConfig(in_channels=1280, n_outputs=5)).train()
    net = net if today else with_torch_dropout(net)
    forward = net.from_standardized if today else float32_forward(net)
    optimizer = fused_adamw(net) if today else default_adamw(net)
    features, y = torch.randn(228, 16, 1280), (torch.rand(228, 16, 5) > 0.8).float()
    x = net.training_inputs(features) if today else net.standardize(features)
    mask, pos_weight = torch.ones(228, 16), torch.ones(5)
    order = torch.Generator().manual_seed(0)

    def step() -> None:
        batch = torch.randperm(len(x), generator=order)[:32]
        inputs, targets, real = (t.index_select(0, batch) if today else t[batch] for t in (x, y, mask))
        loss = masked_bce(forward(inputs), targets, real, pos_weight)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return per_call_ms(step)


def first_optimizer_seconds(imported_first: str) -> float:
    """Seconds a fresh process takes to build its first AdamW after `import torch` and `imported_first`."""
    script = (
        f"import time, torch{', ' + imported_first if imported_first else ''}\n"
        "started = time.perf_counter()\n"
        "torch.optim.AdamW(torch.nn.Linear(2, 2).parameters())\n"
        "print(time.perf_counter() - started)"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return float(done.stdout)


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
        step_timer(full_rate_forward, default_adamw, torch_dropout=True),
        step_timer(lambda net, x: net(x), fused_adamw, torch_dropout=False),
        args.rounds,
        args.steps,
    )
    compare(
        "today's training step, PyTorch's dropout against FastDropout",
        step_timer(lambda net, x: net(x), fused_adamw, torch_dropout=True),
        step_timer(lambda net, x: net(x), fused_adamw, torch_dropout=False),
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
    compare(
        "video net training step (32 x 16 frames)",
        video_step_timer(today=False),
        video_step_timer(today=True),
        args.rounds,
        args.steps,
    )
    before, now = first_optimizer_seconds(""), first_optimizer_seconds("utils.temporal.training")
    print(
        f"a process's first optimizer: {before:.2f} s after importing torch alone, {now:.2f} s after the nets"
    )


if __name__ == "__main__":
    main()

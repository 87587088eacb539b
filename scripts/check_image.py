#!/usr/bin/env python3
"""Build-time check of the Docker image (the Dockerfile's last step): the torch build matches TORCH_VARIANT
(pip falls back to PyPI's CUDA torch without a word when the CPU wheel index is unreachable), OpenCV imports
without the system GUI libraries, and the service user is not root and can write its data directories.
Prints every problem and exits 1 when there is one, so a wrong image never gets built."""

from __future__ import annotations

import argparse
import os
import re
import sys
from importlib import metadata

# The wheels a CUDA torch pulls in (nvidia-ml-py, a pure-Python NVML binding, is not one of them).
CUDA_LIBRARY = re.compile(
    r"nvidia-(cuda|cublas|cudnn|cufft|cufile|curand|cusolver|cusparse|nccl|nvjitlink|nvtx)"
)


def torch_problem(variant: str) -> str | None:
    import torch

    cuda = torch.version.cuda
    if variant == "cpu":
        if cuda:
            return f"torch {torch.__version__} is a CUDA {cuda} build, but TORCH_VARIANT=cpu"
        names = (d.metadata["Name"] or "" for d in metadata.distributions())
        cuda_libraries = sorted(name for name in names if CUDA_LIBRARY.match(name.lower()))
        if cuda_libraries:
            return f"CUDA libraries installed in a CPU image: {', '.join(cuda_libraries)}"
        return None
    if variant.startswith("cu") and variant[2:].isdigit():
        if cuda is None or cuda.replace(".", "") != variant[2:]:
            return (
                f"torch {torch.__version__} is built for CUDA {cuda or 'none'}, but TORCH_VARIANT={variant}"
            )
        return None
    return f"unknown TORCH_VARIANT={variant!r} (use cpu, or a CUDA wheel index name such as cu126)"


def opencv_problem() -> str | None:
    try:
        import cv2  # noqa: F401
    except ImportError as exc:
        return f"OpenCV does not import: {exc}"
    return None


def user_problem(writable: list[str]) -> str | None:
    if os.getuid() == 0:
        return "the service user is root; the image must run as an unprivileged user"
    locked = [path for path in writable if not os.access(path, os.W_OK)]
    if locked:
        return f"user {os.getuid()} cannot write {', '.join(locked)}"
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--torch-variant", default="cpu")
    parser.add_argument(
        "--service-user", action="store_true", help="check the user too (non-root, writable dirs)"
    )
    parser.add_argument("writable", nargs="*", help="directories the service user must be able to write")
    args = parser.parse_args()
    problems = [torch_problem(args.torch_variant), opencv_problem()]
    if args.service_user:
        problems.append(user_problem(args.writable))
    problems = [p for p in problems if p]
    for problem in problems:
        print(f"image check failed: {problem}", file=sys.stderr)
    if not problems:
        print(f"image check passed (torch {args.torch_variant})")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

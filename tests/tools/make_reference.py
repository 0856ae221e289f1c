"""Regenerates the torchvision reference fixtures in tests/fixtures/.

Run with a Python that has torch and torchvision (the tests themselves never
import torch):

    python tests/tools/make_reference.py            # all fixtures
    python tests/tools/make_reference.py roi nms    # some

Each ``tests/tools/ref_<name>.py`` module defines ``make(out_dir)`` which writes
``<out_dir>/<name>_reference.npz`` with its inputs, torchvision's outputs and
the torch/torchvision versions used (``torch_version``, ``torchvision_version``).
Fixtures committed in this repository were made with torch 2.14.1 and
torchvision 0.29.1 (CPU kernels).
"""

import importlib
import os
import pkgutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(os.path.dirname(HERE), "fixtures")


def main(names):
    sys.path.insert(0, HERE)
    available = sorted(m.name[4:] for m in pkgutil.iter_modules([HERE]) if m.name.startswith("ref_"))
    for name in names or available:
        if name not in available:
            raise SystemExit(f"unknown fixture {name!r}; available: {', '.join(available)}")
        module = importlib.import_module(f"ref_{name}")
        path = module.make(OUT)
        print(f"wrote {path}")


if __name__ == "__main__":
    main(sys.argv[1:])

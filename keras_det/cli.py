"""The ``keras-det`` command line.

Subcommands whose issue has not landed yet say so and exit with status 2, so
``keras-det --help`` always lists the whole surface.
"""

import argparse
import sys

_PENDING = {
    "train": "train a detector on a dataset",
    "evaluate": "COCO / VOC evaluation of a model or a results file",
    "export": "export a trained model as a TF Serving SavedModel",
    "predict": "run a model or SavedModel on images and draw the boxes",
    "proposals": "selective-search / EdgeBoxes region proposals",
    "demo": "train -> evaluate -> export -> predict on the embedded shapes set",
    "bench": "speed and accuracy benchmarks",
}


def build_parser():
    parser = argparse.ArgumentParser(
        prog="keras-det",
        description="Object detection for Keras 3 / TensorFlow.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_text in _PENDING.items():
        sub.add_parser(name, help=help_text, description=help_text)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from keras_det import __version__

        print(f"keras-det {__version__}")
        return 0
    if args.command is None:
        parser.print_help()
        return 0
    print(
        f"keras-det {args.command}: not yet available in this version "
        "(its issue has not landed).",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    sys.exit(main())

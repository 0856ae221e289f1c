import subprocess
import sys

from keras_det import cli


def test_help_lists_every_subcommand(capsys):
    assert cli.main([]) == 0
    out = capsys.readouterr().out
    for name in ("train", "evaluate", "export", "predict", "proposals", "demo", "bench"):
        assert name in out


def test_pending_subcommand_says_so(capsys):
    assert cli.main(["bench"]) == 2
    assert "not yet available" in capsys.readouterr().err


def test_console_script_help():
    out = subprocess.run(
        [sys.executable, "-m", "keras_det.cli", "--help"], capture_output=True, text=True, check=True
    )
    assert "keras-det" in out.stdout

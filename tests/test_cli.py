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


def test_train_classifier_on_a_folder(tmp_path, capsys):
    import keras
    import numpy as np
    import skimage.data
    import tensorflow as tf

    for name, image in (("cat", skimage.data.chelsea()), ("coffee", skimage.data.coffee())):
        folder = tmp_path / "data" / name
        folder.mkdir(parents=True)
        for i in range(3):
            crop = tf.image.resize(image[i * 20 : i * 20 + 200, i * 30 : i * 30 + 200], (48, 48)).numpy()
            keras.utils.save_img(str(folder / f"{i}.png"), crop.astype(np.uint8))
    out = str(tmp_path / "clf.keras")
    argv = ["train", "--task", "classify", "--data", str(tmp_path / "data"), "--backbone", "tiny", "--image-size", "48",
            "--batch-size", "2", "--epochs", "1", "--steps-per-epoch", "2", "--fine-tune", "2", "--output", out]
    assert cli.main(argv) == 0
    said = capsys.readouterr().out
    assert "6 images of 2 classes" in said and "fine-tuning the top 2" in said
    model = keras.saving.load_model(out)
    assert model.predict(np.zeros((1, 48, 48, 3), np.float32), verbose=0).shape == (1, 2)

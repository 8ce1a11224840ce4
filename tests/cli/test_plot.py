"""`keras-ahbf plot` on a trained run."""

import os

from keras_ahbf import cli

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_plot(run_dir, tmp_path, one_line_error):
    out = str(tmp_path / "plots")
    assert cli.main(["plot", run_dir, "--output", out]) == 0
    names = sorted(os.listdir(out))
    expected = ["accuracy.png", "fusion_weights.png", "learning_rate.png", "loss.png"]
    # With per-output loss terms in the log (ce_branch_0, ...): their figure.
    with open(os.path.join(run_dir, "log.csv")) as f:
        if "ce_branch_0" in f.readline():
            expected = sorted(expected + ["loss_terms.png"])
    assert names == expected
    for name in names:
        with open(os.path.join(out, name), "rb") as f:
            assert f.read(8) == PNG_MAGIC
    one_line_error(2, cli.main(["plot", str(tmp_path / "nothing")]))


def test_plot_output_that_is_a_file_is_refused(run_dir, tmp_path, one_line_error):
    (tmp_path / "file").write_text("mine")
    for output in (tmp_path / "file", tmp_path / "file" / "plots"):
        err = one_line_error(2, cli.main(["plot", run_dir, "--output", str(output)]))
        assert f"--output {output}" in err
    assert (tmp_path / "file").read_text() == "mine"

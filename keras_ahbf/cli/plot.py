"""`keras-ahbf plot RUN_DIR`: PNG plots of a run (no backend imported)."""

import os

from keras_ahbf import plots
from keras_ahbf import runs
from keras_ahbf.cli._common import CLIError
from keras_ahbf.cli._common import check_output_path
from keras_ahbf.cli._common import say


def run(args) -> int:
    """Writes the plots of `args.run_dir` into `args.output`; returns 0.

    Raises:
        CLIError: for a missing or damaged log, or an `--output` that cannot
            be a folder.
    """
    out_dir = args.output
    if out_dir is None:
        out_dir = os.path.join(args.run_dir, runs.PLOTS_DIR)
    check_output_path("--output", out_dir, kind="directory")
    try:
        paths = plots.plot_run(args.run_dir, out_dir)
    except (FileNotFoundError, ValueError) as e:
        raise CLIError(str(e)) from None
    for path in paths:
        say(path)
    return 0

"""The `keras-ahbf` command: train, evaluate, export and plot AHBF-OKD models.

```
keras-ahbf train --dataset digits --output runs/digits        # ~2 min on 2 CPU cores
keras-ahbf train --dataset digits --baseline --output runs/b   # the target network alone
keras-ahbf train --dataset cifar100 --data-dir cifar100.npz   # the paper's recipe
keras-ahbf evaluate runs/digits                                # every branch and teacher
keras-ahbf export runs/digits --output resnet8.keras           # + a TF SavedModel
keras-ahbf plot runs/digits                                    # PNGs in runs/digits/plots
keras-ahbf train ... --distribute mirrored                     # data parallel, see below
```

The Keras backend is chosen as usual with `KERAS_BACKEND` (tensorflow, jax or
torch). Exit codes: 0 success, 2 bad options or bad data (a one-line message,
nothing trained), 3 training stopped on a NaN/infinite loss, 130 interrupted.
The backends' start-up log lines are hidden unless `--log-level warning|info`
(or `TF_CPP_MIN_LOG_LEVEL` in the environment) asks for them.

`train` writes into `--output` (see `keras_ahbf.runs`): `config.json` (the
resolved options), `checkpoints/epoch_NNNN.keras` (the full model after the
last completed epoch), `state.json` (the commit record: epochs completed and
one row of metrics per epoch), `log.csv`, `tensorboard/`, and at the end
`target.keras` (the deployable target network) and `summary.json`. Running
the same command again with the same `--output` resumes an interrupted run
(even one killed with SIGKILL) from its last completed epoch.

`train --distribute mirrored|multi-worker|data-parallel` trains data-parallel
with `keras_ahbf.make_distribution` (TensorFlow's `MirroredStrategy` /
`MultiWorkerMirroredStrategy` with `TF_CONFIG`, JAX's `DataParallel`);
`--batch-size` stays the global batch, and with several workers only the
chief writes `--output`.

Modules: `main` (the parser; imports nothing heavy), `train`, `evaluate`,
`export`, `plot` (one per command, imported when it runs).
"""

from keras_ahbf.cli._common import EXIT_INTERRUPTED
from keras_ahbf.cli._common import EXIT_NONFINITE
from keras_ahbf.cli._common import EXIT_USAGE
from keras_ahbf.cli._common import CLIError
from keras_ahbf.cli._common import tensorboard_available
from keras_ahbf.cli.main import build_parser
from keras_ahbf.cli.main import main
from keras_ahbf.runs import CONFIG_FILE
from keras_ahbf.runs import SUMMARY_FILE
from keras_ahbf.runs import TARGET_FILE
from keras_ahbf.runs import TENSORBOARD_DIR

__all__ = [
    "CLIError",
    "CONFIG_FILE",
    "EXIT_INTERRUPTED",
    "EXIT_NONFINITE",
    "EXIT_USAGE",
    "SUMMARY_FILE",
    "TARGET_FILE",
    "TENSORBOARD_DIR",
    "build_parser",
    "main",
    "tensorboard_available",
]

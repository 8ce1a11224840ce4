"""
Title: AHBF-OKD on CIFAR-100: the paper's training recipe
Author: keras_ahbf contributors
Date created: 2026/11/25
Last modified: 2026/11/25
Description: Train a CIFAR ResNet-32 with four hierarchical branches by online distillation, with the paper's SGD recipe, crash-safe checkpoints and fusion-weight logging.
Accelerator: GPU
"""

"""
## Introduction

Adaptive Hierarchy-Branch Fusion for Online Knowledge Distillation
(AHBF-OKD, Gong et al., AAAI 2023) trains a network (the **target**)
together with deeper copies of its last stage, the **branches**. Adaptive
fusion modules merge the branches level by level into **teacher
assistants** that distil into each other and into the target. Nothing but
the target is kept after training: here a plain ResNet-32.

This example reproduces the paper's CIFAR recipe with the public API of
`keras_ahbf`:

- ResNet-32, `B = 4` branches, `aux = 4` (branch depths 32, 40, 48, 56);
- SGD with Nesterov momentum 0.9, learning rate 0.1 divided by 10 at
  epochs 150 and 225 of 300, batch 128;
- weight decay 5e-4 as coupled L2 (PyTorch style) on every weight;
- temperature 3, distillation weight 1.5, `lambda_ta = 2`,
  `lambda_branch = 4`, distillation ramped up over 240 epochs;
- random crop with 4-pixel padding, horizontal flip, per-channel
  normalisation.

The full recipe needs a GPU (300 epochs). The same run is one command:
`keras-ahbf train --dataset cifar100 --data-dir PATH`.

**Data.** Set `CIFAR100_DIR` to a local copy of CIFAR-100 (an `.npz` with
`x_train`, `y_train`, `x_test`, `y_test`, or the extracted
`cifar-100-python` folder); without it the data comes from
tensorflow-datasets' prepared copy.

**Short run.** `python examples/train_cifar.py --quick` (or
`KERAS_AHBF_QUICK=1`) trains a ResNet-8 with two branches for two epochs on
256 images: a smoke test of the whole script. `KERAS_AHBF_OUTPUT_DIR`
chooses where files are written.
"""

"""
## Setup
"""

import importlib.util
import os
import sys
import tempfile

import keras
import numpy as np

import keras_ahbf
from keras_ahbf import data
from keras_ahbf import plots
from keras_ahbf import training

QUICK = "--quick" in sys.argv or os.environ.get("KERAS_AHBF_QUICK", "") not in ("", "0")
DATA_DIR = os.environ.get("CIFAR100_DIR") or None
OUTPUT_DIR = os.environ.get("KERAS_AHBF_OUTPUT_DIR") or os.path.join(
    tempfile.gettempdir(), "ahbf_cifar100"
)
SEED = 0

if QUICK:
    DEPTH, NUM_BRANCHES, AUX = 8, 2, 1
    EPOCHS, BATCH_SIZE, TRAIN_LIMIT, TEST_LIMIT = 2, 64, 256, 128
else:
    DEPTH, NUM_BRANCHES, AUX = 32, 4, 4
    EPOCHS, BATCH_SIZE, TRAIN_LIMIT, TEST_LIMIT = 300, 128, None, None

# The paper's schedule; with fewer epochs the milestones and the ramp-up
# scale in proportion (`training.scale_epochs`).
LEARNING_RATE = 0.1
MILESTONES = [training.scale_epochs(m, EPOCHS, 300) for m in (150, 225)]
RAMPUP_EPOCHS = training.scale_epochs(240, EPOCHS, 300)
WEIGHT_DECAY = 5e-4

keras.utils.set_random_seed(SEED)
print("Keras backend:", keras.backend.backend())

"""
## The data

`load_arrays` returns uint8 images and integer labels (it raises a
`keras_ahbf.data.DataError` naming the problem for a missing or malformed
copy). `make_dataset` builds the `tf.data` pipelines, which feed `fit` on
every backend: the training one shuffles and augments (pad 4, random crop
32, flip), both normalise with the CIFAR-100 statistics.
"""

(x_train, y_train), (x_test, y_test) = data.load_arrays(
    "cifar100", DATA_DIR, train_limit=TRAIN_LIMIT, test_limit=TEST_LIMIT
)
print(f"train: {x_train.shape}, test: {x_test.shape}")

train_ds = data.make_dataset(
    x_train, y_train, dataset="cifar100", batch_size=BATCH_SIZE, training=True, seed=SEED
)
test_ds = data.make_dataset(
    x_test, y_test, dataset="cifar100", batch_size=BATCH_SIZE, training=False
)
steps_per_epoch = training.steps_per_epoch(len(x_train), BATCH_SIZE)

"""
## The model

`resnet_cifar` builds the trunk (stem, stages 1 and 2), the hierarchical
branches (stage 3 with `n + b * aux` blocks, pooling, classifier) and the
`B - 1` adaptive fusion modules, as an `OnlineKDModel`. The loss, its
ramp-up and the coupled weight decay are options of the model; `fit` adds
the ramp-up callback by itself.
"""

model = keras_ahbf.models.resnet_cifar(
    depth=DEPTH,
    num_classes=100,
    num_branches=NUM_BRANCHES,
    aux=AUX,
    temperature=3.0,
    kd_weight=1.5,
    lambda_ta=2.0,
    lambda_branch=4.0,
    rampup_epochs=RAMPUP_EPOCHS,
    weight_decay=WEIGHT_DECAY,
)
print("blocks per branch:", model.branches.depths)
trainable = sum(int(np.prod(v.shape)) for v in model.target_model().trainable_variables)
print(f"target network: {trainable:,} trainable parameters")

"""
## The optimizer

`MultiStepLR` is PyTorch's step schedule as a Keras `LearningRateSchedule`:
it is driven by the optimizer's step counter, so it is saved with the
optimizer and resumes where it stopped. The weight decay is not given to
the optimizer: Keras' `weight_decay` argument is decoupled (AdamW style),
the paper's is the coupled L2 held by the model.
"""

schedule = training.MultiStepLR(
    LEARNING_RATE, MILESTONES, steps_per_epoch=steps_per_epoch, gamma=0.1
)
model.compile(
    optimizer=keras.optimizers.SGD(schedule, momentum=0.9, nesterov=True),
    # XLA's convolutions are slow on CPUs; JAX needs jit.
    jit_compile=keras.backend.backend() == "jax",
)

"""
## Callbacks: resumable training and the fusion weights

- `EpochCheckpoint` commits the full model (weights, optimizer state, the
  ramp-up epoch), `state.json` and `log.csv` after every epoch, atomically;
  `EpochCheckpoint.restore` reloads the last one, so running this script
  again after an interruption continues where it stopped.
- `FusionWeightLogger` records, per fusion level and epoch, the weight
  each module gives the previous assistant (the rest goes to the new
  branch); placed before `TensorBoard`, its values are logged there too.
"""

restored, state = keras_ahbf.callbacks.EpochCheckpoint.restore(OUTPUT_DIR)
initial_epoch = 0
if restored is not None:
    model, initial_epoch = restored, state["epochs_completed"]
    print(f"Resuming after epoch {initial_epoch}")

# One batch of normalised test images on which the weights are measured in
# inference mode.
probe_images = np.asarray(next(iter(test_ds))[0])
fusion_logger = keras_ahbf.callbacks.FusionWeightLogger(probe_images)
callbacks = [
    fusion_logger,
    keras_ahbf.callbacks.EpochCheckpoint(OUTPUT_DIR),
    keras.callbacks.TerminateOnNaN(),
]
if importlib.util.find_spec("tensorboard") is not None:
    callbacks.append(keras.callbacks.TensorBoard(os.path.join(OUTPUT_DIR, "tensorboard")))
else:
    print("(install the `tensorboard` package for TensorBoard logs)")

"""
## Training
"""

if initial_epoch < EPOCHS:
    model.fit(
        train_ds,
        epochs=EPOCHS,
        initial_epoch=initial_epoch,
        validation_data=test_ds,
        callbacks=callbacks,
        verbose=2,
    )

"""
## Results

`evaluate` reports every branch and every fused teacher assistant;
`branch_0_accuracy` is the target network. The paper reports the best
epoch's target accuracy; `state.json` holds every epoch's.
"""

results = model.evaluate(test_ds, return_dict=True, verbose=0)
for b in range(NUM_BRANCHES):
    print(f"branch {b} top-1: {results[f'branch_{b}_accuracy']:.4f}")
for m in range(1, NUM_BRANCHES):
    print(f"fused teacher {m} top-1: {results[f'ta_{m}_accuracy']:.4f}")
history = keras_ahbf.callbacks.EpochCheckpoint.read_state(OUTPUT_DIR)["history"]
best = max(row["val_branch_0_accuracy"] for row in history)
print(f"target top-1: last {history[-1]['val_branch_0_accuracy']:.4f}, best {best:.4f}")
for level, record in fusion_logger.weights.items():
    if "infer" in record:
        print(f"{level}: weight of the previous assistant per epoch {record['infer']}")

"""
## Plots and the deployable network

`keras_ahbf.plots` draws the accuracies, the loss terms and the fusion
weights per epoch (what `keras-ahbf plot` does). `target_model()` is the
plain ResNet: trunk + branch 0, nothing else.
"""

for path in plots.plot_history(history, os.path.join(OUTPUT_DIR, "plots")):
    print("plot:", path)

target = model.target_model(name=f"resnet{DEPTH}")
target.save(os.path.join(OUTPUT_DIR, f"resnet{DEPTH}_cifar100.keras"))
print("saved the target network to", os.path.join(OUTPUT_DIR, f"resnet{DEPTH}_cifar100.keras"))

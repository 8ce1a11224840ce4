"""
Title: AHBF-OKD on ImageNet: ResNet-18 with hierarchical branches
Author: keras_ahbf contributors
Date created: 2026/11/25
Last modified: 2026/11/25
Description: Train an ImageNet ResNet-18 whose stages 3 and 4 are repeated in deeper branches and fused adaptively, with the usual 90-epoch ResNet recipe.
Accelerator: GPU
"""

"""
## Introduction

On ImageNet the AHBF-OKD paper distils a ResNet-18: the shared trunk is the
7x7 stem, the max-pool and stages 1-2; every branch has its own stages 3
and 4, branch `b` with extra blocks that alternate between the two stages
(`aux * ceil(b / 2)` in stage 3, `aux * floor(b / 2)` in stage 4). The
paper reports 29.28 % top-1 error for the distilled ResNet-18, about 1.2
points below its baseline.

The paper gives no ImageNet recipe; this example uses the usual ResNet one
(90 epochs, SGD with Nesterov momentum 0.9, learning rate 0.1 divided by
10 every 30 epochs, batch 256, weight decay 1e-4) and the CIFAR ramp-up
ratio (80 % of the epochs). Preprocessing is the standard
random-resized-crop 224 + flip for training, resize 256 + centre crop 224
for evaluation. The same run is one command:
`keras-ahbf train --dataset imagenet2012 --data-dir DIR`.

**Data.** ImageNet cannot be downloaded automatically: set `IMAGENET_DIR`
to the folder holding `ILSVRC2012_img_train.tar` and
`ILSVRC2012_img_val.tar`; tensorflow-datasets prepares them on first use
(`keras_ahbf.data.load_imagenet`).

**Short run.** `python examples/train_imagenet.py --quick` (or
`KERAS_AHBF_QUICK=1`) replaces ImageNet by a handful of random images of
ImageNet-like size (they only exercise the code: nothing is learned),
trains two branches for one epoch and writes into `KERAS_AHBF_OUTPUT_DIR`.
"""

"""
## Setup
"""

import os
import sys
import tempfile

import keras
import numpy as np

import keras_ahbf
from keras_ahbf import data
from keras_ahbf import training

QUICK = "--quick" in sys.argv or os.environ.get("KERAS_AHBF_QUICK", "") not in ("", "0")
IMAGENET_DIR = os.environ.get("IMAGENET_DIR") or None
OUTPUT_DIR = os.environ.get("KERAS_AHBF_OUTPUT_DIR") or os.path.join(
    tempfile.gettempdir(), "ahbf_imagenet"
)
SEED = 0

if QUICK:
    NUM_BRANCHES, AUX, EPOCHS, BATCH_SIZE = 2, 1, 1, 4
else:
    NUM_BRANCHES, AUX, EPOCHS, BATCH_SIZE = 4, 1, 90, 256
MILESTONES = [training.scale_epochs(m, EPOCHS, 90) for m in (30, 60)]
RAMPUP_EPOCHS = training.scale_epochs(72, EPOCHS, 90)

keras.utils.set_random_seed(SEED)
print("Keras backend:", keras.backend.backend())

"""
## The data

`load_imagenet` returns the `tf.data` splits of tensorflow-datasets'
`imagenet2012` (unbatched `(image, label)` pairs of varying sizes);
`make_dataset(..., dataset="imagenet2012")` crops, flips, batches and
normalises them. In the short run the same pipeline is fed random arrays.
"""

if IMAGENET_DIR is not None and not QUICK:
    train_images = data.load_imagenet(IMAGENET_DIR, "train")
    test_images = data.load_imagenet(IMAGENET_DIR, "validation")
    train_size = int(train_images.cardinality())
    train_ds = data.make_dataset(
        train_images, None, dataset="imagenet2012", batch_size=BATCH_SIZE,
        training=True, seed=SEED,
    )
    test_ds = data.make_dataset(
        test_images, None, dataset="imagenet2012", batch_size=BATCH_SIZE, training=False
    )
else:
    if not QUICK:
        raise SystemExit(
            "Set IMAGENET_DIR to the folder with the ILSVRC2012 tar files, "
            "or run with --quick for a smoke run on random images."
        )
    rng = np.random.default_rng(SEED)
    x = rng.integers(0, 256, size=(2 * BATCH_SIZE, 160, 200, 3), dtype=np.uint8)
    y = rng.integers(0, 1000, size=(2 * BATCH_SIZE,))
    train_size = BATCH_SIZE
    train_ds = data.make_dataset(
        x[:BATCH_SIZE], y[:BATCH_SIZE], dataset="imagenet2012",
        batch_size=BATCH_SIZE, training=True, seed=SEED,
    )
    test_ds = data.make_dataset(
        x[BATCH_SIZE:], y[BATCH_SIZE:], dataset="imagenet2012",
        batch_size=BATCH_SIZE, training=False,
    )
images, labels = next(iter(train_ds))
print("a training batch:", tuple(images.shape), tuple(labels.shape))

"""
## The model

`resnet_imagenet(18)` builds the trunk, the hierarchical branches (stages 3
and 4 in one `ResidualStages` layer per branch) and the adaptive fusion
modules, at 512 channels. Trunk + branch 0 is exactly torchvision's
ResNet-18 (11,689,512 parameters).
"""

model = keras_ahbf.models.resnet_imagenet(
    18,
    num_classes=1000,
    num_branches=NUM_BRANCHES,
    aux=AUX,
    rampup_epochs=RAMPUP_EPOCHS,
    weight_decay=1e-4,
)
print("blocks in stages 3 and 4 per branch:", model.branches.depths)
trainable = sum(int(np.prod(v.shape)) for v in model.target_model().trainable_variables)
print(f"target ResNet-18: {trainable:,} trainable parameters")

"""
## Training

SGD with Nesterov momentum and the step schedule, crash-safe checkpoints
after every epoch (run the script again to resume) and the fusion weights
in the logs.
"""

schedule = training.MultiStepLR(
    0.1, MILESTONES, steps_per_epoch=training.steps_per_epoch(train_size, BATCH_SIZE)
)
model.compile(
    optimizer=keras.optimizers.SGD(schedule, momentum=0.9, nesterov=True),
    jit_compile=keras.backend.backend() == "jax",
)
restored, state = keras_ahbf.callbacks.EpochCheckpoint.restore(OUTPUT_DIR)
initial_epoch = 0
if restored is not None:
    model, initial_epoch = restored, state["epochs_completed"]
    print(f"Resuming after epoch {initial_epoch}")

if initial_epoch < EPOCHS:
    model.fit(
        train_ds,
        epochs=EPOCHS,
        initial_epoch=initial_epoch,
        validation_data=test_ds,
        callbacks=[
            keras_ahbf.callbacks.FusionWeightLogger(),
            keras_ahbf.callbacks.EpochCheckpoint(OUTPUT_DIR),
            keras.callbacks.TerminateOnNaN(),
        ],
        verbose=2,
    )

"""
## Results and the deployable ResNet-18
"""

history = keras_ahbf.callbacks.EpochCheckpoint.read_state(OUTPUT_DIR)["history"]
last = history[-1]
for b in range(NUM_BRANCHES):
    print(f"branch {b} top-1: {last[f'val_branch_{b}_accuracy']:.4f}")
for m in range(1, NUM_BRANCHES):
    print(f"fused teacher {m} top-1: {last[f'val_ta_{m}_accuracy']:.4f}, "
          f"fusion weight of the previous assistant: {last[f'val_fusion_{m}_weight']:.3f}")

target = model.target_model(name="resnet18")
path = os.path.join(OUTPUT_DIR, "resnet18_imagenet.keras")
target.save(path)
print("saved the target network to", path)

"""
Title: Online distillation with hierarchical branches for your own network
Author: keras_ahbf contributors
Date created: 2026/11/25
Last modified: 2026/11/25
Description: Turn a small custom CNN and a `keras.applications` network into AHBF-OKD models with `keras_ahbf.models.from_backbone`.
Accelerator: None
"""

"""
## Introduction

AHBF-OKD (Adaptive Hierarchy-Branch Fusion for Online Knowledge
Distillation, Gong et al., AAAI 2023) trains a network together with
deeper copies of its last stage(s). The network is split into a shared
**trunk** and **branches**: branch `b` repeats the last stage with
`depth_0 + b * aux` blocks, and adaptive fusion modules merge the branches
into "teacher assistants" that distil into the target, branch 0. After
training, trunk + branch 0 is exactly the original network.

`keras_ahbf.models` ships the paper's backbones (`resnet_cifar`,
`resnet_imagenet`, `vgg_cifar`, `densenet_cifar`, `mobilenet_v2_cifar`).
For any other Keras network, `keras_ahbf.models.from_backbone` needs two
things:

1. **where the shared trunk ends**: the name of a layer of the network
   (`trunk_end`); everything up to it is shared;
2. **a stage of a given depth** for the branches: either derived from the
   network itself (the part after `trunk_end`, with its last residual block
   repeated), a template layer with a depth argument, or a function
   `stage_fn(depth) -> layer`.

This example shows each way on a small custom CNN, then splits a
`keras.applications.MobileNetV2` (built without weights) at a stage
boundary.

Run it with `--quick` (or `KERAS_AHBF_QUICK=1`) for a few-second smoke run.
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

QUICK = "--quick" in sys.argv or os.environ.get("KERAS_AHBF_QUICK", "") not in ("", "0")
EPOCHS = 1 if QUICK else 4
NUM_SAMPLES = 32 if QUICK else 1024
NUM_CLASSES = 4
IMAGE_SIZE = 32
keras.utils.set_random_seed(42)

"""
## Data

A synthetic task that small CNNs learn in a few epochs: every class
brightens one quadrant of a noisy 32x32 image. Swap in your own
`(images, labels)` arrays or `tf.data.Dataset` (for CIFAR, see
`keras_ahbf.data`).
"""


def make_images(n, seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, NUM_CLASSES, n)
    x = rng.normal(size=(n, IMAGE_SIZE, IMAGE_SIZE, 3)).astype("float32") * 0.5
    half = IMAGE_SIZE // 2
    for k in range(NUM_CLASSES):
        r, c = divmod(k, 2)
        x[y == k, r * half : (r + 1) * half, c * half : (c + 1) * half] += 1.5
    return x, y.astype("int32")


x_train, y_train = make_images(NUM_SAMPLES, seed=0)
x_test, y_test = make_images(max(NUM_SAMPLES // 4, 16), seed=1)

"""
## A small custom CNN

Any functional Keras model works. Ours has a stem, a strided convolution
and two residual blocks; we will share everything up to `"down_relu"`.
"""


def residual_block(x, filters, name):
    h = keras.layers.Conv2D(filters, 3, padding="same", name=f"{name}_conv1")(x)
    h = keras.layers.BatchNormalization(name=f"{name}_bn1")(h)
    h = keras.layers.ReLU(name=f"{name}_relu1")(h)
    h = keras.layers.Conv2D(filters, 3, padding="same", name=f"{name}_conv2")(h)
    h = keras.layers.BatchNormalization(name=f"{name}_bn2")(h)
    x = keras.layers.Add(name=f"{name}_add")([x, h])
    return keras.layers.ReLU(name=f"{name}_out")(x)


def small_cnn():
    inputs = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 3), name="images")
    x = keras.layers.Conv2D(16, 3, padding="same", name="stem_conv")(inputs)
    x = keras.layers.BatchNormalization(name="stem_bn")(x)
    x = keras.layers.ReLU(name="stem_relu")(x)
    x = keras.layers.Conv2D(32, 3, strides=2, padding="same", name="down_conv")(x)
    x = keras.layers.BatchNormalization(name="down_bn")(x)
    x = keras.layers.ReLU(name="down_relu")(x)
    x = residual_block(x, 32, "res1")
    x = residual_block(x, 32, "res2")
    return keras.Model(inputs, x, name="small_cnn")


backbone = small_cnn()

"""
### Way 1: let `from_backbone` derive the stage

With no `stage`, the part after `trunk_end` becomes branch 0 unchanged,
and deeper branches repeat its last residual block (`res2`, found
automatically; name another one with `repeat_block=(first_layer,
last_layer)`). With `num_branches=3, aux=1` the branches hold 1, 2 and 3
copies of it.
"""

model = keras_ahbf.models.from_backbone(
    backbone,
    trunk_end="down_relu",
    num_classes=NUM_CLASSES,
    num_branches=3,
    aux=1,
    weight_decay=5e-4,
    rampup_epochs=EPOCHS,
)
print("blocks per branch:", [len(s.blocks) for s in model.branches.stages])
model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True))
model.fit(x_train, y_train, batch_size=32, epochs=EPOCHS, verbose=2)

"""
`evaluate` reports every branch and every fused teacher assistant;
`target_model()` is the deployable network: the original `small_cnn` plus a
global-average-pooling + Dense classifier.
"""

print(model.evaluate(x_test, y_test, verbose=0, return_dict=True))
target = model.target_model(name="small_cnn_classifier")
predictions = np.argmax(target.predict(x_test, verbose=0), axis=-1)
print("target accuracy:", np.mean(predictions == y_test))

"""
### Way 2: a stage function of the depth

To grow the branches differently, give a function `stage_fn(depth)` that
returns a new layer, and the depth of branch 0 (`base_depth`). The layers
of the backbone after `trunk_end` are then not used. Register the function
so that saved models can be loaded again.
"""


@keras.saving.register_keras_serializable(package="custom_backbone_example")
def conv_stage(depth):
    layers = []
    for i in range(depth):
        layers += [
            keras.layers.Conv2D(48, 3, padding="same", use_bias=False, name=f"conv_{i}"),
            keras.layers.BatchNormalization(name=f"bn_{i}"),
            keras.layers.ReLU(name=f"relu_{i}"),
        ]
    return keras.Sequential(layers, name="conv_stage")


model_fn = keras_ahbf.models.from_backbone(
    small_cnn(),
    trunk_end="down_relu",
    stage=conv_stage,
    base_depth=2,
    num_classes=NUM_CLASSES,
    num_branches=3,
    aux=2,
    fusion="se",  # fusion modules with squeeze-and-excitation attention
)
print("depth per branch:", model_fn.branches.depths)
model_fn.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9))
model_fn.fit(x_train, y_train, batch_size=32, epochs=1, verbose=2)

"""
A template layer with a depth argument works too, e.g.
`stage=keras_ahbf.layers.ResidualStage(64, depth=2, strides=1)` (set
`depth_key=` if your layer calls it differently).

### Clear errors before training

A split point that does not exist is reported with valid names, and
branches whose feature maps cannot be fused (here: every added layer halves
the resolution) are rejected when the model is built:
"""

try:
    keras_ahbf.models.from_backbone(small_cnn(), "down_rel", num_classes=NUM_CLASSES)
except ValueError as error:
    print("ValueError:", str(error)[:160], "...")


@keras.saving.register_keras_serializable(package="custom_backbone_example")
def strided_stage(depth):
    return keras.Sequential(
        [keras.layers.Conv2D(32, 3, strides=2, padding="same") for _ in range(depth)]
    )


try:
    keras_ahbf.models.from_backbone(
        small_cnn(), "down_relu", strided_stage, base_depth=1,
        num_classes=NUM_CLASSES, num_branches=2,
    )
except ValueError as error:
    print("ValueError:", str(error)[:160], "...")

"""
## A network from `keras.applications`

Build it without weights (or with pretrained ones: branch 0 then starts
from them) and without its classifier, and split it at a stage boundary.
For MobileNetV2, `"block_12_add"` ends the 96-channel stage: the trunk is
everything up to it; each branch is the 160- and 320-channel stages and
the final 1x1 convolution, with the last residual block (`block_15`)
repeated in deeper branches.
"""

mobilenet = keras.applications.MobileNetV2(
    weights=None,
    input_shape=(IMAGE_SIZE, IMAGE_SIZE, 3),
    include_top=False,
    alpha=0.35,
)
model_app = keras_ahbf.models.from_backbone(
    mobilenet,
    trunk_end="block_12_add",
    num_classes=NUM_CLASSES,
    num_branches=2 if QUICK else 3,
    aux=1,
)
print("blocks per branch:", [len(s.blocks) for s in model_app.branches.stages])
model_app.compile(optimizer=keras.optimizers.SGD(0.02, momentum=0.9))
model_app.fit(
    x_train, y_train, batch_size=32, epochs=1 if QUICK else 2, verbose=2
)

"""
The same works for ResNet50 at a stage boundary, e.g.
`from_backbone(keras.applications.ResNet50(weights=None, include_top=False,
input_shape=(32, 32, 3)), "conv4_block6_out", num_classes=...)`: the
branches are ResNet50's stage 5 with extra copies of its last block.

## Saving

An `OnlineKDModel` saves and loads as a `.keras` file like any Keras model;
for deployment, save only the target network.
"""

output_dir = os.environ.get("KERAS_AHBF_OUTPUT_DIR", tempfile.gettempdir())
path = os.path.join(output_dir, "small_cnn_target.keras")
target.save(path)
reloaded = keras.saving.load_model(path)
np.testing.assert_allclose(
    reloaded.predict(x_test[:8], verbose=0), target.predict(x_test[:8], verbose=0),
    rtol=1e-5, atol=1e-5,
)
print("saved the target network to", path)

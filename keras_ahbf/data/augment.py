"""Image transforms of the `tf.data` pipelines, in TensorFlow ops.

Augmentation of the paper's recipe: for CIFAR a 4-pixel zero pad, a random
crop back to 32x32 and a random horizontal flip; for the 8x8
digits a 1-pixel pad and crop without flip; for ImageNet the standard
random-resized-crop and flip (evaluation: resize 256, centre-crop 224).
Then per-channel normalisation `(x / 255 - mean) / std`.

TensorFlow is imported when a transform is first traced, not at import.
"""

from __future__ import annotations

from keras_ahbf.data import _utils
from keras_ahbf.data.datasets import normalization_stats

__all__ = ["imagenet_preprocess"]

IMAGENET_SIZE = 224
IMAGENET_RESIZE = 256


def normalize(images, dataset):
    """`(images / 255 - mean) / std` in float32, with `dataset`'s statistics."""
    tf = _utils.tf()
    mean, std = normalization_stats(dataset)
    images = tf.cast(images, tf.float32) / 255.0
    return (images - tf.constant(mean)) / tf.constant(std)


def pad_crop_flip(image, seed, *, pad, flip):
    """Zero-pads `image` by `pad` pixels, crops it back, maybe flips it.

    Args:
        image: tensor `(H, W, C)` with a static shape.
        seed: int tensor of shape `(2,)`. Seed of the stateless random ops.
        pad: int. Padding on every side, in pixels.
        flip: bool. Also flip left-right with probability 1/2.

    Returns:
        A tensor of the shape and dtype of `image`.
    """
    tf = _utils.tf()
    shape = image.shape  # static (H, W, C)
    seeds = tf.random.experimental.stateless_split(seed, 2)
    image = tf.pad(image, [[pad, pad], [pad, pad], [0, 0]])
    image = tf.image.stateless_random_crop(image, shape, seed=seeds[0])
    if flip:
        image = tf.image.stateless_random_flip_left_right(image, seed=seeds[1])
    return image


def imagenet_geometry(image, training, seed=None):
    """Crops/resizes an ImageNet image to 224x224; float32 0..255.

    Training: random-resized-crop (area 8%-100%, aspect ratio 3/4-4/3) and a
    random flip, stateless when `seed` (shape `(2,)`) is given. Evaluation:
    resize the shorter side to 256, then the central crop.
    """
    tf = _utils.tf()
    image = tf.convert_to_tensor(image)
    if training:
        image = _random_resized_crop_and_flip(tf, image, seed)
    else:
        image = _resize_and_centre_crop(tf, image)
    image = tf.clip_by_value(tf.cast(image, tf.float32), 0.0, 255.0)
    return tf.ensure_shape(image, [IMAGENET_SIZE, IMAGENET_SIZE, 3])


def _random_resized_crop_and_flip(tf, image, seed):
    size = IMAGENET_SIZE
    bbox = tf.constant([0.0, 0.0, 1.0, 1.0], shape=[1, 1, 4])
    kwargs = dict(
        image_size=tf.shape(image),
        bounding_boxes=bbox,
        min_object_covered=0.0,
        aspect_ratio_range=(3.0 / 4.0, 4.0 / 3.0),
        area_range=(0.08, 1.0),
        max_attempts=10,
        use_image_if_no_bounding_boxes=True,
    )
    if seed is None:
        begin, crop_size, _ = tf.image.sample_distorted_bounding_box(**kwargs)
    else:
        seeds = tf.random.experimental.stateless_split(seed, 2)
        sample = tf.image.stateless_sample_distorted_bounding_box
        begin, crop_size, _ = sample(seed=seeds[0], **kwargs)
    image = tf.slice(image, begin, crop_size)
    image = tf.image.resize(image, [size, size], method="bilinear")
    if seed is None:
        return tf.image.random_flip_left_right(image)
    return tf.image.stateless_random_flip_left_right(image, seed=seeds[1])


def _resize_and_centre_crop(tf, image):
    size = IMAGENET_SIZE
    shape = tf.shape(image)
    h = tf.cast(shape[0], tf.float32)
    w = tf.cast(shape[1], tf.float32)
    scale = IMAGENET_RESIZE / tf.minimum(h, w)
    new_h = tf.cast(tf.round(h * scale), tf.int32)
    new_w = tf.cast(tf.round(w * scale), tf.int32)
    image = tf.image.resize(image, [new_h, new_w], method="bilinear")
    top = (new_h - size) // 2
    left = (new_w - size) // 2
    return tf.image.crop_to_bounding_box(image, top, left, size, size)


def imagenet_preprocess(image, label, training, *, seed=None):
    """Standard ImageNet preprocessing for one image.

    Training: random-resized-crop to 224x224 (area 8%-100% of the image,
    aspect ratio 3/4-4/3, the whole image if no crop is found in 10 tries)
    and a random horizontal flip. Evaluation: resize the shorter side to 256
    and take the central 224x224 crop. Both then normalise per channel with
    the ImageNet mean and std.

    Args:
        image: uint8 tensor `(height, width, 3)`.
        label: integer tensor. Class id.
        training: bool. Whether to apply the random training transforms.
        seed: optional int32/int64 tensor of shape `(2,)`. Seed for
            stateless random ops; `None` uses stateful random ops.

    Returns:
        Tuple `(image, label)`: float32 `(224, 224, 3)` normalised image and
        int32 label.

    Raises:
        TypeError: if `training` is not a bool.

    Example:

    ```python
    ds = load_imagenet(manual_dir, "validation")
    ds = ds.map(lambda x, y: imagenet_preprocess(x, y, training=False))
    ```
    """
    training = _utils.check_bool("training", training)
    tf = _utils.tf()
    image = imagenet_geometry(image, training, seed)
    return normalize(image, "imagenet2012"), tf.cast(label, tf.int32)

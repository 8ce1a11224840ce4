"""`make_dataset`: batched, augmented, normalised `tf.data` pipelines.

A pipeline is built in four steps, one function each: the source (validated
arrays or a dataset of `(image, label)` pairs), shuffling and per-image
augmentation, batching with the optional batch-level RandAugment, and
normalisation. Only TensorFlow ops and Keras preprocessing layers run inside
`Dataset.map`, so the pipelines feed `model.fit` on every Keras backend.
"""

from __future__ import annotations

from keras_ahbf.data import _utils
from keras_ahbf.data import augment as _augment
from keras_ahbf.data.datasets import dataset_info
from keras_ahbf.data.validation import check_example_dataset
from keras_ahbf.data.validation import validate_arrays

__all__ = ["STRONG_AUGMENTATIONS", "make_dataset"]

STRONG_AUGMENTATIONS = ("randaugment",)
_DATASET_SHUFFLE_BUFFER = 10_000


def make_dataset(
    x,
    y,
    *,
    dataset,
    batch_size,
    training,
    augment=True,
    strong_augment=None,
    shuffle_buffer=None,
    seed=None,
    drop_remainder=False,
):
    """Builds a batched, normalised `tf.data` pipeline for `model.fit`.

    Training pipelines shuffle (reshuffling every epoch) and, with
    `augment=True`, augment each image: for CIFAR a 4-pixel zero pad, a
    random 32x32 crop and a random horizontal flip; for digits a 1-pixel pad
    and random crop (a shift of up to one pixel) without flip, since digits
    are not mirror-invariant; for ImageNet `imagenet_preprocess`'s
    random-resized-crop and flip. Images are then normalised per channel,
    `(x / 255 - mean) / std` with the statistics in `DATASETS`. Evaluation
    pipelines (`training=False`) keep the order and only normalise (ImageNet:
    resize 256 and centre-crop 224), so they are deterministic.

    `strong_augment="randaugment"` adds, on top of the standard training
    augmentation, `keras.layers.RandAugment(value_range=(0, 255))` on each
    batch (two operations drawn per batch, their magnitudes per image;
    per-image application is about 10x slower on CPU); labels stay integer
    class ids.

    Args:
        x: uint8 array `(N, H, W, C)` of images on the 0..255 scale (see
            `validate_arrays`), or a `tf.data.Dataset` of unbatched
            `(image, label)` pairs (e.g. from `load_imagenet`), then `y` must
            be None.
        y: integer array `(N,)` of class ids, or None with a dataset `x`.
        dataset: str. Key of `DATASETS`: selects the augmentation, the image
            shape and the normalisation statistics.
        batch_size: int. Batch size, >= 1.
        training: bool. Build a training (shuffled, augmented) or evaluation
            pipeline.
        augment: bool. Apply the standard augmentation when training.
        strong_augment: None or `"randaugment"`; only with `training=True`
            and `augment=True`.
        shuffle_buffer: int or None. Shuffle buffer size; None uses the whole
            array (or 10,000 elements for a dataset `x`).
        seed: int or None. Seed for shuffling and augmentation; with a seed
            the pipeline yields the same sequence of epochs in every run.
        drop_remainder: bool. Drop the last incomplete batch.

    Returns:
        A `tf.data.Dataset` yielding `(images, labels)`: float32 normalised
        images `(batch, H, W, C)` and int32 labels `(batch,)`.

    Raises:
        ValueError: for invalid arguments or unsupported combinations
            (`strong_augment` without `training` and `augment`).
        TypeError: for arguments of the wrong type.
        DataError: if the arrays or the dataset's elements are malformed
            (see `validate_arrays`).

    Example:

    >>> (x_train, y_train), _ = load_arrays("digits")
    >>> ds = make_dataset(x_train, y_train, dataset="digits",
    ...                   batch_size=32, training=True, seed=0)
    >>> images, labels = next(iter(ds))
    >>> tuple(images.shape), tuple(labels.shape)
    ((32, 8, 8, 1), (32,))
    """
    info = dataset_info(dataset)
    batch_size = _utils.check_int("batch_size", batch_size, 1)
    training = _utils.check_bool("training", training)
    augment = _utils.check_bool("augment", augment)
    drop_remainder = _utils.check_bool("drop_remainder", drop_remainder)
    shuffle_buffer = _utils.check_optional_int("shuffle_buffer", shuffle_buffer, 1)
    seed = _utils.check_optional_int("seed", seed, 0)
    _check_strong_augment(strong_augment, training, augment)

    tf = _utils.tf()
    ds, buffer = _source(x, y, info, training)
    if training:
        ds = ds.shuffle(
            shuffle_buffer or buffer, seed=seed, reshuffle_each_iteration=True
        )
    ds = _per_image_transforms(ds, dataset, training and augment, seed)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    if strong_augment == "randaugment":
        ds = _randaugment(ds, seed)
    ds = ds.map(
        lambda images, labels: (
            _augment.normalize(images, dataset),
            tf.cast(labels, tf.int32),
        ),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    return ds.prefetch(tf.data.AUTOTUNE)


def _check_strong_augment(strong_augment, training, augment):
    if strong_augment is None:
        return
    if strong_augment not in STRONG_AUGMENTATIONS:
        raise ValueError(
            f"`strong_augment` must be None or one of "
            f"{list(STRONG_AUGMENTATIONS)}. "
            f"Received: strong_augment={strong_augment!r}"
        )
    if not training:
        raise ValueError(
            "`strong_augment` is a training augmentation and cannot be "
            "used with training=False. Received: "
            f"strong_augment={strong_augment!r}, training=False"
        )
    if not augment:
        raise ValueError(
            "`strong_augment` adds to the standard augmentation and "
            "needs augment=True. Received: "
            f"strong_augment={strong_augment!r}, augment=False"
        )


def _source(x, y, info, training):
    """`(dataset of (image, label) pairs, default shuffle buffer)`."""
    tf = _utils.tf()
    is_imagenet = info.name == "imagenet2012"
    if isinstance(x, tf.data.Dataset):
        if y is not None:
            raise ValueError(
                "When `x` is a tf.data.Dataset of (image, label) pairs, `y` "
                f"must be None. Received: y of type {type(y).__name__}"
            )
        check_example_dataset(
            x,
            info.name,
            image_shape=None if is_imagenet else info.image_shape,
            num_classes=info.num_classes,
        )
        return x, _DATASET_SHUFFLE_BUFFER
    if y is None:
        raise ValueError(
            "`y` (integer labels) is required when `x` is an array. "
            "Received: y=None"
        )
    x, y = validate_arrays(
        x,
        y,
        info.num_classes,
        name=f"{info.name} {'train' if training else 'eval'} arrays",
        image_shape=None if is_imagenet else info.image_shape,
    )
    return tf.data.Dataset.from_tensor_slices((x, y)), len(x)


def _per_image_transforms(ds, dataset, augment, seed):
    """Augments each image (training) or, for ImageNet, crops it to 224."""
    tf = _utils.tf()
    autotune = tf.data.AUTOTUNE
    is_imagenet = dataset == "imagenet2012"
    if not augment:
        if is_imagenet:
            ds = ds.map(
                lambda image, label: (
                    _augment.imagenet_geometry(image, False),
                    label,
                ),
                num_parallel_calls=autotune,
            )
        return ds

    # Per-element seeds for stateless random ops: deterministic given
    # `seed`, different in every epoch.
    aug_seed = None if seed is None else seed + 1
    seeds = tf.data.Dataset.random(
        seed=aug_seed, rerandomize_each_iteration=True
    ).batch(2, drop_remainder=True)
    ds = tf.data.Dataset.zip((ds, seeds))
    if is_imagenet:

        def augment_fn(element, s):
            image, label = element
            return _augment.imagenet_geometry(image, True, s), label

    else:
        pad, flip = (1, False) if dataset == "digits" else (4, True)

        def augment_fn(element, s):
            image, label = element
            image = _augment.pad_crop_flip(image, s, pad=pad, flip=flip)
            return tf.cast(image, tf.float32), label

    return ds.map(augment_fn, num_parallel_calls=autotune)


def _randaugment(ds, seed):
    """RandAugment on whole batches of float32 0..255 images."""
    import keras

    tf = _utils.tf()
    # Applied to whole batches: about 10x faster than per image, since the
    # layer evaluates every candidate operation and selects with `where`.
    # The operations are drawn per batch, magnitudes per image.
    layer = keras.layers.RandAugment(
        value_range=(0, 255), seed=seed, data_format="channels_last"
    )
    return ds.map(
        lambda images, labels: (layer(tf.cast(images, tf.float32)), labels),
        num_parallel_calls=tf.data.AUTOTUNE,
    )

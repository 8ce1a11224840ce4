"""`keras_ahbf.data.augment`: ImageNet preprocessing checked against NumPy."""

import numpy as np
import tensorflow as tf

from keras_ahbf import data as D


def test_imagenet_preprocess():
    image = tf.fill([300, 400, 3], tf.constant(128, tf.uint8))
    mean = np.array([0.485, 0.456, 0.406], np.float32)
    std = np.array([0.229, 0.224, 0.225], np.float32)
    expected = (128 / 255.0 - mean) / std
    for training in (False, True):
        seed = tf.constant([1, 2], tf.int64) if training else None
        out, label = D.imagenet_preprocess(
            image, tf.constant(7, tf.int64), training, seed=seed
        )
        assert out.shape == (224, 224, 3) and out.dtype == tf.float32
        assert label.dtype == tf.int32 and int(label) == 7
        np.testing.assert_allclose(
            out.numpy(), np.broadcast_to(expected, (224, 224, 3)), atol=1e-4
        )
    # Evaluation: resize the short side to 256, centre-crop 224.
    ramp = np.arange(512, dtype=np.float32)[None, :, None] / 2
    ramp = np.tile(ramp, (256, 1, 3)).astype(np.uint8)
    out, _ = D.imagenet_preprocess(tf.constant(ramp), 0, False)
    pixels = (out.numpy() * std + mean) * 255
    # 256x512 -> no resize; crop columns 144..367.
    np.testing.assert_allclose(
        pixels[0, :, 0], np.floor(np.arange(144, 368) / 2), atol=0.02
    )


def test_pad_crop_flip_is_a_shifted_copy():
    from keras_ahbf.data.augment import pad_crop_flip

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (6, 6, 1), dtype=np.uint8)
    out = pad_crop_flip(tf.constant(image), tf.constant([3, 4], tf.int64), pad=2, flip=False)
    out = out.numpy()
    padded = np.pad(image, ((2, 2), (2, 2), (0, 0)))
    crops = [padded[i:i + 6, j:j + 6] for i in range(5) for j in range(5)]
    assert any(np.array_equal(out, c) for c in crops)

"""Test helpers of keras_ahbf (used by its test suite; importable by yours).

- `keras_ahbf.testing.test_case`: `run_layer_test` (build, call, config
  round trip, `.keras` round trip inside a functional model, float16 and
  bfloat16 policies) and the checks every model builder passes.
- `keras_ahbf.testing.test_utils`: small helpers (`to_numpy`,
  `trainable_count`, `gradients`, `learnable_images`).

Nothing here is imported by `keras_ahbf` itself.
"""

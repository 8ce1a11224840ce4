"""Small pure-Python helpers shared by the package (no Keras import)."""

from keras_ahbf.utils.validation import check_bool
from keras_ahbf.utils.validation import check_choice
from keras_ahbf.utils.validation import check_float
from keras_ahbf.utils.validation import check_int

__all__ = ["check_bool", "check_choice", "check_float", "check_int"]

"""`python -m keras_ahbf.cli`: the `keras-ahbf` command."""

import sys

from keras_ahbf.cli.main import main

sys.exit(main())

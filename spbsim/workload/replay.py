"""Old import path of :mod:`spbsim.trace.replay`, kept for one release (see CHANGELOG)."""
import sys

from spbsim.trace import replay as _module

sys.modules[__name__] = _module

"""Old import path of :mod:`spbsim.trace.placement`, kept for one release (see CHANGELOG)."""
import sys

from spbsim.trace import placement as _module

sys.modules[__name__] = _module

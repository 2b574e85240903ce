"""Old import path of :mod:`spbsim.trace.tracefmt`, kept for one release (see CHANGELOG)."""
import sys

from spbsim.trace import tracefmt as _module

sys.modules[__name__] = _module

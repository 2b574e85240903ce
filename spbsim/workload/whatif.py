"""Old import path of :mod:`spbsim.trace.whatif`, kept for one release (see CHANGELOG)."""
import sys

from spbsim.trace import whatif as _module

sys.modules[__name__] = _module

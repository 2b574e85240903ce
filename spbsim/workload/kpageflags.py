"""Old import path of :mod:`spbsim.trace.kpageflags`, kept for one release (see CHANGELOG)."""
import sys

from spbsim.trace import kpageflags as _module

sys.modules[__name__] = _module

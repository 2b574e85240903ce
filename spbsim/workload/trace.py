"""Old import path of :mod:`spbsim.trace.ftrace`, kept for one release (see CHANGELOG)."""
import sys

from spbsim.trace import ftrace as _module

sys.modules[__name__] = _module

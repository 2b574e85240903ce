"""A recording's manifest.json: reading it, and which kernel (and so which
allocator model and trace order) it names."""
from __future__ import annotations

import json
import re
from pathlib import Path

from spbsim.errors import SpbsimError

__all__ = ["read_manifest", "kernel_release", "release_version", "policy_for_kernel"]


def read_manifest(path) -> dict:
    """A recording's manifest.json as a dict ({} when there is none); one
    line naming the file on unreadable JSON or another JSON value."""
    mp = Path(path)
    if not mp.is_file():
        return {}
    try:
        manifest = json.loads(mp.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise SpbsimError(f"{mp}: unreadable JSON: {e}") from None
    if not isinstance(manifest, dict):
        raise SpbsimError(f"{mp}: expected a JSON object")
    return manifest


def kernel_release(manifest: dict):
    """The manifest's ``kernel.release`` (e.g. "6.12.117+deb12-amd64"), or None."""
    k = manifest.get("kernel")
    release = k.get("release") if isinstance(k, dict) else None
    return str(release) if release else None


def release_version(release):
    """(major, minor) of a kernel release string ("6.12.117+deb12-amd64" ->
    (6, 12)), or None."""
    m = re.match(r"(\d+)\.(\d+)", release or "")
    return (int(m.group(1)), int(m.group(2))) if m else None


def policy_for_kernel(release):
    """(policy, note or None) for a kernel release string: 6.12 -> stock:6.12,
    6.13 and newer -> stock (the v6.19/7.0 model), 6.1 -> stock:6.1 when that
    variant exists (else stock:6.12, said in the note)."""
    from spbsim.policy import STOCK_PRESETS
    ver = release_version(release)
    if ver is None:
        return "stock", "kernel version unknown: policy stock (the recent kernel model); " \
                        "pass --policy to choose"
    if ver >= (6, 13):
        return "stock", None
    if ver == (6, 12):
        return "stock:6.12", None
    if ver <= (6, 1):
        if "6.1" in STOCK_PRESETS:
            return "stock:6.1", None if ver == (6, 1) else \
                f"kernel {release}: no model older than 6.1; using stock:6.1"
        return "stock:6.12", f"kernel {release}: no 6.1 allocator model yet; using stock:6.12"
    return "stock:6.12", f"kernel {release}: nearest model stock:6.12"

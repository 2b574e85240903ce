"""Where the tests find the real kernel recordings: $SPBSIM_ORACLE, else
<repo>/../shared/oracle (CI lays shared/ beside the clone)."""
import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def oracle_root() -> Path:
    env = os.environ.get("SPBSIM_ORACLE")
    return Path(env) if env else REPO.parent / "shared" / "oracle"

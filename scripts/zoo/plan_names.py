"""How `sod2 run` names output files: the tensor name with unsafe characters replaced by `_`
(must match `sanitize` in core/cli/src/plan_cmds.rs)."""
import re


def sanitize(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.\-]", "_", name)

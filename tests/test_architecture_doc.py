"""The README's Architecture section names every module of `bot/` and `adapters/`."""

from __future__ import annotations

import re

from tests.helpers import PROJECT_ROOT


def _architecture_section() -> str:
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("\n## Architecture\n")
    return readme[start : readme.index("\n## ", start + 1)]


def test_every_module_appears_in_the_architecture_section() -> None:
    section = _architecture_section()
    modules = [
        path.relative_to(PROJECT_ROOT)
        for package in ("bot", "adapters")
        for path in (PROJECT_ROOT / package).rglob("*.py")
        if path.name not in ("__init__.py", "__main__.py")
    ]
    # The diagram names the facade's parts without their package ("ingest", "catalog").
    missing = [
        str(module)
        for module in modules
        if not re.search(rf"(?<![\w-]){re.escape(module.stem)}(?![\w-])", section)
    ]
    assert not missing, f"not in README.md, Architecture: {missing}"

"""`bot/` is the core: it never imports a chat SDK or an adapter (README, "Architecture").

`bot.runner` loads adapters by module name at run time; nothing else in `bot/`
may reach them, directly or through another package.
"""

from __future__ import annotations

import ast

from tests.helpers import PROJECT_ROOT, run_python

CORE = PROJECT_ROOT / "bot"
# Top-level packages of the chat SDKs (discord.py, slack-bolt, slack-sdk) and the adapters.
FORBIDDEN = ("discord", "slack_bolt", "slack_sdk", "adapters")


def _imported(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):  # every import, also those inside functions
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_no_module_in_bot_imports_a_chat_sdk_or_an_adapter() -> None:
    offenders = {
        f"{path.relative_to(PROJECT_ROOT)}: {name}"
        for path in CORE.rglob("*.py")
        for name in _imported(ast.parse(path.read_text(encoding="utf-8")))
        if name.split(".")[0] in FORBIDDEN
    }
    assert not offenders, sorted(offenders)


def test_importing_every_core_module_loads_no_chat_sdk() -> None:
    # Also what the core's own dependencies import, which the check above cannot see.
    # bot.__main__ is skipped: importing it runs the command line.
    script = f"""
import importlib, pkgutil, sys
import bot
for module in pkgutil.walk_packages(bot.__path__, "bot."):
    if module.name != "bot.__main__":
        importlib.import_module(module.name)
print(sorted({{m.split(".")[0] for m in sys.modules}} & set({FORBIDDEN!r})))
"""
    assert run_python(script).strip() == "[]"

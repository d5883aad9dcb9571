"""Chat platform adapters. `bot.runner` loads `adapters.<name>` by module name."""

"""Chat platform adapters. `bot.runner` loads each by module name (`adapters.<name>`)."""

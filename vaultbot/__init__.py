"""vaultbot: chat with your Obsidian vault. This package is the composition root: settings,
the CLI and the wiring of `sync`, `engine` and `bot`."""

__version__ = "0.1.0"

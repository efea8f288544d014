"""gpt-console: train a GPT-2 from the terminal.

The package is split into rooms with one-way doors: ``training`` (torch) never imports the console,
``app`` (Textual) never imports torch, and ``channel`` (stdlib only) is the protocol between them.
"""

__version__ = "0.1.0"

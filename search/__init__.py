"""ytnotes: semantic search over notes taken from videos, with links to the exact second."""

__version__ = "0.1.0"

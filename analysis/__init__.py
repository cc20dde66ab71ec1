"""spinlight layer."""

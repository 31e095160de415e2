"""Data files shipped with the passive monitor (the sample advisory set)."""

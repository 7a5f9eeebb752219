"""The HTML report people read: one self-contained page built from the warehouse."""

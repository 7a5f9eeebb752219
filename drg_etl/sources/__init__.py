"""Source readers: one per delivery format, each mapping its format onto the canonical model."""

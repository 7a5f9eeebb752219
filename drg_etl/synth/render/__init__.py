"""Renderers: one per center, each writing that center's delivery from the histories."""

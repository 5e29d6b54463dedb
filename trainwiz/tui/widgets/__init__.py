"""Reusable widgets of the app, one per file. Each renders from plain values it is given."""

"""Sync: keeps the index in step with the vault (walk, parse, chunk, diff, embed, watch)."""

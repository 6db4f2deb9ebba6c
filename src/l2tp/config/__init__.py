"""TOML configuration: typed, validated dataclasses shared by every daemon."""

"""Embedded default configurations for `l2tp demo`."""

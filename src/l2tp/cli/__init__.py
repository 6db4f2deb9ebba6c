"""Command-line tools: ``l2tp`` (decode, show, monitor, demo) and the daemons."""

"""Sans-IO L2TP protocol core: bytes, events and ``now`` in; bytes, actions and deadlines out.

Nothing in this package opens a socket, reads a clock or draws randomness on its own.
"""

"""The Linux data plane: generic netlink ``l2tp`` family, L2TPIP and PPPoL2TP sockets."""

"""The daemons: ql2tpd (static/quiescent L2TPv3), and the control-plane daemons to come."""

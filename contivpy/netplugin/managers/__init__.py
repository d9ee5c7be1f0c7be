"""Felix-style managers of the netplugin agent.

Each manager records desired state from etcd events in ``on_update`` (synchronous, no I/O) and converges
the datapath in ``apply_*`` (called by the daemon after a batch of events, in dependency order: networks,
VTEPs, remote endpoints are added in that order and removed in the reverse order). Because the daemon
lists every prefix before watching it, the first apply works on a consistent snapshot and a restarted
agent converges to the same datapath.
"""

"""Docker libnetwork remote NetworkDriver + IpamDriver served by netplugin (docs/original.md §5.5).

wire.py (Docker's message types), handlers.py (calls -> EndpointBackend), server.py (unix socket),
resolver.py (Docker ids -> contiv ids), engine.py (local Docker Engine API client), sync.py (this
host's Docker networks follow etcd), plugin.py (composition: ``DockerPlugin``).
"""

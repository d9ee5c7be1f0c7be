"""Kubernetes mode of netmaster: translation (translate.py) and the leader's watcher (watcher.py)."""

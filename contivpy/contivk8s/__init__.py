"""contivk8s: the CNI plugin executable of contivpy (docs/cni.md). Standard library only."""

"""CNI server of netplugin (docs/cni.md): the agent side of the ``contivk8s`` plugin.

pods.py (``PodService``: AddPod / DelPod / CheckPod on this host, the per-attachment etcd record,
restart clean-up), server.py (HTTP on the unix socket ``--cni-socket``, default
``/run/contiv/contiv-cni.sock``; the original's paths ``/ContivCNI.AddPod`` and ``/ContivCNI.DelPod``).
"""

"""The JSON record base of ``model/state.py`` and the one record netmaster's leader start writes.

``_Record``: JSON <-> dataclass with an explicit python-name -> JSON-name table (``JSON``) and
contivpy's additions left out while empty (``OMITEMPTY``). ``GlobalConfig``
(``/contiv.io/master/config/global``) is here rather than in ``model/state.py`` so that the leader
start (``hooks/global_.py``) does not create every record class: each dataclass costs ~0.6 ms to
create, and netmaster's time to its first answer is a user-visible figure (docs/benchmarks.md).
``model/state.py`` re-exports both; every reader and writer uses these classes, as for the others.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Self


class _Record:
    """JSON <-> dataclass with an explicit python-name -> JSON-name table."""

    JSON: ClassVar[dict[str, str]] = {}
    #: contivpy's additions to a record of the original: left out of the JSON while empty, so such a
    #: record stays byte-identical to the original's (and the OpenAPI document does not require them)
    OMITEMPTY: ClassVar[tuple[str, ...]] = ()

    def to_dict(self) -> dict[str, Any]:
        out = {self.JSON.get(f.name, f.name): getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]
        for name in self.OMITEMPTY:
            if not getattr(self, name):
                out.pop(self.JSON.get(name, name), None)
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        if not isinstance(data, dict):
            raise ValueError(f"{cls.__name__}: a JSON object is required")
        kwargs = {}
        for f in fields(cls):  # type: ignore[arg-type]
            name = cls.JSON.get(f.name, f.name)
            if name in data:
                kwargs[f.name] = data[name]
        return cls(**kwargs)

    @classmethod
    def from_json(cls, text: str) -> Self:
        return cls.from_dict(json.loads(text))

    @classmethod
    def parse(cls, text: str) -> Self | None:
        """``from_json``, or None for a malformed value (for readers that skip those)."""
        try:
            return cls.from_json(text)
        except ValueError:
            return None


@dataclass
class GlobalConfig(_Record):
    """The cluster-wide settings netplugin needs before it starts (netmaster copies them from the
    global object on every change)."""

    JSON: ClassVar[dict[str, str]] = {
        "nwInfraType": "nw-infra-type",
        "fwdMode": "fwd-mode",
        "arpMode": "arp-mode",
        "pvtSubnet": "pvt-subnet",
    }

    id: str = ""
    nwInfraType: str = ""
    fwdMode: str = ""
    arpMode: str = ""
    pvtSubnet: str = ""


__all__ = ["GlobalConfig"]

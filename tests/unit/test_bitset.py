"""Go jainvipin/bitset JSON encoding, byte-identical to the original's etcd values."""

from contivpy.netmaster.bitset import Bitset


def test_network_maps_match_original():
    b = Bitset()
    b.set(255)
    b.set(0)
    assert b.length == 256
    assert b.encode() == "AAAAAAAAAQAAAAAAAAAAAQAAAAAAAAAAAAAAAAAAAACAAAAAAAAAAA=="  # test-net.default
    b.set(1)
    b.set(254)
    assert (
        b.encode() == "AAAAAAAAAQAAAAAAAAAAAwAAAAAAAAAAAAAAAAAAAADAAAAAAAAAAA=="
    )  # n2.t1 with .1 and gw .254


def test_empty_and_tag_maps():
    assert Bitset().encode() == "AAAAAAAAAAA="
    v = Bitset(4096)
    v.set_range(1, 4094)
    enc = v.encode()
    assert enc.startswith("AAAAAAAAEAD__________v__________________") and len(enc) == 696
    v.clear(100)
    assert v.encode().startswith("AAAAAAAAEAD__________v___-______________")
    x = Bitset(16384)
    x.set_range(1, 10000)
    assert len(x.encode()) == 2744
    x.clear(1)
    x.clear(2)
    assert x.encode().startswith("AAAAAAAAQAD_________-P__________________")


def test_roundtrip_and_ops():
    b = Bitset(300)
    for i in (0, 5, 64, 299):
        b.set(i)
    assert Bitset.decode(b.encode()) == b
    assert b.next_set(1) == 5 and b.next_set(65) == 299 and b.next_set(300) is None
    assert b.next_clear(0) == 1 and b.next_clear(299) is None
    assert not b.test(1000)
    b.clear(1000)  # beyond length: no-op
    assert b.length == 300
    b.set(1000)
    assert b.length == 1001
    assert list(b.iter_set()) == [0, 5, 64, 299, 1000]
    b.clear_range(0, 100)
    assert list(b.iter_set()) == [299, 1000] and b.count() == 2

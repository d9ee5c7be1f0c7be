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


def test_runs_and_iter_set_match_a_bit_by_bit_walk():
    import random

    rng = random.Random(7)
    for _ in range(2000):
        n = rng.choice([1, 5, 63, 64, 65, 127, 128, 129, 200, 1000])
        bits = sum(1 << i for i in range(n) if rng.random() < rng.random())
        if rng.random() < 0.3:
            bits |= (1 << rng.randint(0, n)) - 1
        bits &= (1 << n) - 1
        b = Bitset(n, bits)
        want = [i for i in range(n) if bits >> i & 1]
        assert list(b.iter_set()) == want
        lo, hi = rng.randint(0, n), rng.randint(-1, n + 3)
        for got, kept in ((b.runs(), want), (b.runs(lo, hi), [i for i in want if lo <= i <= hi])):
            runs: list[tuple[int, int]] = []
            for i in kept:
                runs = runs[:-1] + [(runs[-1][0], i)] if runs and runs[-1][1] == i - 1 else runs + [(i, i)]
            assert got == runs, (n, lo, hi)


def test_runs_of_a_large_set_are_fast():
    """A /9 network's free map (8 Mbit): listing its free ranges is linear, not one big-int shift
    per bit (inspect of such a network used to block netmaster for more than 10 s)."""
    import time

    size = 1 << 23
    b = Bitset(size, ((1 << size) - 1) & ~(1 | 1 << 5 | 1 << (size - 1)))
    t = time.perf_counter()
    assert b.runs() == [(1, 4), (6, size - 2)]
    assert sum(1 for _ in Bitset(size, 1 << 3 | 1 << (size - 2)).iter_set()) == 2
    assert time.perf_counter() - t < 1.0

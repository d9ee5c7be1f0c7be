"""Go text/tabwriter semantics (contivpy.netctl.tabwriter), goldens from the original's output."""

from hypothesis import given, settings
from hypothesis import strategies as st

from contivpy.netctl.tabwriter import _blocks, _rectangular, format_help, format_table, tabwrite

NET_HDR = (
    "Tenant\tNetwork\tNw Type\tEncap type\tPacket tag\tSubnet\tGateway\tIPv6Subnet\tIPv6Gateway\tCfgd Tag \n"
    "------\t-------\t-------\t----------\t----------\t-------\t------\t----------\t-----------\t---------\n"
)


def test_network_table_empty_matches_transcript_4_1():
    assert format_table(NET_HDR) == (
        "Tenant  Network  Nw Type  Encap type  Packet tag  Subnet   Gateway  IPv6Subnet  IPv6Gateway  Cfgd Tag \n"
        "------  -------  -------  ----------  ----------  -------  ------   ----------  -----------  ---------\n"
    )


def test_network_table_rows_keep_trailing_spaces():
    text = NET_HDR + "default\ttest-net\tdata\tvxlan\t0\t10.103.1.0/24\t\t\t\t\n"
    assert format_table(text).splitlines()[2] == (
        "default  test-net  data     vxlan       0           10.103.1.0/24                                    "
    )


def test_line_without_tab_ends_column_blocks():
    text = "a\tbbbbbbbb\tc\nx\ty\tz\nbreak\nlonger-cell\tq\tr\n"
    assert format_table(text) == ("a  bbbbbbbb  c\nx  y         z\nbreak\nlonger-cell  q  r\n")


def test_fewer_cells_end_only_deeper_blocks():
    # column 0 block spans all lines; column 1 block is broken by the 2-cell line
    text = "aa\tb\tc\nx\ty\nz\tlongerthanb\tw\n"
    assert format_table(text) == "aa  b  c\nx   y\nz   longerthanb  w\n"


def test_widths_count_runes_not_bytes():
    assert format_table("é\tx\nab\ty\n") == "é   x\nab  y\n"


def test_unterminated_last_line_and_empty_cells():
    assert format_table("a\t\tb\nccc\t\td") == "a      b\nccc    d"  # empty cells still pad (+2)


def test_tab_padding_mode_of_help_writer():
    text = '   --tenant, -t "default"\tName of the tenant\n   \n'
    assert format_help(text) == '   --tenant, -t "default"\tName of the tenant\n   \n'
    text2 = "   --policy, -p [--policy option --policy option]\tPolicy\n   -x\ty\n"
    # cell width 48+1 -> 56 (multiple of 8): 1 tab after the long cell, 7 tabs after "   -x"
    assert (
        format_help(text2)
        == "   --policy, -p [--policy option --policy option]\tPolicy\n   -x" + "\t" * 7 + "y\n"
    )


def test_minwidth_and_padding_parameters():
    assert tabwrite("a\tb\n", minwidth=5, padding=1, padchar=".") == "a....b\n"


@settings(max_examples=300, deadline=None)
@given(
    rows=st.integers(1, 6).flatmap(
        lambda m: st.lists(
            st.lists(st.text("ab é-", max_size=5), min_size=m, max_size=m), min_size=1, max_size=6
        )
    ),
    tail=st.sampled_from(["\n", ""]),
    minwidth=st.integers(0, 6),
    padding=st.integers(0, 3),
)
def test_rectangular_fast_path_equals_the_block_algorithm(rows, tail, minwidth, padding):
    """netctl's tables take a shortcut (one block per column); it must write what the general
    column-block algorithm writes, or decline (None) for a table it does not cover."""
    text = "\n".join("\t".join(r) for r in rows) + tail
    lines = [ln.split("\t") for ln in text.split("\n")]
    fast = _rectangular(lines, minwidth, padding, " ")
    if len(rows[0]) < 2:
        assert fast is None
    else:
        assert fast == _blocks(lines, minwidth, 2, padding, " ")
    assert tabwrite(text, minwidth, 2, padding, " ") == _blocks(lines, minwidth, 2, padding, " ")

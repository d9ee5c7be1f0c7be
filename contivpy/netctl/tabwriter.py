"""Go ``text/tabwriter`` semantics, exactly as netctl (and codegangsta/cli help) used them.

Model (the one of Go's tabwriter, written from its documented behaviour):

* The text is split into lines at ``\\n``; each line into cells at ``\\t``. Every cell but
  the last one of a line is *tab-terminated*; the last cell is the trailing text and is
  never padded or aligned.
* A *column block* for column ``k`` is a maximal run of consecutive lines that all have a
  tab-terminated cell ``k``. Its width is ``max(minwidth, max(cell width) + padding)``
  over the block; every cell ``k`` of the block is padded to that width. Blocks are found
  recursively left to right, so a line with fewer cells ends the blocks of the deeper
  columns (that is why the "Incoming Rules"/"Outgoing Rules" tables align independently).
* Widths count runes (Python ``len`` of a ``str``). Padding with spaces pads to the exact
  width; padding with ``\\t`` rounds the cell width up to a multiple of ``tabwidth`` and
  writes ``ceil((cellw - textw) / tabwidth)`` tabs (Go's tab-padding mode).
* Empty cells are padded like any other. Trailing spaces are kept.

``format_table(text)`` gives netctl's table writer (minwidth 0, padding 2, spaces);
``format_help(text)`` gives codegangsta's help writer (minwidth 0, tabwidth 8, padding 1, tabs).
"""


def tabwrite(text: str, minwidth: int = 0, tabwidth: int = 8, padding: int = 1, padchar: str = " ") -> str:
    """Return ``text`` as Go's ``tabwriter.NewWriter(w, minwidth, tabwidth, padding, padchar, 0)``
    followed by ``Flush`` would write it."""
    # lines[i] = list of cells; the last raw line is the unterminated tail (often "").
    lines = [ln.split("\t") for ln in text.split("\n")]
    if padchar != "\t":
        fast = _rectangular(lines, minwidth, padding, padchar)
        if fast is not None:
            return fast
    return _blocks(lines, minwidth, tabwidth, padding, padchar)


def _blocks(lines: list[list[str]], minwidth: int, tabwidth: int, padding: int, padchar: str) -> str:
    """The general algorithm: column blocks found recursively, left to right."""
    use_tabs = padchar == "\t"
    out: list[str] = []
    widths: list[int] = []

    def pad(textw: int, cellw: int) -> str:
        if use_tabs:
            if tabwidth == 0:
                return ""
            cellw = (cellw + tabwidth - 1) // tabwidth * tabwidth
            n = cellw - textw
            return "\t" * ((n + tabwidth - 1) // tabwidth)
        return padchar * (cellw - textw)

    def write_lines(line0: int, line1: int) -> None:
        for i in range(line0, line1):
            cells = lines[i]
            parts = []
            for j, cell in enumerate(cells[:-1]):
                parts.append(cell)
                if j < len(widths):
                    parts.append(pad(len(cell), widths[j]))
            parts.append(cells[-1])
            out.append("".join(parts))
            if i + 1 < len(lines):
                out.append("\n")

    def fmt(line0: int, line1: int) -> None:
        column = len(widths)
        this = line0
        while this < line1:
            if column >= len(lines[this]) - 1:
                this += 1
                continue
            write_lines(line0, this)
            line0 = this
            width = minwidth
            while this < line1:
                cells = lines[this]
                if column >= len(cells) - 1:
                    break
                w = len(cells[column]) + padding
                if w > width:
                    width = w
                this += 1
            widths.append(width)
            fmt(line0, this)
            widths.pop()
            line0 = this
        write_lines(line0, line1)

    fmt(0, len(lines))
    return "".join(out)


def _rectangular(lines: list[list[str]], minwidth: int, padding: int, padchar: str) -> str | None:
    """The common case of a table (every line but an empty tail has the same number of cells,
    at least two) without the block recursion: each column is one block over all those lines,
    so the result equals the general algorithm's (tests/unit/test_netctl_tabwriter.py compares
    the two). ``None`` when the text is not such a table."""
    body = lines[:-1] if lines[-1] == [""] else lines
    if not body:
        return None
    m = len(body[0])
    if m < 2 or set(map(len, body)) != {m}:
        return None
    columns = list(zip(*body, strict=True))  # column j = the j-th cell of every line
    padded = [
        [cell.ljust(w, padchar) for cell in col]
        for col, w in zip(
            columns, [max(minwidth, max(map(len, col)) + padding) for col in columns[:-1]], strict=False
        )
    ]
    rows = map("".join, zip(*padded, columns[-1], strict=True))
    return "\n".join(rows) + ("\n" if len(body) < len(lines) else "")


def format_table(text: str) -> str:
    """netctl's tables: ``tabwriter.NewWriter(os.Stdout, 0, 2, 2, ' ', 0)``."""
    return tabwrite(text, minwidth=0, tabwidth=2, padding=2, padchar=" ")


def format_help(text: str) -> str:
    """codegangsta/cli help output: ``tabwriter.NewWriter(out, 0, 8, 1, '\\t', 0)``."""
    return tabwrite(text, minwidth=0, tabwidth=8, padding=1, padchar="\t")

"""The family tree laid out for drawing: one row per node, in depth-first order, and one lane (column) per
branch, the way ``git log --graph`` draws commits. Pure: a :class:`Family` in, positions and SVG path
data out; the template turns them into SVG elements (every text escaped there).

Long linear runs (states with one child and nothing to mark) collapse into one node that says how many
states it holds, unless ``full``; a branch point, a leaf, a clone, a thread's head, the current state and
a gap are never collapsed. Lanes are reused once a branch ends (greedy interval colouring by start row),
so a bushy tree stays as narrow as its widest moment. Everything is O(n log n) in the nodes drawn.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass
from uuid import UUID

from immagent.ui._family import Family, Member, short_id

__all__ = ["Drawing", "DrawnEdge", "DrawnNode", "draw"]

ROW = 26  # px between rows
LANE = 18  # px between lanes
PAD = 14  # px around the graph
MIN_RUN = 3  # a run of fewer plain states is drawn as it is
CHAR = 8  # px a character of the labels' monospace font takes, at most


@dataclass(frozen=True)
class DrawnNode:
    """One row of the drawing: a state, a gap (deleted state), or a collapsed run of states."""

    dom_id: str
    x: int
    y: int
    kind: str  # root, turn, clone, metadata, gap or run
    state_id: UUID | None  # where the node links (None for a gap)
    short: str
    label: str
    title: str
    threads: tuple[str, ...]
    current: bool
    count: int  # states a run holds (1 otherwise)


@dataclass(frozen=True)
class DrawnEdge:
    """A line from a node to its child: straight down the lane, or curving out to a new branch's lane."""

    d: str  # SVG path data
    kind: str  # "step" parent to child, "run" into or out of a folded run, "same" a clone to its twin
    parent: tuple[int, int]  # (x, y) of the parent's node
    child: tuple[int, int]


@dataclass(frozen=True)
class Drawing:
    width: int
    height: int
    label_x: int
    nodes: list[DrawnNode]
    edges: list[DrawnEdge]
    lanes: int
    states: int  # states in the tree
    collapsed: int  # states hidden inside runs


Key = UUID | tuple[str, UUID]  # a state's id, or ("run", its first state's id)


@dataclass
class _Run:
    """Consecutive plain states drawn as one node."""

    ids: list[UUID]


def _plain(member: Member, current: UUID | None, twins: set[UUID]) -> bool:
    """A state nothing marks, with exactly one child: the stuff linear runs are made of."""
    return (
        member.kind in ("turn", "metadata")
        and len(member.children) == 1
        and member.id != current
        and not member.threads
        and member.id not in twins
    )


def _display_tree(
    fam: Family, current: UUID | None, full: bool
) -> tuple[dict[Key, list[Key]], list[Key], dict[Key, _Run]]:
    """Children lists over display keys: a state's UUID, or a run's key (its first state's id, tagged)."""
    twins = {m.twin_of for m in fam.members.values() if m.twin_of is not None}
    runs: dict[Key, _Run] = {}
    children: dict[Key, list[Key]] = {}

    def key_of(member_id: UUID) -> Key:
        """The display key for a chain starting at ``member_id`` (a run when it starts one)."""
        if full:
            return member_id
        ids: list[UUID] = []
        cursor = member_id
        while _plain(fam.members[cursor], current, twins):
            ids.append(cursor)
            cursor = fam.members[cursor].children[0]
        if len(ids) < MIN_RUN:
            return member_id
        run_key: Key = ("run", ids[0])
        runs[run_key] = _Run(ids)
        return run_key

    roots = [key_of(r) for r in fam.roots]
    stack = list(roots)
    while stack:
        key = stack.pop()
        last = runs[key].ids[-1] if isinstance(key, tuple) else key
        below = fam.members[last].children
        kids = [key_of(c) for c in below]
        children[key] = kids
        stack.extend(kids)
    return children, roots, runs


def _preorder(children: dict[Key, list[Key]], roots: list[Key]) -> Iterator[tuple[Key, Key | None]]:
    """(node, parent) in depth-first order, first child first; iterative, so deep trees are fine."""
    stack: list[tuple[Key, Key | None]] = [(r, None) for r in reversed(roots)]
    while stack:
        node, parent = stack.pop()
        yield node, parent
        stack.extend((kid, node) for kid in reversed(children[node]))


def _lanes(
    order: list[tuple[Key, Key | None]], children: dict[Key, list[Key]], row: dict[Key, int]
) -> dict[Key, int]:
    """A lane per chain (a node and its first-child descendants), reusing lanes whose chain has ended."""
    chain_of: dict[Key, Key] = {}
    spans: dict[Key, list[int]] = {}  # chain head -> [start row, end row]
    for node, parent in order:
        if parent is not None and children[parent][0] == node:
            head = chain_of[parent]
            chain_of[node] = head
            spans[head][1] = row[node]
        else:
            chain_of[node] = node
            spans[node] = [row[parent] if parent is not None else row[node], row[node]]
    free: list[int] = []
    busy: list[tuple[int, int]] = []  # (end row, lane)
    lane_of_chain: dict[Key, int] = {}
    used = 0
    for head, (start, end) in sorted(spans.items(), key=lambda item: (item[1][0], row[item[0]])):
        while busy and busy[0][0] < start:
            heapq.heappush(free, heapq.heappop(busy)[1])
        if free:
            lane = heapq.heappop(free)
        else:
            lane, used = used, used + 1
        lane_of_chain[head] = lane
        heapq.heappush(busy, (end, lane))
    return {node: lane_of_chain[chain_of[node]] for node, _ in order}


def draw(fam: Family, *, current: UUID | None = None, full: bool = False) -> Drawing:
    """Positions for every node of ``fam`` (runs collapsed unless ``full``), ``current`` marked."""
    children, roots, runs = _display_tree(fam, current, full)
    order = list(_preorder(children, roots))
    row = {node: i for i, (node, _) in enumerate(order)}
    lane = _lanes(order, children, row)
    lanes = max(lane.values(), default=0) + 1
    nodes: list[DrawnNode] = []
    edges: list[DrawnEdge] = []
    for node, parent in order:
        x, y = PAD + lane[node] * LANE, PAD + row[node] * ROW
        if parent is not None:
            px, py = PAD + lane[parent] * LANE, PAD + row[parent] * ROW
            if px == x:
                d = f"M{px} {py}V{y}"
            else:  # out of the parent sideways, then down the branch's own lane
                mid = py + ROW // 2
                d = f"M{px} {py}C{px} {mid} {x} {mid} {x} {py + ROW}V{y}"
            into_run = isinstance(node, tuple) or isinstance(parent, tuple)
            edges.append(DrawnEdge(d, "run" if into_run else "step", (px, py), (x, y)))
        nodes.append(_node(fam, node, runs, x, y, current))
    at = {n.state_id: (n.x, n.y) for n in nodes if n.kind != "run"}
    for member in fam.members.values():  # a clone and the state whose history it shares, tied
        if member.twin_of is not None and member.id in at and member.twin_of in at:
            (x1, y1), (x2, y2) = at[member.twin_of], at[member.id]
            bulge = max(x1, x2) + LANE
            edges.append(
                DrawnEdge(f"M{x1} {y1}C{bulge} {y1} {bulge} {y2} {x2} {y2}", "same", (x1, y1), (x2, y2))
            )
    height = PAD * 2 + max(len(order) - 1, 0) * ROW
    label_x = PAD + lanes * LANE + 8  # past the last lane, and past a clone's tie to its twin
    return Drawing(
        width=label_x + CHAR * max((_chars(n) for n in nodes), default=0) + PAD,
        height=height,
        label_x=label_x,
        nodes=nodes,
        edges=edges,
        lanes=lanes,
        states=fam.states,
        collapsed=sum(len(r.ids) for r in runs.values()),
    )


def _chars(node: DrawnNode) -> int:
    """How many characters the node's text line holds (its id, marks, badges and label)."""
    marks = (len(" ◀ this state") if node.current else 0) + sum(len(k) + 3 for k in node.threads)
    return len(node.short) + 1 + len(node.label) + marks


def _node(fam: Family, node: Key, runs: dict[Key, _Run], x: int, y: int, current: UUID | None) -> DrawnNode:
    if isinstance(node, tuple):
        ids = runs[node].ids
        first, last = fam.members[ids[0]], fam.members[ids[-1]]
        label = f"{len(ids)} states in a line: {first.label} … {last.label}"
        return DrawnNode(
            dom_id=f"run-{ids[0]}",
            x=x,
            y=y,
            kind="run",
            state_id=ids[0],
            short=f"{short_id(ids[0])}…{short_id(ids[-1])}",
            label=f"⋯ {len(ids)} states",
            title=label,
            threads=(),
            current=False,
            count=len(ids),
        )
    member = fam.members[node]
    when = f" · {member.created_at:%Y-%m-%d %H:%M:%S} UTC" if member.created_at else ""
    return DrawnNode(
        dom_id=f"n-{node}",
        x=x,
        y=y,
        kind=member.kind,
        state_id=None if member.kind == "gap" else node,
        short=short_id(node),
        label=member.label,
        title=f"{node}{when}\n{member.label}",
        threads=member.threads,
        current=node == current,
        count=1,
    )

"""The family tree's layout, without a database: every state a node, branches in lanes that never run
through another node, clones and thread heads marked, long linear runs folded, deleted states as gaps."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest

from immagent import Thread
from immagent._ids import uuid7
from immagent.ui._family import family, short_id
from immagent.ui._graph import ROW, Drawing, draw
from tests.support.trees import synthetic_tree


def thread_at(agent_id: object, key: str) -> Thread:
    now = datetime.now(UTC)
    return Thread(
        tenant="default", key=key, agent_id=agent_id, position=0, metadata={}, created_at=now, moved_at=now
    )


def assert_lanes_never_cross_nodes(drawing: Drawing) -> None:
    """A branch's line runs down its own lane from its parent's row to its first state: no node of
    another branch may sit on that stretch of the lane."""
    occupied = {(n.x, n.y) for n in drawing.nodes}
    for edge in drawing.edges:
        if edge.kind == "same":
            continue  # a clone's tie to its twin runs beside the lanes, not down one
        (_, top), (x, bottom) = edge.parent, edge.child
        for y in range(top + ROW, bottom, ROW):
            assert (x, y) not in occupied, (edge.d, x, y)


@pytest.mark.parametrize("shape", ["linear", "chat", "bushy"])
def test_with_full_every_state_is_one_node_and_every_child_one_edge(shape: str) -> None:
    states, messages, _ = synthetic_tree(300, shape)  # type: ignore[arg-type]
    drawing = draw(family(states, messages, {}), full=True)
    assert drawing.nodes[0].state_id == states[0].id
    assert Counter(n.state_id for n in drawing.nodes) == Counter(s.id for s in states)
    steps = [e for e in drawing.edges if e.kind == "step"]
    assert len(steps) == len(states) - 1
    clones = [n for n in drawing.nodes if n.kind == "clone"]
    ties = {e.child for e in drawing.edges if e.kind == "same"}  # each clone tied to its twin
    assert ties == {(n.x, n.y) for n in clones} and len(ties) == len(clones) == len(drawing.edges) - len(
        steps
    )
    assert drawing.states == 300 and drawing.collapsed == 0
    assert len({n.y for n in drawing.nodes}) == 300  # one row each
    assert_lanes_never_cross_nodes(drawing)


def test_a_first_child_continues_its_parents_lane_and_a_branch_takes_another() -> None:
    states, messages, _ = synthetic_tree(120, "chat")
    drawing = draw(family(states, messages, {}), full=True)
    where = {n.state_id: (n.x, n.y) for n in drawing.nodes}
    fam = family(states, messages, {})
    for member in fam.members.values():
        if len(member.children) < 2:
            continue
        first, *others = member.children
        assert where[first][0] == where[member.id][0]
        assert where[first][1] == where[member.id][1] + ROW
        assert all(where[o][0] != where[member.id][0] for o in others)


def test_lanes_are_reused_so_a_bushy_tree_stays_narrow() -> None:
    states, messages, _ = synthetic_tree(1000, "bushy")
    drawing = draw(family(states, messages, {}), full=True)
    branches = sum(1 for e in drawing.edges if e.kind == "step" and e.parent[0] != e.child[0])
    assert branches > 300 and drawing.lanes < branches / 3  # far fewer lanes than branches
    assert_lanes_never_cross_nodes(drawing)


def test_a_long_linear_run_folds_into_one_node_except_what_is_marked() -> None:
    states, messages, _ = synthetic_tree(1000, "linear")
    fam = family(states, messages, {})
    folded = draw(fam)
    assert [n.kind for n in folded.nodes] == ["root", "run", "turn"]
    assert folded.nodes[1].count == 998 and folded.collapsed == 998
    assert folded.nodes[1].label == "⋯ 998 states"

    middle, threaded = states[500], states[700]
    marked = draw(
        family(states, messages, {threaded.id: (thread_at(threaded.id, "t/1"),)}), current=middle.id
    )
    kinds = [(n.kind, n.count) for n in marked.nodes]
    assert kinds == [
        ("root", 1),
        ("run", 499),
        ("turn", 1),
        ("run", 199),
        ("turn", 1),
        ("run", 298),
        ("turn", 1),
    ]
    here = next(n for n in marked.nodes if n.current)
    assert here.state_id == middle.id
    assert next(n for n in marked.nodes if n.threads).threads == ("t/1",)
    assert marked.collapsed == 499 + 199 + 298


def test_runs_shorter_than_three_states_are_drawn_as_they_are() -> None:
    states, messages, _ = synthetic_tree(4, "linear")  # root, two plain states, a tip
    assert [n.kind for n in draw(family(states, messages, {})).nodes] == ["root", "turn", "turn", "turn"]


def test_labels_say_what_each_state_is() -> None:
    states, messages, _ = synthetic_tree(120, "chat")
    fam = family(states, messages, {})
    kinds = Counter(m.kind for m in fam.members.values())
    assert kinds["root"] == 1 and kinds["clone"] >= 2 and kinds["metadata"] >= 1 and kinds["turn"] > 100
    root = fam.members[states[0].id]
    assert root.label == "root “synthetic” · immagent/synthetic"
    turn = fam.members[states[1].id]
    assert turn.label.startswith("“question 1: what about branch 1?” → answer 1: it depends on")
    clone = next(m for m in fam.members.values() if m.kind == "clone")
    assert clone.twin_of is not None and clone.label == f"clone: same history as {short_id(clone.twin_of)}"
    meta = next(m for m in fam.members.values() if m.kind == "metadata")
    assert meta.label.startswith('metadata {"step": ')


def test_a_rewound_state_says_how_far_back_it_went() -> None:
    states, messages, _ = synthetic_tree(6, "linear")
    tip = states[-1]
    by_id = {m.id: m for m in messages}
    head = by_id[tip.head_id]  # type: ignore[index]
    back_two = by_id[by_id[head.parent_id].parent_id]  # type: ignore[index]
    rewound = [
        tip.model_copy(update={"id": uuid7(), "parent_id": tip.id, "head_id": back_two.id}),
        tip.model_copy(update={"id": uuid7(), "parent_id": tip.id, "head_id": None}),
    ]
    fam = family([*states, *rewound], messages, {})
    assert fam.members[rewound[0].id].label == "rewind: 2 messages back"
    assert fam.members[rewound[1].id].label == f"rewind: {head.depth + 1} messages back"
    assert fam.members[states[-1].id].label.startswith("“")  # a turn is still a turn


def test_a_deleted_state_is_a_gap_its_descendants_still_hang_from() -> None:
    states, messages, _ = synthetic_tree(30, "linear")
    gone = states[10]
    fam = family([s for s in states if s.id != gone.id], messages, {})
    assert fam.roots == [states[0].id, gone.id]
    gap = fam.members[gone.id]
    assert (gap.kind, gap.label, gap.children) == (
        "gap",
        f"deleted state {short_id(gone.id)}",
        [states[11].id],
    )
    drawing = draw(fam, full=True)
    assert [n.kind for n in drawing.nodes].count("gap") == 1
    assert next(n for n in drawing.nodes if n.kind == "gap").state_id is None  # nothing to link to
    assert len(drawing.edges) == len(drawing.nodes) - 2 == len(states) - 2  # roots: the first state, the gap


def test_the_drawing_is_wide_enough_for_its_longest_line() -> None:
    states, messages, _ = synthetic_tree(10, "linear")
    long_key = "k" * 200
    drawing = draw(family(states, messages, {states[-1].id: (thread_at(states[-1].id, long_key),)}))
    assert drawing.width > drawing.label_x + 8 * 200

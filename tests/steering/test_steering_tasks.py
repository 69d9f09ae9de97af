from __future__ import annotations

import numpy as np
import pytest

from brainalign.features.prompts import DEDUCTIVE_CHAT, deductive_messages
from brainalign.steering import tasks


def test_syllogism_decision_procedure_on_textbook_forms():
    # Barbara (valid), its converse (invalid), Celarent (valid), undistributed middle (invalid)
    assert tasks.syllogism_valid([("All", "a", "b"), ("All", "b", "c")], ("All", "a", "c"))
    assert not tasks.syllogism_valid([("All", "a", "b"), ("All", "b", "c")], ("All", "c", "a"))
    assert tasks.syllogism_valid([("All", "a", "b"), ("No", "b", "c")], ("No", "c", "a"))
    assert not tasks.syllogism_valid([("All", "a", "b"), ("Some", "b", "c")], ("Some", "a", "c"))
    assert tasks.syllogism_valid([("Some", "a", "b"), ("All", "b", "c")], ("Some", "c", "a"))
    with pytest.raises(ValueError, match="quantifier"):
        tasks.syllogism_valid([("All", "a", "b")], ("Most", "a", "b"))


def test_transitive_closure_ground_truth():
    assert tasks.transitive_valid([("a", "b"), ("b", "c"), ("c", "d")], ("a", "d"))
    assert not tasks.transitive_valid([("a", "b"), ("a", "c"), ("c", "d")], ("b", "d"))
    assert not tasks.transitive_valid([("a", "b")], ("b", "a"))


@pytest.mark.parametrize("task", tasks.TASKS)
@pytest.mark.parametrize("n_premises", [3, 4, 6])
def test_generators_are_seeded_balanced_and_sized(task, n_premises):
    a = tasks.generate_items(task, 10, seed=3, n_premises=n_premises)
    b = tasks.generate_items(task, 10, seed=3, n_premises=n_premises)
    c = tasks.generate_items(task, 10, seed=4, n_premises=n_premises)
    assert a == b and a != c
    assert sum(i.label for i in a) == 5
    assert all(len(i.premises) == n_premises and i.task == task for i in a)


def test_generated_labels_agree_with_independent_checks():
    # transitive: re-derive each label from the text by brute force over total orders
    import itertools

    for it in tasks.generate_items("transitive", 12, seed=1):
        rels = []
        for sent in it.premises + (it.conclusion,):
            x, _, adj, _, y = sent.split(" ")
            more = any(adj == m for m, _ in tasks.COMPARATIVES)
            rels.append((x, y) if more else (y, x))
        names = sorted({n for r in rels for n in r})
        follows = all(pos[rels[-1][0]] < pos[rels[-1][1]]
                      for perm in itertools.permutations(names)
                      for pos in [{n: k for k, n in enumerate(perm)}]
                      if all(pos[a] < pos[b] for a, b in rels[:-1]))
        assert follows == it.label, it


def test_premise_orders_keep_label_and_cover_all_permutations():
    it = tasks.generate_items("syllogism", 1, seed=0)[0]
    orders = tasks.premise_orders(it)
    assert len(orders) == 6 and len({o.premises for o in orders}) == 6
    assert all(o.label == it.label and o.conclusion == it.conclusion for o in orders)


def test_prompt_is_the_seed_chat_verbatim():
    for task in ("syllogism", "transitive"):
        it = tasks.generate_items(task, 1, seed=2)[0]
        assert tasks.item_messages(it) == deductive_messages(task, it.premises, it.conclusion)
    it4 = tasks.generate_items("transitive", 1, seed=2, n_premises=4)[0]
    msg = tasks.item_messages(it4)
    assert "four premises" in msg[0]["content"] and "4. " in msg[2]["content"]
    assert msg[1]["content"] == DEDUCTIVE_CHAT["assistant_ack"]


def test_parse_answer():
    assert tasks.parse_answer("True, because") is True
    assert tasks.parse_answer("  False") is False
    assert tasks.parse_answer("<think>True?</think>\nFalse") is False
    assert tasks.parse_answer("The answer is True") is None
    assert tasks.parse_answer("") is None


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="task='deduction'"):
        tasks.generate_items("deduction", 2)
    with pytest.raises(ValueError, match="n_premises=9"):
        tasks.generate_items("syllogism", 2, n_premises=9)


def test_two_premise_item_from_events_file_has_two_numbered_premises(tmp_path):
    """ds003076 writes ``n/a`` in premise3 of a two-premise item; it must not become a third premise 'nan'."""
    from brainalign.steering.data import read_run_items

    path = tmp_path / "events.tsv"
    path.write_text("onset\tduration\ttrial_type\taccuracy\tresponse_time\tpremise1\tpremise2\tpremise3\tconclusion\n"
                    "0\t12\t2_true_x\t1\t2.1\tAll wugs are daxes.\tAll daxes are red.\tn/a\tAll wugs are red.\n"
                    "12\t12\t3_false_x\t0\t2.1\tAll a are b.\tAll b are c.\tAll c are d.\tAll d are a.\n"
                    "24\t12\tcontrol\tn/a\tn/a\tn/a\tn/a\tn/a\tn/a\n")
    items = read_run_items(path, "syllogism")
    assert items["premises"].tolist() == [("All wugs are daxes", "All daxes are red"),
                                          ("All a are b", "All b are c", "All c are d")]
    it = tasks.Item("syllogism", items["premises"][0], items["conclusion"][0], True)
    messages = tasks.item_messages(it)
    user = messages[-1]["content"]
    assert user == "Premises:\n1. All wugs are daxes.\n2. All daxes are red.\nConclusion:\nAll wugs are red."
    assert "two premises" in messages[0]["content"] and "nan" not in user

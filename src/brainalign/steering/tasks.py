"""Deductive-reasoning items of Xiao et al. (2026): seeded generators with ground truth, prompts, answer parsing.

Three families, each with a *computed* ground truth (no hand labels):

- ``syllogism``: categorical statements among pseudowords ending in an
  adjective ("All blick are dax", "No dax are red", "Some ..."); validity by a
  sound and complete decision procedure for this fragment (no existential
  import): ``All X Y`` iff X ⊆* Y through the All-premises; ``No X Y`` iff some
  premise ``No P Q`` with X ⊆* P and Y ⊆* Q (either way round); ``Some X Y`` iff
  some premise ``Some P Q`` with P ⊆* X and Q ⊆* Y (either way round).
- ``transitive``: comparisons among invented names ("Rilo is taller than Mab",
  "Mab is shorter than Tesk"); valid iff the conclusion's order is implied by
  the transitive closure.
- ``propositional``: conditionals / disjunctions / negations over pseudoword
  propositions; valid iff every truth assignment that satisfies the premises
  satisfies the conclusion (truth table).

Items carry 3 premises by default (the fMRI design); ``n_premises`` 4–6 gives
the paper's generalisation sets. :func:`premise_orders` lists every premise
order (3! = 6) for permutation-robust evaluation. :func:`item_messages` builds
the authors' chat verbatim for 3-premise syllogism / transitive items
(:data:`brainalign.features.prompts.DEDUCTIVE_CHAT`); for other premise counts
the word "three" and the numbered list are generalised, and propositional items
use :data:`PROPOSITIONAL_SYSTEM` (our wording: the authors' text was not found).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from typing import Iterable, Sequence

import numpy as np

from brainalign.features.prompts import DEDUCTIVE_CHAT

__all__ = [
    "Item",
    "TASKS",
    "generate_items",
    "generate_syllogisms",
    "generate_transitive",
    "generate_propositional",
    "premise_orders",
    "item_messages",
    "item_prompt",
    "parse_answer",
    "syllogism_valid",
    "transitive_valid",
    "PROPOSITIONAL_SYSTEM",
]

TASKS = ("syllogism", "transitive", "propositional")

PSEUDOWORDS = ("blick", "dax", "wug", "fep", "zorp", "tove", "gler", "sprock", "mip", "thrun", "vosk", "plen",
               "krad", "jub", "snell", "frim", "gax", "lorp", "nim", "quel", "strib", "yarn", "dwek", "pim")
ADJECTIVES = ("red", "round", "soft", "loud", "cold", "bright", "sharp", "heavy", "warm", "smooth")
NAMES = ("Rilo", "Mab", "Tesk", "Vonna", "Kel", "Pirra", "Zed", "Lume", "Dorv", "Essa", "Brin", "Cato", "Fenn",
         "Gilda", "Horo", "Ista", "Jorl", "Kiva")
COMPARATIVES = (("taller", "shorter"), ("older", "younger"), ("faster", "slower"), ("heavier", "lighter"))
_NUMBER_WORDS = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight"}

PROPOSITIONAL_SYSTEM = (
    "You are an expert in performing logical reasoning. I will present {n} premises and one conclusion each "
    "round. The premises describe logical relationships among simple statements about imaginary objects. "
    "Assume all premises are True. You should use deductive reasoning to determine if the conclusion can be "
    "drawn from the premises logically. Answer 'True' if the conclusion can be drawn logically; otherwise you "
    "should answer 'False'. Only answer 'True' or 'False' at the beginning of the response."
)


@dataclass(frozen=True)
class Item:
    """One reasoning problem.

    Attributes
    ----------
    task : {"syllogism", "transitive", "propositional"}
    premises : tuple of str (no final period)
    conclusion : str (no final period)
    label : bool
        True when the conclusion follows from the premises.
    item_id : str
    """

    task: str
    premises: tuple[str, ...]
    conclusion: str
    label: bool
    item_id: str = ""


# --------------------------------------------------------------------------- syllogisms
def _closure(edges: Iterable[tuple[str, str]], terms: Iterable[str]) -> dict[str, set[str]]:
    up = {t: {t} for t in terms}
    changed = True
    edges = list(edges)
    while changed:
        changed = False
        for a, b in edges:
            for t in up:
                if a in up[t] and b not in up[t]:
                    up[t].add(b)
                    changed = True
    return up


def syllogism_valid(premises: Sequence[tuple[str, str, str]], conclusion: tuple[str, str, str]) -> bool:
    """Validity of a categorical conclusion; statements are ``(quantifier, X, Y)``, quantifier in All/No/Some."""
    terms = {t for _, a, b in list(premises) + [conclusion] for t in (a, b)}
    up = _closure([(a, b) for q, a, b in premises if q == "All"], terms)
    q, x, y = conclusion
    if q == "All":
        return y in up[x]
    if q == "No":
        return any((p in up[x] and r in up[y]) or (r in up[x] and p in up[y]) for qq, p, r in premises if qq == "No")
    if q == "Some":
        return any((x in up[p] and y in up[r]) or (x in up[r] and y in up[p]) for qq, p, r in premises if qq == "Some")
    raise ValueError(f"quantifier {q!r}; use All, No or Some.")


def _say(q: str, a: str, b: str) -> str:
    return f"{q} {a} are {b}"


def generate_syllogisms(n: int, seed: int = 0, n_premises: int = 3) -> list[Item]:
    """``n`` syllogisms (balanced valid/invalid) over a chain of pseudowords ending in an adjective."""
    rng = np.random.default_rng(seed)
    items: list[Item] = []
    while len(items) < n:
        want = len(items) % 2 == 0
        words = list(rng.choice(PSEUDOWORDS, n_premises, replace=False)) + [str(rng.choice(ADJECTIVES))]
        prem = []
        for k in range(n_premises):
            q = str(rng.choice(["All", "All", "All", "No", "Some"]))
            a, b = words[k], words[k + 1]
            if q != "All" and rng.random() < 0.5 and k < n_premises - 1:
                a, b = b, a
            prem.append((q, a, b))
        i, j = sorted(rng.choice(n_premises + 1, 2, replace=False))
        x, y = words[i], words[j]
        q = str(rng.choice(["All", "No", "Some"]))
        if rng.random() < 0.3 and j < n_premises:  # reversed conclusions (invalid converses)
            x, y = y, x
        concl = (q, x, y)
        valid = syllogism_valid(prem, concl)
        if valid != want or concl in prem:
            continue
        items.append(Item("syllogism", tuple(_say(*p) for p in prem), _say(*concl), valid, f"syl{seed}-{len(items)}"))
    return items


# --------------------------------------------------------------------------- transitive
def transitive_valid(premises: Sequence[tuple[str, str]], conclusion: tuple[str, str]) -> bool:
    """``(a, b)`` means a > b; valid iff the conclusion is in the transitive closure."""
    terms = {t for p in list(premises) + [conclusion] for t in p}
    up = _closure(premises, terms)
    a, b = conclusion
    return a != b and b in up[a]


def generate_transitive(n: int, seed: int = 0, n_premises: int = 3) -> list[Item]:
    """``n`` transitive-inference items (balanced) with invented names and comparative adjectives."""
    rng = np.random.default_rng(seed)
    items: list[Item] = []
    while len(items) < n:
        want = len(items) % 2 == 0
        more, less = COMPARATIVES[rng.integers(len(COMPARATIVES))]
        names = list(rng.choice(NAMES, n_premises + 1, replace=False))
        # a random tree over the names (each new name attached to an earlier one, above or below it)
        edges = []
        for k in range(1, n_premises + 1):
            p = names[int(rng.integers(0, k))] if rng.random() < 0.4 else names[k - 1]
            edges.append((p, names[k]) if rng.random() < 0.75 else (names[k], p))
        a, b = rng.choice(names, 2, replace=False)
        valid = transitive_valid(edges, (str(a), str(b)))
        if valid != want:
            continue

        def say(x, y):
            return f"{x} is {more} than {y}" if rng.random() < 0.7 else f"{y} is {less} than {x}"

        order = rng.permutation(len(edges))
        items.append(Item("transitive", tuple(say(*edges[k]) for k in order), say(a, b), valid,
                          f"tra{seed}-{len(items)}"))
    return items


# --------------------------------------------------------------------------- propositional
def _eval(f, env):
    op = f[0]
    if op == "atom":
        return env[f[1]]
    if op == "not":
        return not _eval(f[1], env)
    if op == "imp":
        return (not _eval(f[1], env)) or _eval(f[2], env)
    if op == "or":
        return _eval(f[1], env) or _eval(f[2], env)
    if op == "and":
        return _eval(f[1], env) and _eval(f[2], env)
    raise ValueError(op)


def _atoms(f, out):
    if f[0] == "atom":
        out.add(f[1])
    else:
        for g in f[1:]:
            _atoms(g, out)
    return out


def _entails(premises, conclusion) -> bool:
    atoms = sorted(set().union(*[_atoms(f, set()) for f in list(premises) + [conclusion]]))
    for values in itertools.product([False, True], repeat=len(atoms)):
        env = dict(zip(atoms, values))
        if all(_eval(p, env) for p in premises) and not _eval(conclusion, env):
            return False
    return True


def _speak(f, text) -> str:
    op = f[0]
    if op == "atom":
        return text[f[1]]
    if op == "not":
        return "it is not the case that " + _speak(f[1], text)
    if op == "imp":
        return f"if {_speak(f[1], text)}, then {_speak(f[2], text)}"
    if op == "or":
        return f"either {_speak(f[1], text)} or {_speak(f[2], text)}"
    return f"{_speak(f[1], text)} and {_speak(f[2], text)}"


_FORMS = {  # name: (premises, conclusion) over atoms p, q, r
    "modus_ponens": ([("imp", ("atom", "p"), ("atom", "q")), ("atom", "p")], ("atom", "q")),
    "modus_tollens": ([("imp", ("atom", "p"), ("atom", "q")), ("not", ("atom", "q"))], ("not", ("atom", "p"))),
    "affirming_consequent": ([("imp", ("atom", "p"), ("atom", "q")), ("atom", "q")], ("atom", "p")),
    "denying_antecedent": ([("imp", ("atom", "p"), ("atom", "q")), ("not", ("atom", "p"))], ("not", ("atom", "q"))),
    "hypothetical_syllogism": ([("imp", ("atom", "p"), ("atom", "q")), ("imp", ("atom", "q"), ("atom", "r"))],
                               ("imp", ("atom", "p"), ("atom", "r"))),
    "disjunctive_syllogism": ([("or", ("atom", "p"), ("atom", "q")), ("not", ("atom", "p"))], ("atom", "q")),
    "converse_chain": ([("imp", ("atom", "p"), ("atom", "q")), ("imp", ("atom", "q"), ("atom", "r"))],
                       ("imp", ("atom", "r"), ("atom", "p"))),
}


def generate_propositional(n: int, seed: int = 0, n_premises: int = 3) -> list[Item]:
    """``n`` propositional items (modus ponens/tollens, fallacies, chains) padded with side premises."""
    rng = np.random.default_rng(seed)
    names = sorted(_FORMS)
    items: list[Item] = []
    while len(items) < n:
        want = len(items) % 2 == 0
        prem, concl = _FORMS[names[int(rng.integers(len(names)))]]
        prem = list(prem)
        atoms = ["p", "q", "r", "s", "t", "u", "v"]
        while len(prem) < n_premises:  # side premises about fresh atoms: do not change validity
            a, b = atoms[3 + len(prem) % 4], atoms[3 + (len(prem) + 1) % 4]
            prem.append(("imp", ("atom", a), ("atom", b)) if rng.random() < 0.5 else ("atom", a))
        prem = prem[:n_premises] if len(prem) > n_premises else prem
        valid = _entails(prem, concl)
        if valid != want:
            continue
        words = rng.choice(PSEUDOWORDS, len(atoms), replace=False)
        adjs = rng.choice(ADJECTIVES, len(atoms))
        text = {a: f"the {w} is {adj}" for a, w, adj in zip(atoms, words, adjs)}
        cap = [s[0].upper() + s[1:] for s in (_speak(f, text) for f in prem)]
        c = _speak(concl, text)
        items.append(Item("propositional", tuple(cap[k] for k in rng.permutation(len(cap))),
                          c[0].upper() + c[1:], valid, f"pro{seed}-{len(items)}"))
    return items


def generate_items(task: str, n: int, seed: int = 0, n_premises: int = 3) -> list[Item]:
    """Dispatch to the generator of ``task`` (one of :data:`TASKS`)."""
    gens = {"syllogism": generate_syllogisms, "transitive": generate_transitive, "propositional": generate_propositional}
    if task not in gens:
        raise ValueError(f"task={task!r}; use one of {TASKS}.")
    if not 2 <= n_premises <= 8:
        raise ValueError(f"n_premises={n_premises}; use 2..8 (the paper uses 3, and 4-6 for generalisation).")
    return gens[task](n, seed=seed, n_premises=n_premises)


def premise_orders(item: Item) -> list[Item]:
    """The item under every order of its premises (n! items, the original order first)."""
    return [replace(item, premises=tuple(item.premises[k] for k in perm), item_id=f"{item.item_id}/o{o}")
            for o, perm in enumerate(itertools.permutations(range(len(item.premises))))]


# --------------------------------------------------------------------------- prompts and answers
def item_messages(item: Item) -> list[dict[str, str]]:
    """The brain-guided LLM study's chat for one item (verbatim for 3-premise syllogism/transitive items)."""
    n = len(item.premises)
    if item.task in ("syllogism", "transitive"):
        system = DEDUCTIVE_CHAT[f"system_{item.task}"]
    elif item.task == "propositional":
        system = PROPOSITIONAL_SYSTEM.format(n="three")
    else:
        raise ValueError(f"item.task={item.task!r}; use one of {TASKS}.")
    if n != 3:
        system = system.replace("three premises", f"{_NUMBER_WORDS.get(n, str(n))} premises")
    if n == 3:
        user = DEDUCTIVE_CHAT["user_template"] % (*item.premises, item.conclusion)
    else:
        user = "Premises:\n" + "".join(f"{k + 1}. {p}.\n" for k, p in enumerate(item.premises))
        user += f"Conclusion:\n{item.conclusion}."
    return [{"role": "user", "content": system},
            {"role": "assistant", "content": DEDUCTIVE_CHAT["assistant_ack"]},
            {"role": "user", "content": user}]


def item_prompt(item: Item, tokenizer) -> str:
    """The chat rendered by the tokenizer's template, ending with the generation prompt."""
    return tokenizer.apply_chat_template(item_messages(item), tokenize=False, add_generation_prompt=True)


def parse_answer(response: str) -> bool | None:
    """True / False when the response starts with 'True' / 'False' (after any ``</think>``), else None."""
    if "</think>" in response:
        response = response.rsplit("</think>", 1)[1]
    s = response.lstrip().lstrip("*'\"`")
    if s.startswith("True"):
        return True
    if s.startswith("False"):
        return False
    return None

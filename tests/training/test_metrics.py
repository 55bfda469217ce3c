"""The FLAN evaluation metrics: SQuAD exact match and F1 on hand-checked cases, BLEU and ROUGE-L equal
to sacrebleu's and rouge-score's own on real sample strings, accuracy, and unknown names."""

from __future__ import annotations

import pytest

pytest.importorskip("torch", reason="the training jobs need the 'train' extra (torch)")
pytest.importorskip("transformers", reason="the training jobs need the 'train' extra (transformers)")

import json
import pathlib

from schemas.instruct import METRICS
from training.eval import metrics

SAMPLES = pathlib.Path(__file__).resolve().parents[2] / "samples" / "instruct"


def rows(path, n):
    with open(SAMPLES / path) as handle:
        return [json.loads(line) for _, line in zip(range(n), handle)]


# SQuAD: answers from SQuAD v1.1's Super Bowl 50 questions; normalisation = lowercase, strip
# punctuation, drop a/an/the, collapse whitespace. Expected numbers worked out by hand.
@pytest.mark.parametrize("prediction, references, em, f1", [
    # "the denver broncos" -> "denver broncos": equal after dropping the article
    ("The Denver Broncos", ["Denver Broncos"], 1.0, 1.0),
    # case and punctuation do not count
    ("denver broncos!", ["Denver Broncos"], 1.0, 1.0),
    # pred {broncos}, gold {denver, broncos}: 1 common; P = 1/1, R = 1/2; F1 = 2*1*0.5/1.5 = 2/3
    ("the Broncos", ["Denver Broncos"], 0.0, 2 / 3),
    # pred 6 tokens (denver broncos won super bowl 50), gold 2, 2 common; P = 2/6, R = 2/2;
    # F1 = 2*(1/3)*1/(1/3+1) = 0.5
    ("Denver Broncos won Super Bowl 50", ["Denver Broncos"], 0.0, 0.5),
    # pred "santa clara california" (3). vs "levis stadium": 0 common -> 0.
    # vs "santa clara": 2 common, P = 2/3, R = 1, F1 = (4/3)/(5/3) = 0.8.
    # vs the long answer, 11 tokens once "the" is dropped, 3 common: P = 1, R = 3/11,
    # F1 = (6/11)/(14/11) = 3/7. The best over references: 0.8; no exact match.
    ("Santa Clara, California", ["Levi's Stadium", "Santa Clara",
                                 "Levi's Stadium in the San Francisco Bay Area at Santa Clara, California"], 0.0, 0.8),
    # tokens are counted as a multiset: pred "cat cat cat" vs "cat": 1 common; P = 1/3, R = 1;
    # F1 = (2/3)/(4/3) = 0.5
    ("the cat cat cat", ["cat"], 0.0, 0.5),
    # the second reference matches exactly: the best over references is 1
    ("Gold", ["golden anniversary", "gold"], 1.0, 1.0),
    # nothing in common
    ("Carolina Panthers", ["Denver Broncos"], 0.0, 0.0),
])
def test_squad_exact_match_and_f1_by_hand(prediction, references, em, f1):
    assert metrics.score("exact_match", prediction, references) == em
    assert metrics.score("f1", prediction, references) == pytest.approx(f1, abs=1e-12)


def test_squad_scores_of_a_template_are_the_mean():
    predictions = ["Denver Broncos", "the Broncos", "Carolina"]
    references = [["Denver Broncos"], ["Denver Broncos"], ["Denver Broncos"]]
    # EM: 1, 0, 0 -> 1/3. F1: 1, 2/3 (above), 0 -> (5/3)/3 = 5/9.
    assert metrics.corpus_score("exact_match", predictions, references) == pytest.approx(1 / 3)
    assert metrics.corpus_score("f1", predictions, references) == pytest.approx(5 / 9)


def test_accuracy_is_the_chosen_option_against_the_target():
    assert metrics.score("accuracy", "yes", ["yes"]) == 1.0
    assert metrics.score("accuracy", "no", ["yes"]) == 0.0
    assert metrics.score("accuracy", "Yes", ["yes"]) == 0.0  # an option is chosen, not normalised
    # right, right, wrong, right: 3/4
    assert metrics.corpus_score("accuracy", ["yes", "no", "no", "no"], [["yes"], ["no"], ["yes"], ["no"]]) == 0.75


def test_bleu_is_sacrebleus_own():
    import sacrebleu

    data = rows("ntrex128/test.jsonl", 20)
    references = [[row["deu"]] for row in data]
    # Imperfect "translations": the reference with its last word dropped, or another sentence.
    predictions = [" ".join(row["deu"].split()[:-1]) if i % 3 else data[(i + 1) % 20]["deu"]
                   for i, row in enumerate(data)]
    assert metrics.corpus_score("bleu", predictions, references) == \
        sacrebleu.corpus_bleu(predictions, [[r[0] for r in references]]).score / 100
    # Several references, a different number per example: missing streams are None for sacrebleu.
    several = [[row["deu"], row["deu"].replace(".", "")] if i % 2 else [row["deu"]] for i, row in enumerate(data)]
    streams = [[r[0] for r in several], [r[1] if len(r) > 1 else None for r in several]]
    got = metrics.corpus_score("bleu", predictions, several)
    assert got == sacrebleu.corpus_bleu(predictions, streams).score / 100
    assert 0.0 < got < 1.0
    for prediction, refs in zip(predictions, several):
        assert metrics.score("bleu", prediction, refs) == sacrebleu.sentence_bleu(prediction, refs).score / 100


def test_rouge_l_is_rouge_scores_own_best_over_references():
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    data = rows("scitldr/validation.jsonl", 20)
    predictions = [row["source"][0] for row in data]  # the abstract's first sentence as a "summary"
    references = [row["target"] for row in data]  # one to three TL;DRs each
    assert any(len(r) == 3 for r in references)
    expected = [max(scorer.score(ref, pred)["rougeL"].fmeasure for ref in refs)
                for pred, refs in zip(predictions, references)]
    assert metrics.scores("rouge_l", predictions, references) == expected
    assert metrics.corpus_score("rouge_l", predictions, references) == pytest.approx(sum(expected) / len(expected))
    assert 0.0 < min(expected) and max(expected) < 1.0


def test_every_registry_metric_is_scored_and_unknown_names_fail_in_one_line():
    for name in METRICS:
        assert metrics.score(name, "Denver Broncos", ["Denver Broncos"]) == pytest.approx(1.0)
    for call in (lambda: metrics.score("blue", "a", ["a"]), lambda: metrics.corpus_score("rouge", ["a"], [["a"]])):
        with pytest.raises(metrics.MetricError, match=r"unknown metric '\w+' \(known: accuracy, exact_match") as err:
            call()
        assert "\n" not in str(err.value)
    with pytest.raises(metrics.MetricError, match="2 predictions but 1 reference lists"):
        metrics.corpus_score("bleu", ["a", "b"], [["a"]])
    with pytest.raises(metrics.MetricError, match="of no examples"):
        metrics.corpus_score("f1", [], [])

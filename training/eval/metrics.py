"""The metrics a task names in the registry (``schemas.instruct.METRICS``), from the libraries FLAN's
numbers come from; nothing here re-implements a metric.

Every score is in [0, 1] (BLEU's 0-100 divided by 100). ``score`` is one example's score against
all its references; ``corpus_score`` is a set of examples' (one template of a task): the mean of
their scores, except BLEU, which is corpus BLEU over the set, as FLAN (T5's sacrebleu metric) and
WMT report it; an example's own BLEU (``score``) is sentence BLEU, for the per-example listing.

=============  ===================================================================================
accuracy       1 when the prediction (the option rank classification chose) is a reference (the
               target), else 0; rank classification itself needs the model (the scorer's)
exact_match    the SQuAD evaluation script's ``compute_exact`` (as shipped in transformers:
               lowercase, punctuation and the articles a/an/the removed, whitespace collapsed), the
               best over the references, as SQuAD scores several answers
f1             the SQuAD script's token ``compute_f1`` on the same normalisation, the best over the
               references. (It is the v2.0 script's: where a normalised reference or prediction is
               empty, F1 is 1 if both are, where v1.1 gave 0; references are never empty here.)
bleu           sacrebleu's ``corpus_bleu`` with its default signature (13a tokenization,
               exponential smoothing), every reference of each example (examples with fewer
               references leave the missing streams empty); one example: ``sentence_bleu``
rouge_l        rouge-score's ROUGE-L F-measure (Porter stemming, as rouge-score's papers set it),
               the best over the references (``RougeScorer.score_multi``)
=============  ===================================================================================
"""

from __future__ import annotations

from typing import Sequence

from schemas.instruct import METRICS


class MetricError(ValueError):
    """An unknown metric name or unusable input; the message is one line."""


def _check(metric: str) -> None:
    if metric not in METRICS:
        raise MetricError(f"unknown metric {metric!r} (known: {', '.join(METRICS)})")


def _references(references: Sequence[str]) -> list:
    refs = [references] if isinstance(references, str) else list(references)
    if not refs:
        raise MetricError("an example needs at least one reference")
    return refs


def accuracy(prediction: str, references: Sequence[str]) -> float:
    return float(prediction in _references(references))


def exact_match(prediction: str, references: Sequence[str]) -> float:
    from transformers.data.metrics.squad_metrics import compute_exact

    return float(max(compute_exact(ref, prediction) for ref in _references(references)))


def f1(prediction: str, references: Sequence[str]) -> float:
    from transformers.data.metrics.squad_metrics import compute_f1

    return float(max(compute_f1(ref, prediction) for ref in _references(references)))


def _rouge_scorer():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def rouge_l(prediction: str, references: Sequence[str], scorer=None) -> float:
    scorer = scorer or _rouge_scorer()
    return float(scorer.score_multi(_references(references), prediction)["rougeL"].fmeasure)


def sentence_bleu(prediction: str, references: Sequence[str]) -> float:
    import sacrebleu

    return float(sacrebleu.sentence_bleu(prediction, _references(references)).score / 100.0)


def corpus_bleu(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """sacrebleu corpus BLEU, /100; ``references[i]`` are example i's references (any number)."""
    import sacrebleu

    refs = [_references(r) for r in references]
    if len(refs) != len(predictions):
        raise MetricError(f"{len(predictions)} predictions but {len(refs)} reference lists")
    if not refs:
        raise MetricError("corpus BLEU of no examples")
    streams = [[r[i] if i < len(r) else None for r in refs] for i in range(max(len(r) for r in refs))]
    return float(sacrebleu.corpus_bleu(list(predictions), streams).score / 100.0)


def score(metric: str, prediction: str, references: Sequence[str]) -> float:
    """One example's score under ``metric``, against all its references (the best where the metric
    takes the best; BLEU: sentence BLEU over all of them)."""
    _check(metric)
    if metric == "bleu":
        return sentence_bleu(prediction, references)
    return {"accuracy": accuracy, "exact_match": exact_match, "f1": f1, "rouge_l": rouge_l}[metric](
        prediction, references)


def scores(metric: str, predictions: Sequence[str], references: Sequence[Sequence[str]]) -> list:
    """``score`` of each example (one ROUGE scorer for all of them)."""
    _check(metric)
    if len(predictions) != len(references):
        raise MetricError(f"{len(predictions)} predictions but {len(references)} reference lists")
    if metric == "rouge_l":
        scorer = _rouge_scorer()
        return [rouge_l(p, r, scorer) for p, r in zip(predictions, references)]
    return [score(metric, p, r) for p, r in zip(predictions, references)]


def corpus_score(metric: str, predictions: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """A set of examples' score (a template's, in FLAN's tables): corpus BLEU for ``bleu``, else the
    mean of the examples' scores. MetricError on no examples."""
    _check(metric)
    if not predictions:
        raise MetricError(f"{metric} of no examples")
    if metric == "bleu":
        return corpus_bleu(predictions, references)
    values = scores(metric, predictions, references)
    return float(sum(values) / len(values))

"""Benchmark evaluation with the field's conventions (``resyn eval``) and the complexity study
(``resyn study complexity``)."""

from resyn.eval.data import BenchmarkSet, EvalError, Pair, discover, parse_data_arg
from resyn.eval.models import EvalModel, load_eval_model
from resyn.eval.report import write_results
from resyn.eval.runner import COLUMNS, DatasetResult, evaluate_dataset

__all__ = [
    "COLUMNS",
    "BenchmarkSet",
    "DatasetResult",
    "EvalError",
    "EvalModel",
    "Pair",
    "discover",
    "evaluate_dataset",
    "load_eval_model",
    "parse_data_arg",
    "write_results",
]

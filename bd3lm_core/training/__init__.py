"""Training: the objective (`objective.py`), the data, the loop (`trainer.py`) and held-out likelihoods."""

from .evaluation import EvalResult, nelbo
from .settings import TrainSettings
from .trainer import Trainer

__all__ = ["EvalResult", "nelbo", "TrainSettings", "Trainer"]

"""Reading the model repository that ``export`` writes (DESIGN §2)."""

from serving.models.card import Calibration, ModelCard, TensorSpec
from serving.models.repository import ModelRepository

__all__ = ["Calibration", "ModelCard", "ModelRepository", "TensorSpec"]

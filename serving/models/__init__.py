"""The gateway's view of the model repository; cards are ``contracts.card``'s typed cards."""

from serving.models.repository import ModelRepository, ModelVersion

__all__ = ["ModelRepository", "ModelVersion"]
